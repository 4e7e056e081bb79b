//! Meta's WhatsApp Cloud API (Graph API).

use chrono::{DateTime, Utc};
use reqwest::Client;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Accepted, ChannelKind, Content, DeliveryStatus, Inbound, Media, MediaKind, Outgoing,
    OutgoingBody, Provider, ReceivingNumber, Refusal, SendError, StatusUpdate, WebhookBatch,
    retry_after, truncated,
};
use crate::{
    config::MetaConfig,
    types::{Coordinates, PhoneNumber},
};

// Only the fields we read; everything else in Meta's payloads is ignored, never refused.

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    value: Option<ChangeValue>,
}

#[derive(Deserialize)]
struct ChangeValue {
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    statuses: Vec<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct WaContact {
    wa_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct WaMessage {
    id: String,
    from: String,
    timestamp: Option<String>,
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<TextBody>,
    location: Option<Location>,
    button: Option<QuickReply>,
    interactive: Option<Interactive>,
    context: Option<Context>,
    image: Option<WaMedia>,
    document: Option<WaMedia>,
    audio: Option<WaMedia>,
    video: Option<WaMedia>,
    sticker: Option<WaMedia>,
    reaction: Option<WaReaction>,
}

#[derive(Deserialize)]
struct WaReaction {
    message_id: String,
    #[serde(default)]
    emoji: String,
}

#[derive(Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
}

/// A tap on a template's quick-reply button.
#[derive(Deserialize)]
struct QuickReply {
    payload: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Interactive {
    button_reply: Option<ReplyRow>,
    list_reply: Option<ReplyRow>,
}

#[derive(Deserialize)]
struct ReplyRow {
    id: String,
    title: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    id: Option<String>,
}

#[derive(Deserialize)]
struct WaMedia {
    id: Option<String>,
    link: Option<String>,
    mime_type: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    #[serde(default)]
    voice: bool,
}

#[derive(Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    timestamp: Option<String>,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Deserialize)]
struct WaError {
    code: Option<i64>,
    title: Option<String>,
    message: Option<String>,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

fn unix_time(raw: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(raw?.parse().ok()?, 0)
}

/// Everything in one webhook body: every entry, change, message and status.
/// A body that is not JSON at all is an error; parts we cannot read are listed in `ignored`.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookBatch, String> {
    let mut document: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not Meta's JSON: {e}"))?;
    super::strip_nul_from_json(&mut document);
    let payload: Payload = serde_json::from_value(document)
        .map_err(|e| format!("the body is not Meta's webhook JSON: {e}"))?;
    let mut batch = WebhookBatch::default();
    if payload.object != "whatsapp_business_account" {
        batch.ignored.push(format!(
            "object {:?} is not whatsapp_business_account",
            payload.object
        ));
        return Ok(batch);
    }
    for change in payload.entry.into_iter().flat_map(|e| e.changes) {
        let Some(value) = change.value.filter(|_| change.field == "messages") else {
            batch
                .ignored
                .push(format!("change field {:?}", change.field));
            continue;
        };
        let Some(metadata) = value.metadata else {
            batch.ignored.push("a change without metadata".into());
            continue;
        };
        for raw in value.messages {
            match parse_message(raw, &metadata.phone_number_id, &value.contacts) {
                Ok(message) => batch.messages.push(message),
                Err(why) => batch.ignored.push(why),
            }
        }
        for raw in value.statuses {
            match parse_status(raw) {
                Ok(status) => batch.statuses.push(status),
                Err(why) => batch.ignored.push(why),
            }
        }
    }
    Ok(batch)
}

fn parse_message(
    raw: Value,
    phone_number_id: &str,
    contacts: &[WaContact],
) -> Result<Inbound, String> {
    let message: WaMessage = serde_json::from_value(raw)
        .map_err(|e| format!("a message Meta sent is unreadable: {e}"))?;
    let from = PhoneNumber::parse(&format!("+{}", message.from.trim_start_matches('+')))?;
    let profile_name = contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(message.from.as_str()))
        .or(contacts.first())
        .and_then(|c| c.profile.as_ref()?.name.clone());

    let media = |item: &WaMedia, kind: MediaKind| Content::Media {
        items: vec![Media {
            kind: if item.voice { MediaKind::Voice } else { kind },
            provider_media_id: item.id.clone(),
            url: item.link.clone(),
            content_type: item.mime_type.clone(),
            file_name: item.filename.clone(),
        }],
        caption: item.caption.clone(),
    };
    let mut reply_to = message.context.and_then(|c| c.id);
    let content = match message.kind.as_str() {
        "text" => Content::Text(message.text.map(|t| t.body).unwrap_or_default()),
        "location" => {
            let location = message
                .location
                .ok_or("a location message has no location")?;
            Content::Location {
                at: Coordinates::new(location.latitude, location.longitude)
                    .map_err(|(_, why)| why)?,
                label: [location.name, location.address]
                    .into_iter()
                    .flatten()
                    .reduce(|a, b| format!("{a}, {b}")),
            }
        }
        "button" => {
            let button = message.button.ok_or("a button message has no button")?;
            Content::Reply {
                id: button
                    .payload
                    .clone()
                    .or(button.text.clone())
                    .unwrap_or_default(),
                title: button.text,
            }
        }
        "interactive" => {
            let interactive = message
                .interactive
                .ok_or("an interactive message has no interactive part")?;
            let row = interactive
                .button_reply
                .or(interactive.list_reply)
                .ok_or("an interactive message with neither button_reply nor list_reply")?;
            Content::Reply {
                id: row.id,
                title: row.title,
            }
        }
        "image" | "document" | "audio" | "video" | "sticker" => {
            let (item, kind) = match message.kind.as_str() {
                "image" => (message.image, MediaKind::Image),
                "document" => (message.document, MediaKind::Document),
                "audio" => (message.audio, MediaKind::Audio),
                "video" => (message.video, MediaKind::Video),
                _ => (message.sticker, MediaKind::Sticker),
            };
            let item = item.ok_or_else(|| format!("a {} message has no {0} part", message.kind))?;
            media(&item, kind)
        }
        "reaction" => {
            let reaction = message
                .reaction
                .ok_or("a reaction message has no reaction")?;
            reply_to = Some(reaction.message_id);
            Content::Reaction {
                emoji: reaction.emoji,
            }
        }
        other => Content::Unsupported(other.to_owned()),
    };
    Ok(Inbound {
        provider: Provider::Meta,
        kind: ChannelKind::Whatsapp,
        provider_message_id: message.id,
        to: ReceivingNumber::ProviderRef(phone_number_id.to_owned()),
        from,
        profile_name,
        sent_at: unix_time(message.timestamp.as_deref()),
        content,
        reply_to,
    })
}

fn parse_status(raw: Value) -> Result<StatusUpdate, String> {
    let status: WaStatus = serde_json::from_value(raw)
        .map_err(|e| format!("a status Meta sent is unreadable: {e}"))?;
    let mapped = match status.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        other => return Err(format!("status {other:?} of {} is not tracked", status.id)),
    };
    let error = status.errors.into_iter().next();
    Ok(StatusUpdate {
        provider: Provider::Meta,
        provider_message_id: status.id,
        status: mapped,
        at: unix_time(status.timestamp.as_deref()),
        error_code: error.as_ref().and_then(|e| e.code).map(|c| c.to_string()),
        error_message: error.and_then(|e| {
            e.error_data
                .and_then(|d| d.details)
                .or(e.message)
                .or(e.title)
        }),
    })
}

/// The JSON body for `POST /{phone-number-id}/messages`, as the specification describes it.
pub fn request_body(message: &Outgoing) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to.as_str().trim_start_matches('+'),
    });
    let extra = match &message.body {
        OutgoingBody::Text(text) => json!({
            "type": "text",
            "text": { "preview_url": false, "body": text },
        }),
        // Up to three reply buttons; more choices become a list.
        OutgoingBody::Buttons { text, buttons, .. } if buttons.len() <= 3 => json!({
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": { "text": text },
                "action": { "buttons": buttons.iter().map(|b| json!({
                    "type": "reply",
                    "reply": { "id": b.id, "title": b.title },
                })).collect::<Vec<_>>() },
            },
        }),
        OutgoingBody::Buttons {
            text,
            buttons,
            menu,
        } => json!({
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": { "text": text },
                "action": {
                    "button": truncated(menu, 20),
                    "sections": [{ "rows": buttons.iter().take(10).map(|b| {
                        let mut row = json!({ "id": b.id, "title": truncated(&b.title, 24) });
                        if let Some(description) = &b.description {
                            row["description"] = json!(truncated(description, 72));
                        }
                        row
                    }).collect::<Vec<_>>() }],
                },
            },
        }),
        OutgoingBody::Template {
            name,
            language,
            parameters,
            ..
        } => {
            let mut template = json!({
                "name": name,
                "language": { "policy": "deterministic", "code": language },
            });
            if !parameters.is_empty() {
                template["components"] = json!([{
                    "type": "body",
                    "parameters": parameters.iter().map(|p| json!({ "type": "text", "text": p })).collect::<Vec<_>>(),
                }]);
            }
            json!({ "type": "template", "template": template })
        }
    };
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    code: Option<i64>,
    message: Option<String>,
    error_data: Option<ErrorData>,
}

/// Throttling and temporary trouble: 4 app rate limit, 80007 account rate limit, 130429
/// throughput, 131056 too many messages to one recipient.
const RETRYABLE: &[i64] = &[4, 80007, 130429, 131056];

pub async fn send(
    client: &Client,
    config: &MetaConfig,
    message: &Outgoing,
) -> Result<Accepted, SendError> {
    if message.kind != ChannelKind::Whatsapp {
        return Err(SendError::permanent(
            "unsupported",
            "Meta carries WhatsApp only",
        ));
    }
    let Some(phone_number_id) = &message.from_ref else {
        return Err(SendError::permanent(
            "channel_misconfigured",
            "the Meta channel has no phone number id (add it with --provider-id)",
        ));
    };
    let url = graph_url(config, &format!("{phone_number_id}/messages"));
    let response = client
        .post(url)
        .bearer_auth(config.access_token.expose())
        .json(&request_body(message))
        .send()
        .await
        .map_err(|e| SendError::network(&e))?;
    let http_status = response.status();
    let wait = retry_after(response.headers());
    if http_status.is_success() {
        let sent: SendResponse = response.json().await.map_err(|e| SendError::network(&e))?;
        let id = sent
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| {
                SendError::permanent(
                    "no_message_id",
                    "Meta accepted the message but returned no id",
                )
            })?
            .id;
        // Accepted, not yet sent: Meta's `sent` webhook says when it is.
        return Ok(Accepted {
            provider_message_id: id,
            status: DeliveryStatus::Sending,
        });
    }
    let error = response.json::<ErrorResponse>().await.ok().map(|e| e.error);
    Err(Refusal {
        http_status,
        code: error.as_ref().and_then(|e| e.code),
        message: error.and_then(|e| e.error_data.and_then(|d| d.details).or(e.message)),
        retry_after: wait,
    }
    .classify(RETRYABLE, None))
}

fn graph_url(config: &MetaConfig, path: &str) -> String {
    format!(
        "{}/{path}",
        config.graph_base.as_str().trim_end_matches('/')
    )
}

/// Where a media file can be downloaded, and its size if Meta says.
#[derive(Deserialize)]
pub struct MediaInfo {
    pub url: String,
    pub mime_type: Option<String>,
    /// Meta sends it as a string ("303833"); a number is read too.
    #[serde(default, deserialize_with = "number_or_numeric_string")]
    pub file_size: Option<u64>,
}

/// `GET /{media-id}`: Meta hands out a short-lived download URL that needs the same token.
pub async fn media_info(
    client: &Client,
    config: &MetaConfig,
    media_id: &str,
) -> anyhow::Result<MediaInfo> {
    // The id comes from the webhook: escaped, it can only ever name one path segment.
    let escaped: String = url::form_urlencoded::byte_serialize(media_id.as_bytes()).collect();
    let response = client
        .get(graph_url(config, &escaped))
        .bearer_auth(config.access_token.expose())
        .send()
        .await?
        .error_for_status()?;
    Ok(response.json().await?)
}

fn number_or_numeric_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom("file_size is not a whole number")),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("file_size {s:?} is not a number"))),
        Some(other) => Err(D::Error::custom(format!(
            "file_size {other} is not a number"
        ))),
    }
}

#[cfg(test)]
mod media_info_tests {
    use super::MediaInfo;

    #[test]
    fn file_size_is_read_as_meta_sends_it_or_as_a_number() {
        for (json, size) in [
            (r#"{"url": "u", "file_size": "303833"}"#, Some(303_833)),
            (r#"{"url": "u", "file_size": 303833}"#, Some(303_833)),
            (r#"{"url": "u"}"#, None),
        ] {
            let info: MediaInfo = serde_json::from_str(json).unwrap();
            assert_eq!(info.file_size, size, "{json}");
        }
        assert!(serde_json::from_str::<MediaInfo>(r#"{"url": "u", "file_size": "big"}"#).is_err());
    }
}

#[cfg(test)]
mod parser_tests {
    use super::parse_webhook;
    use crate::channels::{describe, fixture};

    /// Messages, statuses and ignored parts of each fixture, in order.
    fn read(name: &str) -> (Vec<String>, Vec<String>, usize) {
        let batch = parse_webhook(&fixture(&format!("meta/{name}")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        (
            batch.messages.iter().map(describe).collect(),
            batch
                .statuses
                .iter()
                .map(|s| format!("{} {:?}", s.status.as_str(), s.error_code))
                .collect(),
            batch.ignored.len(),
        )
    }

    #[test]
    fn every_fixture_parses_to_what_it_says() {
        let from = "meta whatsapp from +251911000101";
        for (name, messages, statuses) in [
            ("text.json", vec!["text"], vec![]),
            ("stop.json", vec!["text"], vec![]),
            ("text_with_context.json", vec!["text"], vec![]),
            ("location.json", vec!["location"], vec![]),
            ("image.json", vec!["media image"], vec![]),
            ("document.json", vec!["media document"], vec![]),
            ("voice.json", vec!["media"], vec![]),
            ("button_reply.json", vec!["reply"], vec![]),
            ("list_reply.json", vec!["reply"], vec![]),
            ("template_quick_reply.json", vec!["reply"], vec![]),
            ("unsupported.json", vec!["unsupported"], vec![]),
            ("reaction.json", vec!["reaction 👍"], vec![]),
            (
                "batched.json",
                vec!["text", "location", "text"],
                vec!["delivered None"],
            ),
            ("status_sent.json", vec![], vec!["sent None"]),
            ("status_delivered.json", vec![], vec!["delivered None"]),
            ("status_read.json", vec![], vec!["read None"]),
            (
                "status_failed_131047.json",
                vec![],
                vec!["failed Some(\"131047\")"],
            ),
        ] {
            let (got, got_statuses, _) = read(name);
            assert_eq!(got.len(), messages.len(), "{name}: {got:?}");
            for (message, kind) in got.iter().zip(&messages) {
                let content = message.split_once(": ").map(|(_, c)| c).unwrap_or_default();
                assert!(content.starts_with(kind), "{name}: {message} is not {kind}");
                assert!(
                    message.starts_with("meta whatsapp from +"),
                    "{name}: {message}"
                );
            }
            assert_eq!(got_statuses, statuses, "{name}");
        }
        assert_eq!(
            read("location.json").0[0],
            format!(
                "{from}: location 9.0108,38.7613 Some(\"Bole Garden block B, Bole Road, Addis Ababa\")"
            )
        );
    }

    #[test]
    fn other_notifications_are_acknowledged_and_set_aside() {
        let (messages, statuses, ignored) = read("account_update.json");
        assert!(messages.is_empty() && statuses.is_empty());
        assert_eq!(ignored, 1);
    }

    #[test]
    fn a_body_that_is_not_metas_json_is_refused_saying_so() {
        let error = parse_webhook(b"not json").unwrap_err();
        assert!(error.contains("not Meta's JSON"), "{error}");
        let error = parse_webhook(br#"{"object": 3}"#).unwrap_err();
        assert!(error.contains("webhook JSON"), "{error}");
    }
}
