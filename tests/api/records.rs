//! Records people can trust: every door leaves an audit row naming its actor and request, the
//! chain shows any edited, removed, reordered or cut-off row, and a patient's data can be
//! exported whole and erased, by admins only.

use std::process::{Command, Output};

use chrono::{TimeDelta, Utc};
use fieldline::{
    audit::{self, Actor},
    domains::tenancy::{self, Role},
    types::Email,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{JOBS_BY_HAND, json},
    panel::{PASSWORD, login_form, sign_in},
    patients::{sms, whatsapp},
    providers::*,
};

fn fieldline(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldline"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    actor_kind: String,
    actor_id: Option<Uuid>,
    request_id: Option<String>,
    ip: Option<String>,
    after: Option<Value>,
}

/// The latest audit row for `action` on `entity`.
async fn audited(app: &MessagingApp, action: &str, entity: Uuid) -> Row {
    audit::seal(&app.app.pool).await.unwrap();
    sqlx::query_as(
        "SELECT actor_kind, actor_id, request_id, host(ip) AS ip, after FROM audit_log
          WHERE action = $1 AND entity_id = $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(action)
    .bind(entity)
    .fetch_optional(&app.app.pool)
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no {action} audit row for {entity}"))
}

async fn admin_user(app: &MessagingApp, email: &str, role: Role) -> Uuid {
    let mut tx = audit::begin(&app.app.pool, Actor::Cli).await.unwrap();
    let id = tenancy::upsert_user(
        &mut tx,
        app.tenant.id,
        &Email::parse(email).unwrap(),
        Some("Amina Admin"),
        role,
        PASSWORD,
        false,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Signs `email` in to the panel.
async fn panel_sign_in(app: &MessagingApp, email: &str) {
    let csrf = login_form(&app.app).await;
    let signed_in = sign_in(&app.app, "msg-org", email, PASSWORD, &csrf).await;
    assert_eq!(signed_in.status(), 303);
}

/// A panel page as the signed-in user sees it.
async fn panel_page(app: &MessagingApp, path: &str) -> (u16, String) {
    let response = app.app.client.get(app.app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn token_with_role(app: &MessagingApp, role: Role) -> String {
    let mut tx = audit::begin(&app.app.pool, Actor::Cli).await.unwrap();
    let (_, token) = tenancy::create_api_token(&mut tx, app.tenant.id, "second", role)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    token
}

#[tokio::test]
async fn every_door_leaves_an_audit_row_with_its_actor_and_request() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let token_id: Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'tests'")
        .fetch_one(&app.app.pool)
        .await
        .unwrap();

    // The API: the token, the request id the response carries, the client's address.
    let response = app
        .app
        .post(
            &app.tenant,
            "/api/v1/work-orders",
            &json!({ "kind": "maintenance", "title": "Leaking tap in ward 3", "priority": "high" }),
        )
        .await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, order) = json(response).await;
    assert_eq!(status, 201, "{order}");
    let order_id: Uuid = order["id"].as_str().unwrap().parse().unwrap();
    let row = audited(&app, "work_orders.insert", order_id).await;
    assert_eq!(
        (
            row.actor_kind.as_str(),
            row.actor_id,
            row.request_id.as_deref(),
            row.ip.as_deref()
        ),
        (
            "api_token",
            Some(token_id),
            Some(request_id.as_str()),
            Some("127.0.0.1")
        )
    );
    assert_eq!(row.after.unwrap()["title"], "Leaking tap in ward 3");

    let worker: Uuid = sqlx::query_scalar("SELECT id FROM workers WHERE phone = $1")
        .bind(WORKER_PHONE)
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                &format!("/api/v1/work-orders/{order_id}/assign"),
                &json!({ "worker_id": worker }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.settle().await;

    // A message: the worker accepts; the change is theirs, in the routing job.
    // A tap on the dispatch's accept button.
    assert_eq!(
        app.meta(&fixture("meta/button_reply.json")).await.status(),
        200
    );
    app.settle().await;
    let row = audited(&app, "work_orders.update", order_id).await;
    assert_eq!(
        (row.actor_kind.as_str(), row.actor_id),
        ("worker", Some(worker))
    );
    assert_eq!(row.after.unwrap()["status"], "accepted");
    assert!(
        row.request_id
            .as_deref()
            .unwrap()
            .starts_with("job:route-inbound:"),
        "{:?}",
        row.request_id
    );

    // A job: the preventive sweep opens a work order for an asset that is due.
    let (status, asset) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/assets",
                &json!({ "name": "Boiler 2", "asset_type": "boiler", "maintenance_frequency_days": 30,
                         "installed_on": (Utc::now() - TimeDelta::days(90)).date_naive() }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{asset}");
    app.app
        .advance(fieldline::domains::audit_checkpoints::EVERY)
        .await;
    app.settle().await;
    let preventive: Uuid = sqlx::query_scalar("SELECT id FROM work_orders WHERE asset_id = $1")
        .bind(Uuid::parse_str(asset["id"].as_str().unwrap()).unwrap())
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    let row = audited(&app, "work_orders.insert", preventive).await;
    assert_eq!((row.actor_kind.as_str(), row.actor_id), ("system", None));
    assert!(
        row.request_id
            .unwrap()
            .starts_with("job:preventive-maintenance:")
    );

    // The panel: a coordinator cancels it.
    let user = admin_user(&app, "coord@example.org", Role::Coordinator).await;
    panel_sign_in(&app, "coord@example.org").await;
    let (_, page) = panel_page(&app, &format!("/panel/work-orders/{preventive}")).await;
    let csrf = crate::panel::csrf_in(&page);
    let cancelled = app
        .app
        .client
        .post(
            app.app
                .url(&format!("/panel/work-orders/{preventive}/cancel")),
        )
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("reason", "done last week"),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 303);
    let panel_request = cancelled.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let row = audited(&app, "work_orders.update", preventive).await;
    assert_eq!(
        (
            row.actor_kind.as_str(),
            row.actor_id,
            row.request_id.as_deref()
        ),
        ("user", Some(user), Some(panel_request.as_str()))
    );
    assert_eq!(row.after.unwrap()["status"], "cancelled");

    // The app: a caregiver signs in with a code; the session is theirs.
    let (status, caregiver) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/workers",
                &json!({ "first_name": "Selam", "last_name": "Bekele", "phone": "+251911700009",
                         "whatsapp_enabled": false, "kinds": ["caregiver"] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{caregiver}");
    let caregiver: Uuid = caregiver["id"].as_str().unwrap().parse().unwrap();
    let asked = app
        .app
        .client
        .post(app.app.url("/api/v1/app/login"))
        .json(&json!({ "phone": "+251911700009" }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);
    let sent = app.wait_for_sends(1).await;
    let code: String = sent
        .iter()
        .filter(|s| s.field("To").as_deref() == Some("+251911700009"))
        .filter_map(|s| s.field("Body"))
        .find_map(|b| {
            b.split(|c: char| !c.is_ascii_digit())
                .find(|t| t.len() == 6)
                .map(str::to_owned)
        })
        .expect("a sign-in code");
    let verified = app
        .app
        .client
        .post(app.app.url("/api/v1/app/verify"))
        .json(&json!({ "phone": "+251911700009", "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let app_session: Uuid = sqlx::query_scalar("SELECT id FROM app_tokens WHERE worker_id = $1")
        .bind(caregiver)
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    let row = audited(&app, "app_tokens.insert", app_session).await;
    assert_eq!(
        (row.actor_kind.as_str(), row.actor_id),
        ("worker", Some(caregiver))
    );
    assert!(!row.after.unwrap().to_string().contains("token_hash"));

    // The command line.
    let out = fieldline(
        &app.app.database_url,
        &[
            "token",
            "create",
            "--tenant",
            "msg-org",
            "--name",
            "from-the-shell",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shell_token: Uuid =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'from-the-shell'")
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert_eq!(
        audited(&app, "api_tokens.insert", shell_token)
            .await
            .actor_kind,
        "cli"
    );

    // No change went unattributed, and the chain holds.
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE actor_kind = 'unknown'")
            .await,
        0
    );
    let out = fieldline(
        &app.app.database_url,
        &["audit", "verify", "--tenant", "msg-org"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The API lists one record's history, newest first, with names.
    let (status, history) = json(
        app.app
            .get(&app.tenant, &format!("/api/v1/audit-log?record={order_id}"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"work_orders.insert"), "{actions:?}");
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor_name"] == "Abebe Kebede"),
        "{history}"
    );
    let (status, by_cli) = json(
        app.app
            .get(&app.tenant, "/api/v1/audit-log?actor_kind=cli")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        by_cli
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor_kind"] == "cli")
    );
    let (status, refused) = json(
        app.app
            .get(&app.tenant, "/api/v1/audit-log?actor_kind=robot")
            .await,
    )
    .await;
    assert_eq!(status, 422, "{refused}");

    // The panel shows the record's history.
    let (_, history) = panel_page(&app, &format!("/panel/history?record={preventive}")).await;
    assert!(history.contains("status"), "{history}");
    assert!(history.contains("cancelled"), "{history}");
}

/// Changes `sql` makes to the log, with its guarding triggers off (as someone with the
/// database's superuser would).
async fn tamper(app: &MessagingApp, sql: &str) {
    let mut conn = app.app.pool.acquire().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET session_replication_role = replica; {sql}; SET session_replication_role = origin;"
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
}

async fn chain_break(app: &MessagingApp) -> Option<audit::Break> {
    audit::verify_chain(&app.app.pool, app.tenant.id)
        .await
        .unwrap()
        .broken
}

/// An app whose tenant's chain holds a few rows: the setup's and four sites'.
async fn chain_of_sites() -> MessagingApp {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    for n in 0..4 {
        let (status, body) = json(
            app.app
                .post(
                    &app.tenant,
                    "/api/v1/sites",
                    &json!({ "kind": "building", "name": format!("Block {n}") }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    app
}

async fn chain_rows(app: &MessagingApp) -> Vec<(Uuid, i64)> {
    audit::seal(&app.app.pool).await.unwrap();
    sqlx::query_as("SELECT id, seq FROM audit_log WHERE tenant_id = $1 ORDER BY seq")
        .bind(app.tenant.id)
        .fetch_all(&app.app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edited_removed_reordered_or_cut_off_entry_breaks_the_chain_at_that_entry() {
    let app = chain_of_sites().await;
    assert_eq!(chain_break(&app).await, None);
    let rows = chain_rows(&app).await;
    assert!(rows.len() >= 8, "{rows:?}");
    let (third, _) = rows[2];

    // The guard refuses changes made the ordinary way.
    let refused = sqlx::query("DELETE FROM audit_log WHERE id = $1")
        .bind(third)
        .execute(&app.app.pool)
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));

    // An edited value.
    tamper(
        &app,
        &format!("UPDATE audit_log SET after = '{{\"name\": \"Block X\"}}' WHERE id = '{third}'"),
    )
    .await;
    let broken = chain_break(&app).await.expect("an edit shows");
    assert_eq!(broken.row, Some(third));
    assert!(broken.why.contains("values were changed"), "{broken}");
    let out = fieldline(
        &app.app.database_url,
        &["audit", "verify", "--tenant", "msg-org"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&third.to_string()),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A removed row: the one after it is named.
    let app = chain_of_sites().await;
    let rows = chain_rows(&app).await;
    tamper(
        &app,
        &format!("DELETE FROM audit_log WHERE id = '{}'", rows[2].0),
    )
    .await;
    let broken = chain_break(&app).await.expect("a removal shows");
    assert_eq!(broken.row, Some(rows[3].0));

    // Two rows swapped in order: the first out of place is named.
    let app = chain_of_sites().await;
    let rows = chain_rows(&app).await;
    let ((a, a_seq), (b, b_seq)) = (rows[2], rows[3]);
    tamper(
        &app,
        &format!(
            "UPDATE audit_log SET seq = -1 WHERE id = '{a}';
             UPDATE audit_log SET seq = {a_seq} WHERE id = '{b}';
             UPDATE audit_log SET seq = {b_seq} WHERE id = '{a}'"
        ),
    )
    .await;
    let broken = chain_break(&app).await.expect("a reordering shows");
    assert_eq!(broken.row, Some(b));

    // The end cut off: the chain still links, but the recorded head and checkpoint do not.
    let app3 = chain_of_sites().await;
    app3.settle().await; // the checkpoint job records the head
    let head: i64 =
        sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints WHERE chain_id = $1")
            .bind(app3.tenant.id)
            .fetch_one(&app3.app.pool)
            .await
            .unwrap();
    assert!(head > 2);
    tamper(
        &app3,
        &format!(
            "DELETE FROM audit_log WHERE tenant_id = '{t}' AND seq >= {head} - 1;
             UPDATE audit_chain_heads SET seq = {head} - 2, hash = (SELECT hash FROM audit_log WHERE tenant_id = '{t}' AND seq = {head} - 2) WHERE chain_id = '{t}'",
            t = app3.tenant.id
        ),
    )
    .await;
    let broken = chain_break(&app3).await.expect("a cut-off end shows");
    assert_eq!(broken.row, None);
    assert!(broken.why.contains("checkpoint"), "{broken}");
}

struct Patient {
    id: Uuid,
    phone: &'static str,
}

const NAME_A: (&str, &str) = ("Meseret", "Qwzdyr");
const ADDRESS_A: &str = "Bole Qx-street 77";
const NATIONAL_ID_A: &str = "QXNID-12345";
const HOME_A: (f64, f64) = (9.012345, 38.712345);
const COMPLAINT_A: &str = "complaint: the Qwzdyr family waited four hours";

/// A patient with a record, a visit read in by the caregiver's location, an SMS complaint and
/// feedback, a photo, a trip, and the replies they got.
async fn patient_with_history(app: &MessagingApp, caregiver_phone: &str) -> Patient {
    let phone = "+251911777001";
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/patients",
                &json!({ "first_name": NAME_A.0, "last_name": NAME_A.1, "phone": phone,
                         "address_line": ADDRESS_A, "national_id": NATIONAL_ID_A,
                         "latitude": HOME_A.0, "longitude": HOME_A.1, "consent_sms": true }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let caregiver: Uuid = sqlx::query_scalar("SELECT id FROM workers WHERE phone = $1")
        .bind(caregiver_phone)
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    let start = Utc::now() + TimeDelta::minutes(5);
    let (status, visit) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/visits",
                &json!({ "caregiver_id": caregiver, "patient_id": id, "service_type": "personal_care",
                         "scheduled_start": start, "scheduled_end": start + TimeDelta::hours(1) }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{visit}");
    // Checked in by a shared location at the patient's door, out by words.
    let mut location: Value = serde_json::from_str(&fixture("meta/location.json")).unwrap();
    let value = &mut location["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(caregiver_phone[1..]);
    value["messages"][0]["from"] = json!(caregiver_phone[1..]);
    value["messages"][0]["id"] = json!("wamid.records-in");
    value["messages"][0]["location"]["latitude"] = json!(HOME_A.0);
    value["messages"][0]["location"]["longitude"] = json!(HOME_A.1);
    assert_eq!(app.meta(&location.to_string()).await.status(), 200);
    app.settle().await;
    assert_eq!(
        app.meta(&whatsapp(caregiver_phone, 900, "check out"))
            .await
            .status(),
        200
    );
    app.settle().await;
    app.twilio_message_stored(&sms(phone, 901, "the Qwzdyr nurse was kind"))
        .await;
    app.settle().await;
    app.twilio_message_stored(&sms(phone, 902, COMPLAINT_A))
        .await;
    app.settle().await;
    let photo = fixture("meta/image.json")
        .replace("251911000101", &phone[1..])
        .replace("Abebe Kebede", &format!("{} {}", NAME_A.0, NAME_A.1));
    assert_eq!(app.meta(&photo).await.status(), 200);
    app.settle().await;
    // Consent withdrawn and given again.
    for (n, form) in [
        (903, "twilio/sms_stop.form"),
        (904, "twilio/sms_start.form"),
    ] {
        let body = fixture(form)
            .replace("%2B251911000201", "%2B251911777001")
            .replace("SM", &format!("SM{n}"));
        app.twilio_message_stored(&body).await;
        app.settle().await;
    }
    let (status, trip) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/trips",
                &json!({ "request_type": "scheduled", "patient_id": id,
                         "scheduled_at": Utc::now() + TimeDelta::days(1),
                         "pickup_address": ADDRESS_A, "pickup_latitude": HOME_A.0, "pickup_longitude": HOME_A.1,
                         "dropoff_address": "Black Lion Hospital", "contact_phone": phone }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{trip}");
    Patient { id, phone }
}

async fn caregiver(app: &MessagingApp) -> &'static str {
    sqlx::query(
        "UPDATE channels SET active = false WHERE provider = 'twilio' AND kind = 'whatsapp'",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
    let phone = "+251911700001";
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/workers",
                &json!({ "first_name": "Sara", "last_name": "Alemu", "phone": phone, "kinds": ["caregiver"] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    phone
}

#[tokio::test]
async fn an_export_holds_every_kind_of_record_for_the_patient_and_nothing_of_anothers() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let caregiver_phone = caregiver(&app).await;
    let patient = patient_with_history(&app, caregiver_phone).await;
    // The fixtures' patient writes in too: none of it may appear.
    app.twilio_message_stored(&sms(PATIENT_PHONE, 950, "complaint: Tesfaye-only words"))
        .await;
    app.settle().await;

    let (status, document) = json(
        app.app
            .get(
                &app.tenant,
                &format!("/api/v1/patients/{}/export", patient.id),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["patient"]["last_name"], NAME_A.1);
    for section in [
        "contacts",
        "messages",
        "visits",
        "feedback",
        "complaints",
        "trips",
        "data_requests",
    ] {
        assert!(
            !document[section].as_array().unwrap().is_empty(),
            "{section} is empty: {document:#}"
        );
    }
    assert!(
        !document["consent"]["events"].as_array().unwrap().is_empty(),
        "{document:#}"
    );
    let visit = &document["visits"][0];
    assert!(visit["check_in_at"].is_string(), "{visit}");
    assert!(
        !visit["visit_events"].as_array().unwrap().is_empty(),
        "{visit}"
    );
    let messages = document["messages"].as_array().unwrap();
    assert!(messages.iter().any(|m| m["direction"] == "inbound"));
    assert!(messages.iter().any(|m| m["direction"] == "outbound"));
    assert!(
        messages
            .iter()
            .any(|m| !m["message_media"].as_array().unwrap().is_empty()),
        "the photo is listed"
    );
    assert_eq!(
        document["complaints"][0]["description"],
        COMPLAINT_A["complaint: ".len()..]
    );
    let text = document.to_string();
    for other in ["Tesfaye", PATIENT_PHONE, "Tesfaye-only"] {
        assert!(!text.contains(other), "{other} in {text}");
    }
    assert!(!text.contains("tenant_id"));

    // Readable, and recorded with who asked.
    let summary = app
        .app
        .client
        .get(app.app.url(&format!(
            "/api/v1/patients/{}/export?format=html",
            patient.id
        )))
        .bearer_auth(&app.tenant.token)
        .send()
        .await
        .unwrap();
    assert_eq!(summary.status(), 200);
    let summary = summary.text().await.unwrap();
    assert!(
        summary.contains("Data held about Meseret Qwzdyr"),
        "{summary}"
    );
    assert!(summary.contains("Ambulance trips"));
    let (status, requests) = json(
        app.app
            .get(
                &app.tenant,
                &format!("/api/v1/data-requests?patient_id={}", patient.id),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["access", "portability"]);
    assert!(requests[0]["fulfilled_at"].is_string());
    assert_eq!(requests[0]["requested_by_kind"], "api_token");

    // Another organisation's patient is not found.
    let other = app.app.tenant("other-org").await;
    let (status, _) = json(
        app.app
            .get(&other, &format!("/api/v1/patients/{}/export", patient.id))
            .await,
    )
    .await;
    assert_eq!(status, 404);
}

/// Every table in every schema of ours, searched row by row as text for `value`.
async fn tables_holding(app: &MessagingApp, value: &str) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name FROM information_schema.tables
          WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&app.app.pool)
    .await
    .unwrap();
    let mut holding = Vec::new();
    for (schema, table) in tables {
        let found: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM \"{schema}\".\"{table}\" t WHERE strpos(lower(t::text), lower($1)) > 0)"
        )))
        .bind(value)
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
        if found {
            holding.push(format!("{schema}.{table}"));
        }
    }
    holding
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn erasure_leaves_no_personal_value_keeps_visit_times_and_the_chain_verifies() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let caregiver_phone = caregiver(&app).await;
    let patient = patient_with_history(&app, caregiver_phone).await;
    let data_dir: String = app.app.messaging.config.data_dir.display().to_string();
    let photos = || {
        files_under(std::path::Path::new(&data_dir))
            .into_iter()
            .filter(|f| std::fs::read(f).is_ok_and(|b| b == MEDIA_BYTES))
            .count()
    };
    assert_eq!(photos(), 1, "the photo was fetched");
    // Acknowledged, not yet stored when the erasure comes: theirs, and someone else's.
    for (from, n, text) in [
        (patient.phone, 991, "my new flat is by the Akaki bridge"),
        (caregiver_phone, 992, "running ten minutes late"),
    ] {
        let kept = app
            .twilio("/webhooks/twilio/messages", &sms(from, n, text))
            .await;
        assert_eq!(kept.status(), 200);
    }
    assert_eq!(app.count("SELECT count(*) FROM inbox").await, 2);
    let personal = [
        "Akaki bridge",
        NAME_A.1,
        patient.phone,
        &patient.phone[1..],
        ADDRESS_A,
        NATIONAL_ID_A,
        "9.012345",
        "38.712345",
        "four hours",
        "nurse was kind",
    ];
    for value in personal {
        assert!(
            !tables_holding(&app, value).await.is_empty(),
            "{value} was never stored"
        );
    }
    let times_before: (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>) =
        sqlx::query_as("SELECT check_in_at, check_out_at FROM visits WHERE patient_id = $1")
            .bind(patient.id)
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert!(times_before.0.is_some() && times_before.1.is_some());

    // A coordinator may not; an admin may, giving a reason.
    let coordinator = token_with_role(&app, Role::Coordinator).await;
    let refused = app
        .app
        .client
        .post(
            app.app
                .url(&format!("/api/v1/patients/{}/erasure", patient.id)),
        )
        .bearer_auth(&coordinator)
        .json(&json!({ "reason": "asked by phone" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let (on, id) = (&app, patient.id);
    let erase = move |reason: &'static str| async move {
        let path = format!("/api/v1/patients/{id}/erasure");
        json(
            on.app
                .post(&on.tenant, &path, &json!({ "reason": reason }))
                .await,
        )
        .await
    };
    let (status, body) = erase(" ").await;
    assert_eq!(status, 422, "{body}");
    // A change just before the erasure: its audit row (naming them) is not yet in the chain
    // when the erasure runs, and is blanked all the same.
    let (status, body) = json(
        app.app
            .patch(
                &app.tenant,
                &format!("/api/v1/patients/{}", patient.id),
                &json!({ "notes": format!("{} moved in with {}", ADDRESS_A, NAME_A.1) }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, erased) = erase("written request of 1 December").await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["files_removed"], 1, "{erased}");

    for value in personal {
        assert_eq!(
            tables_holding(&app, value).await,
            Vec::<String>::new(),
            "{value} remains"
        );
    }
    assert_eq!(photos(), 0, "the photo is gone from the data folder");
    assert_eq!(
        app.count("SELECT count(*) FROM inbox").await,
        1,
        "the caregiver's message still waits to be stored"
    );
    let times_after: (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>) =
        sqlx::query_as("SELECT check_in_at, check_out_at FROM visits WHERE patient_id = $1")
            .bind(patient.id)
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert_eq!(
        times_after, times_before,
        "visit times stay for payroll and EVV"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM complaints WHERE description = '[erased]'")
            .await,
        1,
        "the complaint still counts"
    );
    assert_eq!(chain_break(&app).await, None, "the chain still verifies");
    assert!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'gdpr.erasure'")
            .await
            == 1
    );
    // Once is enough.
    let (status, again) = erase("again").await;
    assert_eq!(status, 409, "{again}");

    // The number writes again: a stranger.
    app.twilio_message_stored(&sms(patient.phone, 990, "hello?"))
        .await;
    app.settle().await;
    let linked: Option<Uuid> =
        sqlx::query_scalar("SELECT patient_id FROM contacts WHERE phone = $1")
            .bind(patient.phone)
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert_eq!(linked, None);
}

#[tokio::test]
async fn export_and_erasure_take_what_their_number_wrote_before_it_was_theirs_on_record() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let phone = "+251911777055";
    let words = "the Gullele ward lost my mother's glasses";
    // A stranger's message: its contact is linked to nobody.
    app.twilio_message_stored(&sms(phone, 995, words)).await;
    app.settle().await;
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/patients",
                &json!({ "first_name": "Tsehay", "last_name": "Wolde", "phone": phone }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    for value in [phone, "Gullele ward"] {
        assert!(!tables_holding(&app, value).await.is_empty());
    }
    // Theirs in an export too.
    let (status, document) = json(
        app.app
            .get(&app.tenant, &format!("/api/v1/patients/{id}/export"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["contacts"][0]["phone"], phone, "{document}");
    assert!(
        document["messages"].to_string().contains("Gullele ward"),
        "{document}"
    );

    let (status, erased) = json(
        app.app
            .post(
                &app.tenant,
                &format!("/api/v1/patients/{id}/erasure"),
                &json!({ "reason": "asked at the front desk" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    for value in [phone, "Gullele ward"] {
        assert_eq!(
            tables_holding(&app, value).await,
            Vec::<String>::new(),
            "{value} remains"
        );
    }
    assert_eq!(chain_break(&app).await, None, "the chain still verifies");
}

#[tokio::test]
async fn coordinators_are_refused_what_only_admins_may_do() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let patient: Uuid = sqlx::query_scalar("SELECT id FROM patients")
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    let coordinator = token_with_role(&app, Role::Coordinator).await;
    let get = |path: String| {
        app.app
            .client
            .get(app.app.url(&path))
            .bearer_auth(&coordinator)
            .send()
    };
    for path in [
        format!("/api/v1/patients/{patient}/export"),
        "/api/v1/data-requests".to_owned(),
    ] {
        let response = get(path.clone()).await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only an admin"),
            "{body}"
        );
    }
    let number = app
        .app
        .client
        .post(app.app.url("/api/v1/channels"))
        .bearer_auth(&coordinator)
        .json(&json!({ "provider": "console", "kind": "sms", "phone_number": "+251911999999" }))
        .send()
        .await
        .unwrap();
    assert_eq!(number.status(), 403);
    // Both may read the log.
    assert_eq!(get("/api/v1/audit-log".into()).await.unwrap().status(), 200);

    // In the panel: the coordinator sees no export or erase, and is refused at the address.
    admin_user(&app, "coord@example.org", Role::Coordinator).await;
    panel_sign_in(&app, "coord@example.org").await;
    let (_, page) = panel_page(&app, &format!("/panel/patients/{patient}")).await;
    assert!(page.contains("Only an admin can export or erase"), "{page}");
    assert!(!page.contains("/erase\""));
    let (status, _) = panel_page(&app, &format!("/panel/patients/{patient}/export")).await;
    assert_eq!(status, 403);

    // An admin exports and erases from the panel, confirming.
    admin_user(&app, "admin@example.org", Role::Admin).await;
    app.app
        .client
        .post(app.app.url("/panel/logout"))
        .form(&[("csrf_token", crate::panel::csrf_in(&page).as_str())])
        .send()
        .await
        .unwrap();
    panel_sign_in(&app, "admin@example.org").await;
    let (_, page) = panel_page(&app, &format!("/panel/patients/{patient}")).await;
    assert!(page.contains("Download as JSON"), "{page}");
    let (status, summary) = panel_page(&app, &format!("/panel/patients/{patient}/export")).await;
    assert_eq!(status, 200);
    assert!(summary.contains("Hana Tesfaye"));
    let csrf = crate::panel::csrf_in(&page);
    let erase = |confirm: &'static str| {
        app.app
            .client
            .post(app.app.url(&format!("/panel/patients/{patient}/erase")))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("reason", "asked in person"),
                ("confirm", confirm),
            ])
            .send()
    };
    let unconfirmed = erase("").await.unwrap();
    assert_eq!(unconfirmed.status(), 303);
    assert!(
        unconfirmed.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM patients WHERE erased_at IS NOT NULL")
            .await,
        0
    );
    let done = erase("yes").await.unwrap();
    assert_eq!(done.status(), 303);
    assert!(
        done.headers()["location"]
            .to_str()
            .unwrap()
            .contains("done=")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM patients WHERE erased_at IS NOT NULL")
            .await,
        1
    );
}

/// What an erasure must leave alone: every audit row, message, complaint and contact that was
/// there before the erased patient was.
async fn everything_of_others(app: &MessagingApp) -> Vec<String> {
    audit::seal(&app.app.pool).await.unwrap();
    sqlx::query_scalar(
        "SELECT 'audit ' || id || ' ' || coalesce(before::text, '') || coalesce(after::text, '')
                || coalesce(reason, '') || coalesce(redacted_by::text, '') FROM audit_log
         UNION ALL SELECT 'message ' || id || ' ' || coalesce(body, '') || coalesce(template_params::text, '')
                || coalesce(location_label, '') FROM messages
         UNION ALL SELECT 'complaint ' || id || ' ' || description FROM complaints
         UNION ALL SELECT 'feedback ' || id || ' ' || coalesce(comments, '') FROM feedback
         UNION ALL SELECT 'contact ' || id || ' ' || phone || coalesce(display_name, '') FROM contacts
         UNION ALL SELECT 'patient ' || id || ' ' || first_name || last_name || coalesce(address_line, '') FROM patients
         ORDER BY 1",
    )
    .fetch_all(&app.app.pool)
    .await
    .unwrap()
}

/// Erasure finds the patient's records by id: a patient whose fields hold `": "`, `complaint`,
/// `the`, or another patient's very name changes nothing of anyone else's; the caller who rang
/// for their ambulance goes with them; the audit log's guard and `audit verify` refuse a
/// redaction of a row that is not theirs.
#[tokio::test]
async fn erasure_changes_nothing_of_anyone_else_whatever_the_patients_fields_hold() {
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let create = |fields: Value| {
        let app = &app;
        async move {
            let (status, body) =
                json(app.app.post(&app.tenant, "/api/v1/patients", &fields).await).await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().parse::<Uuid>().unwrap()
        }
    };
    // Someone else's history, full of common words.
    let other_phone = "+251911777101";
    create(
        json!({ "first_name": "Tigist", "last_name": "Bekele", "phone": other_phone,
                   "address_line": "Bole: the house by the complaint office" }),
    )
    .await;
    for (n, text) in [
        (1101, "complaint: the carer was late: again"),
        (1102, "the driver was kind"),
    ] {
        app.twilio_message_stored(&sms(other_phone, n, text)).await;
        app.settle().await;
    }
    let before = everything_of_others(&app).await;
    assert!(before.iter().any(|row| row.contains("the carer was late")));

    let caller = "+251911777199";
    for (n, fields) in [
        (
            1,
            json!({ "first_name": "Abeba", "last_name": "Bekele", "phone": "+251911777102",
                    "address_line": ": ", "emergency_contact_name": "complaint", "notes": "the" }),
        ),
        (
            2,
            json!({ "first_name": "Tigist", "last_name": "Bekele", "phone": "+251911777103",
                    "address_line": "complaint" }),
        ),
        (
            3,
            json!({ "first_name": "the", "last_name": "Bekele", "address_line": "the" }),
        ),
    ] {
        let id = create(fields.clone()).await;
        if let Some(phone) = fields["phone"].as_str() {
            app.twilio_message_stored(&sms(phone, 1110 + n, "complaint: the bus was late"))
                .await;
            app.settle().await;
        }
        if n == 1 {
            // A neighbour rang for their ambulance, and wrote to ask where it was.
            let (status, trip) = json(
                app.app
                    .post(
                        &app.tenant,
                        "/api/v1/trips",
                        &json!({ "request_type": "scheduled", "patient_id": id,
                                 "scheduled_at": Utc::now() + TimeDelta::days(1),
                                 "pickup_address": "Bole: the blue gate", "dropoff_address": "Black Lion Hospital",
                                 "contact_name": "Neighbour Hailu", "contact_phone": caller }),
                    )
                    .await,
            )
            .await;
            assert_eq!(status, 201, "{trip}");
            app.twilio_message_stored(&sms(caller, 1120, "where is the ambulance?"))
                .await;
            app.settle().await;
            assert!(!tables_holding(&app, "Neighbour Hailu").await.is_empty());
        }
        let (status, erased) = json(
            app.app
                .post(
                    &app.tenant,
                    &format!("/api/v1/patients/{id}/erasure"),
                    &json!({ "reason": "asked in writing" }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 200, "{erased}");
        let after = everything_of_others(&app).await;
        let changed: Vec<&String> = before.iter().filter(|row| !after.contains(row)).collect();
        assert!(
            changed.is_empty(),
            "erasing patient {n} changed: {changed:#?}"
        );
        assert_eq!(chain_break(&app).await, None, "the chain verifies");
    }
    for value in [
        caller,
        &caller[1..],
        "Neighbour Hailu",
        "where is the ambulance",
    ] {
        assert_eq!(
            tables_holding(&app, value).await,
            Vec::<String>::new(),
            "{value} remains"
        );
    }

    // Nothing but the erased patient's records may be blanked, whoever tries.
    let (request, others_row): (Uuid, Uuid) = sqlx::query_as(
        "SELECT (SELECT id FROM gdpr_data_requests ORDER BY requested_at LIMIT 1),
                (SELECT id FROM audit_log WHERE after::text LIKE '%the carer was late%' LIMIT 1)",
    )
    .fetch_one(&app.app.pool)
    .await
    .unwrap();
    let mut tx = app.app.pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('fieldline.erasure', $1, true)")
        .bind(request.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query(
        "UPDATE audit_log SET before = NULL, after = NULL, reason = NULL, redacted_by = $1 WHERE id = $2",
    )
    .bind(request)
    .bind(others_row)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    drop(tx);
    tamper(
        &app,
        &format!(
            "UPDATE audit_log SET before = NULL, after = NULL, reason = NULL, redacted_by = '{request}' WHERE id = '{others_row}'"
        ),
    )
    .await;
    let broken = chain_break(&app).await.expect("verify names the row");
    assert_eq!(broken.row, Some(others_row));
    assert!(
        broken.why.contains("not about the erased patient"),
        "{}",
        broken.why
    );
}

/// Generated: patients whose fields are made of what others' records hold (common words,
/// punctuation, LIKE wildcards, a shared surname, a complaint reference), with or without a
/// number and a message of their own. Whatever the API accepts, erasing one changes nothing that
/// existed before them (earlier erased patients included), and the chain verifies.
#[tokio::test]
async fn generated_erasures_never_change_what_is_not_the_patients() {
    use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
    let app = spawn_messaging_app(&[JOBS_BY_HAND]).await;
    let other_phone = "+251911777201";
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/patients",
                &json!({ "first_name": "Tigist", "last_name": "Bekele", "phone": other_phone,
                         "address_line": "Bole: the house by the complaint office" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    app.twilio_message_stored(&sms(
        other_phone,
        1201,
        "complaint: the carer was late: again",
    ))
    .await;
    app.settle().await;

    let word = prop::sample::select(vec![
        ": ",
        "complaint",
        "the",
        "Bekele",
        "Tigist",
        "late",
        "carer",
        "again",
        "Bole",
        "%",
        "_",
        "\\",
        "'",
        "\"",
        "a",
        " ",
        "C-1001",
        "+251911777201",
        "house",
        "office",
        "ስም",
    ]);
    let text = prop::collection::vec(word, 1..4).prop_map(|w| w.concat());
    let patient = (
        text.clone(),
        text.clone(),
        text.clone(),
        text.clone(),
        any::<bool>(),
    );
    let mut runner = TestRunner::deterministic();
    let mut erased = 0;
    for n in 0..12u32 {
        let (first, last, address, said, with_phone) =
            patient.new_tree(&mut runner).unwrap().current();
        let phone = format!("+2519117772{:02}", 10 + n);
        let mut fields = json!({ "first_name": first, "last_name": last, "address_line": address,
                                 "notes": said, "emergency_contact_name": said });
        if with_phone {
            fields["phone"] = json!(phone);
        }
        let before = everything_of_others(&app).await;
        let (status, body) =
            json(app.app.post(&app.tenant, "/api/v1/patients", &fields).await).await;
        if status == 422 {
            continue; // Not data the API accepts.
        }
        assert_eq!(status, 201, "{fields}: {body}");
        let id = body["id"].as_str().unwrap().to_owned();
        if with_phone {
            app.twilio_message_stored(&sms(&phone, 1210 + n, &format!("complaint: {said}")))
                .await;
            app.settle().await;
        }
        let (status, outcome) = json(
            app.app
                .post(
                    &app.tenant,
                    &format!("/api/v1/patients/{id}/erasure"),
                    &json!({ "reason": "generated case" }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 200, "{fields}: {outcome}");
        erased += 1;
        let after = everything_of_others(&app).await;
        let changed: Vec<&String> = before.iter().filter(|row| !after.contains(row)).collect();
        assert!(changed.is_empty(), "erasing {fields} changed: {changed:#?}");
        assert_eq!(chain_break(&app).await, None, "after erasing {fields}");
    }
    assert!(
        erased >= 6,
        "only {erased} of 12 generated patients were accepted"
    );
}
