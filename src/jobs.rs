//! Durable background jobs on apalis-postgres: what a job is, and how one is pushed.
//!
//! Jobs are pushed on the caller's transaction, so a job exists exactly when the change that
//! caused it was committed. What runs them is `worker`, at the top.
//!
//! Waking the workers: a job due now pushed inside [`waking`] (every HTTP request and every
//! job) is not announced by the queue's insert trigger; the scope wakes this process's worker
//! when it ends, after the commit. The trigger's NOTIFY takes a lock every notifying commit in
//! the database queues on, held until the commit is on disk: ingest ran 40 % faster without it.
//! Outside a scope (the CLI, tests) the trigger announces the job as before, and a job whose
//! wake-up was lost (a crash just after the commit) is announced by `worker`'s once-a-second
//! announcer.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{
        Arc, LazyLock, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

/// A job's arguments and the queue they travel on.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;
    /// Whether the job waits while webhooks queue for the inbox (see `worker`). Jobs that spend
    /// the machine's time (routing, sweeps) do; a send, decided already and mostly waiting on
    /// its provider, does not.
    const YIELDS_TO_INGEST: bool = true;
}

/// How far in the past an immediate job is dated: longer than any transaction that pushes one.
const IMMEDIATE_BACKDATE_SECS: u64 = 300;

/// Attempts the queue allows a job (our jobs mostly schedule their own retries). With the pauses
/// between failures (see [`unwinding`]), about three minutes of a database outage.
const MAX_ATTEMPTS: usize = 25;

/// The channel the queue's insert trigger, and we, announce new jobs on.
pub const JOB_CHANNEL: &str = "apalis::job::insert";

/// One wake-up per queue for this process's workers, and the way to wake them.
pub struct Wakeups {
    pool: PgPool,
    queues: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Set when this process runs job workers; otherwise wake-ups go to other processes by
    /// NOTIFY.
    workers_here: AtomicBool,
    /// Wake-ups for other processes, to the task that sends them (see [`announce`]).
    to_announce: OnceLock<mpsc::UnboundedSender<Vec<&'static str>>>,
}

impl Wakeups {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queues: Mutex::default(),
            workers_here: AtomicBool::new(false),
            to_announce: OnceLock::new(),
        }
    }

    /// The wake-up of `queue`'s worker in this process. A wake-up given while the worker is busy
    /// is kept for when it next waits, so none is lost.
    pub fn of(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        self.workers_here.store(true, Ordering::Relaxed);
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    /// Wakes this process's worker of `queue`, if it has one.
    pub fn wake_here(&self, queue: &str) {
        if let Some(notify) = self
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(queue)
        {
            notify.notify_one();
        }
    }

    /// Wakes every worker of this process.
    pub fn wake_all_here(&self) {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.values().for_each(|notify| notify.notify_one());
    }

    /// Wakes the workers of `queues`: here when this process runs them, else wherever they run
    /// (soon after, by the announcing task: see [`announce`]).
    fn wake(&self, queues: &[&'static str]) {
        if self.workers_here.load(Ordering::Relaxed) {
            queues.iter().for_each(|queue| self.wake_here(queue));
            return;
        }
        let announcer = self.to_announce.get_or_init(|| {
            let (announcer, waiting) = mpsc::unbounded_channel();
            tokio::spawn(announce(self.pool.clone(), waiting));
            announcer
        });
        // Only if the task has ended (the runtime is shutting down): the announcer of the
        // worker process finds the jobs within a second.
        let _ = announcer.send(queues.to_vec());
    }
}

/// Sends the wake-ups of [`Wakeups::wake`] for other processes: what waits while it announces
/// goes in its next NOTIFY. A NOTIFY is a commit of its own that waits for the disk and queues
/// on the database's notify lock; one per webhook made a process without workers ingest at a
/// third of the bare floor.
async fn announce(pool: PgPool, mut waiting: mpsc::UnboundedReceiver<Vec<&'static str>>) {
    while let Some(mut queues) = waiting.recv().await {
        while let Ok(more) = waiting.try_recv() {
            queues.extend(more);
        }
        queues.sort_unstable();
        queues.dedup();
        let announced = sqlx::query(
            "SELECT pg_notify($1, json_build_object('job_type', queue)::text)
             FROM unnest($2::text[]) AS queue",
        )
        .bind(JOB_CHANNEL)
        .bind(&queues)
        .execute(&pool)
        .await;
        if let Err(error) = announced {
            tracing::warn!(%error, "could not announce new jobs: the announcer does within a second");
        }
    }
}

tokio::task_local! {
    /// Queues that got a job due now in the current scope, to wake when it ends.
    static TO_WAKE: RefCell<Vec<&'static str>>;
}

/// Runs `work`, then wakes the workers of the queues it pushed jobs due now to.
pub async fn waking<F: std::future::Future>(wakeups: &Wakeups, work: F) -> F::Output {
    let (output, queues) = TO_WAKE
        .scope(RefCell::default(), async {
            let output = work.await;
            (output, TO_WAKE.with(|queues| queues.take()))
        })
        .await;
    if !queues.is_empty() {
        wakeups.wake(&queues);
    }
    output
}

/// Notes that `queues` got work due now in the current scope, to wake when it ends; false
/// outside a scope.
fn note_to_wake(queues: &[&'static str]) -> bool {
    TO_WAKE
        .try_with(|to_wake| {
            let mut to_wake = to_wake.borrow_mut();
            for queue in queues {
                if !to_wake.contains(queue) {
                    to_wake.push(queue);
                }
            }
        })
        .is_ok()
}

/// Wakes `waiter` (a queue's worker, or the inbox drainer) when the current scope ends, after
/// its commit. Outside a scope, nothing: the waiter's own poll finds the work within a second.
pub fn wake_when_done(waiter: &'static str) {
    note_to_wake(&[waiter]);
}

/// Seconds from the transaction's start at which jobs for `queues`, due now, are dated. Inside
/// [`waking`], just after the start, so the insert trigger does not announce them (the scope
/// does, after the commit); outside it, safely in the past, so the trigger does.
pub fn due_now_offset(queues: &[&'static str]) -> f64 {
    if note_to_wake(queues) {
        1e-6
    } else {
        -(IMMEDIATE_BACKDATE_SECS as f64)
    }
}

/// A data-modifying CTE that pushes jobs, for a statement that writes a record and its jobs
/// together in one round trip (the hot path: every inbound message). `source` is a query
/// yielding `(queue text, args json)`; `run_at` an SQL expression for when they are due. The
/// row is what apalis-postgres 1.0's `push_tasks` writes (its `queries/task/sink.sql`), with the
/// arguments in the JSON codec the workers decode: this and [`enqueue`] are the only writers.
pub fn push_jobs_cte(source: &str, run_at: &str) -> String {
    format!(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT apalis.generate_ulid(), due.queue, convert_to(due.args::text, 'UTF8'), 'Pending', 0,
                {MAX_ATTEMPTS}, {run_at}, 0
         FROM ({source}) AS due (queue, args)"
    )
}

/// When jobs due now are dated, with `$n` holding [`due_now_offset`]'s value.
pub fn due_now(offset: &str) -> String {
    format!("now() + make_interval(secs => {offset})")
}

/// Pushes `job` inside the caller's transaction, to run after `delay`.
pub async fn enqueue<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    delay: Duration,
) -> anyhow::Result<()> {
    static DUE_NOW: LazyLock<String> =
        LazyLock::new(|| push_jobs_cte("SELECT $1::text, $2::json", &due_now("$3")));
    // From the clock, not the transaction's start: a delayed job (a provider's Retry-After, a
    // timer) never runs before its delay is over.
    static DELAYED: LazyLock<String> = LazyLock::new(|| {
        push_jobs_cte(
            "SELECT $1::text, $2::json",
            "clock_timestamp() + make_interval(secs => $3)",
        )
    });
    let (statement, seconds) = if delay.is_zero() {
        (&DUE_NOW, due_now_offset(&[J::QUEUE]))
    } else {
        (&DELAYED, delay.as_secs_f64())
    };
    sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
        .bind(J::QUEUE)
        .bind(serde_json::to_string(job)?)
        .bind(seconds)
        .execute(conn)
        .await
        .map_err(|e| anyhow::anyhow!("queueing a {} job: {e}", J::QUEUE))?;
    Ok(())
}

/// Keeps exactly one run of a recurring sweep scheduled, however many processes start: the
/// first run now. Two processes starting together take turns on an advisory lock.
pub async fn ensure_recurring<J: Job + Default>(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    lock_recurring::<J>(&mut tx).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn wakeups() -> Wakeups {
        Wakeups::new(PgPool::connect_lazy("postgres://unused@localhost/unused").unwrap())
    }

    #[tokio::test]
    async fn a_scope_wakes_the_queues_it_pushed_to_once_it_ends_and_not_before() {
        let wakeups = wakeups();
        let (routing, sending) = (wakeups.of("route"), wakeups.of("send"));
        let offset = waking(&wakeups, async {
            let offset = due_now_offset(&["route"]);
            assert!(
                routing.notified().now_or_never().is_none(),
                "woken before the scope ended (before its commit)"
            );
            offset
        })
        .await;
        assert!(
            offset > 0.0,
            "dated after the start: the trigger stays quiet"
        );
        assert!(routing.notified().now_or_never().is_some());
        assert!(sending.notified().now_or_never().is_none());
    }

    #[test]
    fn outside_a_scope_jobs_are_dated_in_the_past_for_the_trigger_to_announce() {
        assert!(due_now_offset(&["route"]) < 0.0);
    }
}
