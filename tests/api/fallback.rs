//! WhatsApp first, SMS when WhatsApp fails for good or has not delivered by the message key's
//! deadline: through a real dispatch, the fake providers' webhooks and the deadline job.

use serde_json::json;

use crate::{
    dispatch::{META_OUT_FIRST, Setup, report, setup, wait_status},
    panel::{PASSWORD, login_form, sign_in},
    providers::*,
};

fn is_sms(r: &Recorded) -> bool {
    r.method == reqwest::Method::POST && r.path.ends_with("/Messages.json")
}

/// The deadline job comes due now instead of in minutes.
async fn deadline_passes(s: &Setup) {
    s.app.app.due_now("sms-fallback").await;
    assert!(
        s.app
            .eventually(
                "SELECT count(*) = 0 FROM apalis.jobs WHERE job_type = 'sms-fallback'
                 AND status IN ('Pending', 'Queued', 'Running')"
            )
            .await,
        "the deadline job never ran"
    );
}

/// (reason, WhatsApp message) of the one SMS sent in place of a WhatsApp message.
async fn fallback_sms(s: &Setup) -> (String, String) {
    assert!(
        s.app
            .eventually("SELECT count(*) = 1 FROM messages WHERE fallback_reason IS NOT NULL")
            .await
    );
    sqlx::query_as(
        "SELECT sms.fallback_reason, wa.whatsapp_template
         FROM messages sms JOIN messages wa ON wa.id = sms.fallback_of_message_id
         WHERE sms.fallback_reason IS NOT NULL",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_undelivered_urgent_dispatch_goes_by_sms_after_two_minutes_and_is_answered_there() {
    let s = setup().await;
    let order = report(&s, json!({ "priority": "urgent" })).await;
    let id = order["id"].as_str().unwrap();
    let reference = order["reference"].as_str().unwrap();
    let whatsapp = s.app.fake.wait_for_sends(1).await[0].clone();
    assert!(whatsapp.path.ends_with("/messages"), "WhatsApp first");
    assert_eq!(whatsapp.json()["to"], "251911000101");
    let deadline: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM f.due_at - m.queued_at)::float8
         FROM message_fallbacks f JOIN messages m ON m.id = f.message_id",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap();
    assert!(
        (119.0..=121.0).contains(&deadline),
        "an urgent dispatch waits 2 minutes, not {deadline} s"
    );
    assert!(!s.app.fake.sends().iter().any(is_sms));

    deadline_passes(&s).await;
    let sms = s.app.fake.wait_for("the SMS dispatch", is_sms).await;
    assert_eq!(sms.field("To").as_deref(), Some(WORKER_PHONE));
    let body = sms.field("Body").unwrap();
    assert!(
        body.contains(reference) && body.contains("Reply 1 to Accept, 2 to Decline."),
        "{body}"
    );
    assert_eq!(
        fallback_sms(&s).await,
        (
            "not_delivered_in_time".to_owned(),
            "fieldline_wo_dispatch".to_owned()
        )
    );

    // The worker answers the SMS with its number, and that accepts the job.
    s.app
        .twilio_message_stored(&fixture("twilio/sms_numbered_reply.form"))
        .await;
    wait_status(&s, id, "accepted").await;

    // The coordinator sees both messages on the work order, and why the second went by SMS.
    s.app
        .app
        .user(&s.app.tenant, "liya@fallback.example", PASSWORD)
        .await;
    let csrf = login_form(&s.app.app).await;
    let signed_in = sign_in(
        &s.app.app,
        "msg-org",
        "liya@fallback.example",
        PASSWORD,
        &csrf,
    )
    .await;
    assert_eq!(signed_in.status(), 303);
    let page = s
        .app
        .app
        .client
        .get(s.app.app.url(&format!("/panel/work-orders/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("(whatsapp)")
            && page.contains("(sms)")
            && page.contains("by SMS: WhatsApp not delivered in time"),
        "{page}"
    );
}

#[tokio::test]
async fn a_dispatch_delivered_on_whatsapp_before_its_deadline_is_not_sent_by_sms() {
    let s = setup().await;
    report(&s, json!({})).await;
    s.app.fake.wait_for_sends(1).await;
    let response = s.app.meta(&fixture("meta/status_delivered.json")).await;
    assert_eq!(response.status(), 200);
    assert!(
        s.app
            .eventually("SELECT decided_at IS NOT NULL FROM message_fallbacks")
            .await
    );

    deadline_passes(&s).await;
    assert_eq!(s.app.fake.sends().len(), 1, "the dispatch went once");
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM message_fallbacks WHERE sms_message_id IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn whatsapp_reporting_a_failure_sends_the_sms_at_once_and_only_once() {
    let s = setup().await;
    report(&s, json!({})).await;
    s.app.fake.wait_for_sends(1).await;
    // Meta accepted the template, then reports it failed (131047), twice as providers retry.
    let failed = fixture("meta/status_failed_131047.json");
    assert!(failed.contains(META_OUT_FIRST));
    for _ in 0..2 {
        assert_eq!(s.app.meta(&failed).await.status(), 200);
    }
    let sms = s.app.fake.wait_for("the SMS dispatch", is_sms).await;
    assert_eq!(sms.field("To").as_deref(), Some(WORKER_PHONE));
    assert_eq!(fallback_sms(&s).await.0, "whatsapp_failed");

    // The deadline finds the plan carried out: nothing more goes.
    deadline_passes(&s).await;
    assert_eq!(s.app.fake.sends().iter().filter(|r| is_sms(r)).count(), 1);
}
