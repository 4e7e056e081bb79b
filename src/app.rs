//! Builds the application: database, HTTP server and job workers, with one shutdown for all.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    audit,
    config::Config,
    db, domains,
    http::{self, AppState},
    messaging::Messaging,
    telemetry, worker,
};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects (creating the database if needed), migrates and binds. Port 0 picks a free port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // One connection listens for new jobs; the rest are shared by requests and jobs.
        let minimum = worker::LISTENING_CONNECTIONS + 4;
        if config.run_job_workers && config.database_max_connections < minimum {
            anyhow::bail!(
                "DATABASE_MAX_CONNECTIONS={} is too few with job workers: use at least {minimum} (or JOB_WORKERS=off)",
                config.database_max_connections,
            );
        }
        let pool = db::connect(&config.database_url, config.database_max_connections).await?;
        db::migrate(&pool).await?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create FIELDLINE_DATA_DIR {}",
                config.data_dir.display()
            )
        })?;
        let address = SocketAddr::new(config.host, config.port);
        let listener = listen(address).with_context(|| {
            format!(
                "cannot listen on {address} (is another process using PORT {}?)",
                config.port
            )
        })?;
        let config = Arc::new(config);
        let messaging = Messaging::new(pool.clone(), config.clone(), domains::message_handlers())?;
        let state = AppState {
            pool,
            config,
            metrics: telemetry::metrics_handle(),
            messaging,
        };
        Ok(Self { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

    /// What the job handlers run with, for running due jobs inline ([`worker::run_due_jobs`]).
    pub fn messaging(&self) -> Arc<Messaging> {
        self.state.messaging.clone()
    }

    /// Serves until `shutdown` resolves: then stops accepting, finishes in-flight requests and
    /// running jobs, and gives up on stragglers after `SHUTDOWN_TIMEOUT_SECS`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        let grace = state.config.shutdown_timeout;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = move |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        tracing::info!(
            address = %listener.local_addr()?,
            public_base_url = %state.config.public_base_url,
            providers = %providers(&state.config),
            "fieldline is serving"
        );
        let workers = if state.config.run_job_workers {
            tokio::spawn(worker::run_workers(
                state.pool.clone(),
                state.messaging.clone(),
                stopped(stop_rx.clone()),
                grace,
            ))
        } else {
            tracing::info!("JOB_WORKERS=off: jobs wait in the queue for a process that runs them");
            tokio::spawn(async { Ok(()) })
        };
        let sealer = tokio::spawn(audit::keep_sealing(
            state.pool.clone(),
            stopped(stop_rx.clone()),
        ));
        let router = http::router(state.clone());
        let server = http::server::serve(
            listener,
            router,
            connection_limits(&state.config),
            stopped(stop_rx.clone()),
        );

        let server_result = {
            let mut rx = stop_rx.clone();
            tokio::select! {
                () = server => Ok(()),
                // In-flight requests get the grace period, then the process moves on.
                _ = async { let _ = rx.wait_for(|s| *s).await; tokio::time::sleep(grace + Duration::from_secs(1)).await } => {
                    tracing::warn!("requests still running after the shutdown deadline were dropped");
                    Ok(())
                }
            }
        };
        let workers_result = workers.await.context("the job workers panicked")?;
        let _ = sealer.await;
        state.pool.close().await;
        tracing::info!("fieldline stopped");
        server_result.and(workers_result)
    }
}

/// Connections the kernel keeps waiting for us to accept (capped by `net.core.somaxconn`):
/// tokio's 1024 filled up under a flood of new connections, and a client whose connection found
/// it full waited a second for its retry.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Open files beyond connections: the database pool, media files, logs, the listener.
const RESERVED_FILES: u64 = 512;

/// The accept loop's limits, the connection cap from the (raised) open-file limit unless set.
fn connection_limits(config: &Config) -> http::server::ConnectionLimits {
    let open_files = http::server::raise_open_file_limit();
    let max_connections = config.max_connections.unwrap_or_else(|| {
        open_files
            .map(|limit| limit.saturating_sub(RESERVED_FILES).max(64))
            .unwrap_or(1024) as usize
    });
    tracing::info!(
        max_connections,
        open_files,
        header_timeout_secs = config.header_timeout.as_secs(),
        "connection limits"
    );
    http::server::ConnectionLimits {
        max_connections,
        header_timeout: config.header_timeout,
    }
}

/// Which providers have credentials; with none, messages go to the built-in console channel.
fn providers(config: &Config) -> String {
    let configured: Vec<&str> = [
        config.twilio.as_ref().map(|_| "twilio"),
        config.meta.as_ref().map(|_| "meta"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if configured.is_empty() {
        "none (console channel)".into()
    } else {
        configured.join(", ")
    }
}

/// Resolves on Ctrl-C or SIGTERM (what Fly.io and most orchestrators send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests and jobs");
}
