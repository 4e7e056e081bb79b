//! Attacks a running `fieldline serve` the way the security review did, and prints what a
//! prompt client saw meanwhile. Run by `scripts/slow-clients`, which starts the server and reads
//! its memory; by hand:
//!
//! ```sh
//! cargo run --release --example slow_clients -- http://127.0.0.1:8080 idle 10000 20
//! cargo run --release --example slow_clients -- http://127.0.0.1:8080 errors 100 5
//! ```
//!
//! - `idle N SECS`: N connections from 127.0.0.2 and up (other clients) each send half a request
//!   and then nothing, for SECS seconds; any the server closes is opened again at once. Meanwhile
//!   `/healthz` is asked from 127.0.0.1 on a fresh connection every 100 ms.
//! - `errors N ROUNDS`: N clients at once post a 1 MB JSON array of NUL strings to
//!   `/api/v1/app/login` and read the answer slowly (1 KB every 10 ms), ROUNDS times.
//!
//! - `signin CAREGIVER_PHONES...`: asks `/api/v1/app/login` for each caregiver's number three
//!   times (the codes allowed in ten minutes), alternating with as many numbers that are no one's,
//!   each request from its own loopback address; prints the time to answer of each kind.
//!
//! Printed: `/healthz` before and during (median, p99, max, failures), connections the server
//! closed, and the largest error answer. Only loopback addresses are used.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:8080".into());
    let server: SocketAddr = url.trim_start_matches("http://").parse()?;
    let mode = args.get(2).map(String::as_str).unwrap_or("idle");
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let length: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20);
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let before = probe_health(server, Duration::from_secs(3)).await;
    print_probe("healthz before", &before);
    match mode {
        "idle" => idle(server, n, Duration::from_secs(length)).await,
        "errors" => errors(server, n, length as usize).await,
        "signin" => signin(server, &args[3..]).await,
        other => anyhow::bail!("mode is idle or errors, not {other}"),
    }
}

/// Asks `/healthz` on a fresh connection every 100 ms for `span`; each answer's time, or None.
async fn probe_health(server: SocketAddr, span: Duration) -> Vec<Option<Duration>> {
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < span {
        let asked = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = TcpStream::connect(server).await.ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.ok()?;
            answer.starts_with(b"HTTP/1.1 200").then_some(())
        })
        .await;
        seen.push(matches!(answered, Ok(Some(()))).then(|| asked.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

fn print_probe(name: &str, seen: &[Option<Duration>]) {
    let mut ms: Vec<f64> = seen
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    println!(
        "{name}: {} asked, {} failed; median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        seen.len(),
        seen.iter().filter(|s| s.is_none()).count(),
        at(0.5).unwrap_or(f64::NAN),
        at(0.99).unwrap_or(f64::NAN),
        ms.last().copied().unwrap_or(f64::NAN),
    );
}

async fn idle(server: SocketAddr, n: usize, span: Duration) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let (open, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut holders = Vec::new();
    for i in 0..n {
        let (stop, open, closed) = (stop.clone(), open.clone(), closed.clone());
        // 127.0.0.2 to 127.0.0.201: a few hundred "other clients".
        let from: SocketAddr = format!("127.0.0.{}:0", 2 + i % 200).parse()?;
        holders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(socket) = TcpSocket::new_v4() else { break };
                if socket.bind(from).is_err() {
                    break;
                }
                let Ok(mut stream) = socket.connect(server).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
                open.fetch_add(1, Ordering::Relaxed);
                let mut buffer = [0u8; 256];
                tokio::select! {
                    _ = async { while !matches!(stream.read(&mut buffer).await, Ok(0) | Err(_)) {} } => {
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ = async { while !stop.load(Ordering::Relaxed) { tokio::time::sleep(Duration::from_millis(200)).await } } => {}
                }
                open.fetch_sub(1, Ordering::Relaxed);
            }
        }));
        if i % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    // Let them pile up before measuring.
    let ramp = Instant::now();
    while open.load(Ordering::Relaxed) < n * 9 / 10 && ramp.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "idle connections held: {} of {n} after {:.1} s",
        open.load(Ordering::Relaxed),
        ramp.elapsed().as_secs_f64()
    );
    let during = probe_health(server, span).await;
    print_probe("healthz during", &during);
    println!(
        "connections the server closed meanwhile: {} (still held: {})",
        closed.load(Ordering::Relaxed),
        open.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    for holder in holders {
        let _ = holder.await;
    }
    let after = probe_health(server, Duration::from_secs(3)).await;
    print_probe("healthz after", &after);
    Ok(())
}

async fn errors(server: SocketAddr, n: usize, rounds: usize) -> anyhow::Result<()> {
    let items = vec![r#""\u0000""#; 110_000].join(",");
    let body = Arc::new(format!("[{items}]"));
    let largest = Arc::new(AtomicUsize::new(0));
    for _ in 0..rounds {
        let mut clients = Vec::new();
        for _ in 0..n {
            let (body, largest) = (body.clone(), largest.clone());
            clients.push(tokio::spawn(async move {
                let Ok(mut stream) = TcpStream::connect(server).await else { return };
                let head = format!(
                    "POST /api/v1/app/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len().min(1024 * 1024)
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body.as_bytes()[..body.len().min(1024 * 1024)]).await;
                let mut total = 0;
                let mut buffer = [0u8; 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => total += read,
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                largest.fetch_max(total, Ordering::Relaxed);
            }));
        }
        let during = tokio::spawn(probe_health(server, Duration::from_secs(2)));
        for client in clients {
            let _ = client.await;
        }
        print_probe("healthz during the round", &during.await?);
    }
    println!(
        "largest error answer: {} bytes (request bodies {} bytes)",
        largest.load(Ordering::Relaxed),
        body.len().min(1024 * 1024)
    );
    Ok(())
}

/// One `/app/login` for `phone` from `from`: its status and time to answer.
async fn ask_code(
    server: SocketAddr,
    from: SocketAddr,
    phone: &str,
) -> anyhow::Result<(String, Duration)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(from)?;
    let mut stream = socket.connect(server).await?;
    let body = format!(r#"{{"phone":"{phone}"}}"#);
    let request = format!(
        "POST /api/v1/app/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let asked = Instant::now();
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let took = asked.elapsed();
    let status = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    Ok((status, took))
}

async fn signin(server: SocketAddr, caregivers: &[String]) -> anyhow::Result<()> {
    let (mut theirs, mut strangers) = (Vec::new(), Vec::new());
    let mut n = 0u32;
    for (i, caregiver) in caregivers.iter().enumerate() {
        for round in 0..3 {
            let stranger = format!("+25191188{:04}", i * 3 + round);
            for (phone, times) in [
                (caregiver.as_str(), &mut theirs),
                (stranger.as_str(), &mut strangers),
            ] {
                n += 1;
                let from: SocketAddr =
                    format!("127.0.{}.{}:0", 10 + n / 250, n % 250 + 1).parse()?;
                let (status, took) = ask_code(server, from, phone).await?;
                anyhow::ensure!(status.ends_with("202"), "{phone}: {status}");
                times.push(took.as_secs_f64() * 1000.0);
            }
        }
    }
    for (name, times) in [
        ("caregivers' numbers", &mut theirs),
        ("numbers of no one", &mut strangers),
    ] {
        times.sort_by(f64::total_cmp);
        println!(
            "/app/login, {name}: {} asked, median {:.1} ms, min {:.1}, max {:.1}",
            times.len(),
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    Ok(())
}
