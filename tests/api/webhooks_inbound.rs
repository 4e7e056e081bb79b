//! Inbound webhooks from both providers, fed from the recorded payloads in `webhooks/`.

use serde_json::Value;

use crate::providers::*;

/// What one fixture must leave in `messages`.
struct Expect {
    fixture: &'static str,
    kind: &'static str,
    body: Option<&'static str>,
    location: Option<(f64, f64)>,
    reply_id: Option<&'static str>,
    reply_to: Option<&'static str>,
    media: Option<(&'static str, &'static str)>,
}

const NONE: Expect = Expect {
    fixture: "",
    kind: "text",
    body: None,
    location: None,
    reply_id: None,
    reply_to: None,
    media: None,
};

#[derive(sqlx::FromRow, Debug)]
struct Row {
    kind: String,
    body: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    interactive_reply_id: Option<String>,
    reply_to_provider_message_id: Option<String>,
    sender_profile_name: Option<String>,
    media_kind: Option<String>,
    content_type: Option<String>,
}

async fn stored(app: &MessagingApp) -> Row {
    app.inbox_stored().await;
    sqlx::query_as(
        "SELECT m.kind, m.body, m.latitude, m.longitude, m.interactive_reply_id,
                m.reply_to_provider_message_id, m.sender_profile_name, mm.media_kind, mm.content_type
         FROM messages m LEFT JOIN message_media mm ON mm.message_id = m.id
         WHERE m.direction = 'inbound' ORDER BY m.created_at DESC LIMIT 1",
    )
    .fetch_one(&app.app.pool)
    .await
    .unwrap()
}

fn check(row: &Row, expect: &Expect) {
    let f = expect.fixture;
    assert_eq!(row.kind, expect.kind, "{f}");
    if let Some(body) = expect.body {
        assert_eq!(row.body.as_deref(), Some(body), "{f}");
    }
    assert_eq!(row.latitude.zip(row.longitude), expect.location, "{f}");
    assert_eq!(row.interactive_reply_id.as_deref(), expect.reply_id, "{f}");
    assert_eq!(
        row.reply_to_provider_message_id.as_deref(),
        expect.reply_to,
        "{f}"
    );
    assert_eq!(
        row.media_kind.as_deref().zip(row.content_type.as_deref()),
        expect.media,
        "{f}"
    );
}

#[tokio::test]
async fn twilio_messages_of_every_kind_are_stored_with_their_parts() {
    let app = spawn_messaging_app(&[]).await;
    let cases = [
        Expect {
            fixture: "twilio/sms_text.form",
            body: Some("On my way!"),
            ..NONE
        },
        Expect {
            fixture: "twilio/whatsapp_text.form",
            body: Some("Done, replaced the valve"),
            ..NONE
        },
        Expect {
            fixture: "twilio/whatsapp_location.form",
            kind: "location",
            body: Some("Bole Garden block B, Bole Road, Addis Ababa"),
            location: Some((9.0108, 38.7613)),
            ..NONE
        },
        Expect {
            fixture: "twilio/whatsapp_image.form",
            kind: "media",
            body: Some("Leak under the sink"),
            media: Some(("image", "image/jpeg")),
            ..NONE
        },
        Expect {
            fixture: "twilio/whatsapp_button.form",
            kind: "interactive",
            body: Some("Accept"),
            reply_id: Some("accept"),
            reply_to: Some(FIRST_TWILIO_SID),
            ..NONE
        },
        Expect {
            fixture: "twilio/whatsapp_reply_with_context.form",
            body: Some("Running 10 minutes late"),
            reply_to: Some(FIRST_TWILIO_SID),
            ..NONE
        },
    ];
    for expect in &cases {
        // Media URLs point at Twilio: send the fetch to the fake instead, then sign what we post.
        let body = with_media_at(fixture(expect.fixture), &app.fake.base);
        let response = app.twilio("/webhooks/twilio/messages", &body).await;
        assert_eq!(response.status(), 200, "{}", expect.fixture);
        assert_eq!(response.headers()["content-type"], "text/xml");
        check(&stored(&app).await, expect);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .await,
        cases.len() as i64
    );
    let whatsapp = stored(&app).await;
    assert_eq!(
        whatsapp.sender_profile_name.as_deref(),
        Some("Abebe Kebede")
    );
    assert!(
        app.eventually("SELECT fetched_at IS NOT NULL AND size_bytes > 0 FROM message_media")
            .await,
        "the photo was fetched into the data folder"
    );
    let (path, fetched_with): (String, String) = (
        sqlx::query_scalar("SELECT storage_path FROM message_media")
            .fetch_one(&app.app.pool)
            .await
            .unwrap(),
        app.fake
            .requests()
            .iter()
            .find(|r| r.path.contains("/Media/"))
            .unwrap()
            .header("authorization"),
    );
    assert_eq!(std::fs::read(path).unwrap(), MEDIA_BYTES);
    assert!(
        fetched_with.starts_with("Basic "),
        "Twilio media needs the account's Basic auth"
    );
}

#[tokio::test]
async fn meta_messages_of_every_kind_are_stored_with_their_parts() {
    let app = spawn_messaging_app(&[]).await;
    let out = "wamid.HBgMMjUxOTExMDAwMTAxFQIAEhgg00000000000000000000000000000900AA==";
    let cases = [
        Expect {
            fixture: "meta/text.json",
            body: Some("On my way!"),
            ..NONE
        },
        Expect {
            fixture: "meta/location.json",
            kind: "location",
            body: Some("Bole Garden block B, Bole Road, Addis Ababa"),
            location: Some((9.0108, 38.7613)),
            ..NONE
        },
        Expect {
            fixture: "meta/image.json",
            kind: "media",
            body: Some("Leak under the sink"),
            media: Some(("image", "image/jpeg")),
            ..NONE
        },
        Expect {
            fixture: "meta/document.json",
            kind: "media",
            body: Some("Invoice"),
            media: Some(("document", "application/pdf")),
            ..NONE
        },
        Expect {
            fixture: "meta/voice.json",
            kind: "media",
            media: Some(("voice", "audio/ogg; codecs=opus")),
            ..NONE
        },
        Expect {
            fixture: "meta/button_reply.json",
            kind: "interactive",
            body: Some("Accept"),
            reply_id: Some("accept"),
            reply_to: Some(out),
            ..NONE
        },
        Expect {
            fixture: "meta/list_reply.json",
            kind: "interactive",
            body: Some("M-1042 Leaking tap"),
            reply_id: Some("wo-M-1042"),
            reply_to: Some(out),
            ..NONE
        },
        Expect {
            fixture: "meta/template_quick_reply.json",
            kind: "interactive",
            reply_id: Some("accept"),
            reply_to: Some(out),
            ..NONE
        },
        Expect {
            fixture: "meta/text_with_context.json",
            body: Some("Running 10 minutes late"),
            reply_to: Some(out),
            ..NONE
        },
        Expect {
            fixture: "meta/unsupported.json",
            kind: "unsupported",
            body: Some("[unsupported]"),
            ..NONE
        },
    ];
    for expect in &cases {
        let response = app.meta(&fixture(expect.fixture)).await;
        assert_eq!(response.status(), 200, "{}", expect.fixture);
        check(&stored(&app).await, expect);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .await,
        cases.len() as i64
    );
    assert!(
        app.eventually("SELECT count(*) = 3 FROM message_media WHERE fetched_at IS NOT NULL")
            .await
    );
    let lookups: Vec<_> = app
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == axum::http::Method::GET && r.path.starts_with("/v23.0/"))
        .collect();
    assert_eq!(lookups.len(), 3, "one media lookup per file");
    assert!(
        lookups
            .iter()
            .all(|r| r.header("authorization") == format!("Bearer {META_TOKEN}"))
    );
}

#[tokio::test]
async fn forged_twilio_requests_are_refused_and_leave_nothing() {
    let app = spawn_messaging_app(&[]).await;
    let body = fixture("twilio/sms_text.form");
    let path = "/webhooks/twilio/messages";
    let stale = twilio_signature(path, &fixture("twilio/sms_help.form"));
    let other_url = fieldline::channels::signature::twilio_expected(
        TWILIO_TOKEN,
        "https://elsewhere.example/webhooks/twilio/messages",
        &url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect::<Vec<_>>(),
    );
    for (case, signature) in [
        ("missing", None),
        ("wrong", Some("bm90IHRoZSBzaWduYXR1cmU=")),
        ("not base64", Some("%%%")),
        ("signed for another body", Some(stale.as_str())),
        ("signed for another URL", Some(other_url.as_str())),
    ] {
        let response = app.twilio_signed(path, &body, signature).await;
        assert_eq!(response.status(), 403, "{case}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "forbidden", "{case}");
    }
    let status = app
        .twilio_signed(
            "/webhooks/twilio/status",
            &fixture("twilio/status_delivered.form"),
            None,
        )
        .await;
    assert_eq!(status.status(), 403);
    assert_eq!(
        app.count("SELECT count(*) FROM inbox").await,
        0,
        "nothing kept"
    );
    assert_eq!(app.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM contacts").await,
        0,
        "no contact was made"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type NOT IN ('preventive-maintenance', 'visit-schedule', 'audit-checkpoint')")
            .await,
        0,
        "no job was queued"
    );
    let metrics = app.app.metrics().await;
    // The recorder is shared by every test in this binary: at least our six refusals are counted.
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("webhook_signature_rejected_total{provider=\"twilio\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 6.0, "{metrics}");
}

#[tokio::test]
async fn forged_meta_requests_are_refused_and_leave_nothing() {
    let app = spawn_messaging_app(&[]).await;
    let body = fixture("meta/text.json");
    let stale = fieldline::channels::signature::meta_expected(
        META_SECRET,
        fixture("meta/location.json").as_bytes(),
    );
    let other_secret =
        fieldline::channels::signature::meta_expected("another-secret", body.as_bytes());
    let without_prefix = stale.trim_start_matches("sha256=").to_owned();
    for (case, signature) in [
        ("missing", None),
        ("signed for another body", Some(stale.as_str())),
        ("another secret", Some(other_secret.as_str())),
        ("no sha256= prefix", Some(without_prefix.as_str())),
        ("not hex", Some("sha256=zz")),
    ] {
        assert_eq!(
            app.meta_signed(&body, signature).await.status(),
            403,
            "{case}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbox").await,
        0,
        "nothing kept"
    );
    assert_eq!(app.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM contacts").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type NOT IN ('preventive-maintenance', 'visit-schedule', 'audit-checkpoint')")
            .await,
        0
    );
}

#[tokio::test]
async fn the_meta_handshake_echoes_the_challenge_only_for_our_token() {
    let app = spawn_messaging_app(&[]).await;
    let get = |query: String| {
        let client = app.app.client.clone();
        let url = app.app.url(&format!("/webhooks/meta/whatsapp?{query}"));
        async move { client.get(url).send().await.unwrap() }
    };
    let ok = get(format!(
        "hub.mode=subscribe&hub.verify_token={META_VERIFY}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1".to_owned(),
        format!("hub.mode=unsubscribe&hub.verify_token={META_VERIFY}&hub.challenge=1"),
        "hub.mode=subscribe&hub.challenge=1".to_owned(),
    ] {
        assert_eq!(get(query.clone()).await.status(), 403, "{query}");
    }
}

#[tokio::test]
async fn a_provider_retry_is_stored_once_and_answered_once() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let body = fixture("twilio/sms_help.form");
    let window = "SELECT max(last_inbound_at)::text FROM conversations";
    let mut opened = None;
    for _ in 0..3 {
        assert_eq!(
            app.twilio("/webhooks/twilio/messages", &body)
                .await
                .status(),
            200
        );
        app.inbox_stored().await;
        let at: Option<String> = sqlx::query_scalar(window)
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
        // A retry does not move the conversation (nor its WhatsApp window).
        assert_eq!(*opened.get_or_insert(at.clone()), at);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'route-inbound'")
            .await,
        1,
        "one routing job"
    );
    let meta = fixture("meta/text.json");
    for _ in 0..2 {
        assert_eq!(app.meta(&meta).await.status(), 200);
    }
    app.inbox_stored().await;
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .await,
        2
    );
    assert!(
        app.eventually("SELECT count(*) = 2 FROM messages WHERE routed_at IS NOT NULL")
            .await
    );
    // One HELP answer and one "not understood", however often the provider retried.
    let sends = app.wait_for_sends(2).await;
    app.settle().await;
    assert_eq!(app.fake.sends().len(), 2, "{sends:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE direction = 'outbound'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_batched_meta_body_is_stored_in_full() {
    let app = spawn_messaging_app(&[]).await;
    assert_eq!(app.meta(&fixture("meta/batched.json")).await.status(), 200);
    app.inbox_stored().await;
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(DISTINCT contact_id) FROM messages")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE kind = 'location'")
            .await,
        1
    );
    // One person's two messages keep the batch's order, which routing follows.
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM messages
         WHERE direction = 'inbound' AND contact_id = (SELECT contact_id FROM messages WHERE body = 'first')
         ORDER BY received_at, id",
    )
    .fetch_all(&app.app.pool)
    .await
    .unwrap();
    assert_eq!(order, ["text", "location"]);
}

#[tokio::test]
async fn messages_to_numbers_no_tenant_has_are_acknowledged_not_processed() {
    let app = spawn_messaging_app(&[]).await;
    let twilio = app
        .twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_to_unknown_number.form"),
        )
        .await;
    assert_eq!(twilio.status(), 200);
    let meta = app
        .meta(&fixture("meta/unknown_phone_number_id.json"))
        .await;
    assert_eq!(meta.status(), 200);
    // Signed bodies Meta sends that we do not act on still get 200, so Meta keeps the webhook on.
    assert_eq!(
        app.meta(&fixture("meta/account_update.json"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.meta("{\"not\": \"a whatsapp payload\"").await.status(),
        200
    );
    // Taken out of the inbox, and nothing stored.
    app.inbox_stored().await;
    assert_eq!(app.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM contacts").await, 0);
}

#[tokio::test]
async fn a_malformed_twilio_form_gets_a_400_that_says_what_is_missing() {
    let app = spawn_messaging_app(&[]).await;
    let response = app
        .twilio("/webhooks/twilio/messages", "Body=hello&To=%2B251911500000")
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MessageSid"),
        "{error}"
    );
    assert_eq!(app.count("SELECT count(*) FROM messages").await, 0);
}

#[tokio::test]
async fn webhooks_for_unconfigured_providers_say_what_to_set() {
    let app = crate::helpers::spawn_app().await;
    let response = app
        .client
        .post(app.url("/webhooks/twilio/messages"))
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "provider_not_configured");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TWILIO_AUTH_TOKEN")
    );
}

#[tokio::test]
async fn media_over_the_size_cap_is_not_kept() {
    let app = spawn_messaging_app(&[("MEDIA_MAX_BYTES", "8")]).await;
    assert_eq!(app.meta(&fixture("meta/image.json")).await.status(), 200);
    let body = with_media_at(fixture("twilio/whatsapp_image.form"), &app.fake.base);
    app.twilio_message_stored(&body).await;
    assert!(
        app.eventually("SELECT count(*) = 2 FROM message_media WHERE fetch_error LIKE '%larger than MEDIA_MAX_BYTES%'")
            .await
    );
    assert_eq!(
        app.count("SELECT count(*) FROM message_media WHERE storage_path IS NOT NULL")
            .await,
        0
    );
    let media_dir = std::env::temp_dir()
        .join(app.app.database_url.rsplit('/').next().unwrap())
        .join("media");
    let files = walk(&media_dir);
    assert!(
        files.is_empty(),
        "no partial file is left behind: {files:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_from_one_sender_are_all_stored_and_routed_without_deadlock() {
    const PER_BATCH: usize = 150;
    let app = spawn_messaging_app(&[]).await;
    let fixture: Value = serde_json::from_str(&fixture("meta/text.json")).unwrap();
    let batch = |first: usize| {
        let mut doc = fixture.clone();
        let value = &mut doc["entry"][0]["changes"][0]["value"];
        let template = value["messages"][0].clone();
        value["contacts"][0]["wa_id"] = serde_json::json!("251911777001");
        value["messages"] = (first..first + PER_BATCH)
            .map(|i| {
                let mut message = template.clone();
                message["from"] = serde_json::json!("251911777001");
                message["id"] = serde_json::json!(format!("wamid.batch{i:06}"));
                // A stranger reporting: routing files a work order and moves earlier messages.
                message["text"]["body"] = serde_json::json!("the tap in ward 3 is leaking");
                message
            })
            .collect();
        doc.to_string()
    };
    let (first, second) = (batch(0), batch(PER_BATCH));
    let (a, b) = tokio::join!(app.meta(&first), app.meta(&second));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let routed = format!(
        "SELECT count(*) = {} FROM messages WHERE direction = 'inbound' AND routed_at IS NOT NULL",
        2 * PER_BATCH
    );
    let started = std::time::Instant::now();
    while !app.eventually(&routed).await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "not every message was routed"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE last_result::text LIKE '%deadlock%'")
            .await,
        0,
        "no job met a deadlock"
    );
}

#[tokio::test]
async fn a_media_fetch_that_fails_is_tried_again_after_growing_pauses() {
    let app = spawn_messaging_app(&[]).await;
    app.fake.fail_media(2);
    let body = with_media_at(fixture("twilio/whatsapp_image.form"), &app.fake.base);
    app.twilio_message_stored(&body).await;
    assert!(
        app.eventually(
            "SELECT fetched_at IS NOT NULL AND fetch_attempts = 2 AND fetch_error IS NULL FROM message_media"
        )
        .await,
        "stored on the third try, the two failures counted"
    );
    let tries: Vec<std::time::Instant> = app
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/Media/"))
        .map(|r| r.at)
        .collect();
    assert_eq!(tries.len(), 3);
    // SEND_RETRY_BASE_MS is 100 here: 50-100 ms before the second try, 100-200 before the third.
    assert!(tries[1] - tries[0] >= std::time::Duration::from_millis(50));
    assert!(tries[2] - tries[1] >= std::time::Duration::from_millis(100));
}

/// Webhooks that arrive together share the inbox's commit: if it fails, every one of them is
/// refused (the provider sends it again), none acknowledged; their retries are all kept, once.
#[tokio::test]
async fn webhooks_sharing_a_failed_inbox_commit_are_all_refused_and_their_retries_kept() {
    const WEBHOOKS: usize = 12;
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let fixture: Value = serde_json::from_str(&fixture("meta/text.json")).unwrap();
    let bodies: Vec<String> = (0..WEBHOOKS)
        .map(|i| {
            let mut doc = fixture.clone();
            let message = &mut doc["entry"][0]["changes"][0]["value"]["messages"][0];
            message["id"] = serde_json::json!(format!("wamid.shared{i:03}"));
            doc.to_string()
        })
        .collect();
    let send_all = || futures::future::join_all(bodies.iter().map(|body| app.meta(body)));
    sqlx::query("ALTER TABLE inbox ADD CONSTRAINT test_refuses_rows CHECK (false) NOT VALID")
        .execute(&app.app.pool)
        .await
        .unwrap();
    for response in send_all().await {
        assert!(
            response.status().is_server_error(),
            "a webhook whose message was not kept must not be acknowledged: {}",
            response.status()
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM inbox").await, 0);
    sqlx::query("ALTER TABLE inbox DROP CONSTRAINT test_refuses_rows")
        .execute(&app.app.pool)
        .await
        .unwrap();
    for response in send_all().await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbox").await,
        WEBHOOKS as i64
    );
    app.inbox_stored().await;
    assert_eq!(
        app.count(
            "SELECT count(DISTINCT provider_message_id) FROM messages WHERE direction = 'inbound'"
        )
        .await,
        WEBHOOKS as i64
    );
}

#[tokio::test]
async fn a_kept_message_that_cannot_be_stored_waits_in_the_inbox_and_holds_up_no_other() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    // A row this version cannot read (written by another one, say), ahead of a good message.
    sqlx::query("INSERT INTO inbox (message) VALUES ('{\"not\": \"a message\"}')")
        .execute(&app.app.pool)
        .await
        .unwrap();
    app.twilio_message_stored(&fixture("twilio/sms_help.form"))
        .await;
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .await,
        1,
        "the good message was stored"
    );
    let (attempts, error, put_off): (i32, String, bool) =
        sqlx::query_as("SELECT attempts, last_error, retry_at > now() FROM inbox")
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(
        error.contains("not a message this version reads"),
        "{error}"
    );
    assert!(put_off, "tried again later, not on every drain");
    // The good one goes on to be answered.
    assert_eq!(app.wait_for_sends(1).await.len(), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM inbox").await,
        1,
        "the bad row is kept, not lost"
    );
}
