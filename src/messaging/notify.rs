//! The one call domains use to message a person, inside their own transaction.
//!
//! It picks the channel (WhatsApp when the contact has it, else SMS), the form (free text or reply
//! buttons inside WhatsApp's 24-hour window, an approved template outside it), and the locale
//! (the contact's, else the tenant's), then writes the outbound message and pushes its send job.
//! Both commit or neither does. A WhatsApp message that could also go by SMS gets its SMS
//! planned beside it (see [`super::fallback`]).

use crate::channels::{ChannelKind, Provider};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    fallback::{self, Reason},
    send::SendMessage,
    templates::{Rendered, Templates, Values},
};
use crate::{
    channels::Button,
    jobs::{self, Job},
};

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
    /// Urgent (an urgent dispatch): the key's shorter SMS fallback deadline applies.
    pub urgent: bool,
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
            urgent: false,
            related: None,
            via_channel: None,
            caused_by: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    Queued(Uuid),
    /// A non-essential message to a contact who opted out of every usable channel (or, for a
    /// patient, has no consent recorded for any).
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
    kind: ChannelKind,
    provider: Provider,
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
                courtesy_declined($1, $2, ch.id) AS opted_out
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

    for (position, candidate) in candidates.iter().enumerate() {
        if candidate.opted_out && !essential {
            continue;
        }
        let in_window = candidate
            .last_inbound_at
            .is_some_and(|at| now - at < WHATSAPP_WINDOW);
        let has_buttons = !rendered.buttons.is_empty();
        let form = |rendered: &Rendered| -> anyhow::Result<_> {
            Ok(Some(match candidate.kind.as_str() {
                // A provider that needs a Content template for buttons gets numbered choices.
                "whatsapp"
                    if in_window
                        && has_buttons
                        && !candidate.provider.sends_free_form_buttons() =>
                {
                    ("text", templates.sms_body(rendered)?, None)
                }
                "whatsapp" if in_window && has_buttons => {
                    ("interactive", rendered.text.clone(), None)
                }
                "whatsapp" if in_window => ("text", rendered.text.clone(), None),
                "whatsapp" => match &rendered.whatsapp_template {
                    // Some providers send a template only by their own id for it.
                    Some(template)
                        if !candidate.provider.templates_need_content_sid()
                            || template.2.is_some() =>
                    {
                        ("template", rendered.text.clone(), Some(template.clone()))
                    }
                    // Outside the window with no approved template: WhatsApp would refuse it,
                    // so the next channel (SMS) takes it at once.
                    _ => return Ok(None),
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
        let message_id = queue(
            conn,
            &Outbound {
                tenant_id: n.tenant_id,
                contact_id: n.contact_id,
                channel_id: candidate.channel_id,
                provider: candidate.provider.as_str(),
                kind,
                body: &body,
                buttons: has_buttons.then(|| json!(rendered.buttons)),
                template_key: Some(n.key),
                locale: Some(&rendered.locale),
                essential,
                whatsapp_template: template.as_ref().map(|(name, _, _)| name.as_str()),
                template_params: template_json(&template),
                related: n.related,
                caused_by: n.caused_by,
                secret_body: secret_body.as_deref(),
                secret_template_params: template_json(&secret_template),
                fallback_of: None,
            },
        )
        .await?;
        // WhatsApp first: the SMS stands by in case it fails or is not delivered in time.
        let sms = candidates.iter().skip(position + 1).find(|c| {
            candidate.kind == ChannelKind::Whatsapp
                && c.kind == ChannelKind::Sms
                && (essential || !c.opted_out)
        });
        if let Some(sms) = sms {
            let text = |rendered: &Rendered| templates.sms_body(rendered);
            let (body, secret_body) = match &readable {
                Some(readable) => (text(readable)?, Some(text(&rendered)?)),
                None => (text(&rendered)?, None),
            };
            fallback::plan(
                conn,
                n.tenant_id,
                message_id,
                &fallback::Plan {
                    channel_id: sms.channel_id,
                    body: &body,
                    secret_body: secret_body.as_deref(),
                    after: templates.fallback_after(n.key, n.urgent),
                },
            )
            .await?;
        }
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

/// One outbound message row, ready to send.
pub(super) struct Outbound<'a> {
    pub tenant_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub provider: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
    pub buttons: Option<serde_json::Value>,
    pub template_key: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub essential: bool,
    pub whatsapp_template: Option<&'a str>,
    pub template_params: Option<serde_json::Value>,
    pub related: Option<(&'a str, Uuid)>,
    pub caused_by: Option<Uuid>,
    pub secret_body: Option<&'a str>,
    pub secret_template_params: Option<serde_json::Value>,
    /// The WhatsApp message this SMS stands in for, and why.
    pub fallback_of: Option<(Uuid, Reason)>,
}

/// [`queue`]'s one statement. Every reply goes through it; the send job's insert was a round trip
/// of its own. The job's arguments are built here as `SendMessage` serialises them, as ingest
/// builds `RouteInbound`'s.
static QUEUE_OUTBOUND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH conversation AS (
             INSERT INTO conversations (tenant_id, contact_id, channel_id, last_outbound_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT ON CONSTRAINT conversations_contact_channel_key
                 DO UPDATE SET last_outbound_at = now()
             RETURNING id),
         message AS (
             INSERT INTO messages (
                 tenant_id, conversation_id, channel_id, contact_id, direction, kind, body, buttons,
                 template_key, locale, provider, status, queued_at, essential, whatsapp_template,
                 template_params, related_entity_type, related_entity_id, caused_by_message_id,
                 secret_body, secret_template_params, fallback_of_message_id, fallback_reason)
             SELECT $1, conversation.id, $3, $2, 'outbound', $4, $5, $6, $7, $8,
                    $15, 'queued', now(), $9, $10, $11, $12, $13, $14, $16, $17, $18, $19
             FROM conversation
             RETURNING tenant_id, id),
         jobs AS ({})
         SELECT id FROM message",
        jobs::push_jobs_cte(
            "SELECT $20::text, json_build_object('tenant_id', tenant_id, 'message_id', id) FROM message",
            &jobs::due_now("$21"),
        )
    )
});

/// Writes the message (and its conversation, if new) and pushes its send job.
pub(super) async fn queue(conn: &mut PgConnection, m: &Outbound<'_>) -> anyhow::Result<Uuid> {
    let (message_id,): (Uuid,) = sqlx::query_as(sqlx::AssertSqlSafe(QUEUE_OUTBOUND.as_str()))
        .bind(m.tenant_id)
        .bind(m.contact_id)
        .bind(m.channel_id)
        .bind(m.kind)
        .bind(m.body)
        .bind(&m.buttons)
        .bind(m.template_key)
        .bind(m.locale)
        .bind(m.essential)
        .bind(m.whatsapp_template)
        .bind(&m.template_params)
        .bind(m.related.map(|(kind, _)| kind))
        .bind(m.related.map(|(_, id)| id))
        .bind(m.caused_by)
        .bind(m.provider)
        .bind(m.secret_body)
        .bind(&m.secret_template_params)
        .bind(m.fallback_of.map(|(id, _)| id))
        .bind(m.fallback_of.map(|(_, reason)| reason.as_str()))
        .bind(SendMessage::QUEUE)
        .bind(jobs::due_now_offset(&[SendMessage::QUEUE]))
        .fetch_one(&mut *conn)
        .await?;
    Ok(message_id)
}
