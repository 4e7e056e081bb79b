//! Home care: caregivers' visits and their electronic verification.

pub mod app_auth;
pub mod replies;
pub mod verify;
pub mod visits;
