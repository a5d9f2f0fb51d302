//! Load generator and bench server for the delivery tier.
//!
//! `sse-load serve --listen 127.0.0.1:9100 --secret S [--hyper-only true] [--redis-url URL --redis-prefix P]` runs
//! the delivery tier ([`Delivery::serve`], or the router through `axum::serve` alone with `--hyper-only true`) with a
//! bench-only control route,
//! `POST /bench/publish?topic=T&count=N` or `?users=U&rate=R&secs=D` (per-user topics `user.{i}.social` at R
//! messages/s); every message carries `sentAtMicros` (wall clock). With `--redis-url` the node keeps history and
//! live fan-out in Redis (as `social-realtime delivery` does), so a publish on one node reaches the clients of every
//! node started with the same `--redis-prefix` (default: a fresh `bench:{pid}{nanos}:`); it prints its
//! `listening on` line once its fan-out listener is subscribed.
//!
//! `sse-load clients --server 127.0.0.1:9100 --connections 10000 --sources 127.0.0.2,127.0.0.3 [--topic T | --users U
//! --secret S] [--broadcasts 20] [--rate R --secs D]` opens the connections (raw TCP, client sockets bound to the
//! given loopback source addresses), then measures: broadcasts (time until every client has each message, and p99
//! of per-client latency), or per-user latency at a rate. It prints one JSON object of results. The responses are
//! read by `--readers` threads (default 1), each polling its share of the sockets.
//!
//! `sse-load clients ... --listen true` only listens, for a driver that runs several client processes against several
//! nodes and publishes itself (`scripts/bench/sse_multinode.py`): once every connection is open (or failed) it prints
//! one JSON line `{"event":"connected",...}`, then records every message received (its `sentAtMicros` and the
//! latency to receipt); on a line on stdin (or stdin's end) it prints one JSON line with, per message, the sorted
//! latencies in microseconds, and exits.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::routing::post;
use serde_json::json;
use social_auth::{AuthConfig, Minter, Verifier};
use social_delivery::redis::{RedisBackend, RedisConfig};
use social_delivery::{Delivery, DeliveryConfig, Publisher};
use social_schemas::TopicMessage;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn args() -> (String, HashMap<String, String>) {
    let mut raw = std::env::args().skip(1);
    let mode = raw.next().unwrap_or_default();
    let mut map = HashMap::new();
    let rest: Vec<String> = raw.collect();
    for pair in rest.chunks(2) {
        if let [key, value] = pair {
            map.insert(key.trim_start_matches("--").to_owned(), value.clone());
        }
    }
    (mode, map)
}

fn get<T: std::str::FromStr>(args: &HashMap<String, String>, key: &str, default: T) -> T {
    args.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (mode, args) = args();
    match mode.as_str() {
        "serve" => serve(&args).await,
        "clients" => clients(&args).await,
        _ => eprintln!("usage: sse-load serve|clients [--key value ...] (see the module docs)"),
    }
}

fn message(topic: String, seq: u64) -> TopicMessage {
    TopicMessage {
        topic,
        id: format!("bench-{seq}"),
        event_type: "bench.tick".into(),
        timestamp: chrono::Utc::now(),
        data: json!({"sentAtMicros": now_micros(), "seq": seq}).into(),
    }
}

async fn serve(args: &HashMap<String, String>) {
    let secret = get(
        args,
        "secret",
        "bench-secret-of-at-least-thirty-two-bytes".to_owned(),
    );
    let listen: SocketAddr = get(args, "listen", "127.0.0.1:9100".parse().unwrap());
    let verifier = Arc::new(Verifier::new(&AuthConfig::hs256(secret)).unwrap());
    let config = DeliveryConfig {
        max_connections: 1_000_000,
        max_new_streams_per_user_per_minute: 1_000_000,
        // The load comes from a few loopback addresses.
        max_anonymous_streams_per_address: 0,
        max_new_anonymous_streams_per_address_per_minute: 0,
        connection_queue: get(args, "queue", 256),
        ..DeliveryConfig::default()
    };
    let shutdown = CancellationToken::new();
    let mut builder = Delivery::builder(config.clone(), verifier).shutdown(shutdown.clone());
    let mut backend = None;
    let mut described = String::new();
    if let Some(url) = args.get("redis-url") {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let prefix = args
            .get("redis-prefix")
            .cloned()
            .unwrap_or_else(|| format!("bench:{}{nanos}:", std::process::id()));
        let redis = RedisBackend::connect(RedisConfig::for_delivery(url, &prefix, &config), shutdown.clone())
            .await
            .unwrap();
        builder = builder
            .history(redis.history())
            .fanout(redis.fanout())
            .tickets(redis.tickets());
        // Not the URL itself: it may hold a password.
        described = format!(" (redis, prefix {prefix})");
        backend = Some(redis);
    }
    let delivery = builder.build();
    if let Some(redis) = &backend {
        assert!(
            redis.wait_subscribed(Duration::from_secs(10)).await,
            "the redis fan-out listener did not subscribe"
        );
    }
    let seq = Arc::new(AtomicU64::new(0));
    let control = axum::Router::new()
        .route("/bench/publish", post(publish))
        .with_state((delivery.publisher(), seq));
    let app = delivery.router().merge(control);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(listen).unwrap();
    let listener = socket.listen(65_535).unwrap();
    println!("listening on http://{listen}{described}");
    if get(args, "hyper-only", false) {
        // Every stream through hyper (the router alone), for comparison.
        axum::serve(listener, app.into_make_service()).await.unwrap();
    } else {
        delivery.serve(listener, app).await.unwrap();
    }
}

async fn publish(
    State((publisher, seq)): State<(Publisher, Arc<AtomicU64>)>,
    Query(query): Query<HashMap<String, String>>,
) -> String {
    if let Some(topic) = query.get("topic") {
        let count = get(&query, "count", 1u64);
        let started = std::time::Instant::now();
        for _ in 0..count {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let _ = publisher.publish(message(topic.clone(), n)).await;
        }
        // The time `publish` took (append to history, then queue for every subscriber), in microseconds.
        return format!("{count} {}\n", started.elapsed().as_micros());
    }
    let users = get(&query, "users", 1u64).max(1);
    let rate = get(&query, "rate", 1000u64).max(1);
    let secs = get(&query, "secs", 10u64);
    let per_tick = (rate / 1000).max(1);
    let mut tick = tokio::time::interval(
        Duration::from_millis(1).max(Duration::from_micros(1_000_000 * per_tick / rate)),
    );
    let total = rate * secs;
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        for _ in 0..per_tick {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let _ = publisher
                .publish(message(format!("user.u{}.social", n % users), n))
                .await;
            sent += 1;
        }
    }
    format!("{sent}\n")
}

struct Stats {
    /// `(sentAtMicros, latency in microseconds)` per message received; each reader appends once per poll.
    latencies: Mutex<Vec<(u64, u64)>>,
    received: AtomicUsize,
    connected: AtomicUsize,
    failed: AtomicUsize,
    /// Connections that had answered and then ended (closed by the server, or a read error).
    closed: AtomicUsize,
}

/// Opens one connection and sends its request; the response is read by a [`Reader`].
async fn connect(
    server: SocketAddr,
    source: std::net::IpAddr,
    path: String,
    auth: Option<String>,
    stats: Arc<Stats>,
) -> Option<std::net::TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    let opened = async {
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        let mut stream = socket.connect(server).await.ok()?;
        let auth = auth
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n{auth}\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        stream.into_std().ok()
    };
    let stream = opened.await;
    if stream.is_none() {
        stats.failed.fetch_add(1, Ordering::Relaxed);
    }
    stream
}

/// A thread reading its share of the connections through one `epoll` set (mio).
///
/// Why not one tokio task per connection: the clients share the two cores with the server under test, and a task
/// per connection costs a wake-up, a poll and two `read`s per message (tokio clears readiness only on `WouldBlock`).
/// Here a message costs one `read`: a read shorter than the buffer emptied the socket, and the next bytes to arrive
/// raise a new edge. The latencies are handed over once per poll.
struct Reader {
    handle: ReaderHandle,
    thread: std::thread::JoinHandle<()>,
}

/// Hands new connections to a [`Reader`].
#[derive(Clone)]
struct ReaderHandle {
    waker: Arc<mio::Waker>,
    streams: std::sync::mpsc::Sender<std::net::TcpStream>,
}

const WAKER: mio::Token = mio::Token(usize::MAX);

impl Reader {
    fn start(stats: Arc<Stats>, stop: Arc<std::sync::atomic::AtomicBool>) -> Reader {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).unwrap());
        let (streams, incoming) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || read_loop(poll, incoming, &stats, &stop));
        Reader {
            handle: ReaderHandle { waker, streams },
            thread,
        }
    }

    fn handle(&self) -> ReaderHandle {
        self.handle.clone()
    }
}

impl ReaderHandle {
    fn add(&self, stream: std::net::TcpStream) {
        let _ = self.streams.send(stream);
        let _ = self.waker.wake();
    }
}

struct Connection {
    stream: mio::net::TcpStream,
    answered: bool,
}

fn read_loop(
    mut poll: mio::Poll,
    incoming: std::sync::mpsc::Receiver<std::net::TcpStream>,
    stats: &Stats,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::Read;
    let mut events = mio::Events::with_capacity(1024);
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut buffer = vec![0u8; 4096];
    let mut found = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Err(error) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("poll failed: {error}");
        }
        for event in &events {
            if event.token() == WAKER {
                while let Ok(stream) = incoming.try_recv() {
                    let mut stream = mio::net::TcpStream::from_std(stream);
                    let token = mio::Token(connections.len());
                    poll.registry()
                        .register(&mut stream, token, mio::Interest::READABLE)
                        .unwrap();
                    connections.push(Some(Connection {
                        stream,
                        answered: false,
                    }));
                }
                continue;
            }
            let Some(slot) = connections.get_mut(event.token().0) else {
                continue;
            };
            let Some(connection) = slot.as_mut() else {
                continue;
            };
            let mut ended = false;
            loop {
                match connection.stream.read(&mut buffer) {
                    Ok(0) => ended = true,
                    Ok(n) => {
                        if !connection.answered {
                            connection.answered = true;
                            stats.connected.fetch_add(1, Ordering::Relaxed);
                        }
                        sent_at(&buffer[..n], now_micros(), &mut found);
                        if n == buffer.len() {
                            continue;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => ended = true,
                }
                break;
            }
            if ended && let Some(mut connection) = slot.take() {
                let _ = poll.registry().deregister(&mut connection.stream);
                if connection.answered {
                    stats.closed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !found.is_empty() {
            let count = found.len();
            stats.latencies.lock().unwrap().append(&mut found);
            stats.received.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// Appends `(sentAtMicros, latency)` for every message in `chunk`, received at `now`.
fn sent_at(chunk: &[u8], now: u64, found: &mut Vec<(u64, u64)>) {
    let needle = b"\"sentAtMicros\":";
    let mut at = 0;
    while let Some(pos) = chunk[at..].windows(needle.len()).position(|w| w == needle) {
        let start = at + pos + needle.len();
        let end = chunk[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(chunk.len(), |e| start + e);
        if let Some(sent) = std::str::from_utf8(&chunk[start..end])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            found.push((sent, now.saturating_sub(sent)));
        }
        at = end;
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Sends a control request; answers the last line of the response body.
async fn control(server: SocketAddr, query: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let request = format!(
        "POST /bench/publish?{query} HTTP/1.1\r\nhost: bench\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    text.trim_end().lines().last().unwrap_or_default().to_owned()
}

async fn clients(args: &HashMap<String, String>) {
    let server: SocketAddr = get(args, "server", "127.0.0.1:9100".parse().unwrap());
    let connections = get(args, "connections", 1000usize);
    let sources: Vec<std::net::IpAddr> = get(args, "sources", "127.0.0.1".to_owned())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let users = get(args, "users", 0usize);
    let topic = get(args, "topic", "leaderboard.daily".to_owned());
    let secret = get(
        args,
        "secret",
        "bench-secret-of-at-least-thirty-two-bytes".to_owned(),
    );
    let minter = Minter::new(&AuthConfig::hs256(secret)).unwrap();
    let stats = Arc::new(Stats {
        latencies: Mutex::new(Vec::new()),
        received: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<Reader> = (0..get(args, "readers", 1usize).max(1))
        .map(|_| Reader::start(stats.clone(), stop.clone()))
        .collect();
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..connections {
        let source = sources[i % sources.len()];
        let (path, auth) = if users > 0 {
            let user = format!("u{}", i % users);
            let token = minter
                .mint(
                    &user,
                    &[],
                    &[],
                    Duration::from_secs(3600),
                    now_micros() / 1_000_000,
                )
                .unwrap();
            (format!("/v1/stream?topic=user.{user}.social"), Some(token))
        } else {
            (format!("/v1/stream?topic={topic}"), None)
        };
        let reader = readers[i % readers.len()].handle();
        let stats = stats.clone();
        tasks.spawn(async move {
            if let Some(stream) = connect(server, source, path, auth, stats).await {
                reader.add(stream);
            }
        });
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while stats.connected.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed) < connections {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = stats.connected.load(Ordering::Relaxed);
    eprintln!(
        "connected {connected} (failed {}) in {connect_secs:.1}s",
        stats.failed.load(Ordering::Relaxed)
    );
    if get(args, "listen", false) {
        listen(&stats, connections, connected, connect_secs);
        stop_readers(readers, &stop);
        return;
    }
    let hold = get(args, "hold", 0u64);
    if hold > 0 {
        eprintln!("holding for {hold}s");
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }

    let mut result = json!({"connections": connections, "connected": connected, "connectSecs": connect_secs});
    if users == 0 {
        let broadcasts = get(args, "broadcasts", 20usize);
        let mut completions = Vec::new();
        let mut publish_ms = Vec::new();
        for _ in 0..broadcasts {
            stats.latencies.lock().unwrap().clear();
            stats.received.store(0, Ordering::Relaxed);
            let answer = control(server, &format!("topic={topic}&count=1")).await;
            let publish_micros: f64 = answer
                .split(' ')
                .nth(1)
                .and_then(|micros| micros.parse().ok())
                .unwrap_or(f64::NAN);
            publish_ms.push(publish_micros / 1000.0);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while stats.received.load(Ordering::Relaxed) < connected && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut latencies: Vec<u64> = stats.latencies.lock().unwrap().iter().map(|l| l.1).collect();
            latencies.sort_unstable();
            completions.push((
                percentile(&latencies, 1.0),
                percentile(&latencies, 0.99),
                latencies.len(),
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut all: Vec<f64> = completions.iter().map(|c| c.0).collect();
        all.sort_by(f64::total_cmp);
        let mut p99s: Vec<f64> = completions.iter().map(|c| c.1).collect();
        p99s.sort_by(f64::total_cmp);
        result["broadcasts"] = json!(broadcasts);
        result["allReachedMs"] = json!({"median": all[all.len() / 2], "max": all[all.len() - 1],
            "each": completions.iter().map(|c| c.0).collect::<Vec<_>>()});
        result["p99LatencyMs"] = json!({"median": p99s[p99s.len() / 2], "max": p99s[p99s.len() - 1]});
        publish_ms.sort_by(f64::total_cmp);
        result["publishMs"] =
            json!({"median": publish_ms[publish_ms.len() / 2], "max": publish_ms[publish_ms.len() - 1]});
        result["deliveredPerBroadcast"] = json!(completions.iter().map(|c| c.2).min());
    } else {
        let rate = get(args, "rate", 5000u64);
        let secs = get(args, "secs", 10u64);
        stats.latencies.lock().unwrap().clear();
        control(server, &format!("users={users}&rate={rate}&secs={secs}")).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut latencies: Vec<u64> = stats.latencies.lock().unwrap().iter().map(|l| l.1).collect();
        latencies.sort_unstable();
        result["rate"] = json!(rate);
        result["delivered"] = json!(latencies.len());
        result["latencyMs"] = json!({
            "p50": percentile(&latencies, 0.5), "p95": percentile(&latencies, 0.95),
            "p99": percentile(&latencies, 0.99), "max": percentile(&latencies, 1.0)
        });
    }
    result["closed"] = json!(stats.closed.load(Ordering::Relaxed));
    println!("{result}");
    stop_readers(readers, &stop);
}

fn stop_readers(readers: Vec<Reader>, stop: &std::sync::atomic::AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.handle.waker.wake();
        let _ = reader.thread.join();
    }
}

/// `--listen true`: announces the connections, records until a line on stdin (or its end), then prints, per message
/// received (keyed by its `sentAtMicros`), the sorted latencies.
fn listen(stats: &Stats, connections: usize, connected: usize, connect_secs: f64) {
    let failed = stats.failed.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({"event": "connected", "connections": connections, "connected": connected, "failed": failed,
            "connectSecs": connect_secs})
    );
    // Blocks the main thread only: the readers run on threads of their own.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let recorded = std::mem::take(&mut *stats.latencies.lock().unwrap());
    let mut by_message: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (sent, latency) in recorded {
        by_message.entry(sent).or_default().push(latency);
    }
    let messages: Vec<serde_json::Value> = by_message
        .into_iter()
        .map(|(sent, mut latencies)| {
            latencies.sort_unstable();
            json!({"sentAtMicros": sent, "latenciesMicros": latencies})
        })
        .collect();
    println!(
        "{}",
        json!({"event": "report", "connections": connections, "connected": connected, "failed": failed,
            "closed": stats.closed.load(Ordering::Relaxed), "messages": messages})
    );
}
