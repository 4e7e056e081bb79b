//! A patient's data on request (GDPR articles 15, 17 and 20): everything held about them as one
//! document, and erasure that keeps what the organisation must keep. Every request is recorded
//! in `gdpr_data_requests` with who asked and when it was fulfilled; only admins fulfil them.

pub mod erasure;
pub mod export;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no such patient")]
    NotFound,
    #[error("this patient's data was erased on {0}: there is nothing left to export or erase")]
    AlreadyErased(DateTime<Utc>),
    #[error(transparent)]
    Invalid(#[from] crate::error::Invalid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type PrivacyResult<T> = Result<T, PrivacyError>;

/// What a data request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A copy of their data (article 15), as a readable summary.
    Access,
    /// Their data in a machine-readable form (article 20).
    Portability,
    /// Their data removed (article 17).
    Erasure,
}

/// One recorded request.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DataRequest {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub kind: RequestKind,
    pub status: String,
    /// `user` or `api_token`, with its id.
    pub requested_by_kind: String,
    pub requested_by_id: Option<Uuid>,
    pub requested_at: DateTime<Utc>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
    /// What an erasure changed: rows per table, files removed.
    pub outcome: Option<serde_json::Value>,
}

/// The ids of the patient's contacts (`$1` tenant, `$2` patient), as a parenthesised query: those
/// linked to them, those with their number linked to nobody yet (it wrote before it was theirs
/// on record, or its message is not routed yet), and the caller of a trip of theirs who is on
/// no other record (a neighbour who rang for the ambulance: their name and number are on the
/// trip only).
const THEIR_CONTACTS: &str = "(SELECT c.id FROM contacts c
     WHERE c.tenant_id = $1
       AND (c.patient_id = $2
            OR (c.patient_id IS NULL AND c.worker_id IS NULL
                AND c.phone = (SELECT p.phone FROM patients p WHERE p.tenant_id = $1 AND p.id = $2))
            OR (c.patient_id IS NULL AND c.worker_id IS NULL
                AND EXISTS (SELECT 1 FROM trips t WHERE t.tenant_id = $1 AND t.patient_id = $2
                               AND (t.contact_id = c.id OR t.contact_phone = c.phone))
                AND NOT EXISTS (SELECT 1 FROM trips o WHERE o.tenant_id = $1
                                   AND (o.contact_id = c.id OR o.contact_phone = c.phone)
                                   AND o.patient_id IS DISTINCT FROM $2))))";

const REQUEST_COLUMNS: &str = "id, patient_id, kind, status, requested_by_kind, requested_by_id, requested_at, fulfilled_at, notes, outcome";

/// The organisation's requests, newest first; one patient's when `patient_id` is given.
pub async fn requests(
    pool: &PgPool,
    tenant_id: Uuid,
    patient_id: Option<Uuid>,
) -> PrivacyResult<Vec<DataRequest>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM gdpr_data_requests
          WHERE tenant_id = $1 AND ($2::uuid IS NULL OR patient_id = $2)
          ORDER BY requested_at DESC, id DESC LIMIT 500"
    )))
    .bind(tenant_id)
    .bind(patient_id)
    .fetch_all(pool)
    .await?)
}

/// Records a request, fulfilled now, in the caller's transaction (whose actor asked for it).
async fn record_fulfilled(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    patient_id: Uuid,
    kind: RequestKind,
    requested_by: crate::audit::Actor,
    notes: Option<&str>,
) -> PrivacyResult<Uuid> {
    let (by_kind, by_id) = match requested_by {
        crate::audit::Actor::User(id) => ("user", Some(id)),
        crate::audit::Actor::ApiToken(id) => ("api_token", Some(id)),
        crate::audit::Actor::Cli => ("cli", None),
        _ => ("system", None),
    };
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO gdpr_data_requests (tenant_id, patient_id, kind, status, requested_by_kind, requested_by_id, fulfilled_at, notes)
         VALUES ($1, $2, $3, 'completed', $4, $5, now(), $6) RETURNING id",
    )
    .bind(tenant_id)
    .bind(patient_id)
    .bind(kind)
    .bind(by_kind)
    .bind(by_id)
    .bind(notes)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// The patient, locked, refusing one already erased.
async fn patient_for_request(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    patient_id: Uuid,
) -> PrivacyResult<()> {
    let erased: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT erased_at FROM patients WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(patient_id)
    .fetch_optional(conn)
    .await?;
    match erased {
        None => Err(PrivacyError::NotFound),
        Some(Some(at)) => Err(PrivacyError::AlreadyErased(at)),
        Some(None) => Ok(()),
    }
}
