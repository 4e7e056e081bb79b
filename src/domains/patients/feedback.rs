//! Feedback people send themselves, named or anonymous, and the inbox staff work through
//! (new → reviewed → responded → closed). Anonymous feedback keeps no link to its sender that staff
//! can read: a relay token stands in for them, and an answer goes through the service.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{VoiceError, VoiceResult};
use crate::{
    audit::{self, Actor},
    error::Invalid,
    jobs::{self, Job},
    messaging::{
        Messaging,
        notify::{self, Notification, Notified},
        templates::{Templates, Values},
    },
};

crate::text_enum! {
    pub enum FeedbackStatus {
        New = "new",
        Reviewed = "reviewed",
        Responded = "responded",
        Closed = "closed",
    }
}

/// Links a piece of feedback to what it is about, when that is known.
#[derive(Debug, Clone, Default)]
pub struct About {
    pub patient_id: Option<Uuid>,
    pub visit_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    pub service: Option<String>,
}

/// Stores what someone wrote unprompted, under their name.
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    about: &About,
    text: &str,
    channel: &str,
    message_id: Uuid,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO feedback (tenant_id, patient_id, contact_id, visit_id, worker_id, service, comments,
             channel, message_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(about.patient_id)
    .bind(contact_id)
    .bind(about.visit_id)
    .bind(about.worker_id)
    .bind(&about.service)
    .bind(text)
    .bind(channel)
    .bind(message_id)
    .fetch_one(conn)
    .await
}

/// A relay token: short enough to read out, long enough not to guess.
fn relay_token() -> String {
    let code: String = rand::rng()
        .sample_iter(Alphanumeric)
        .filter(|c| !b"0O1lI".contains(c))
        .take(8)
        .map(|c| char::from(c).to_ascii_uppercase())
        .collect();
    format!("A-{code}")
}

/// Anonymous feedback is released to the inbox on the hour, at least this long after it was
/// written, together with everything else written anonymously in between.
const HELD_AT_LEAST: TimeDelta = TimeDelta::minutes(30);

/// Releases the organisation's held anonymous feedback (see [`hold_anonymous`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct ReleaseAnonymousFeedback {
    pub tenant_id: Uuid,
}

impl Job for ReleaseAnonymousFeedback {
    const QUEUE: &'static str = "anonymous-feedback";
}

/// The first full hour at least [`HELD_AT_LEAST`] after `now`.
fn release_time(now: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = now + HELD_AT_LEAST;
    let hour = earliest
        .duration_trunc(TimeDelta::hours(1))
        .unwrap_or(earliest);
    if hour < earliest {
        hour + TimeDelta::hours(1)
    } else {
        hour
    }
}

/// Takes feedback without the sender: the words go to a holding table with no time, no contact
/// and no audit row, and become feedback at the next release; the message that carried them
/// is blanked and marked anonymous (listed nowhere staff look). Returns the relay token.
pub async fn hold_anonymous(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    text: &str,
    channel: &str,
    message_id: Uuid,
) -> anyhow::Result<String> {
    let token = relay_token();
    sqlx::query("INSERT INTO feedback_relays (tenant_id, token, contact_id) VALUES ($1, $2, $3)")
        .bind(tenant_id)
        .bind(&token)
        .bind(contact_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO anonymous_feedback_held (tenant_id, relay_token, comments, channel)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant_id)
    .bind(&token)
    .bind(text)
    .bind(channel)
    .execute(&mut *conn)
    .await?;
    keep_apart(conn, tenant_id, message_id).await?;
    let delay = (release_time(Utc::now()) - Utc::now())
        .to_std()
        .unwrap_or_default();
    jobs::enqueue(conn, &ReleaseAnonymousFeedback { tenant_id }, delay).await?;
    Ok(token)
}

/// Marks a message of an anonymous exchange: its words are dropped (they live on the feedback
/// only) and it is listed on no staff surface.
pub async fn keep_apart(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET anonymous = true,
                body = CASE WHEN direction = 'inbound' THEN NULL ELSE body END,
                related_entity_type = NULL, related_entity_id = NULL
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves everything held for the organisation into the inbox, in random order, with random
/// ids, dated at the hour of the release. Returns how many.
pub async fn release_anonymous(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<u64> {
    let released = sqlx::query(
        "WITH held AS (DELETE FROM anonymous_feedback_held WHERE tenant_id = $1 RETURNING *)
         INSERT INTO feedback (id, tenant_id, anonymous, comments, channel, relay_token, created_at)
         SELECT gen_random_uuid(), tenant_id, true, comments, channel, relay_token, date_trunc('hour', now())
         FROM held ORDER BY random()",
    )
    .bind(tenant_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(released)
}

#[tracing::instrument(skip_all)]
pub async fn release_anonymous_feedback(
    job: ReleaseAnonymousFeedback,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, Actor::System).await?;
    // One release at a time per organisation; the jobs of the others held with it find nothing.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('anonymous-feedback'), hashtext($1::text))")
        .bind(job.tenant_id)
        .execute(&mut *tx)
        .await?;
    release_anonymous(&mut tx, job.tenant_id).await?;
    tx.commit().await?;
    Ok(())
}

/// One item in the inbox. Anonymous items show the relay token and nothing of the sender.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Feedback {
    pub id: Uuid,
    pub status: FeedbackStatus,
    pub feedback_type: String,
    pub anonymous: bool,
    pub relay_token: Option<String>,
    pub patient_id: Option<Uuid>,
    pub patient_name: Option<String>,
    pub phone: Option<String>,
    /// Friends and Family Test answer: 1 very good … 5 very poor, 6 don't know.
    pub fft_code: Option<i16>,
    /// 1–5, 5 best (6 − the FFT code); none for "don't know".
    pub rating: Option<i16>,
    pub comments: Option<String>,
    pub service: Option<String>,
    pub visit_id: Option<Uuid>,
    pub trip_id: Option<Uuid>,
    pub work_order_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub channel: String,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "
    SELECT f.id, f.status, f.feedback_type, f.anonymous, f.relay_token, f.patient_id,
           p.first_name || ' ' || p.last_name AS patient_name, c.phone, f.fft_code, f.rating, f.comments,
           f.service, f.visit_id, f.trip_id, f.work_order_id, f.worker_id,
           w.first_name || ' ' || w.last_name AS worker_name, f.channel, f.created_at
    FROM feedback f
    LEFT JOIN patients p ON p.tenant_id = f.tenant_id AND p.id = f.patient_id
    LEFT JOIN contacts c ON c.tenant_id = f.tenant_id AND c.id = f.contact_id
    LEFT JOIN workers w ON w.tenant_id = f.tenant_id AND w.id = f.worker_id";

/// The inbox: newest first, by status when asked.
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    status: Option<FeedbackStatus>,
) -> sqlx::Result<Vec<Feedback>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE f.tenant_id = $1 AND ($2::text IS NULL OR f.status = $2)
         ORDER BY f.created_at DESC LIMIT 500"
    )))
    .bind(tenant_id)
    .bind(status)
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> VoiceResult<Feedback> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE f.tenant_id = $1 AND f.id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(VoiceError::NotFound("feedback"))
}

/// Marks an item reviewed or closed (responding marks it responded).
pub async fn set_status(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    status: FeedbackStatus,
) -> VoiceResult<Feedback> {
    if status == FeedbackStatus::New || status == FeedbackStatus::Responded {
        return Err(Invalid::field(
            "status",
            "set reviewed or closed; an item becomes responded when it is answered",
        )
        .into());
    }
    let done = sqlx::query("UPDATE feedback SET status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(VoiceError::NotFound("feedback"));
    }
    get(conn, tenant_id, id).await
}

/// A reply to what someone wrote, sent through the service; for anonymous feedback, through its
/// relay, so nobody sees the number.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub text: String,
}

pub async fn respond(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    response: &Response,
    actor: Actor,
) -> VoiceResult<Feedback> {
    let text =
        crate::types::required_text(&response.text, 900).map_err(|m| Invalid::field("text", m))?;
    let (contact, relayed): (Option<Uuid>, bool) = sqlx::query_as(
        "SELECT COALESCE(f.contact_id, r.contact_id), f.relay_token IS NOT NULL
         FROM feedback f LEFT JOIN feedback_relays r ON r.tenant_id = f.tenant_id AND r.token = f.relay_token
         WHERE f.tenant_id = $1 AND f.id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(VoiceError::NotFound("feedback"))?;
    let Some(contact) = contact else {
        return Err(VoiceError::Conflict(
            "this feedback came with no way to answer it".into(),
        ));
    };
    let tenant: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    let values = Values::new().with("tenant", &tenant).with("text", &text);
    let mut message = Notification::new(tenant_id, contact, "feedback_response", values);
    // An answer through a relay is not filed under the feedback: the message row carries the
    // number, and the link would name the sender.
    message.related = (!relayed).then_some(("feedback", id));
    let Notified::Queued(message_id) = notify::notify(conn, templates, &message).await? else {
        return Err(VoiceError::Conflict(
            "no channel of this organisation can reach this person".into(),
        ));
    };
    if relayed {
        keep_apart(conn, tenant_id, message_id).await?;
    }
    let user = match actor {
        Actor::User(id) => Some(id),
        _ => None,
    };
    // A relayed answer's message names the number: the response keeps no link to it.
    sqlx::query(
        "INSERT INTO feedback_responses (tenant_id, feedback_id, responder_user_id, body, channel, message_id, relayed)
         SELECT $1, $2, $3, $4, ch.kind, CASE WHEN $6 THEN NULL ELSE $5 END, $6
         FROM messages m JOIN channels ch ON ch.tenant_id = m.tenant_id AND ch.id = m.channel_id
         WHERE m.tenant_id = $1 AND m.id = $5",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(user)
    .bind(&text)
    .bind(message_id)
    .bind(relayed)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE feedback SET status = 'responded' WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    get(conn, tenant_id, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_feedback_is_released_on_the_first_full_hour_half_an_hour_on() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        for (written, released) in [
            ("2026-12-08T10:00:00Z", "2026-12-08T11:00:00Z"),
            ("2026-12-08T10:29:59Z", "2026-12-08T11:00:00Z"),
            ("2026-12-08T10:30:00Z", "2026-12-08T11:00:00Z"),
            ("2026-12-08T10:30:01Z", "2026-12-08T12:00:00Z"),
            ("2026-12-08T23:45:00Z", "2026-12-09T01:00:00Z"),
        ] {
            assert_eq!(release_time(at(written)), at(released), "{written}");
        }
    }
}
