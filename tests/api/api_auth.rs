use serde_json::json;

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_say_what_to_send() {
    let app = spawn_app().await;
    let tenant = app.tenant("auth-org").await;

    let response = app
        .client
        .get(app.url("/api/v1/workers"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"fieldline\""
    );
    let (status, body) = json(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );

    let (status, _) = json(
        app.client
            .get(app.url("/api/v1/workers"))
            .bearer_auth("fl_api_wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = json(
        app.client
            .get(app.url("/api/v1/workers"))
            .header("authorization", format!("Basic {}", tenant.token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    assert_eq!(app.get(&tenant, "/api/v1/workers").await.status(), 200);
    sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE tenant_id = $1")
        .bind(tenant.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = json(app.get(&tenant, "/api/v1/workers").await).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn another_tenants_token_never_reads_or_changes_rows_and_gets_404() {
    let app = spawn_app().await;
    let a = app.tenant("tenant-a").await;
    let b = app.tenant("tenant-b").await;
    let (status, worker) = json(
        app.post(&a, "/api/v1/workers", &json!({"first_name": "Abebe", "last_name": "Kebede", "phone": "+251911000101", "kinds": ["maintenance"]}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{worker}");
    let path = format!("/api/v1/workers/{}", worker["id"].as_str().unwrap());

    let (status, body) = json(app.get(&b, &path).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(
        app.patch(&b, &path, &json!({"first_name": "Hijacked"}))
            .await
            .status(),
        404
    );
    assert_eq!(app.delete(&b, &path).await.status(), 404);
    let (_, list) = json(app.get(&b, "/api/v1/workers").await).await;
    assert_eq!(list["items"], json!([]));

    let (status, unchanged) = json(app.get(&a, &path).await).await;
    assert_eq!(
        (status, unchanged["first_name"].as_str()),
        (200, Some("Abebe"))
    );

    // The same phone may exist in another organisation: uniqueness is per tenant.
    let (status, _) = json(
        app.post(&b, "/api/v1/workers", &json!({"first_name": "Other", "last_name": "Person", "phone": "+251911000101", "kinds": ["caregiver"]}))
            .await,
    )
    .await;
    assert_eq!(status, 201);

    // A reference to another tenant's row is refused by the database's composite foreign keys.
    let (_, site_a) = json(
        app.post(
            &a,
            "/api/v1/sites",
            &json!({"kind": "complex", "name": "A's complex"}),
        )
        .await,
    )
    .await;
    let (status, body) = json(
        app.post(
            &b,
            "/api/v1/assets",
            &json!({"name": "Pump", "asset_type": "pump", "site_id": site_a["id"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(crate::helpers::error_fields(&body), vec!["site_id"]);
}
