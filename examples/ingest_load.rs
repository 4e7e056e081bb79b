//! Load run for the signed webhook ingest path and the reply path, against the real server and
//! a real database, with a bare server measured in the same run as the baseline.
//!
//! ```sh
//! cargo run --release --example ingest_load -- 2000 16
//! ```
//!
//! Arguments: requests per phase (default 2000), concurrency (default 16). Phases, one after
//! another in this process, each against a fresh database on `TEST_DATABASE_URL`'s server
//! (default local):
//!
//! 1. **bare**: a plain axum route that checks the Twilio signature and commits one
//!    `INSERT ... ON CONFLICT DO NOTHING`: the physical floor for this machine.
//! 2. **workers off**: `fieldline` ingesting signed webhooks (the provider's 2xx means kept in
//!    the inbox); then the time the inbox drainer takes to store them all.
//! 3. **workers on**: the same, with the job workers routing each message and replying through
//!    a local fake Twilio, in one process: 400 messages at 200/s just after its start, half a
//!    phase at 200/s, a phase flat out (the burst), and half a phase at 200/s once the burst has
//!    drained. The time from sending the webhook to the reply reaching the fake is the
//!    inbound→provider latency; each segment also prints where that time went, hop by hop.
//!
//! Phases 1 and 2 alternate, three rounds each, and their ratio is the median of the rounds'.
//!
//! With `ONLY=replies`, one bare round and the workers-on phase only (the quick loop while
//! working on the reply path).
//!
//! With `KEEP_DBS=1` the databases are kept, to look into afterwards (`apalis.jobs` has when
//! each job was pushed, started and done; `messages` when each message came, was routed and sent).
//!
//! `DATABASE_MAX_CONNECTIONS` sets the service's pool (default: the service's default).
//!
//! With `MARK_LOAD=1`, a line `load starts` as each workers-on segment's load begins (to start a
//! profiler, e.g. `perf record -a`, on that segment).
//!
//! Printed: throughput, median and p99 latency, ratios against the bare phase, and the
//! process's resident memory after each phase. Ratios are what to compare between runs and
//! machines; the absolute figures move with the machine's load.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use fieldline::{
    Application, Config,
    audit::{self, Actor},
    channels::signature,
    domains::tenancy::{self, NewTenant},
    messaging::channels::{self, NewChannel},
    types::{Locale, Slug, TimeZone},
};
use sqlx::PgPool;
use tokio::sync::Semaphore;

const PUBLIC: &str = "https://fieldline.test";
const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "load-test-token";
const WEBHOOK: &str = "/webhooks/twilio/messages";
const OUR_NUMBER: &str = "+251911500000";
/// Alternating rounds of the bare and the workers-off phase.
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(2000);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432".into());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    println!("requests per phase: {requests}, concurrency: {concurrency}");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>8}",
        "phase", "req/s", "p50 ms", "p99 ms", "x bare", "reply p50", "reply p99", "RSS MB"
    );

    // 1 and 2: the bare baseline and fieldline with workers off, in alternating rounds so both
    //    see the same machine (shared machines drift by a factor of two within a minute); the
    //    ratio is taken within each round and its median quoted.
    let bare_db = Database::create(&server, "bare").await?;
    sqlx::query(
        "CREATE TABLE inbound (sid text PRIMARY KEY, sender text NOT NULL, body text NOT NULL)",
    )
    .execute(&bare_db.pool)
    .await?;
    let bare_base = serve_bare(bare_db.pool.clone()).await?;
    let off_db = Database::create(&server, "off").await?;
    let off = Fieldline::start(&off_db, false, "http://127.0.0.1:9").await?;
    let replies_only = std::env::var("ONLY").is_ok_and(|only| only == "replies");
    let mut bares = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..if replies_only { 1 } else { ROUNDS } {
        let first = round * requests;
        let bare = run(&client, requests, concurrency, |i| {
            (format!("{bare_base}{WEBHOOK}"), signed(first + i, 0))
        })
        .await;
        report(
            &format!("bare axum + one INSERT, round {}", round + 1),
            &bare,
            None,
            None,
        );
        if !replies_only {
            let phase = run(&client, requests, concurrency, |i| {
                (format!("{}{WEBHOOK}", off.base), signed(first + i, 1))
            })
            .await;
            report(
                &format!("fieldline, workers off, round {}", round + 1),
                &phase,
                Some(&bare),
                None,
            );
            ratios.push(phase.rate() / bare.rate());
        }
        bares.push(bare);
    }
    // The later phases are compared with the median bare round.
    bares.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let bare = bares.swap_remove(bares.len() / 2);
    if !replies_only {
        ratios.sort_by(f64::total_cmp);
        println!(
            "  workers off, median of the rounds' ratios: {:.2}",
            ratios[ratios.len() / 2]
        );
        // What the webhooks kept in the inbox, stored afterwards as a worker process would.
        let draining = Instant::now();
        let drained = fieldline::messaging::inbox::drain(&off.pool).await?;
        println!(
            "  then stored from the inbox: {drained} in {:.2} s, {:.0}/s",
            draining.elapsed().as_secs_f64(),
            drained as f64 / draining.elapsed().as_secs_f64()
        );
        off.check_stored(requests * ROUNDS).await?;
    }

    // The middleware stack alone: /healthz through fieldline against a bare axum route.
    let bare_health = health(&client, &bare_base, requests, concurrency).await;
    report("bare axum GET /healthz", &bare_health, None, None);
    let health_phase = health(&client, &off.base, requests, concurrency).await;
    report(
        "fieldline GET /healthz",
        &health_phase,
        Some(&bare_health),
        None,
    );
    off.stop().await?;

    // 3. fieldline, workers on, replying through a fake Twilio, one process throughout: the
    //    first seconds after its start at 200/s, then 200/s before a burst, the burst flat out,
    //    and 200/s once the burst has drained (the rate replies are promised at). Each segment
    //    waits for all of its replies before the next begins.
    let fake = FakeTwilio::start().await?;
    let on_db = Database::create(&server, "on").await?;
    let on = Fieldline::start(&on_db, true, &fake.base).await?;
    let steady = (requests / 2).max(1);
    for (name, count, rate, segment) in [
        (
            "workers on, 200/s, first 2 s after start",
            400,
            Some(200.0),
            2,
        ),
        ("workers on, 200/s, before a burst", steady, Some(200.0), 3),
        ("workers on, burst flat out", requests, None, 4),
        ("workers on, 200/s, after the burst", steady, Some(200.0), 5),
    ] {
        let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let url = format!("{}{WEBHOOK}", on.base);
        let cpu_before = cpu_seconds();
        let arrived_before = fake.count();
        if std::env::var("MARK_LOAD").is_ok() {
            use std::io::Write;
            println!("  load starts");
            std::io::stdout().flush()?;
        }
        let phase = run_paced(&client, count, concurrency, rate, {
            let sent_at = sent_at.clone();
            move |i| {
                sent_at
                    .lock()
                    .unwrap()
                    .insert(sender(i, segment), Instant::now());
                (url.clone(), signed(i, segment))
            }
        })
        .await;
        // Every reply must arrive; then inbound→provider is arrival minus sending.
        let sent_at = sent_at.lock().unwrap().clone();
        let replies_of_segment = || -> Vec<(String, Instant)> {
            fake.arrivals()
                .into_iter()
                .filter(|(to, _)| sent_at.contains_key(to))
                .collect()
        };
        // Polled by a count: matching every arrival each time cost this process (which the
        // service shares the cores with) a clone and a lookup of each of tens of thousands.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline
            && (fake.count() < arrived_before + count || replies_of_segment().len() < count)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu_after = cpu_seconds();
        let arrivals = replies_of_segment();
        println!(
            "  CPU per reply: {:.2} ms this process (server, load and fake provider), {:.2} ms PostgreSQL",
            (cpu_after.0 - cpu_before.0) * 1000.0 / arrivals.len().max(1) as f64,
            (cpu_after.1 - cpu_before.1) * 1000.0 / arrivals.len().max(1) as f64,
        );
        if let (Some(first_sent), Some((_, last_reply))) = (
            sent_at.values().min(),
            arrivals.iter().max_by_key(|(_, at)| *at),
        ) {
            let span = last_reply.duration_since(*first_sent).as_secs_f64();
            // Near 100 %, replies came as fast as the cores could make them: a message that
            // arrives behind a thousand others waits for their work, however they are ordered.
            let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
            let busy = (cpu_after.0 - cpu_before.0 + cpu_after.1 - cpu_before.1) / (cores * span);
            println!(
                "  replies: {} in {span:.1} s from the first webhook, {:.0}/s; cores busy {:.0} % of that time",
                arrivals.len(),
                arrivals.len() as f64 / span,
                busy * 100.0
            );
        }
        let mut replies: Vec<Duration> = arrivals
            .iter()
            .filter_map(|(to, at)| sent_at.get(to).map(|sent| at.duration_since(*sent)))
            .collect();
        replies.sort();
        report(name, &phase, Some(&bare), Some(&replies));
        if replies.len() < count {
            println!(
                "  only {} of {count} replies reached the provider within 120 s",
                replies.len()
            );
        }
        on.stages(segment).await?;
    }
    on.check_stored(400 + 2 * steady + requests).await?;
    on.stop().await?;
    let databases = [bare_db, off_db, on_db];
    for db in databases
        .into_iter()
        .filter(|_| std::env::var("KEEP_DBS").is_err())
    {
        db.drop().await?;
    }
    Ok(())
}

/// A sender per request and phase, so each reply can be told apart.
fn sender(i: usize, phase: usize) -> String {
    format!("{}{i:06}", senders_of(phase))
}

/// What every sender of `phase` starts with.
fn senders_of(phase: usize) -> String {
    format!("+25191{phase}")
}

/// A Twilio message webhook body and its signature.
fn signed(i: usize, phase: usize) -> (String, String) {
    let from = sender(i, phase);
    let sid = format!("SM{phase}{i:031}");
    let pairs = [
        ("AccountSid", SID),
        ("Body", "help"),
        ("From", from.as_str()),
        ("MessageSid", sid.as_str()),
        ("NumMedia", "0"),
        ("To", OUR_NUMBER),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = signature::twilio_expected(TOKEN, &format!("{PUBLIC}{WEBHOOK}"), &params);
    (body, signature)
}

/// The baseline: verify, one statement, 200.
async fn serve_bare(pool: PgPool) -> anyhow::Result<String> {
    async fn ingest(State(pool): State<PgPool>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let given = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if !signature::twilio_valid(TOKEN, &format!("{PUBLIC}{WEBHOOK}"), &params, given) {
            return StatusCode::FORBIDDEN;
        }
        let field = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        match sqlx::query(
            "INSERT INTO inbound (sid, sender, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(field("MessageSid"))
        .bind(field("From"))
        .bind(field("Body"))
        .execute(&pool)
        .await
        {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route(WEBHOOK, post(ingest))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(pool);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// A Twilio that accepts every send at once and notes when each reply arrived, by recipient.
struct FakeTwilio {
    base: String,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl FakeTwilio {
    async fn start() -> anyhow::Result<Self> {
        let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let recorded = arrivals.clone();
        // Unique for the fake's life, as Twilio's are: each send's id goes in a unique index.
        let sids = Arc::new(AtomicUsize::new(1));
        let app = Router::new().fallback(move |body: Bytes| {
            let recorded = recorded.clone();
            let sids = sids.clone();
            async move {
                let at = Instant::now();
                let to = url::form_urlencoded::parse(&body)
                    .find(|(k, _)| k == "To")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                recorded.lock().unwrap().push((to, at));
                let sid = format!("SM9{:031}", sids.fetch_add(1, Ordering::Relaxed));
                (
                    StatusCode::CREATED,
                    axum::Json(serde_json::json!({ "sid": sid, "status": "queued" })),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base, arrivals })
    }

    fn arrivals(&self) -> Vec<(String, Instant)> {
        self.arrivals.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
}

struct Database {
    server: String,
    name: String,
    pool: PgPool,
}

impl Database {
    async fn create(server: &str, phase: &str) -> anyhow::Result<Self> {
        let name = format!("fieldline_load_{phase}_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&format!("{server}/postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(20)
            .connect(&format!("{server}/{name}"))
            .await?;
        Ok(Self {
            server: server.to_owned(),
            name,
            pool,
        })
    }

    async fn drop(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let admin = PgPool::connect(&format!("{}/postgres", self.server)).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&admin)
        .await?;
        Ok(())
    }
}

/// People who wrote before the run, four messages each (two in, two out), and their jobs.
const EARLIER_CONTACTS: i32 = 5_000;

/// A history like a database in use has, then statistics on it. On empty tables the planner
/// rightly prefers scanning them whole; a connection that caches such a plan keeps scanning
/// as the table grows, until autovacuum's first ANALYZE (a minute or more): a brand-new database
/// for a minute, not the steady state this benchmark is for.
async fn seed_history(tx: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    sqlx::query(
        "WITH ch AS (SELECT id, tenant_id FROM channels),
         people AS (
             INSERT INTO contacts (tenant_id, phone)
             SELECT ch.tenant_id, '+25192' || lpad(n::text, 7, '0') FROM ch, generate_series(1, $1) n
             RETURNING id, tenant_id),
         conversation AS (
             INSERT INTO conversations (tenant_id, contact_id, channel_id, last_inbound_at, last_outbound_at)
             SELECT people.tenant_id, people.id, ch.id, now() - interval '1 day', now() - interval '1 day'
             FROM people, ch
             RETURNING id, tenant_id, contact_id, channel_id)
         INSERT INTO messages (tenant_id, conversation_id, channel_id, contact_id, direction, body,
                               provider, provider_message_id, status, received_at, routed_at,
                               handled_by, queued_at, sent_at, delivered_at)
         SELECT c.tenant_id, c.id, c.channel_id, c.contact_id, d.direction, 'earlier', 'twilio',
                'SMH' || replace(c.contact_id::text, '-', '') || d.n,
                CASE d.direction WHEN 'inbound' THEN 'received' ELSE 'delivered' END,
                CASE d.direction WHEN 'inbound' THEN now() - interval '1 day' END,
                CASE d.direction WHEN 'inbound' THEN now() - interval '1 day' END,
                CASE d.direction WHEN 'inbound' THEN 'help' END,
                CASE d.direction WHEN 'outbound' THEN now() - interval '1 day' END,
                CASE d.direction WHEN 'outbound' THEN now() - interval '1 day' END,
                CASE d.direction WHEN 'outbound' THEN now() - interval '1 day' END
         FROM conversation c,
              (VALUES ('inbound', 1), ('outbound', 2), ('inbound', 3), ('outbound', 4)) AS d (direction, n)",
    )
    .bind(EARLIER_CONTACTS)
    .execute(&mut *tx)
    .await?;
    // Their finished jobs: a routing job for each message in, a send for each out.
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, run_at, done_at, last_result)
         SELECT 'earlier-' || queue || '-' || n, queue, convert_to('{}', 'UTF8'), 'Done', 1,
                now() - interval '1 day', now() - interval '1 day', '{\"Ok\": null}'
         FROM generate_series(1, $1 * 2) n, unnest(ARRAY['route-inbound', 'send-message']) queue",
    )
    .bind(EARLIER_CONTACTS)
    .execute(tx)
    .await?;
    Ok(())
}

/// `fieldline` in this process, with one organisation owning the number the webhooks are for.
struct Fieldline {
    base: String,
    pool: PgPool,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Fieldline {
    async fn start(db: &Database, workers: bool, twilio_base: &str) -> anyhow::Result<Self> {
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", format!("{}/{}", db.server, db.name)),
            ("PORT", "0".into()),
            ("PUBLIC_BASE_URL", PUBLIC.into()),
            ("TWILIO_ACCOUNT_SID", SID.into()),
            ("TWILIO_AUTH_TOKEN", TOKEN.into()),
            ("TWILIO_API_BASE", twilio_base.into()),
            ("JOB_WORKERS", if workers { "on" } else { "off" }.into()),
            (
                "DATABASE_MAX_CONNECTIONS",
                std::env::var("DATABASE_MAX_CONNECTIONS").unwrap_or_else(|_| {
                    fieldline::config::DEFAULT_DATABASE_CONNECTIONS.to_string()
                }),
            ),
            ("OUTBOUND_PER_NUMBER_PER_SECOND", "1000".into()),
            (
                "FIELDLINE_DATA_DIR",
                std::env::temp_dir().join(&db.name).display().to_string(),
            ),
        ]);
        let config = Config::from_lookup(|k| env.get(k).cloned())?;
        let app = Application::build(config).await?;
        let pool = app.pool().clone();
        let base = format!("http://127.0.0.1:{}", app.port());
        let mut tx = audit::begin(&pool, Actor::Cli).await?;
        let tenant = tenancy::create_tenant(
            &mut tx,
            &NewTenant {
                name: "Load".into(),
                slug: Slug::parse("load").map_err(anyhow::Error::msg)?,
                time_zone: TimeZone::parse("UTC").map_err(anyhow::Error::msg)?,
                locale: Locale::parse("en").map_err(anyhow::Error::msg)?,
            },
        )
        .await?;
        let input = NewChannel {
            provider: "twilio".into(),
            kind: "sms".into(),
            phone_number: OUR_NUMBER.into(),
            provider_id: None,
            display_name: None,
        };
        channels::add(&mut tx, tenant.id, &input)
            .await
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
        seed_history(&mut tx).await?;
        tx.commit().await?;
        // Sealed and analysed before the run, as they would be long since.
        audit::seal(&pool).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            pool,
            stop,
            task,
        })
    }

    async fn check_stored(&self, expected: usize) -> anyhow::Result<()> {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE direction = 'inbound' AND body <> 'earlier'",
        )
        .fetch_one(&self.pool)
        .await?;
        if stored != expected as i64 {
            println!("  stored {stored} of {expected} acknowledged messages: LOST MESSAGES");
        }
        Ok(())
    }

    /// Where inbound→provider time goes, hop by hop (p50 / p99 ms), from the rows' own times:
    /// kept in the inbox → stored by the drainer → reply written by the router → claimed by the
    /// send job → the provider's acceptance recorded (its last update: the fake sends no
    /// status callbacks).
    async fn stages(&self, phase: usize) -> anyhow::Result<()> {
        let hops: Vec<(String, Option<f64>, Option<f64>)> = sqlx::query_as(
            "WITH pair AS (
                 SELECT i.received_at AS kept, i.created_at AS stored, o.created_at AS routed,
                        o.sending_at AS claimed, o.updated_at AS accepted
                   FROM messages i
                   JOIN messages o ON o.contact_id = i.contact_id AND o.direction = 'outbound'
                   JOIN contacts c ON c.id = i.contact_id
                  WHERE i.direction = 'inbound' AND c.phone::text LIKE $1),
             hop (n, name, ms) AS (
                 SELECT 1, 'inbox → stored', 1000 * extract(epoch FROM stored - kept) FROM pair
                 UNION ALL SELECT 2, 'stored → reply written', 1000 * extract(epoch FROM routed - stored) FROM pair
                 UNION ALL SELECT 3, 'reply written → claimed', 1000 * extract(epoch FROM claimed - routed) FROM pair
                 UNION ALL SELECT 4, 'claimed → accepted', 1000 * extract(epoch FROM accepted - claimed) FROM pair)
             SELECT name, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::float8,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::float8
               FROM hop GROUP BY n, name ORDER BY n",
        )
        .bind(format!("{}%", senders_of(phase)))
        .fetch_all(&self.pool)
        .await?;
        let hops: Vec<String> = hops
            .iter()
            .map(|(name, p50, p99)| {
                format!(
                    "{name} {:.0}/{:.0}",
                    p50.unwrap_or(f64::NAN),
                    p99.unwrap_or(f64::NAN)
                )
            })
            .collect();
        println!("  hops, p50/p99 ms: {}", hops.join(", "));
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

struct Phase {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// Why requests were not acknowledged (a provider would send these again).
    failures: Vec<String>,
}

impl Phase {
    fn at(&self, q: f64) -> f64 {
        quantile(&self.latencies, q)
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

async fn run(
    client: &reqwest::Client,
    requests: usize,
    concurrency: usize,
    request: impl Fn(usize) -> (String, (String, String)),
) -> Phase {
    run_paced(client, requests, concurrency, None, request).await
}

/// As [`run`], but at most `per_second` requests are started each second (an open load, as
/// providers send), when given.
async fn run_paced(
    client: &reqwest::Client,
    requests: usize,
    concurrency: usize,
    per_second: Option<f64>,
    request: impl Fn(usize) -> (String, (String, String)),
) -> Phase {
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        if let Some(rate) = per_second {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
        }
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (url, (body, signature)) = request(i);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await;
            drop(permit);
            (sent.elapsed(), failure(response))
        }));
    }
    collect(tasks, started).await
}

/// Why a request was not acknowledged, if it was not.
fn failure(response: reqwest::Result<reqwest::Response>) -> Option<String> {
    match response {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Some(format!("{e}")),
    }
}

/// Waits for every request of a phase; their latencies, sorted, and why any failed.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Duration, Option<String>)>>,
    started: Instant,
) -> Phase {
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = Vec::new();
    for task in tasks {
        let (latency, failure) = task.await.unwrap();
        latencies.push(latency);
        failures.extend(failure);
    }
    latencies.sort();
    Phase {
        latencies,
        elapsed: started.elapsed(),
        failures,
    }
}

/// `requests` GETs of `/healthz` on `base`, `concurrency` at a time.
async fn health(
    client: &reqwest::Client,
    base: &str,
    requests: usize,
    concurrency: usize,
) -> Phase {
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), format!("{base}/healthz"));
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = client.get(&url).send().await;
            drop(permit);
            (sent.elapsed(), failure(response))
        }));
    }
    collect(tasks, started).await
}

/// CPU seconds used so far by this process and by every process named `postgres` (the local
/// server's backends; zero where the database is elsewhere). Less at the mercy of other tenants
/// of a shared machine than wall time: the figure to compare between changes to the reply path.
fn cpu_seconds() -> (f64, f64) {
    // utime + stime, fields 14 and 15 of /proc/PID/stat, in clock ticks (100 a second on Linux).
    let ticks = |stat: &str| -> Option<f64> {
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
    };
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(f64::NAN);
    let postgres = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .filter_map(|stat| ticks(&stat))
        .sum();
    (own, postgres)
}

/// Resident memory of this process (the servers and the load generator), in MB.
fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn report(name: &str, phase: &Phase, bare: Option<&Phase>, replies: Option<&[Duration]>) {
    let ratio = bare.map_or("-".to_owned(), |b| {
        format!("{:.2}", phase.rate() / b.rate())
    });
    let (reply_p50, reply_p99) = replies.map_or(("-".to_owned(), "-".to_owned()), |r| {
        (
            format!("{:.1}", quantile(r, 0.5)),
            format!("{:.1}", quantile(r, 0.99)),
        )
    });
    println!(
        "{name:<34} {:>9.0} {:>9.2} {:>9.2} {ratio:>9} {reply_p50:>12} {reply_p99:>12} {:>8.0}{}",
        phase.rate(),
        phase.at(0.5),
        phase.at(0.99),
        resident_mb(),
        if phase.failures.is_empty() {
            String::new()
        } else {
            format!(
                "  not acknowledged: {} ({})",
                phase.failures.len(),
                phase.failures[0]
            )
        }
    );
}
