//! Extractors whose rejections use the app's own error body and say what to fix.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    http::error::{AppError, FieldErrors},
    types,
};

/// What no field may hold, whatever its type: a NUL character (PostgreSQL text cannot store
/// it) or a date outside the years the service computes with.
pub fn check_untyped_text(errors: &mut FieldErrors, field: &str, text: &str) {
    if text.contains('\0') {
        errors.add(field, "must not contain a NUL character (\\u0000)");
    } else if let Err(why) = types::check_date_text(text) {
        errors.add(field, why);
    }
}

/// Walks a JSON document, naming each offending value by its path (`items[2].name`).
fn check_json(errors: &mut FieldErrors, path: &str, value: &Value) {
    match value {
        Value::String(text) => check_untyped_text(errors, path, text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_json(errors, &format!("{path}[{i}]"), item);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.contains('\0') {
                    errors.add(&path, "field names must not contain a NUL character");
                }
                check_json(errors, &path, item);
            }
        }
        _ => {}
    }
}

/// `axum::Json`, but a bad body answers `{"error": ...}` naming the problem, and values no
/// field may hold (NUL, impossible dates) are refused with 422 before any handler sees them.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        let mut errors = FieldErrors::new();
        check_json(&mut errors, "", &value);
        errors.into_result()?;
        serde_path_to_error::deserialize(value)
            .map(Self)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    AppError::bad_request(format!("the JSON does not fit: {inner}"))
                } else {
                    AppError::bad_request(format!("the JSON does not fit: {path}: {inner}"))
                }
            })
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::bad_request(
            "send the body as JSON with the header Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => {
            AppError::bad_request(format!("the JSON does not fit: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            AppError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        other => AppError::bad_request(other.body_text()),
    }
}

/// `axum::extract::Query` with the app's error body.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut errors = FieldErrors::new();
        for (key, value) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        {
            check_untyped_text(&mut errors, &key, &key);
            check_untyped_text(&mut errors, &key, &value);
        }
        errors.into_result()?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| {
                AppError::bad_request(format!("the query string does not fit: {}", e.body_text()))
            })
    }
}

/// `axum::extract::Path` with the app's error body (a malformed id is a 400, not a 404).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e| {
                AppError::bad_request(format!(
                    "the path does not fit: {} (ids are UUIDs)",
                    e.body_text()
                ))
            })
    }
}

/// The client's address: the socket's peer, or what the configured trusted proxy says it is.
/// `None` only when a trusted proxy's header is missing or unreadable.
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl FromRequestParts<crate::http::AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::http::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(
            &parts.headers,
            &parts.extensions,
            state.config.trusted_proxy,
        )))
    }
}

/// The client's address: the peer's, or the one a trusted proxy reports.
pub fn client_address(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trusted_proxy: crate::config::TrustedProxy,
) -> Option<std::net::IpAddr> {
    use crate::config::TrustedProxy;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match trusted_proxy {
        TrustedProxy::None => extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip()),
        TrustedProxy::Fly => header("fly-client-ip").and_then(|v| v.trim().parse().ok()),
        // The proxy appends the address it saw; earlier entries are the client's own word.
        TrustedProxy::XForwardedFor => header("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next().and_then(|a| a.trim().parse().ok())),
    }
}
