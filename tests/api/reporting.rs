//! Renters and ward staff report problems by message, ask for the status, and rate the work,
//! through the real webhooks; the work order they create is dispatched like any other.

use std::time::{Duration, Instant};

use crate::{
    dispatch::{Setup, abebe_says, order, setup, wait_status, worker_id},
    providers::*,
};

const RENTER: &str = "+251911000301";

/// A Meta message from the renter: `kind` is a fixture (text, location, image) with its sender
/// swapped, under a fresh message id.
fn renter_sends(fixture_name: &str, n: u32, text: Option<&str>) -> String {
    let mut body = fixture(&format!("meta/{fixture_name}.json"))
        .replace("251911000101", &RENTER[1..])
        .replace("Abebe Kebede", "Meron Haile");
    if let Some(text) = text {
        body = body
            .replace("On my way!", text)
            .replace("Leak under the sink", text);
    }
    // Every fixture's message id ends in a counter; give each of ours its own.
    let id_start = body.find("wamid.").unwrap();
    let id_end = id_start + body[id_start..].find('"').unwrap();
    body.replace_range(id_start..id_end, &format!("wamid.renter{:032}", 7000 + n));
    body
}

/// The template keys of what the bot sent `phone`, in order, once there are `n` of them.
async fn replies_to(s: &Setup, phone: &str, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT m.template_key FROM messages m JOIN contacts c ON c.id = m.contact_id
             WHERE c.phone = $1 AND m.direction = 'outbound' ORDER BY m.created_at, m.id",
        )
        .bind(phone)
        .fetch_all(&s.app.app.pool)
        .await
        .unwrap();
        if keys.len() >= n || started.elapsed() > Duration::from_secs(15) {
            assert_eq!(keys.len(), n, "replies so far: {keys:?}");
            return keys;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn body_of_last_reply(s: &Setup, phone: &str) -> String {
    sqlx::query_scalar(
        "SELECT m.body FROM messages m JOIN contacts c ON c.id = m.contact_id
         WHERE c.phone = $1 AND m.direction = 'outbound' ORDER BY m.created_at DESC, m.id DESC LIMIT 1",
    )
    .bind(phone)
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_renter_reports_by_whatsapp_follows_it_and_rates_the_work() {
    let s = setup().await;
    sqlx::query("UPDATE sites SET latitude = 9.0110, longitude = 38.7615")
        .execute(&s.app.app.pool)
        .await
        .unwrap();

    // "Hi" opens the conversation; the description, the place and the photo follow.
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 1, Some("Hi")))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 1).await, ["wo_report_what"]);
    let description = "The kitchen tap is leaking";
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 2, Some(description)))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 2).await[1], "wo_report_where");
    assert_eq!(
        s.app
            .meta(&renter_sends("location", 3, None))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 3).await[2], "wo_report_photo");
    assert_eq!(
        s.app
            .meta(&renter_sends("image", 4, Some("water everywhere")))
            .await
            .status(),
        200
    );
    let replies = replies_to(&s, RENTER, 5).await;
    assert!(
        replies[3..].contains(&"wo_report_logged".to_owned())
            && replies[3..].contains(&"wo_requester_assigned".to_owned()),
        "{replies:?}"
    );

    // The work order: read from the words, placed by the shared location, photo attached,
    // dispatched to the primary plumber.
    let (id, reference): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, reference FROM work_orders")
            .fetch_one(&s.app.app.pool)
            .await
            .unwrap();
    let id = id.to_string();
    let wo = order(&s, &id).await;
    assert_eq!(wo["title"], description);
    assert_eq!(
        wo["description"],
        format!("{description}\nwater everywhere")
    );
    assert_eq!(wo["kind"], "maintenance");
    assert_eq!(wo["required_specialty"], "plumbing");
    assert_eq!(wo["site_id"], s.site);
    assert_eq!(wo["status"], "assigned");
    assert_eq!(wo["assigned_worker_id"], worker_id(&s, "Abebe").await);
    assert!(
        wo["location_detail"]
            .as_str()
            .unwrap()
            .starts_with("https://maps.google.com/?q=9.01080,38.76130"),
        "{wo}"
    );
    assert_eq!(
        s.app
            .count(&format!(
                "SELECT count(*) FROM work_order_attachments
                 WHERE work_order_id = '{id}' AND uploaded_by_kind = 'requester' AND uploaded_by_contact_id IS NOT NULL"
            ))
            .await,
        1
    );
    let logged = sqlx::query_scalar::<_, String>(
        "SELECT body FROM messages WHERE template_key = 'wo_report_logged'",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap();
    assert!(logged.contains(&reference), "{logged}");
    assert_eq!(
        s.app
            .count(&format!(
                "SELECT count(*) FROM work_order_status_history WHERE work_order_id = '{id}' AND actor_kind = 'requester' AND channel = 'whatsapp'"
            ))
            .await,
        2,
        "reported and assigned"
    );
    // The conversation is finished: nothing half-done is left behind.
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM conversations WHERE bot_state ? 'report'")
            .await,
        0
    );

    // "status" answers with the request and who has it.
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 5, Some("Status")))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 6).await[5], "wo_status_list");
    let answer = body_of_last_reply(&s, RENTER).await;
    assert!(
        answer.contains(&reference) && answer.contains("offered to Abebe"),
        "{answer}"
    );
    // Another organisation's or an unknown reference is not shown.
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 6, Some("M-9999?")))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 7).await[6], "wo_status_unknown");

    // Abebe does the work; two hours later the renter gets the survey every service has, and
    // the answer is kept against the work order and Abebe.
    assert_eq!(s.app.meta(&abebe_says(1, "accept")).await.status(), 200);
    wait_status(&s, &id, "accepted").await;
    assert_eq!(s.app.meta(&abebe_says(2, "done 1h")).await.status(), 200);
    wait_status(&s, &id, "completed").await;
    assert_eq!(replies_to(&s, RENTER, 8).await[7], "wo_requester_done");
    sqlx::query("UPDATE tenants SET survey_quiet_from = '00:00', survey_quiet_until = '00:00'")
        .execute(&s.app.app.pool)
        .await
        .unwrap();
    s.app.app.advance(Duration::from_secs(2 * 3600 + 60)).await;
    assert_eq!(replies_to(&s, RENTER, 9).await[8], "survey_question");
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 7, Some("1")))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 10).await[9], "survey_follow_up");
    // A second answer before the comment corrects the first rather than adding another.
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 8, Some("good")))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 11).await[10], "survey_follow_up");
    assert_eq!(
        s.app
            .meta(&renter_sends("text", 9, Some("quick and tidy, thanks")))
            .await
            .status(),
        200
    );
    assert_eq!(replies_to(&s, RENTER, 12).await[11], "survey_thanks");
    let abebe = worker_id(&s, "Abebe").await;
    assert_eq!(
        s.app
            .count(&format!(
                "SELECT count(*) FROM feedback WHERE work_order_id = '{id}' AND worker_id = '{abebe}'
                   AND feedback_type = 'survey' AND fft_code = 2 AND rating = 4 AND comments = 'quick and tidy, thanks'"
            ))
            .await,
        1
    );
    assert_eq!(s.app.count("SELECT count(*) FROM feedback").await, 1);
}

#[tokio::test]
async fn ward_staff_report_by_sms_naming_the_place_in_words() {
    let s = setup().await;
    let sms = |n: u32, text: &str| {
        fixture("twilio/sms_unknown_sender.form")
            .replace("SM10000000000000000000000000000005", &format!("SM2{n:031}"))
            .replace("Hello%2C+is+this+the+clinic%3F", &urlencode(text))
    };
    let staff = "+251911999001";
    // The first message already says what is wrong.
    s.app
        .twilio(
            "/webhooks/twilio/messages",
            &sms(1, "No power in the flat, sockets dead"),
        )
        .await;
    assert_eq!(replies_to(&s, staff, 1).await, ["wo_report_where"]);
    s.app
        .twilio(
            "/webhooks/twilio/messages",
            &sms(2, "bole garden block C flat 2"),
        )
        .await;
    assert_eq!(replies_to(&s, staff, 2).await[1], "wo_report_photo");
    s.app
        .twilio("/webhooks/twilio/messages", &sms(3, "skip"))
        .await;
    let replies = replies_to(&s, staff, 4).await;
    assert!(
        replies.contains(&"wo_report_logged".to_owned()),
        "{replies:?}"
    );

    let wo: (String, Option<uuid::Uuid>, String, Option<String>, String) = sqlx::query_as(
        "SELECT required_specialty, site_id, location_detail, assigned_worker_id::text, status FROM work_orders",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap();
    assert_eq!(wo.0, "electrical");
    assert_eq!(
        wo.1.unwrap().to_string(),
        s.site,
        "the words named the site"
    );
    assert_eq!(wo.2, "bole garden block C flat 2");
    assert_eq!(
        wo.3.unwrap(),
        worker_id(&s, "Chaltu").await,
        "the electrician"
    );
    assert_eq!(wo.4, "assigned");
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM work_order_status_history WHERE channel = 'sms' AND actor_kind = 'requester'")
            .await,
        2
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
