//! Patients through the real webhooks and a fake provider: the survey after a visit (its timing
//! rules, answers by tap, digit and words, the comment), complaints people start and the ones a
//! poor answer opens, their deadlines, anonymous feedback answered through a relay, and trends.

use chrono::{Timelike, Utc};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

use crate::{
    helpers::{JOBS_BY_HAND, json},
    providers::*,
};

const HOUR: Duration = Duration::from_secs(3600);

/// An SMS from `from` saying `text`, under its own message id.
pub(crate) fn sms(from: &str, n: u32, text: &str) -> String {
    let sid = format!("SM7{n:031}");
    fixture("twilio/sms_text.form")
        .replace("SM10000000000000000000000000000001", &sid)
        .replace("%2B251911000101", &urlencode(from))
        .replace("On+my+way%21", &urlencode(text))
}

/// A Meta text from `from` saying `text`.
pub(crate) fn whatsapp(from: &str, n: u32, text: &str) -> String {
    let mut body: Value = serde_json::from_str(&fixture("meta/text.json")).unwrap();
    let value = &mut body["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(from[1..]);
    let message = &mut value["messages"][0];
    message["from"] = json!(from[1..]);
    message["id"] = json!(format!("wamid.patients{n:08}"));
    message["text"]["body"] = json!(text);
    body.to_string()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

struct Voice {
    app: MessagingApp,
    caregiver: Uuid,
    caregiver_phone: String,
}

/// Jobs by hand, no quiet hours (a test sets them), a caregiver and the patients it makes.
async fn voice() -> Voice {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    sqlx::query(
        "UPDATE channels SET active = false WHERE provider = 'twilio' AND kind = 'whatsapp'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    set_settings(
        &app,
        json!({ "quiet_from": "00:00", "quiet_until": "00:00" }),
    )
    .await;
    let caregiver_phone = "+251911700001".to_owned();
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/workers",
                &json!({ "first_name": "Sara", "last_name": "Alemu", "phone": caregiver_phone,
                         "kinds": ["caregiver"] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    Voice {
        caregiver: body["id"].as_str().unwrap().parse().unwrap(),
        caregiver_phone,
        app,
    }
}

async fn set_settings(app: &MessagingApp, change: Value) {
    let (_, mut settings) = json(app.app.get(&app.tenant, "/api/v1/settings/feedback").await).await;
    for (k, v) in change.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let (status, body) = json(
        app.app
            .put(&app.tenant, "/api/v1/settings/feedback", &settings)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

impl Voice {
    async fn patient(&self, n: u32) -> (Uuid, String) {
        let phone = format!("+2519118{n:05}");
        let (status, body) = json(
            self.app
                .app
                .post(
                    &self.app.tenant,
                    "/api/v1/patients",
                    &json!({ "first_name": format!("P{n}"), "last_name": "Voice", "phone": phone,
                             "latitude": 9.03, "longitude": 38.75, "consent_sms": true }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        (body["id"].as_str().unwrap().parse().unwrap(), phone)
    }

    /// A visit the caregiver checks in and out of by WhatsApp, now.
    async fn completed_visit(&self, patient: Uuid, n: u32) -> Uuid {
        let start = Utc::now() + chrono::TimeDelta::minutes(5);
        let (status, visit) = json(
            self.app
                .app
                .post(
                    &self.app.tenant,
                    "/api/v1/visits",
                    &json!({ "caregiver_id": self.caregiver, "patient_id": patient, "service_type": "personal_care",
                             "scheduled_start": start, "scheduled_end": start + chrono::TimeDelta::hours(1) }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{visit}");
        for (i, words) in ["check in", "check out"].iter().enumerate() {
            let body = whatsapp(&self.caregiver_phone, n * 10 + i as u32, words);
            assert_eq!(self.app.meta(&body).await.status(), 200);
            self.app.settle().await;
        }
        let id: Uuid = visit["id"].as_str().unwrap().parse().unwrap();
        let status: String = sqlx::query_scalar("SELECT status FROM visits WHERE id = $1")
            .bind(id)
            .fetch_one(&self.app.app.pool)
            .await
            .unwrap();
        assert_eq!(
            status,
            "completed",
            "{:?}",
            self.last_to(&self.caregiver_phone).await
        );
        id
    }

    async fn says(&self, phone: &str, n: u32, text: &str) {
        self.app.twilio_message_stored(&sms(phone, n, text)).await;
        self.app.settle().await;
    }

    /// The hour comes when held anonymous feedback is released to the inbox.
    async fn anonymous_feedback_released(&self) {
        self.app.app.due_now("anonymous-feedback").await;
        self.app.settle().await;
    }

    /// The key and text of the last message to `phone`.
    async fn last_to(&self, phone: &str) -> (String, String) {
        sqlx::query_as(
            "SELECT COALESCE(m.template_key, ''), COALESCE(m.body, '') FROM messages m
             JOIN contacts c ON c.id = m.contact_id
             WHERE c.phone = $1 AND m.direction = 'outbound' ORDER BY m.created_at DESC, m.id DESC LIMIT 1",
        )
        .bind(phone)
        .fetch_optional(&self.app.app.pool)
        .await
        .unwrap()
        .unwrap_or_default()
    }

    async fn survey_status(&self, visit: Uuid) -> (String, Option<String>) {
        sqlx::query_as("SELECT status, skip_reason FROM surveys WHERE visit_id = $1")
            .bind(visit)
            .fetch_one(&self.app.app.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_visit_is_followed_by_the_survey_answered_by_digit_then_a_comment() {
    let v = voice().await;
    let (patient, phone) = v.patient(1).await;
    let visit = v.completed_visit(patient, 1).await;
    // Nothing is asked at once: about two hours after the visit.
    assert_eq!(v.survey_status(visit).await.0, "scheduled");
    assert_ne!(v.last_to(&phone).await.0, "survey_question");
    v.app.app.advance(2 * HOUR + Duration::from_secs(60)).await;
    v.app.settle().await;
    let (key, body) = v.last_to(&phone).await;
    assert_eq!(key, "survey_question");
    assert!(
        body.starts_with("Org msg-org: Overall, how was your experience of our service?"),
        "{body}"
    );
    let sent = v.app.wait_for_sends(1).await;
    let question = sent
        .iter()
        .rev()
        .find(|s| s.field("To").as_deref() == Some(phone.as_str()))
        .unwrap();
    assert!(
        question.field("Body").unwrap().contains("1 to Very good")
            && question.field("Body").unwrap().contains("6 to Don't know"),
        "{:?}",
        question.field("Body")
    );

    // "2" on SMS is the second choice; the comment follows and lands on the visit and caregiver.
    v.says(&phone, 1, "2").await;
    assert_eq!(v.last_to(&phone).await.0, "survey_follow_up");
    v.says(&phone, 2, "The nurse was kind and on time").await;
    assert_eq!(v.last_to(&phone).await.0, "survey_thanks");
    let stored: (i16, Option<i16>, String, Uuid, Uuid, String) = sqlx::query_as(
        "SELECT fft_code, rating, comments, visit_id, worker_id, feedback_type FROM feedback WHERE patient_id = $1",
    )
    .bind(patient)
    .fetch_one(&v.app.app.pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        (
            2,
            Some(4),
            "The nurse was kind and on time".into(),
            visit,
            v.caregiver,
            "survey".into()
        )
    );
    assert_eq!(v.survey_status(visit).await.0, "commented");

    // Trends: one response is too few to show.
    let (status, trends) = json(
        v.app
            .app
            .get(&v.app.tenant, "/api/v1/feedback/trends?by=worker")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{trends}");
    assert_eq!(trends[0]["group"], "Sara Alemu");
    assert_eq!(trends[0]["too_few"], true);
    assert_eq!(trends[0]["positive_pct"], Value::Null);

    // A second visit the next week: the survey is skipped (once per 30 days).
    let visit2 = v.completed_visit(patient, 2).await;
    v.app.app.advance(2 * HOUR + Duration::from_secs(60)).await;
    v.app.settle().await;
    assert_eq!(
        v.survey_status(visit2).await,
        ("skipped".into(), Some("surveyed_recently".into()))
    );
}

#[tokio::test]
async fn surveys_wait_out_quiet_hours_skip_the_opted_out_and_expire() {
    let v = voice().await;
    // Quiet from an hour ago to three hours ahead, in the organisation's time (Addis, UTC+3).
    let local = Utc::now() + chrono::TimeDelta::hours(3);
    let at = |h: i64| format!("{:02}:00", (local.hour() as i64 + 24 + h) % 24);
    set_settings(
        &v.app,
        json!({ "quiet_from": at(-1), "quiet_until": at(4), "survey_delay_minutes": 0 }),
    )
    .await;
    let (patient, phone) = v.patient(2).await;
    let visit = v.completed_visit(patient, 3).await;
    v.app.settle().await;
    let (status, _) = v.survey_status(visit).await;
    assert_eq!(status, "scheduled", "held over the quiet hours");
    assert_ne!(v.last_to(&phone).await.0, "survey_question");
    v.app.app.advance(5 * HOUR).await;
    v.app.settle().await;
    assert_eq!(v.survey_status(visit).await.0, "sent");

    // Answered in words after it closed: thanked, told it closed, not counted.
    sqlx::query("UPDATE surveys SET expires_at = now() - interval '1 hour' WHERE visit_id = $1")
        .bind(visit)
        .execute(&v.app.app.pool)
        .await
        .unwrap();
    v.says(&phone, 3, "very good").await;
    assert_eq!(v.last_to(&phone).await.0, "survey_closed");
    assert_eq!(v.survey_status(visit).await.0, "expired");
    assert_eq!(v.app.count("SELECT count(*) FROM feedback").await, 0);

    // Someone who opted out is not asked.
    set_settings(
        &v.app,
        json!({ "quiet_from": "00:00", "quiet_until": "00:00" }),
    )
    .await;
    let (patient, phone) = v.patient(3).await;
    v.says(&phone, 4, "STOP").await;
    let visit = v.completed_visit(patient, 4).await;
    v.app.settle().await;
    assert_eq!(
        v.survey_status(visit).await,
        ("skipped".into(), Some("opted_out".into()))
    );
}

#[tokio::test]
async fn a_poor_answer_opens_a_case_with_a_call_back_deadline_that_warns_and_alerts() {
    let v = voice().await;
    set_settings(&v.app, json!({ "survey_delay_minutes": 0 })).await;
    let (patient, phone) = v.patient(4).await;
    let visit = v.completed_visit(patient, 5).await;
    v.app.settle().await;
    assert_eq!(v.last_to(&phone).await.0, "survey_question");
    // Amharic words for "very poor" answer it.
    v.says(&phone, 5, "በጣም ደካማ").await;
    let (key, body) = v.last_to(&phone).await;
    assert_eq!(key, "survey_follow_up_poor");
    assert!(body.contains("C-1001"), "{body}");
    let (status, queue) = json(v.app.app.get(&v.app.tenant, "/api/v1/complaints").await).await;
    assert_eq!(status, 200);
    let case = &queue[0];
    assert_eq!(case["reference"], "C-1001");
    assert_eq!(case["visit_id"], visit.to_string());
    assert_eq!(case["worker_id"], v.caregiver.to_string());
    assert_eq!(case["clock"], "on_track");
    let created: chrono::DateTime<Utc> = case["created_at"].as_str().unwrap().parse().unwrap();
    let due: chrono::DateTime<Utc> = case["first_contact_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (due - created - chrono::TimeDelta::hours(48))
            .num_seconds()
            .abs()
            < 5,
        "{case}"
    );
    // The comment goes onto the case, not a second one.
    v.says(&phone, 6, "she did not wash my mother and left early")
        .await;
    assert_eq!(v.last_to(&phone).await.0, "survey_thanks");
    assert_eq!(v.app.count("SELECT count(*) FROM complaints").await, 1);
    let id = case["id"].as_str().unwrap();
    let (_, detail) = json(
        v.app
            .app
            .get(&v.app.tenant, &format!("/api/v1/complaints/{id}"))
            .await,
    )
    .await;
    assert!(
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "complainant_wrote"
                && e["text"] == "she did not wash my mother and left early"),
        "{detail}"
    );

    // The assignee (with a phone) is warned six hours before; the coordinators alerted after.
    v.app
        .app
        .user(
            &v.app.tenant,
            "lead@example.org",
            "correct horse battery staple",
        )
        .await;
    sqlx::query("UPDATE users SET phone = '+251911900001' WHERE email = 'lead@example.org'")
        .execute(&v.app.app.pool)
        .await
        .unwrap();
    let user: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'lead@example.org'")
        .fetch_one(&v.app.app.pool)
        .await
        .unwrap();
    let (status, body) = json(
        v.app
            .app
            .patch(
                &v.app.tenant,
                &format!("/api/v1/complaints/{id}"),
                &json!({ "assigned_user_id": user }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    v.app.app.advance(43 * HOUR).await;
    v.app.settle().await;
    assert_eq!(v.last_to("+251911900001").await.0, "complaint_due_soon");
    assert_eq!(
        v.app.count("SELECT count(*) FROM coordinator_alerts").await,
        0
    );
    // The overdue step was booked when the warning went, for the deadline as the clock reads it.
    v.app.app.advance(49 * HOUR).await;
    v.app.settle().await;
    assert_eq!(
        v.app
            .count("SELECT count(*) FROM coordinator_alerts WHERE kind = 'complaint_contact_overdue' AND resolved_at IS NULL")
            .await,
        1
    );

    // Answering the complainant by message meets the deadline and settles the alert.
    let (status, body) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                &format!("/api/v1/complaints/{id}/responses"),
                &json!({ "text": "We are sorry. Our coordinator will call you this afternoon." }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "investigating");
    assert_eq!(v.last_to(&phone).await.0, "complaint_response");
    assert_eq!(
        v.app
            .count("SELECT count(*) FROM coordinator_alerts WHERE resolved_at IS NULL")
            .await,
        0
    );

    // Resolving tells the person and asks whether they are satisfied; "very poor" reopens it.
    let (status, body) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                &format!("/api/v1/complaints/{id}/status"),
                &json!({ "status": "resolved" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "a resolution is required: {body}");
    let (status, body) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                &format!("/api/v1/complaints/{id}/status"),
                &json!({ "status": "resolved", "resolution": "Another caregiver from Monday." }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    v.app.settle().await;
    assert_eq!(v.last_to(&phone).await.0, "survey_complaint_question");
    v.says(&phone, 7, "5").await;
    let (status, body) = json(
        v.app
            .app
            .get(&v.app.tenant, &format!("/api/v1/complaints/{id}"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "reopened", "{body}");
    // Closing from reopened is not a move the document allows.
    let (status, _) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                &format!("/api/v1/complaints/{id}/status"),
                &json!({ "status": "closed" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn people_complain_and_give_feedback_unprompted_and_anonymously() {
    let v = voice().await;
    let (_, phone) = v.patient(5).await;
    // Unprompted feedback is thanked and kept; a question is answered with who we are.
    v.says(&phone, 10, "the nurse was kind and on time").await;
    assert_eq!(v.last_to(&phone).await.0, "feedback_thanks");
    v.says(&phone, 11, "who is this?").await;
    assert_eq!(v.last_to(&phone).await.0, "patient_intro");

    // A stranger's complaint is acknowledged with a reference; a later message attaches to it.
    let stranger = "+251911555001";
    v.says(stranger, 12, "complaint: nobody came on Tuesday")
        .await;
    let (key, body) = v.last_to(stranger).await;
    assert_eq!(key, "complaint_acknowledged");
    assert!(body.contains("C-1001"), "{body}");
    let (description, severity): (String, String) =
        sqlx::query_as("SELECT description, severity FROM complaints WHERE reference = 'C-1001'")
            .fetch_one(&v.app.app.pool)
            .await
            .unwrap();
    assert_eq!(
        (description.as_str(), severity.as_str()),
        ("nobody came on Tuesday", "medium")
    );
    v.says(
        stranger,
        13,
        "I want to complain, my father fell and nobody helped",
    )
    .await;
    assert_eq!(v.last_to(stranger).await.0, "complaint_attached");
    assert_eq!(v.app.count("SELECT count(*) FROM complaints").await, 1);
    // Harm words make a new complaint high by default.
    v.says(
        &phone,
        14,
        "I want to make a complaint, the carer gave the wrong medication",
    )
    .await;
    assert_eq!(v.last_to(&phone).await.0, "complaint_acknowledged");
    assert_eq!(
        v.app
            .count(
                "SELECT count(*) FROM complaints WHERE reference = 'C-1002' AND severity = 'high'"
            )
            .await,
        1
    );

    // Anonymous feedback: no number or name anywhere staff look; answered through the relay.
    let anonymous = "+251911555002";
    v.says(
        anonymous,
        15,
        "anonymous: the night staff shout at patients",
    )
    .await;
    assert_eq!(v.last_to(anonymous).await.0, "feedback_anonymous_thanks");
    v.anonymous_feedback_released().await;
    let (status, inbox) = json(
        v.app
            .app
            .get(&v.app.tenant, "/api/v1/feedback?status=new")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let item = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["anonymous"] == true)
        .unwrap()
        .clone();
    assert_eq!(item["comments"], "the night staff shout at patients");
    assert_eq!(item["phone"], Value::Null);
    assert!(item["relay_token"].as_str().unwrap().starts_with("A-"));
    assert!(!inbox.to_string().contains("555002"), "{inbox}");
    assert_eq!(
        v.app
            .count("SELECT count(*) FROM messages WHERE body LIKE '%night staff%'")
            .await,
        0
    );
    let id = item["id"].as_str().unwrap();
    let (status, body) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                &format!("/api/v1/feedback/{id}/responses"),
                &json!({ "text": "Thank you. We have spoken to the night team." }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "responded");
    assert!(!body.to_string().contains("555002"));
    v.app.settle().await;
    let send = v
        .app
        .fake
        .wait_for("the relayed answer", |r| {
            r.field("Body")
                .is_some_and(|b| b.contains("spoken to the night team"))
        })
        .await;
    assert_eq!(send.field("To").as_deref(), Some(anonymous));

    // Another organisation sees none of it.
    let other = v.app.app.tenant("other-org").await;
    for path in [
        format!("/api/v1/feedback/{id}"),
        format!("/api/v1/complaints/{}", Uuid::nil()),
    ] {
        assert_eq!(v.app.app.get(&other, &path).await.status(), 404, "{path}");
    }
    let complaint: Uuid =
        sqlx::query_scalar("SELECT id FROM complaints WHERE reference = 'C-1001'")
            .fetch_one(&v.app.app.pool)
            .await
            .unwrap();
    assert_eq!(
        v.app
            .app
            .get(&other, &format!("/api/v1/complaints/{complaint}"))
            .await
            .status(),
        404
    );
    let (_, theirs) = json(v.app.app.get(&other, "/api/v1/complaints").await).await;
    assert_eq!(theirs, json!([]));
    assert_eq!(
        v.app
            .app
            .post(
                &other,
                &format!("/api/v1/feedback/{id}/responses"),
                &json!({ "text": "hi" })
            )
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn trends_show_figures_once_a_cell_has_five_responses() {
    let v = voice().await;
    set_settings(
        &v.app,
        json!({ "survey_delay_minutes": 0, "min_days_between": 0 }),
    )
    .await;
    for n in 0..5u32 {
        let (patient, phone) = v.patient(20 + n).await;
        v.completed_visit(patient, 20 + n).await;
        v.app.settle().await;
        // Four "very good" by WhatsApp-style words over SMS, one "poor".
        let answer = if n == 4 { "poor" } else { "very good" };
        v.says(&phone, 20 + n, answer).await;
    }
    let (_, trends) = json(
        v.app
            .app
            .get(&v.app.tenant, "/api/v1/feedback/trends?by=service")
            .await,
    )
    .await;
    let cell = &trends[0];
    assert_eq!(cell["group"], "personal_care", "{trends}");
    assert_eq!(cell["too_few"], false);
    assert_eq!(cell["responses"], 5);
    assert_eq!(cell["positive_pct"], 80.0);
    assert_eq!(cell["negative_pct"], 20.0);
    assert_eq!(cell["response_rate_pct"], 100.0);
}

#[tokio::test]
async fn coordinators_work_complaints_and_feedback_in_the_panel() {
    use crate::panel::{PASSWORD, csrf_in, login_form, sign_in};
    let v = voice().await;
    let (_, phone) = v.patient(30).await;
    v.says(&phone, 30, "complaint: the carer did not come on Monday")
        .await;
    v.says(&phone, 31, "anonymous: the night staff shout at patients")
        .await;
    v.anonymous_feedback_released().await;
    let (patient2, phone2) = v.patient(31).await;
    v.says(&phone2, 32, "the driver was very careful with my mother")
        .await;
    let _ = patient2;

    let app = &v.app.app;
    app.user(&v.app.tenant, "liya@voice.example", PASSWORD)
        .await;
    let csrf = login_form(app).await;
    let signed_in = sign_in(app, "msg-org", "liya@voice.example", PASSWORD, &csrf).await;
    assert_eq!(signed_in.status(), 303);
    let get = |path: &str| {
        let url = app.url(path);
        async move {
            let response = app.client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    // The dashboard leads with the complaint nobody has answered.
    let (_, dashboard) = get("/panel").await;
    assert!(
        dashboard.contains("C-1001") && dashboard.contains("/panel/complaints/"),
        "{dashboard}"
    );
    let csrf = csrf_in(&dashboard);

    let (status, queue) = get("/panel/complaints").await;
    assert_eq!(status, 200);
    assert!(
        queue.contains("C-1001") && queue.contains("clock-on_track"),
        "{queue}"
    );
    let id: Uuid = sqlx::query_scalar("SELECT id FROM complaints WHERE reference = 'C-1001'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let url = app.url(&path);
        async move { app.client.post(url).form(&form).send().await.unwrap() }
    };
    let answered = post(
        format!("/panel/complaints/{id}/respond"),
        vec![
            ("csrf_token", csrf.clone()),
            ("text", "We are sorry; Sara will call you today.".into()),
        ],
    )
    .await;
    assert_eq!(answered.status(), 303);
    assert_eq!(v.last_to(&phone).await.0, "complaint_response");
    // Resolving without saying how is refused on the page, with what to fix.
    let refused = post(
        format!("/panel/complaints/{id}/status"),
        vec![
            ("csrf_token", csrf.clone()),
            ("status", "resolved".into()),
            ("resolution", "".into()),
        ],
    )
    .await;
    let location = refused.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error="), "{location}");
    let (_, page) = get(&location).await;
    assert!(page.contains("resolution"), "{page}");
    assert!(
        page.contains("To the complainant") && page.contains("Sara will call you today"),
        "{page}"
    );

    // The inbox shows the anonymous item by its relay token only, and the named one by name.
    let (status, inbox) = get("/panel/feedback").await;
    assert_eq!(status, 200);
    assert!(
        inbox.contains("anonymous (A-") && !inbox.contains("555") && !inbox.contains(&phone[1..]),
        "{inbox}"
    );
    assert!(
        inbox.contains("P31 Voice") && inbox.contains("very careful"),
        "{inbox}"
    );
    let (status, trends) = get("/panel/feedback/trends").await;
    assert_eq!(status, 200, "{trends}");

    // A complaint that is not this organisation's is not found.
    let (status, _) = get(&format!("/panel/complaints/{}", Uuid::now_v7())).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn on_whatsapp_the_survey_is_a_list_a_tap_answers_it_and_an_open_complaint_holds_the_next() {
    let v = voice().await;
    set_settings(
        &v.app,
        json!({ "survey_delay_minutes": 0, "min_days_between": 0 }),
    )
    .await;
    let phone = "+251911800040";
    let (status, patient) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                "/api/v1/patients",
                &json!({ "first_name": "Tigist", "last_name": "Bekele", "phone": phone,
                         "latitude": 9.03, "longitude": 38.75, "consent_whatsapp": true }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{patient}");
    let patient: Uuid = patient["id"].as_str().unwrap().parse().unwrap();
    // She wrote this morning, so the survey goes inside WhatsApp's window as an interactive list.
    assert_eq!(
        v.app
            .meta(&whatsapp(phone, 900, "good morning"))
            .await
            .status(),
        200
    );
    v.app.settle().await;
    let visit = v.completed_visit(patient, 41).await;
    v.app.settle().await;
    let sent = v
        .app
        .fake
        .wait_for("the survey as a list", |r| {
            r.path.contains("/messages") && r.json()["interactive"]["type"] == "list"
        })
        .await
        .json();
    let rows = &sent["interactive"]["action"]["sections"][0]["rows"];
    assert_eq!(rows.as_array().unwrap().len(), 6, "{sent}");
    assert_eq!(rows[0]["id"], "fft:1");
    assert_eq!(rows[5]["title"], "Don't know");
    assert_eq!(sent["to"], phone[1..]);

    // The tap on "Very good" answers it.
    let mut tap: Value = serde_json::from_str(&fixture("meta/list_reply.json")).unwrap();
    let message = &mut tap["entry"][0]["changes"][0]["value"]["messages"][0];
    message["from"] = json!(phone[1..]);
    message["id"] = json!("wamid.patients-tap-1");
    message["interactive"]["list_reply"] = json!({ "id": "fft:1", "title": "Very good" });
    message.as_object_mut().unwrap().remove("context");
    tap["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = json!(phone[1..]);
    assert_eq!(v.app.meta(&tap.to_string()).await.status(), 200);
    v.app.settle().await;
    assert_eq!(v.last_to(phone).await.0, "survey_follow_up");
    assert_eq!(
        v.app
            .count(&format!("SELECT count(*) FROM feedback WHERE visit_id = '{visit}' AND fft_code = 1 AND rating = 5"))
            .await,
        1
    );

    // While a complaint of hers is open, the next visit's survey is not sent.
    assert_eq!(
        v.app
            .meta(&whatsapp(phone, 901, "complaint: the carer was rude to me"))
            .await
            .status(),
        200
    );
    v.app.settle().await;
    assert_eq!(v.last_to(phone).await.0, "complaint_acknowledged");
    let next = v.completed_visit(patient, 42).await;
    v.app.settle().await;
    assert_eq!(
        v.survey_status(next).await,
        ("skipped".into(), Some("complaint_open".into()))
    );
}

/// Anonymous feedback links to no number and no contact on any surface staff can read: the API's
/// feedback, messages and audit log, the patient's export, `/metrics`, and joins between them by
/// id or by time (the same second, the same contact, a message id in an audit row).
#[tokio::test]
async fn anonymous_feedback_cannot_be_traced_to_its_sender_through_any_staff_surface() {
    let v = voice().await;
    let (patient, phone) = v.patient(40).await;
    // A named message first, so the contact has a listed history to join against.
    v.says(&phone, 40, "the nurse was kind and on time").await;
    let contact: Uuid = sqlx::query_scalar("SELECT id FROM contacts WHERE phone = $1")
        .bind(&phone)
        .fetch_one(&v.app.app.pool)
        .await
        .unwrap();
    v.says(&phone, 41, "anonymous: the night staff shout at patients")
        .await;
    assert_eq!(v.last_to(&phone).await.0, "feedback_anonymous_thanks");
    let v = &v;
    let get = |path: String| async move { json(v.app.app.get(&v.app.tenant, &path).await).await };

    // Held until the hour's release: nothing in the inbox is dated with the message.
    let (_, inbox) = get("/api/v1/feedback".into()).await;
    assert!(
        !inbox.to_string().contains("night staff"),
        "released before the hour: {inbox}"
    );
    v.anonymous_feedback_released().await;
    let (_, inbox) = get("/api/v1/feedback".into()).await;
    let item = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["anonymous"] == true)
        .expect("released at the hour")
        .clone();
    let id: Uuid = item["id"].as_str().unwrap().parse().unwrap();
    // A time-ordered id would carry the second it was written.
    assert_eq!(id.get_version_num(), 4, "{id}");
    let created: chrono::DateTime<Utc> = item["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((created.minute(), created.second()), (0, 0), "{created}");

    // Answered through the relay.
    let (status, answered) = json(
        v.app
            .app
            .post(
                &v.app.tenant,
                &format!("/api/v1/feedback/{id}/responses"),
                &json!({ "text": "Thank you. We have spoken to the night team." }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{answered}");
    v.app.settle().await;
    v.app
        .fake
        .wait_for("the relayed answer", |r| {
            r.field("Body").is_some_and(|b| b.contains("night team"))
                && r.field("To").as_deref() == Some(phone.as_str())
        })
        .await;

    // The messages staff can list: the named exchange only; nothing of the anonymous one.
    let (_, listed) = get(format!("/api/v1/messages?contact_id={contact}&limit=200")).await;
    let listed = listed["items"].as_array().unwrap().clone();
    assert!(!listed.is_empty());
    for message in &listed {
        let text = message.to_string();
        for trace in ["anonymous", "night", "feedback_response"] {
            assert!(!text.contains(trace), "{trace} in a listed message: {text}");
        }
        let at: chrono::DateTime<Utc> = message["created_at"].as_str().unwrap().parse().unwrap();
        assert_ne!(at.timestamp(), created.timestamp(), "same second: {text}");
    }
    let (_, everything) = get("/api/v1/messages?limit=200".into()).await;
    assert!(
        !everything.to_string().contains("feedback_anonymous_thanks"),
        "{everything}"
    );

    // The audit log: the item's rows name no contact, and none carries a message id.
    let (_, rows) = get(format!("/api/v1/audit-log?record={id}")).await;
    let rows = rows.as_array().unwrap().clone();
    assert!(!rows.is_empty());
    let (_, responses) = get("/api/v1/audit-log?limit=200".into()).await;
    let feedback_rows: Vec<&Value> = responses
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["entity_id"] == json!(id.to_string())
                || r["after"]["feedback_id"] == json!(id.to_string())
        })
        .collect();
    assert!(feedback_rows.len() >= rows.len());
    for row in rows.iter().chain(feedback_rows.iter().copied()) {
        let text = row.to_string();
        assert_ne!(row["actor_kind"], "contact", "{text}");
        assert!(!text.contains(&contact.to_string()), "{text}");
        assert!(!text.contains(&phone[1..]), "{text}");
        assert!(
            row["after"].get("message_id").is_none_or(Value::is_null),
            "{text}"
        );
    }

    // The patient's export (staff download it) and the metrics.
    let (status, export) = get(format!("/api/v1/patients/{patient}/export")).await;
    assert_eq!(status, 200, "{export}");
    let export = export.to_string();
    let token = item["relay_token"].as_str().unwrap();
    for trace in [
        "\"anonymous\":true",
        "feedback_anonymous_thanks",
        "night",
        token,
    ] {
        assert!(!export.contains(trace), "{trace} in the export");
    }
    let metrics = v.app.app.metrics().await;
    assert!(!metrics.contains(&contact.to_string()) && !metrics.contains(&phone[1..]));
}
