//! The built-in console channel: "delivers" by writing to the log, so the whole product works on a
//! laptop with no provider accounts. The message row keeps the text, so the panel and
//! `fieldline simulate` show what was sent.

use uuid::Uuid;

use super::{Accepted, DeliveryStatus, Outgoing, OutgoingBody};

pub fn send(message: &Outgoing) -> Accepted {
    let text = match &message.body {
        OutgoingBody::Text(text) => text.clone(),
        OutgoingBody::Buttons { text, buttons, .. } => {
            let titles: Vec<String> = buttons.iter().map(|b| format!("[{}]", b.title)).collect();
            format!("{text}\n{}", titles.join(" "))
        }
        OutgoingBody::Template {
            name, parameters, ..
        } => format!("template {name} {parameters:?}"),
    };
    let text = if message.secret {
        "[withheld: this message carries a secret; `fieldline simulate` shows it in development]"
            .to_owned()
    } else {
        text
    };
    // The number and the words name people: at INFO only that a message went, and its length;
    // RUST_LOG=fieldline::channels::console=debug (development) shows them.
    tracing::info!(channel = %message.kind, chars = text.chars().count(), "console message sent");
    tracing::debug!(channel = %message.kind, to = %message.to, "console message:\n{text}");
    Accepted {
        provider_message_id: format!("console-{}", Uuid::now_v7().simple()),
        status: DeliveryStatus::Delivered,
    }
}
