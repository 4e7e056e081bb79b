//! Liveness, readiness and metrics.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::{
    auth::constant_time_eq, db, http::AppState, http::error::AppError, jobs, messaging::inbox,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up. Says nothing about its dependencies, so orchestrators do not restart it
/// when only the database is away.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Ready to take traffic: the database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match db::migrations_current(&state.pool).await {
        Ok(true) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok", "migrations": "current" })),
        ),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "not_ready", "database": "ok", "migrations": "pending: run `fieldline migrate`" }),
            ),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check cannot reach the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "not_ready", "database": "unreachable", "migrations": "unknown" }),
                ),
            )
        }
    }
}

/// Prometheus text: request counts and latencies (recorded by the HTTP layer) and job queue depth.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Queue depths and traffic by route are the operator's, for their scraper only: closed
    // until the operator sets the scraper's token.
    let Some(token) = &state.config.metrics_token else {
        return AppError::Forbidden(
            "/metrics is off: set METRICS_TOKEN (16+ characters) and scrape with Authorization: Bearer <METRICS_TOKEN>"
                .into(),
        )
        .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.trim(), token.expose()) {
        return AppError::Unauthorized(
            "/metrics needs Authorization: Bearer <METRICS_TOKEN>".into(),
        )
        .into_response();
    }
    // A (queue, status) that had jobs and now has none reads 0, not its last count.
    static REPORTED: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    match jobs::counts(&state.pool).await {
        Ok(rows) => {
            let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
            let now: std::collections::BTreeSet<(String, String)> = rows
                .iter()
                .map(|(queue, status, _)| (queue.clone(), status.clone()))
                .collect();
            for (queue, status) in reported.difference(&now) {
                metrics::gauge!("jobs", "queue" => queue.clone(), "status" => status.clone())
                    .set(0.0);
            }
            reported.extend(now);
            for (queue, status, count) in rows {
                metrics::gauge!("jobs", "queue" => queue, "status" => status).set(count as f64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot count jobs for /metrics"),
    }
    match inbox::depth(&state.pool).await {
        Ok((waiting, failing)) => {
            metrics::gauge!("inbox_waiting").set(waiting as f64);
            metrics::gauge!("inbox_failing").set(failing as f64);
        }
        Err(err) => tracing::warn!(error = %err, "cannot count the inbox for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
