//! HTTP: routers only. Handlers parse requests and call into the domains.

pub mod api;
pub mod error;
pub mod extract;
pub mod health;
pub mod panel;
pub mod server;
pub mod webhooks;

use std::time::Instant;

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, StatusCode},
    middleware::{self, Next},
    response::{Redirect, Response},
    routing::get,
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::{config::Config, messaging::Messaging};

use self::error::AppError;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub messaging: Arc<Messaging>,
}

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The panel runs only its own scripts, uses no inline style, and loads nothing from another
/// origin except the map tiles the operator configured (`MAP_TILE_URL`): anything else a page
/// tries to load or run (an injected `<script>`, a framing site) is refused by the browser. A
/// response that needs a stricter policy (media) sets its own.
pub fn content_security_policy(config: &Config) -> String {
    let tiles = config
        .map_tiles
        .as_ref()
        .map(|t| format!(" {}", t.origin))
        .unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data:{tiles}; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Security headers on every response, unless the handler chose its own.
async fn security_headers(
    axum::extract::State(policy): axum::extract::State<axum::http::HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(policy);
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    Router::new()
        .merge(health::router())
        .nest("/api/v1", api::router())
        .nest("/panel", panel::router())
        .nest("/webhooks", webhooks::router())
        // People type the bare address or a trailing slash; both lead to the panel.
        .route("/", get(|| async { Redirect::to("/panel") }))
        .route("/panel/", get(|| async { Redirect::permanent("/panel") }))
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            axum::http::HeaderValue::from_str(&content_security_policy(&config))
                .expect("the policy is plain ASCII"),
            security_headers,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn_with_state(state.clone(), request_scope))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::COOKIE,
                ]))
                .layer(middleware::from_fn(drop_unsafe_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map(MatchedPath::as_str)
                        .unwrap_or_else(|| request.uri().path());
                    tracing::info_span!("request", method = %request.method(), route, request_id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout)),
        )
        .with_state(state)
}

/// Whether a client's `X-Request-Id` looks like one: 1 to 64 letters, digits, `.`, `_` or `-`.
/// Anything else (any length, our jobs' own `job:queue:id` origin) is not taken into logs and
/// audit rows.
fn is_safe_request_id(value: &[u8]) -> bool {
    (1..=64).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

/// Removes a client's request id that is not safe to keep: a fresh one is made in its place.
async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    let unsafe_id = request
        .headers()
        .get_all(&REQUEST_ID)
        .iter()
        .any(|id| !is_safe_request_id(id.as_bytes()));
    if unsafe_id {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// Every change a request makes is audited with its request id and the client's address, and
/// the jobs it pushes wake their workers when it is done.
async fn request_scope(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let origin = crate::audit::Origin {
        request_id: request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .map(str::to_owned),
        ip: extract::client_address(
            request.headers(),
            request.extensions(),
            state.config.trusted_proxy,
        ),
    };
    // Jobs a request pushes wake their workers once it is done (its transactions committed).
    let work = crate::jobs::waking(&state.messaging.wakeups, next.run(request));
    crate::audit::within(origin, work).await
}

async fn no_route(request: Request) -> AppError {
    AppError::NoRoute {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

/// Request counts and latencies by route template (never by raw path: ids would explode the labels).
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    response
}
