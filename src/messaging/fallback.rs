//! WhatsApp first, SMS when WhatsApp fails for good or has not delivered by a deadline.
//!
//! [`super::notify`] plans the SMS beside every WhatsApp message that could also go by SMS: the
//! channel, the SMS text and the deadline its message key sets. The plan is carried out at most
//! once, by whichever comes first of a permanent send failure, a `failed`/`undelivered` status
//! from the provider and the deadline job; a delivery or a read settles it without an SMS.

use super::MessageStatus;
use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    Messaging,
    notify::{self, Outbound},
};
use crate::{
    audit,
    jobs::{self, Job},
};

/// Why a message went again by SMS, as stored on the SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    WhatsappFailed,
    NotDeliveredInTime,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhatsappFailed => "whatsapp_failed",
            Self::NotDeliveredInTime => "not_delivered_in_time",
        }
    }
}

/// Comes due at the message's fallback deadline.
#[derive(Debug, Serialize, Deserialize)]
pub struct FallbackDeadline {
    pub tenant_id: Uuid,
    pub message_id: Uuid,
}

impl Job for FallbackDeadline {
    const QUEUE: &'static str = "sms-fallback";
}

/// The SMS that stands by for a WhatsApp message.
pub(super) struct Plan<'a> {
    pub channel_id: Uuid,
    pub body: &'a str,
    pub secret_body: Option<&'a str>,
    pub after: Option<Duration>,
}

/// Writes the plan for `message_id` and books its deadline, in the notifying transaction.
pub(super) async fn plan(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
    plan: &Plan<'_>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO message_fallbacks (tenant_id, message_id, channel_id, body, secret_body, due_at)
         VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond')",
    )
    .bind(tenant_id)
    .bind(message_id)
    .bind(plan.channel_id)
    .bind(plan.body)
    .bind(plan.secret_body)
    .bind(plan.after.map(|after| after.as_millis() as f64))
    .execute(&mut *conn)
    .await?;
    if let Some(after) = plan.after {
        jobs::enqueue(
            conn,
            &FallbackDeadline {
                tenant_id,
                message_id,
            },
            after,
        )
        .await?;
    }
    Ok(())
}

/// No SMS will be needed (WhatsApp delivered it, or SMS may not be used): the plan is closed.
pub(super) async fn settle_without_sms(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE message_fallbacks SET decided_at = now(), secret_body = NULL
         WHERE tenant_id = $1 AND message_id = $2 AND decided_at IS NULL",
    )
    .bind(tenant_id)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Pending {
    channel_id: Uuid,
    body: String,
    secret_body: Option<String>,
    status: MessageStatus,
    contact_id: Uuid,
    template_key: Option<String>,
    locale: Option<String>,
    essential: bool,
    buttons: Option<serde_json::Value>,
    related_entity_type: Option<String>,
    related_entity_id: Option<Uuid>,
    caused_by_message_id: Option<Uuid>,
    provider: String,
    usable: bool,
}

/// Sends `message_id` again by SMS, if it has a plan not yet carried out and WhatsApp has not
/// delivered it. Returns the SMS message's id.
#[tracing::instrument(skip(conn))]
pub async fn fall_back(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
    reason: Reason,
) -> anyhow::Result<Option<Uuid>> {
    let pending: Option<Pending> = sqlx::query_as(
        "SELECT f.channel_id, f.body, f.secret_body, m.status, m.contact_id, m.template_key,
                m.locale, m.essential, m.buttons, m.related_entity_type, m.related_entity_id,
                m.caused_by_message_id, ch.provider,
                ch.active AND (m.essential OR NOT courtesy_declined(f.tenant_id, m.contact_id, ch.id)) AS usable
         FROM message_fallbacks f
         JOIN messages m ON m.tenant_id = f.tenant_id AND m.id = f.message_id
         JOIN channels ch ON ch.tenant_id = f.tenant_id AND ch.id = f.channel_id
         WHERE f.tenant_id = $1 AND f.message_id = $2 AND f.decided_at IS NULL
         FOR UPDATE OF f",
    )
    .bind(tenant_id)
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(pending) = pending else {
        return Ok(None);
    };
    let reason = match pending.status.as_str() {
        "delivered" | "read" => {
            settle_without_sms(conn, tenant_id, message_id).await?;
            return Ok(None);
        }
        "failed" | "undelivered" => Reason::WhatsappFailed,
        _ => reason,
    };
    if !pending.usable {
        tracing::info!(
            "the SMS channel is inactive or the person opted out of it: no SMS in its place"
        );
        settle_without_sms(conn, tenant_id, message_id).await?;
        return Ok(None);
    }
    if pending.status == MessageStatus::Queued {
        // Still waiting for a retry: WhatsApp gives way, so the person gets one copy.
        sqlx::query(
            "UPDATE messages SET status = 'failed', failed_at = now(), error_code = 'replaced_by_sms',
                 error_message = 'not delivered in time: sent by SMS instead'
             WHERE tenant_id = $1 AND id = $2 AND status = 'queued'",
        )
        .bind(tenant_id)
        .bind(message_id)
        .execute(&mut *conn)
        .await?;
    }
    let sms_id = notify::queue(
        conn,
        &Outbound {
            tenant_id,
            contact_id: pending.contact_id,
            channel_id: pending.channel_id,
            provider: &pending.provider,
            kind: "text",
            body: &pending.body,
            buttons: pending.buttons,
            template_key: pending.template_key.as_deref(),
            locale: pending.locale.as_deref(),
            essential: pending.essential,
            whatsapp_template: None,
            template_params: None,
            related: pending
                .related_entity_type
                .as_deref()
                .zip(pending.related_entity_id),
            caused_by: pending.caused_by_message_id,
            secret_body: pending.secret_body.as_deref(),
            secret_template_params: None,
            fallback_of: Some((message_id, reason)),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE message_fallbacks SET sms_message_id = $3, reason = $4, decided_at = now(), secret_body = NULL
         WHERE tenant_id = $1 AND message_id = $2",
    )
    .bind(tenant_id)
    .bind(message_id)
    .bind(sms_id)
    .bind(reason.as_str())
    .execute(&mut *conn)
    .await?;
    metrics::counter!("sms_fallbacks_total", "reason" => reason.as_str()).increment(1);
    tracing::info!(
        reason = reason.as_str(),
        %sms_id,
        "WhatsApp did not get through: sent again by SMS"
    );
    Ok(Some(sms_id))
}

/// The deadline job: an undelivered WhatsApp message goes again by SMS.
#[tracing::instrument(skip_all, fields(message_id = %job.message_id, tenant_id = %job.tenant_id))]
pub async fn fallback_deadline(
    job: FallbackDeadline,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    fall_back(
        &mut tx,
        job.tenant_id,
        job.message_id,
        Reason::NotDeliveredInTime,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
