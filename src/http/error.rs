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

pub use crate::error::{FieldError, FieldErrors, Invalid};
use crate::{
    domains::{
        care::{CareError, app_auth::SignInError},
        crud::RecordError,
        maintenance::work_orders::WorkOrderError,
        sign_in_attempts::SignInRefused,
    },
    messaging::channels::ChannelError,
};

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
        Invalid::field(field, message).into()
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
        err.is_some_and(crate::db::unreachable)
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

/// The longest message or field name an answer carries: a parser's message can quote the input.
const LONGEST_TEXT: usize = 300;

/// Cut to [`LONGEST_TEXT`] characters, saying so.
pub fn bounded(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(LONGEST_TEXT) {
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, mut details) = self.parts();
        // Bounded whatever built them: at most the listed errors and one line for the rest.
        let listed = crate::error::LISTED_FIELD_ERRORS;
        if details.len() > listed + 1 {
            let more = details.len() - listed;
            details.truncate(listed);
            details.push(FieldError {
                field: "...".into(),
                message: format!("and {more} more field errors: fix these and send again"),
            });
        }
        let message = bounded(message);
        let details = details
            .into_iter()
            .map(|d| FieldError {
                field: bounded(d.field),
                message: bounded(d.message),
            })
            .collect();
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

impl From<Invalid> for AppError {
    fn from(invalid: Invalid) -> Self {
        Self::Validation(invalid.0)
    }
}

// Each domain's error, mapped to HTTP here and nowhere else. A refusal keeps the domain's own
// wording; faults stay faults.

impl From<RecordError> for AppError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Invalid(invalid) => invalid.into(),
            RecordError::NotFound(what) => Self::NotFound(what),
            RecordError::Malformed(message) => Self::BadRequest(message),
            RecordError::Database(error) => Self::Database(error),
            RecordError::Internal(error) => Self::Internal(error),
        }
    }
}

impl From<WorkOrderError> for AppError {
    fn from(error: WorkOrderError) -> Self {
        match error {
            WorkOrderError::Invalid(invalid) => invalid.into(),
            WorkOrderError::NotFound => Self::NotFound("work order"),
            WorkOrderError::NotNow { .. }
            | WorkOrderError::NoWorker(_)
            | WorkOrderError::WorkerRemoved
            | WorkOrderError::WorkerUnreachable => Self::BadRequest(error.to_string()),
            WorkOrderError::Database(error) => Self::Database(error),
            WorkOrderError::Internal(error) => Self::Internal(error),
        }
    }
}

impl From<CareError> for AppError {
    fn from(error: CareError) -> Self {
        use crate::domains::care::visits::Refusal;
        match error {
            CareError::Invalid(invalid) => invalid.into(),
            CareError::NotFound(what) => Self::NotFound(what),
            CareError::Refused(refusal @ (Refusal::AnotherCaregivers | Refusal::MayNotCover)) => {
                Self::Forbidden(refusal.to_string())
            }
            CareError::Refused(refusal) => Self::Conflict(refusal.to_string()),
            CareError::Conflict(message) => Self::Conflict(message),
            CareError::Database(error) => Self::Database(error),
            CareError::Internal(error) => Self::Internal(error),
        }
    }
}

impl From<SignInError> for AppError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Invalid(invalid) => invalid.into(),
            SignInError::TooManyFromAddress
            | SignInError::TooManyCodes
            | SignInError::CodeUsedUp => Self::TooManyRequests(error.to_string()),
            SignInError::WrongCode(_) | SignInError::NoCodeWaiting => {
                Self::Unauthorized(error.to_string())
            }
            SignInError::UnknownWorker => Self::NotFound("worker"),
            SignInError::Database(error) => Self::Database(error),
            SignInError::Internal(error) => Self::Internal(error),
        }
    }
}

impl From<SignInRefused> for AppError {
    fn from(error: SignInRefused) -> Self {
        match error {
            SignInRefused::TooManyAttempts { retry_after_secs } => Self::RetryLater {
                message: error.to_string(),
                retry_after_secs,
            },
            SignInRefused::Database(error) => Self::Database(error),
        }
    }
}

impl From<crate::domains::privacy::PrivacyError> for AppError {
    fn from(error: crate::domains::privacy::PrivacyError) -> Self {
        use crate::domains::privacy::PrivacyError;
        match error {
            PrivacyError::Invalid(invalid) => invalid.into(),
            PrivacyError::NotFound => Self::NotFound("patient"),
            PrivacyError::AlreadyErased(_) => Self::Conflict(error.to_string()),
            PrivacyError::Database(error) => Self::Database(error),
        }
    }
}

impl From<ChannelError> for AppError {
    fn from(error: ChannelError) -> Self {
        match error {
            ChannelError::Invalid(invalid) => invalid.into(),
            ChannelError::InUse => Self::Conflict(error.to_string()),
            ChannelError::Database(error) => Self::Database(error),
        }
    }
}
