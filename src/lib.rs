//! Fieldline: a webhook-centric backend for field teams that talk to it by WhatsApp and SMS.
//!
//! The library builds the whole application so that `main.rs` stays thin and tests can start the
//! real thing on port 0.

pub mod app;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod cli;
pub mod config;
pub mod db;
pub mod domains;
pub mod error;
pub mod http;
pub mod jobs;
pub mod messaging;
pub mod seed;
pub mod telemetry;
pub mod types;
pub mod worker;

pub use app::Application;
pub use config::Config;
pub use http::error::AppError;
