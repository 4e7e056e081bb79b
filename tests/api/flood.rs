//! A flood of panel sign-ins against `fieldline serve` as its own process: memory stays flat,
//! the service keeps answering, and the surplus is told to come back later.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};

use crate::{
    crash::{Database, serve_with},
    helpers::fresh_database_url,
    panel::csrf_in,
    providers::FakeProvider,
};

/// Resident memory of a process, in MiB, as the kernel counts it.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}

#[tokio::test]
async fn a_sign_in_flood_keeps_memory_bounded_and_the_service_answering() {
    const ATTEMPTS: usize = 400;
    const AT_ONCE: usize = 200;
    let fake = FakeProvider::start().await;
    let (database_url, name) = fresh_database_url();
    let _database = Database(name);
    // Every attempt comes from its own address (as through a trusted proxy), so none is stopped
    // by the per-address limit and each would cost a password hash.
    let (server, base) = serve_with(
        &database_url,
        &fake,
        false,
        &[
            ("TRUSTED_PROXY", "x-forwarded-for"),
            ("DATABASE_MAX_CONNECTIONS", "18"),
        ],
    )
    .await;
    let pid = server.0.id();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{base}/panel/login"))
        .send()
        .await
        .unwrap();
    let csrf = csrf_in(&page.text().await.unwrap());
    let attempt = {
        let (client, base) = (client.clone(), base.clone());
        move |i: usize| {
            let (client, base, csrf) = (client.clone(), base.clone(), csrf.clone());
            async move {
                let response = client
                    .post(format!("{base}/panel/login"))
                    .header(
                        "x-forwarded-for",
                        format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                    )
                    .form(&[
                        ("organisation", "flood-org"),
                        ("email", &format!("guess{i}@flood.example")),
                        ("password", "not the password"),
                        ("csrf_token", &csrf),
                    ])
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                (response.status().as_u16(), retry_after)
            }
        }
    };
    // Warm up: the first hashes grow the allocator once.
    for i in 0..4 {
        assert_eq!(attempt(1_000_000 + i).await.0, 401);
    }
    let before = resident_mib(pid);

    let started = Instant::now();
    let flood = tokio::spawn({
        let attempt = attempt.clone();
        async move {
            stream::iter(0..ATTEMPTS)
                .map(attempt)
                .buffer_unordered(AT_ONCE)
                .collect::<Vec<_>>()
                .await
        }
    });
    // The rest of the service answers while the flood is on.
    let mut health_answers = 0;
    while !flood.is_finished() {
        let health = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/healthz answers during the flood");
        assert_eq!(health.status(), 200);
        health_answers += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outcomes = flood.await.unwrap();
    let after = resident_mib(pid);
    let elapsed = started.elapsed();

    let refused = outcomes.iter().filter(|(s, _)| *s == 401).count();
    let busy = outcomes.iter().filter(|(s, _)| *s == 429).count();
    println!(
        "sign-in flood: {ATTEMPTS} attempts, {AT_ONCE} at once, in {elapsed:.1?}: {refused} checked (401), {busy} turned away (429); RSS {before:.0} MiB -> {after:.0} MiB; /healthz answered {health_answers} times"
    );
    assert_eq!(refused + busy, ATTEMPTS, "only 401 and 429: {outcomes:?}");
    assert!(
        outcomes.iter().all(|(s, retry)| *s != 429 || *retry),
        "every 429 says when to come back"
    );
    assert!(
        busy > 0,
        "the surplus was turned away, not queued without bound"
    );
    assert!(
        after - before < 64.0,
        "memory grew from {before:.0} MiB to {after:.0} MiB"
    );
    // The process still serves sign-in pages afterwards.
    let page = client
        .get(format!("{base}/panel/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}
