//! A process killed between acknowledging a webhook and running its jobs loses nothing: the jobs
//! were committed with the message, and the next process runs them.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::PgPool;

use crate::{
    helpers::{drop_database, fresh_database_url},
    providers::*,
};

pub(crate) struct Database(pub(crate) String);

impl Drop for Database {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn fieldline(
    database_url: &str,
    fake: &FakeProvider,
    port: u16,
    args: &[&str],
    workers: bool,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fieldline"));
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("PORT", port.to_string())
        .env("PUBLIC_BASE_URL", PUBLIC_BASE_URL)
        .env("TWILIO_ACCOUNT_SID", TWILIO_SID)
        .env("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
        .env("TWILIO_API_BASE", &fake.base)
        .env("JOB_WORKERS", if workers { "on" } else { "off" })
        .env(
            "FIELDLINE_DATA_DIR",
            std::env::temp_dir().join(format!("fieldline-crash-{port}")),
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // FIELDLINE_TEST_LOGS=1 shows the servers' logs when a fault test needs explaining.
    if std::env::var_os("FIELDLINE_TEST_LOGS").is_some() {
        command.env("RUST_LOG", "info").stderr(Stdio::inherit());
    }
    command
}

pub(crate) async fn serve(
    database_url: &str,
    fake: &FakeProvider,
    workers: bool,
) -> (Server, String) {
    serve_with(database_url, fake, workers, &[]).await
}

/// `fieldline serve` as its own process, with `extra` settings; returns once it answers.
pub(crate) async fn serve_with(
    database_url: &str,
    fake: &FakeProvider,
    workers: bool,
    extra: &[(&str, &str)],
) -> (Server, String) {
    let port = free_port();
    let child = fieldline(database_url, fake, port, &["serve"], workers)
        .envs(extra.iter().copied())
        .spawn()
        .unwrap();
    let server = Server(child);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status() == 200
        {
            return (server, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

/// An organisation with a Twilio SMS number, made through the CLI.
pub(crate) fn crash_org(database_url: &str, fake: &FakeProvider) {
    for args in [
        &[
            "tenant",
            "create",
            "--name",
            "Crash Org",
            "--slug",
            "crash-org",
        ][..],
        &[
            "channel",
            "add",
            "--tenant",
            "crash-org",
            "--provider",
            "twilio",
            "--kind",
            "sms",
            "--number",
            TWILIO_NUMBER,
        ],
    ] {
        let status = fieldline(database_url, fake, 0, args, false)
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    }
}

#[tokio::test]
async fn a_process_killed_after_the_acknowledgement_loses_nothing() {
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = PgPool::connect(&database_url).await.unwrap();

    // The first process acknowledges the webhook and dies before any job runs.
    let (mut first, base) = serve(&database_url, &fake, false).await;
    let path = "/webhooks/twilio/messages";
    let body = fixture("twilio/sms_help.form");
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", twilio_signature(path, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let (kept, stored): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM messages)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (kept, stored),
        (1, 0),
        "the acknowledged message survived the kill in the inbox, not yet stored"
    );
    assert!(fake.sends().is_empty());

    // The next process stores and routes it: the patient gets the answer the first one never sent.
    let (_second, _) = serve(&database_url, &fake, true).await;
    let sends = fake.wait_for_sends(1).await;
    assert_eq!(sends.len(), 1, "the reply went out after the restart");
    assert!(
        sends[0]
            .field("Body")
            .unwrap()
            .contains("• STOP — no more messages")
    );
    let started = Instant::now();
    loop {
        let done: bool = sqlx::query_scalar(
            "SELECT routed_at IS NOT NULL AND EXISTS (SELECT 1 FROM messages o WHERE o.caused_by_message_id = m.id AND o.provider_message_id IS NOT NULL)
             FROM messages m WHERE direction = 'inbound'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the reply was recorded as sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pool.close().await;
}

/// A process killed while its send jobs are with a slow provider: another process takes its jobs
/// over within seconds, and asks the provider before sending again, so nobody gets a reply twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_send_is_taken_over_and_sends_nothing_twice() {
    const PEOPLE: usize = 12;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = PgPool::connect(&database_url).await.unwrap();
    let (mut first, base) = serve(&database_url, &fake, true).await;
    // Each provider call takes 3 s: the first process is mid-call when it dies.
    fake.slow(Duration::from_secs(3));
    help_from_everyone(&base, PEOPLE).await;
    let started = Instant::now();
    while fake.sends().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no send started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let killed_at = Instant::now();
    let reached_before_kill = fake.sends().len();

    let (_second, _) = serve(&database_url, &fake, true).await;
    all_replies_recorded(&pool, PEOPLE, Duration::from_secs(90)).await;
    let took = killed_at.elapsed();
    println!(
        "killed with {reached_before_kill} sends at the provider; all {PEOPLE} recorded {took:.1?} after the kill"
    );
    each_got_one_reply(&fake, PEOPLE);
    pool.close().await;
}

/// Killed twice under load: the process that took the work over dies mid-send as well, and the
/// third still finishes everything once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twice_under_load_loses_nothing_and_sends_nothing_twice() {
    const PEOPLE: usize = 16;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = PgPool::connect(&database_url).await.unwrap();
    fake.slow(Duration::from_secs(2));
    let (mut first, base) = serve(&database_url, &fake, true).await;
    // Half the people write before the first kill, half after it, to the second process.
    let client = reqwest::Client::new();
    for n in 0..PEOPLE / 2 {
        assert_eq!(help_from(&client, &base, n).await, 200);
    }
    let sends_reach = |at_least: usize| {
        let fake = &fake;
        async move {
            let started = Instant::now();
            while fake.sends().len() < at_least {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "sends never reached {at_least}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    sends_reach(1).await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let (mut second, base) = serve(&database_url, &fake, true).await;
    for n in PEOPLE / 2..PEOPLE {
        assert_eq!(help_from(&client, &base, n).await, 200);
    }
    let before = fake.sends().len();
    sends_reach(before + 1).await;
    second.0.kill().unwrap();
    second.0.wait().unwrap();
    let killed_at = Instant::now();

    let (_third, _) = serve(&database_url, &fake, true).await;
    all_replies_recorded(&pool, PEOPLE, Duration::from_secs(90)).await;
    println!(
        "killed twice; all {PEOPLE} recorded {:.1?} after the second kill",
        killed_at.elapsed()
    );
    each_got_one_reply(&fake, PEOPLE);
    pool.close().await;
}

/// SIGTERM while sends are with a slow provider: the process finishes what it started, gives
/// back what it fetched but did not start, and exits; the next process sends the rest at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_send_gives_back_unstarted_jobs_and_exits() {
    const PEOPLE: usize = 12;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = PgPool::connect(&database_url).await.unwrap();
    let (first, base) = serve_with(
        &database_url,
        &fake,
        true,
        &[("SEND_CONCURRENCY", "2"), ("SHUTDOWN_TIMEOUT_SECS", "20")],
    )
    .await;
    fake.slow(Duration::from_secs(2));
    help_from_everyone(&base, PEOPLE).await;
    let started = Instant::now();
    while fake.sends().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no send started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = first.0.id().to_string();
    let asked = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut first = first;
    let exited = first.0.wait().unwrap();
    let took = asked.elapsed();
    assert!(exited.success(), "a clean exit: {exited:?}");
    // Two sends were in flight (2 s each): it waits for those, not for the whole grace.
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE status IN ('Queued', 'Running') AND lock_by IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(held, 0, "nothing is left held by the stopped process");

    fake.slow(Duration::ZERO);
    let restarted = Instant::now();
    let (_second, _) = serve(&database_url, &fake, true).await;
    all_replies_recorded(&pool, PEOPLE, Duration::from_secs(60)).await;
    let rest = restarted.elapsed();
    println!("SIGTERM exit in {took:.1?}; the rest sent {rest:.1?} after the restart");
    assert!(
        rest < Duration::from_secs(12),
        "given-back jobs wait for no timeout: {rest:?}"
    );
    each_got_one_reply(&fake, PEOPLE);
    pool.close().await;
}

/// A signed "help" from each of `people` numbers.
pub(crate) async fn help_from_everyone(base: &str, people: usize) {
    let client = reqwest::Client::new();
    for n in 0..people {
        assert_eq!(help_from(&client, base, n).await, 200);
    }
}

/// A signed "help" from person `n`, answered with this status.
pub(crate) async fn help_from(client: &reqwest::Client, base: &str, n: usize) -> u16 {
    let path = "/webhooks/twilio/messages";
    let body = fixture("twilio/sms_help.form")
        .replace("SM10000000000000000000000000000004", &format!("SM6{n:031}"))
        .replace("From=%2B251911000201", &format!("From=%2B2519118{n:05}"));
    client
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", twilio_signature(path, &body))
        .body(body)
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

/// Every one of `people` got exactly one reply at the provider: none lost, none twice.
pub(crate) fn each_got_one_reply(fake: &FakeProvider, people: usize) {
    let mut per_person = std::collections::BTreeMap::<String, usize>::new();
    for send in fake.sends() {
        *per_person.entry(send.field("To").unwrap()).or_default() += 1;
    }
    assert_eq!(per_person.len(), people, "everyone got a reply");
    assert!(
        per_person.values().all(|&n| n == 1),
        "nobody got a reply twice: {per_person:?}"
    );
}

/// Waits for every reply to be recorded; if some never are, shows the jobs that did not finish
/// before failing, so the failure explains itself.
pub(crate) async fn all_replies_recorded(pool: &PgPool, people: usize, within: Duration) {
    let started = Instant::now();
    loop {
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE direction = 'outbound' AND provider_message_id IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if recorded == people as i64 {
            return;
        }
        if started.elapsed() > within {
            let rows = |sql: &'static str| async move {
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(pool)
                    .await
                    .unwrap()
            };
            let jobs = rows(
                "SELECT concat_ws(' ', job_type, status, attempts, lock_by, last_result::text)
                 FROM apalis.jobs WHERE job_type IN ('route-inbound', 'send-message')
                   AND status <> 'Done'",
            )
            .await;
            let counts = rows(
                "SELECT concat_ws(' ', direction, status, handled_by, routed_at IS NULL,
                                  provider_message_id IS NULL, count(*))
                 FROM messages GROUP BY direction, status, handled_by, routed_at IS NULL,
                                        provider_message_id IS NULL",
            )
            .await;
            panic!(
                "{recorded} of {people} replies recorded.\njobs: {jobs:#?}\nmessages (direction, status, handler, unrouted, no provider id, count): {counts:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
