//! The messaging layer: inbound messages stored exactly once and routed to a bot handler;
//! outbound notifications written and queued in the caller's transaction and sent by a durable job.
//!
//! Domains call [`notify::notify`] and implement [`router::Handler`]; they never see a provider.

pub mod channels;
pub mod consent;
pub mod contacts;
pub mod fallback;
pub mod inbox;
pub mod ingest;
pub mod media;
pub mod notify;
pub mod router;
pub mod send;
pub mod templates;
pub mod understanding;

use std::{sync::Arc, time::Duration};

use crate::config::Config;
use anyhow::Context;
use router::Registry;
use sqlx::PgPool;
use templates::Templates;

crate::text_enum! {
    /// Which way a message went.
    pub enum Direction {
        Inbound = "inbound",
        Outbound = "outbound",
    }
}

crate::text_enum! {
    /// What a message carries.
    pub enum MessageKind {
        Text = "text",
        Location = "location",
        Media = "media",
        Interactive = "interactive",
        Template = "template",
        /// An emoji reaction to one of our messages (WhatsApp).
        Reaction = "reaction",
        Unsupported = "unsupported",
    }
}

crate::text_enum! {
    /// Where a message is: received (inbound), or on its way out and what the provider said.
    pub enum MessageStatus {
        Received = "received",
        Queued = "queued",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
        Undelivered = "undelivered",
    }
}

/// What the messaging jobs and webhooks share.
pub struct Messaging {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub templates: Templates,
    /// The words people use for each intent, per locale.
    pub lexicons: understanding::Lexicons,
    /// One client for every provider call, with timeouts.
    pub http: reqwest::Client,
    pub handlers: Registry,
    /// Wakes the job workers when a request or job has pushed them work.
    pub wakeups: Arc<crate::jobs::Wakeups>,
    /// Where webhooks keep the messages they carry.
    pub inbox: inbox::Writer,
}

impl Messaging {
    /// `handlers` are the domains' message handlers, in the order they are asked.
    pub fn new(
        pool: PgPool,
        config: Arc<Config>,
        handlers: Vec<Box<dyn router::Handler>>,
    ) -> anyhow::Result<Arc<Self>> {
        let templates = Templates::load(&config.message_templates_dir)?;
        let handlers = Registry::new(handlers);
        let lexicons = understanding::Lexicons::load(&config.intents_dir, &handlers.intent_sets())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.provider_timeout)
            .user_agent(concat!("fieldline/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client for providers")?;
        Ok(Arc::new(Self {
            wakeups: Arc::new(crate::jobs::Wakeups::new(pool.clone())),
            inbox: inbox::Writer::new(pool.clone()),
            pool,
            config,
            templates,
            http,
            lexicons,
            handlers,
        }))
    }
}
