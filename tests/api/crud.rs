use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp, error_fields, json, spawn_app};

/// One resource's whole life through the API: create, read, list, validation, patch, delete.
struct Case {
    path: &'static str,
    valid: Value,
    /// A merge patch and a field it must change to the given value.
    patch: Value,
    patched: (&'static str, Value),
    /// An invalid body and the fields the error must name.
    invalid: Value,
    invalid_fields: &'static [&'static str],
}

async fn exercise(app: &TestApp, tenant: &Tenant, case: Case) {
    let (status, created) = json(app.post(tenant, case.path, &case.valid).await).await;
    assert_eq!(status, 201, "{}: {created}", case.path);
    let item = format!("{}/{}", case.path, created["id"].as_str().unwrap());

    let (status, fetched) = json(app.get(tenant, &item).await).await;
    assert_eq!((status, &fetched), (200, &created), "{item}");

    let (status, list) = json(app.get(tenant, case.path).await).await;
    assert_eq!(status, 200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == created["id"]),
        "{list}"
    );

    let (status, body) = json(app.post(tenant, case.path, &case.invalid).await).await;
    assert_eq!(status, 422, "{}: {body}", case.path);
    assert_eq!(body["error"]["code"], "validation_failed");
    let mut fields = error_fields(&body);
    fields.sort();
    let mut expected: Vec<String> = case.invalid_fields.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(fields, expected, "{body}");

    let (status, patched) = json(app.patch(tenant, &item, &case.patch).await).await;
    assert_eq!(status, 200, "{item}: {patched}");
    assert_eq!(patched[case.patched.0], case.patched.1, "{patched}");
    // Fields the patch left out keep their values.
    for (key, value) in created.as_object().unwrap() {
        if !case.patch.as_object().unwrap().contains_key(key)
            && !["updated_at", "position_reported_at"].contains(&key.as_str())
        {
            assert_eq!(
                &patched[key], value,
                "{key} changed although the patch did not name it"
            );
        }
    }
    let (status, body) = json(app.patch(tenant, &item, &json!({"no_such_field": 1})).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_field"),
        "{body}"
    );

    assert_eq!(app.delete(tenant, &item).await.status(), 204);
    assert_eq!(app.get(tenant, &item).await.status(), 404);
    assert_eq!(app.delete(tenant, &item).await.status(), 404);
    let (_, list) = json(app.get(tenant, case.path).await).await;
    assert!(
        !list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == created["id"])
    );

    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND entity_id = $2::uuid",
    )
    .bind(tenant.id)
    .bind(created["id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3, "created, updated and deleted are audited");
}

#[tokio::test]
async fn sites_crud() {
    let app = spawn_app().await;
    let tenant = app.tenant("sites-org").await;
    exercise(
        &app,
        &tenant,
        Case {
            path: "/api/v1/sites",
            valid: json!({"kind": "complex", "name": "Bole Gardens", "code": "BOLE", "latitude": 8.9936, "longitude": 38.7866}),
            patch: json!({"name": "Bole Gardens East", "code": null}),
            patched: ("code", Value::Null),
            invalid: json!({"kind": "castle", "name": " ", "latitude": 91.0, "longitude": 38.0}),
            invalid_fields: &["kind", "name", "latitude"],
        },
    )
    .await;
}

#[tokio::test]
async fn workers_crud() {
    let app = spawn_app().await;
    let tenant = app.tenant("workers-org").await;
    exercise(
        &app,
        &tenant,
        Case {
            path: "/api/v1/workers",
            valid: json!({"first_name": "Tigist", "last_name": "Haile", "phone": "+251 911 000 102", "kinds": ["maintenance"],
                          "specialties": ["HVAC", "electrical"], "preferred_locale": "am"}),
            patch: json!({"status": "on_leave"}),
            patched: ("status", json!("on_leave")),
            invalid: json!({"first_name": "X", "last_name": "Y", "phone": "0911", "kinds": ["pilot"], "status": "asleep", "email": "nope"}),
            invalid_fields: &["phone", "kinds", "status", "email"],
        },
    )
    .await;
}

#[tokio::test]
async fn patients_crud() {
    let app = spawn_app().await;
    let tenant = app.tenant("patients-org").await;
    exercise(
        &app,
        &tenant,
        Case {
            path: "/api/v1/patients",
            valid: json!({"first_name": "Almaz", "last_name": "Ayana", "date_of_birth": "1948-03-12", "gender": "female",
                          "national_id": "ET-1001", "nhs_number": "943 476 5919", "phone": "+251911000201",
                          "latitude": 8.995, "longitude": 38.789, "geofence_radius_m": 150, "consent_sms": true}),
            patch: json!({"geofence_radius_m": 300}),
            patched: ("geofence_radius_m", json!(300)),
            invalid: json!({"first_name": "A", "last_name": "B", "gender": "x", "nhs_number": "1234567890",
                            "latitude": 10.0, "emergency_contact_phone": "12"}),
            invalid_fields: &["gender", "nhs_number", "longitude", "emergency_contact_phone"],
        },
    )
    .await;
}

#[tokio::test]
async fn assets_crud() {
    let app = spawn_app().await;
    let tenant = app.tenant("assets-org").await;
    let (_, site) = json(
        app.post(
            &tenant,
            "/api/v1/sites",
            &json!({"kind": "hospital", "name": "St. Gabriel"}),
        )
        .await,
    )
    .await;
    exercise(
        &app,
        &tenant,
        Case {
            path: "/api/v1/assets",
            valid: json!({"name": "Standby generator", "asset_type": "Generator", "site_id": site["id"], "serial_number": "CAT-1",
                          "maintenance_frequency_days": 60, "last_maintenance_at": "2026-10-01T08:00:00Z"}),
            patch: json!({"status": "needs_maintenance"}),
            patched: ("status", json!("needs_maintenance")),
            invalid: json!({"name": "", "asset_type": "pump", "status": "broken", "maintenance_frequency_days": 0}),
            invalid_fields: &["name", "status", "maintenance_frequency_days"],
        },
    )
    .await;
}

#[tokio::test]
async fn next_maintenance_follows_from_the_last_and_the_frequency() {
    let app = spawn_app().await;
    let tenant = app.tenant("pm-org").await;
    let (_, asset) = json(
        app.post(&tenant, "/api/v1/assets", &json!({"name": "Pump", "asset_type": "pump", "maintenance_frequency_days": 30,
                                                     "last_maintenance_at": "2026-10-01T08:00:00Z"}))
            .await,
    )
    .await;
    assert_eq!(asset["next_maintenance_at"], "2026-10-31T08:00:00Z");
}

#[tokio::test]
async fn ambulances_crud() {
    let app = spawn_app().await;
    let tenant = app.tenant("fleet-org").await;
    exercise(
        &app,
        &tenant,
        Case {
            path: "/api/v1/ambulances",
            valid: json!({"registration_number": "aa-3-12345", "ambulance_type": "advanced_life_support", "capacity": 2,
                          "features": ["Defibrillator", "oxygen"], "current_latitude": 9.0157, "current_longitude": 38.8015}),
            patch: json!({"status": "in_service"}),
            patched: ("status", json!("in_service")),
            invalid: json!({"registration_number": "", "ambulance_type": "bus", "capacity": 0, "current_latitude": -95.0, "current_longitude": 0.0}),
            invalid_fields: &["registration_number", "ambulance_type", "capacity", "current_latitude"],
        },
    )
    .await;
}

#[tokio::test]
async fn duplicates_are_409_naming_the_field() {
    let app = spawn_app().await;
    let tenant = app.tenant("dup-org").await;
    let worker = json!({"first_name": "A", "last_name": "B", "phone": "+251911000101", "kinds": ["caregiver"]});
    assert_eq!(
        app.post(&tenant, "/api/v1/workers", &worker).await.status(),
        201
    );
    let (status, body) = json(app.post(&tenant, "/api/v1/workers", &worker).await).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_fields(&body), vec!["phone"]);

    let ambulance = json!({"registration_number": "AA-1", "ambulance_type": "neonatal"});
    assert_eq!(
        app.post(&tenant, "/api/v1/ambulances", &ambulance)
            .await
            .status(),
        201
    );
    let (status, body) = json(
        app.post(
            &tenant,
            "/api/v1/ambulances",
            &json!({"registration_number": "aa-1", "ambulance_type": "neonatal"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409, "registration compares without case: {body}");
    assert_eq!(error_fields(&body), vec!["registration_number"]);
}

#[tokio::test]
async fn lists_page_with_a_cursor_and_filter() {
    let app = spawn_app().await;
    let tenant = app.tenant("paging-org").await;
    for (kind, name) in [
        ("ward", "Ward 1"),
        ("ward", "Ward 2"),
        ("ward", "Ward 3"),
        ("office", "Office"),
    ] {
        assert_eq!(
            app.post(
                &tenant,
                "/api/v1/sites",
                &json!({"kind": kind, "name": name})
            )
            .await
            .status(),
            201
        );
    }
    let (_, first) = json(app.get(&tenant, "/api/v1/sites?kind=ward&limit=2").await).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = json(
        app.get(
            &tenant,
            &format!("/api/v1/sites?kind=ward&limit=2&after={cursor}"),
        )
        .await,
    )
    .await;
    let names: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Ward 3"]);
    assert!(second["next_cursor"].is_null());

    let (_, found) = json(app.get(&tenant, "/api/v1/sites?q=offi").await).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (status, body) = json(app.get(&tenant, "/api/v1/sites?limit=500").await).await;
    assert_eq!(
        (status, error_fields(&body)),
        (422, vec!["limit".to_string()])
    );
    let (status, _) = json(app.get(&tenant, "/api/v1/sites/not-a-uuid").await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn malformed_json_is_400_with_the_reason() {
    let app = spawn_app().await;
    let tenant = app.tenant("json-org").await;
    let response = app
        .client
        .post(app.url("/api/v1/sites"))
        .bearer_auth(&tenant.token)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = json(
        app.post(&tenant, "/api/v1/sites", &json!({"kind": "office"}))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );
}
