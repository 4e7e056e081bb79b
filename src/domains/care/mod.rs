//! Home care: caregivers' visits and their electronic verification.

pub mod app_auth;
pub mod exceptions;
pub mod export;
pub mod replies;
pub mod schedule;
pub mod timers;
pub mod verify;
pub mod visits;

use crate::error::Invalid;

/// Why a care record could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum CareError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A check-in or check-out the visit's state or roster does not allow.
    #[error(transparent)]
    Refused(#[from] visits::Refusal),
    /// A coordinator's change the record's state does not allow.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type CareResult<T> = Result<T, CareError>;
