//! Opt-out state per contact and channel, with every change kept as a consent event.

use sqlx::PgConnection;
use uuid::Uuid;

/// Twilio's error when the recipient has replied STOP to the sending number.
pub const TWILIO_OPTED_OUT: &str = "21610";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Message,
    Provider,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Provider => "provider",
        }
    }
}

/// Returns false when the contact was already opted out (the event is still recorded).
pub async fn opt_out(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
    source: Source,
    source_message_id: Option<Uuid>,
) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "INSERT INTO opt_outs (tenant_id, contact_id, channel_id) VALUES ($1, $2, $3)
         ON CONFLICT ON CONSTRAINT opt_outs_pkey DO NOTHING",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .bind(channel_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    record(
        conn,
        tenant_id,
        contact_id,
        channel_id,
        "opt_out",
        source,
        source_message_id,
    )
    .await?;
    Ok(changed)
}

/// Returns false when the contact was not opted out.
pub async fn opt_in(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
    source: Source,
    source_message_id: Option<Uuid>,
) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "DELETE FROM opt_outs WHERE tenant_id = $1 AND contact_id = $2 AND channel_id = $3",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .bind(channel_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    record(
        conn,
        tenant_id,
        contact_id,
        channel_id,
        "opt_in",
        source,
        source_message_id,
    )
    .await?;
    Ok(changed)
}

pub async fn is_opted_out(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM opt_outs WHERE tenant_id = $1 AND contact_id = $2 AND channel_id = $3)",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .bind(channel_id)
    .fetch_one(conn)
    .await
}

async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
    event: &str,
    source: Source,
    source_message_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO consent_events (tenant_id, contact_id, channel_id, event, source, source_message_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .bind(channel_id)
    .bind(event)
    .bind(source.as_str())
    .bind(source_message_id)
    .execute(conn)
    .await?;
    Ok(())
}
