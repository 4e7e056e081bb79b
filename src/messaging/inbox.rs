//! The inbox: persist, then acknowledge, with one insert. A webhook hands the messages it
//! carries (parsed and verified) to the inbox's writer, which commits those of every webhook
//! waiting in one insert, and answers; the drainer stores them (`ingest::store`) in batches, in
//! the order they came, one drainer at a time across processes.
//!
//! Why: storing a message (channel lookup, contact, conversation, message, media, jobs, and the
//! contact's audit row) cost a webhook ten times the bare insert, and every webhook paid its own
//! commit. Batched, those commits are shared, and the provider hears 2xx after one row.

use std::{sync::OnceLock, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::ingest::{self, Arrival};
use crate::{audit, channels::Inbound, db, jobs};

/// The wake-up key of the drainer (see `jobs::Wakeups`), and its advisory lock.
pub const DRAINER: &str = "fieldline::inbox";

/// Messages stored per transaction.
const BATCH: i64 = 100;

/// The longest a message that cannot be stored waits before the next try.
const LONGEST_RETRY: Duration = Duration::from_secs(300);

/// Keeps webhooks' messages for storing: the writer of the inbox. Webhooks that arrive while it
/// is writing share its next transaction (group commit): at 16 concurrent webhooks, one commit
/// per webhook was most of what set ingest apart from a bare insert.
pub struct Writer {
    pool: PgPool,
    queue: OnceLock<mpsc::UnboundedSender<Kept>>,
}

/// One webhook's messages, waiting for the writer, and where to tell it they are committed.
struct Kept {
    messages: Vec<String>,
    origin: audit::Origin,
    committed: oneshot::Sender<Result<(), NotKept>>,
}

/// Why a shared insert failed, told to each webhook that waited on it (a database error cannot
/// be cloned): an unreachable database still reads as one, so the provider hears 503 and
/// `Retry-After`, as it would without the writer.
#[derive(Clone)]
enum NotKept {
    Unreachable(String),
    Failed(String),
}

impl NotKept {
    fn from(err: &sqlx::Error) -> Self {
        if db::unreachable(err) {
            Self::Unreachable(err.to_string())
        } else {
            Self::Failed(err.to_string())
        }
    }

    fn into_error(self) -> anyhow::Error {
        match self {
            Self::Unreachable(why) => sqlx::Error::Io(std::io::Error::other(why)).into(),
            Self::Failed(why) => anyhow::anyhow!("keeping the message in the inbox: {why}"),
        }
    }
}

/// The most messages one insert of the writer takes.
const MOST_WRITTEN_AT_ONCE: usize = 500;

impl Writer {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: OnceLock::new(),
        }
    }

    /// Keeps `messages`, committed when this returns. The drainer is woken when the current
    /// request ends (see `jobs::waking`); outside a request it finds them within a second.
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    pub async fn accept(&self, messages: &[Inbound]) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let count = messages.len() as u64;
        let messages = messages
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let (committed, outcome) = oneshot::channel();
        let queue = self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::unbounded_channel();
            tokio::spawn(write(self.pool.clone(), waiting));
            queue
        });
        queue
            .send(Kept {
                messages,
                origin: audit::origin(),
                committed,
            })
            .map_err(|_| anyhow::anyhow!("the inbox writer has stopped"))?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("the inbox writer has stopped"))?
            .map_err(NotKept::into_error)?;
        jobs::wake_when_done(DRAINER);
        metrics::counter!("inbox_accepted_total").increment(count);
        Ok(())
    }
}

/// The writer's loop: takes what waits (up to [`MOST_WRITTEN_AT_ONCE`] messages), commits it in
/// one insert, answers each webhook, and goes again; ends when the application is dropped.
async fn write(pool: PgPool, mut waiting: mpsc::UnboundedReceiver<Kept>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        let mut messages = batch[0].messages.len();
        while messages < MOST_WRITTEN_AT_ONCE {
            let Ok(next) = waiting.try_recv() else { break };
            messages += next.messages.len();
            batch.push(next);
        }
        let outcome = insert(&pool, &batch).await.map_err(|error| {
            tracing::error!(%error, webhooks = batch.len(), "could not keep messages in the inbox");
            NotKept::from(&error)
        });
        for kept in batch {
            // A webhook that gave up waiting (its request timed out) has no one to tell.
            let _ = kept.committed.send(outcome.clone());
        }
    }
}

/// One insert for the messages of several webhooks, in the order they came, a microsecond apart
/// so messages of one Meta batch are routed in the order it lists them. In an explicit
/// transaction, committed before any webhook answers (see `send::record_accepted` for why an
/// autocommit write is not trusted with that).
async fn insert(pool: &PgPool, batch: &[Kept]) -> sqlx::Result<()> {
    let mut messages = Vec::new();
    let mut request_ids = Vec::new();
    let mut ips = Vec::new();
    for kept in batch {
        for message in &kept.messages {
            messages.push(message.as_str());
            request_ids.push(kept.origin.request_id.as_deref());
            ips.push(kept.origin.ip.map(|ip| ip.to_string()));
        }
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO inbox (message, received_at, request_id, ip)
         SELECT message, now() + make_interval(secs => (n - 1) / 1e6), request_id, ip
         FROM unnest($1::json[], $2::text[], $3::text[])
              WITH ORDINALITY AS batch (message, request_id, ip, n)",
    )
    .bind(&messages)
    .bind(&request_ids)
    .bind(&ips)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[derive(sqlx::FromRow)]
struct Waiting {
    seq: i64,
    message: String,
    received_at: DateTime<Utc>,
    request_id: Option<String>,
    ip: Option<String>,
    attempts: i32,
}

impl Waiting {
    fn arrival(&self) -> Arrival {
        Arrival {
            received_at: self.received_at,
            origin: audit::Origin {
                request_id: self.request_id.clone(),
                ip: self.ip.as_deref().and_then(|ip| ip.parse().ok()),
            },
        }
    }
}

/// Stores every message waiting in the inbox, oldest first, until none is left; returns how
/// many were taken out (stored, duplicates, and messages for a number no tenant has).
#[tracing::instrument(skip_all)]
pub async fn drain(pool: &PgPool) -> anyhow::Result<usize> {
    let mut taken = 0;
    loop {
        let (batch, full) = drain_batch(pool).await?;
        taken += batch;
        if !full {
            return Ok(taken);
        }
    }
}

/// A drainer's transaction, holding the drainer's lock until it ends: one drainer at a time, so
/// messages are stored in the order they came and one person's are routed in that order (see
/// `router::route_inbound`). Its commit need not wait for the disk (`db::begin_internal`): lost
/// in a crash, what it stored is still in the inbox. `store`'s statement is planned once per
/// connection: with a plan per call, PostgreSQL's choice for it, planning took 0.5 of its 1.3 ms.
async fn begin_draining(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = db::begin_internal(pool).await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext($1)),
                set_config('plan_cache_mode', 'force_generic_plan', true)",
    )
    .bind(DRAINER)
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Stores the oldest batch in one transaction; if any message in it fails, each is tried on its
/// own so one that cannot be stored holds up nobody else. Returns how many were taken out, and
/// whether the batch was full (more may wait).
pub async fn drain_batch(pool: &PgPool) -> anyhow::Result<(usize, bool)> {
    let mut tx = begin_draining(pool).await?;
    let waiting: Vec<Waiting> = sqlx::query_as(
        "SELECT seq, message::text AS message, received_at, request_id, ip, attempts FROM inbox
          WHERE retry_at <= now() ORDER BY seq LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if waiting.is_empty() {
        return Ok((0, false));
    }
    let full = waiting.len() as i64 == BATCH;
    let mut failed = false;
    for one in &waiting {
        if let Err(error) = store_one(&mut tx, one).await {
            tracing::info!(seq = one.seq, %error, "storing a batch failed: trying each on its own");
            failed = true;
            break;
        }
    }
    if !failed {
        let taken: Vec<i64> = waiting.iter().map(|w| w.seq).collect();
        sqlx::query("DELETE FROM inbox WHERE seq = ANY($1)")
            .bind(&taken)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok((waiting.len(), full));
    }
    tx.rollback().await?;
    let mut taken = 0;
    for one in &waiting {
        if drain_alone(pool, one).await? {
            taken += 1;
        }
    }
    Ok((taken, full))
}

/// Stores one message in its own transaction; one that fails is put off, with the reason.
async fn drain_alone(pool: &PgPool, one: &Waiting) -> anyhow::Result<bool> {
    let stored = async {
        let mut tx = begin_draining(pool).await?;
        store_one(&mut tx, one).await?;
        sqlx::query("DELETE FROM inbox WHERE seq = $1")
            .bind(one.seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        anyhow::Ok(())
    }
    .await;
    let Err(error) = stored else {
        return Ok(true);
    };
    let wait = Duration::from_secs(1 << one.attempts.clamp(0, 8)).min(LONGEST_RETRY);
    tracing::warn!(seq = one.seq, attempts = one.attempts + 1, ?wait, %error, "could not store an inbound message: it waits in the inbox");
    metrics::counter!("inbox_store_failures_total").increment(1);
    sqlx::query(
        "UPDATE inbox SET attempts = attempts + 1, last_error = $2,
                          retry_at = now() + make_interval(secs => $3)
          WHERE seq = $1",
    )
    .bind(one.seq)
    .bind(format!("{error:#}"))
    .bind(wait.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(false)
}

async fn store_one(tx: &mut sqlx::PgConnection, one: &Waiting) -> anyhow::Result<()> {
    let message: Inbound = serde_json::from_str(&one.message)
        .map_err(|e| anyhow::anyhow!("the inbox row is not a message this version reads: {e}"))?;
    // A duplicate or a message for a number no tenant has is done with too (`store` says so).
    ingest::store(tx, &message, &one.arrival()).await?;
    Ok(())
}

/// Messages waiting in the inbox, and how many of them failed at least once, for `/metrics`.
pub async fn depth(pool: &PgPool) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE attempts > 0) FROM inbox")
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webhook_that_waited_on_an_unreachable_database_hears_it_as_such() {
        let told = NotKept::from(&sqlx::Error::PoolTimedOut).into_error();
        assert!(
            told.downcast_ref::<sqlx::Error>()
                .is_some_and(db::unreachable)
        );
        let told = NotKept::from(&sqlx::Error::RowNotFound).into_error();
        assert!(told.downcast_ref::<sqlx::Error>().is_none());
    }
}
