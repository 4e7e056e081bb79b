//! Durable background jobs on apalis-postgres: what a job is, and how one is pushed.
//!
//! Jobs are pushed on the caller's transaction, so a job exists exactly when the change that
//! caused it was committed. What runs them is `worker`, at the top.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::TaskBuilder;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool};

/// A job's arguments and the queue they travel on.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;
}

/// How far in the past an immediate job is dated: longer than any transaction that pushes one.
const IMMEDIATE_BACKDATE_SECS: u64 = 300;

/// Attempts the queue allows a job (our jobs mostly schedule their own retries). With the pauses
/// between failures (see [`unwinding`]), about three minutes of a database outage.
const MAX_ATTEMPTS: usize = 25;

/// A data-modifying CTE that pushes jobs due now, for a statement that writes a record and its
/// jobs together in one round trip (the hot path: every inbound message). `source` is a query
/// yielding `(queue text, args json)`. The row is what apalis-postgres 1.0's `push_tasks` writes
/// (its `queries/task/sink.sql`), with the arguments in the JSON codec the workers decode, dated
/// in the past as [`enqueue`] dates immediate jobs; its insert trigger sends the NOTIFY.
pub fn push_due_jobs_cte(source: &str) -> String {
    format!(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT apalis.generate_ulid(), due.queue, convert_to(due.args::text, 'UTF8'), 'Pending', 0,
                {MAX_ATTEMPTS}, now() - interval '{IMMEDIATE_BACKDATE_SECS} seconds', 0
         FROM ({source}) AS due (queue, args)"
    )
}

/// Pushes `job` inside the caller's transaction, to run after `delay`.
pub async fn enqueue<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    delay: Duration,
) -> anyhow::Result<()> {
    let args = serde_json::to_vec(job)?;
    // The queue keeps whole seconds. A delayed job rounds up, so it never runs before its delay is
    // over (a provider's Retry-After, a timer). A job due now gets a time safely in the past: the
    // queue's insert trigger only sends its NOTIFY when run_at <= the transaction's start time.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let due_secs = if delay.is_zero() {
        now.as_secs().saturating_sub(IMMEDIATE_BACKDATE_SECS)
    } else {
        let due = now + delay;
        due.as_secs() + u64::from(due.subsec_nanos() > 0)
    };
    let task = TaskBuilder::new(args)
        .run_at_timestamp(due_secs)
        .max_attempts(MAX_ATTEMPTS)
        .build();
    apalis_postgres::queries::push_tasks(conn, J::QUEUE, vec![task])
        .await
        .map_err(|e| anyhow::anyhow!("queueing a {} job: {e}", J::QUEUE))
}

/// Keeps exactly one run of a recurring sweep scheduled, however many processes start: the
/// first run now. Two processes starting together take turns on an advisory lock.
pub async fn ensure_recurring<J: Job + Default>(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(J::QUEUE)
        .execute(&mut *tx)
        .await?;
    schedule_recurring::<J>(&mut tx, Duration::ZERO).await?;
    tx.commit().await?;
    Ok(())
}

/// Schedules the next run of a recurring sweep after `every`, unless one is already waiting.
/// Called by the sweep itself, inside its transaction and holding the same advisory lock.
pub async fn schedule_recurring<J: Job + Default>(
    conn: &mut PgConnection,
    every: Duration,
) -> anyhow::Result<()> {
    // Only 'Pending' counts: apalis marks a fetched job 'Queued' and may not have moved it on to
    // 'Running' yet, so the run calling this would count itself and book no next run.
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending'",
    )
    .bind(J::QUEUE)
    .fetch_one(&mut *conn)
    .await?;
    if waiting == 0 {
        enqueue(conn, &J::default(), every).await?;
    }
    Ok(())
}

/// Finished jobs are kept this long for looking into what ran, then deleted: apalis never does,
/// and with two jobs per message the table would grow without end.
const FINISHED_KEPT_DAYS: i32 = 7;
/// At most this many go per sweep, so a first sweep over a long history stays short.
const PRUNE_BATCH: i64 = 50_000;

/// Deletes jobs that finished (done, killed, or failed for good) more than a week ago.
pub async fn prune_finished(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let deleted = sqlx::query(
        "DELETE FROM apalis.jobs WHERE id IN (
             SELECT id FROM apalis.jobs
             WHERE (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))
               AND COALESCE(done_at, run_at) < now() - make_interval(days => $1)
             LIMIT $2)",
    )
    .bind(FINISHED_KEPT_DAYS)
    .bind(PRUNE_BATCH)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// One run of a recurring sweep at a time, across processes: held until the transaction ends.
pub async fn lock_recurring<J: Job>(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(J::QUEUE)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queue depth by queue and status, for `/metrics`.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT job_type, status, count(*) FROM apalis.jobs GROUP BY job_type, status ORDER BY 1, 2")
        .fetch_all(pool)
        .await
}
