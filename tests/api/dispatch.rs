//! Maintenance dispatch end to end: a work order reported through the API is offered to the right
//! worker on WhatsApp or SMS, and the worker's taps and words move it, through the real webhooks.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{helpers::json, providers::*};

pub(crate) const META_OUT_FIRST: &str =
    "wamid.HBgMMjUxOTExMDAwMTAxFQIAEhgg00000000000000000000000000000900AA==";

pub(crate) struct Setup {
    pub app: MessagingApp,
    pub site: String,
}

/// Abebe (primary, plumbing), Bekele (secondary, plumbing, SMS only), Chaltu (primary, electrical).
pub(crate) async fn setup() -> Setup {
    setup_with(&[]).await
}

async fn setup_with(env: &[(&str, &str)]) -> Setup {
    let app = spawn_messaging_app(env).await;
    // WhatsApp goes through Meta in these tests, so the button fixtures answer our dispatch.
    sqlx::query(
        "UPDATE channels SET active = false WHERE provider = 'twilio' AND kind = 'whatsapp'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    let (_, site) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/sites",
                &json!({ "kind": "property", "name": "Bole Garden" }),
            )
            .await,
    )
    .await;
    let site = site["id"].as_str().unwrap().to_owned();
    for worker in [
        json!({ "first_name": "Bekele", "last_name": "Alemu", "phone": "+251911000102", "whatsapp_enabled": false,
                "kinds": ["maintenance"], "specialties": ["plumbing"] }),
        json!({ "first_name": "Chaltu", "last_name": "Abdi", "phone": "+251911000103",
                "kinds": ["maintenance"], "specialties": ["electrical"] }),
    ] {
        assert_eq!(
            app.app
                .post(&app.tenant, "/api/v1/workers", &worker)
                .await
                .status(),
            201
        );
    }
    // Site coverage through the API: Bekele covers it as a secondary, the others as primaries.
    let site_id = Uuid::parse_str(&site).unwrap();
    let workers: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, first_name FROM workers")
        .fetch_all(&app.app.pool)
        .await
        .unwrap();
    for (id, name) in workers {
        let coverage = json!([{ "site_id": site_id, "is_primary": name != "Bekele" }]);
        let (status, body) = json(
            app.app
                .put(
                    &app.tenant,
                    &format!("/api/v1/workers/{id}/sites"),
                    &coverage,
                )
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, coverage);
    }
    Setup { app, site }
}

/// Seconds instead of the default fifteen minutes a worker has to accept a high-priority job.
async fn high_priority_timeout(s: &Setup, secs: u32) {
    sqlx::query("UPDATE tenants SET acceptance_timeout_secs = acceptance_timeout_secs || jsonb_build_object('high', $1::int)")
        .bind(secs as i32)
        .execute(&s.app.app.pool)
        .await
        .unwrap();
}

pub(crate) async fn report(s: &Setup, extra: Value) -> Value {
    let mut body = json!({ "kind": "maintenance", "title": "Leaking tap", "priority": "high", "site_id": s.site,
        "location_detail": "Block B, flat 4", "required_specialty": "plumbing" });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, order) = json(
        s.app
            .app
            .post(&s.app.tenant, "/api/v1/work-orders", &body)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{order}");
    order
}

pub(crate) async fn order(s: &Setup, id: &str) -> Value {
    json(
        s.app
            .app
            .get(&s.app.tenant, &format!("/api/v1/work-orders/{id}"))
            .await,
    )
    .await
    .1
}

pub(crate) async fn worker_id(s: &Setup, first_name: &str) -> String {
    sqlx::query_scalar::<_, Uuid>("SELECT id FROM workers WHERE first_name = $1")
        .bind(first_name)
        .fetch_one(&s.app.app.pool)
        .await
        .unwrap()
        .to_string()
}

/// A Meta text from Abebe with `text`, under a fresh message id.
pub(crate) fn abebe_says(n: u32, text: &str) -> String {
    fixture("meta/text.json")
        .replace("On my way!", text)
        .replace(
            "00000000000000000000000000000001AA==",
            &format!("{:032}AA==", 5000 + n),
        )
}

/// The text of the first message sent with `key`, once there is one.
async fn first_message_of(s: &Setup, key: &str) -> String {
    let sql = format!(
        "SELECT body FROM messages WHERE template_key = '{key}' ORDER BY created_at LIMIT 1"
    );
    assert!(
        s.app.eventually(&format!("SELECT EXISTS ({sql})")).await,
        "no {key} message"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&s.app.app.pool)
        .await
        .unwrap()
}

pub(crate) async fn wait_status(s: &Setup, id: &str, status: &str) -> Value {
    let sql = format!("SELECT status = '{status}' FROM work_orders WHERE id = '{id}'");
    assert!(
        s.app.eventually(&sql).await,
        "work order never became {status}: {}",
        order(s, id).await
    );
    order(s, id).await
}

#[tokio::test]
async fn a_work_order_goes_from_report_to_done_by_whatsapp() {
    let s = setup().await;
    let wo = report(&s, json!({ "requester_phone": PATIENT_PHONE })).await;
    let id = wo["id"].as_str().unwrap();
    let reference = wo["reference"].as_str().unwrap().to_owned();
    assert_eq!(wo["status"], "assigned");
    assert_eq!(
        wo["assigned_worker_id"],
        worker_id(&s, "Abebe").await,
        "primary plumber with the least load"
    );

    // The dispatch: an approved template on WhatsApp, outside the window.
    let sends = s.app.fake.wait_for_sends(2).await;
    let dispatch = sends
        .iter()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap()
        .json();
    assert_eq!(dispatch["template"]["name"], "fieldline_wo_dispatch");
    let params: Vec<&str> = dispatch["template"]["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        params[..4],
        [
            reference.as_str(),
            "high",
            "Leaking tap",
            "Bole Garden, Block B, flat 4"
        ]
    );
    crate::spec::assert_meta_valid("TemplateMessage", &dispatch);
    let told = sends
        .iter()
        .find(|r| r.path.ends_with("/Messages.json"))
        .unwrap();
    assert!(
        told.field("Body")
            .unwrap()
            .contains("has been given to Abebe Kebede"),
        "{:?}",
        told.field("Body")
    );

    // Accept with a tap that quotes the dispatch.
    assert!(s.app.eventually(&format!("SELECT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = '{META_OUT_FIRST}')")).await);
    // Its delivery status is kept on the work order.
    let status = |name: &str| fixture(&format!("meta/{name}.json"));
    assert_eq!(s.app.meta(&status("status_delivered")).await.status(), 200);
    assert_eq!(order(&s, id).await["whatsapp_status"], "delivered");
    assert_eq!(
        s.app
            .meta(&fixture("meta/button_reply.json"))
            .await
            .status(),
        200
    );
    wait_status(&s, id, "accepted").await;
    assert_eq!(s.app.meta(&status("status_read")).await.status(), 200);
    assert_eq!(order(&s, id).await["whatsapp_status"], "read");

    assert_eq!(s.app.meta(&abebe_says(1, "On my way")).await.status(), 200);
    assert!(s.app.eventually(&format!("SELECT count(*) = 1 FROM work_order_status_history WHERE work_order_id = '{id}' AND note = 'on my way'")).await);
    assert_eq!(s.app.meta(&abebe_says(2, "started")).await.status(), 200);
    wait_status(&s, id, "in_progress").await;
    assert_eq!(s.app.meta(&fixture("meta/image.json")).await.status(), 200);
    assert!(
        s.app
            .eventually(&format!(
                "SELECT count(*) = 1 FROM work_order_attachments WHERE work_order_id = '{id}'"
            ))
            .await
    );
    assert_eq!(
        s.app
            .meta(&abebe_says(3, "the tap in the kitchen drips too"))
            .await
            .status(),
        200
    );
    assert!(
        s.app
            .eventually(&format!(
                "SELECT count(*) = 1 FROM work_order_comments WHERE work_order_id = '{id}'"
            ))
            .await
    );
    assert_eq!(
        s.app
            .meta(&abebe_says(4, "Done 2.5h replaced valve"))
            .await
            .status(),
        200
    );
    let done = wait_status(&s, id, "completed").await;
    assert_eq!(done["labour_hours"], 2.5);
    assert_eq!(done["parts_used"], "replaced valve");

    // The requester heard each step, and every step is in the history.
    let requester: Vec<String> = sqlx::query_scalar("SELECT template_key FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE c.phone = $1 AND direction = 'outbound' ORDER BY m.created_at")
        .bind(PATIENT_PHONE)
        .fetch_all(&s.app.app.pool)
        .await
        .unwrap();
    assert_eq!(
        requester,
        [
            "wo_requester_assigned",
            "wo_requester_on_the_way",
            "wo_requester_done"
        ]
    );
    let (_, history) = json(
        s.app
            .app
            .get(&s.app.tenant, &format!("/api/v1/work-orders/{id}/history"))
            .await,
    )
    .await;
    let steps: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["to_status"].as_str().unwrap().to_owned(),
                h["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("pending", "api"),
        ("assigned", "api"),
        ("accepted", "whatsapp"),
        ("accepted", "whatsapp"),
        ("in_progress", "whatsapp"),
        ("completed", "whatsapp"),
    ];
    assert_eq!(steps, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert!(
        history[1]["note"]
            .as_str()
            .unwrap()
            .contains("primary site worker"),
        "{}",
        history[1]
    );
}

#[tokio::test]
async fn a_decline_goes_to_the_next_worker_who_accepts_with_an_sms_1() {
    let s = setup().await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    assert_eq!(
        s.app
            .meta(&abebe_says(1, "decline, no washers in stock"))
            .await
            .status(),
        200
    );
    // It was already "assigned" (to Abebe): what proves the decline is who holds it now.
    let bekele = worker_id(&s, "Bekele").await;
    assert!(
        s.app
            .eventually(&format!(
                "SELECT assigned_worker_id = '{bekele}' AND status = 'assigned' FROM work_orders WHERE id = '{id}'"
            ))
            .await
    );
    let reason: String = sqlx::query_scalar(
        "SELECT decline_reason FROM work_order_offers WHERE declined_at IS NOT NULL",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap();
    assert_eq!(reason, "no washers in stock");

    // Bekele has no WhatsApp: the offer comes by SMS with numbered choices, and "1" accepts.
    let sms = s
        .app
        .fake
        .wait_for("to Bekele", |r| {
            r.field("To").as_deref() == Some("+251911000102")
        })
        .await;
    assert!(
        sms.field("Body")
            .unwrap()
            .ends_with("Reply 1 to Accept, 2 to Decline."),
        "{:?}",
        sms.field("Body")
    );
    let one =
        fixture("twilio/sms_numbered_reply.form").replace("%2B251911000101", "%2B251911000102");
    assert_eq!(
        s.app
            .twilio("/webhooks/twilio/messages", &one)
            .await
            .status(),
        200
    );
    wait_status(&s, id, "accepted").await;
}

#[tokio::test]
async fn ambiguous_and_illegal_replies_get_a_question_or_a_refusal() {
    let s = setup().await;
    let first = report(&s, json!({})).await;
    let second = report(&s, json!({ "title": "Blocked drain" })).await;
    // Chaltu is an electrician: both plumbing jobs go to Abebe (Bekele is secondary).
    for wo in [&first, &second] {
        assert_eq!(wo["assigned_worker_id"], worker_id(&s, "Abebe").await);
    }
    assert_eq!(s.app.meta(&abebe_says(1, "done")).await.status(), 200);
    let question = s
        .app
        .fake
        .wait_for("asking which", |r| {
            r.path.ends_with("/messages") && r.json()["type"] == "interactive"
        })
        .await
        .json();
    let ids: Vec<&str> = question["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["id"].as_str().unwrap())
        .collect();
    let second_ref = second["reference"].as_str().unwrap();
    assert_eq!(
        ids,
        [
            format!("wo:{}", first["reference"].as_str().unwrap()),
            format!("wo:{second_ref}")
        ]
    );

    // Tapping the second: "done" on an order not yet accepted is refused, and nothing moves.
    let tap = fixture("meta/button_reply.json")
        .replace("\"accept\"", &format!("\"wo:{second_ref}\""))
        .replace(
            "00000000000000000000000000000006AA==",
            "00000000000000000000000000006006AA==",
        );
    assert_eq!(s.app.meta(&tap).await.status(), 200);
    let body = first_message_of(&s, "wo_not_now").await;
    assert!(
        body.contains(second_ref) && body.contains("assigned"),
        "{body}"
    );
    assert_eq!(
        order(&s, second["id"].as_str().unwrap()).await["status"],
        "assigned"
    );

    // An explicit reference picks the work order without a question.
    assert_eq!(
        s.app
            .meta(&abebe_says(2, &format!("{second_ref} accept")))
            .await
            .status(),
        200
    );
    wait_status(&s, second["id"].as_str().unwrap(), "accepted").await;
    assert_eq!(
        order(&s, first["id"].as_str().unwrap()).await["status"],
        "assigned"
    );
}

#[tokio::test]
async fn no_answer_means_a_reminder_then_the_next_worker_then_an_alert() {
    let s = setup().await;
    high_priority_timeout(&s, 1).await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    let bekele = worker_id(&s, "Bekele").await;

    // Abebe is reminded once, then the offer goes to Bekele, who is reminded in turn.
    let reminder = s
        .app
        .fake
        .wait_for("reminding Abebe", |r| {
            r.path.ends_with("/messages") && r.json()["template"]["name"] == "fieldline_wo_reminder"
        })
        .await;
    assert_eq!(reminder.json()["to"], "251911000101");
    assert!(
        s.app
            .eventually(&format!(
                "SELECT assigned_worker_id = '{bekele}' FROM work_orders WHERE id = '{id}'"
            ))
            .await
    );
    s.app
        .fake
        .wait_for("reminding Bekele by SMS", |r| {
            r.field("To").as_deref() == Some("+251911000102")
                && r.field("Body").is_some_and(|b| b.starts_with("Reminder"))
        })
        .await;

    // Nobody else does plumbing there: the coordinators are alerted and the order waits.
    assert!(
        s.app
            .eventually(
                "SELECT count(*) = 1 FROM coordinator_alerts WHERE kind = 'no_worker_available'"
            )
            .await
    );
    let after = order(&s, id).await;
    assert_eq!(after["status"], "pending");
    assert_eq!(after["assigned_worker_id"], Value::Null);
    let expired = s.app.count("SELECT count(*) FROM work_order_offers WHERE expired_at IS NOT NULL AND reminded_at IS NOT NULL").await;
    assert_eq!(expired, 2);
    let (_, history) = json(
        s.app
            .app
            .get(&s.app.tenant, &format!("/api/v1/work-orders/{id}/history"))
            .await,
    )
    .await;
    let notes: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["note"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no answer from Abebe Kebede")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("no available worker")),
        "{notes:?}"
    );
    // A coordinator assigns it by hand: the alert has done its job and closes by itself.
    let chaltu = worker_id(&s, "Chaltu").await;
    let (status, body) = json(
        s.app
            .app
            .post(
                &s.app.tenant,
                &format!("/api/v1/work-orders/{id}/assign"),
                &json!({ "worker_id": chaltu }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM coordinator_alerts WHERE resolved_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn an_answer_in_time_stops_the_clock() {
    let s = setup_with(&[JOBS_BY_HAND]).await;
    high_priority_timeout(&s, 2).await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    assert_eq!(s.app.meta(&abebe_says(1, "accept")).await.status(), 200);
    wait_status(&s, id, "accepted").await;
    // Past the first deadline: the timer ran and did nothing.
    s.app.app.advance(std::time::Duration::from_secs(3)).await;
    s.app.settle().await;
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'work-order-timers' AND status = 'Done'")
            .await,
        1
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'wo_reminder'")
            .await,
        0
    );
    assert_eq!(order(&s, id).await["status"], "accepted");
}

#[tokio::test]
async fn coordinators_reassign_and_cancel_and_other_tenants_see_nothing() {
    let s = setup().await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    let chaltu = worker_id(&s, "Chaltu").await;
    let (status, moved) = json(
        s.app
            .app
            .post(
                &s.app.tenant,
                &format!("/api/v1/work-orders/{id}/assign"),
                &json!({ "worker_id": chaltu }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["assigned_worker_id"], chaltu);
    // Abebe hears that it went to someone else.
    assert!(
        s.app
            .eventually("SELECT count(*) = 1 FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE c.phone = '+251911000101' AND m.template_key = 'wo_reassigned_away'")
            .await
    );
    let (status, body) = json(
        s.app
            .app
            .post(
                &s.app.tenant,
                &format!("/api/v1/work-orders/{id}/assign"),
                &json!({ "worker_id": Uuid::now_v7() }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(crate::helpers::error_fields(&body), ["worker_id"]);

    let (status, cancelled) = json(
        s.app
            .app
            .post(
                &s.app.tenant,
                &format!("/api/v1/work-orders/{id}/cancel"),
                &json!({ "reason": "duplicate report" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        s.app
            .eventually("SELECT count(*) = 1 FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE c.phone = '+251911000103' AND m.template_key = 'wo_cancelled'")
            .await
    );
    let (status, again) = json(
        s.app
            .app
            .post(
                &s.app.tenant,
                &format!("/api/v1/work-orders/{id}/cancel"),
                &json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{again}"
    );

    let other = s.app.app.tenant("other-org").await;
    for path in [
        format!("/api/v1/work-orders/{id}"),
        format!("/api/v1/work-orders/{id}/history"),
    ] {
        assert_eq!(s.app.app.get(&other, &path).await.status(), 404, "{path}");
    }
    let (_, theirs) = json(s.app.app.get(&other, "/api/v1/work-orders").await).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let steal = s
        .app
        .app
        .post(
            &other,
            &format!("/api/v1/work-orders/{id}/assign"),
            &json!({ "worker_id": chaltu }),
        )
        .await;
    assert_eq!(steal.status(), 404);
}

#[tokio::test]
async fn preventive_work_orders_open_on_schedule_and_completion_moves_the_dates() {
    let s = setup_with(&[("PREVENTIVE_SWEEP_SECS", "1"), JOBS_BY_HAND]).await;
    let asset = json!({ "name": "Water pump P-2", "asset_type": "pump", "site_id": s.site,
        "maintenance_frequency_days": 30, "next_maintenance_at": "2026-01-01T00:00:00Z" });
    let (status, asset) = json(
        s.app
            .app
            .post(&s.app.tenant, "/api/v1/assets", &asset)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{asset}");
    let not_due = json!({ "name": "Boiler B-1", "asset_type": "boiler", "site_id": s.site,
        "maintenance_frequency_days": 90, "next_maintenance_at": "2099-01-01T00:00:00Z" });
    assert_eq!(
        s.app
            .app
            .post(&s.app.tenant, "/api/v1/assets", &not_due)
            .await
            .status(),
        201
    );

    assert!(
        s.app
            .eventually("SELECT count(*) = 1 FROM work_orders WHERE request_type = 'preventive'")
            .await
    );
    // Later sweeps do not open a second one while it is open.
    for _ in 0..2 {
        s.app.app.advance(std::time::Duration::from_secs(2)).await;
        s.app.settle().await;
    }
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'preventive-maintenance' AND status = 'Done'")
            .await,
        3
    );
    let (_, page) = json(s.app.app.get(&s.app.tenant, "/api/v1/work-orders").await).await;
    let orders = page["items"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{page}");
    let wo = &orders[0];
    assert_eq!(wo["title"], "Preventive maintenance: Water pump P-2");
    assert_eq!(wo["asset_id"], asset["id"]);
    assert_eq!(
        wo["status"], "assigned",
        "dispatched like any other work order"
    );

    let id = wo["id"].as_str().unwrap();
    assert_eq!(s.app.meta(&abebe_says(1, "accept")).await.status(), 200);
    wait_status(&s, id, "accepted").await;
    assert_eq!(s.app.meta(&abebe_says(2, "done 1h")).await.status(), 200);
    wait_status(&s, id, "completed").await;
    let (_, after) = json(
        s.app
            .app
            .get(
                &s.app.tenant,
                &format!("/api/v1/assets/{}", asset["id"].as_str().unwrap()),
            )
            .await,
    )
    .await;
    let last: chrono::DateTime<chrono::Utc> = after["last_maintenance_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let next: chrono::DateTime<chrono::Utc> = after["next_maintenance_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now() - last).num_seconds() < 60, "{after}");
    assert_eq!((next - last).num_days(), 30, "{after}");
}

#[tokio::test]
async fn site_coverage_refuses_other_organisations_sites_and_workers() {
    let s = setup().await;
    let abebe = worker_id(&s, "Abebe").await;
    let other = s.app.app.tenant("other-org").await;
    let (_, their_site) = json(
        s.app
            .app
            .post(
                &other,
                "/api/v1/sites",
                &json!({ "kind": "property", "name": "Theirs" }),
            )
            .await,
    )
    .await;
    let (status, body) = json(
        s.app
            .app
            .put(
                &s.app.tenant,
                &format!("/api/v1/workers/{abebe}/sites"),
                &json!([{ "site_id": their_site["id"] }]),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(crate::helpers::error_fields(&body), ["site_id"]);
    let (_, kept) = json(
        s.app
            .app
            .get(&s.app.tenant, &format!("/api/v1/workers/{abebe}/sites"))
            .await,
    )
    .await;
    assert_eq!(
        kept.as_array().unwrap().len(),
        1,
        "a refused change changes nothing: {kept}"
    );
    assert_eq!(
        s.app
            .app
            .get(&other, &format!("/api/v1/workers/{abebe}/sites"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn late_and_overrunning_work_alerts_the_coordinators_once() {
    let s = setup_with(&[JOBS_BY_HAND]).await;
    // A coordinator who gave a number for alerts.
    s.app
        .app
        .user(&s.app.tenant, "liya@example.org", "correct horse battery")
        .await;
    sqlx::query("UPDATE users SET phone = '+251911000900'")
        .execute(&s.app.app.pool)
        .await
        .unwrap();
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();

    // B is accepted and started before its time: its timer finds nothing to say.
    let b = report(
        &s,
        json!({ "scheduled_at": soon, "title": "Blocked drain" }),
    )
    .await;
    let b_id = b["id"].as_str().unwrap().to_owned();
    let b_ref = b["reference"].as_str().unwrap().to_owned();
    assert_eq!(s.app.meta(&abebe_says(1, "accept")).await.status(), 200);
    wait_status(&s, &b_id, "accepted").await;
    assert_eq!(s.app.meta(&abebe_says(2, "started")).await.status(), 200);
    wait_status(&s, &b_id, "in_progress").await;

    // A is accepted and not started by its scheduled time.
    let a = report(
        &s,
        json!({ "scheduled_at": soon, "expected_duration_minutes": 30 }),
    )
    .await;
    let a_id = a["id"].as_str().unwrap().to_owned();
    let a_ref = a["reference"].as_str().unwrap().to_owned();
    assert_eq!(
        s.app
            .meta(&abebe_says(3, &format!("{a_ref} accept")))
            .await
            .status(),
        200
    );
    wait_status(&s, &a_id, "accepted").await;
    assert!(
        s.app
            .eventually(&format!("SELECT count(*) = 1 FROM coordinator_alerts WHERE kind = 'not_started' AND work_order_id = '{a_id}'"))
            .await
    );
    // The coordinator hears it by SMS (no WhatsApp on record for them).
    let alert = s
        .app
        .fake
        .wait_for("the coordinator's alert", |r| {
            r.field("To").as_deref() == Some("+251911000900")
        })
        .await;
    let text = alert.field("Body").unwrap();
    assert!(
        text.contains(&a_ref) && text.contains("has not started"),
        "{text}"
    );

    // Started, then past its expected duration (the clock is wound forward rather than waited for).
    assert_eq!(
        s.app
            .meta(&abebe_says(4, &format!("{a_ref} started")))
            .await
            .status(),
        200
    );
    wait_status(&s, &a_id, "in_progress").await;
    sqlx::query(
        "UPDATE work_orders SET started_at = now() - interval '31 minutes' WHERE id = $1::uuid",
    )
    .bind(&a_id)
    .execute(&s.app.app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE apalis.jobs SET run_at = now() - interval '1 second' WHERE job_type = 'work-order-timers' AND status = 'Pending' AND run_at > now() + interval '10 minutes' AND run_at < now() + interval '40 minutes'")
        .execute(&s.app.app.pool)
        .await
        .unwrap();
    assert!(
        s.app
            .eventually(&format!("SELECT count(*) = 1 FROM coordinator_alerts WHERE kind = 'overdue' AND work_order_id = '{a_id}'"))
            .await
    );
    // Every timer that is due has run: B never raised anything, and nothing was raised twice.
    assert!(
        s.app
            .eventually("SELECT count(*) = 0 FROM apalis.jobs WHERE job_type = 'work-order-timers' AND status IN ('Pending', 'Queued') AND run_at <= now()")
            .await
    );
    s.app.settle().await;
    assert_eq!(
        s.app
            .count(&format!(
                "SELECT count(*) FROM coordinator_alerts WHERE work_order_id = '{b_id}'"
            ))
            .await,
        0,
        "{b_ref} started in time"
    );
    assert_eq!(
        s.app.count("SELECT count(*) FROM coordinator_alerts").await,
        2
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'coordinator_alert'")
            .await,
        2
    );
}

#[tokio::test]
async fn an_amharic_worker_reads_states_priorities_and_which_list_in_amharic() {
    let s = setup().await;
    sqlx::query("UPDATE workers SET preferred_locale = 'am' WHERE first_name = 'Abebe'")
        .execute(&s.app.app.pool)
        .await
        .unwrap();
    // The reporter named the site in the location: the dispatch says it once.
    let first = report(
        &s,
        json!({ "priority": "urgent", "location_detail": "Block B, Bole Garden" }),
    )
    .await;
    let dispatch = first_message_of(&s, "wo_dispatch").await;
    assert!(dispatch.contains("(አስቸኳይ)"), "{dispatch}");
    assert_eq!(
        dispatch.matches("Bole Garden").count(),
        1,
        "the site named once: {dispatch}"
    );
    let titles = ["Blocked drain", "Dripping shower head", "Broken cistern"];
    let mut orders = vec![first];
    for title in titles {
        orders.push(report(&s, json!({ "title": title })).await);
    }
    for wo in &orders {
        assert_eq!(wo["assigned_worker_id"], worker_id(&s, "Abebe").await);
    }

    // Four open: "done" without a reference asks which, as a list with each title.
    assert_eq!(s.app.meta(&abebe_says(1, "done")).await.status(), 200);
    let question = s
        .app
        .fake
        .wait_for("asking which", |r| {
            r.path.ends_with("/messages") && r.json()["interactive"]["type"] == "list"
        })
        .await
        .json();
    crate::spec::assert_meta_valid("InteractiveMessage", &question);
    let action = &question["interactive"]["action"];
    assert_eq!(action["button"], "ይምረጡ", "the list's button in Amharic");
    let rows = action["sections"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let second = &orders[1];
    let reference = second["reference"].as_str().unwrap();
    assert_eq!(rows[1]["id"], format!("wo:{reference}"));
    assert_eq!(rows[1]["title"], format!("{reference} Blocked drain"));
    assert_eq!(rows[1]["description"], "Blocked drain");
    assert!(
        rows[2]["title"].as_str().unwrap().chars().count() <= 20
            && rows[2]["title"].as_str().unwrap().ends_with('…'),
        "{}",
        rows[2]
    );

    // Tapping one not yet accepted: refused with its state in Amharic.
    let tap = fixture("meta/list_reply.json")
        .replace("wo-M-1042", &format!("wo:{reference}"))
        .replace(
            "00000000000000000000000000000007AA==",
            "00000000000000000000000000007007AA==",
        )
        // It answers the list, not the first dispatch the fixture quotes.
        .replace(META_OUT_FIRST, "wamid.not-one-of-ours");
    assert_eq!(s.app.meta(&tap).await.status(), 200);
    let body = first_message_of(&s, "wo_not_now").await;
    assert!(
        body.contains("ተመድቧል") && !body.contains("assigned"),
        "{body}"
    );
}
