//! Twilio Programmable Messaging: SMS, and WhatsApp where addresses read `whatsapp:+E164`.

use std::collections::HashMap;

use chrono::Utc;
use reqwest::Client;
use serde::Deserialize;

use super::{
    Accepted, ChannelKind, Content, DeliveryStatus, Inbound, Media, MediaKind, Outgoing,
    OutgoingBody, Provider, ReceivingNumber, Refusal, SendError, StatusUpdate, retry_after,
};
use crate::{
    config::TwilioConfig,
    types::{Coordinates, PhoneNumber},
};

/// The form fields of one webhook, by name (Twilio never repeats a name).
pub struct Form(HashMap<String, String>);

impl Form {
    /// NUL characters are dropped (PostgreSQL text cannot hold them); everything else is kept.
    pub fn new(pairs: &[(String, String)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| (super::without_nul(k), super::without_nul(v)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("the form has no {name}"))
    }
}

/// `whatsapp:+251911000101` or `+251911000101`.
fn address(raw: &str) -> Result<(ChannelKind, PhoneNumber), String> {
    match raw.strip_prefix("whatsapp:") {
        Some(number) => Ok((ChannelKind::Whatsapp, PhoneNumber::parse(number)?)),
        None => Ok((ChannelKind::Sms, PhoneNumber::parse(raw)?)),
    }
}

/// An incoming message webhook (`POST /webhooks/twilio/messages`).
pub fn parse_message(form: &Form) -> Result<Inbound, String> {
    let sid = form
        .get("MessageSid")
        .or_else(|| form.get("SmsSid"))
        .ok_or("the form has no MessageSid")?;
    let (kind, from) = address(form.required("From")?)?;
    let (_, to) = address(form.required("To")?)?;
    let body = form.get("Body").map(str::to_owned);

    let content = if let Some(payload) = form.get("ButtonPayload") {
        Content::Reply {
            id: payload.to_owned(),
            title: form.get("ButtonText").map(str::to_owned),
        }
    } else if let (Some(lat), Some(lon)) = (form.get("Latitude"), form.get("Longitude")) {
        let lat: f64 = lat
            .parse()
            .map_err(|_| format!("Latitude {lat:?} is not a number"))?;
        let lon: f64 = lon
            .parse()
            .map_err(|_| format!("Longitude {lon:?} is not a number"))?;
        let at = Coordinates::new(lat, lon).map_err(|(_, message)| message)?;
        let label = [form.get("Label"), form.get("Address")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        Content::Location {
            at,
            label: Some(label).filter(|l| !l.is_empty()),
        }
    } else if let Some(count) = form.get("NumMedia").and_then(|n| n.parse::<usize>().ok())
        && count > 0
    {
        let items = (0..count)
            .filter_map(|i| {
                let url = form.get(&format!("MediaUrl{i}"))?;
                let content_type = form.get(&format!("MediaContentType{i}"));
                Some(Media {
                    kind: content_type
                        .map(MediaKind::from_content_type)
                        .unwrap_or(MediaKind::Document),
                    provider_media_id: None,
                    url: Some(url.to_owned()),
                    content_type: content_type.map(str::to_owned),
                    file_name: None,
                })
            })
            .collect();
        Content::Media {
            items,
            caption: body,
        }
    } else {
        match body {
            Some(text) => Content::Text(text),
            None => Content::Unsupported(form.get("MessageType").unwrap_or("empty").to_owned()),
        }
    };

    Ok(Inbound {
        provider: Provider::Twilio,
        kind,
        provider_message_id: sid.to_owned(),
        to: ReceivingNumber::Phone(to),
        from,
        profile_name: form.get("ProfileName").map(str::to_owned),
        sent_at: None,
        content,
        reply_to: form.get("OriginalRepliedMessageSid").map(str::to_owned),
    })
}

/// Twilio's statuses, onto ours. `accepted` and `scheduled` are still waiting to go out.
fn status(raw: &str) -> Option<DeliveryStatus> {
    Some(match raw {
        "accepted" | "scheduled" | "queued" => DeliveryStatus::Queued,
        "sending" => DeliveryStatus::Sending,
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "canceled" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// A status callback (`POST /webhooks/twilio/status`).
pub fn parse_status(form: &Form) -> Result<StatusUpdate, String> {
    let sid = form
        .get("MessageSid")
        .or_else(|| form.get("SmsSid"))
        .ok_or("the form has no MessageSid")?;
    let raw = form
        .get("MessageStatus")
        .or_else(|| form.get("SmsStatus"))
        .ok_or("the form has no MessageStatus")?;
    let status = status(raw).ok_or_else(|| format!("unknown MessageStatus {raw:?}"))?;
    Ok(StatusUpdate {
        provider: Provider::Twilio,
        provider_message_id: sid.to_owned(),
        status,
        at: Some(Utc::now()),
        error_code: form.get("ErrorCode").map(str::to_owned),
        error_message: form.get("ErrorMessage").map(str::to_owned),
    })
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResource {
    code: Option<i64>,
    message: Option<String>,
}

/// Error codes worth another attempt: 20429 is Twilio's "too many requests".
const RETRYABLE: &[i64] = &[20429];
/// The recipient replied STOP: Twilio refuses to message them until they reply START.
const OPTED_OUT: i64 = 21610;

#[derive(Deserialize)]
struct MessageList {
    #[serde(default)]
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct ListedMessage {
    sid: String,
    body: Option<String>,
    status: Option<String>,
    date_created: Option<String>,
}

/// Finds a text message Twilio already took from us: `GET .../Messages.json?To=&From=&DateSent>=`,
/// the newest page, the same body, created since `since`. Asked before sending again a message
/// whose earlier attempt ended without our record of Twilio's answer (a crash, a lost database
/// connection), so that the person does not get it twice. `Ok(None)`: Twilio has no such message,
/// or the message is a template (whose text Twilio renders, so it cannot be matched).
pub async fn find_sent(
    client: &Client,
    config: &TwilioConfig,
    message: &Outgoing,
    since: chrono::DateTime<Utc>,
) -> Result<Option<Accepted>, SendError> {
    let OutgoingBody::Text(text) = &message.body else {
        return Ok(None);
    };
    let prefix = match message.kind {
        ChannelKind::Whatsapp => "whatsapp:",
        ChannelKind::Sms => "",
    };
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        config.api_base.as_str().trim_end_matches('/'),
        config.account_sid
    );
    // DateSent filters by day; the exact time is compared below, with a minute of clock skew.
    let day = (since - chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let response = client
        .get(url)
        .basic_auth(&config.account_sid, Some(config.auth_token.expose()))
        .query(&[
            ("To", format!("{prefix}{}", message.to)),
            ("From", format!("{prefix}{}", message.from)),
            ("DateSent>", day),
            ("PageSize", "50".to_owned()),
        ])
        .send()
        .await
        .map_err(|e| SendError::network(&e))?;
    if !response.status().is_success() {
        return Err(SendError::Retryable {
            code: format!("http_{}", response.status().as_u16()),
            message: "Twilio's message list did not answer: cannot tell whether it was sent".into(),
            retry_after: retry_after(response.headers()),
        });
    }
    let list: MessageList = response.json().await.map_err(|e| SendError::network(&e))?;
    let earliest = since - chrono::TimeDelta::minutes(1);
    Ok(list
        .messages
        .into_iter()
        .filter(|m| m.body.as_deref() == Some(text.as_str()))
        .find(|m| {
            m.date_created
                .as_deref()
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                .is_none_or(|created| created >= earliest)
        })
        .map(|m| Accepted {
            provider_message_id: m.sid,
            status: m
                .status
                .as_deref()
                .and_then(status)
                .unwrap_or(DeliveryStatus::Queued),
        }))
}

/// Sends one message with `POST /2010-04-01/Accounts/{sid}/Messages.json`.
pub async fn send(
    client: &Client,
    config: &TwilioConfig,
    status_callback: &str,
    message: &Outgoing,
) -> Result<Accepted, SendError> {
    let prefix = match message.kind {
        ChannelKind::Whatsapp => "whatsapp:",
        ChannelKind::Sms => "",
    };
    let mut form: Vec<(&str, String)> = vec![
        ("To", format!("{prefix}{}", message.to)),
        ("From", format!("{prefix}{}", message.from)),
        ("StatusCallback", status_callback.to_owned()),
    ];
    match &message.body {
        OutgoingBody::Text(text) => form.push(("Body", text.clone())),
        OutgoingBody::Buttons { .. } => {
            return Err(SendError::permanent(
                "unsupported",
                "reply buttons through Twilio need a Content template; send the numbered text instead",
            ));
        }
        OutgoingBody::Template {
            name,
            twilio_content_sid,
            parameters,
            ..
        } => {
            let Some(content_sid) = twilio_content_sid else {
                return Err(SendError::permanent(
                    "template_missing",
                    format!(
                        "WhatsApp template {name} has no twilio_content_sid in message-templates/"
                    ),
                ));
            };
            let variables: serde_json::Map<String, serde_json::Value> = parameters
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), v.clone().into()))
                .collect();
            form.push(("ContentSid", content_sid.clone()));
            form.push((
                "ContentVariables",
                serde_json::Value::Object(variables).to_string(),
            ));
        }
    }

    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        config.api_base.as_str().trim_end_matches('/'),
        config.account_sid
    );
    let response = client
        .post(url)
        .basic_auth(&config.account_sid, Some(config.auth_token.expose()))
        .form(&form)
        .send()
        .await
        .map_err(|e| SendError::network(&e))?;
    let http_status = response.status();
    let wait = retry_after(response.headers());
    if http_status.is_success() {
        let resource: MessageResource =
            response.json().await.map_err(|e| SendError::network(&e))?;
        return Ok(Accepted {
            provider_message_id: resource.sid,
            status: resource
                .status
                .as_deref()
                .and_then(status)
                .unwrap_or(DeliveryStatus::Queued),
        });
    }
    let error: ErrorResource = response.json().await.unwrap_or(ErrorResource {
        code: None,
        message: None,
    });
    Err(Refusal {
        http_status,
        code: error.code,
        message: error.message,
        retry_after: wait,
    }
    .classify(RETRYABLE, Some(OPTED_OUT)))
}

#[cfg(test)]
mod parser_tests {
    use super::{Form, parse_message, parse_status};
    use crate::channels::{describe, fixture};

    fn form(name: &str) -> Form {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&fixture(&format!("twilio/{name}"))).unwrap();
        Form::new(&pairs)
    }

    #[test]
    fn every_message_fixture_parses_to_what_it_says() {
        for (name, expected) in [
            (
                "sms_help.form",
                r#"twilio sms from +251911000201: text "help""#,
            ),
            (
                "sms_numbered_reply.form",
                r#"twilio sms from +251911000101: text "1""#,
            ),
            (
                "sms_stop.form",
                r#"twilio sms from +251911000201: text "Stop.""#,
            ),
            (
                "sms_text.form",
                r#"twilio sms from +251911000101: text "On my way!""#,
            ),
            (
                "whatsapp_text.form",
                r#"twilio whatsapp from +251911000101: text "Done, replaced the valve""#,
            ),
            (
                "whatsapp_image.form",
                r#"twilio whatsapp from +251911000101: media image Some("Leak under the sink")"#,
            ),
        ] {
            let parsed = parse_message(&form(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(describe(&parsed), expected, "{name}");
        }
        let location = parse_message(&form("whatsapp_location.form")).unwrap();
        assert!(describe(&location).starts_with("twilio whatsapp from +251911000101: location "));
        let reply = parse_message(&form("whatsapp_reply_with_context.form")).unwrap();
        assert!(reply.reply_to.is_some(), "the quoted message is kept");
    }

    #[test]
    fn every_status_fixture_parses_with_its_error_code() {
        for (name, status, code) in [
            ("status_queued.form", "queued", None),
            ("status_sending.form", "sending", None),
            ("status_sent.form", "sent", None),
            ("status_delivered.form", "delivered", None),
            ("status_read.form", "read", None),
            ("status_failed_21610.form", "failed", Some("21610")),
            (
                "status_undelivered_30003.form",
                "undelivered",
                Some("30003"),
            ),
        ] {
            let update = parse_status(&form(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (update.status.as_str(), update.error_code.as_deref()),
                (status, code),
                "{name}"
            );
        }
    }

    #[test]
    fn a_form_without_its_addresses_is_refused_naming_what_is_missing() {
        let error = parse_message(&Form::new(&[("MessageSid".into(), "SM1".into())])).unwrap_err();
        assert!(error.contains("From"), "{error}");
        assert!(parse_status(&Form::new(&[])).is_err());
    }
}
