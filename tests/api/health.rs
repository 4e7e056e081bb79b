use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer_when_the_database_is_migrated() {
    let app = spawn_app().await;
    let (status, body) = json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["migrations"], "current");
}

#[tokio::test]
async fn readyz_is_503_while_a_migration_is_missing() {
    let app = spawn_app().await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, body) = json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["migrations"]
            .as_str()
            .unwrap()
            .contains("fieldline migrate")
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let response = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let (status, body) = json(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("route_not_found"))
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_jobs_by_queue() {
    let app = spawn_app().await;
    let tenant = app.tenant("metrics-org").await;
    let site = app.get(&tenant, "/api/v1/sites").await;
    assert_eq!(site.status(), 200);
    let text = app.metrics().await;
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/api/v1/sites",status="200"}"#),
        "route template, not the raw path, labels the counter:\n{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_with_the_error_body() {
    let app = crate::helpers::spawn_app_with(&[("MAX_BODY_BYTES", "1024")]).await;
    let tenant = app.tenant("big-body").await;
    let big = serde_json::json!({ "kind": "office", "name": "x".repeat(4096) });
    let (status, body) = json(app.post(&tenant, "/api/v1/sites", &big).await).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns() {
    let mut app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::timeout(std::time::Duration::from_secs(15), app.stop())
        .await
        .expect("shutdown finishes within its deadline")
        .expect("clean shutdown");
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "no longer accepting"
    );
}

/// TLS to a server on this machine protects nothing and cost about a tenth of the CPU per
/// reply; a URL that asks for it still gets it.
#[tokio::test]
async fn a_local_database_is_reached_without_tls_unless_the_url_asks_for_it() {
    let app = spawn_app().await;
    let url = |raw: &str| fieldline::config::DatabaseUrl::parse(raw).unwrap();
    let over_tls = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    if url(&app.database_url).loopback_without_ssl_mode() {
        assert!(!over_tls(app.messaging.pool.clone()).await);
    }
    let offered: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    if offered == "on" {
        let asked = url(&format!("{}?sslmode=require", app.database_url));
        let pool = fieldline::db::connect(&asked, 1).await.unwrap();
        assert!(over_tls(pool).await);
    }
}

/// The first start on a fresh machine: the database `DATABASE_URL` names is created.
#[tokio::test]
async fn a_missing_database_is_created_when_connecting() {
    let name = format!("fieldline_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", crate::helpers::server_url());
    let url = fieldline::config::DatabaseUrl::parse(&url).unwrap();
    let pool = fieldline::db::connect(&url, 1).await.unwrap();
    let connected: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    crate::helpers::drop_database(&name);
    assert_eq!(connected, name);
}
