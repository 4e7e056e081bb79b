//! The accept loop: what keeps slow and idle clients from taking the server.
//!
//! axum's own `serve` gives a connection as long as it likes to send its headers and, once the
//! process is out of file descriptors, sleeps a second per failed accept: 20,000 sockets that
//! sent half a request kept `/healthz` from answering for as long as they stayed. Here:
//! - every request's headers (the first, and each next one on a kept-alive connection) must
//!   arrive within `HTTP_HEADER_TIMEOUT_SECS`, or the connection is closed;
//! - at most `MAX_CONNECTIONS` are open. At the cap, a new connection takes the place of the
//!   oldest one that has no request running (idle between requests, or still sending its
//!   headers), so a client that asks promptly always gets in; when every connection is busy
//!   the newcomer is told so (503) and closed;
//! - the process's open-file limit is raised to its hard limit at start ([`raise_open_file_limit`]).

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, extract::Request};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};
use tower::ServiceExt;

/// How the accept loop protects itself.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Raises the soft open-file limit to the hard one (each connection is a file); returns the
/// limit in force.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit");
            None
        }
    }
}

/// One open connection: whether a request is running on it, and how to close it.
struct Open {
    running: Arc<AtomicUsize>,
    abort: AbortHandle,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Connections {
    open: Mutex<(u64, BTreeMap<u64, Open>)>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Open>)> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for one more under `cap`: closes the oldest connection with nothing
    /// running when full. False when every connection is busy.
    fn make_room(&self, cap: usize) -> bool {
        let mut guard = self.lock();
        let open = &mut guard.1;
        if open.len() < cap {
            return true;
        }
        let idle = open
            .iter()
            .find(|(_, c)| c.running.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(evicted) => {
                evicted.abort.abort();
                metrics::counter!("http_connections_evicted_total").increment(1);
                true
            }
            None => false,
        }
    }

    fn next_id(&self) -> u64 {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.0
    }

    fn insert(&self, id: u64, open: Open) {
        self.lock().1.insert(id, open);
    }

    fn remove(&self, id: u64) {
        self.lock().1.remove(&id);
    }
}

/// Counts a request as running from its headers until its response is ready.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

const BUSY: &str = r#"{"error":{"code":"too_many_connections","message":"every connection the server keeps is busy: try again in a second"}}"#;

/// Serves `router` on `listener` until `shutdown` resolves, then lets running requests finish
/// (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let connections = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: the providers and browsers speak it, and its header timeout holds from the
    // first byte (the auto builder's protocol sniffing waits on a silent client for ever).
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    let mut last_warned: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors (or the like): shed the idle and try again soon, not in a
                // second as axum does; warn at most every ten seconds.
                if last_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(%error, "accepting a connection failed: closing idle ones");
                    last_warned = Some(tokio::time::Instant::now());
                }
                metrics::counter!("http_accept_failed_total").increment(1);
                connections.make_room(0);
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        if !connections.make_room(limits.max_connections) {
            tokio::spawn(refuse(stream));
            continue;
        }
        let _ = stream.set_nodelay(true);
        let id = connections.next_id();
        let running = Arc::new(AtomicUsize::new(0));
        let service = {
            let running = running.clone();
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                })
                .map_future({
                    move |response| {
                        let running = Running::start(&running);
                        async move {
                            let response = response.await;
                            drop(running);
                            response
                        }
                    }
                })
        };
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let registry = connections.clone();
        let task = tokio::spawn(async move {
            let _ = connection.await;
            registry.remove(id);
        });
        connections.insert(
            id,
            Open {
                running,
                abort: task.abort_handle(),
            },
        );
        // A task that ended before it was registered removed nothing: take it out now.
        if task.is_finished() {
            connections.remove(id);
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Tells a newcomer the server is full, without waiting on them.
async fn refuse(mut stream: TcpStream) {
    metrics::counter!("http_connections_refused_total").increment(1);
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY}",
        BUSY.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
}
