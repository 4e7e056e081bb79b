//! Replies as people really write them (`tests/corpus/*.tsv`), each sent through the real
//! webhook, router and handler to a worker with real work, and judged by what it did: the
//! reply the bot chose and the record it changed. Prints the accuracy per file; fails under 95%
//! or on any reply misread as a different state change (a wrong move is worse than a question).

use std::{collections::BTreeMap, path::Path};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{JOBS_BY_HAND, json},
    providers::*,
};

struct Line {
    number: usize,
    text: String,
    intent: String,
    fields: BTreeMap<String, String>,
}

fn corpus(name: &str) -> Vec<Line> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, line)| {
            let mut parts = line.split('\t');
            let text = parts.next().unwrap().to_owned();
            let intent = parts.next().unwrap_or_default().trim().to_owned();
            let fields = parts
                .next()
                .unwrap_or_default()
                .split(';')
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            Line {
                number: n + 1,
                text,
                intent,
                fields,
            }
        })
        .collect()
}

/// A Meta text message from `phone` saying `text`, under message id `n`.
fn whatsapp(phone: &str, n: usize, text: &str) -> (String, String) {
    let mut body: Value = serde_json::from_str(&fixture("meta/text.json")).unwrap();
    let value = &mut body["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(phone[1..]);
    let message = &mut value["messages"][0];
    let id = format!("wamid.corpus{n:08}");
    message["from"] = json!(phone[1..]);
    message["id"] = json!(id);
    message["text"]["body"] = json!(text);
    (body.to_string(), id)
}

/// What the bot made of a message: the key of its reply.
async fn reply_to(app: &MessagingApp, provider_message_id: &str) -> String {
    sqlx::query_scalar::<_, Option<String>>(
        "SELECT COALESCE(
             (SELECT o.template_key FROM messages o WHERE o.caused_by_message_id = i.id
              ORDER BY o.created_at DESC LIMIT 1),
             'no reply (' || COALESCE(i.handled_by, 'not routed') || ')')
         FROM messages i WHERE i.provider_message_id = $1",
    )
    .bind(provider_message_id)
    .fetch_one(&app.app.pool)
    .await
    .unwrap()
    .unwrap_or_default()
}

/// Sends `text` from `phone` and runs everything it causes.
async fn say(app: &MessagingApp, phone: &str, n: usize, text: &str) -> String {
    let (body, id) = whatsapp(phone, n, text);
    let response = app.meta(&body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    app.settle().await;
    id
}

async fn worker(app: &MessagingApp, n: usize, kind: &str) -> (Uuid, String) {
    let phone = format!("+2519117{n:05}");
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/workers",
                &json!({ "first_name": format!("W{n}"), "last_name": "Corpus", "phone": phone,
                         "kinds": [kind] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().unwrap().parse().unwrap(), phone)
}

struct Outcome {
    /// The intent the bot acted on, as far as its reply and the records show.
    read_as: String,
    fields: BTreeMap<String, String>,
}

/// The intents that change a record: reading one as another is the worst mistake.
const MOVES: &[&str] = &[
    "accept",
    "decline",
    "on_my_way",
    "started",
    "on_hold",
    "completed",
    "opt_out",
    "check_in",
    "check_out",
    "rating",
    "anonymous",
    "en_route",
    "at_pickup",
    "leaving_pickup",
    "at_destination",
    "handover",
    "available",
    "problem",
];

fn judge(file: &str, lines: &[Line], outcomes: &[Outcome]) {
    let mut right = 0;
    let mut wrong = Vec::new();
    let mut misread = Vec::new();
    for (line, outcome) in lines.iter().zip(outcomes) {
        let mut problems = Vec::new();
        if outcome.read_as != line.intent {
            problems.push(format!("read as {}", outcome.read_as));
            if MOVES.contains(&outcome.read_as.as_str()) {
                misread.push(format!(
                    "{file}:{} {:?}: {} read as {}",
                    line.number, line.text, line.intent, outcome.read_as
                ));
            }
        }
        for (field, want) in &line.fields {
            let got = outcome.fields.get(field);
            if got != Some(want) {
                problems.push(format!("{field}={got:?}, want {want:?}"));
            }
        }
        if problems.is_empty() {
            right += 1;
        } else {
            wrong.push(format!(
                "{file}:{} {:?} ({}): {}",
                line.number,
                line.text,
                line.intent,
                problems.join("; ")
            ));
        }
    }
    let accuracy = 100.0 * right as f64 / lines.len() as f64;
    println!(
        "corpus {file}: {right} of {} understood ({accuracy:.1}%)",
        lines.len()
    );
    for w in &wrong {
        println!("  {w}");
    }
    assert!(
        misread.is_empty(),
        "read as a different move:\n{}",
        misread.join("\n")
    );
    assert!(
        accuracy >= 95.0,
        "{file}: {accuracy:.1}% understood, under 95%:\n{}",
        wrong.join("\n")
    );
}

fn hours_text(value: Option<f64>) -> Option<String> {
    value.map(|h| {
        let text = format!("{h}");
        text.trim_end_matches(".0").to_owned()
    })
}

/// Jobs run by hand; WhatsApp through Meta, whose webhook the lines are sent on.
async fn corpus_app() -> MessagingApp {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    sqlx::query(
        "UPDATE channels SET active = false WHERE provider = 'twilio' AND kind = 'whatsapp'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    app
}

#[tokio::test]
async fn maintenance_workers_replies_are_understood_end_to_end() {
    let app = corpus_app().await;
    let lines = corpus("maintenance.tsv");
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let (worker_id, phone) = worker(&app, n, "maintenance").await;
        let mut orders = Vec::new();
        // With a reference, the worker has two open orders: only the reference says which.
        let count = if line.fields.contains_key("ref") {
            2
        } else {
            1
        };
        for k in 0..count {
            let (status, order) = json(
                app.app
                    .post(
                        &app.tenant,
                        "/api/v1/work-orders",
                        &json!({ "kind": "maintenance", "title": format!("Leaking tap {n}.{k}") }),
                    )
                    .await,
            )
            .await;
            assert_eq!(status, 201, "{order}");
            let id: Uuid = order["id"].as_str().unwrap().parse().unwrap();
            let (status, body) = json(
                app.app
                    .post(
                        &app.tenant,
                        &format!("/api/v1/work-orders/{id}/assign"),
                        &json!({ "worker_id": worker_id }),
                    )
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            orders.push(id);
        }
        let target = orders[0];
        if let Some(reference) = line.fields.get("ref") {
            sqlx::query("UPDATE work_orders SET reference = 'X-' || id::text WHERE reference = $1")
                .bind(reference)
                .execute(&app.app.pool)
                .await
                .unwrap();
            sqlx::query("UPDATE work_orders SET reference = $2 WHERE id = $1")
                .bind(target)
                .bind(reference)
                .execute(&app.app.pool)
                .await
                .unwrap();
        }
        app.settle().await;
        // Everything but an answer to the offer is written about accepted work.
        let offered = matches!(line.intent.as_str(), "accept" | "decline");
        if !offered {
            for (k, id) in orders.iter().enumerate() {
                let tap = fixture("meta/button_reply.json")
                    .replace("251911000101", &phone[1..])
                    .replace(
                        "00000000000000000000000000000006AA==",
                        &format!("{:032}AA==", 900_000 + n * 10 + k),
                    );
                let mut body: Value = serde_json::from_str(&tap).unwrap();
                let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
                // Tapped on the dispatch of this order.
                let dispatch: String = sqlx::query_scalar(
                    "SELECT provider_message_id FROM messages WHERE related_entity_id = $1 AND template_key = 'wo_dispatch' ORDER BY created_at DESC LIMIT 1",
                )
                .bind(id)
                .fetch_one(&app.app.pool)
                .await
                .unwrap();
                message["context"] = json!({ "from": META_NUMBER[1..].to_owned(), "id": dispatch });
                message["interactive"]["button_reply"] =
                    json!({ "id": "accept", "title": "Accept" });
                assert_eq!(app.meta(&body.to_string()).await.status(), 200);
                app.settle().await;
            }
            let accepted: bool = sqlx::query_scalar(
                "SELECT bool_and(status = 'accepted') FROM work_orders WHERE id = ANY($1)",
            )
            .bind(&orders)
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
            assert!(
                accepted,
                "line {}: the setup could not accept the work",
                line.number
            );
        }

        let id = say(&app, &phone, n, &line.text).await;
        let key = reply_to(&app, &id).await;
        let (status, hours, parts): (String, Option<f64>, Option<String>) = sqlx::query_as(
            "SELECT status, labour_hours::float8, parts_used FROM work_orders WHERE id = $1",
        )
        .bind(target)
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
        let note: Option<String> = sqlx::query_scalar(
            "SELECT note FROM work_order_status_history WHERE work_order_id = $1 AND actor_kind = 'worker'
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(target)
        .fetch_optional(&app.app.pool)
        .await
        .unwrap()
        .flatten();
        let decline_reason: Option<String> = sqlx::query_scalar(
            "SELECT decline_reason FROM work_order_offers WHERE work_order_id = $1 AND declined_at IS NOT NULL",
        )
        .bind(target)
        .fetch_optional(&app.app.pool)
        .await
        .unwrap()
        .flatten();
        let opted_out = app
            .count(&format!(
                "SELECT count(*) FROM opt_outs o JOIN contacts c ON c.id = o.contact_id WHERE c.phone = '{phone}'"
            ))
            .await
            > 0;
        let comments = app
            .count(&format!(
                "SELECT count(*) FROM work_order_comments WHERE work_order_id = '{target}'"
            ))
            .await;
        // The reply says what was done; the record must agree.
        let read_as = match key.as_str() {
            "wo_accepted" if status == "accepted" => "accept",
            "wo_declined" if status != "accepted" => "decline",
            "wo_on_my_way" => "on_my_way",
            "wo_started" if status == "in_progress" => "started",
            "wo_on_hold" if status == "on_hold" => "on_hold",
            "wo_completed" if status == "completed" => "completed",
            "wo_noted" if comments > 0 => "comment",
            "opt_out_confirmed" | "opt_out_confirmed_dropped" if opted_out => "opt_out",
            "help" | "help_tenant" => "help",
            "wo_my_jobs" | "wo_my_jobs_none" => "status",
            "understand_which" => "a question",
            other => other,
        }
        .to_owned();
        let mut fields = BTreeMap::new();
        if let Some(h) = hours_text(hours) {
            fields.insert("hours".to_owned(), h);
        }
        if let Some(p) = parts {
            fields.insert("note".to_owned(), p);
        }
        if let Some(reason) = decline_reason.or(note.filter(|_| status == "on_hold")) {
            fields.insert("reason".to_owned(), reason);
        }
        if let Some(reference) = line.fields.get("ref") {
            // Acted on the order the reference names, not the other one.
            if read_as == line.intent {
                fields.insert("ref".to_owned(), reference.clone());
            }
        }
        outcomes.push(Outcome { read_as, fields });
        // The borrowed reference goes back, before the numbering reaches it.
        sqlx::query("UPDATE work_orders SET reference = 'X-' || id::text WHERE id = $1 AND reference LIKE 'M-%' AND $2")
            .bind(target)
            .bind(line.fields.contains_key("ref"))
            .execute(&app.app.pool)
            .await
            .unwrap();
    }
    judge("maintenance.tsv", &lines, &outcomes);
}

#[tokio::test]
async fn caregivers_check_ins_and_outs_are_understood_end_to_end() {
    let app = corpus_app().await;
    let lines = corpus("care.tsv");
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let (caregiver, phone) = worker(&app, n, "caregiver").await;
        let (status, patient) = json(
            app.app
                .post(
                    &app.tenant,
                    "/api/v1/patients",
                    &json!({ "first_name": format!("P{n}"), "last_name": "Corpus",
                             "phone": format!("+2519118{n:05}"), "latitude": 9.03, "longitude": 38.75 }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{patient}");
        let start = Utc::now() + TimeDelta::minutes(5);
        let (status, visit) = json(
            app.app
                .post(
                    &app.tenant,
                    "/api/v1/visits",
                    &json!({ "caregiver_id": caregiver, "patient_id": patient["id"], "service_type": "personal_care",
                             "scheduled_start": start, "scheduled_end": start + TimeDelta::hours(1) }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{visit}");
        let visit: Uuid = visit["id"].as_str().unwrap().parse().unwrap();
        // Checking out is said during a visit: the caregiver is in first.
        if line.intent == "check_out" {
            say(&app, &phone, 10_000 + n, "check in").await;
            let status: String = sqlx::query_scalar("SELECT status FROM visits WHERE id = $1")
                .bind(visit)
                .fetch_one(&app.app.pool)
                .await
                .unwrap();
            assert_eq!(status, "in_progress", "line {}: setup", line.number);
        }
        let id = say(&app, &phone, n, &line.text).await;
        let key = reply_to(&app, &id).await;
        let events = app
            .count(&format!(
                "SELECT count(*) FROM visit_events e JOIN messages m ON m.id = e.message_id WHERE e.visit_id = '{visit}' AND m.provider_message_id = '{id}'"
            ))
            .await;
        let read_as = match key.as_str() {
            k if k.starts_with("visit_checked_in") && events == 1 => "check_in",
            k if k.starts_with("visit_checked_out") && events == 1 => "check_out",
            "visit_noted" | "not_understood" if events == 0 => "other",
            "understand_which" => "a question",
            other => other,
        }
        .to_owned();
        outcomes.push(Outcome {
            read_as,
            fields: BTreeMap::new(),
        });
    }
    judge("care.tsv", &lines, &outcomes);
}

/// An SMS from `phone` saying `text`, under message id `n`; returns the id.
async fn sms_says(app: &MessagingApp, phone: &str, n: usize, text: &str) -> String {
    let sid = format!("SM8{n:031}");
    let body = fixture("twilio/sms_text.form")
        .replace("SM10000000000000000000000000000001", &sid)
        .replace("%2B251911000101", &urlencode(phone))
        .replace("On+my+way%21", &urlencode(text));
    app.twilio_message_stored(&body).await;
    app.settle().await;
    sid
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn patients_answers_complaints_and_feedback_are_understood_end_to_end() {
    let app = corpus_app().await;
    // Surveys go as soon as the visit ends and at any hour, so each line can answer one.
    sqlx::query(
        "UPDATE tenants SET survey_delay_minutes = 0, survey_quiet_from = '00:00', survey_quiet_until = '00:00'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    let lines = corpus("patients.tsv");
    let (caregiver, caregiver_phone) = worker(&app, 0, "caregiver").await;
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let phone = format!("+2519119{n:05}");
        let (status, patient) = json(
            app.app
                .post(
                    &app.tenant,
                    "/api/v1/patients",
                    &json!({ "first_name": format!("P{n}"), "last_name": "Corpus", "phone": phone,
                             "latitude": 9.03, "longitude": 38.75, "consent_sms": true }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{patient}");
        let patient: Uuid = patient["id"].as_str().unwrap().parse().unwrap();
        // A rating answers the survey after a visit: the caregiver checks in and out first.
        if line.intent == "rating" {
            let start = Utc::now() + TimeDelta::minutes(5);
            let (status, visit) = json(
                app.app
                    .post(
                        &app.tenant,
                        "/api/v1/visits",
                        &json!({ "caregiver_id": caregiver, "patient_id": patient, "service_type": "personal_care",
                                 "scheduled_start": start, "scheduled_end": start + TimeDelta::hours(1) }),
                    )
                    .await,
            )
            .await;
            assert_eq!(status, 201, "{visit}");
            say(&app, &caregiver_phone, 20_000 + n, "check in").await;
            say(&app, &caregiver_phone, 30_000 + n, "check out").await;
            let asked = app
                .count(&format!(
                    "SELECT count(*) FROM surveys WHERE patient_id = '{patient}' AND status = 'sent'"
                ))
                .await;
            assert_eq!(asked, 1, "line {}: setup", line.number);
        }
        let sid = sms_says(&app, &phone, n, &line.text).await;
        let key = reply_to(&app, &sid).await;
        let fft: Option<i16> = sqlx::query_scalar(
            "SELECT fft_code FROM feedback WHERE patient_id = $1 AND fft_code IS NOT NULL",
        )
        .bind(patient)
        .fetch_optional(&app.app.pool)
        .await
        .unwrap()
        .flatten();
        let read_as = match key.as_str() {
            "survey_follow_up" | "survey_follow_up_poor" | "survey_thanks" if fft.is_some() => {
                "rating"
            }
            "feedback_thanks" => "comment",
            "complaint_acknowledged" | "complaint_attached" => "complaint",
            "feedback_anonymous_thanks" => "anonymous",
            "opt_out_confirmed" | "opt_out_confirmed_dropped" => "opt_out",
            "help" | "help_tenant" => "help",
            "patient_intro" | "not_understood" | "survey_ask_again" => "other",
            other => other,
        }
        .to_owned();
        let mut fields = BTreeMap::new();
        if let Some(fft) = fft {
            fields.insert("fft".to_owned(), fft.to_string());
        }
        outcomes.push(Outcome { read_as, fields });
    }
    judge("patients.tsv", &lines, &outcomes);
}

/// An ambulance with `phone`'s crew member on its roster, and a trip dispatched to it.
async fn dispatched_trip(app: &MessagingApp, n: usize) -> (Uuid, String) {
    let phone = format!("+2519116{n:05}");
    let (status, worker) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/workers",
                &json!({ "first_name": format!("C{n}"), "last_name": "Crew", "phone": phone,
                         "kinds": ["ambulance_crew"] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{worker}");
    let (status, ambulance) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/ambulances",
                &json!({ "registration_number": format!("AA-{n}"), "ambulance_type": "basic_life_support" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{ambulance}");
    let ambulance = ambulance["id"].as_str().unwrap().to_owned();
    let (status, body) = json(
        app.app
            .put(
                &app.tenant,
                &format!("/api/v1/ambulances/{ambulance}/crew"),
                &json!([{ "worker_id": worker["id"], "role": "paramedic" }]),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, trip) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/trips",
                &json!({ "request_type": "emergency", "pickup_address": "Bole, near Edna Mall",
                         "dropoff_address": "Black Lion Hospital" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{trip}");
    let trip: Uuid = trip["id"].as_str().unwrap().parse().unwrap();
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                &format!("/api/v1/trips/{trip}/dispatch"),
                &json!({ "ambulance_id": ambulance }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.settle().await;
    (trip, phone)
}

#[tokio::test]
async fn crews_steps_are_understood_end_to_end() {
    let app = corpus_app().await;
    let lines = corpus("crew.tsv");
    // The steps before the one each line reports.
    let before = |intent: &str| -> &'static [&'static str] {
        match intent {
            "at_pickup" | "problem" | "other" => &["en_route"],
            "leaving_pickup" => &["en_route", "at_pickup"],
            "at_destination" => &["en_route", "at_pickup", "leaving_pickup"],
            "handover" => &["en_route", "at_pickup", "leaving_pickup", "at_destination"],
            "available" => &[
                "en_route",
                "at_pickup",
                "leaving_pickup",
                "at_destination",
                "handover",
            ],
            _ => &[],
        }
    };
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let (trip, phone) = dispatched_trip(&app, n).await;
        if !matches!(line.intent.as_str(), "accept" | "decline") {
            say(&app, &phone, 40_000 + n, "accept").await;
            for step in before(&line.intent) {
                let (status, body) = json(
                    app.app
                        .post(
                            &app.tenant,
                            &format!("/api/v1/trips/{trip}/steps"),
                            &json!({ "step": step }),
                        )
                        .await,
                )
                .await;
                assert_eq!(status, 200, "line {}: setup {step}: {body}", line.number);
            }
        }
        let id = say(&app, &phone, 50_000 + n, &line.text).await;
        let key = reply_to(&app, &id).await;
        let read_as = match key.as_str() {
            "trip_accepted" => "accept",
            "trip_declined_noted" => "decline",
            "trip_problem_noted" => "problem",
            "trip_noted" => "other",
            "understand_which" => "a question",
            k => k.strip_prefix("trip_step_").unwrap_or(k),
        }
        .to_owned();
        outcomes.push(Outcome {
            read_as,
            fields: BTreeMap::new(),
        });
    }
    judge("crew.tsv", &lines, &outcomes);
}
