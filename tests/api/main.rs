//! Integration tests: the real app on a real socket, against a real PostgreSQL database of its own.

mod api_auth;
mod cli;
mod crud;
mod health;
mod helpers;
mod openapi;
mod panel;
mod schema;
mod providers;
mod webhooks_inbound;
