//! The job engine wakes for every new job, burst or not.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};

use crate::providers::*;

/// A signed Twilio "help" from `from`, with its own message id.
fn help_from(n: usize) -> (String, String) {
    let from = format!("+2519118{n:05}");
    let body = fixture("twilio/sms_help.form")
        .replace("SM10000000000000000000000000000004", &format!("SM7{n:031}"))
        .replace("From=%2B251911000201", &format!("From=%2B{}", &from[1..]));
    (from, body)
}

/// Posts the help and waits for the reply to reach the provider; the time it took.
async fn round_trip(app: &MessagingApp, n: usize) -> Duration {
    let (from, body) = help_from(n);
    let started = Instant::now();
    assert_eq!(
        app.twilio("/webhooks/twilio/messages", &body)
            .await
            .status(),
        200
    );
    app.fake
        .wait_for("the reply to the message after the burst", |r| {
            r.field("To").as_deref() == Some(from.as_str())
        })
        .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_after_a_burst_go_out_at_once_not_on_a_heartbeat() {
    // Enough to back notifications up: 200 did not show the stall, 600 did every time.
    const BURST: usize = 600;
    let app = spawn_messaging_app(&[]).await;
    stream::iter(0..BURST)
        .for_each_concurrent(16, |n| {
            let app = &app;
            async move {
                let (_, body) = help_from(n);
                assert_eq!(
                    app.twilio("/webhooks/twilio/messages", &body)
                        .await
                        .status(),
                    200
                );
            }
        })
        .await;
    let started = Instant::now();
    while app.fake.sends().len() < BURST {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the burst was not answered: {} of {BURST}",
            app.fake.sends().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each later message is routed and answered when it arrives. Before, with notifications
    // backed up after the burst, each one waited for a worker heartbeat.
    let mut waits = Vec::new();
    for n in BURST..BURST + 5 {
        waits.push(round_trip(&app, n).await);
    }
    waits.sort();
    assert!(
        waits[2] < Duration::from_secs(2),
        "replies after the burst took {waits:?}"
    );
}

#[tokio::test]
async fn finished_jobs_older_than_a_week_are_pruned_by_the_housekeeping() {
    let app = spawn_messaging_app(&[]).await;
    let pool = &app.app.pool;
    for (id, status, age) in [
        ("old-done", "Done", "8 days"),
        ("old-killed", "Killed", "8 days"),
        ("recent-done", "Done", "2 days"),
        ("old-pending", "Pending", "8 days"),
    ] {
        sqlx::query(
            "INSERT INTO apalis.jobs (id, job_type, job, status, run_at, done_at)
             VALUES ($1, 'no-such-queue', '\\x7b7d', $2, now() - $3::interval,
                     CASE WHEN $2 = 'Pending' THEN NULL ELSE now() - $3::interval END)",
        )
        .bind(id)
        .bind(status)
        .bind(age)
        .execute(pool)
        .await
        .unwrap();
    }
    // The hourly housekeeping rides on the visit schedule: make its next run due, once the run
    // at start has booked it (pulled forward before that, nothing was due and the start's run
    // could have been over before the old jobs were there: a failure seen once in CI).
    assert!(
        app.eventually(
            "SELECT count(*) = 1 FROM apalis.jobs WHERE job_type = 'visit-schedule'
               AND status = 'Pending' AND run_at > now() + interval '30 minutes'"
        )
        .await,
        "the visit schedule books its next run"
    );
    sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() - interval '1 second'
         WHERE job_type = 'visit-schedule' AND status = 'Pending'",
    )
    .execute(pool)
    .await
    .unwrap();
    assert!(
        app.eventually(
            "SELECT count(*) = 0 FROM apalis.jobs WHERE id LIKE 'old-d%' OR id = 'old-killed'"
        )
        .await,
        "finished a week ago: gone"
    );
    let kept: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM apalis.jobs WHERE job_type = 'no-such-queue' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(kept, ["old-pending", "recent-done"]);
}

#[tokio::test]
async fn a_process_without_workers_announces_the_work_it_leaves_after_the_commit() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let mut listener = sqlx::postgres::PgListener::connect(&app.app.database_url)
        .await
        .unwrap();
    listener.listen(fieldline::jobs::JOB_CHANNEL).await.unwrap();
    let (_, body) = help_from(1);
    assert_eq!(
        app.twilio("/webhooks/twilio/messages", &body)
            .await
            .status(),
        200
    );
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("no announcement of the message kept in the inbox")
        .unwrap();
    // Ours, sent after the commit, for the inbox drainer of whichever process runs the
    // workers: the commit did not queue on PostgreSQL's notification lock.
    let payload: serde_json::Value = serde_json::from_str(heard.payload()).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({ "job_type": fieldline::messaging::inbox::DRAINER })
    );
    // And the message is there for whichever process runs the workers.
    app.settle().await;
    assert_eq!(app.fake.sends().len(), 1);
}

#[tokio::test]
async fn one_persons_messages_are_answered_in_the_order_they_came_whichever_job_runs_first() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let sms = |n: u32, text: &str| {
        fixture("twilio/sms_unknown_sender.form")
            .replace("SM10000000000000000000000000000005", &format!("SM5{n:031}"))
            .replace(
                "Hello%2C+is+this+the+clinic%3F",
                &url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>(),
            )
    };
    app.twilio_message_stored(&sms(1, "No power in the flat, sockets dead"))
        .await;
    app.twilio_message_stored(&sms(2, "Cancel")).await;
    // The second message's routing job comes due first, as when jobs run side by side.
    sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() - interval '1 minute' * CASE
             WHEN convert_from(job, 'UTF8') LIKE '%' || (
                 SELECT id::text FROM messages WHERE provider_message_id = $1) || '%' THEN 1
             ELSE 2 END
         WHERE job_type = 'route-inbound'",
    )
    .bind(format!("SM5{:031}", 1))
    .execute(&app.app.pool)
    .await
    .unwrap();
    app.settle().await;
    let replies: Vec<String> = sqlx::query_scalar(
        "SELECT template_key FROM messages WHERE direction = 'outbound' ORDER BY created_at, id",
    )
    .fetch_all(&app.app.pool)
    .await
    .unwrap();
    assert_eq!(replies, ["wo_report_where", "opt_out_confirmed_dropped"]);
}

#[tokio::test]
async fn a_finished_job_no_longer_names_the_worker_that_ran_it() {
    // apalis records each result by looking up every job that names its worker: jobs that
    // kept the name made that lookup grow for as long as the process lived.
    let app = spawn_messaging_app(&[]).await;
    round_trip(&app, 1).await;
    let started = Instant::now();
    loop {
        let (done, naming): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'Done'),
                    count(*) FILTER (WHERE status = 'Done' AND lock_by IS NOT NULL)
             FROM apalis.jobs WHERE job_type IN ('route-inbound', 'send-message')",
        )
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
        assert_eq!(naming, 0, "finished jobs still name their worker");
        if done == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the routing and send jobs were not recorded as done: {done} of 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
