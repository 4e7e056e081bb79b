//! The messaging layer: inbound messages stored exactly once and routed to a bot handler;
//! outbound notifications written and queued in the caller's transaction and sent by a durable job.
//!
//! Domains call [`notify::notify`] and implement [`router::Handler`]; they never see a provider.

pub mod channels;
pub mod consent;
pub mod contacts;
pub mod ingest;
pub mod keywords;
pub mod media;
pub mod notify;
pub mod router;
pub mod send;
pub mod simulate;
pub mod templates;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use anyhow::Context;
use governor::{DefaultKeyedRateLimiter, Quota};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Config;
use router::Registry;
use templates::Templates;

/// What the messaging jobs and webhooks share.
pub struct Messaging {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub templates: Templates,
    /// One client for every provider call, with timeouts.
    pub http: reqwest::Client,
    /// Per sending number, so one busy number cannot trip a provider's throughput limits.
    pub per_number: DefaultKeyedRateLimiter<Uuid>,
    pub handlers: Registry,
}

impl Messaging {
    pub fn new(pool: PgPool, config: Arc<Config>) -> anyhow::Result<Arc<Self>> {
        let templates = Templates::load(&config.message_templates_dir)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.provider_timeout)
            .user_agent(concat!("fieldline/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client for providers")?;
        let rate =
            NonZeroU32::new(config.outbound_per_number_per_second.max(1)).expect("at least 1");
        Ok(Arc::new(Self {
            pool,
            config,
            templates,
            http,
            per_number: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate)),
            handlers: Registry::standard(),
        }))
    }
}
