//! Feedback people send themselves, named or anonymous, and the inbox staff work through
//! (new → reviewed → responded → closed). Anonymous feedback keeps no link to its sender that staff
//! can read: a relay token stands in for them, and an answer goes through the service.

use chrono::{DateTime, Utc};
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{VoiceError, VoiceResult};
use crate::{
    audit::Actor,
    error::Invalid,
    messaging::{
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

/// Stores feedback without the sender: no contact, no patient, and the message's words moved off
/// the message row (which carries the number) onto the feedback alone.
pub async fn record_anonymous(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    text: &str,
    channel: &str,
    message_id: Uuid,
) -> sqlx::Result<String> {
    let token = relay_token();
    sqlx::query("INSERT INTO feedback_relays (tenant_id, token, contact_id) VALUES ($1, $2, $3)")
        .bind(tenant_id)
        .bind(&token)
        .bind(contact_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO feedback (tenant_id, anonymous, comments, channel, relay_token)
         VALUES ($1, true, $2, $3, $4)",
    )
    .bind(tenant_id)
    .bind(text)
    .bind(channel)
    .bind(&token)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE messages SET body = '(anonymous feedback: kept apart from this number)'
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(message_id)
    .execute(&mut *conn)
    .await?;
    Ok(token)
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
    let user = match actor {
        Actor::User(id) => Some(id),
        _ => None,
    };
    sqlx::query(
        "INSERT INTO feedback_responses (tenant_id, feedback_id, responder_user_id, body, channel, message_id, relayed)
         SELECT $1, $2, $3, $4, ch.kind, $5, $6
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
