//! Storing an inbound message: its contact and conversation, the message, its media and the jobs
//! that route it and fetch the media, in one statement. Webhooks do not call this: they keep the
//! message in the `inbox` and answer, and the inbox drainer stores it (see `inbox`).

use super::MessageStatus;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{consent, fallback, media::FetchMedia, router::RouteInbound};
use crate::{
    audit,
    channels::{
        ChannelKind, Content, DeliveryStatus, Inbound, Provider, ReceivingNumber, StatusUpdate,
    },
    jobs::{self, Job},
};

/// What happened to one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New {
        tenant_id: Uuid,
        message_id: Uuid,
    },
    /// The provider retried: the first copy stands and nothing changed.
    Duplicate,
    /// No tenant has the receiving number: acknowledged and logged, not processed.
    UnknownNumber,
}

/// One statement: the receiving channel (its
/// tenant), the contact, the conversation, the message, its media and the jobs that route it and
/// fetch the media, taking locks in the order every writer does (contact first). A provider's
/// retry finds the earlier copy and writes nothing. (It was three statements; folding them into
/// one did not measurably change ingest throughput, see docs/performance.md.)
static STORE_INBOUND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH actor AS (
             -- Who the audit log names for a contact this message creates: the service, in the
             -- webhook's request. Set here, in the one statement, rather than a round trip more.
             SELECT set_config('fieldline.actor_kind', 'system', true),
                    set_config('fieldline.actor_id', '', true),
                    set_config('fieldline.request_id', coalesce($24, ''), true),
                    set_config('fieldline.ip', coalesce($25, ''), true)),
         channel AS (
             SELECT tenant_id, id FROM channels, actor
             WHERE provider = $1 AND kind = $2 AND active AND (phone_number = $3 OR provider_ref = $4)
             ORDER BY created_at LIMIT 1),
         earlier AS (
             SELECT 1 FROM messages WHERE provider = $1 AND provider_message_id = $14),
         contact AS (
             INSERT INTO contacts (tenant_id, phone, whatsapp_enabled, profile_name)
             SELECT tenant_id, $5, $6, $7 FROM channel WHERE NOT EXISTS (SELECT 1 FROM earlier)
             ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO UPDATE SET
                 whatsapp_enabled = contacts.whatsapp_enabled OR EXCLUDED.whatsapp_enabled,
                 profile_name = COALESCE(EXCLUDED.profile_name, contacts.profile_name)
             RETURNING tenant_id, id),
         conversation AS (
             INSERT INTO conversations (tenant_id, contact_id, channel_id, last_inbound_at)
             SELECT contact.tenant_id, contact.id, channel.id, $27 FROM contact, channel
             ON CONFLICT ON CONSTRAINT conversations_contact_channel_key DO UPDATE SET
                 last_inbound_at = GREATEST(conversations.last_inbound_at, EXCLUDED.last_inbound_at)
             RETURNING tenant_id, id, contact_id, channel_id),
         message AS (
             INSERT INTO messages (
                 tenant_id, conversation_id, channel_id, contact_id, direction, kind, body,
                 latitude, longitude, location_label, interactive_reply_id, provider,
                 provider_message_id, reply_to_provider_message_id, sender_profile_name, status,
                 received_at)
             SELECT tenant_id, id, channel_id, contact_id, 'inbound', $8, $9, $10, $11, $12, $13, $1,
                    $14, $15, $7, 'received', $27
             FROM conversation
             -- Two copies of one message at the same instant: the second writes nothing here.
             ON CONFLICT ON CONSTRAINT messages_provider_message_key DO NOTHING
             RETURNING tenant_id, id),
         media AS (
             INSERT INTO message_media (tenant_id, message_id, media_kind, provider_media_id,
                 provider_url, content_type, caption, file_name)
             SELECT message.tenant_id, message.id, item.kind, item.media_id, item.url,
                    item.content_type, $16, item.file_name
             FROM message, unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::text[])
                 AS item (kind, media_id, url, content_type, file_name)
             RETURNING tenant_id, id),
         jobs AS ({})
         SELECT (SELECT tenant_id FROM channel), (SELECT id FROM message)",
        jobs::push_jobs_cte(
            "SELECT $22::text, json_build_object('tenant_id', tenant_id, 'message_id', id) FROM message
             UNION ALL
             SELECT $23::text, json_build_object('tenant_id', tenant_id, 'media_id', id) FROM media",
            &jobs::due_now("$26")
        )
    )
});

/// When a message reached us, and through which request (named in the audit log of a contact
/// it creates).
#[derive(Debug, Clone)]
pub struct Arrival {
    pub received_at: DateTime<Utc>,
    pub origin: audit::Origin,
}

impl Arrival {
    /// Now, in the current request.
    pub fn now() -> Self {
        Self {
            received_at: Utc::now(),
            origin: audit::origin(),
        }
    }
}

/// Stores `message` in its own transaction (the console, which has no webhook to answer).
pub async fn store_now(pool: &PgPool, message: &Inbound) -> anyhow::Result<Stored> {
    let mut tx = pool.begin().await?;
    let stored = store(&mut tx, message, &Arrival::now()).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Stores `message` on the caller's transaction. The statement is best planned once per
/// connection (`plan_cache_mode = force_generic_plan`, see `inbox::begin_draining`).
#[tracing::instrument(skip_all, fields(provider = %message.provider, provider_message_id = %message.provider_message_id))]
pub async fn store(
    conn: &mut PgConnection,
    message: &Inbound,
    arrival: &Arrival,
) -> anyhow::Result<Stored> {
    let (phone, provider_ref) = match &message.to {
        ReceivingNumber::Phone(p) => (Some(p.as_str()), None),
        ReceivingNumber::ProviderRef(r) => (None, Some(r.as_str())),
    };
    let (body, location, reply_id, media, caption) = match &message.content {
        Content::Text(text) => (Some(text.clone()), None, None, &[][..], None),
        Content::Location { at, label } => (
            label.clone(),
            Some((*at, label.clone())),
            None,
            &[][..],
            None,
        ),
        Content::Media { items, caption } => (
            caption.clone(),
            None,
            None,
            items.as_slice(),
            caption.clone(),
        ),
        Content::Reply { id, title } => (title.clone(), None, Some(id.clone()), &[][..], None),
        Content::Reaction { emoji } => (Some(emoji.clone()), None, None, &[][..], None),
        Content::Unsupported(kind) => (Some(format!("[{kind}]")), None, None, &[][..], None),
    };
    let column = |f: fn(&crate::channels::Media) -> Option<String>| -> Vec<Option<String>> {
        media.iter().map(f).collect()
    };
    let origin = &arrival.origin;
    let stored: (Option<Uuid>, Option<Uuid>) =
        sqlx::query_as(sqlx::AssertSqlSafe(STORE_INBOUND.as_str()))
            .bind(message.provider.as_str())
            .bind(message.kind.as_str())
            .bind(phone)
            .bind(provider_ref)
            .bind(message.from.as_str())
            .bind(message.kind == ChannelKind::Whatsapp)
            .bind(&message.profile_name)
            .bind(message.content.kind())
            .bind(body)
            .bind(location.as_ref().map(|(c, _)| c.latitude))
            .bind(location.as_ref().map(|(c, _)| c.longitude))
            .bind(location.and_then(|(_, l)| l))
            .bind(reply_id)
            .bind(&message.provider_message_id)
            .bind(&message.reply_to)
            .bind(&caption)
            .bind(column(|m| Some(m.kind.as_str().to_owned())))
            .bind(column(|m| m.provider_media_id.clone()))
            .bind(column(|m| m.url.clone()))
            .bind(column(|m| m.content_type.clone()))
            .bind(column(|m| m.file_name.clone()))
            .bind(RouteInbound::QUEUE)
            .bind(FetchMedia::QUEUE)
            .bind(&origin.request_id)
            .bind(origin.ip.map(|ip| ip.to_string()))
            .bind(jobs::due_now_offset(if media.is_empty() {
                &[RouteInbound::QUEUE]
            } else {
                &[RouteInbound::QUEUE, FetchMedia::QUEUE]
            }))
            .bind(arrival.received_at)
            .fetch_one(conn)
            .await?;
    let (tenant_id, message_id) = match stored {
        (None, _) => {
            tracing::warn!(to = ?message.to, "message for a number no tenant has: acknowledged, not processed");
            metrics::counter!("inbound_messages_total", "provider" => message.provider.as_str(), "outcome" => "unknown_number").increment(1);
            return Ok(Stored::UnknownNumber);
        }
        // The provider retried: the first copy stands and nothing changed.
        (Some(_), None) => return Ok(Stored::Duplicate),
        (Some(tenant_id), Some(message_id)) => (tenant_id, message_id),
    };
    metrics::counter!("inbound_messages_total", "provider" => message.provider.as_str(), "outcome" => "stored").increment(1);
    Ok(Stored::New {
        tenant_id,
        message_id,
    })
}

/// What a status callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    Moved,
    /// Older news than what we have (a late `sent` after `delivered`): kept the newer status.
    Stale,
    /// No message of ours has that id (yet): acknowledged so the provider stops retrying, and
    /// kept in case the send job records that id in a moment.
    Unknown,
}

/// Applies a provider's status, forward only. Per-status times and error codes are kept even
/// when the status itself does not move. A status for an id we have not recorded yet is kept and
/// applied when the send job records it.
#[tracing::instrument(skip_all, fields(provider = %update.provider, provider_message_id = %update.provider_message_id, status = update.status.as_str()))]
pub async fn apply_status(pool: &PgPool, update: &StatusUpdate) -> anyhow::Result<StatusApplied> {
    let mut tx = pool.begin().await?;
    let applied = apply_in(&mut tx, update).await?;
    if applied == StatusApplied::Unknown {
        sqlx::query(
            "INSERT INTO early_statuses (provider, provider_message_id, status, error_code, error_message, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(update.provider.as_str())
        .bind(&update.provider_message_id)
        .bind(update.status.as_str())
        .bind(&update.error_code)
        .bind(&update.error_message)
        .bind(update.at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // The send job may have recorded the id just after we looked: then apply it now.
        replay_early_statuses(pool, update.provider, &update.provider_message_id).await?;
        return Ok(StatusApplied::Unknown);
    }
    tx.commit().await?;
    Ok(applied)
}

/// Early statuses no message claimed within a day were never ours.
pub async fn prune_early_statuses(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM early_statuses WHERE received_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct EarlyStatus {
    status: MessageStatus,
    error_code: Option<String>,
    error_message: Option<String>,
    at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Applies the statuses that arrived before the message's provider id was recorded.
pub async fn replay_early_statuses(
    pool: &PgPool,
    provider: Provider,
    provider_message_id: &str,
) -> anyhow::Result<()> {
    // Nearly always none: one read instead of a transaction per send.
    let waiting: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM early_statuses WHERE provider = $1 AND provider_message_id = $2)",
    )
    .bind(provider.as_str())
    .bind(provider_message_id)
    .fetch_one(pool)
    .await?;
    if !waiting {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let early: Vec<EarlyStatus> = sqlx::query_as(
            "DELETE FROM early_statuses e
             WHERE e.provider = $1 AND e.provider_message_id = $2
               AND EXISTS (SELECT 1 FROM messages m WHERE m.provider = $1 AND m.provider_message_id = $2
                                                       AND m.direction = 'outbound')
             RETURNING e.status, e.error_code, e.error_message, e.at",
        )
        .bind(provider.as_str())
        .bind(provider_message_id)
        .fetch_all(&mut *tx)
        .await?;
    for early in early {
        let Some(status) = DeliveryStatus::parse(early.status.as_str()) else {
            continue;
        };
        let update = StatusUpdate {
            provider,
            provider_message_id: provider_message_id.to_owned(),
            status,
            at: early.at,
            error_code: early.error_code,
            error_message: early.error_message,
        };
        apply_in(&mut tx, &update).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    update: &StatusUpdate,
) -> anyhow::Result<StatusApplied> {
    let row: Option<(Uuid, Uuid, Uuid, Uuid, bool)> = sqlx::query_as(
        "UPDATE messages SET
             status = CASE WHEN message_status_rank($3) > message_status_rank(status) THEN $3 ELSE status END,
             error_code = COALESCE($4, error_code),
             error_message = COALESCE($5, error_message),
             sent_at = CASE WHEN $3 = 'sent' THEN COALESCE(sent_at, $6) ELSE sent_at END,
             delivered_at = CASE WHEN $3 = 'delivered' THEN COALESCE(delivered_at, $6) ELSE delivered_at END,
             read_at = CASE WHEN $3 = 'read' THEN COALESCE(read_at, $6) ELSE read_at END,
             failed_at = CASE WHEN $3 IN ('failed', 'undelivered') THEN COALESCE(failed_at, $6) ELSE failed_at END
         WHERE provider = $1 AND provider_message_id = $2 AND direction = 'outbound'
         RETURNING id, tenant_id, contact_id, channel_id, status = $3",
    )
    .bind(update.provider.as_str())
    .bind(&update.provider_message_id)
    .bind(update.status.as_str())
    .bind(&update.error_code)
    .bind(&update.error_message)
    .bind(update.at.unwrap_or_else(chrono::Utc::now))
    .fetch_optional(&mut **tx)
    .await?;
    let Some((message_id, tenant_id, contact_id, channel_id, moved)) = row else {
        tracing::info!("status for a message we have not recorded (yet): kept for a day");
        return Ok(StatusApplied::Unknown);
    };
    if update.status == DeliveryStatus::Failed
        && update.error_code.as_deref() == Some(consent::TWILIO_OPTED_OUT)
    {
        audit::act_as(&mut *tx, audit::Actor::System).await?;
        consent::opt_out(
            tx,
            tenant_id,
            contact_id,
            channel_id,
            consent::Source::Provider,
            None,
        )
        .await?;
    }
    if moved {
        match update.status {
            DeliveryStatus::Delivered | DeliveryStatus::Read => {
                fallback::settle_without_sms(tx, tenant_id, message_id).await?
            }
            DeliveryStatus::Failed | DeliveryStatus::Undelivered => {
                fallback::fall_back(tx, tenant_id, message_id, fallback::Reason::WhatsappFailed)
                    .await?;
            }
            _ => {}
        }
    }
    Ok(if moved {
        StatusApplied::Moved
    } else {
        StatusApplied::Stale
    })
}
