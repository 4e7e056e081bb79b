//! `/messages`: what was said both ways, with delivery status and errors, newest first.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::extract::Query;

use super::auth::ApiCaller;
use crate::{
    channels::{ChannelKind, Provider},
    domains::crud,
    http::AppState,
    http::error::AppResult,
    messaging::{Direction, MessageKind, MessageStatus},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_messages))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessageFilter {
    pub direction: Option<Direction>,
    pub status: Option<MessageStatus>,
    pub contact_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub before: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct MessageView {
    pub id: Uuid,
    pub direction: Direction,
    pub kind: MessageKind,
    pub channel_kind: ChannelKind,
    pub provider: Provider,
    pub contact_id: Uuid,
    pub contact_phone: String,
    pub body: Option<String>,
    pub template_key: Option<String>,
    pub locale: Option<String>,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub handled_by: Option<String>,
    pub related_entity_type: Option<String>,
    pub related_entity_id: Option<Uuid>,
    /// On an SMS sent in place of a WhatsApp message: that message.
    pub fallback_of_message_id: Option<Uuid>,
    /// Why it went by SMS: `whatsapp_failed` or `not_delivered_in_time`.
    pub fallback_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// List messages, newest first.
#[utoipa::path(get, path = "/messages", tag = "messages", params(MessageFilter),
    responses((status = 200, body = MessagePage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_messages(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<MessageFilter>,
) -> AppResult<Json<MessagePage>> {
    let limit = crud::page_size(filter.limit)?;
    let rows: Vec<MessageView> = sqlx::query_as(
        "SELECT m.id, m.direction, m.kind, ch.kind AS channel_kind, m.provider, m.contact_id,
                c.phone AS contact_phone, m.body, m.template_key, m.locale, m.status, m.error_code,
                m.error_message, m.attempts, m.handled_by, m.related_entity_type,
                m.related_entity_id, m.fallback_of_message_id, m.fallback_reason, m.created_at
         FROM messages m
         JOIN channels ch ON ch.tenant_id = m.tenant_id AND ch.id = m.channel_id
         JOIN contacts c ON c.tenant_id = m.tenant_id AND c.id = m.contact_id
         WHERE m.tenant_id = $1 AND NOT m.anonymous
           AND ($2::text IS NULL OR m.direction = $2)
           AND ($3::text IS NULL OR m.status = $3)
           AND ($4::uuid IS NULL OR m.contact_id = $4)
           AND ($5::uuid IS NULL OR m.id < $5)
         ORDER BY m.id DESC
         LIMIT $6",
    )
    .bind(caller.tenant_id)
    .bind(filter.direction)
    .bind(filter.status)
    .bind(filter.contact_id)
    .bind(filter.before)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |m| m.id);
    Ok(Json(MessagePage { items, next_cursor }))
}
