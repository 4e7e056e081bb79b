//! The audit log: who changed what, with before and after, as a hash chain per tenant.
//!
//! Rows are written by the database (`audit_change`, a trigger on every table holding a tenant's
//! records) in the transaction that made the change; the application's part is to say who is
//! acting, once per transaction, with [`act_as`] (or [`begin`]). Request id and client address
//! come from the [`Origin`] of the request or job being served. See
//! `migrations/20261201000001_audit_everywhere.sql` for why the writing is the database's.
//!
//! Rows are sealed into their chain just after they commit, by [`keep_sealing`] in every
//! process (and by [`seal`] before anything reads the chain), not inside each commit: that made
//! every auditing transaction of a tenant wait for the others.

use std::{future::Future, net::IpAddr};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Who acted, as the audit log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A job or the service itself.
    System,
    Cli,
    /// A panel user.
    User(Uuid),
    ApiToken(Uuid),
    /// A worker, by message or through the app.
    Worker(Uuid),
    /// Anyone else who wrote in (a patient, a requester), by their contact.
    Contact(Uuid),
}

impl Actor {
    fn parts(self) -> (&'static str, Option<Uuid>) {
        match self {
            Self::System => ("system", None),
            Self::Cli => ("cli", None),
            Self::User(id) => ("user", Some(id)),
            Self::ApiToken(id) => ("api_token", Some(id)),
            Self::Worker(id) => ("worker", Some(id)),
            Self::Contact(id) => ("contact", Some(id)),
        }
    }
}

/// Where the work being done came from: an HTTP request (its id and the client's address) or a
/// job. Set around each request and job; read by [`act_as`].
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub ip: Option<IpAddr>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `work` with `origin` as the origin of every change it makes.
pub async fn within<F: Future>(origin: Origin, work: F) -> F::Output {
    ORIGIN.scope(origin, work).await
}

/// The origin of the request or job being served (empty outside one).
pub fn origin() -> Origin {
    ORIGIN.try_with(Origin::clone).unwrap_or_default()
}

/// Says who is acting for the rest of the transaction on `conn`: every audited change after
/// this is recorded as theirs, with the current request's id and address.
pub async fn act_as(conn: &mut PgConnection, actor: Actor) -> Result<(), sqlx::Error> {
    let (kind, id) = actor.parts();
    let origin = origin();
    sqlx::query(
        "SELECT set_config('fieldline.actor_kind', $1, true),
                set_config('fieldline.actor_id', coalesce($2::text, ''), true),
                set_config('fieldline.request_id', coalesce($3, ''), true),
                set_config('fieldline.ip', coalesce($4::text, ''), true)",
    )
    .bind(kind)
    .bind(id)
    .bind(origin.request_id)
    .bind(origin.ip.map(|ip| ip.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Begins a transaction whose changes are recorded as `actor`'s.
pub async fn begin(
    pool: &PgPool,
    actor: Actor,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    act_as(&mut tx, actor).await?;
    Ok(tx)
}

/// Gives the reason for the changes that follow in this transaction (a correction's why).
pub async fn because(conn: &mut PgConnection, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('fieldline.reason', $1, true)")
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// An event that changes no row (a sign-in, an export), recorded explicitly.
pub struct Entry<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<Uuid>,
    pub after: Option<Value>,
}

/// Writes one event on the caller's connection, inside the caller's transaction.
pub async fn record(conn: &mut PgConnection, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    let (actor_kind, actor_id) = entry.actor.parts();
    let origin = origin();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, entity_type, entity_id, after, request_id, ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet)",
    )
    .bind(entry.tenant_id)
    .bind(actor_kind)
    .bind(actor_id)
    .bind(entry.action)
    .bind(entry.entity_type)
    .bind(entry.entity_id)
    .bind(entry.after)
    .bind(origin.request_id)
    .bind(origin.ip.map(|ip| ip.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// One row of the log, as the API and the panel show it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LogRow {
    pub id: Uuid,
    pub seq: Option<i64>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    /// The user's or worker's name, where the actor has one.
    pub actor_name: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The data request whose erasure blanked this row's values, if one did.
    pub redacted_by: Option<Uuid>,
}

/// What to list: every filter optional.
#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    /// One record's history: rows about it, and rows about its parts (a work order's comments,
    /// a visit's exceptions) that name it.
    pub record: Option<Uuid>,
    pub entity_type: Option<String>,
    pub actor_kind: Option<String>,
    pub actor_id: Option<Uuid>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Rows before this sequence number (for paging back), newest first.
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// A tenant's log, newest first.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &LogFilter,
) -> Result<Vec<LogRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.seq, a.actor_kind, a.actor_id,
                CASE a.actor_kind
                    WHEN 'user' THEN (SELECT u.full_name FROM users u WHERE u.tenant_id = a.tenant_id AND u.id = a.actor_id)
                    WHEN 'worker' THEN (SELECT w.first_name || ' ' || w.last_name FROM workers w WHERE w.tenant_id = a.tenant_id AND w.id = a.actor_id)
                    WHEN 'api_token' THEN (SELECT t.name FROM api_tokens t WHERE t.tenant_id = a.tenant_id AND t.id = a.actor_id)
                END AS actor_name,
                a.action, a.entity_type, a.entity_id, a.before, a.after, a.reason, a.request_id,
                host(a.ip) AS ip, a.created_at, a.redacted_by
           FROM audit_log a
          WHERE a.tenant_id = $1
            AND ($2::uuid IS NULL OR a.entity_id = $2
                 OR $2::text IN (SELECT value FROM jsonb_each_text(coalesce(a.after, a.before))))
            AND ($3::text IS NULL OR a.entity_type = $3)
            AND ($4::text IS NULL OR a.actor_kind = $4)
            AND ($5::uuid IS NULL OR a.actor_id = $5)
            AND ($6::timestamptz IS NULL OR a.created_at >= $6)
            AND ($7::timestamptz IS NULL OR a.created_at < $7)
            AND ($8::bigint IS NULL OR a.seq < $8)
          ORDER BY a.seq DESC NULLS FIRST
          LIMIT $9",
    )
    .bind(tenant_id)
    .bind(filter.record)
    .bind(filter.entity_type.as_deref())
    .bind(filter.actor_kind.as_deref())
    .bind(filter.actor_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.before_seq)
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

/// The chain of rows with no tenant.
pub const PLATFORM_CHAIN: Uuid = Uuid::nil();

/// What walking one chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain_id: Uuid,
    pub rows: u64,
    pub broken: Option<Break>,
}

/// The first place a chain does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first row that does not verify (`None` when the chain's end is missing).
    pub row: Option<Uuid>,
    pub seq: Option<i64>,
    pub why: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.row, self.seq) {
            (Some(row), Some(seq)) => write!(f, "row {row} (#{seq}): {}", self.why),
            (Some(row), None) => write!(f, "row {row}: {}", self.why),
            _ => f.write_str(&self.why),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Link {
    id: Uuid,
    seq: Option<i64>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
    content: String,
    payload_hash: Option<Vec<u8>>,
    payload_now: Vec<u8>,
    redacted_by: Option<Uuid>,
    erasure_recorded: bool,
    erasure_overreached: bool,
}

fn genesis() -> Vec<u8> {
    Sha256::digest(b"").to_vec()
}

/// Walks one chain from its first row, recomputing every hash; names the first row that breaks
/// it. Also checks the recorded head and every checkpoint, so rows cut off the end show.
#[tracing::instrument(skip(pool))]
pub async fn verify_chain(pool: &PgPool, chain_id: Uuid) -> Result<ChainReport, sqlx::Error> {
    use futures::TryStreamExt;
    // Everything committed so far is verified; rows committed after this are left for the next.
    seal(pool).await?;
    let mut rows = sqlx::query_as::<_, Link>(
        "SELECT a.id, a.seq, a.prev_hash, a.hash, audit_content(a) AS content, a.payload_hash,
                audit_payload_hash(a.before, a.after, a.reason) AS payload_now, a.redacted_by,
                EXISTS (SELECT 1 FROM audit_log e
                         WHERE audit_chain_of(e.tenant_id) = $1 AND e.action = 'gdpr.erasure'
                           AND e.entity_id = a.redacted_by AND e.hash IS NOT NULL) AS erasure_recorded,
                -- Erasures record the records they may blank (older ones did not).
                EXISTS (SELECT 1 FROM gdpr_data_requests g
                         WHERE g.id = a.redacted_by AND g.erased_records IS NOT NULL
                           AND NOT coalesce(a.entity_id = ANY (g.erased_records), false)) AS erasure_overreached
           FROM audit_log a
          WHERE audit_chain_of(a.tenant_id) = $1 AND a.hash IS NOT NULL
          ORDER BY a.seq, a.id",
    )
    .bind(chain_id)
    .fetch(pool);
    let mut expected_prev = genesis();
    let mut count = 0u64;
    let mut last_seq = 0i64;
    let broken = |row: &Link, why: String| Break {
        row: Some(row.id),
        seq: row.seq,
        why,
    };
    while let Some(row) = rows.try_next().await? {
        let Some(seq) = row.seq else {
            let why = "sealed, but its place in the chain was removed".into();
            return Ok(report(chain_id, count, Some(broken(&row, why))));
        };
        if seq != last_seq + 1 {
            let why = format!("comes after #{last_seq}: the rows between are missing or moved");
            return Ok(report(chain_id, count, Some(broken(&row, why))));
        }
        if row.prev_hash.as_deref() != Some(&expected_prev[..]) {
            let why =
                "does not link to the row before it (a row was removed, added or reordered)".into();
            return Ok(report(chain_id, count, Some(broken(&row, why))));
        }
        let mut hasher = Sha256::new();
        hasher.update(&expected_prev);
        hasher.update(row.content.as_bytes());
        let hash = hasher.finalize().to_vec();
        if row.hash.as_deref() != Some(&hash[..]) {
            let why = "its recorded fields were changed after it was written".into();
            return Ok(report(chain_id, count, Some(broken(&row, why))));
        }
        let why = match row.redacted_by {
            None if row.payload_hash.as_deref() != Some(&row.payload_now[..]) => {
                Some("its before/after values were changed after it was written")
            }
            Some(_) if !row.erasure_recorded => {
                Some("blanked by an erasure the log does not record")
            }
            Some(_) if row.erasure_overreached => {
                Some("blanked by an erasure although it is not about the erased patient's records")
            }
            _ => None,
        };
        if let Some(why) = why {
            return Ok(report(chain_id, count, Some(broken(&row, why.into()))));
        }
        expected_prev = hash;
        last_seq = seq;
        count += 1;
    }
    drop(rows);

    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_heads WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_optional(pool)
            .await?;
    // The end of the chain (no row to name): rows after #seq are missing.
    let cut_off = |seq: i64, why: String| {
        let at = Break {
            row: None,
            seq: Some(seq),
            why,
        };
        report(chain_id, count, Some(at))
    };
    if let Some((seq, hash)) = head
        && (seq != last_seq || (seq > 0 && hash != expected_prev))
    {
        let why = format!(
            "the chain ends at #{last_seq} but its head says #{seq}: rows were cut off the end"
        );
        return Ok(cut_off(seq, why));
    }
    let checkpoints: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT c.seq, c.hash, a.hash FROM audit_checkpoints c
           LEFT JOIN audit_log a ON audit_chain_of(a.tenant_id) = c.chain_id AND a.seq = c.seq
          WHERE c.chain_id = $1 ORDER BY c.seq",
    )
    .bind(chain_id)
    .fetch_all(pool)
    .await?;
    for (seq, recorded, found) in checkpoints {
        if found.as_deref() != Some(&recorded[..]) {
            let why = format!(
                "a checkpoint recorded row #{seq} with another hash or the chain no longer reaches it: rows were cut off or rewritten"
            );
            return Ok(cut_off(seq, why));
        }
    }
    Ok(report(chain_id, count, None))
}

fn report(chain_id: Uuid, rows: u64, broken: Option<Break>) -> ChainReport {
    ChainReport {
        chain_id,
        rows,
        broken,
    }
}

/// Seals every committed row not yet in its chain; returns how many.
#[tracing::instrument(skip(pool))]
pub async fn seal(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let sealed: i64 = sqlx::query_scalar("SELECT audit_seal()")
        .fetch_one(pool)
        .await?;
    Ok(sealed as u64)
}

/// Holds `tenant_id`'s chain until the caller's transaction ends: a sealer at work on it
/// finishes first, and none starts on it meanwhile (sealers skip a chain that is held). For
/// changing rows a sealer may be sealing (an erasure blanking values) without the two locking
/// the same rows in opposite orders.
pub async fn hold_chain(conn: &mut PgConnection, tenant_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_chain_heads (chain_id, seq, hash) VALUES (audit_chain_of($1), 0, sha256(''::bytea))
             ON CONFLICT (chain_id) DO NOTHING",
    )
    .bind(tenant_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT 1 FROM audit_chain_heads WHERE chain_id = audit_chain_of($1) FOR UPDATE")
        .bind(tenant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// How soon after its commit a row is in its chain.
const SEAL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Seals new rows every [`SEAL_EVERY`] until `stop` resolves, then once more.
pub async fn keep_sealing(pool: PgPool, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(SEAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut stop => true,
        };
        if let Err(error) = seal(&pool).await {
            tracing::warn!(%error, "could not seal new audit rows: trying again shortly");
        }
        if stopping {
            return;
        }
    }
}

/// Every chain's id: each tenant's, and the platform's.
pub async fn chains(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT chain_id FROM audit_chain_heads
         UNION SELECT id FROM tenants
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}

/// Records the head of every chain that moved since its last checkpoint. Logged too, so the
/// heads also live outside the database.
#[tracing::instrument(skip(conn))]
pub async fn checkpoint(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    sqlx::query("SELECT audit_seal()")
        .execute(&mut *conn)
        .await?;
    let recorded: Vec<(Uuid, i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO audit_checkpoints (chain_id, seq, hash)
         SELECT h.chain_id, h.seq, h.hash FROM audit_chain_heads h
          WHERE h.seq > 0
         ON CONFLICT (chain_id, seq) DO NOTHING
         RETURNING chain_id, seq, hash",
    )
    .fetch_all(conn)
    .await?;
    for (chain, seq, hash) in &recorded {
        tracing::info!(%chain, seq, hash = %hex(hash), "audit chain head");
    }
    Ok(recorded.len() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
