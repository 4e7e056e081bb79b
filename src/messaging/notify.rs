//! The one call domains use to message a person, inside their own transaction.
//!
//! It picks the channel (WhatsApp when the contact has it, else SMS), the form (free text or reply
//! buttons inside WhatsApp's 24-hour window, an approved template outside it), and the locale
//! (the contact's, else the tenant's), then writes the outbound message and pushes its send job.
//! Both commit or neither does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    send::SendMessage,
    templates::{Rendered, Templates, Values},
};
use crate::{channels::Button, jobs};

/// WhatsApp lets a business write freely for this long after the person's last message.
const WHATSAPP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[derive(Debug, Clone)]
pub struct Notification {
    pub tenant_id: Uuid,
    pub contact_id: Uuid,
    pub key: &'static str,
    pub values: Values,
    /// Replaces the key's own buttons (choices known only at run time).
    pub buttons: Option<Vec<Button>>,
    /// Reminders and surveys are not essential: an opted-out contact does not get them.
    pub essential: bool,
    /// What the message is about, for the timeline of a work order, visit or trip.
    pub related: Option<(&'static str, Uuid)>,
    /// Answer on this channel (a reply goes back where the person wrote).
    pub via_channel: Option<Uuid>,
    /// The inbound message this answers.
    pub caused_by: Option<Uuid>,
}

impl Notification {
    pub fn new(tenant_id: Uuid, contact_id: Uuid, key: &'static str, values: Values) -> Self {
        Self {
            tenant_id,
            contact_id,
            key,
            values,
            buttons: None,
            essential: true,
            related: None,
            via_channel: None,
            caused_by: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    Queued(Uuid),
    /// A non-essential message to a contact who opted out of every usable channel.
    OptedOut,
    /// The tenant has no channel that can reach this contact.
    NoChannel,
}

#[derive(sqlx::FromRow)]
struct Recipient {
    whatsapp: bool,
    locale: Option<String>,
    party_locale: Option<String>,
    tenant_locale: String,
}

#[derive(sqlx::FromRow)]
struct Candidate {
    channel_id: Uuid,
    kind: String,
    provider: String,
    last_inbound_at: Option<DateTime<Utc>>,
    opted_out: bool,
}

#[tracing::instrument(skip_all, fields(key = notification.key, contact_id = %notification.contact_id))]
pub async fn notify(
    conn: &mut PgConnection,
    templates: &Templates,
    notification: &Notification,
) -> anyhow::Result<Notified> {
    let n = notification;
    let recipient: Recipient = sqlx::query_as(
        "SELECT c.whatsapp_enabled OR COALESCE(w.whatsapp_enabled, false) AS whatsapp,
                c.preferred_locale AS locale,
                COALESCE(w.preferred_locale, p.preferred_locale) AS party_locale,
                t.default_locale AS tenant_locale
         FROM contacts c
         JOIN tenants t ON t.id = c.tenant_id
         LEFT JOIN workers w ON w.tenant_id = c.tenant_id AND w.id = c.worker_id
         LEFT JOIN patients p ON p.tenant_id = c.tenant_id AND p.id = c.patient_id
         WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(n.tenant_id)
    .bind(n.contact_id)
    .fetch_one(&mut *conn)
    .await?;

    // Best first: the channel asked for, WhatsApp if the contact has it, the conversation the
    // contact last wrote in, the oldest channel.
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT ch.id AS channel_id, ch.kind, ch.provider, conv.last_inbound_at,
                EXISTS (SELECT 1 FROM opt_outs o WHERE o.contact_id = $2 AND o.channel_id = ch.id) AS opted_out
         FROM channels ch
         LEFT JOIN conversations conv ON conv.channel_id = ch.id AND conv.contact_id = $2
         WHERE ch.tenant_id = $1 AND ch.active AND (ch.kind = 'sms' OR $3)
         ORDER BY ch.id = $4 DESC NULLS LAST, ch.kind = 'whatsapp' DESC,
                  conv.last_inbound_at DESC NULLS LAST, ch.created_at",
    )
    .bind(n.tenant_id)
    .bind(n.contact_id)
    .bind(recipient.whatsapp)
    .bind(n.via_channel)
    .fetch_all(&mut *conn)
    .await?;
    if candidates.is_empty() {
        tracing::warn!("no channel can reach this contact");
        return Ok(Notified::NoChannel);
    }

    let locale = templates.pick_locale([
        recipient.locale.as_deref(),
        recipient.party_locale.as_deref(),
        Some(recipient.tenant_locale.as_str()),
    ]);
    let rendered = templates.render(n.key, &locale, &n.values, n.buttons.clone())?;
    // The template file says whether the key is a courtesy; a caller can only make it less so.
    let essential = n.essential && templates.essential(n.key);
    // A message with a secret is stored as people may read it back (masked); the real text
    // travels beside it only until a provider accepts it.
    let secret = templates.secret_params(n.key);
    let readable = if secret.is_empty() {
        None
    } else {
        Some(templates.render(n.key, &locale, &n.values.masked(secret), n.buttons.clone())?)
    };
    let language = templates.template_language(n.key, &rendered.locale, &recipient.tenant_locale);
    let now = Utc::now();

    for candidate in &candidates {
        if candidate.opted_out && !essential {
            continue;
        }
        let in_window = candidate
            .last_inbound_at
            .is_some_and(|at| now - at < WHATSAPP_WINDOW);
        let has_buttons = !rendered.buttons.is_empty();
        let form = |rendered: &Rendered| -> anyhow::Result<_> {
            Ok(Some(match candidate.kind.as_str() {
                // Twilio needs a Content template for buttons: it gets the numbered choices instead.
                "whatsapp" if in_window && has_buttons && candidate.provider == "twilio" => {
                    ("text", templates.sms_body(rendered)?, None)
                }
                "whatsapp" if in_window && has_buttons => {
                    ("interactive", rendered.text.clone(), None)
                }
                "whatsapp" if in_window => ("text", rendered.text.clone(), None),
                "whatsapp" => match &rendered.whatsapp_template {
                    Some(template) => ("template", rendered.text.clone(), Some(template.clone())),
                    // Outside the window with no approved template: WhatsApp would refuse it.
                    None => return Ok(None),
                },
                _ => ("text", templates.sms_body(rendered)?, None),
            }))
        };
        let Some((kind, real_body, real_template)) = form(&rendered)? else {
            continue;
        };
        // Stored for reading: the masked form when there is a secret, with the real one beside it.
        let (body, template, secret_body, secret_template) = match &readable {
            Some(readable) => {
                let (_, body, template) = form(readable)?.expect("same form as the real text");
                (body, template, Some(real_body), real_template)
            }
            None => (real_body, real_template, None, None),
        };
        let template_json = |template: &Option<(String, Vec<String>, Option<String>)>| {
            template.as_ref().map(|(_, params, sid)| {
                json!({ "parameters": params, "twilio_content_sid": sid, "language": language })
            })
        };
        let buttons = has_buttons.then(|| json!(rendered.buttons));
        let (message_id,): (Uuid,) = sqlx::query_as(
            "WITH conversation AS (
                 INSERT INTO conversations (tenant_id, contact_id, channel_id, last_outbound_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT ON CONSTRAINT conversations_contact_channel_key
                     DO UPDATE SET last_outbound_at = now()
                 RETURNING id)
             INSERT INTO messages (
                 tenant_id, conversation_id, channel_id, contact_id, direction, kind, body, buttons,
                 template_key, locale, provider, status, queued_at, essential, whatsapp_template,
                 template_params, related_entity_type, related_entity_id, caused_by_message_id,
                 secret_body, secret_template_params)
             SELECT $1, conversation.id, $3, $2, 'outbound', $4, $5, $6, $7, $8,
                    $15, 'queued', now(), $9, $10, $11, $12, $13, $14, $16, $17
             FROM conversation
             RETURNING id",
        )
        .bind(n.tenant_id)
        .bind(n.contact_id)
        .bind(candidate.channel_id)
        .bind(kind)
        .bind(body)
        .bind(buttons)
        .bind(n.key)
        .bind(&rendered.locale)
        .bind(essential)
        .bind(template.as_ref().map(|(name, _, _)| name.clone()))
        .bind(template_json(&template))
        .bind(n.related.map(|(kind, _)| kind))
        .bind(n.related.map(|(_, id)| id))
        .bind(n.caused_by)
        .bind(&candidate.provider)
        .bind(secret_body)
        .bind(template_json(&secret_template))
        .fetch_one(&mut *conn)
        .await?;
        jobs::enqueue(
            conn,
            &SendMessage {
                tenant_id: n.tenant_id,
                message_id,
            },
            Duration::ZERO,
        )
        .await?;
        return Ok(Notified::Queued(message_id));
    }
    if candidates.iter().all(|c| c.opted_out) {
        tracing::info!("contact opted out: non-essential message not sent");
        Ok(Notified::OptedOut)
    } else {
        tracing::warn!("outside the WhatsApp window, no approved template and no SMS channel");
        Ok(Notified::NoChannel)
    }
}
