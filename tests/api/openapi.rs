//! The OpenAPI document describes exactly the routes the server answers.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn the_document_matches_the_routes() {
    let app = spawn_app().await;
    let tenant = app.tenant("openapi-org").await;
    let (status, doc) = json(
        app.client
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Typed statuses and kinds are documented by the values the API sends, not their Rust names.
    for (schema, stored) in [
        ("Status", "in_progress"),
        ("AmbulanceType", "advanced_life_support"),
        ("MessageStatus", "undelivered"),
        ("SiteKind", "hospital"),
    ] {
        let values = &doc["components"]["schemas"][schema]["enum"];
        assert!(
            values
                .as_array()
                .is_some_and(|v| v.contains(&json!(stored))),
            "{schema}: {values}"
        );
    }

    let mut documented = BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut expected = BTreeSet::new();
    for resource in ["sites", "workers", "patients", "assets", "ambulances"] {
        for method in ["GET", "POST"] {
            expected.insert((method.to_string(), format!("/{resource}")));
        }
        for method in ["GET", "PATCH", "DELETE"] {
            expected.insert((method.to_string(), format!("/{resource}/{{id}}")));
        }
    }
    expected.insert(("GET".to_string(), "/channels".to_string()));
    expected.insert(("POST".to_string(), "/channels".to_string()));
    expected.insert(("GET".to_string(), "/messages".to_string()));
    for (method, path) in [
        ("GET", "/work-orders"),
        ("POST", "/work-orders"),
        ("GET", "/work-orders/{id}"),
        ("GET", "/work-orders/{id}/history"),
        ("POST", "/work-orders/{id}/assign"),
        ("POST", "/work-orders/{id}/cancel"),
        ("GET", "/workers/{id}/sites"),
        ("PUT", "/workers/{id}/sites"),
        ("POST", "/workers/{id}/app-tokens/revoke"),
        ("GET", "/visits"),
        ("POST", "/visits"),
        ("GET", "/visits/{id}"),
        ("POST", "/visits/{id}/cancel"),
        ("GET", "/visits/export"),
        ("POST", "/visits/{id}/correct"),
        ("GET", "/visit-exceptions"),
        ("POST", "/visit-exceptions/{id}/resolve"),
        ("POST", "/visits/{id}/reassign"),
        ("GET", "/assignments"),
        ("POST", "/assignments"),
        ("POST", "/assignments/{id}/cancel"),
        ("POST", "/assignments/{id}/change"),
        ("POST", "/assignments/{id}/reassign"),
        ("POST", "/app/login"),
        ("POST", "/app/verify"),
        ("GET", "/app/visits"),
        ("POST", "/app/visits/{id}/check-in"),
        ("POST", "/app/visits/{id}/check-out"),
        ("POST", "/app/position"),
        ("GET", "/feedback"),
        ("GET", "/feedback/{id}"),
        ("POST", "/feedback/{id}/status"),
        ("POST", "/feedback/{id}/responses"),
        ("GET", "/feedback/trends"),
        ("GET", "/complaints"),
        ("GET", "/complaints/{id}"),
        ("PATCH", "/complaints/{id}"),
        ("POST", "/complaints/{id}/actions"),
        ("POST", "/complaints/{id}/responses"),
        ("POST", "/complaints/{id}/status"),
        ("GET", "/settings/feedback"),
        ("PUT", "/settings/feedback"),
        ("GET", "/trips"),
        ("POST", "/trips"),
        ("GET", "/trips/{id}"),
        ("GET", "/trips/response-times"),
        ("GET", "/trips/{id}/suggestions"),
        ("POST", "/trips/{id}/dispatch"),
        ("POST", "/trips/{id}/steps"),
        ("POST", "/trips/{id}/cancel"),
        ("POST", "/trips/{id}/recall"),
        ("PUT", "/ambulances/{id}/crew"),
        ("POST", "/ambulances/{id}/position"),
        ("GET", "/audit-log"),
        ("GET", "/patients/{id}/export"),
        ("POST", "/patients/{id}/erasure"),
        ("GET", "/data-requests"),
    ] {
        expected.insert((method.to_string(), path.to_string()));
    }
    assert_eq!(documented, expected);

    // Every documented operation reaches a handler: answered by the resource, never by the fallback.
    let missing_id = uuid::Uuid::now_v7().to_string();
    for (method, path) in &documented {
        let url = app.url(&format!("/api/v1{}", path.replace("{id}", &missing_id)));
        let request = app
            .client
            .request(method.parse().unwrap(), url)
            .bearer_auth(&tenant.token)
            .json(&json!({}));
        let (status, body) = json(request.send().await.unwrap()).await;
        assert_ne!(status, 405, "{method} {path}");
        assert_ne!(body["error"]["code"], "route_not_found", "{method} {path}");
    }

    let ids: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| {
            ops.as_object()
                .unwrap()
                .values()
                .map(|op| op["operationId"].as_str().unwrap())
        })
        .collect();
    assert_eq!(ids.len(), documented.len(), "operation ids are unique");
}
