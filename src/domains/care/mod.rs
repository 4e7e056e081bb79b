//! Home care: caregivers' visits and their electronic verification.

pub mod app_auth;
pub mod exceptions;
pub mod export;
pub mod replies;
pub mod schedule;
pub mod timers;
pub mod verify;
pub mod visits;
