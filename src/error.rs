//! The one error type, and its one mapping to HTTP.
//!
//! Every 4xx says what to fix, in a stable body: `{"error": {"code", "message", "details"}}`.
//! A 5xx logs its cause chain inside the request span and tells the caller nothing more.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// One field that failed validation, with what is wrong with it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every field error found in one request, so a client can fix them all at once.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
    /// Records the error of a parse, if any, and hands back the parsed value.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(field, message)).ok()
    }
    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.0))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// A webhook whose signature does not verify.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is valid but the record is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// Too many attempts: try again after this many seconds (sent as `Retry-After`).
    #[error("{message}")]
    RetryLater {
        message: String,
        retry_after_secs: u64,
    },
    /// A webhook for a provider this deployment has no credentials for.
    #[error("{0} is not configured here: set {1}")]
    ProviderNotConfigured(&'static str, &'static str),
    #[error("the request body is larger than the service accepts")]
    PayloadTooLarge,
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// The error body, as documented in the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_failed`, `not_found`, `unauthorized`, ...
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl AppError {
    /// One line for a terminal: what is wrong, field by field.
    pub fn explain(&self) -> String {
        let (_, _, message, details) = self.parts();
        if details.is_empty() {
            return message;
        }
        let fields: Vec<String> = details
            .iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect();
        format!("{message} ({})", fields.join("; "))
    }

    pub fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// Turns database constraint violations into errors the caller can act on.
    fn classify_database(
        err: &sqlx::Error,
    ) -> Option<(StatusCode, &'static str, String, Vec<FieldError>)> {
        let sqlx::Error::Database(db) = err else {
            return None;
        };
        let constraint = db.constraint().unwrap_or_default().to_owned();
        let field = constraint_field(&constraint);
        let detail = |message: String| {
            field
                .map(|f| {
                    vec![FieldError {
                        field: f.to_owned(),
                        message: message.clone(),
                    }]
                })
                .unwrap_or_default()
        };
        match db.code().as_deref() {
            Some("23505") => {
                let message = match field {
                    Some(f) => format!("another record already has this {f}"),
                    None => format!("this record already exists ({constraint})"),
                };
                Some((
                    StatusCode::CONFLICT,
                    "conflict",
                    message.clone(),
                    detail(message),
                ))
            }
            Some("23503") => {
                let message = match field {
                    Some(f) => format!("{f} does not name an existing record of this organisation"),
                    None => format!("a referenced record does not exist ({constraint})"),
                };
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    message.clone(),
                    detail(message),
                ))
            }
            // Data exceptions (a NUL character, a date or number beyond what can be stored) that
            // slipped past the edge checks: the caller's value, never a server fault.
            Some(code) if code.starts_with("22") => {
                let message = "a value cannot be stored: it is out of range or contains a character that is not allowed (such as NUL)".to_owned();
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    message,
                    vec![],
                ))
            }
            Some("23514") | Some("23502") => {
                let message = format!("a value is out of range or missing ({constraint})");
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    message.clone(),
                    detail(message),
                ))
            }
            _ => None,
        }
    }

    /// The database went away for a moment (a restart, a failover, a cut connection): the
    /// caller should try again, and a provider will.
    fn database_unavailable(&self) -> bool {
        let err = match self {
            Self::Unavailable(_) => return true,
            Self::Database(err) => Some(err),
            Self::Internal(err) => err.downcast_ref::<sqlx::Error>(),
            _ => None,
        };
        match err {
            Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            // Class 08: connection exception; class 57: operator intervention (shutdown, cut).
            Some(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
            _ => false,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, String, Vec<FieldError>) {
        let unavailable = || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service cannot reach its database; try again shortly".into(),
                vec![],
            )
        };
        if self.database_unavailable() {
            return unavailable();
        }
        match self {
            Self::Validation(details) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!(
                    "fix these fields: {}",
                    details
                        .iter()
                        .map(|d| d.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                details.clone(),
            ),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone(), vec![]),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone(), vec![]),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone(), vec![]),
            Self::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone(), vec![]),
            Self::TooManyRequests(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                m.clone(),
                vec![],
            ),
            Self::RetryLater { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                message.clone(),
                vec![],
            ),
            Self::ProviderNotConfigured(..) => (
                StatusCode::NOT_FOUND,
                "provider_not_configured",
                self.to_string(),
                vec![],
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
                vec![],
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
                vec![],
            ),
            Self::NoRoute { .. } => (
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("{self}; the API is described at /api/v1/openapi.json"),
                vec![],
            ),
            Self::Unavailable(_) => unavailable(),
            Self::Database(err) => Self::classify_database(err).unwrap_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on our side; it has been logged".into(),
                vec![],
            )),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on our side; it has been logged".into(),
                vec![],
            ),
        }
    }
}

/// Maps a named constraint to the API field it guards, where there is one.
fn constraint_field(constraint: &str) -> Option<&'static str> {
    const FIELDS: &[(&str, &str)] = &[
        ("channels_provider_kind_number", "phone_number"),
        ("channels_provider_ref", "provider_id"),
        ("phone", "phone"),
        ("registration", "registration_number"),
        ("serial", "serial_number"),
        ("national_id", "national_id"),
        ("nhs_number", "nhs_number"),
        ("code", "code"),
        ("email", "email"),
        ("slug", "slug"),
        ("site_fkey", "site_id"),
        ("parent_fkey", "parent_id"),
        ("base_site", "base_site_id"),
        ("latitude", "latitude"),
        ("longitude", "longitude"),
    ];
    FIELDS
        .iter()
        .find(|(needle, _)| constraint.contains(needle))
        .map(|(_, field)| *field)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        if status.is_server_error() {
            // `{:#}` on the anyhow chain / sqlx error: the cause stays in our logs, inside the request span.
            match &self {
                Self::Internal(err) => {
                    tracing::error!(error = format!("{err:#}"), "request failed")
                }
                Self::Database(err) | Self::Unavailable(err) => {
                    tracing::error!(error = %err, "request failed")
                }
                _ => tracing::error!(error = %self, "request failed"),
            }
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message,
                    details,
                },
            }),
        )
            .into_response();
        let retry_after = match &self {
            Self::RetryLater {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::TooManyRequests(_) => Some(60),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(2),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fieldline\""),
            );
        }
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;
