//! Validation errors every layer shares: which fields are wrong, and what is wrong with each.
//!
//! Each domain has its own error type with an `Invalid` case; `http::error` maps them all to
//! responses in one place.

use serde::Serialize;
use utoipa::ToSchema;

/// One field that failed validation, with what is wrong with it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Input that cannot be used, field by field, so a client can fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fix these fields: {}", .0.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

/// How many field errors an answer lists; past that it says how many more there are. An answer
/// stays a few kilobytes whatever the input (a million bad array items is one line more).
pub const LISTED_FIELD_ERRORS: usize = 20;

/// Every field error found in one request (the first [`LISTED_FIELD_ERRORS`], and a count).
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    listed: Vec<FieldError>,
    more: usize,
}

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        if self.listed.len() < LISTED_FIELD_ERRORS {
            self.listed.push(FieldError {
                field: field.into(),
                message: message.into(),
            });
        } else {
            self.more += 1;
        }
    }
    /// Records the error of a parse, if any, and hands back the parsed value.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(field, message)).ok()
    }
    /// `Ok(())` when nothing was recorded.
    pub fn into_result(mut self) -> Result<(), Invalid> {
        if self.listed.is_empty() {
            return Ok(());
        }
        if self.more > 0 {
            self.listed.push(FieldError {
                field: "...".into(),
                message: format!(
                    "and {} more field errors like these: fix these and send again",
                    self.more
                ),
            });
        }
        Err(Invalid(self.listed))
    }
}
