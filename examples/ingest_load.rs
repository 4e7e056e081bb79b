//! Load run for the signed webhook ingest path, against the real server and a real database.
//!
//! ```sh
//! cargo run --release --example ingest_load -- 2000 16
//! ```
//!
//! Arguments: requests per phase (default 2000), concurrency (default 16). It starts the app
//! on a free port against a fresh database (`TEST_DATABASE_URL`'s server, default local), with
//! job workers off so only the ingest path is measured, and prints per-phase latency and
//! throughput. `GET /healthz` in the same run is the baseline: ratios against it are what to
//! compare between machines; absolute figures are not.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use fieldline::{
    Application, Config,
    audit::Actor,
    channels::signature,
    domains::tenancy::{self, NewTenant},
    messaging::channels::{self, NewChannel},
    types::{Locale, Slug, TimeZone},
};
use tokio::sync::Semaphore;

const PUBLIC: &str = "https://fieldline.test";
const TOKEN: &str = "load-test-token";
const WEBHOOK: &str = "/webhooks/twilio/messages";

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
    let db = format!("fieldline_load_{}", uuid::Uuid::new_v4().simple());
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", format!("{server}/{db}")),
        ("PORT", "0".into()),
        ("PUBLIC_BASE_URL", PUBLIC.into()),
        (
            "TWILIO_ACCOUNT_SID",
            "AC00000000000000000000000000000001".into(),
        ),
        ("TWILIO_AUTH_TOKEN", TOKEN.into()),
        ("TWILIO_API_BASE", "http://127.0.0.1:9".into()),
        ("JOB_WORKERS", "off".into()),
        ("DATABASE_MAX_CONNECTIONS", "20".into()),
        (
            "FIELDLINE_DATA_DIR",
            std::env::temp_dir().join(&db).display().to_string(),
        ),
    ]);
    let config = Config::from_lookup(|k| env.get(k).cloned())?;
    let app = Application::build(config).await?;
    let pool = app.pool().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    {
        let mut tx = pool.begin().await?;
        let tenant = tenancy::create_tenant(
            &mut tx,
            &NewTenant {
                name: "Load".into(),
                slug: Slug::parse("load").map_err(anyhow::Error::msg)?,
                time_zone: TimeZone::parse("UTC").map_err(anyhow::Error::msg)?,
                locale: Locale::parse("en").map_err(anyhow::Error::msg)?,
            },
            Actor::Cli,
        )
        .await?;
        let input = NewChannel {
            provider: "twilio".into(),
            kind: "sms".into(),
            phone_number: "+251911500000".into(),
            provider_id: None,
            display_name: None,
        };
        channels::add(&mut tx, tenant.id, &input, Actor::Cli)
            .await
            .map_err(|e| anyhow::anyhow!(e.explain()))?;
        tx.commit().await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    println!("requests per phase: {requests}, concurrency: {concurrency}");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12}",
        "phase", "median ms", "p95 ms", "max ms", "requests/s"
    );
    let health = run(&client, requests, concurrency, |_| {
        (format!("{base}/healthz"), None)
    })
    .await;
    report("GET /healthz (baseline)", &health, None);

    // Distinct messages from 50 senders: each one a new row, contact upsert, conversation and job.
    let path = WEBHOOK;
    let new = run(&client, requests, concurrency, |i| {
        let body = form(
            &format!("SM{:032}", i),
            &format!("+2519110{:05}", 1000 + i % 50),
        );
        (format!("{base}{path}"), Some(body))
    })
    .await;
    report("POST signed, new message", &new, Some(&health));

    // The provider retrying the same deliveries: found, acknowledged, nothing written.
    let retries = run(&client, requests, concurrency, |i| {
        let body = form(
            &format!("SM{:032}", i),
            &format!("+2519110{:05}", 1000 + i % 50),
        );
        (format!("{base}{path}"), Some(body))
    })
    .await;
    report("POST signed, provider retry", &retries, Some(&health));

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'route-inbound'")
            .fetch_one(&pool)
            .await?;
    println!("stored messages: {stored}, routing jobs: {jobs} (both must equal {requests})");

    let _ = stop.send(());
    server_task.await??;
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    Ok(())
}

fn form(sid: &str, from: &str) -> String {
    let pairs = [
        ("AccountSid", "AC00000000000000000000000000000001"),
        ("Body", "On my way"),
        ("From", from),
        ("MessageSid", sid),
        ("NumMedia", "0"),
        ("To", "+251911500000"),
    ];
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

struct Phase {
    latencies: Vec<Duration>,
    elapsed: Duration,
    failures: usize,
}

async fn run(
    client: &reqwest::Client,
    requests: usize,
    concurrency: usize,
    request: impl Fn(usize) -> (String, Option<String>),
) -> Phase {
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let (url, body) = request(i);
        let client = client.clone();
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = match body {
                Some(body) => {
                    let params: Vec<(String, String)> =
                        url::form_urlencoded::parse(body.as_bytes())
                            .into_owned()
                            .collect();
                    // Signed as Twilio signs: the public URL it called, then the sorted fields.
                    let signed =
                        signature::twilio_expected(TOKEN, &format!("{PUBLIC}{WEBHOOK}"), &params);
                    client
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-twilio-signature", signed)
                        .body(body)
                        .send()
                        .await
                }
                None => client.get(&url).send().await,
            };
            drop(permit);
            let ok = response.map(|r| r.status().is_success()).unwrap_or(false);
            (sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut failures = 0;
    for task in tasks {
        let (latency, ok) = task.await.unwrap();
        latencies.push(latency);
        failures += usize::from(!ok);
    }
    latencies.sort();
    Phase {
        latencies,
        elapsed: started.elapsed(),
        failures,
    }
}

fn report(name: &str, phase: &Phase, baseline: Option<&Phase>) {
    let at = |q: f64| {
        phase.latencies[((phase.latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
    };
    let rate = phase.latencies.len() as f64 / phase.elapsed.as_secs_f64();
    let ratio = baseline
        .map(|b| {
            let base = b.latencies[b.latencies.len() / 2].as_secs_f64() * 1000.0;
            format!("  median {:.1}x baseline", at(0.5) / base)
        })
        .unwrap_or_default();
    println!(
        "{name:<28} {:>10.2} {:>10.2} {:>10.2} {:>12.0}{ratio}{}",
        at(0.5),
        at(0.95),
        at(1.0),
        rate,
        if phase.failures > 0 {
            format!("  FAILED: {}", phase.failures)
        } else {
            String::new()
        }
    );
}
