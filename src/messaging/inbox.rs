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
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

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
    /// Webhooks waiting for their messages to be committed (see [`Writer::busy`]).
    queueing: std::sync::Mutex<Queueing>,
    /// How many webhooks waiting on average make ingest busy: twice the cores, a queue that a
    /// machine with time to spare does not build (at 200 messages/s, under one waits).
    busy_at: f64,
}

/// How many webhooks wait, now and on average over about [`Queueing::WINDOW`]. The average,
/// not the count: the count drops to nothing at each group commit, even in a burst, and a few
/// webhooks arriving together at a quiet time make no burst.
struct Queueing {
    waiting: usize,
    average: f64,
    at: Instant,
}

impl Queueing {
    const WINDOW: Duration = Duration::from_millis(500);

    /// Brings the average up to `now`: it moves towards the count with time (an exponential
    /// moving average over time, not over events).
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        let kept = (-elapsed.as_secs_f64() / Self::WINDOW.as_secs_f64()).exp();
        self.average = self.average * kept + self.waiting as f64 * (1.0 - kept);
        self.at = now;
    }
}

/// While ingest is busy, the work of one kind (a queue's jobs, the drainer's batches) starts one
/// at a time, a set time apart: a trickle that keeps a burst that never ends from holding every
/// reply back.
pub struct Turns {
    every: Duration,
    next: std::sync::Mutex<Instant>,
}

impl Turns {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Takes the turn if it has come (`None`), or says when it comes.
    fn take_or_next(&self) -> Option<Instant> {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if *next <= now {
            *next = now + self.every;
            return None;
        }
        Some(*next)
    }
}

/// One webhook waiting on the writer, until dropped.
struct WaitingWebhook<'a>(&'a Writer);

impl<'a> WaitingWebhook<'a> {
    fn new(writer: &'a Writer) -> Self {
        writer.queueing(|queueing| queueing.waiting += 1);
        Self(writer)
    }
}

impl Drop for WaitingWebhook<'_> {
    fn drop(&mut self) {
        self.0.queueing(|queueing| queueing.waiting -= 1);
    }
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
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            pool,
            queue: OnceLock::new(),
            queueing: std::sync::Mutex::new(Queueing {
                waiting: 0,
                average: 0.0,
                at: Instant::now(),
            }),
            busy_at: 2.0 * cores as f64,
        }
    }

    /// Runs `change` on the queueing figures brought up to now, and returns its answer.
    fn queueing<T>(&self, change: impl FnOnce(&mut Queueing) -> T) -> T {
        let mut queueing = self
            .queueing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queueing.advance(Instant::now());
        change(&mut queueing)
    }

    /// Whether webhooks are queueing for the inbox: the machine has no time to spare for
    /// anything but acknowledging them (the job workers yield, see `worker`).
    pub fn busy(&self) -> bool {
        self.queueing(|queueing| queueing.average) >= self.busy_at
    }

    /// Resolves once ingest is not [`busy`](Self::busy).
    pub async fn calm(&self) {
        loop {
            let average = self.queueing(|queueing| queueing.average);
            if average < self.busy_at {
                return;
            }
            // When the average falls below busy if no webhook waits from now on; looked at
            // again then, a webhook or two having come meanwhile or not.
            let falls = Queueing::WINDOW.mul_f64((average / self.busy_at).ln());
            tokio::time::sleep(falls.max(Duration::from_millis(5))).await;
        }
    }

    /// The turn of work that yields to ingest: at once while ingest is not busy; while it is,
    /// when the burst eases or when the next of `turns` comes, whichever is first.
    pub async fn turn(&self, turns: &Turns) {
        let mut waited = false;
        while self.busy() {
            let Some(next) = turns.take_or_next() else {
                break;
            };
            waited = true;
            tokio::select! {
                () = self.calm() => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
        if waited {
            // Work held back for ingest: replies late by design, not by fault.
            metrics::counter!("work_yielded_to_ingest_total").increment(1);
        }
    }

    /// Keeps `messages`, committed when this returns. The drainer is woken when the current
    /// request ends (see `jobs::waking`); outside a request it finds them within a second.
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    pub async fn accept(&self, messages: &[Inbound]) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let _waiting = WaitingWebhook::new(self);
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
    use futures::FutureExt;

    fn writer() -> Writer {
        Writer::new(PgPool::connect_lazy("postgres://localhost/unused").unwrap())
    }

    /// Webhooks kept waiting on `writer`: twice what makes it busy once the average catches up.
    fn queue_on(writer: &Writer) -> Vec<WaitingWebhook<'_>> {
        (0..2 * writer.busy_at as usize)
            .map(|_| WaitingWebhook::new(writer))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn ingest_is_busy_while_webhooks_keep_queueing_not_for_a_moment() {
        let writer = writer();
        let waiting = queue_on(&writer);
        assert!(!writer.busy(), "a moment's queue is no burst");
        tokio::time::advance(Queueing::WINDOW).await;
        assert!(writer.busy());

        drop(waiting);
        let calm = Instant::now();
        writer.calm().await;
        let took = calm.elapsed();
        assert!(!writer.busy());
        assert!(
            took <= Queueing::WINDOW,
            "calm {took:?} after the queue went"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_ingest_is_busy_work_starts_a_turn_apart_and_all_of_it_once_it_eases() {
        let writer = writer();
        let every = Duration::from_millis(100);
        let turns = Turns::new(every);
        assert!(
            writer.turn(&turns).now_or_never().is_some(),
            "not busy: at once"
        );

        let waiting = queue_on(&writer);
        tokio::time::advance(Queueing::WINDOW).await;
        assert!(writer.busy());
        assert!(
            writer.turn(&turns).now_or_never().is_some(),
            "the first turn"
        );
        let mut second = Box::pin(writer.turn(&turns));
        let mut third = Box::pin(writer.turn(&turns));
        assert!((&mut second).now_or_never().is_none(), "the others wait");
        assert!((&mut third).now_or_never().is_none());

        tokio::time::advance(every).await;
        let started = [(&mut second).now_or_never(), (&mut third).now_or_never()];
        assert_eq!(
            started.iter().filter(|s| s.is_some()).count(),
            1,
            "one turn each time"
        );

        drop(waiting);
        let rest = if started[0].is_some() { third } else { second };
        tokio::time::timeout(Queueing::WINDOW, rest)
            .await
            .expect("eased: all of it starts");
    }

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
