//! The send job: one outbound message, one provider call, an honest status afterwards.
//!
//! Retries are scheduled here rather than by the queue, so the delay can follow exponential
//! backoff with jitter and honour `Retry-After`, and each attempt is counted on the message.

use super::{MessageKind, MessageStatus};
use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Messaging, consent, templates::Templates};
use crate::{
    audit,
    channels::{
        Accepted, Button, DeliveryStatus, Outgoing, OutgoingBody, Provider, SendError,
        providers::{self, Earlier},
    },
    jobs::{self, Job},
    types::PhoneNumber,
};

#[derive(Debug, Serialize, Deserialize)]
pub struct SendMessage {
    pub tenant_id: Uuid,
    pub message_id: Uuid,
}

impl Job for SendMessage {
    const QUEUE: &'static str = "send-message";
    const YIELDS_TO_INGEST: bool = false;
}

/// Longest wait between attempts, whatever the backoff or the provider says.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// Exponential backoff with jitter: base × 2^(attempt-1), capped, then a random 50–100 % of it
/// so that messages failed together do not retry together. A longer `Retry-After` wins.
pub fn retry_delay(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_DELAY);
    let jittered = exponential.mul_f64(rand::rng().random_range(0.5..=1.0));
    jittered.max(retry_after.unwrap_or_default()).min(MAX_DELAY)
}

#[derive(sqlx::FromRow)]
struct Pending {
    status: MessageStatus,
    provider_message_id: Option<String>,
    attempts: i32,
    kind: MessageKind,
    body: Option<String>,
    secret: bool,
    essential: bool,
    sending_at: Option<chrono::DateTime<chrono::Utc>>,
    buttons: Option<serde_json::Value>,
    locale: Option<String>,
    whatsapp_template: Option<String>,
    template_params: Option<serde_json::Value>,
    contact_id: Uuid,
    channel_id: Uuid,
    provider: String,
    channel_kind: String,
    from_number: String,
    from_ref: Option<String>,
    to_number: String,
    /// Marked as being sent by the statement that read it (it was queued, never handed over).
    claimed: bool,
}

#[derive(Deserialize)]
struct TemplateParams {
    parameters: Vec<String>,
    twilio_content_sid: Option<String>,
    /// The approved language chosen at notify time; older rows: the message's locale.
    language: Option<String>,
}

fn outgoing(p: &Pending, templates: &Templates) -> anyhow::Result<Outgoing> {
    let text = p.body.clone().unwrap_or_default();
    let body = match p.kind.as_str() {
        "template" => {
            let params: TemplateParams =
                serde_json::from_value(p.template_params.clone().unwrap_or_default())?;
            OutgoingBody::Template {
                name: p.whatsapp_template.clone().unwrap_or_default(),
                language: params
                    .language
                    .or_else(|| p.locale.clone())
                    .unwrap_or_else(|| "en".into()),
                parameters: params.parameters,
                twilio_content_sid: params.twilio_content_sid,
            }
        }
        "interactive" => {
            let buttons: Vec<Button> =
                serde_json::from_value(p.buttons.clone().unwrap_or_default())?;
            OutgoingBody::Buttons {
                text,
                buttons,
                menu: templates.list_menu(p.locale.as_deref().unwrap_or("en")),
            }
        }
        _ => OutgoingBody::Text(text),
    };
    Ok(Outgoing {
        kind: p.channel_kind.parse().map_err(anyhow::Error::msg)?,
        to: PhoneNumber::parse(&p.to_number).map_err(anyhow::Error::msg)?,
        from: PhoneNumber::parse(&p.from_number).map_err(anyhow::Error::msg)?,
        from_ref: p.from_ref.clone(),
        body,
        secret: p.secret,
    })
}

/// Paces sends per sending number across every process, so one busy number cannot trip a
/// provider's throughput limit: a burst of up to a second's worth goes at once, then one every
/// 1/rate seconds (GCRA, the state in `channel_send_pace`).
pub async fn wait_for_turn(
    messaging: &Messaging,
    tenant_id: Uuid,
    channel_id: Uuid,
) -> sqlx::Result<()> {
    let per_second = messaging.config.outbound_per_number_per_second.max(1);
    let wait: f64 = sqlx::query_scalar(
        "INSERT INTO channel_send_pace (tenant_id, channel_id, tat)
         VALUES ($1, $2, clock_timestamp() + make_interval(secs => 1.0 / $3))
         ON CONFLICT ON CONSTRAINT channel_send_pace_pkey DO UPDATE
             SET tat = GREATEST(channel_send_pace.tat, clock_timestamp()) + make_interval(secs => 1.0 / $3)
         RETURNING GREATEST(0, extract(epoch FROM tat - clock_timestamp())::float8 - 1.0)",
    )
    .bind(tenant_id)
    .bind(channel_id)
    .bind(f64::from(per_second))
    .fetch_one(&messaging.pool)
    .await?;
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    Ok(())
}

/// Records the provider's acceptance. The provider has said yes, so this must not fail the job
/// (a re-run would send again): a lost connection or a busy pool is retried on fresh connections
/// for up to a minute. Only then does it give up, and a re-run asks the provider before sending
/// (see [`providers::earlier_attempt`]).
///
/// No connection is held across the provider call: that would tie the pool to the provider's
/// latency, and with a slow provider webhooks would wait for connections.
async fn record_accepted(
    messaging: &Messaging,
    job: &SendMessage,
    provider: Provider,
    accepted: &Accepted,
) -> Result<(), BoxDynError> {
    // The provider's answer can only move us forward from 'sending'.
    let status = match accepted.status {
        DeliveryStatus::Queued => DeliveryStatus::Sending,
        other => other,
    };
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let written = async {
            // An explicit transaction, committed before this returns: a pooled connection can
            // come back from a future cancelled mid-BEGIN (a worker dropped at shutdown) still
            // inside a transaction, and an autocommit write on it was lost when the process
            // exited (seen as a reply accepted and logged, never recorded, after SIGTERM).
            let mut tx = messaging.pool.begin().await?;
            sqlx::query(
            "UPDATE messages SET provider_message_id = $3,
                 status = CASE WHEN message_status_rank($4) > message_status_rank(status) THEN $4 ELSE status END,
                 sent_at = CASE WHEN $4 IN ('sent', 'delivered') THEN now() ELSE sent_at END,
                 delivered_at = CASE WHEN $4 = 'delivered' THEN now() ELSE delivered_at END,
                 error_code = NULL, error_message = NULL,
                 -- Delivered: the secret is of no more use here. The console keeps it, so
                 -- `fieldline simulate` can show a developer the code.
                 secret_body = CASE WHEN $5 THEN secret_body END,
                 secret_template_params = CASE WHEN $5 THEN secret_template_params END
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(job.tenant_id)
        .bind(job.message_id)
        .bind(&accepted.provider_message_id)
        .bind(status.as_str())
        .bind(messaging.config.console_only())
        .execute(&mut *tx)
        .await?;
            tx.commit().await
        }
        .await;
        match written {
            Ok(_) => {
                // Statuses the provider reported before this id was written.
                if let Err(error) = super::ingest::replay_early_statuses(
                    &messaging.pool,
                    provider,
                    &accepted.provider_message_id,
                )
                .await
                {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "early statuses not applied yet: kept for the next status"
                    );
                }
                return Ok(());
            }
            Err(error) if started.elapsed() < Duration::from_secs(60) => {
                tracing::warn!(%error, provider_message_id = %accepted.provider_message_id, "recording the provider's acceptance failed: trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(%error, provider_message_id = %accepted.provider_message_id, "the provider's acceptance could not be recorded for a minute");
                return Err(error.into());
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(message_id = %job.message_id, tenant_id = %job.tenant_id))]
pub async fn send_message(
    job: SendMessage,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let pool = &messaging.pool;
    let mut tx = pool.begin().await?;
    let pending: Option<Pending> = sqlx::query_as(
        "WITH pending AS (
             SELECT m.status, m.provider_message_id, m.attempts, m.kind,
                    COALESCE(m.secret_body, m.body) AS body, m.secret_body IS NOT NULL AS secret,
                    m.buttons, m.locale, m.whatsapp_template,
                    COALESCE(m.secret_template_params, m.template_params) AS template_params,
                    m.contact_id, m.channel_id, m.essential, m.sending_at,
                    ch.provider, ch.kind AS channel_kind, ch.phone_number AS from_number,
                    ch.provider_ref AS from_ref, c.phone AS to_number
             FROM messages m
             JOIN channels ch ON ch.tenant_id = m.tenant_id AND ch.id = m.channel_id
             JOIN contacts c ON c.tenant_id = m.tenant_id AND c.id = m.contact_id
             WHERE m.tenant_id = $1 AND m.id = $2 AND m.direction = 'outbound'
             FOR UPDATE OF m),
         -- The usual case, a message never handed over, is marked as being sent in the same
         -- round trip; any other is decided on below.
         claimed AS (
             UPDATE messages m SET status = 'sending', sending_at = now(),
                    attempts = pending.attempts + 1, next_attempt_at = NULL
             FROM pending
             WHERE m.tenant_id = $1 AND m.id = $2
               AND pending.status = 'queued' AND pending.provider_message_id IS NULL
             RETURNING m.id)
         SELECT pending.*, EXISTS (SELECT 1 FROM claimed) AS claimed FROM pending",
    )
    .bind(job.tenant_id)
    .bind(job.message_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(pending) = pending else {
        tracing::warn!("send job for a message that does not exist");
        return Ok(());
    };
    // A re-run after the provider accepted it must not send it twice.
    if pending.provider_message_id.is_some()
        || !matches!(
            pending.status,
            MessageStatus::Queued | MessageStatus::Sending
        )
    {
        tracing::info!(status = %pending.status, "already handed to the provider: not sending again");
        return Ok(());
    }
    let provider: Provider = pending.provider.parse()?;
    let message = outgoing(&pending, &messaging.templates);

    // 'sending' here means an earlier attempt called the provider and never recorded the answer
    // (the process died, or the database went away): ask before sending again.
    if pending.status == MessageStatus::Sending
        && let Ok(message) = &message
    {
        let since = pending.sending_at.unwrap_or_else(chrono::Utc::now);
        match providers::earlier_attempt(
            &messaging.http,
            &messaging.config,
            provider,
            message,
            since,
        )
        .await
        {
            Ok(Earlier::Accepted(accepted)) => {
                tracing::info!(provider_message_id = %accepted.provider_message_id, "the provider already had it: recorded, not sent again");
                tx.commit().await?;
                return record_accepted(&messaging, &job, provider, &accepted).await;
            }
            Ok(Earlier::NotSent) => {}
            // A duplicate beats a missed dispatch; a courtesy message is better lost than doubled.
            Ok(Earlier::Unknown) if pending.essential => {
                tracing::warn!(
                    "whether the earlier attempt got through cannot be known: essential, so sending again"
                );
            }
            Ok(Earlier::Unknown) => {
                sqlx::query(
                    "UPDATE messages SET status = 'failed', failed_at = now(), error_code = 'outcome_unknown',
                         error_message = 'an earlier attempt may have been delivered; not sent again, as it is not essential'
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(job.tenant_id)
                .bind(job.message_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(());
            }
            // The provider could not be asked now: try again later rather than guess.
            Err(error) => {
                return Err(
                    format!("cannot tell whether the earlier attempt was sent: {error:?}").into(),
                );
            }
        }
    }

    let attempt = pending.attempts + 1;
    if !pending.claimed {
        sqlx::query("UPDATE messages SET status = 'sending', sending_at = now(), attempts = $3, next_attempt_at = NULL WHERE tenant_id = $1 AND id = $2")
            .bind(job.tenant_id)
            .bind(job.message_id)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    let result = match message {
        Ok(message) => {
            wait_for_turn(&messaging, job.tenant_id, pending.channel_id).await?;
            providers::send(&messaging.http, &messaging.config, provider, &message).await
        }
        Err(e) => Err(SendError::permanent("unsendable", format!("{e:#}"))),
    };

    let error = match result {
        Ok(accepted) => {
            record_accepted(&messaging, &job, provider, &accepted).await?;
            metrics::counter!("outbound_messages_total", "provider" => provider.as_str(), "outcome" => "accepted").increment(1);
            tracing::info!(provider_message_id = %accepted.provider_message_id, attempt, "provider accepted the message");
            return Ok(());
        }
        Err(error) => error,
    };
    // Not sent: if this cannot be recorded, the re-run asks the provider and sends it then.
    let mut tx = pool.begin().await?;
    match error {
        SendError::Retryable {
            code,
            message,
            retry_after,
        } if (attempt as u32) < messaging.config.send_max_attempts => {
            let delay = retry_delay(
                messaging.config.send_retry_base,
                attempt as u32,
                retry_after,
            );
            sqlx::query(
                "UPDATE messages SET status = 'queued', error_code = $3, error_message = $4,
                     next_attempt_at = now() + $5 * interval '1 millisecond'
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.message_id)
            .bind(&code)
            .bind(&message)
            .bind(delay.as_millis() as f64)
            .execute(&mut *tx)
            .await?;
            jobs::enqueue(&mut tx, &job, delay).await?;
            metrics::counter!("outbound_messages_total", "provider" => provider.as_str(), "outcome" => "retry").increment(1);
            tracing::warn!(%code, %message, attempt, delay_ms = delay.as_millis() as u64, "send failed, will retry");
        }
        error => {
            let (code, message, opted_out) = match error {
                SendError::Permanent {
                    code,
                    message,
                    opted_out,
                } => (code, message, opted_out),
                SendError::Retryable { code, message, .. } => (
                    code,
                    format!("gave up after {attempt} attempts: {message}"),
                    false,
                ),
            };
            sqlx::query(
                "UPDATE messages SET status = 'failed', failed_at = now(), error_code = $3, error_message = $4
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.message_id)
            .bind(&code)
            .bind(&message)
            .execute(&mut *tx)
            .await?;
            // WhatsApp failed for good: the SMS planned beside it goes now.
            super::fallback::fall_back(
                &mut tx,
                job.tenant_id,
                job.message_id,
                super::fallback::Reason::WhatsappFailed,
            )
            .await?;
            if opted_out {
                audit::act_as(&mut tx, audit::Actor::System).await?;
                consent::opt_out(
                    &mut tx,
                    job.tenant_id,
                    pending.contact_id,
                    pending.channel_id,
                    consent::Source::Provider,
                    None,
                )
                .await?;
            }
            metrics::counter!("outbound_messages_total", "provider" => provider.as_str(), "outcome" => "failed").increment(1);
            tracing::warn!(%code, %message, attempt, "send failed for good");
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let base = Duration::from_secs(10);
        for _ in 0..50 {
            let first = retry_delay(base, 1, None);
            assert!(
                first >= Duration::from_secs(5) && first <= Duration::from_secs(10),
                "{first:?}"
            );
            let third = retry_delay(base, 3, None);
            assert!(
                third >= Duration::from_secs(20) && third <= Duration::from_secs(40),
                "{third:?}"
            );
        }
        assert_eq!(
            retry_delay(base, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(retry_delay(base, 30, None).max(MAX_DELAY), MAX_DELAY);
        assert!(retry_delay(base, 1, Some(Duration::from_secs(86_400))) <= MAX_DELAY);
    }
}
