//! The job workers: one apalis monitor running every domain's jobs, registered from one list,
//! and the inbox drainer that stores what webhooks kept (`messaging::inbox`).
//!
//! Workers are woken, not polling: in-process by the request or job that pushed their work (see
//! `jobs::waking`), and through one LISTEN connection per process for work pushed elsewhere.
//! Every process start registers workers under a fresh id. [`run_due_jobs`] runs the same
//! handlers inline, for tests and the CLI.

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_postgres::{Config as QueueConfig, PostgresStorage};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    audit,
    domains::{
        ambulance::timers::{self as trip_timers, TripTimer},
        audit_checkpoints::{self, AuditCheckpoint},
        care::{
            schedule::{self, VisitSchedule},
            timers::{self as visit_timers, VisitTimer},
        },
        maintenance::{
            preventive::{self, PreventiveSweep},
            timers::{self, WorkOrderTimer},
        },
        panel_sessions::{self, ExpirePanelSession},
        patients::{
            complaints::{self, ComplaintClock},
            feedback::{self, ReleaseAnonymousFeedback},
            surveys::{self, SurveyDue},
        },
    },
    jobs::{self, Job},
    messaging::{
        Messaging,
        fallback::{self, FallbackDeadline},
        inbox,
        media::{self, FetchMedia},
        router::{self, RouteInbound},
        send::{self, SendMessage},
    },
};

/// Keeps one run of each recurring sweep booked.
async fn ensure_recurring(pool: &PgPool) -> anyhow::Result<()> {
    jobs::ensure_recurring::<PreventiveSweep>(pool).await?;
    jobs::ensure_recurring::<AuditCheckpoint>(pool).await?;
    jobs::ensure_recurring::<VisitSchedule>(pool).await
}

/// Books the recurring sweeps, trying again every second until the database takes it.
async fn book_recurring(pool: PgPool) {
    loop {
        match ensure_recurring(&pool).await {
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

/// How often due jobs nobody has taken are announced: delayed jobs that have come due (the
/// queue's insert trigger only announces jobs due at insert time) and jobs whose wake-up was
/// lost (a crash just after their commit). One query a second per process, one NOTIFY per queue.
const DUE_JOB_POLL: Duration = Duration::from_secs(1);

/// How often each worker says it is alive, and how many missed beats make it dead: a killed
/// process's fetched jobs go back to the queue after about 15 s (apalis' default was 5 minutes),
/// taken over by any live worker of the same queue, a restarted process included.
const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 3;

fn storage<J: Job>(pool: &PgPool, wakeups: &jobs::Wakeups) -> PollWith<PostgresStorage<J>, Woken> {
    let config = QueueConfig::default()
        .queue(J::QUEUE)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let storage = PostgresStorage::<J>::new(pool).with_config(config);
    PollWith::new(storage, Woken::new(wakeups.of(J::QUEUE)))
}

/// How long the listener waits before listening again after its connection was lost.
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

/// Connections the workers hold for themselves: the one listening for new jobs.
pub const LISTENING_CONNECTIONS: u32 = 1;

/// Hears every new job's NOTIFY on one connection and wakes its queue's worker, until `stop`.
/// (apalis gives each worker a listener of its own: thirteen connections held, and PostgreSQL
/// delivering every job's NOTIFY to all thirteen backends, twelve of which threw it away.)
/// After a lost connection (the database restarted, the connection was cut) it listens again
/// and wakes every worker, for the jobs announced while nobody listened.
async fn listen_for_jobs(
    pool: PgPool,
    wakeups: Arc<jobs::Wakeups>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    #[derive(serde::Deserialize)]
    struct Announced {
        job_type: String,
    }
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let mut listener: Option<sqlx::postgres::PgListener> = None;
    loop {
        let Some(listening) = listener.as_mut() else {
            let connected = async {
                let mut listening = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listening.listen(jobs::JOB_CHANNEL).await?;
                Ok::<_, sqlx::Error>(listening)
            };
            let connected = tokio::select! {
                connected = connected => connected,
                _ = stopped(stop.clone()) => return,
            };
            match connected {
                Ok(listening) => {
                    listener = Some(listening);
                    wakeups.wake_all_here();
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for jobs: trying again shortly");
                    tokio::time::sleep(RELISTEN_PAUSE).await;
                }
            }
            continue;
        };
        let heard = tokio::select! {
            heard = listening.try_recv() => heard,
            _ = stopped(stop.clone()) => return,
        };
        match heard {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Announced>(notification.payload()) {
                    Ok(announced) => wakeups.wake_here(&announced.job_type),
                    Err(_) => wakeups.wake_all_here(),
                }
            }
            // The connection was lost; the next receive reconnects and listens again.
            Ok(None) => {
                tracing::warn!("lost the job notification connection: listening again");
                wakeups.wake_all_here();
            }
            Err(error) => {
                tracing::warn!(%error, "lost the job notification connection: listening again shortly");
                listener = None;
                tokio::time::sleep(RELISTEN_PAUSE).await;
            }
        }
    }
}

/// The wake-up strategy of every worker: its queue's [`jobs::Wakeups`] entry, drained.
///
/// apalis' `PollWith` polls its strategy once before each fetch and ignores the answer. A
/// strategy that answers Ready without registering a waker (apalis' stream strategy, with
/// notifications backed up after a burst) left the worker parked after an empty fetch until its
/// next heartbeat: the 30 s stall after every burst. Taking every stored wake-up before
/// answering leaves a fresh one registered, so the next wake-up always reaches the worker, which
/// fetches until its queue is empty.
pub struct Woken {
    notify: Arc<tokio::sync::Notify>,
    waiting: std::pin::Pin<Box<tokio::sync::futures::OwnedNotified>>,
}

impl Woken {
    fn new(notify: Arc<tokio::sync::Notify>) -> Self {
        Self {
            waiting: Box::pin(notify.clone().notified_owned()),
            notify,
        }
    }
}

impl PollStrategy for Woken {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        use std::task::Poll;
        let mut woken = false;
        while self.waiting.as_mut().poll(cx).is_ready() {
            woken = true;
            self.waiting = Box::pin(self.notify.clone().notified_owned());
        }
        if woken {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
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
///   attempts and the person never got an answer; this way they last minutes;
/// - the jobs it pushes wake their workers when it is done (see [`jobs::waking`]).
fn unwinding<J, D, F, Fut>(
    handler: F,
    wakeups: Arc<jobs::Wakeups>,
    ingest_first: IngestFirst,
) -> impl Fn(J, Data<D>, Attempt, TaskId) -> futures::future::BoxFuture<'static, Result<(), BoxDynError>>
+ Clone
where
    J: Job,
    F: Fn(J, Data<D>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    use futures::FutureExt;
    move |job, data, attempt: Attempt, id: TaskId| {
        let earlier = attempt.current();
        let origin = audit::Origin {
            request_id: Some(format!("job:{}:{id}", J::QUEUE)),
            ip: None,
        };
        let work = handler(job, data);
        let wakeups = wakeups.clone();
        let ingest_first = ingest_first.clone();
        let work = async move {
            ingest_first.take::<J>().await;
            jobs::waking(&wakeups, work).await
        };
        std::panic::AssertUnwindSafe(audit::within(origin, work))
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

/// While ingest is busy, a queue's jobs start this far apart.
const JOB_TURNS: Duration = Duration::from_millis(100);

/// While ingest is busy, the drainer stores a batch (100 messages) this far apart: it stores at
/// a fifth of the rate webhooks are kept (925–1,650 messages a second against 6,000–8,000).
const DRAIN_TURNS: Duration = Duration::from_secs(1);

/// Ingest before jobs: while webhooks queue for the inbox (a burst, see `inbox::Writer::busy`),
/// the jobs of a queue whose jobs yield start [`JOB_TURNS`] apart, the others waiting until the
/// burst eases. A provider not answered in time retries or gives up; a reply is only later. On
/// two cores, routing during a burst took the machine and acknowledged at a quarter of the rate
/// it could, and still most of it with one routing job at a time.
#[derive(Clone)]
struct IngestFirst {
    messaging: Arc<Messaging>,
    turns: Arc<inbox::Turns>,
}

impl IngestFirst {
    fn new(messaging: Arc<Messaging>) -> Self {
        Self {
            messaging,
            turns: Arc::new(inbox::Turns::new(JOB_TURNS)),
        }
    }

    /// Waits for a `J` job's turn.
    async fn take<J: Job>(&self) {
        if J::YIELDS_TO_INGEST {
            self.messaging.inbox.turn(&self.turns).await;
        }
    }
}

/// Jobs one worker runs at once: each may hold a database connection, and the pool is shared
/// with the HTTP side.
const JOB_CONCURRENCY: usize = 8;

/// A job's concurrency: its own rule applied to the running service, or the default.
macro_rules! concurrency {
    ($messaging:ident) => {
        JOB_CONCURRENCY
    };
    ($messaging:ident, $rule:expr) => {
        ($rule)($messaging.as_ref())
    };
}

/// Every job the service runs, with its handler: one list for the apalis workers, the queue
/// count and [`run_due_jobs`], so none of them can forget a job.
macro_rules! every_job {
    ($($job:ty => $handler:path $(, concurrency = $concurrency:expr)?;)*) => {
        fn register_all(
            monitor: Monitor,
            workers: &Workers,
            messaging: &Arc<Messaging>,
        ) -> Monitor {
            $(
                let concurrency = concurrency!(messaging $(, $concurrency)?);
                let monitor = register::<$job, _, _>(
                    monitor, workers, messaging, $handler, concurrency,
                );
            )*
            monitor
        }

        /// Runs one job of queue `queue` from its stored arguments; `None` for an unknown queue.
        async fn run_stored(
            queue: &str,
            id: &str,
            args: &[u8],
            messaging: &Arc<Messaging>,
        ) -> Option<Result<(), BoxDynError>> {
            $(
                if queue == <$job as Job>::QUEUE {
                    return Some(match serde_json::from_slice::<$job>(args) {
                        Ok(job) => {
                            let origin = audit::Origin { request_id: Some(format!("job:{queue}:{id}")), ip: None };
                            audit::within(origin, $handler(job, Data::new(messaging.clone()))).await
                        }
                        Err(error) => Err(error.into()),
                    });
                }
            )*
            None
        }
    };
}

every_job! {
    ExpirePanelSession => panel_sessions::expire_panel_session;
    RouteInbound => router::route_inbound;
    SendMessage => send::send_message, concurrency = |m: &Messaging| m.config.send_concurrency;
    FallbackDeadline => fallback::fallback_deadline;
    FetchMedia => media::fetch_media;
    WorkOrderTimer => timers::work_order_timer;
    PreventiveSweep => preventive::preventive_sweep;
    VisitTimer => visit_timers::visit_timer;
    VisitSchedule => schedule::visit_schedule;
    SurveyDue => surveys::survey_due;
    ComplaintClock => complaints::complaint_clock;
    TripTimer => trip_timers::trip_timer;
    AuditCheckpoint => audit_checkpoints::audit_checkpoint;
    ReleaseAnonymousFeedback => feedback::release_anonymous_feedback;
}

/// What every worker of this process shares.
struct Workers {
    pool: PgPool,
    /// Unique per process start, so a restarted process never takes over a live worker's
    /// identity.
    instance: String,
    wakeups: Arc<jobs::Wakeups>,
}

/// Registers the worker of job type `J`, running `handler` with `concurrency` jobs at once.
fn register<J, F, Fut>(
    monitor: Monitor,
    workers: &Workers,
    messaging: &Arc<Messaging>,
    handler: F,
    concurrency: usize,
) -> Monitor
where
    J: Job,
    F: Fn(J, Data<Arc<Messaging>>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    let pool = workers.pool.clone();
    let wakeups = workers.wakeups.clone();
    let messaging = messaging.clone();
    let name = format!("{}-{}", J::QUEUE, workers.instance);
    monitor.register(move |_| {
        // A name per incarnation: a worker restarted after an error must not inherit the jobs
        // its failed incarnation held (they are released, see `release_failed_worker`).
        let incarnation = INCARNATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WorkerBuilder::new(format!("{name}-{incarnation}"))
            .backend(storage::<J>(&pool, &wakeups))
            .data(messaging.clone())
            .concurrency(concurrency)
            .build(unwinding(
                handler.clone(),
                wakeups.clone(),
                IngestFirst::new(messaging.clone()),
            ))
    })
}

/// Numbers each start of a worker in this process.
static INCARNATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs every worker until `shutdown` resolves, then lets running jobs finish within `grace`.
pub async fn run_workers(
    pool: PgPool,
    messaging: Arc<Messaging>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let workers = Workers {
        pool: pool.clone(),
        instance: Uuid::now_v7().simple().to_string(),
        wakeups: messaging.wakeups.clone(),
    };
    let (helpers_stop, helpers_stopped) = tokio::sync::watch::channel(false);
    let announcer = tokio::spawn(announce_due_jobs(pool.clone(), helpers_stopped.clone()));
    let drainer = tokio::spawn(keep_draining_inbox(
        messaging.clone(),
        workers.wakeups.clone(),
        helpers_stopped.clone(),
    ));
    let listener = tokio::spawn(listen_for_jobs(
        pool.clone(),
        workers.wakeups.clone(),
        helpers_stopped,
    ));
    let monitor = register_all(Monitor::new(), &workers, &messaging);
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
    let _ = helpers_stop.send(true);
    let _ = announcer.await;
    let _ = drainer.await;
    let _ = listener.await;
    release_held_jobs(&pool, &workers.instance).await;
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

/// Stores what webhooks kept in the inbox: when woken (by the request that kept it, or its
/// NOTIFY from another process) and once a second, for rows put off after a failure or whose
/// wake-up was lost; a batch a [`DRAIN_TURNS`] while ingest is busy. A drain in progress when
/// the workers stop finishes (it is one short transaction per batch); what it did not take
/// waits in the inbox for the next start.
async fn keep_draining_inbox(
    messaging: Arc<Messaging>,
    wakeups: Arc<jobs::Wakeups>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let woken = wakeups.of(inbox::DRAINER);
    let turns = inbox::Turns::new(DRAIN_TURNS);
    let pool = &messaging.pool;
    loop {
        // A batch at a time in a waking scope: its routing jobs wake their worker as soon as it
        // is committed, not when a long backlog is through.
        loop {
            messaging.inbox.turn(&turns).await;
            match jobs::waking(&wakeups, inbox::drain_batch(pool)).await {
                Ok((_, true)) => continue,
                Ok((_, false)) => break,
                Err(error) => {
                    tracing::warn!(%error, "could not drain the inbox; trying again in a second");
                    break;
                }
            }
        }
        tokio::select! {
            _ = woken.notified() => {}
            _ = tokio::time::sleep(DUE_JOB_POLL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
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
            "SELECT pg_notify($1, json_build_object('job_type', job_type)::text)
             FROM (SELECT DISTINCT job_type FROM apalis.jobs
                    WHERE status = 'Pending' AND run_at <= now()
                      AND run_at > now() - interval '15 minutes') AS due",
        )
        .bind(jobs::JOB_CHANNEL)
        .execute(&pool)
        .await;
        if let Err(error) = announced {
            tracing::warn!(%error, "could not announce due jobs; retrying in a second");
        }
    }
}

/// Stores what waits in the inbox and runs every job that is due, one at a time in this task,
/// until none is left; returns how many jobs ran. For tests and `fieldline simulate`: what
/// happened is then done, and what did not happen will not, without waiting on a clock. A job
/// that fails is put off by its pause, as the workers would put it off.
///
/// The job's row stays locked while it runs, so a running worker skips it and a crash leaves it
/// pending, as it was. A recurring sweep runs at most once per call: its row is still pending
/// while it runs, so it books no next run itself, and the next call books it again.
#[tracing::instrument(skip(messaging))]
pub async fn run_due_jobs(messaging: &Arc<Messaging>) -> anyhow::Result<usize> {
    // As a worker process would, so the sweeps run here too.
    ensure_recurring(&messaging.pool).await?;
    let mut ran = 0;
    // As the drainer would: what webhooks kept is stored (and its routing jobs pushed) first,
    // and once more before saying nothing is left (jobs never add to the inbox).
    inbox::drain(&messaging.pool).await?;
    loop {
        let mut claim = messaging.pool.begin().await?;
        let due: Option<(String, String, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT id, job_type, job, attempts FROM apalis.jobs
              WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
                AND run_at < now()
              ORDER BY priority DESC, run_at, id
              LIMIT 1
              FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *claim)
        .await?;
        let Some((id, queue, args, earlier)) = due else {
            drop(claim);
            if inbox::drain(&messaging.pool).await? > 0 {
                continue;
            }
            return Ok(ran);
        };
        let outcome = run_stored(&queue, &id, &args, messaging)
            .await
            .unwrap_or_else(|| Err(format!("no handler for queue {queue}").into()));
        let (status, result, pause) = match &outcome {
            Ok(()) => ("Done", serde_json::json!({"Ok": null}), Duration::ZERO),
            Err(error) => (
                "Failed",
                serde_json::json!({"Err": error.to_string()}),
                pause_after_failure(earlier.max(0) as usize),
            ),
        };
        sqlx::query(
            "UPDATE apalis.jobs
                SET status = $2, last_result = $3, done_at = now(), attempts = attempts + 1,
                    run_at = CASE WHEN $2 = 'Failed' THEN now() + make_interval(secs => $4) ELSE run_at END
              WHERE id = $1",
        )
        .bind(&id)
        .bind(status)
        .bind(result)
        // Whole microseconds: PostgreSQL intervals hold no nanoseconds.
        .bind(pause.as_micros() as f64 / 1e6)
        .execute(&mut *claim)
        .await?;
        claim.commit().await?;
        ran += 1;
    }
}
