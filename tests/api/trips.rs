//! Ambulance trips through the API, the real webhooks and a fake provider: units ranked with
//! reasons, a dispatch to the crew, acceptance and every step by digit, Ethiopic digit, words and
//! a shared location, an illegal step refused, a decline and a vehicle problem handed back to the
//! coordinators, the times in order and the intervals.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{JOBS_BY_HAND, json},
    patients::{sms, whatsapp},
    providers::*,
};

const CREW: &str = "+251911600101";
const CALLER: &str = "+251911600199";

async fn post(app: &MessagingApp, path: &str, body: Value) -> (u16, Value) {
    json(app.app.post(&app.tenant, path, &body).await).await
}

/// Three units around Bole: a fresh ALS 1.1 km away, a fresh BLS 550 m away without oxygen, a
/// patient-transport car next door, a BLS whose position is an hour old.
async fn fleet(app: &MessagingApp) -> (Uuid, Vec<Uuid>) {
    let (status, crew) = post(
        app,
        "/api/v1/workers",
        json!({ "first_name": "Dawit", "last_name": "Girma", "phone": CREW, "kinds": ["ambulance_crew"] }),
    )
    .await;
    assert_eq!(status, 201, "{crew}");
    let crew: Uuid = crew["id"].as_str().unwrap().parse().unwrap();
    let mut units = Vec::new();
    for (reg, kind, features, lat) in [
        (
            "AA-1",
            "advanced_life_support",
            json!(["oxygen", "defibrillator"]),
            9.010,
        ),
        ("AA-2", "basic_life_support", json!(["stretcher"]), 9.005),
        ("AA-3", "patient_transport", json!(["oxygen"]), 9.0001),
        ("AA-4", "basic_life_support", json!(["oxygen"]), 9.0002),
    ] {
        let (status, unit) = post(
            app,
            "/api/v1/ambulances",
            json!({ "registration_number": reg, "ambulance_type": kind, "features": features }),
        )
        .await;
        assert_eq!(status, 201, "{unit}");
        let id: Uuid = unit["id"].as_str().unwrap().parse().unwrap();
        let response = app
            .app
            .post(
                &app.tenant,
                &format!("/api/v1/ambulances/{id}/position"),
                &json!({ "latitude": lat, "longitude": 38.75, "accuracy_m": 15.0 }),
            )
            .await;
        assert_eq!(response.status(), 204);
        units.push(id);
    }
    sqlx::query("UPDATE ambulances SET position_reported_at = now() - interval '1 hour' WHERE registration_number = 'AA-4'")
        .execute(&app.app.pool)
        .await
        .unwrap();
    // Dawit rides the first; every other vehicle has a driver of its own.
    for (i, unit) in units.iter().enumerate() {
        let member = if i == 0 {
            crew
        } else {
            let (status, driver) = post(
                app,
                "/api/v1/workers",
                json!({ "first_name": format!("Driver{i}"), "last_name": "Crew",
                        "phone": format!("+25191160020{i}"), "kinds": ["ambulance_crew"] }),
            )
            .await;
            assert_eq!(status, 201, "{driver}");
            driver["id"].as_str().unwrap().parse().unwrap()
        };
        let (status, body) = json(
            app.app
                .put(
                    &app.tenant,
                    &format!("/api/v1/ambulances/{unit}/crew"),
                    &json!([{ "worker_id": member, "role": "paramedic" }]),
                )
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    (crew, units)
}

async fn trip(app: &MessagingApp, id: &str) -> Value {
    let (status, trip) = json(
        app.app
            .get(&app.tenant, &format!("/api/v1/trips/{id}"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{trip}");
    trip
}

async fn vehicle_status(app: &MessagingApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM ambulances WHERE id = $1")
        .bind(id)
        .fetch_one(&app.app.pool)
        .await
        .unwrap()
}

async fn last_key_to(app: &MessagingApp, phone: &str) -> String {
    sqlx::query_scalar(
        "SELECT m.template_key FROM messages m JOIN contacts c ON c.id = m.contact_id
         WHERE c.phone = $1 AND m.direction = 'outbound' ORDER BY m.created_at DESC, m.id DESC LIMIT 1",
    )
    .bind(phone)
    .fetch_one(&app.app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_trip_is_ranked_dispatched_and_reported_step_by_step_by_the_crew() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let (_, units) = fleet(&app).await;
    let (status, created) = post(
        &app,
        "/api/v1/trips",
        json!({ "request_type": "emergency", "pickup_address": "Bole, near Edna Mall",
                "pickup_latitude": 9.0, "pickup_longitude": 38.75,
                "dropoff_address": "Black Lion Hospital", "equipment_needed": ["oxygen"],
                "contact_name": "Selam", "contact_phone": CALLER, "special_instructions": "Third floor" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["reference"], "T-1001");
    assert_eq!(created["priority"], "urgent");
    let id = created["id"].as_str().unwrap().to_owned();

    // Suggestions: the ALS ranked with its distance and time; the rest left out, each with why.
    let (status, suggested) = json(
        app.app
            .get(&app.tenant, &format!("/api/v1/trips/{id}/suggestions"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{suggested}");
    assert_eq!(suggested["ranked"][0]["registration_number"], "AA-1");
    assert_eq!(suggested["ranked"][0]["distance_m"], 1112.0);
    assert_eq!(suggested["ranked"][0]["eta_minutes"], 2.2);
    let reasons: Vec<String> = suggested["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["registration_number"].as_str().unwrap(),
                l["reason"].as_str().unwrap().split(':').next().unwrap()
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "AA-2 missing_equipment",
            "AA-3 wrong_type",
            "AA-4 stale_position"
        ]
    );

    // Dispatched to the first suggestion: the crew get the trip with Accept and Decline.
    let (status, dispatched) = post(&app, &format!("/api/v1/trips/{id}/dispatch"), json!({})).await;
    assert_eq!(status, 200, "{dispatched}");
    assert_eq!(dispatched["registration_number"], "AA-1");
    assert_eq!(vehicle_status(&app, units[0]).await, "assigned");
    app.settle().await;
    let sent = app
        .fake
        .wait_for("the dispatch", |r| {
            r.field("Body").is_some_and(|b| {
                b.contains("T-1001") && b.contains("maps.google.com/?q=9.00000,38.75000")
            }) || r.body.windows(6).any(|w| w == b"T-1001")
        })
        .await;
    let body = String::from_utf8_lossy(&sent.body).to_string();
    assert!(
        body.contains("Third floor") || body.contains("Third+floor"),
        "{body}"
    );

    // By SMS: "1" answers the dispatch's first choice (accept); then "1" is en route.
    let says = |n: u32, text: &'static str| {
        let app = &app;
        async move {
            app.twilio_message_stored(&sms(CREW, n, text)).await;
            app.settle().await;
            last_key_to(app, CREW).await
        }
    };
    assert_eq!(says(1, "1").await, "trip_accepted");
    assert_eq!(says(2, "1").await, "trip_step_en_route");
    assert_eq!(last_key_to(&app, CALLER).await, "trip_contact_on_the_way");
    assert_eq!(says(3, "፪").await, "trip_step_at_pickup");
    assert_eq!(last_key_to(&app, CALLER).await, "trip_contact_arrived");
    // A shared location moves the vehicle on the map.
    let mut location: Value = serde_json::from_str(&fixture("meta/location.json")).unwrap();
    let message = &mut location["entry"][0]["changes"][0]["value"]["messages"][0];
    message["from"] = json!(CREW[1..]);
    message["id"] = json!("wamid.crew-location-1");
    location["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = json!(CREW[1..]);
    assert_eq!(app.meta(&location.to_string()).await.status(), 200);
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_position_noted");
    let (lat, seen): (f64, bool) = sqlx::query_as(
        "SELECT current_latitude::float8, position_reported_at > now() - interval '1 minute' FROM ambulances WHERE id = $1",
    )
    .bind(units[0])
    .fetch_one(&app.app.pool)
    .await
    .unwrap();
    assert_eq!((lat, seen), (9.0108, true));
    assert_eq!(
        app.meta(&whatsapp(CREW, 1, "with patient, leaving now"))
            .await
            .status(),
        200
    );
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_step_leaving_pickup");
    assert_eq!(vehicle_status(&app, units[0]).await, "in_service");
    // Going back is refused, saying where the trip is.
    assert_eq!(says(4, "2").await, "trip_step_refused");
    assert_eq!(says(5, "at the hospital").await, "trip_step_at_destination");
    assert_eq!(says(6, "5").await, "trip_step_handover");
    assert_eq!(says(7, "back in service").await, "trip_step_available");
    assert_eq!(vehicle_status(&app, units[0]).await, "available");

    let done = trip(&app, &id).await;
    assert_eq!(done["status"], "completed");
    let times: Vec<&str> = [
        "assigned_at",
        "acknowledged_at",
        "en_route_to_pickup_at",
        "at_pickup_at",
        "en_route_to_dropoff_at",
        "at_destination_at",
        "handover_at",
        "completed_at",
    ]
    .iter()
    .map(|k| {
        done[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} recorded: {done}"))
    })
    .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "times in order");
    let elements: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["nemsis_element"].as_str())
        .collect();
    assert_eq!(
        elements,
        [
            "eTimes.03",
            "eTimes.04",
            "eTimes.05",
            "eTimes.06",
            "eTimes.09",
            "eTimes.10",
            "eTimes.11",
            "eTimes.12"
        ]
    );
    assert!(done["intervals"]["response_s"].as_i64().unwrap() >= 0);
    assert!(
        done["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor_name"] == "Dawit Girma" && e["channel"] == "sms")
    );

    // The report: one urgent trip, its turnout and response recorded, within the targets.
    let (status, report) = json(
        app.app
            .get(&app.tenant, "/api/v1/trips/response-times?days=7")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report[0]["priority"], "urgent");
    assert_eq!(report[0]["trips"], 1);
    assert_eq!(report[0]["response_within_target_pct"], 100.0);
    assert_eq!(report[0]["turnout_target_s"], 60);
    let (status, _) = json(
        app.app
            .get(&app.tenant, "/api/v1/trips/response-times?days=0")
            .await,
    )
    .await;
    assert_eq!(status, 422);

    // Another organisation sees nothing of it.
    let other = app.app.tenant("other-ambulance").await;
    assert_eq!(
        app.app
            .get(&other, &format!("/api/v1/trips/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.app
            .post(&other, &format!("/api/v1/trips/{id}/dispatch"), &json!({}))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_decline_and_a_vehicle_problem_hand_the_trip_back_to_the_coordinators() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let (_, units) = fleet(&app).await;
    let new_trip = json!({ "request_type": "non_emergency", "pickup_address": "Kazanchis",
        "pickup_latitude": 9.0, "pickup_longitude": 38.75, "dropoff_address": "St Paul's" });
    let (_, created) = post(&app, "/api/v1/trips", new_trip.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        &app,
        &format!("/api/v1/trips/{id}/dispatch"),
        json!({ "ambulance_id": units[0] }),
    )
    .await;
    assert_eq!(status, 200);
    app.settle().await;

    // Declined in words: back to pending, the unit free, the coordinators alerted.
    app.twilio_message_stored(&sms(
        CREW,
        10,
        "can't, still at Black Lion with the last patient",
    ))
    .await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_declined_noted");
    assert_eq!(trip(&app, &id).await["status"], "pending");
    assert_eq!(vehicle_status(&app, units[0]).await, "available");
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts WHERE kind = 'trip_declined' AND message LIKE '%T-1001%'").await,
        1
    );

    // Dispatched again and accepted; the vehicle breaks down: in maintenance, the trip re-offered.
    let (status, _) = post(
        &app,
        &format!("/api/v1/trips/{id}/dispatch"),
        json!({ "ambulance_id": units[0] }),
    )
    .await;
    assert_eq!(status, 200);
    app.settle().await;
    app.twilio_message_stored(&sms(CREW, 11, "ok we take it"))
        .await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_accepted");
    app.twilio_message_stored(&sms(CREW, 12, "9")).await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_problem_noted");
    assert_eq!(vehicle_status(&app, units[0]).await, "under_maintenance");
    assert_eq!(trip(&app, &id).await["status"], "pending");
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts WHERE kind = 'vehicle_problem'")
            .await,
        1
    );
    // The broken vehicle is no longer suggested.
    let (_, suggested) = json(
        app.app
            .get(&app.tenant, &format!("/api/v1/trips/{id}/suggestions"))
            .await,
    )
    .await;
    assert!(
        suggested["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["registration_number"] == "AA-1"
                && l["reason"].as_str().unwrap().starts_with("busy")),
        "{suggested}"
    );
    // Dispatching a busy unit is refused with why; cancelling tells nobody (no crew on it).
    let (status, body) = post(
        &app,
        &format!("/api/v1/trips/{id}/dispatch"),
        json!({ "ambulance_id": units[0] }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, cancelled) = post(
        &app,
        &format!("/api/v1/trips/{id}/cancel"),
        json!({ "reason": "family drove" }),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, _) = post(&app, &format!("/api/v1/trips/{id}/cancel"), json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn the_ladder_resends_an_unanswered_dispatch_then_alerts_and_watches_the_handover() {
    use std::time::Duration;
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let (_, units) = fleet(&app).await;
    let (_, created) = post(
        &app,
        "/api/v1/trips",
        json!({ "request_type": "emergency", "pickup_address": "Piassa", "pickup_latitude": 9.0,
                "pickup_longitude": 38.75, "dropoff_address": "Tikur Anbessa" }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        &app,
        &format!("/api/v1/trips/{id}/dispatch"),
        json!({ "ambulance_id": units[0] }),
    )
    .await;
    assert_eq!(status, 200);
    app.settle().await;
    let dispatches = || {
        app.count("SELECT count(*) FROM messages WHERE template_key = 'trip_dispatch' AND fallback_of_message_id IS NULL")
    };
    assert_eq!(dispatches().await, 1);
    // 60 s without an answer: the dispatch again; 120 s: the coordinators, with the next unit.
    app.app.advance(Duration::from_secs(61)).await;
    app.settle().await;
    assert_eq!(dispatches().await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts").await,
        0
    );
    // Each step is booked from the dispatch's real time: the test clock moves jobs only, so the
    // alert, due 120 s after the dispatch, is about 119 s away when the resend books it.
    app.app.advance(Duration::from_secs(122)).await;
    app.settle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts WHERE kind = 'trip_not_acknowledged' AND resolved_at IS NULL AND message LIKE '%next unit to offer%'").await,
        1
    );
    // The crew answers at last: the alert closes itself.
    app.twilio_message_stored(&sms(CREW, 20, "accept")).await;
    app.settle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts WHERE resolved_at IS NULL")
            .await,
        0
    );

    // At the destination 15 min without a handover: the crew reminded; 30 min: the coordinators.
    for step in ["en_route", "at_pickup", "leaving_pickup", "at_destination"] {
        let (status, body) = post(
            &app,
            &format!("/api/v1/trips/{id}/steps"),
            json!({ "step": step }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    app.settle().await;
    app.app.advance(Duration::from_secs(15 * 60 + 2)).await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_handover_reminder");
    // The delay alert is booked from the arrival's real time, as the ladder above.
    app.app.advance(Duration::from_secs(30 * 60 + 2)).await;
    app.settle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts WHERE kind = 'handover_delay' AND resolved_at IS NULL").await,
        1
    );
    app.twilio_message_stored(&sms(CREW, 21, "handed over to ER"))
        .await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_step_handover");
    assert_eq!(
        app.count("SELECT count(*) FROM coordinator_alerts WHERE resolved_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn coordinators_dispatch_and_follow_trips_in_the_panel() {
    use crate::panel::{PASSWORD, csrf_in, login_form, sign_in};
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    fleet(&app).await;
    let (_, created) = post(
        &app,
        "/api/v1/trips",
        json!({ "request_type": "emergency", "pickup_address": "Bole, near Edna Mall",
                "pickup_latitude": 9.0, "pickup_longitude": 38.75, "dropoff_address": "Black Lion Hospital",
                "equipment_needed": ["oxygen"] }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let web = &app.app;
    web.user(&app.tenant, "liya@trips.example", PASSWORD).await;
    let csrf = login_form(web).await;
    assert_eq!(
        sign_in(web, "msg-org", "liya@trips.example", PASSWORD, &csrf)
            .await
            .status(),
        303
    );
    let get = |path: String| async move {
        let response = web.client.get(web.url(&path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, board) = get("/panel/trips".into()).await;
    assert_eq!(status, 200);
    assert!(
        board.contains("T-1001") && board.contains("AA-4") && board.contains("ago"),
        "{board}"
    );
    let (status, page) = get(format!("/panel/trips/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("AA-1") && page.contains("missing_equipment"),
        "{page}"
    );
    assert!(
        page.contains("aria-label=\"Pickup and the units ranked for it"),
        "{page}"
    );
    let csrf = csrf_in(&page);
    // Dispatch the first suggestion from the page.
    let done = web
        .client
        .post(web.url(&format!("/panel/trips/{id}/dispatch")))
        .form(&[("csrf_token", csrf.as_str()), ("ambulance_id", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    let (_, page) = get(location).await;
    assert!(
        page.contains("eTimes.03") && page.contains("Dispatched: the crew has the trip."),
        "{page}"
    );
    // A message to the crew, then the trip taken back to give to another unit.
    let sent = web
        .client
        .post(web.url(&format!("/panel/trips/{id}/message")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("text", "Use the back entrance"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    assert_eq!(last_key_to(&app, CREW).await, "coordinator_message");
    let recalled = web
        .client
        .post(web.url(&format!("/panel/trips/{id}/recall")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(recalled.status(), 303);
    assert_eq!(last_key_to(&app, CREW).await, "trip_reassigned_away");
    assert_eq!(trip(&app, &id).await["status"], "pending");
    let (status, _) = post(&app, &format!("/api/v1/trips/{id}/dispatch"), json!({})).await;
    assert_eq!(status, 200);
    let (_, board) = get("/panel/trips".into()).await;
    assert!(
        board.contains("Mean and 90th percentile response time"),
        "{board}"
    );
    // Cancel without ticking the confirmation is refused, saying what to do.
    let refused = web
        .client
        .post(web.url(&format!("/panel/trips/{id}/cancel")))
        .form(&[("csrf_token", csrf.as_str()), ("reason", "duplicate")])
        .send()
        .await
        .unwrap();
    let location = refused.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error="), "{location}");
    assert_eq!(trip(&app, &id).await["status"], "assigned");
    // Another organisation's trip (or nobody's) is not found.
    let (status, _) = get(format!("/panel/trips/{}", Uuid::now_v7())).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_crew_member_on_two_active_trips_is_asked_which() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let (crew, units) = fleet(&app).await;
    let new_trip = json!({ "request_type": "transfer", "pickup_address": "Kazanchis",
        "pickup_latitude": 9.0, "pickup_longitude": 38.75, "dropoff_address": "St Paul's" });
    let (_, first) = post(&app, "/api/v1/trips", new_trip.clone()).await;
    let (_, second) = post(&app, "/api/v1/trips", new_trip).await;
    let (first, second) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let (status, _) = post(
        &app,
        &format!("/api/v1/trips/{first}/dispatch"),
        json!({ "ambulance_id": units[0] }),
    )
    .await;
    assert_eq!(status, 200);
    // Moved to another vehicle while the first trip is still open, and dispatched again.
    let (status, _) = json(
        app.app
            .put(
                &app.tenant,
                &format!("/api/v1/ambulances/{}/crew", units[1]),
                &json!([{ "worker_id": crew, "role": "driver" }]),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &app,
        &format!("/api/v1/trips/{second}/dispatch"),
        json!({ "ambulance_id": units[1] }),
    )
    .await;
    assert_eq!(status, 200);
    app.settle().await;
    app.twilio_message_stored(&sms(CREW, 30, "on scene")).await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_which");
    app.twilio_message_stored(&sms(CREW, 31, "T-1001 on scene"))
        .await;
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_step_at_pickup");
    assert_eq!(trip(&app, first).await["status"], "at_pickup");
    assert_eq!(trip(&app, second).await["status"], "assigned");
    // A skipped step stays unrecorded.
    assert_eq!(
        trip(&app, first).await["en_route_to_pickup_at"],
        Value::Null
    );
}

#[tokio::test]
async fn emergencies_dispatch_themselves_when_asked_a_tap_accepts_and_the_crews_phone_reports_the_position()
 {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let (_, units) = fleet(&app).await;
    sqlx::query("UPDATE tenants SET auto_dispatch_emergency = true")
        .execute(&app.app.pool)
        .await
        .unwrap();
    let (status, created) = post(
        &app,
        "/api/v1/trips",
        json!({ "request_type": "emergency", "pickup_address": "Merkato", "pickup_latitude": 9.0,
                "pickup_longitude": 38.75, "dropoff_address": "Black Lion Hospital", "equipment_needed": ["oxygen"] }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "assigned");
    assert_eq!(created["registration_number"], "AA-1");
    app.settle().await;
    // The crew taps Accept on the WhatsApp dispatch.
    let dispatch_id: String = sqlx::query_scalar(
        "SELECT provider_message_id FROM messages WHERE template_key = 'trip_dispatch' AND provider = 'meta'",
    )
    .fetch_one(&app.app.pool)
    .await
    .unwrap();
    let mut tap: Value = serde_json::from_str(&fixture("meta/button_reply.json")).unwrap();
    let value = &mut tap["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(CREW[1..]);
    let message = &mut value["messages"][0];
    message["from"] = json!(CREW[1..]);
    message["id"] = json!("wamid.crew-tap-1");
    message["context"]["id"] = json!(dispatch_id);
    assert_eq!(app.meta(&tap.to_string()).await.status(), 200);
    app.settle().await;
    assert_eq!(last_key_to(&app, CREW).await, "trip_accepted");
    assert!(trip(&app, created["id"].as_str().unwrap()).await["acknowledged_at"].is_string());

    // The crew member signs in on the app (as caregivers do) and the phone reports the position.
    let client = &app.app.client;
    let login = client
        .post(app.app.url("/api/v1/app/login"))
        .json(&json!({ "phone": CREW }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 202);
    app.settle().await;
    let sent = app
        .fake
        .wait_for("the sign-in code", |r| {
            String::from_utf8_lossy(&r.body).contains("sign-in")
        })
        .await;
    let body = String::from_utf8_lossy(&sent.body).to_string();
    let code: String = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|t| t.len() == 6)
        .expect("a six-digit code")
        .to_owned();
    let (status, session) = json(
        client
            .post(app.app.url("/api/v1/app/verify"))
            .json(&json!({ "phone": CREW, "code": code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().unwrap();
    let reported = client
        .post(app.app.url("/api/v1/app/position"))
        .bearer_auth(token)
        .json(&json!({ "latitude": 9.02, "longitude": 38.76, "accuracy_m": 8.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status(), 204);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM ambulance_positions WHERE ambulance_id = '{}' AND source = 'app' AND accuracy_m = 8",
            units[0]
        ))
        .await,
        1
    );
    let refused = client
        .post(app.app.url("/api/v1/app/position"))
        .bearer_auth(token)
        .json(&json!({ "latitude": 95.0, "longitude": 38.76 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
}
