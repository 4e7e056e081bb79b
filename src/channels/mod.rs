//! The providers that carry messages: Twilio (SMS and WhatsApp), Meta's WhatsApp Cloud API and the
//! built-in console channel.
//!
//! Each provider module turns its webhooks into the provider-neutral [`Inbound`] and
//! [`StatusUpdate`], and turns an [`Outgoing`] message into its own API call. Nothing outside this
//! folder knows which provider carried a message.

pub mod console;
pub mod meta;
pub mod providers;
pub mod signature;
pub mod twilio;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{Coordinates, PhoneNumber};

crate::text_enum! {
    /// Who carries a channel's messages.
    pub enum Provider {
        Twilio = "twilio",
        Meta = "meta",
        Console = "console",
    }
}

impl Provider {
    /// Whether WhatsApp reply buttons can be sent as written, inside the 24-hour window
    /// (Twilio needs an approved Content template for them).
    pub fn sends_free_form_buttons(self) -> bool {
        !matches!(self, Self::Twilio)
    }

    /// Whether a WhatsApp template goes only by the provider's own id for it (Twilio's Content
    /// SID), not by its name.
    pub fn templates_need_content_sid(self) -> bool {
        matches!(self, Self::Twilio)
    }

    /// The provider's refusal of a channel it cannot carry, if any: Meta's Cloud API carries
    /// WhatsApp only and addresses a number by its phone number id.
    pub fn channel_problems(
        self,
        kind: Option<ChannelKind>,
        provider_ref: Option<&str>,
    ) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        if self == Self::Meta {
            if kind == Some(ChannelKind::Sms) {
                problems.push((
                    "kind",
                    "Meta's Cloud API carries WhatsApp only: use --kind whatsapp",
                ));
            }
            if provider_ref.is_none() {
                problems.push((
                    "provider_id",
                    "Meta channels need the phone number id from WhatsApp Manager (--provider-id)",
                ));
            }
        }
        problems
    }
}

crate::text_enum! {
    /// How a channel reaches people.
    pub enum ChannelKind {
        Sms = "sms",
        Whatsapp = "whatsapp",
    }
}

/// How an inbound webhook names the number it arrived on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceivingNumber {
    /// Twilio and the console: the number itself.
    Phone(PhoneNumber),
    /// Meta: the phone number id (`metadata.phone_number_id`).
    ProviderRef(String),
}

/// One message a person sent, in no provider's shape. Kept as JSON in the inbox between the
/// webhook's answer and its storing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    pub provider: Provider,
    pub kind: ChannelKind,
    pub provider_message_id: String,
    pub to: ReceivingNumber,
    pub from: PhoneNumber,
    pub profile_name: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub content: Content,
    /// The provider's id of the message this one replies to (a tap on a button, a quoted reply).
    pub reply_to: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Text(String),
    Location {
        at: Coordinates,
        label: Option<String>,
    },
    Media {
        items: Vec<Media>,
        caption: Option<String>,
    },
    /// A tapped reply button or list row: the id we gave it, and its title as shown.
    Reply {
        id: String,
        title: Option<String>,
    },
    /// An emoji reaction to one of our messages (the message is `reply_to`); empty when the
    /// person took their reaction back.
    Reaction {
        emoji: String,
    },
    /// Something we do not handle (a sticker pack, a poll, an order): kept with its type name.
    Unsupported(String),
}

impl Content {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Location { .. } => "location",
            Self::Media { .. } => "media",
            Self::Reply { .. } => "interactive",
            Self::Reaction { .. } => "reaction",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub kind: MediaKind,
    /// Meta's media id; Twilio gives a URL instead.
    pub provider_media_id: Option<String>,
    pub url: Option<String>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Document,
    Audio,
    Video,
    Voice,
    Sticker,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Voice => "voice",
            Self::Sticker => "sticker",
        }
    }

    /// Twilio only gives a content type.
    pub fn from_content_type(content_type: &str) -> Self {
        let main = content_type.split('/').next().unwrap_or_default();
        match main {
            "image" => Self::Image,
            "audio" => Self::Audio,
            "video" => Self::Video,
            _ => Self::Document,
        }
    }
}

/// The one status set both providers are mapped onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
}

impl DeliveryStatus {
    /// A stored status, as [`Self::as_str`] wrote it.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Sending,
            Self::Sent,
            Self::Delivered,
            Self::Read,
            Self::Failed,
            Self::Undelivered,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
        }
    }
}

/// A provider's news about a message we sent.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub provider: Provider,
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    pub at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// What a webhook body held, once verified and parsed.
#[derive(Debug, Default)]
pub struct WebhookBatch {
    pub messages: Vec<Inbound>,
    pub statuses: Vec<StatusUpdate>,
    /// Parts we acknowledge but do not process, with why (logged).
    pub ignored: Vec<String>,
}

/// A reply button: the id that comes back when it is tapped, and its title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub id: String,
    pub title: String,
    /// A second line under the title where the choices become a WhatsApp list (up to 72
    /// characters there): what a bare reference stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Button {
    /// Longest title WhatsApp shows on a reply button.
    pub const MAX_TITLE: usize = 20;

    /// A choice made at run time: `title` cut to fit a button, `description` in full.
    pub fn choice(id: String, title: &str, description: Option<String>) -> Self {
        Self {
            id,
            title: truncated(title, Self::MAX_TITLE),
            description,
        }
    }
}

/// At most `max` characters (WhatsApp counts characters, not bytes), with "…" when cut.
pub fn truncated(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A message ready for one provider's API.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub kind: ChannelKind,
    pub to: PhoneNumber,
    /// Our number, and for Meta its phone number id.
    pub from: PhoneNumber,
    pub from_ref: Option<String>,
    pub body: OutgoingBody,
    /// The text carries a secret (a sign-in code): never written to a log.
    pub secret: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutgoingBody {
    /// Free text (SMS, or WhatsApp inside the 24-hour window).
    Text(String),
    /// WhatsApp reply buttons, inside the window.
    Buttons {
        text: String,
        buttons: Vec<Button>,
        /// The label of the button that opens the list, in the person's language.
        menu: String,
    },
    /// An approved WhatsApp template, outside the window.
    Template {
        name: String,
        language: String,
        parameters: Vec<String>,
        /// Twilio names approved WhatsApp templates by a Content SID instead.
        twilio_content_sid: Option<String>,
    },
}

/// A provider accepted the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    pub provider_message_id: String,
    pub status: DeliveryStatus,
}

/// Why a send did not go through, sorted by what to do about it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt later: network trouble, 5xx, throttling.
    #[error("{code}: {message}")]
    Retryable {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again however often it is tried.
    #[error("{code}: {message}")]
    Permanent {
        code: String,
        message: String,
        /// The recipient has opted out at the provider (Twilio 21610).
        opted_out: bool,
    },
}

impl SendError {
    pub fn network(err: &reqwest::Error) -> Self {
        Self::Retryable {
            code: if err.is_timeout() {
                "timeout".into()
            } else {
                "network".into()
            },
            message: err.without_url_string(),
            retry_after: None,
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            message: message.into(),
            opted_out: false,
        }
    }
}

/// A provider's non-2xx answer to a send, before it is sorted into retry or give up.
pub(crate) struct Refusal {
    pub http_status: reqwest::StatusCode,
    pub code: Option<i64>,
    pub message: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// 5xx, 429 and the provider's throttling codes are worth another attempt; the rest are not.
    pub fn classify(self, retryable_codes: &[i64], opted_out_code: Option<i64>) -> SendError {
        let code = self
            .code
            .map(|c| c.to_string())
            .unwrap_or_else(|| format!("http_{}", self.http_status.as_u16()));
        let message = self.message.unwrap_or_else(|| self.http_status.to_string());
        let retryable = self.http_status.is_server_error()
            || self.http_status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || self.code.is_some_and(|c| retryable_codes.contains(&c));
        if retryable {
            SendError::Retryable {
                code,
                message,
                retry_after: self.retry_after,
            }
        } else {
            SendError::Permanent {
                opted_out: self.code.is_some() && self.code == opted_out_code,
                code,
                message,
            }
        }
    }
}

/// Reads `Retry-After` in seconds (the form both providers use).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    /// URLs can carry account ids; the error kind is what matters.
    fn without_url_string(&self) -> String {
        let mut err = self.to_string();
        if let Some(url) = self.url() {
            err = err.replace(url.as_str(), "<provider>");
        }
        err
    }
}

/// Text as it can be stored: PostgreSQL refuses NUL in text, and a provider would retry a
/// webhook we failed on forever. Everything else is kept as sent.
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "")
}

/// [`without_nul`] on every string (and key) of a provider's JSON document.
pub fn strip_nul_from_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains('\0') => *text = without_nul(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nul_from_json),
        serde_json::Value::Object(fields) => {
            if fields.keys().any(|k| k.contains('\0')) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(k, v)| (without_nul(&k), v))
                    .collect();
            }
            fields.values_mut().for_each(strip_nul_from_json);
        }
        _ => {}
    }
}

/// What a parsed message comes to, in one line, for the parsers' table-driven tests.
#[cfg(test)]
pub(crate) fn describe(message: &Inbound) -> String {
    let content = match &message.content {
        Content::Text(text) => format!("text {text:?}"),
        Content::Location { at, label } => {
            format!("location {},{} {label:?}", at.latitude, at.longitude)
        }
        Content::Media { items, caption } => {
            let kinds: Vec<&str> = items.iter().map(|m| m.kind.as_str()).collect();
            format!("media {} {caption:?}", kinds.join("+"))
        }
        Content::Reply { id, title } => format!("reply {id} {title:?}"),
        Content::Reaction { emoji } => format!("reaction {emoji}"),
        Content::Unsupported(kind) => format!("unsupported {kind}"),
    };
    format!(
        "{} {} from {}: {content}",
        message.provider,
        message.kind,
        message.from.as_str()
    )
}

/// A fixture from `webhooks/`, the same files the integration tests post.
#[cfg(test)]
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("webhooks")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}
