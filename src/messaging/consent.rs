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
    let party = Party {
        tenant_id,
        contact_id,
        channel_id,
    };
    change(conn, party, Event::OptOut, source, source_message_id).await
}

/// Whether START (or "yes") from this contact is a request to receive messages: they opted out
/// on this channel, or they are a patient who never gave consent for it.
pub async fn may_opt_in(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM opt_outs WHERE tenant_id = $1 AND contact_id = $2 AND channel_id = $3)
             OR EXISTS (SELECT 1 FROM contacts c
                        JOIN patients p ON p.tenant_id = c.tenant_id AND p.id = c.patient_id
                        JOIN channels ch ON ch.tenant_id = c.tenant_id AND ch.id = $3
                        WHERE c.tenant_id = $1 AND c.id = $2
                          AND NOT CASE ch.kind WHEN 'sms' THEN p.consent_sms ELSE p.consent_whatsapp END)",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .bind(channel_id)
    .fetch_one(conn)
    .await
}

/// Returns false when the contact was not opted out (the event is still recorded).
pub async fn opt_in(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
    source: Source,
    source_message_id: Option<Uuid>,
) -> sqlx::Result<bool> {
    let party = Party {
        tenant_id,
        contact_id,
        channel_id,
    };
    change(conn, party, Event::OptIn, source, source_message_id).await
}

#[derive(Clone, Copy)]
struct Party {
    tenant_id: Uuid,
    contact_id: Uuid,
    channel_id: Uuid,
}

#[derive(Clone, Copy)]
enum Event {
    OptOut,
    OptIn,
}

async fn change(
    conn: &mut PgConnection,
    party: Party,
    event: Event,
    source: Source,
    source_message_id: Option<Uuid>,
) -> sqlx::Result<bool> {
    let (statement, name) = match event {
        Event::OptOut => (
            "INSERT INTO opt_outs (tenant_id, contact_id, channel_id) VALUES ($1, $2, $3)
             ON CONFLICT ON CONSTRAINT opt_outs_pkey DO NOTHING",
            "opt_out",
        ),
        Event::OptIn => (
            "DELETE FROM opt_outs WHERE tenant_id = $1 AND contact_id = $2 AND channel_id = $3",
            "opt_in",
        ),
    };
    let changed = sqlx::query(statement)
        .bind(party.tenant_id)
        .bind(party.contact_id)
        .bind(party.channel_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0;
    if let (Event::OptIn, Source::Message) = (event, source) {
        // A patient who writes START asks for messages on that kind of channel: that is the
        // consent their record lacked (courtesy messages need it).
        sqlx::query(
            "UPDATE patients p SET consent_sms = p.consent_sms OR ch.kind = 'sms',
                 consent_whatsapp = p.consent_whatsapp OR ch.kind = 'whatsapp',
                 consent_recorded_at = now()
             FROM contacts c, channels ch
             WHERE c.tenant_id = $1 AND c.id = $2 AND ch.tenant_id = $1 AND ch.id = $3
               AND p.tenant_id = c.tenant_id AND p.id = c.patient_id",
        )
        .bind(party.tenant_id)
        .bind(party.contact_id)
        .bind(party.channel_id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO consent_events (tenant_id, contact_id, channel_id, event, source, source_message_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(party.tenant_id)
    .bind(party.contact_id)
    .bind(party.channel_id)
    .bind(name)
    .bind(source.as_str())
    .bind(source_message_id)
    .execute(conn)
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
