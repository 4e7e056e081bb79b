//! Durable background jobs on apalis-postgres.
//!
//! Jobs are pushed on the caller's transaction, so a job exists exactly when the change that
//! caused it was committed. Workers wake on LISTEN/NOTIFY rather than slow polling, and every
//! process start registers workers under a fresh id.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use apalis::prelude::*;
use apalis_postgres::{Config as QueueConfig, PostgresStorage, Pubsub};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domains::care::{
    schedule::{self, VisitSchedule},
    timers::{self as visit_timers, VisitTimer},
};
use crate::domains::maintenance::{
    preventive::{self, PreventiveSweep},
    timers::{self, WorkOrderTimer},
};
use crate::messaging::{
    Messaging,
    fallback::{self, FallbackDeadline},
    media::{self, FetchMedia},
    router::{self, RouteInbound},
    send::{self, SendMessage},
};

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

/// Books the recurring sweeps, trying again every second until the database takes it.
async fn book_recurring(pool: PgPool) {
    loop {
        let booked = async {
            ensure_recurring::<PreventiveSweep>(&pool).await?;
            ensure_recurring::<VisitSchedule>(&pool).await
        }
        .await;
        match booked {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not book the recurring sweeps: trying again in a second"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
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

/// Removes a panel session once it has expired, so the table holds only live sessions.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExpirePanelSession {
    pub session_id: Uuid,
}

impl Job for ExpirePanelSession {
    const QUEUE: &'static str = "panel-session-expiry";
}

#[tracing::instrument(skip(pool), fields(session_id = %job.session_id))]
async fn expire_panel_session(
    job: ExpirePanelSession,
    pool: Data<PgPool>,
) -> Result<(), BoxDynError> {
    let mut tx = pool.begin().await?;
    // The session may have been extended or already removed by sign-out: only an expired row goes.
    let removed = sqlx::query("DELETE FROM panel_sessions WHERE id = $1 AND expires_at <= now()")
        .bind(job.session_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // The timer can fire a little before the database's clock says the session expired (or the
    // session was extended): then look again when it does expire.
    let remaining: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - now())::float8 FROM panel_sessions WHERE id = $1",
    )
    .bind(job.session_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(seconds) = remaining {
        enqueue(
            &mut tx,
            &job,
            Duration::from_secs_f64(seconds.max(0.0) + 0.05),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::debug!(removed, "panel session expiry ran");
    Ok(())
}

/// How often delayed jobs that have come due are announced. The queue's insert trigger can only
/// NOTIFY jobs due at insert time, and apalis' interval strategy does not re-arm its timer after
/// it fires (a worker woken once slept until unrelated traffic): one query a second per process
/// sends the NOTIFY the trigger could not, and workers wake exactly as for new jobs.
const DUE_JOB_POLL: Duration = Duration::from_secs(1);

/// How often each worker says it is alive, and how many missed beats make it dead: a killed
/// process's fetched jobs go back to the queue after about 15 s (apalis' default was 5 minutes),
/// taken over by any live worker of the same queue, a restarted process included.
const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 3;

fn storage<J: Job>(pool: &PgPool) -> PollWith<PostgresStorage<J>, Draining> {
    let config = QueueConfig::default()
        .queue(J::QUEUE)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let storage = PostgresStorage::<J>::new(pool).with_config(config);
    PollWith::new(storage, Draining::new(pool.clone(), J::QUEUE))
}

/// How long a worker waits before listening again after its LISTEN connection was lost.
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

/// Wake-ups from LISTEN/NOTIFY, drained, and heard again after the connection is lost.
///
/// apalis' `PollWith` polls its strategy once before each fetch and ignores the answer. A stream
/// strategy with notifications backed up (a burst, or the announcer's) answers Ready without
/// registering a waker; the fetch then finds nothing and parks, and nothing wakes the worker
/// until its next heartbeat. That was the 30 s stall after every burst. Taking every queued
/// notification before answering leaves the stream Pending with our waker, so the next NOTIFY
/// always wakes the worker, which fetches until its queue is empty.
///
/// When the LISTEN connection is lost (the database restarted, a connection was cut), apalis'
/// listener ends for good and the worker would never be woken again: its queue stopped until the
/// process restarted. It listens again after a pause, then fetches, for what came meanwhile.
pub struct Draining {
    pool: PgPool,
    queue: &'static str,
    listener: Pubsub,
    relisten: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Draining {
    fn new(pool: PgPool, queue: &'static str) -> Self {
        Self {
            listener: Pubsub::new(pool.clone(), queue.to_owned()),
            pool,
            queue,
            relisten: None,
        }
    }
}

impl PollStrategy for Draining {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        use futures::StreamExt;
        use std::task::Poll;
        if let Some(pause) = &mut self.relisten {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.relisten = None;
            // Fetch now: notifications sent while nobody listened are lost.
            return Poll::Ready(Some(()));
        }
        let mut woken = false;
        loop {
            match self.listener.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(_))) => woken = true,
                // Listening failed (the database is down): the listener ends next, handled below.
                Poll::Ready(Some(Err(error))) => {
                    tracing::warn!(queue = self.queue, %error, "cannot listen for jobs")
                }
                Poll::Ready(None) => {
                    tracing::warn!(
                        queue = self.queue,
                        "lost the job notification connection: listening again"
                    );
                    self.listener = Pubsub::new(self.pool.clone(), self.queue.to_owned());
                    let mut pause = Box::pin(tokio::time::sleep(RELISTEN_PAUSE));
                    // Registers the waker for the pause.
                    let _ = pause.as_mut().poll(cx);
                    self.relisten = Some(pause);
                    return if woken {
                        Poll::Ready(Some(()))
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Pending if woken => return Poll::Ready(Some(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The pause after a job's first failure; it doubles with each failure, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// The pause before a job that failed `earlier` times before this failure may run again.
fn pause_after_failure(earlier: usize) -> Duration {
    let exponential = FIRST_PAUSE.saturating_mul(1u32 << earlier.min(16));
    exponential
        .min(MAX_PAUSE)
        .mul_f64(rand::Rng::random_range(&mut rand::rng(), 0.75..=1.0))
}

/// Wraps a job handler:
/// - a panic ends its job as `Killed` (recorded, never retried) instead of leaving it `Running`.
///   apalis' own `catch_panic` layer sits outside the layer that records a job's outcome, so with
///   it the row still said `Running`;
/// - a failure pauses before it is reported (0.5 s, doubling, at most 10 s). apalis runs a failed
///   job again at once, so a database cut for a few seconds used up all of a routing job's
///   attempts and the person never got an answer; this way they last minutes.
fn unwinding<J, D, F, Fut>(
    handler: F,
) -> impl Fn(J, Data<D>, Attempt) -> futures::future::BoxFuture<'static, Result<(), BoxDynError>> + Clone
where
    F: Fn(J, Data<D>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    use futures::FutureExt;
    move |job, data, attempt: Attempt| {
        let earlier = attempt.current();
        std::panic::AssertUnwindSafe(handler(job, data))
            .catch_unwind()
            .then(move |outcome| async move {
                if let Ok(Err(error)) = &outcome {
                    let pause = pause_after_failure(earlier);
                    tracing::warn!(%error, earlier_failures = earlier, pause_ms = pause.as_millis() as u64, "job failed: it runs again after a pause");
                    tokio::time::sleep(pause).await;
                }
                outcome
            })
            .map(|outcome| {
                outcome.unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|m| m.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a job panicked".into());
                    tracing::error!(%message, "job panicked: recorded as killed");
                    Err(Box::new(apalis::prelude::AbortError::new(format!(
                        "panicked: {message}"
                    ))) as BoxDynError)
                })
            })
            .boxed()
    }
}

/// Jobs one worker runs at once: each may hold a database connection, and the pool is shared
/// with the HTTP side.
const JOB_CONCURRENCY: usize = 8;

/// Registers one worker for job type `$job` with handler `$handler` and shared `$data`.
macro_rules! register {
    ($monitor:expr, $pool:expr, $instance:expr, $job:ty, $handler:expr, $data:expr) => {
        register!(
            $monitor,
            $pool,
            $instance,
            $job,
            $handler,
            $data,
            JOB_CONCURRENCY
        )
    };
    ($monitor:expr, $pool:expr, $instance:expr, $job:ty, $handler:expr, $data:expr, $concurrency:expr) => {{
        let pool = $pool.clone();
        let data = $data.clone();
        let name = format!("{}-{}", <$job as Job>::QUEUE, $instance);
        $monitor.register(move |_| {
            // A name per incarnation: a worker restarted after an error must not inherit the jobs
            // its failed incarnation held (they are released, see `release_failed_worker`).
            let incarnation = INCARNATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            WorkerBuilder::new(format!("{name}-{incarnation}"))
                .backend(storage::<$job>(&pool))
                .data(data.clone())
                .concurrency($concurrency)
                .build(unwinding($handler))
        })
    }};
}

/// Numbers each start of a worker in this process.
static INCARNATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Each worker holds one LISTEN connection of its own and needs more to poll and run jobs.
pub const WORKER_QUEUES: u32 = 9;

/// Runs every worker until `shutdown` resolves, then lets running jobs finish within `grace`.
pub async fn run_workers(
    pool: PgPool,
    messaging: Arc<Messaging>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    // Unique per process start, so a restarted process never takes over a live worker's identity.
    let instance = Uuid::now_v7().simple().to_string();
    let (announcer_stop, announcer_stopped) = tokio::sync::watch::channel(false);
    let announcer = tokio::spawn(announce_due_jobs(pool.clone(), announcer_stopped));
    let send_concurrency = messaging.config.send_concurrency;
    let monitor = Monitor::new();
    let monitor = register!(
        monitor,
        pool,
        instance,
        ExpirePanelSession,
        expire_panel_session,
        pool
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        RouteInbound,
        router::route_inbound,
        messaging
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        SendMessage,
        send::send_message,
        messaging,
        send_concurrency
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        FallbackDeadline,
        fallback::fallback_deadline,
        messaging
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        FetchMedia,
        media::fetch_media,
        messaging
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        WorkOrderTimer,
        timers::work_order_timer,
        messaging
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        PreventiveSweep,
        preventive::preventive_sweep,
        messaging
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        VisitTimer,
        visit_timers::visit_timer,
        messaging
    );
    let monitor = register!(
        monitor,
        pool,
        instance,
        VisitSchedule,
        schedule::visit_schedule,
        messaging
    );
    // Booked beside the workers, not before them: a database that is away at start (or a
    // connection cut just then) once ended this function early, and with it every worker, while
    // the HTTP side went on acknowledging messages nobody would route.
    let booking = tokio::spawn(book_recurring(pool.clone()));
    let result = monitor
        // A worker whose poll failed (database restarting, pool briefly exhausted) comes back
        // rather than leaving its queue unserved until the process restarts.
        .should_restart({
            let pool = pool.clone();
            move |worker, error| {
                tracing::warn!(worker = %worker.name(), %error, restarts = worker.restarts(), "job worker failed: restarting it");
                tokio::spawn(release_failed_worker(pool.clone(), worker.name().to_owned()));
                true
            }
        })
        .shutdown_timeout(grace)
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("job workers stopped with an error: {e}"));
    booking.abort();
    let _ = announcer_stop.send(true);
    let _ = announcer.await;
    release_held_jobs(&pool, &instance).await;
    result
}

/// A worker that failed (its database connection was cut, say) dropped the jobs it was running
/// and had fetched; their rows still name it. It restarts under a new name, so nothing would
/// ever take them back: they go back to the queue as soon as the database answers again.
async fn release_failed_worker(pool: PgPool, worker: String) {
    let started = std::time::Instant::now();
    loop {
        let released = sqlx::query(
            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL,
                 last_result = '{\"Err\": \"released: its worker failed\"}'::jsonb
             WHERE lock_by = $1 AND status IN ('Queued', 'Running')",
        )
        .bind(&worker)
        .execute(&pool)
        .await;
        match released {
            Ok(done) => {
                if done.rows_affected() > 0 {
                    tracing::info!(%worker, jobs = done.rows_affected(), "released the failed worker's jobs");
                }
                return;
            }
            // The dead-worker sweep takes them over after the heartbeat timeout anyway.
            Err(error) if started.elapsed() > Duration::from_secs(60) => {
                tracing::warn!(%worker, %error, "could not release the failed worker's jobs");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// After the workers stopped: jobs this process fetched and did not finish (waiting in a
/// worker's buffer, or cut off at the shutdown grace) go back to the queue now, for any other
/// process, instead of after the dead-worker timeout. Nothing here can run them any more, and
/// every job is safe to run again (a send asks the provider before sending twice).
async fn release_held_jobs(pool: &PgPool, instance: &str) {
    let released = sqlx::query(
        "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL,
             last_result = '{\"Err\": \"released at shutdown\"}'::jsonb
         WHERE lock_by LIKE '%-' || $1 || '-%' AND status IN ('Queued', 'Running')",
    )
    .bind(instance)
    .execute(pool)
    .await;
    match released {
        Ok(done) if done.rows_affected() > 0 => {
            tracing::info!(
                jobs = done.rows_affected(),
                "released the jobs this process held"
            )
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "could not release held jobs: others take them over after the dead-worker timeout")
        }
    }
}

/// Sends the NOTIFY for pending jobs whose time has come, once a second, until stopped.
async fn announce_due_jobs(pool: PgPool, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DUE_JOB_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // Recently due only (immediate jobs are dated 5 min back): a job missed by a reconnecting
        // listener is announced again; the worker's start-up fetch covers anything older.
        let announced = sqlx::query(
            "SELECT pg_notify('apalis::job::insert',
                        json_build_object('job_type', job_type, 'id', id, 'run_at', run_at)::text)
             FROM apalis.jobs
             WHERE status = 'Pending' AND run_at <= now() AND run_at > now() - interval '15 minutes'
             LIMIT 500",
        )
        .execute(&pool)
        .await;
        if let Err(error) = announced {
            tracing::warn!(%error, "could not announce due jobs; retrying in a second");
        }
    }
}

/// Queue depth by queue and status, for `/metrics`.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT job_type, status, count(*) FROM apalis.jobs GROUP BY job_type, status ORDER BY 1, 2")
        .fetch_all(pool)
        .await
}
