//! Outbound: the one `notify` call domains use, the send job, and the exact provider requests.

use std::time::Duration;

use base64::Engine;
use fieldline::{
    channels::Button,
    messaging::{
        consent, contacts,
        notify::{self, Notification, Notified},
        send::SendMessage,
        templates::{Templates, Values},
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    providers::*,
    spec::{assert_meta_valid, assert_twilio_valid},
};

fn templates() -> Templates {
    Templates::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("message-templates"))
        .unwrap()
}

async fn party(app: &MessagingApp, table: &str) -> Uuid {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} LIMIT 1"
    )))
    .fetch_one(&app.app.pool)
    .await
    .unwrap()
}

/// Notifies in a transaction of its own, as a domain would inside its own.
async fn notify_with(
    app: &MessagingApp,
    change: impl FnOnce(&mut Notification),
    who: &str,
) -> Notified {
    let mut tx = app.app.pool.begin().await.unwrap();
    let contact = match who {
        "worker" => contacts::for_worker(&mut tx, app.tenant.id, party(app, "workers").await)
            .await
            .unwrap(),
        _ => contacts::for_patient(&mut tx, app.tenant.id, party(app, "patients").await)
            .await
            .unwrap(),
    };
    let values = Values::new()
        .with("tenant", "Org msg-org")
        .with("text", "Your visit is at 10:00");
    let mut notification = Notification::new(app.tenant.id, contact, "coordinator_message", values);
    change(&mut notification);
    let notified = notify::notify(&mut tx, &templates(), &notification)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    notified
}

/// The worker or patient writes STOP to the SMS number.
async fn stop_sms(app: &MessagingApp, who: &str) {
    let mut tx = app.app.pool.begin().await.unwrap();
    let contact = match who {
        "worker" => contacts::for_worker(&mut tx, app.tenant.id, party(app, "workers").await).await,
        _ => contacts::for_patient(&mut tx, app.tenant.id, party(app, "patients").await).await,
    }
    .unwrap();
    let sms: Uuid =
        sqlx::query_scalar("SELECT id FROM channels WHERE provider = 'twilio' AND kind = 'sms'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    consent::opt_out(
        &mut tx,
        app.tenant.id,
        contact,
        sms,
        consent::Source::Message,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn buttons() -> Vec<Button> {
    vec![
        Button {
            id: "accept".into(),
            title: "Accept".into(),
            description: None,
        },
        Button {
            id: "decline".into(),
            title: "Decline".into(),
            description: None,
        },
    ]
}

async fn message(app: &MessagingApp, id: Uuid) -> (String, Option<String>, Option<String>, i32) {
    sqlx::query_as(
        "SELECT status, provider_message_id, error_code, attempts FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.app.pool)
    .await
    .unwrap()
}

async fn settled(app: &MessagingApp, id: Uuid) -> (String, Option<String>, Option<String>, i32) {
    app.eventually(&format!("SELECT status NOT IN ('queued', 'sending') OR provider_message_id IS NOT NULL FROM messages WHERE id = '{id}'")).await;
    message(app, id).await
}

/// The queue runs the message's send job once more, as after a crash or a retry.
async fn run_send_job_again(app: &MessagingApp, id: Uuid) {
    let mut conn = app.app.pool.acquire().await.unwrap();
    fieldline::jobs::enqueue(
        &mut conn,
        &SendMessage {
            tenant_id: app.tenant.id,
            message_id: id,
        },
        Duration::ZERO,
    )
    .await
    .unwrap();
}

fn queued(notified: Notified) -> Uuid {
    match notified {
        Notified::Queued(id) => id,
        other => panic!("not queued: {other:?}"),
    }
}

#[tokio::test]
async fn an_sms_is_posted_to_twilio_exactly_as_its_api_describes() {
    let app = spawn_messaging_app(&[]).await;
    let id = queued(notify_with(&app, |_| {}, "patient").await);
    let send = app.fake.wait_for_sends(1).await[0].clone();
    assert_eq!(
        send.path,
        format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"));
    assert_eq!(send.header("authorization"), format!("Basic {basic}"));
    assert_eq!(
        send.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let mut form = send.form();
    form.sort();
    assert_eq!(
        form,
        vec![
            ("Body".into(), "Org msg-org: Your visit is at 10:00".into()),
            ("From".into(), TWILIO_NUMBER.into()),
            (
                "StatusCallback".into(),
                format!("{PUBLIC_BASE_URL}/webhooks/twilio/status")
            ),
            ("To".into(), PATIENT_PHONE.into()),
        ]
    );
    assert_twilio_valid(&form);
    let (status, provider_id, ..) = settled(&app, id).await;
    assert_eq!(
        (status.as_str(), provider_id.as_deref()),
        ("sending", Some(FIRST_TWILIO_SID))
    );
}

#[tokio::test]
async fn outside_the_whatsapp_window_an_approved_template_goes_to_meta() {
    let app = spawn_messaging_app(&[]).await;
    sqlx::query(
        "UPDATE channels SET active = false WHERE provider = 'twilio' AND kind = 'whatsapp'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    let id = queued(notify_with(&app, |_| {}, "worker").await);
    let send = app.fake.wait_for_sends(1).await[0].clone();
    assert_eq!(send.path, format!("/v23.0/{META_PHONE_NUMBER_ID}/messages"));
    assert_eq!(send.header("authorization"), format!("Bearer {META_TOKEN}"));
    let body = send.json();
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "251911000101",
            "type": "template",
            "template": {
                "name": "fieldline_coordinator_message",
                "language": { "policy": "deterministic", "code": "en" },
                "components": [{ "type": "body", "parameters": [
                    { "type": "text", "text": "Org msg-org" },
                    { "type": "text", "text": "Your visit is at 10:00" },
                ]}],
            },
        })
    );
    assert_meta_valid("TemplateMessage", &body);
    assert_eq!(settled(&app, id).await.0, "sending");
}

#[tokio::test]
async fn inside_the_window_whatsapp_gets_text_and_reply_buttons() {
    let app = spawn_messaging_app(&[]).await;
    // The worker writes on Meta's number: that opens the window (and earns a "not understood").
    app.meta(&fixture("meta/text.json")).await;
    let first = app.fake.wait_for_sends(1).await[0].json();
    assert_eq!(first["type"], "text");
    assert_meta_valid("TextMessage", &first);

    queued(notify_with(&app, |n| n.buttons = Some(buttons()), "worker").await);
    let body = app.fake.wait_for_sends(2).await[1].json();
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "251911000101",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": { "text": "Org msg-org: Your visit is at 10:00" },
                "action": { "buttons": [
                    { "type": "reply", "reply": { "id": "accept", "title": "Accept" } },
                    { "type": "reply", "reply": { "id": "decline", "title": "Decline" } },
                ]},
            },
        })
    );
    assert_meta_valid("InteractiveMessage", &body);
}

#[tokio::test]
async fn sms_offers_buttons_as_numbers_and_a_number_answers_them() {
    let app = spawn_messaging_app(&[]).await;
    let sms: Uuid =
        sqlx::query_scalar("SELECT id FROM channels WHERE provider = 'twilio' AND kind = 'sms'")
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    let offer = queued(
        notify_with(
            &app,
            |n| {
                n.buttons = Some(buttons());
                n.via_channel = Some(sms);
            },
            "worker",
        )
        .await,
    );
    let send = app.fake.wait_for_sends(1).await[0].clone();
    assert_eq!(
        send.field("Body").as_deref(),
        Some("Org msg-org: Your visit is at 10:00\nReply 1 to Accept, 2 to Decline.")
    );
    assert_twilio_valid(&send.form());

    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_numbered_reply.form")
        )
        .await
        .status(),
        200
    );
    assert!(app.eventually("SELECT interactive_reply_id = 'accept' FROM messages WHERE body = '1' AND routed_at IS NOT NULL").await);
    let (status, ..) = message(&app, offer).await;
    assert_eq!(status, "sending");
}

#[tokio::test]
async fn a_failed_send_is_retried_then_succeeds() {
    let app = spawn_messaging_app(&[]).await;
    app.fake.respond(
        500,
        &[],
        json!({ "code": 20500, "message": "Internal Server Error" }),
    );
    let id = queued(notify_with(&app, |_| {}, "patient").await);
    let sends = app.fake.wait_for_sends(2).await;
    assert_eq!(sends.len(), 2);
    let (status, provider_id, error, attempts) = settled(&app, id).await;
    assert_eq!(
        (status.as_str(), provider_id.is_some(), error, attempts),
        ("sending", true, None, 2)
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let app = spawn_messaging_app(&[]).await;
    app.fake.respond(
        429,
        &[("Retry-After", "3")],
        json!({ "code": 20429, "message": "Too Many Requests" }),
    );
    queued(notify_with(&app, |_| {}, "patient").await);
    let sends = app.fake.wait_for_sends(2).await;
    assert_eq!(sends.len(), 2);
    let gap = sends[1].at - sends[0].at;
    // Three seconds is more than one poll interval: the worker must wake on its own to run it.
    assert!(
        gap >= Duration::from_secs(3) && gap < Duration::from_secs(6),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test]
async fn permanent_errors_fail_at_once_with_the_code() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    app.fake.respond(
        400,
        &[],
        json!({ "code": 21211, "message": "Invalid 'To' Phone Number", "status": 400 }),
    );
    let id = queued(notify_with(&app, |_| {}, "patient").await);
    let (status, _, error, attempts) = settled(&app, id).await;
    assert_eq!(
        (status.as_str(), error.as_deref(), attempts),
        ("failed", Some("21211"), 1)
    );

    // 21610: the person replied STOP to Twilio; we record it as their opt-out.
    app.fake.respond(
        400,
        &[],
        json!({ "code": 21610, "message": "Attempt to send to unsubscribed recipient" }),
    );
    let id = queued(notify_with(&app, |_| {}, "patient").await);
    let (status, _, error, _) = settled(&app, id).await;
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some("21610"))
    );
    assert_eq!(app.count("SELECT count(*) FROM opt_outs").await, 1);

    // Meta 131047: outside the window.
    app.meta(&fixture("meta/text.json")).await;
    app.wait_for_sends(3).await;
    app.fake.respond(
        400,
        &[],
        json!({ "error": { "code": 131047, "message": "Re-engagement message" } }),
    );
    let id = queued(notify_with(&app, |_| {}, "worker").await);
    let (status, _, error, attempts) = settled(&app, id).await;
    assert_eq!(
        (status.as_str(), error.as_deref(), attempts),
        ("failed", Some("131047"), 1)
    );
    // WhatsApp failed for good: the same text goes by SMS in its place.
    let sends = app.wait_for_sends(5).await;
    assert_eq!(sends[4].field("To").as_deref(), Some(WORKER_PHONE));
    assert_eq!(
        sends[4].field("Body").as_deref(),
        Some("Org msg-org: Your visit is at 10:00")
    );
    let (reason, of): (String, Uuid) = sqlx::query_as(
        "SELECT fallback_reason, fallback_of_message_id FROM messages WHERE fallback_reason IS NOT NULL",
    )
    .fetch_one(&app.app.pool)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), of), ("whatsapp_failed", id));
    // Past every retry pause a failure could have had.
    app.app.advance(Duration::from_secs(60)).await;
    app.settle().await;
    assert_eq!(app.fake.sends().len(), 5, "no permanent failure is retried");
}

#[tokio::test]
async fn meta_throttling_is_retried() {
    let app = spawn_messaging_app(&[]).await;
    app.meta(&fixture("meta/text.json")).await;
    app.fake.wait_for_sends(1).await;
    app.fake.respond(
        400,
        &[],
        json!({ "error": { "code": 130429, "message": "Rate limit hit" } }),
    );
    let id = queued(notify_with(&app, |_| {}, "worker").await);
    assert_eq!(app.fake.wait_for_sends(3).await.len(), 3);
    let (_, provider_id, _, attempts) = settled(&app, id).await;
    assert!(provider_id.is_some());
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn after_the_last_attempt_the_message_is_failed() {
    let app = spawn_messaging_app(&[("SEND_MAX_ATTEMPTS", "3")]).await;
    for _ in 0..3 {
        app.fake
            .respond(503, &[], json!({ "message": "Service Unavailable" }));
    }
    let id = queued(notify_with(&app, |_| {}, "patient").await);
    assert!(
        app.eventually(&format!(
            "SELECT status = 'failed' FROM messages WHERE id = '{id}'"
        ))
        .await
    );
    let (_, _, error, attempts) = message(&app, id).await;
    assert_eq!((error.as_deref(), attempts), (Some("http_503"), 3));
    assert_eq!(app.fake.sends().len(), 3);
    // Visible as failed through the API, to this organisation only.
    let (status, page) = crate::helpers::json(
        app.app
            .get(&app.tenant, "/api/v1/messages?status=failed")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["error_code"], "http_503");
    assert_eq!(page["items"][0]["attempts"], 3);
    assert!(
        page["items"][0]["error_message"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    let other = app.app.tenant("other-org").await;
    let (_, theirs) = crate::helpers::json(app.app.get(&other, "/api/v1/messages").await).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_rerun_of_a_send_job_does_not_send_again() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let id = queued(notify_with(&app, |_| {}, "patient").await);
    app.wait_for_sends(1).await;
    settled(&app, id).await;
    run_send_job_again(&app, id).await;
    app.settle().await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'send-message' AND status = 'Done'"
        )
        .await,
        2,
        "the send job ran again"
    );
    assert_eq!(app.fake.sends().len(), 1);
}

#[tokio::test]
async fn opted_out_contacts_get_no_non_essential_message() {
    let app = spawn_messaging_app(&[]).await;
    stop_sms(&app, "patient").await;

    let reminder = notify_with(&app, |n| n.essential = false, "patient").await;
    assert_eq!(reminder, Notified::OptedOut);
    assert_eq!(
        app.count("SELECT count(*) FROM messages").await,
        0,
        "nothing written for a suppressed reminder"
    );
    // Essential messages (a reply to their own STOP, safety notices) still go.
    queued(notify_with(&app, |_| {}, "patient").await);
    assert_eq!(app.fake.wait_for_sends(1).await.len(), 1);
}

#[tokio::test]
async fn amharic_contacts_get_amharic_text() {
    let app = spawn_messaging_app(&[]).await;
    sqlx::query("UPDATE patients SET preferred_locale = 'am'")
        .execute(&app.app.pool)
        .await
        .unwrap();
    queued(notify_with(&app, |_| {}, "patient").await);
    let body = app.fake.wait_for_sends(1).await[0].field("Body").unwrap();
    assert_eq!(body, "Org msg-org፦ Your visit is at 10:00");
    let locale: String = sqlx::query_scalar("SELECT locale FROM messages")
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    assert_eq!(locale, "am");
}

#[tokio::test]
async fn sends_from_one_number_are_paced() {
    let app = spawn_messaging_app(&[("OUTBOUND_PER_NUMBER_PER_SECOND", "2")]).await;
    for _ in 0..4 {
        queued(notify_with(&app, |_| {}, "patient").await);
    }
    let sends = app.fake.wait_for_sends(4).await;
    assert_eq!(sends.len(), 4);
    // Two at once (the burst), then one every half second.
    let span = sends[3].at - sends[0].at;
    assert!(
        span >= Duration::from_millis(900),
        "4 sends in {span:?} at 2 per second"
    );
}

#[tokio::test]
async fn with_no_provider_credentials_everything_goes_to_the_console() {
    let app = crate::helpers::spawn_app().await;
    let tenant = app.tenant("console-org").await;
    let channel = json!({ "provider": "twilio", "kind": "sms", "phone_number": TWILIO_NUMBER });
    assert_eq!(
        app.post(&tenant, "/api/v1/channels", &channel)
            .await
            .status(),
        201
    );
    let patient = json!({ "first_name": "Hana", "last_name": "Tesfaye", "phone": PATIENT_PHONE });
    let (_, patient) =
        crate::helpers::json(app.post(&tenant, "/api/v1/patients", &patient).await).await;
    let patient_id: Uuid = patient["id"].as_str().unwrap().parse().unwrap();

    let mut tx = app.pool.begin().await.unwrap();
    let contact = contacts::for_patient(&mut tx, tenant.id, patient_id)
        .await
        .unwrap();
    let values = Values::new()
        .with("tenant", "Console Org")
        .with("text", "hello");
    let notification = Notification::new(tenant.id, contact, "coordinator_message", values);
    let id = queued(
        notify::notify(&mut tx, &templates(), &notification)
            .await
            .unwrap(),
    );
    tx.commit().await.unwrap();

    let started = std::time::Instant::now();
    loop {
        let (status, provider_id): (String, Option<String>) =
            sqlx::query_as("SELECT status, provider_message_id FROM messages WHERE id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if status == "delivered" {
            assert!(provider_id.unwrap().starts_with("console-"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_send_whose_outcome_was_lost_asks_twilio_before_sending_again() {
    let app = spawn_messaging_app(&[]).await;
    let id = queued(notify_with(&app, |n| n.via_channel = None, "patient").await);
    let (_, first_sid, _, _) = settled(&app, id).await;
    assert!(first_sid.is_some());
    assert_eq!(app.fake.sends().len(), 1);

    // The process died after Twilio said yes and before that was written: the row still says
    // 'sending' with no Twilio id, and the queue runs the job again.
    let rerun = |body: Option<&'static str>| {
        let app = &app;
        async move {
            sqlx::query(
                "UPDATE messages SET status = 'sending', provider_message_id = NULL,
                     sending_at = now() - interval '1 second', body = COALESCE($2, body)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(body)
            .execute(&app.app.pool)
            .await
            .unwrap();
            run_send_job_again(app, id).await;
            settled(app, id).await
        }
    };
    let (status, sid, _, _) = rerun(None).await;
    assert_eq!(sid, first_sid, "Twilio's message was found and recorded");
    assert_eq!(status, "delivered");
    assert_eq!(app.fake.sends().len(), 1, "and it was not sent again");
    assert!(
        app.fake
            .requests()
            .iter()
            .any(|r| r.method == axum::http::Method::GET && r.path.ends_with("/Messages.json")),
        "Twilio was asked"
    );

    // Twilio has no such message (the attempt died before reaching it): it is sent, once.
    let (_, sid, _, _) = rerun(Some("A text Twilio never saw")).await;
    assert!(sid.is_some() && sid != first_sid);
    let sends = app.fake.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(
        sends[1].field("Body").as_deref(),
        Some("A text Twilio never saw")
    );
}

#[tokio::test]
async fn the_template_files_say_which_messages_reach_someone_who_opted_out() {
    let app = spawn_messaging_app(&[]).await;
    let mut tx = app.app.pool.begin().await.unwrap();
    let patient = contacts::for_patient(&mut tx, app.tenant.id, party(&app, "patients").await)
        .await
        .unwrap();
    let channels: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM channels")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    for channel in channels {
        consent::opt_out(
            &mut tx,
            app.tenant.id,
            patient,
            channel,
            consent::Source::Message,
            None,
        )
        .await
        .unwrap();
    }
    let templates = templates();
    // A requester's status update is a courtesy; a dispatch to a worker is not.
    assert!(!templates.essential("wo_requester_assigned"));
    assert!(templates.essential("wo_dispatch"));
    let update = Notification::new(
        app.tenant.id,
        patient,
        "wo_requester_assigned",
        Values::new()
            .with("reference", "M-1001")
            .with("worker", "Abebe"),
    );
    assert_eq!(
        notify::notify(&mut tx, &templates, &update).await.unwrap(),
        Notified::OptedOut
    );
    tx.commit().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM messages").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pace_per_number_holds_across_processes() {
    let app = spawn_messaging_app(&[]).await;
    let channel: Uuid = sqlx::query_scalar("SELECT id FROM channels LIMIT 1")
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    // Two processes' worth of messaging: each its own pool and, before, its own limiter.
    let env: std::collections::HashMap<&str, String> = std::collections::HashMap::from([
        ("DATABASE_URL", app.app.database_url.clone()),
        ("OUTBOUND_PER_NUMBER_PER_SECOND", "2".to_owned()),
    ]);
    let config =
        std::sync::Arc::new(fieldline::Config::from_lookup(|k| env.get(k).cloned()).unwrap());
    let mut processes = Vec::new();
    for _ in 0..2 {
        let pool = sqlx::PgPool::connect(&app.app.database_url).await.unwrap();
        processes.push(
            fieldline::messaging::Messaging::new(
                pool,
                config.clone(),
                fieldline::domains::message_handlers(),
            )
            .unwrap(),
        );
    }
    // Three sends each, at once, from the same number at 2 per second: a second's burst (two),
    // then one every half second, so the last goes 2 s after the first whichever process sends.
    let started = std::time::Instant::now();
    let turns = processes.iter().flat_map(|messaging| {
        (0..3).map(move |_| async move {
            fieldline::messaging::send::wait_for_turn(messaging, app.tenant.id, channel)
                .await
                .unwrap();
            started.elapsed()
        })
    });
    let mut at = futures::future::join_all(turns).await;
    at.sort();
    assert!(
        at[1] < Duration::from_millis(500),
        "the burst goes at once: {at:?}"
    );
    assert!(
        at[5] >= Duration::from_millis(1900),
        "six turns from two processes in {:?} at 2 per second",
        at[5]
    );
}

#[tokio::test]
async fn an_amharic_worker_outside_the_window_gets_the_template_in_an_approved_language() {
    let app = spawn_messaging_app(&[]).await;
    sqlx::query(
        "UPDATE channels SET active = false WHERE provider = 'twilio' AND kind = 'whatsapp'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE workers SET preferred_locale = 'am'")
        .execute(&app.app.pool)
        .await
        .unwrap();
    // Meta approves no Amharic templates: the template files say English only.
    assert_eq!(
        templates().template_language("coordinator_message", "am", "en"),
        "en"
    );
    let id = queued(notify_with(&app, |_| {}, "worker").await);
    let body = app.fake.wait_for_sends(1).await[0].json();
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["language"]["code"], "en", "{body}");
    assert_meta_valid("TemplateMessage", &body);
    let (locale,): (String,) = sqlx::query_as("SELECT locale FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    assert_eq!(locale, "am", "the stored text stays the person's language");
}

#[tokio::test]
async fn a_whatsapp_message_twilio_cannot_send_outside_the_window_goes_by_sms_at_once() {
    let app = spawn_messaging_app(&[]).await;
    // Twilio WhatsApp only: its templates need a Content SID, which coordinator_message lacks.
    sqlx::query("UPDATE channels SET active = false WHERE provider = 'meta'")
        .execute(&app.app.pool)
        .await
        .unwrap();
    let id = queued(notify_with(&app, |_| {}, "worker").await);
    let send = app.fake.wait_for_sends(1).await[0].clone();
    assert_eq!(
        send.field("To").as_deref(),
        Some(WORKER_PHONE),
        "SMS, not whatsapp:"
    );
    assert_eq!(
        send.field("Body").as_deref(),
        Some("Org msg-org: Your visit is at 10:00")
    );
    assert_twilio_valid(&send.form());
    assert_eq!(settled(&app, id).await.0, "sending");
    assert_eq!(
        app.count("SELECT count(*) FROM message_fallbacks").await,
        0,
        "already on SMS: nothing to fall back to"
    );
}

#[tokio::test]
async fn a_courtesy_has_no_sms_fallback_to_a_channel_the_person_left() {
    let app = spawn_messaging_app(&[]).await;
    let courtesy = |n: &mut Notification| n.essential = false;
    let planned = "SELECT count(*) FROM message_fallbacks f JOIN messages m ON m.id = f.message_id
                   WHERE m.essential = false";
    queued(notify_with(&app, courtesy, "worker").await);
    assert_eq!(
        app.count(planned).await,
        1,
        "WhatsApp first, SMS standing by"
    );

    stop_sms(&app, "worker").await;
    queued(notify_with(&app, courtesy, "worker").await);
    assert_eq!(
        app.count(planned).await,
        1,
        "no SMS planned after STOP on SMS"
    );
    // An essential message still has its SMS standing by.
    queued(notify_with(&app, |_| {}, "worker").await);
    assert_eq!(app.count("SELECT count(*) FROM message_fallbacks").await, 2);
}

#[tokio::test]
async fn a_patient_without_recorded_consent_gets_no_courtesy_until_they_write_start() {
    let app = spawn_messaging_app(&[]).await;
    sqlx::query("UPDATE patients SET consent_sms = false, consent_whatsapp = false")
        .execute(&app.app.pool)
        .await
        .unwrap();
    let courtesy = |n: &mut Notification| n.essential = false;
    assert_eq!(
        notify_with(&app, courtesy, "patient").await,
        Notified::OptedOut
    );
    // What is essential (an answer to them, a safety notice) does not ask.
    queued(notify_with(&app, |_| {}, "patient").await);

    // START by SMS is the consent the record lacked.
    app.twilio_message_stored(&fixture("twilio/sms_start.form"))
        .await;
    assert!(
        app.eventually("SELECT consent_sms AND NOT consent_whatsapp FROM patients")
            .await
    );
    queued(notify_with(&app, courtesy, "patient").await);
}
