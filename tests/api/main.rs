//! Integration tests: the real app on a real socket, against a real PostgreSQL database of its own.

mod api_auth;
mod cli;
mod corpus;
mod crash;
mod crud;
mod dispatch;
mod fallback;
mod faults;
mod flood;
mod health;
mod helpers;
mod job_engine;
mod layers;
mod messaging_outbound;
mod openapi;
mod panel;
mod panel_work_orders;
mod providers;
mod reporting;
mod schema;
mod security;
mod spec;
mod understanding;
mod visits;
mod webhooks_inbound;
mod webhooks_replies;
