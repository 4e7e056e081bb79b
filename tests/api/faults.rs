//! Faults under load, scored by an external ledger: every webhook the server acknowledged, and
//! every send the fake provider answered. Nothing acknowledged is lost, nothing is accepted twice.

use std::{
    collections::BTreeMap,
    str::FromStr,
    time::{Duration, Instant},
};

use sqlx::{PgPool, postgres::PgConnectOptions};

use crate::{
    crash::{
        Database, all_replies_recorded, crash_org, each_got_one_reply, help_from, serve, serve_with,
    },
    helpers::fresh_database_url,
    providers::*,
};

/// The ledger's own connections, which the faults leave alone.
const LEDGER: &str = "fault-ledger";

async fn ledger(database_url: &str) -> PgPool {
    let options = PgConnectOptions::from_str(database_url)
        .unwrap()
        .application_name(LEDGER);
    PgPool::connect_with(options).await.unwrap()
}

/// Sends help from each of `people`, `at_once` at a time, each retried as a provider retries an
/// unanswered webhook until the server acknowledges it (within a minute).
async fn deliver_all(base: &str, people: usize, at_once: usize) {
    let client = reqwest::Client::new();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for n in 0..people {
        let (client, base, semaphore) = (client.clone(), base.to_owned(), semaphore.clone());
        tasks.push(tokio::spawn(async move {
            let _turn = semaphore.acquire().await.unwrap();
            let started = Instant::now();
            // The sender tries again every 200 ms until acknowledged, as a provider retries.
            let mut attempts = tokio::time::interval(Duration::from_millis(200));
            loop {
                attempts.tick().await;
                if help_from(&client, &base, n).await == 200 {
                    return;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "person {n} never acknowledged"
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Sends accepted by the provider, per recipient.
fn accepted_per_person(fake: &FakeProvider) -> BTreeMap<String, usize> {
    let mut accepted = BTreeMap::new();
    for answer in fake.answers() {
        if (200..300).contains(&answer.status) {
            *accepted.entry(answer.to).or_default() += 1;
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_terminated_mid_load_lose_nothing_and_send_nothing_twice() {
    const PEOPLE: usize = 40;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = ledger(&database_url).await;
    let (_server, base) = serve(&database_url, &fake, true).await;

    // Every 300 ms for 6 s, every connection of the server is cut, whatever it was doing.
    let terminator = {
        let pool = pool.clone();
        let database = database_url.rsplit('/').next().unwrap().to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut cut = 0i64;
            let mut every = tokio::time::interval(Duration::from_millis(300));
            while started.elapsed() < Duration::from_secs(6) {
                every.tick().await;
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE datname = $1 AND application_name <> $2 AND pid <> pg_backend_pid()",
                )
                .bind(&database)
                .bind(LEDGER)
                .fetch_one(&pool)
                .await
                .unwrap();
                cut += n;
            }
            cut
        })
    };
    deliver_all(&base, PEOPLE, 4).await;
    let cut = terminator.await.unwrap();
    assert!(cut > 0, "no connection was cut");
    all_replies_recorded(&pool, PEOPLE, Duration::from_secs(90)).await;
    println!("{cut} connections cut; all {PEOPLE} acknowledged and answered once");
    each_got_one_reply(&fake, PEOPLE);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_storm_of_500s_and_429s_is_ridden_out_exactly_once() {
    const PEOPLE: usize = 20;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = ledger(&database_url).await;
    // The first 30 calls fail: 500s, and 429s that ask for two seconds.
    for n in 0..30 {
        if n % 2 == 0 {
            fake.respond(
                500,
                &[],
                serde_json::json!({ "code": 20500, "message": "Internal Server Error" }),
            );
        } else {
            fake.respond(
                429,
                &[("retry-after", "2")],
                serde_json::json!({ "code": 20429, "message": "Too Many Requests" }),
            );
        }
    }
    let (_server, base) = serve_with(
        &database_url,
        &fake,
        true,
        &[("SEND_RETRY_BASE_MS", "200"), ("SEND_MAX_ATTEMPTS", "12")],
    )
    .await;
    deliver_all(&base, PEOPLE, 8).await;
    all_replies_recorded(&pool, PEOPLE, Duration::from_secs(90)).await;

    let answers = fake.answers();
    assert_eq!(
        answers.iter().filter(|a| a.status >= 400).count(),
        30,
        "the storm was met"
    );
    let accepted = accepted_per_person(&fake);
    assert_eq!(accepted.len(), PEOPLE, "everyone got a reply");
    assert!(
        accepted.values().all(|&n| n == 1),
        "nobody's reply was accepted twice: {accepted:?}"
    );
    // After a 429, that person's next attempt waited the two seconds asked for.
    for (i, refused) in answers.iter().enumerate().filter(|(_, a)| a.status == 429) {
        if let Some(next) = answers[i + 1..].iter().find(|a| a.to == refused.to) {
            let waited = next.at - refused.at;
            assert!(
                waited >= Duration::from_millis(1900),
                "{} retried after {waited:?} despite Retry-After: 2",
                refused.to
            );
        }
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_processes_one_killed_mid_send_the_other_finishes_its_work_once() {
    const PEOPLE: usize = 16;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    crash_org(&database_url, &fake);
    let pool = ledger(&database_url).await;
    let (mut doomed, doomed_base) = serve(&database_url, &fake, true).await;
    let (_survivor, survivor_base) = serve(&database_url, &fake, true).await;
    // Each provider call takes 2 s, so the doomed process is mid-call when it dies.
    fake.slow(Duration::from_secs(2));
    let client = reqwest::Client::new();
    for n in 0..PEOPLE {
        let base = if n % 2 == 0 {
            &doomed_base
        } else {
            &survivor_base
        };
        assert_eq!(help_from(&client, base, n).await, 200);
    }
    assert!(fake.wait_for_sends(2).await.len() >= 2, "no sends began");
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    let killed = Instant::now();
    fake.slow(Duration::ZERO);

    // The survivor takes over the dead one's jobs after its heartbeats stop (about 15 s).
    all_replies_recorded(&pool, PEOPLE, Duration::from_secs(45)).await;
    let took = killed.elapsed();
    println!("all {PEOPLE} recorded {took:.1?} after one of two processes was killed");
    each_got_one_reply(&fake, PEOPLE);
    pool.close().await;
}
