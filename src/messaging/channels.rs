//! A tenant's numbers: added from the CLI or the admin API, looked up by every inbound webhook.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    channels::{ChannelKind, Provider},
    error::{FieldErrors, Invalid},
    types::PhoneNumber,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// `twilio`, `meta` or `console`.
    pub provider: String,
    /// `sms` or `whatsapp`.
    pub kind: String,
    /// The number in E.164, e.g. +251911000000.
    pub phone_number: String,
    /// Meta's phone number id (required for `meta`).
    pub provider_id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub provider: Provider,
    pub kind: ChannelKind,
    pub phone_number: String,
    pub provider_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Why a channel cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(
        "this number or provider id is already in use and cannot be added: numbers on the shared provider accounts are assigned by the operator (`fieldline channel add`)"
    )]
    InUse,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, provider, kind, phone_number, provider_ref AS provider_id, display_name, active, created_at";

pub async fn add(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    input: &NewChannel,
) -> Result<Channel, ChannelError> {
    let mut errors = FieldErrors::new();
    let provider = errors.check("provider", input.provider.parse::<Provider>());
    let kind = errors.check("kind", input.kind.parse::<ChannelKind>());
    let phone = errors.check("phone_number", PhoneNumber::parse(&input.phone_number));
    let provider_id = input
        .provider_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(provider) = provider {
        for (field, problem) in provider.channel_problems(kind, provider_id) {
            errors.add(field, problem);
        }
    }
    errors.into_result()?;
    let (provider, kind, phone) = (provider.unwrap(), kind.unwrap(), phone.unwrap());
    let channel: Channel = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO channels (tenant_id, provider, kind, phone_number, provider_ref, display_name)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(tenant_id)
    .bind(provider.as_str())
    .bind(kind.as_str())
    .bind(phone.as_str())
    .bind(provider_id)
    .bind(&input.display_name)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match &e {
        // The same answer whoever holds it (this organisation or another), so the refusal
        // says nothing about other organisations' numbers.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => ChannelError::InUse,
        _ => ChannelError::from(e),
    })?;
    Ok(channel)
}

pub async fn list(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Vec<Channel>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 ORDER BY created_at"
    )))
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

/// A number no channel uses yet, for a new organisation's console channel: numbers belong to
/// one organisation each, so a suggestion must not be one the demo (or anyone) already has.
pub async fn unused_console_number(conn: &mut PgConnection) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "SELECT number FROM generate_series(1, 99999) n,
                LATERAL (SELECT '+2519119' || lpad(n::text, 5, '0') AS number) candidate
         WHERE NOT EXISTS (SELECT 1 FROM channels WHERE phone_number = candidate.number)
         ORDER BY n LIMIT 1",
    )
    .fetch_one(conn)
    .await
}
