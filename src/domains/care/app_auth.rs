//! The caregivers' app signs in by phone: a 6-digit code by WhatsApp or SMS, exchanged for a
//! bearer token tied to the worker. Codes and tokens are kept only as SHA-256 hashes.

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    audit::{self, Actor},
    auth,
    error::Invalid,
    messaging::{
        contacts,
        notify::{self, Notification},
        templates::{Templates, Values},
    },
    types::PhoneNumber,
};

const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);
const MAX_ATTEMPTS: i32 = 5;
const TOKEN_LIFETIME: TimeDelta = TimeDelta::days(30);
/// Codes per number, and requests per address, in any ten minutes.
const CODES_PER_PHONE: i64 = 3;
const REQUESTS_PER_ADDRESS: i64 = 20;

/// Why a caregiver app sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("too many sign-in requests from this address: wait ten minutes")]
    TooManyFromAddress,
    #[error(
        "three codes were sent to this number in the last ten minutes: use the latest, or wait"
    )]
    TooManyCodes,
    #[error("five wrong codes: this code no longer works, ask for a new one")]
    CodeUsedUp,
    #[error("wrong code: {0} attempts left")]
    WrongCode(i32),
    #[error(
        "no code is waiting for this number, or it expired (codes last 10 minutes): ask for a new one with POST /api/v1/app/login"
    )]
    NoCodeWaiting,
    #[error("worker not found")]
    UnknownWorker,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn code_hash(code_id: Uuid, code: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(code_id.as_bytes());
    hasher.update(code.as_bytes());
    hasher.finalize().to_vec()
}

/// The one caregiver this number signs in as (`organisation` picks one when several share it).
/// Only active caregivers and ambulance crew use the app (crew to report where their vehicle
/// is): a maintenance worker gets nothing here.
async fn worker_for(
    conn: &mut PgConnection,
    phone: &PhoneNumber,
    organisation: Option<&str>,
) -> Result<Option<(Uuid, Uuid)>, SignInError> {
    let found: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT w.tenant_id, w.id FROM workers w JOIN tenants t ON t.id = w.tenant_id
         WHERE w.phone = $1 AND w.deleted_at IS NULL AND w.status = 'active'
           AND w.kinds && ARRAY['caregiver', 'ambulance_crew'] AND t.deleted_at IS NULL
           AND ($2::text IS NULL OR t.slug = $2)",
    )
    .bind(phone.as_str())
    .bind(organisation)
    .fetch_all(&mut *conn)
    .await?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Invalid::field(
            "organisation",
            "this number works for several organisations: give the organisation's short name",
        )
        .into()),
    }
}

/// Sends a new code to the worker with this number. Unknown numbers get the same answer and no
/// message, so the endpoint does not tell who works where.
#[tracing::instrument(skip_all)]
pub async fn request_code(
    pool: &PgPool,
    templates: &Templates,
    phone: &str,
    organisation: Option<&str>,
    address: Option<std::net::IpAddr>,
) -> Result<(), SignInError> {
    let phone = PhoneNumber::parse(phone).map_err(|e| Invalid::field("phone", e))?;
    if let Some(address) = address {
        // Counted in its own statement, committed whatever happens next.
        let recent: i64 = sqlx::query_scalar(
            "WITH counted AS (INSERT INTO app_login_requests (requested_from) VALUES ($1::inet))
             SELECT count(*) FROM app_login_requests WHERE requested_from = $1::inet AND created_at > now() - interval '10 minutes'",
        )
        .bind(address.to_string())
        .fetch_one(pool)
        .await?;
        // The row this request added is not visible to the statement that added it.
        if recent >= REQUESTS_PER_ADDRESS {
            return Err(SignInError::TooManyFromAddress);
        }
    }
    let mut tx = pool.begin().await?;
    let Some((tenant_id, worker_id)) = worker_for(&mut tx, &phone, organisation).await? else {
        return decoy_requested(tx, &phone).await;
    };
    audit::act_as(&mut tx, Actor::Worker(worker_id)).await?;
    // One request at a time per worker, so the count below is exact.
    sqlx::query("SELECT id FROM workers WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
        .bind(tenant_id)
        .bind(worker_id)
        .execute(&mut *tx)
        .await?;
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app_login_codes WHERE tenant_id = $1 AND worker_id = $2 AND created_at > now() - interval '10 minutes'",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .fetch_one(&mut *tx)
    .await?;
    if recent >= CODES_PER_PHONE {
        return Err(SignInError::TooManyCodes);
    }
    // Only the newest code works.
    sqlx::query(
        "UPDATE app_login_codes SET consumed_at = now() WHERE tenant_id = $1 AND worker_id = $2 AND consumed_at IS NULL",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .execute(&mut *tx)
    .await?;
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app_login_codes (id, tenant_id, worker_id, code_hash, requested_from, expires_at)
         VALUES ($1, $2, $3, $4, $5::inet, $6)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(worker_id)
    .bind(code_hash(id, &code))
    .bind(address.map(|a| a.to_string()))
    .bind(Utc::now() + CODE_LIFETIME)
    .execute(&mut *tx)
    .await?;
    let contact = contacts::for_worker(&mut tx, tenant_id, worker_id).await?;
    let notification = Notification::new(
        tenant_id,
        contact,
        "app_login_code",
        Values::new().with("code", &code),
    );
    notify::notify(&mut tx, templates, &notification).await?;
    tx.commit().await?;
    Ok(())
}

/// A number that is no caregiver's, as kept: a hash, never the number.
fn phone_hash(phone: &PhoneNumber) -> Vec<u8> {
    Sha256::digest(phone.as_str().as_bytes()).to_vec()
}

/// A code "sent" to a number that is no caregiver's: counted and limited as a real one is, and
/// waiting for guesses it never accepts, so neither answer tells a caregiver's number apart.
async fn decoy_requested(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    phone: &PhoneNumber,
) -> Result<(), SignInError> {
    let hash = phone_hash(phone);
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('app sign-in decoy'), hashtext(encode($1, 'hex')))",
    )
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app_login_decoys WHERE phone_hash = $1 AND created_at > now() - interval '10 minutes'",
    )
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?;
    if recent >= CODES_PER_PHONE {
        return Err(SignInError::TooManyCodes);
    }
    sqlx::query("UPDATE app_login_decoys SET consumed_at = now() WHERE phone_hash = $1 AND consumed_at IS NULL")
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO app_login_decoys (phone_hash, expires_at) VALUES ($1, $2)")
        .bind(&hash)
        .bind(Utc::now() + CODE_LIFETIME)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A guess at a decoy code: wrong, counted, as a wrong guess at a real one is.
async fn decoy_guessed(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    phone: &PhoneNumber,
) -> Result<SignInError, SignInError> {
    let attempts: Option<i32> = sqlx::query_scalar(
        "UPDATE app_login_decoys SET attempts = least(attempts + 1, $2)
          WHERE id = (SELECT id FROM app_login_decoys
                       WHERE phone_hash = $1 AND consumed_at IS NULL AND expires_at > now()
                       ORDER BY created_at DESC LIMIT 1 FOR UPDATE)
         RETURNING attempts",
    )
    .bind(phone_hash(phone))
    .bind(MAX_ATTEMPTS)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match attempts {
        None => SignInError::NoCodeWaiting,
        Some(attempts) if attempts < MAX_ATTEMPTS => {
            SignInError::WrongCode(MAX_ATTEMPTS - attempts)
        }
        Some(_) => SignInError::CodeUsedUp,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppSession {
    /// Send as `Authorization: Bearer <token>` on `/api/v1/app/...`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub worker_id: Uuid,
    pub worker_name: String,
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: Uuid,
    tenant_id: Uuid,
    worker_id: Uuid,
    code_hash: Vec<u8>,
    attempts: i32,
    worker_name: String,
}

/// Exchanges the code for a token. A wrong code counts against the code, and the count is kept
/// even though the request fails.
#[tracing::instrument(skip_all)]
pub async fn verify_code(
    pool: &PgPool,
    phone: &str,
    organisation: Option<&str>,
    code: &str,
) -> Result<AppSession, SignInError> {
    let phone = PhoneNumber::parse(phone).map_err(|e| Invalid::field("phone", e))?;
    let mut tx = pool.begin().await?;
    // Unknown numbers get the very answers a caregiver gets, as /app/login does.
    let Some((tenant_id, worker_id)) = worker_for(&mut tx, &phone, organisation).await? else {
        return Err(decoy_guessed(tx, &phone).await?);
    };
    audit::act_as(&mut tx, Actor::Worker(worker_id)).await?;
    let pending: Option<Pending> = sqlx::query_as(
        "SELECT c.id, c.tenant_id, c.worker_id, c.code_hash, c.attempts, w.first_name || ' ' || w.last_name AS worker_name
         FROM app_login_codes c JOIN workers w ON w.tenant_id = c.tenant_id AND w.id = c.worker_id
         WHERE c.tenant_id = $1 AND c.worker_id = $2 AND c.consumed_at IS NULL AND c.expires_at > now()
         ORDER BY c.created_at DESC LIMIT 1
         FOR UPDATE OF c",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(pending) = pending else {
        return Err(SignInError::NoCodeWaiting);
    };
    if pending.attempts >= MAX_ATTEMPTS {
        return Err(SignInError::CodeUsedUp);
    }
    let matches: bool = code_hash(pending.id, code.trim())
        .ct_eq(&pending.code_hash)
        .into();
    if !matches {
        let attempts: i32 = sqlx::query_scalar(
            "UPDATE app_login_codes SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
        )
        .bind(pending.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let left = MAX_ATTEMPTS - attempts;
        return Err(if left > 0 {
            SignInError::WrongCode(left)
        } else {
            SignInError::CodeUsedUp
        });
    }
    sqlx::query("UPDATE app_login_codes SET consumed_at = now() WHERE id = $1")
        .bind(pending.id)
        .execute(&mut *tx)
        .await?;
    let token = auth::new_token("fl_app_");
    let expires_at = Utc::now() + TOKEN_LIFETIME;
    sqlx::query(
        "INSERT INTO app_tokens (tenant_id, worker_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(pending.tenant_id)
    .bind(pending.worker_id)
    .bind(auth::token_hash(&token))
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(AppSession {
        token,
        expires_at,
        worker_id: pending.worker_id,
        worker_name: pending.worker_name,
    })
}

/// The worker behind an app token, if it is valid.
pub async fn authenticate(pool: &PgPool, token: &str) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as(
        "UPDATE app_tokens a SET last_used_at = now()
         FROM workers w, tenants t
         WHERE a.token_hash = $1 AND a.revoked_at IS NULL AND a.expires_at > now()
           AND w.tenant_id = a.tenant_id AND w.id = a.worker_id AND w.deleted_at IS NULL
           AND w.status = 'active' AND w.kinds && ARRAY['caregiver', 'ambulance_crew']
           AND t.id = a.tenant_id AND t.deleted_at IS NULL
         RETURNING a.tenant_id, a.worker_id",
    )
    .bind(auth::token_hash(token))
    .fetch_optional(pool)
    .await
}

/// A coordinator signs a worker's phones out: every app token of theirs stops working.
pub async fn revoke(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    worker_id: Uuid,
) -> Result<u64, SignInError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workers WHERE tenant_id = $1 AND id = $2)",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(SignInError::UnknownWorker);
    }
    let done = sqlx::query(
        "UPDATE app_tokens SET revoked_at = now() WHERE tenant_id = $1 AND worker_id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Forgets sign-in requests and codes older than a day: they only ever count for ten minutes.
pub async fn prune(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM app_login_requests WHERE created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM app_login_codes WHERE created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM app_login_decoys WHERE created_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(())
}
