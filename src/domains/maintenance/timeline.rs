//! Everything that happened to a work order, oldest first: status changes, messages both ways
//! with their delivery status, comments and photos.

use super::state::Status;
use crate::{
    channels::ChannelKind,
    messaging::{Direction, MessageStatus},
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum Event {
    Status {
        from: Option<Status>,
        to: Status,
        /// "Abebe Kebede (worker)", "Liya (coordinator)", "system", "requester".
        actor: String,
        channel: String,
        note: Option<String>,
        location: Option<(f64, f64)>,
    },
    Message {
        inbound: bool,
        /// The person at the other end.
        party: String,
        channel_kind: ChannelKind,
        body: Option<String>,
        status: MessageStatus,
        error: Option<String>,
        /// Sent by SMS in place of a WhatsApp message: why (`whatsapp_failed`,
        /// `not_delivered_in_time`).
        fallback_reason: Option<String>,
    },
    Comment {
        author: String,
        body: String,
    },
    Photo {
        media_id: Option<Uuid>,
        uploaded_by: String,
        content_type: Option<String>,
        /// The file is on disk and can be shown.
        ready: bool,
        error: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub event: Event,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    created_at: DateTime<Utc>,
    from_status: Option<Status>,
    to_status: Status,
    actor: String,
    channel: String,
    note: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    created_at: DateTime<Utc>,
    direction: Direction,
    party: String,
    channel_kind: ChannelKind,
    body: Option<String>,
    status: MessageStatus,
    error: Option<String>,
    fallback_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CommentRow {
    created_at: DateTime<Utc>,
    author: String,
    body: String,
}

#[derive(sqlx::FromRow)]
struct PhotoRow {
    created_at: DateTime<Utc>,
    media_id: Option<Uuid>,
    uploaded_by: String,
    content_type: Option<String>,
    ready: bool,
    error: Option<String>,
}

/// The work order's timeline. The caller has checked the work order belongs to `tenant_id`;
/// every query is scoped by it all the same.
pub async fn timeline(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    work_order_id: Uuid,
) -> sqlx::Result<Vec<Entry>> {
    let statuses: Vec<StatusRow> = sqlx::query_as(
        "SELECT h.created_at, h.from_status, h.to_status,
                CASE h.actor_kind
                    WHEN 'worker' THEN COALESCE(w.first_name || ' ' || w.last_name || ' (worker)', 'worker')
                    WHEN 'coordinator' THEN COALESCE(COALESCE(u.full_name, u.email) || ' (coordinator)', 'coordinator')
                    ELSE h.actor_kind END AS actor,
                h.channel, h.note, h.latitude::float8 AS latitude, h.longitude::float8 AS longitude
         FROM work_order_status_history h
         LEFT JOIN workers w ON w.tenant_id = h.tenant_id AND w.id = h.actor_worker_id
         LEFT JOIN users u ON u.tenant_id = h.tenant_id AND u.id = h.actor_user_id
         WHERE h.tenant_id = $1 AND h.work_order_id = $2",
    )
    .bind(tenant_id)
    .bind(work_order_id)
    .fetch_all(&mut *conn)
    .await?;
    let messages: Vec<MessageRow> = sqlx::query_as(
        "SELECT m.created_at, m.direction, COALESCE(c.display_name || ' ' || c.phone, c.phone) AS party,
                ch.kind AS channel_kind,
                -- A tap or a shared place has no text: say what it was.
                COALESCE(m.body, CASE WHEN m.interactive_reply_id IS NOT NULL THEN 'tapped: ' || m.interactive_reply_id
                                      ELSE '(' || m.kind || ')' END) AS body,
                m.status,
                concat_ws(': ', m.error_code, m.error_message) AS error, m.fallback_reason
         FROM messages m
         JOIN contacts c ON c.tenant_id = m.tenant_id AND c.id = m.contact_id
         JOIN channels ch ON ch.tenant_id = m.tenant_id AND ch.id = m.channel_id
         WHERE m.tenant_id = $1 AND m.related_entity_type = 'work_order' AND m.related_entity_id = $2",
    )
    .bind(tenant_id)
    .bind(work_order_id)
    .fetch_all(&mut *conn)
    .await?;
    let comments: Vec<CommentRow> = sqlx::query_as(
        "SELECT cm.created_at,
                CASE cm.author_kind
                    WHEN 'worker' THEN COALESCE(w.first_name || ' ' || w.last_name, 'worker')
                    WHEN 'coordinator' THEN COALESCE(u.full_name, u.email, 'coordinator')
                    ELSE 'requester' END AS author,
                cm.body
         FROM work_order_comments cm
         LEFT JOIN workers w ON w.tenant_id = cm.tenant_id AND w.id = cm.author_worker_id
         LEFT JOIN users u ON u.tenant_id = cm.tenant_id AND u.id = cm.author_user_id
         WHERE cm.tenant_id = $1 AND cm.work_order_id = $2",
    )
    .bind(tenant_id)
    .bind(work_order_id)
    .fetch_all(&mut *conn)
    .await?;
    let photos: Vec<PhotoRow> = sqlx::query_as(
        "SELECT a.created_at, a.media_id,
                CASE a.uploaded_by_kind
                    WHEN 'worker' THEN COALESCE(w.first_name || ' ' || w.last_name, 'worker')
                    ELSE a.uploaded_by_kind END AS uploaded_by,
                COALESCE(mm.content_type, a.content_type) AS content_type,
                (mm.fetched_at IS NOT NULL) AS ready, mm.fetch_error AS error
         FROM work_order_attachments a
         LEFT JOIN workers w ON w.tenant_id = a.tenant_id AND w.id = a.uploaded_by_worker_id
         LEFT JOIN message_media mm ON mm.tenant_id = a.tenant_id AND mm.id = a.media_id
         WHERE a.tenant_id = $1 AND a.work_order_id = $2",
    )
    .bind(tenant_id)
    .bind(work_order_id)
    .fetch_all(&mut *conn)
    .await?;

    let mut entries: Vec<Entry> = statuses
        .into_iter()
        .map(|r| Entry {
            at: r.created_at,
            event: Event::Status {
                from: r.from_status,
                to: r.to_status,
                actor: r.actor,
                channel: r.channel,
                note: r.note,
                location: r.latitude.zip(r.longitude),
            },
        })
        .chain(messages.into_iter().map(|r| Entry {
            at: r.created_at,
            event: Event::Message {
                inbound: r.direction == Direction::Inbound,
                party: r.party,
                channel_kind: r.channel_kind,
                body: r.body,
                status: r.status,
                error: r.error.filter(|e| !e.is_empty()),
                fallback_reason: r.fallback_reason,
            },
        }))
        .chain(comments.into_iter().map(|r| Entry {
            at: r.created_at,
            event: Event::Comment {
                author: r.author,
                body: r.body,
            },
        }))
        .chain(photos.into_iter().map(|r| Entry {
            at: r.created_at,
            event: Event::Photo {
                media_id: r.media_id,
                uploaded_by: r.uploaded_by,
                content_type: r.content_type,
                ready: r.ready,
                error: r.error,
            },
        }))
        .collect();
    // Stable: rows written in one transaction keep the order they were queried in.
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}
