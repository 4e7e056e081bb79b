//! What inbound messages cause: delivery statuses moving forward, consent, help and the fallbacks.

use crate::providers::*;

/// Sends HELP from the patient by SMS and waits for the answer to reach the fake Twilio.
async fn answered_help(app: &MessagingApp) {
    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_help.form")
        )
        .await
        .status(),
        200
    );
    app.fake.wait_for_sends(1).await;
    assert!(app.eventually(&format!("SELECT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = '{FIRST_TWILIO_SID}')")).await);
}

async fn status_of(
    app: &MessagingApp,
    provider_message_id: &str,
) -> (String, Option<String>, bool, bool, bool) {
    sqlx::query_as(
        "SELECT status, error_code, sent_at IS NOT NULL, delivered_at IS NOT NULL, read_at IS NOT NULL
         FROM messages WHERE provider_message_id = $1",
    )
    .bind(provider_message_id)
    .fetch_one(&app.app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn twilio_statuses_only_move_forward() {
    let app = spawn_messaging_app(&[]).await;
    answered_help(&app).await;
    let steps = [
        ("status_sent", "sent"),
        ("status_delivered", "delivered"),
        // Late news never overwrites newer news.
        ("status_sent", "delivered"),
        ("status_queued", "delivered"),
        ("status_read", "read"),
        ("status_delivered", "read"),
        ("status_undelivered_30003", "read"),
    ];
    for (fixture_name, expected) in steps {
        let response = app
            .twilio(
                "/webhooks/twilio/status",
                &fixture(&format!("twilio/{fixture_name}.form")),
            )
            .await;
        assert_eq!(response.status(), 200, "{fixture_name}");
        assert_eq!(
            status_of(&app, FIRST_TWILIO_SID).await.0,
            expected,
            "after {fixture_name}"
        );
    }
    let (_, error, sent, delivered, read) = status_of(&app, FIRST_TWILIO_SID).await;
    assert!(sent && delivered && read, "each status keeps its time");
    assert_eq!(error.as_deref(), Some("30003"), "error codes are kept");
    // A callback for a message that is not ours is acknowledged, so Twilio stops retrying.
    let unknown = app
        .twilio(
            "/webhooks/twilio/status",
            &fixture("twilio/status_unknown_message.form"),
        )
        .await;
    assert_eq!(unknown.status(), 200);
}

#[tokio::test]
async fn a_twilio_21610_failure_records_the_opt_out() {
    let app = spawn_messaging_app(&[]).await;
    answered_help(&app).await;
    let response = app
        .twilio(
            "/webhooks/twilio/status",
            &fixture("twilio/status_failed_21610.form"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (status, error, ..) = status_of(&app, FIRST_TWILIO_SID).await;
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some("21610"))
    );
    assert_eq!(app.count("SELECT count(*) FROM opt_outs").await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM consent_events WHERE event = 'opt_out' AND source = 'provider'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn meta_statuses_only_move_forward_and_keep_error_codes() {
    let app = spawn_messaging_app(&[]).await;
    // The worker writes on Meta's number; the "not understood" answer goes back there.
    assert_eq!(app.meta(&fixture("meta/text.json")).await.status(), 200);
    let sends = app.fake.wait_for_sends(1).await;
    assert!(
        sends[0]
            .path
            .ends_with(&format!("/v23.0/{META_PHONE_NUMBER_ID}/messages"))
    );
    let out = "wamid.HBgMMjUxOTExMDAwMTAxFQIAEhgg00000000000000000000000000000900AA==";
    assert!(
        app.eventually(&format!(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = '{out}')"
        ))
        .await
    );
    assert_eq!(
        status_of(&app, out).await.0,
        "sending",
        "accepted by Meta, not yet sent"
    );
    for (name, expected) in [
        ("status_delivered", "delivered"),
        ("status_sent", "delivered"),
        ("status_read", "read"),
    ] {
        assert_eq!(
            app.meta(&fixture(&format!("meta/{name}.json")))
                .await
                .status(),
            200
        );
        assert_eq!(status_of(&app, out).await.0, expected, "after {name}");
    }
    let (.., sent, delivered, read) = status_of(&app, out).await;
    assert!(sent && delivered && read);
    // A failure after delivery cannot happen in order; one on its own keeps Meta's code.
    sqlx::query("UPDATE messages SET status = 'sent' WHERE provider_message_id = $1")
        .bind(out)
        .execute(&app.app.pool)
        .await
        .unwrap();
    assert_eq!(
        app.meta(&fixture("meta/status_failed_131047.json"))
            .await
            .status(),
        200
    );
    let (status, error, ..) = status_of(&app, out).await;
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some("131047"))
    );
    let reason: String =
        sqlx::query_scalar("SELECT error_message FROM messages WHERE provider_message_id = $1")
            .bind(out)
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert!(reason.contains("24 hours"), "{reason}");
}

#[tokio::test]
async fn opt_out_and_opt_in_words_change_consent_and_are_confirmed_once() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_stop.form")
        )
        .await
        .status(),
        200
    );
    let sends = app.wait_for_sends(1).await;
    assert!(
        sends[0].field("Body").unwrap().contains("no more messages"),
        "{:?}",
        sends[0].field("Body")
    );
    assert_eq!(app.count("SELECT count(*) FROM opt_outs").await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM consent_events e JOIN messages m ON m.id = e.source_message_id
                   WHERE e.event = 'opt_out' AND e.source = 'message' AND m.body = 'Stop.'"
        )
        .await,
        1,
        "the consent event names the message that asked for it"
    );

    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_start.form")
        )
        .await
        .status(),
        200
    );
    let sends = app.wait_for_sends(2).await;
    assert!(
        sends[1].field("Body").unwrap().contains("again"),
        "{:?}",
        sends[1].field("Body")
    );
    assert_eq!(app.count("SELECT count(*) FROM opt_outs").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM consent_events WHERE event = 'opt_in'")
            .await,
        1
    );

    // A plain phrase on WhatsApp, with punctuation and capitals.
    assert_eq!(app.meta(&fixture("meta/stop.json")).await.status(), 200);
    assert!(app.eventually("SELECT count(*) = 1 FROM opt_outs o JOIN channels c ON c.id = o.channel_id WHERE c.provider = 'meta'").await);
    app.wait_for_sends(3).await;
    app.settle().await;
    assert_eq!(
        app.fake.sends().len(),
        3,
        "exactly one confirmation per change"
    );
}

#[tokio::test]
async fn opt_out_words_are_matched_leniently() {
    let app = spawn_messaging_app(&[]).await;
    let base = fixture("twilio/sms_stop.form");
    for (i, word) in [
        "STOPALL",
        "unsubscribe",
        "Cancel",
        "end",
        "QUIT!",
        "revoke",
        "optout",
        "stop texting me",
        "No more messages.",
        "Stóp",
    ]
    .iter()
    .enumerate()
    {
        let sid = format!("SM1000000000000000000000000000{:04}", 100 + i);
        let body = base
            .replace("SM10000000000000000000000000000002", &sid)
            .replace(
                "Body=Stop.",
                &format!(
                    "Body={}",
                    url::form_urlencoded::byte_serialize(word.as_bytes()).collect::<String>()
                ),
            );
        assert_eq!(
            app.twilio("/webhooks/twilio/messages", &body)
                .await
                .status(),
            200
        );
    }
    assert!(
        app.eventually("SELECT count(*) = 10 FROM consent_events WHERE event = 'opt_out'")
            .await
    );
    assert!(
        app.eventually("SELECT count(*) = 10 FROM messages WHERE handled_by = 'consent'")
            .await
    );
}

#[tokio::test]
async fn help_gets_the_help_text_and_strangers_a_polite_answer() {
    let app = spawn_messaging_app(&[]).await;
    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_help.form")
        )
        .await
        .status(),
        200
    );
    let help = app.fake.wait_for_sends(1).await[0].clone();
    // The help is generated from intents/: what the reader reads is what it lists.
    assert!(
        help.field("Body")
            .unwrap()
            .contains("• STOP — no more messages")
    );
    assert_eq!(help.field("To").as_deref(), Some(PATIENT_PHONE));
    assert_eq!(help.field("From").as_deref(), Some(TWILIO_NUMBER));

    // A tenant's own help text is used when it has one.
    sqlx::query("UPDATE tenants SET help_text = 'Call 8044 for the duty coordinator.'")
        .execute(&app.app.pool)
        .await
        .unwrap();
    let again = fixture("twilio/sms_help.form").replace(
        "SM10000000000000000000000000000004",
        "SM10000000000000000000000000000044",
    );
    app.twilio("/webhooks/twilio/messages", &again).await;
    let own = app.fake.wait_for_sends(2).await[1].clone();
    assert!(
        own.field("Body").unwrap().contains("Call 8044"),
        "{:?}",
        own.field("Body")
    );

    // An organisation that takes no reports from strangers tells them so.
    sqlx::query("UPDATE tenants SET reports_by_message = false")
        .execute(&app.app.pool)
        .await
        .unwrap();
    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_unknown_sender.form")
        )
        .await
        .status(),
        200
    );
    let stranger = app.fake.wait_for_sends(3).await[2].clone();
    assert!(
        stranger.field("Body").unwrap().contains("not registered"),
        "{:?}",
        stranger.field("Body")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE handled_by = 'fallback'")
            .await,
        1
    );

    // A known worker who writes something nobody handles is told what they can send.
    assert_eq!(
        app.twilio(
            "/webhooks/twilio/messages",
            &fixture("twilio/sms_text.form").replace("On+my+way%21", "Hello+there")
        )
        .await
        .status(),
        200
    );
    let unclear = app.fake.wait_for_sends(4).await[3].clone();
    assert!(
        unclear
            .field("Body")
            .unwrap()
            .contains("did not understand"),
        "{:?}",
        unclear.field("Body")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM contacts WHERE worker_id IS NOT NULL")
            .await,
        1,
        "the contact is linked to the worker"
    );
}

#[tokio::test]
async fn a_status_that_arrives_before_its_send_is_recorded_is_applied_then() {
    let app = spawn_messaging_app(&[]).await;
    // A fast provider: the callback for the first message Twilio will take from us comes in
    // before the send job has written Twilio's id.
    let early = app
        .twilio(
            "/webhooks/twilio/status",
            &fixture("twilio/status_delivered.form"),
        )
        .await;
    assert_eq!(early.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM early_statuses").await, 1);
    answered_help(&app).await;
    assert!(
        app.eventually(&format!(
            "SELECT status = 'delivered' AND delivered_at IS NOT NULL FROM messages WHERE provider_message_id = '{FIRST_TWILIO_SID}'"
        ))
        .await,
        "the early status was applied when the id was recorded"
    );
    assert_eq!(app.count("SELECT count(*) FROM early_statuses").await, 0);
}

#[tokio::test]
async fn a_failed_message_never_becomes_read() {
    let app = spawn_messaging_app(&[]).await;
    answered_help(&app).await;
    for fixture_name in [
        "twilio/status_undelivered_30003.form",
        "twilio/status_read.form",
    ] {
        assert_eq!(
            app.twilio("/webhooks/twilio/status", &fixture(fixture_name))
                .await
                .status(),
            200
        );
    }
    let (status, error, _, _, read) = status_of(&app, FIRST_TWILIO_SID).await;
    assert_eq!(status, "undelivered", "a late read does not overwrite it");
    assert_eq!(error.as_deref(), Some("30003"));
    assert!(read, "the read time is still kept");
}
