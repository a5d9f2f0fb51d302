//! The whole system over real backends: the `social-realtime` binary as a `pipeline` process (HTTP ingest, durable
//! embedded bus, operators, Redis live state and delivery history, ClickHouse analytics) and a `delivery` process
//! (SSE node fed through Redis), with Redis and ClickHouse as they run on this machine.
//!
//! 1. Throughput: `--events` generated events posted as NDJSON batches by `--clients` keep-alive clients as fast as
//!    the ingest takes them. Completion times, measured from the first post:
//!    - ingest: every event accepted (`202`);
//!    - operators: a first wave of sentinel shares (one per input partition, with an event time 30 s past every
//!      other event) has its on-arrival notifications in the Redis delivery history, so every partition was read
//!      and the watermark passed every event; a second wave, posted then, is in Redis too, so every output of the
//!      round before was published; then the live-state writer holds nothing unwritten (`state_buffered_keys` 0);
//!    - ClickHouse: `raw_events` holds every event and the first wave.
//! 2. Latency under load, for each of `--rates` (events/s; `half`: half the sustained figure of step 1, a load the
//!    system keeps up with; `max`: as fast as the ingest takes them, probing on while the backlog drains):
//!    background load whose event time follows the wall clock, and `--probes` probes every `--probe-interval-ms`,
//!    each one POST of a `social.share.created` of a probe user and a `referral.link.clicked` on a probe
//!    referrer's code, with the current time as event time. Timed from just before the POST (one monotonic clock,
//!    this process, probes on their own thread):
//!    - event -> Redis: the share confirmation (emitted on arrival) is in the delivery history `P history:{T}`
//!      (polled every millisecond on its own connection);
//!    - event -> SSE: the same message read by a client of the delivery node subscribed to `user.PROBE.social`;
//!    - event -> live state: the probe referrer's `P counters:{user.R.referrals}` counts the click (counters follow
//!      event time: they wait for the watermark, 5 s behind the newest event, and the next 5 s tick).
//!
//! `cargo bench --workspace --bench system` (options after `--`: `--events N` (1,000,000), `--clients N` (8),
//! `--batch N` (1,000), `--partitions N` (4), `--probes N` (400), `--probe-interval-ms N` (50),
//! `--rates half,50000,max`, `--event-rate F` (event-time rate of the throughput workload, default 200/s as in the
//! other benchmarks), `--only throughput|latency`, `--fluvio-endpoint HOST:PORT`: the bus is that Fluvio cluster, with
//! topics of the run's own, instead of the embedded durable bus; the data directory then holds the checkpoints). Without `--bench` (as `cargo test --all-targets` runs it) it
//! does a small run that checks every figure is produced; it prints `SKIPPED` when Redis or ClickHouse is
//! unreachable, unless `REQUIRE_SERVICES` is set. `REDIS_URL` and `CLICKHOUSE_URL` override the defaults
//! (redis://127.0.0.1:6379, http://127.0.0.1:8123); `SERVER_LOG` sets the processes' `RUST_LOG` (default `warn`).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use social_auth::{AuthConfig, Minter};
use social_pipeline::bus::partition::partition_for_key;
use social_pipeline::generate::{Generator, GeneratorConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "system-benchmark-secret-of-at-least-32-bytes";
/// Public topics a background SSE client reads during every phase (as a dashboard would).
const PUBLIC_TOPICS: &str =
    "topic=testimonials.recent&topic=leaderboard.all-time&topic=trending.1h&topic=leaderboard.daily";
/// Load before the first probe.
const LEAD: Duration = Duration::from_secs(1);
/// Live-state latency counts only probes sent at least this long before the load ends: later ones wait for the
/// idle flush (2 s without input), not for the watermark that load moves.
const WATERMARK_TAIL: Duration = Duration::from_secs(12);

#[derive(Clone, Copy, Debug)]
enum Rate {
    Fixed(f64),
    Max,
    /// Half the sustained figure of the throughput run.
    Half,
}

#[derive(Clone, Debug)]
struct Options {
    bench: bool,
    events: usize,
    clients: usize,
    batch: usize,
    partitions: u32,
    probes: usize,
    probe_interval: Duration,
    rates: Vec<Rate>,
    event_rate: f64,
    only: Option<String>,
    /// The bus: this Fluvio cluster (SC address) instead of the embedded durable bus.
    fluvio_endpoint: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|arg| arg == "--bench");
    let mut options = Options {
        bench,
        events: 1_000_000,
        clients: 8,
        batch: 1000,
        partitions: 4,
        probes: 400,
        probe_interval: Duration::from_millis(50),
        rates: vec![Rate::Half, Rate::Fixed(50_000.0), Rate::Max],
        event_rate: 200.0,
        only: None,
        fluvio_endpoint: None,
    };
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--events" => options.events = value.parse().unwrap(),
            "--clients" => options.clients = value.parse().unwrap(),
            "--batch" => options.batch = value.parse().unwrap(),
            "--partitions" => options.partitions = value.parse().unwrap(),
            "--probes" => options.probes = value.parse().unwrap(),
            "--probe-interval-ms" => options.probe_interval = Duration::from_millis(value.parse().unwrap()),
            "--event-rate" => options.event_rate = value.parse().unwrap(),
            "--only" => options.only = Some(value),
            "--fluvio-endpoint" => options.fluvio_endpoint = Some(value),
            "--rates" => {
                options.rates = value
                    .split(',')
                    .filter(|r| !r.is_empty() && *r != "none")
                    .map(|r| match r {
                        "max" => Rate::Max,
                        "half" => Rate::Half,
                        number => Rate::Fixed(number.parse().unwrap()),
                    })
                    .collect();
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    if !bench {
        // Smoke run (`cargo test --all-targets`): small, but every stage and every figure.
        options.events = options.events.min(5_000);
        options.clients = options.clients.min(2);
        options.probes = options.probes.min(20);
        options.rates = vec![Rate::Fixed(2_500.0)];
    }
    options
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn clickhouse_url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".to_string())
}

fn nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Backends: reachability and cleanup (synchronous, so that it also runs while a panic unwinds).

/// A minimal HTTP/1.0 request (no chunked replies) to the host of `base`: status and body.
fn http_sync(base: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let host = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {host}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A blocking connection to Redis (2 s to connect).
fn redis_connection() -> Result<redis::Connection, String> {
    let redis = redis_url();
    let client = redis::Client::open(redis.as_str()).map_err(|e| format!("Redis URL {redis}: {e}"))?;
    client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| format!("Redis at {redis} unreachable: {e}"))
}

fn services_reachable() -> Result<(), String> {
    let redis = redis_url();
    let mut conn = redis_connection()?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map_err(|e| format!("Redis at {redis} does not answer PING: {e}"))?;
    let clickhouse = clickhouse_url();
    match http_sync(&clickhouse, "GET", "/ping", "") {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!(
            "ClickHouse at {clickhouse}: /ping answered {status} {body}"
        )),
        Err(e) => Err(format!("ClickHouse at {clickhouse} unreachable: {e}")),
    }
}

/// The keys in Redis's current database before the run (`DBSIZE`).
fn redis_keys() -> Option<u64> {
    let mut conn = redis_connection().ok()?;
    redis::cmd("DBSIZE").query::<u64>(&mut conn).ok()
}

/// Redis prefixes and ClickHouse databases of this run, deleted when it ends (also on a panic).
#[derive(Default)]
struct Cleanup {
    prefixes: Mutex<Vec<String>>,
    databases: Mutex<Vec<String>>,
}

impl Cleanup {
    fn redis_prefix(&self, prefix: &str) {
        let Ok(mut conn) = redis_connection() else {
            return;
        };
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(5000)
                .query(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                deleted += redis::cmd("DEL").arg(&keys).query::<u64>(&mut conn).unwrap_or(0);
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        println!("cleanup: deleted {deleted} Redis keys under {prefix}");
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for prefix in self.prefixes.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            self.redis_prefix(&prefix);
        }
        for database in self.databases.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let result = http_sync(
                &clickhouse_url(),
                "POST",
                "/",
                &format!("DROP DATABASE IF EXISTS {database}"),
            );
            println!(
                "cleanup: DROP DATABASE {database}: {:?}",
                result.map(|(status, _)| status)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Processes.

/// The binary with `args` and a port-0 listen address; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[String]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_social-realtime"));
        command
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("JWT_SECRET", SECRET)
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Only what the arguments say: nothing from the environment of the suite.
        for name in [
            "REDIS_URL",
            "REDIS_PREFIX",
            "CLICKHOUSE_URL",
            "CLICKHOUSE_DATABASE",
            "FLUVIO_ENDPOINT",
            "FLUVIO_TOPIC_PREFIX",
            "FLUVIO_RETENTION_SECS",
            "FLUVIO_REPLICATION",
            "DATA_DIR",
            "DEMO",
            "INPUT_PARTITIONS",
            "IDLE_FLUSH_MS",
            "CHECKPOINT_INTERVAL_MS",
        ] {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("the server exited before listening").unwrap();
            if let Some(url) = line.strip_prefix("listening on http://") {
                break url.parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One pipeline and one delivery node over their own Redis prefix and ClickHouse database.
struct Deployment {
    pipeline: Server,
    delivery: Server,
    prefix: String,
    database: String,
    _data: tempfile::TempDir,
}

impl Deployment {
    async fn start(phase: &str, options: &Options, cleanup: &Cleanup) -> Self {
        let tag = format!("{}_{}", std::process::id(), nanos() % 1_000_000_000_000);
        let prefix = format!("bench:{tag}:{phase}:");
        let database = format!("bench_system_{tag}_{phase}");
        cleanup.prefixes.lock().unwrap().push(prefix.clone());
        cleanup.databases.lock().unwrap().push(database.clone());
        let data = tempfile::tempdir().unwrap();
        let redis = redis_url();
        let pipeline_args: Vec<String> = [
            "pipeline",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--partitions",
            &options.partitions.to_string(),
            "--redis-url",
            &redis,
            "--redis-prefix",
            &prefix,
            "--clickhouse-url",
            &clickhouse_url(),
            "--clickhouse-database",
            &database,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut pipeline_args = pipeline_args;
        if let Some(endpoint) = &options.fluvio_endpoint {
            // Topics of this run only (Fluvio names: lowercase letters, digits and dashes).
            let topic_prefix = format!("bench-{}-{phase}-", tag.replace('_', "-"));
            pipeline_args.extend([
                "--fluvio-endpoint".to_string(),
                endpoint.clone(),
                "--fluvio-topic-prefix".to_string(),
                topic_prefix,
            ]);
        }
        let delivery_args: Vec<String> = ["delivery", "--redis-url", &redis, "--redis-prefix", &prefix]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (pipeline, delivery) =
            tokio::task::block_in_place(|| (Server::start(&pipeline_args), Server::start(&delivery_args)));
        let http = reqwest::Client::new();
        for server in [&pipeline, &delivery] {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ready = http
                    .get(server.url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200);
                if ready {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never became ready",
                    server.url("/readyz")
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Self {
            pipeline,
            delivery,
            prefix,
            database,
            _data: data,
        }
    }
}

fn token(sub: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    Minter::new(&AuthConfig::hs256(SECRET))
        .unwrap()
        .mint(sub, &roles, &[], Duration::from_secs(7200), now_unix())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// CPU accounting: /proc for the processes, INFO for Redis.

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn process_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

/// The ClickHouse server process: the one of `scripts/services.sh` when several run.
fn clickhouse_pid() -> Option<u32> {
    let dir =
        std::env::var("CLICKHOUSE_DIR").unwrap_or_else(|_| "/var/tmp/social-realtime-clickhouse".into());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("clickhouse") {
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            found.push((pid, cmdline.contains(&dir)));
        }
    }
    found
        .iter()
        .find(|(_, ours)| *ours)
        .or_else(|| (found.len() == 1).then(|| &found[0]))
        .map(|(pid, _)| *pid)
}

async fn redis_cpu(conn: &mut redis::aio::MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn)
        .await
        .unwrap_or_default();
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| *name == "used_cpu_sys" || *name == "used_cpu_user")
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

#[derive(Clone, Copy, Default)]
struct Cpu {
    pipeline: f64,
    delivery: f64,
    redis: f64,
    clickhouse: f64,
    bench: f64,
}

async fn cpu_now(deployment: &Deployment, conn: &mut redis::aio::MultiplexedConnection) -> Cpu {
    Cpu {
        pipeline: process_cpu(deployment.pipeline.pid()),
        delivery: process_cpu(deployment.delivery.pid()),
        redis: redis_cpu(conn).await,
        clickhouse: clickhouse_pid().map_or(0.0, process_cpu),
        bench: process_cpu(std::process::id()),
    }
}

fn cpu_line(before: Cpu, after: Cpu, wall: f64) -> String {
    let part =
        |name: &str, a: f64, b: f64| format!("{name} {:.1} s ({:.0} %)", b - a, (b - a) / wall * 100.0);
    format!(
        "CPU over {wall:.1} s (100 % = one core): {}, {}, {}, {}, {}",
        part("pipeline", before.pipeline, after.pipeline),
        part("delivery", before.delivery, after.delivery),
        part("redis", before.redis, after.redis),
        part("clickhouse", before.clickhouse, after.clickhouse),
        part("bench clients", before.bench, after.bench),
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Reading progress.

async fn clickhouse_count(http: &reqwest::Client, database: &str, sql: &str) -> Option<u64> {
    let response = http
        .post(format!("{}/?database={database}", clickhouse_url()))
        .body(sql.to_string())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()?.trim().parse().ok()
}

/// The sum of every series of `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let series = line.split([' ', '{']).next().unwrap_or_default();
        if series == name {
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            sum = Some(sum.unwrap_or(0.0) + value);
        }
    }
    sum
}

async fn metrics_text(http: &reqwest::Client, server: &Server) -> String {
    match http.get(server.url("/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn status(http: &reqwest::Client, pipeline: &Server) -> serde_json::Value {
    match http.get(pipeline.url("/v1/status")).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Prints a progress line every `every` until `stop`.
async fn monitor(
    pipeline_url: String,
    metrics_url: String,
    database: String,
    started: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let status: serde_json::Value = match http.get(&pipeline_url).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let metrics = match http.get(&metrics_url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let clickhouse = clickhouse_count(&http, &database, "SELECT count() FROM raw_events").await;
        println!(
            "  {:6.1} s: accepted {:>9}, derived {:>9}, published to Redis {:>9}, live-state keys unwritten {:>6}, \
             ClickHouse {:>9}, load {}",
            started.elapsed().as_secs_f64(),
            status["ingest"]["accepted"].as_u64().unwrap_or(0),
            status["derivedTopic"]["total"].as_u64().unwrap_or(0),
            metric_sum(&metrics, "delivery_messages_published_total").unwrap_or(0.0),
            metric_sum(&metrics, "state_buffered_keys").unwrap_or(0.0),
            clickhouse.unwrap_or(0),
            load_average(),
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Load.

/// NDJSON bodies of `batch` events each, and the event time (ms) of the first event of each.
struct Workload {
    bodies: Vec<Bytes>,
    first_times: Vec<i64>,
    last_time: DateTime<Utc>,
    events: usize,
}

fn event_time(json: &[u8]) -> DateTime<Utc> {
    let value: serde_json::Value = serde_json::from_slice(json).unwrap();
    DateTime::parse_from_rfc3339(value["time"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn workload(config: GeneratorConfig, events: usize, batch: usize) -> Workload {
    let mut generator = Generator::new(config);
    let mut bodies = Vec::with_capacity(events.div_ceil(batch));
    let mut first_times = Vec::with_capacity(events.div_ceil(batch));
    let mut last = Vec::new();
    for b in 0..events.div_ceil(batch) {
        let count = batch.min(events - b * batch);
        let mut body = Vec::with_capacity(count * 400);
        for (i, event) in generator.by_ref().take(count).enumerate() {
            if i == 0 {
                first_times.push(event_time(&event.json).timestamp_millis());
            }
            body.extend_from_slice(&event.json);
            body.push(b'\n');
            last = event.json;
        }
        bodies.push(Bytes::from(body));
    }
    Workload {
        bodies,
        first_times,
        last_time: event_time(&last),
        events,
    }
}

/// Posts one NDJSON body, retrying while the ingest pushes back (`503`, `429`). Returns the retries.
async fn post_ndjson(client: &reqwest::Client, url: &str, token: &str, body: Bytes) -> u64 {
    let mut retries = 0;
    loop {
        let response = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => return retries,
            503 | 429 => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            status => panic!(
                "POST {url}: {status} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
}

struct LoadReport {
    elapsed: Duration,
    retries: u64,
    /// Event time of each batch minus the wall clock when it was posted, in ms.
    skews: Vec<i64>,
}

/// Posts every body with `clients` concurrent clients; batch `k` not before `started + k * batch / rate` when a
/// rate is given.
async fn post_all(
    url: &str,
    token: &str,
    workload: Arc<Workload>,
    clients: usize,
    batch: usize,
    rate: Option<f64>,
    started: Instant,
) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, retries, workload) = (next.clone(), retries.clone(), workload.clone());
        let (url, token) = (url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut skews = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = workload.bodies.get(index) else {
                    return skews;
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(index as f64 * batch as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let now_ms = Utc::now().timestamp_millis();
                skews.push(workload.first_times[index] - now_ms);
                let r = post_ndjson(&client, &url, &token, body.clone()).await;
                retries.fetch_add(r, Ordering::Relaxed);
            }
        }));
    }
    let mut skews = Vec::new();
    for task in tasks {
        skews.extend(task.await.unwrap());
    }
    LoadReport {
        elapsed: started.elapsed(),
        retries: retries.load(Ordering::Relaxed),
        skews,
    }
}

fn share_created(id: &str, share: &str, user: &str, time: DateTime<Utc>) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/bench/system",
        "type": "social.share.created",
        "time": rfc3339(time),
        "data": {"shareId": share, "userId": user, "contentType": "project", "contentId": "bench-content",
                 "platform": "twitter"}
    })
    .to_string()
}

fn click(id: &str, code: &str, ip: &str, time: DateTime<Utc>) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/bench/system",
        "type": "referral.link.clicked",
        "time": rfc3339(time),
        "data": {"referralId": code, "sourceIp": ip, "userAgent": "bench/1.0"}
    })
    .to_string()
}

fn code_generated(id: &str, code: &str, user: &str, time: DateTime<Utc>) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/bench/system",
        "type": "referral.code.generated",
        "time": rfc3339(time),
        "data": {"codeId": code, "userId": user, "programId": "program-standard"}
    })
    .to_string()
}

/// Counts SSE messages of a stream until aborted.
fn count_stream(url: String, count: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(response) = reqwest::Client::new().get(&url).send().await else {
            return;
        };
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let mut stream = response.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            let messages = chunk.windows(5).filter(|w| w == b"data:").count();
            count.fetch_add(messages as u64, Ordering::Relaxed);
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Throughput.

/// Figures of the throughput run that the latency runs use.
#[derive(Clone, Copy)]
struct Throughput {
    /// End to end.
    sustained: f64,
    /// Ingest alone (the posting rate at `max`).
    ingest: f64,
}

async fn throughput(options: &Options, cleanup: &Cleanup) -> Throughput {
    let load_before = load_average();
    let generated = Instant::now();
    let workload = Arc::new(workload(
        GeneratorConfig {
            seed: 42,
            events_per_second: options.event_rate,
            ..GeneratorConfig::default()
        },
        options.events,
        options.batch,
    ));
    let bytes: usize = workload.bodies.iter().map(Bytes::len).sum();
    println!(
        "throughput: {} events generated in {:.1} s ({:.0} bytes each on average), event time {:.0} events/s",
        thousands(options.events as f64),
        generated.elapsed().as_secs_f64(),
        bytes as f64 / options.events as f64,
        options.event_rate
    );
    let deployment = Deployment::start("tput", options, cleanup).await;
    let http = reqwest::Client::new();
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    // Sentinels: one share per partition, after every other event in event time (by more than the 5 s bound).
    // The first wave, once read, moves the watermark past every event; the second, posted when the first is
    // visible, is published after every output of the round that read the first.
    let sentinel_time = workload.last_time + chrono::Duration::seconds(30);
    let sentinels = |wave: u32| -> Vec<String> {
        (0..options.partitions)
            .map(|partition| {
                (0..)
                    .map(|j| format!("bench-sentinel-{wave}-{partition}-{j}"))
                    .find(|user| partition_for_key(user.as_bytes(), options.partitions) == partition)
                    .unwrap()
            })
            .collect()
    };
    let waves = [sentinels(1), sentinels(2)];
    let wave_body = |users: &[String], time: DateTime<Utc>| -> Bytes {
        let body: String = users
            .iter()
            .map(|user| {
                format!(
                    "{}\n",
                    share_created(&format!("{user}-share"), &format!("{user}-share"), user, time)
                )
            })
            .collect();
        Bytes::from(body)
    };
    let wave_keys = |users: &[String]| -> Vec<String> {
        users
            .iter()
            .map(|user| format!("{}meta:{{user.{user}.social}}", deployment.prefix))
            .collect()
    };
    // ClickHouse is done with the events and the first wave (the second is posted when the operators are done).
    let clickhouse_expected = (workload.events + options.partitions as usize) as u64;
    let expected = clickhouse_expected + u64::from(options.partitions);

    let public_messages = Arc::new(AtomicU64::new(0));
    let public = count_stream(
        deployment.delivery.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        public_messages.clone(),
    );
    let service = token("bench-producer", &["service"]);
    let url = deployment.pipeline.url("/v1/events");
    let cpu_before = cpu_now(&deployment, &mut conn).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let progress = tokio::spawn(monitor(
        deployment.pipeline.url("/v1/status"),
        deployment.pipeline.url("/metrics"),
        deployment.database.clone(),
        started,
        Duration::from_secs(if options.bench { 5 } else { 1 }),
        stop.clone(),
    ));
    let load = post_all(
        &url,
        &service,
        workload.clone(),
        options.clients,
        options.batch,
        None,
        started,
    )
    .await;
    let ingest_done = load.elapsed;
    let sentinel_client = reqwest::Client::new();
    post_ndjson(
        &sentinel_client,
        &url,
        &service,
        wave_body(&waves[0], sentinel_time),
    )
    .await;

    // Completion of each stage.
    let timeout = Duration::from_secs(if options.bench { 1800 } else { 300 });
    let mut operators_read = None;
    let mut operators_published = None;
    let mut operators_done = None;
    let mut clickhouse_done = None;
    let mut last_clickhouse_poll = Instant::now() - Duration::from_secs(1);
    while operators_done.is_none() || clickhouse_done.is_none() {
        assert!(
            started.elapsed() < timeout,
            "not done after {timeout:?}: operators read everything {operators_read:?}, published \
             {operators_published:?}, live state written {operators_done:?}, ClickHouse {clickhouse_done:?}"
        );
        if operators_published.is_none() {
            let wave = usize::from(operators_read.is_some());
            let mut all = true;
            for key in wave_keys(&waves[wave]) {
                let last: Option<u64> = redis::cmd("HGET")
                    .arg(&key)
                    .arg("last")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or(None);
                all &= last.unwrap_or(0) >= 1;
            }
            if all && wave == 0 {
                operators_read = Some(started.elapsed());
                let time = sentinel_time + chrono::Duration::seconds(1);
                post_ndjson(&sentinel_client, &url, &service, wave_body(&waves[1], time)).await;
            } else if all {
                operators_published = Some(started.elapsed());
            }
        } else if operators_done.is_none() {
            let metrics = metrics_text(&http, &deployment.pipeline).await;
            if metric_sum(&metrics, "state_buffered_keys") == Some(0.0) {
                operators_done = Some(started.elapsed());
            }
        }
        if clickhouse_done.is_none() && last_clickhouse_poll.elapsed() >= Duration::from_millis(100) {
            last_clickhouse_poll = Instant::now();
            let count = clickhouse_count(&http, &deployment.database, "SELECT count() FROM raw_events").await;
            if count.unwrap_or(0) >= clickhouse_expected {
                clickhouse_done = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = operators_done.unwrap().max(clickhouse_done.unwrap());
    let cpu_after = cpu_now(&deployment, &mut conn).await;
    stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    public.abort();

    // Checks: every event accepted once, in ClickHouse once, live state and public messages present.
    let status = status(&http, &deployment.pipeline).await;
    let accepted = status["ingest"]["accepted"].as_u64().unwrap_or(0);
    assert_eq!(accepted, expected, "accepted events: {status}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let distinct = loop {
        let distinct = clickhouse_count(
            &http,
            &deployment.database,
            "SELECT count() FROM raw_events FINAL",
        )
        .await;
        if distinct == Some(expected) || Instant::now() > deadline {
            break distinct;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        distinct,
        Some(expected),
        "distinct events in ClickHouse raw_events"
    );
    let metrics = metrics_text(&http, &deployment.pipeline).await;
    let derived = status["derivedTopic"]["total"].as_u64().unwrap_or(0);
    let published = metric_sum(&metrics, "delivery_messages_published_total").unwrap_or(0.0);
    let state_keys: u64 = {
        let mut cursor = 0u64;
        let mut count = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}state:*", deployment.prefix))
                .arg("COUNT")
                .arg(5000)
                .query_async(&mut conn)
                .await
                .unwrap();
            count += keys.len() as u64;
            cursor = next;
            if cursor == 0 {
                break count;
            }
        }
    };
    assert!(state_keys > 0, "no live state in Redis");
    assert!(derived > 0 && published > 0.0, "no derived messages");
    let per_second = |d: Duration| options.events as f64 / d.as_secs_f64();
    println!(
        "throughput: {} events ({:.1} MB) + 2 x {} sentinels, {} clients, batches of {}, {} partitions, load before {}, \
         after {}",
        thousands(options.events as f64),
        bytes as f64 / 1e6,
        options.partitions,
        options.clients,
        options.batch,
        options.partitions,
        load_before,
        load_average()
    );
    println!(
        "  ingest accepted everything  {:7.2} s  {:>9} events/s  ({} retries after 503/429)",
        ingest_done.as_secs_f64(),
        thousands(per_second(ingest_done)),
        load.retries
    );
    println!(
        "  operators read everything   {:7.2} s  {:>9} events/s  (first sentinels' notifications in Redis)",
        operators_read.unwrap().as_secs_f64(),
        thousands(per_second(operators_read.unwrap()))
    );
    println!(
        "  every output published      {:7.2} s  {:>9} events/s  (second sentinels' notifications in Redis)",
        operators_published.unwrap().as_secs_f64(),
        thousands(per_second(operators_published.unwrap()))
    );
    println!(
        "  operators + live state done {:7.2} s  {:>9} events/s",
        operators_done.unwrap().as_secs_f64(),
        thousands(per_second(operators_done.unwrap()))
    );
    println!(
        "  ClickHouse raw_events full  {:7.2} s  {:>9} events/s",
        clickhouse_done.unwrap().as_secs_f64(),
        thousands(per_second(clickhouse_done.unwrap()))
    );
    println!(
        "  SUSTAINED (all three)       {:7.2} s  {:>9} events/s  (aim 100,000: {})",
        total.as_secs_f64(),
        thousands(per_second(total)),
        if per_second(total) >= 100_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  {} derived messages ({:.2} per event), {} published to the Redis delivery history, {} live-state \
         topics in Redis, {} public messages read by one SSE client",
        thousands(derived as f64),
        derived as f64 / expected as f64,
        thousands(published),
        thousands(state_keys as f64),
        thousands(public_messages.load(Ordering::Relaxed) as f64)
    );
    println!("  {}", cpu_line(cpu_before, cpu_after, total.as_secs_f64()));
    drop(deployment);
    Throughput {
        sustained: per_second(total),
        ingest: per_second(ingest_done),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Latency under load.

/// What the probe side saw, by probe number.
#[derive(Default)]
struct Seen {
    sent: Vec<Option<Instant>>,
    posted: Vec<Option<Duration>>,
    history: Vec<Option<Instant>>,
    sse: Vec<Option<Instant>>,
    live: Vec<Option<Instant>>,
}

struct ProbeSetup {
    ingest_url: String,
    stream_url: String,
    history_key: String,
    counters_key: String,
    tag: String,
    user: String,
    code: String,
    probes: usize,
    interval: Duration,
    /// Whether probing goes on after the load was posted (while the pipeline works through its backlog).
    probe_after_load: bool,
    /// Event time of the last background event.
    last_background: DateTime<Utc>,
}

fn probe_index(tag: &str, share_id: &str) -> Option<usize> {
    share_id.strip_prefix(tag)?.strip_prefix("-share-")?.parse().ok()
}

/// The probe side, on its own thread and runtime so that the load's tasks never delay its clocks. Signals `ready`
/// once its SSE stream is open, starts probing at the `Instant` sent on `go`, stops probing when `load_end` is
/// set, then waits for every probe's effects.
async fn probe_side(
    setup: ProbeSetup,
    ready: tokio::sync::oneshot::Sender<()>,
    go: tokio::sync::oneshot::Receiver<Instant>,
    load_end: Arc<Mutex<Option<Instant>>>,
    smoke: bool,
) -> Seen {
    let seen = Arc::new(Mutex::new(Seen {
        sent: vec![None; setup.probes],
        posted: vec![None; setup.probes],
        history: vec![None; setup.probes],
        sse: vec![None; setup.probes],
        live: vec![None; setup.probes],
    }));
    let finished = Arc::new(AtomicBool::new(false));

    // SSE client of the probe user.
    let response = reqwest::Client::new()
        .get(&setup.stream_url)
        .bearer_auth(token(&setup.user, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{}", setup.stream_url);
    let sse_task = {
        let (seen, tag) = (seen.clone(), setup.tag.clone());
        tokio::spawn(async move {
            let mut stream = response.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                let now = Instant::now();
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let Some(data) = line.strip_prefix(b"data:") else {
                        continue;
                    };
                    let Ok(message) = serde_json::from_slice::<serde_json::Value>(data) else {
                        continue;
                    };
                    let share = message["data"]["shareId"].as_str().unwrap_or_default();
                    if let Some(k) = probe_index(&tag, share) {
                        let mut seen = seen.lock().unwrap();
                        if let Some(slot @ None) = seen.sse.get_mut(k) {
                            *slot = Some(now);
                        }
                    }
                }
            }
        })
    };

    // Redis: the delivery history of the probe topic (every millisecond), the referrer's counters (every 2 ms).
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let history_task = {
        let (seen, tag, key, finished) = (
            seen.clone(),
            setup.tag.clone(),
            setup.history_key.clone(),
            finished.clone(),
        );
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        tokio::spawn(async move {
            let mut from = "-".to_string();
            while !finished.load(Ordering::Relaxed) {
                let reply: redis::RedisResult<redis::Value> = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(&from)
                    .arg("+")
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await;
                let now = Instant::now();
                if let Ok(redis::Value::Array(entries)) = reply {
                    for entry in entries {
                        let redis::Value::Array(parts) = entry else {
                            continue;
                        };
                        let [redis::Value::BulkString(id), redis::Value::Array(fields)] = parts.as_slice()
                        else {
                            continue;
                        };
                        from = format!("({}", String::from_utf8_lossy(id));
                        for pair in fields.chunks(2) {
                            let [redis::Value::BulkString(name), redis::Value::BulkString(value)] = pair
                            else {
                                continue;
                            };
                            if name.as_slice() != b"d" {
                                continue;
                            }
                            let message: serde_json::Value =
                                serde_json::from_slice(value).unwrap_or_default();
                            let share = message["data"]["shareId"].as_str().unwrap_or_default();
                            if let Some(k) = probe_index(&tag, share) {
                                let mut seen = seen.lock().unwrap();
                                if let Some(slot @ None) = seen.history.get_mut(k) {
                                    *slot = Some(now);
                                }
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let live_task = {
        let (seen, key, finished) = (seen.clone(), setup.counters_key.clone(), finished.clone());
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        tokio::spawn(async move {
            while !finished.load(Ordering::Relaxed) {
                let reply: redis::RedisResult<Vec<Option<u64>>> = redis::cmd("HMGET")
                    .arg(&key)
                    .arg("clicks")
                    .arg("flaggedClicks")
                    .query_async(&mut conn)
                    .await;
                let now = Instant::now();
                if let Ok(counts) = reply {
                    let counted = counts.iter().map(|c| c.unwrap_or(0)).sum::<u64>() as usize;
                    let mut seen = seen.lock().unwrap();
                    for slot in seen.live.iter_mut().take(counted).filter(|s| s.is_none()) {
                        *slot = Some(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let _ = ready.send(());

    // Probes: one POST each, a share of the probe user and a click on the probe referrer's code.
    let started = go.await.unwrap();
    let http = reqwest::Client::new();
    let service = token("bench-prober", &["service"]);
    let mut sent = 0;
    for k in 0..setup.probes {
        tokio::time::sleep_until((started + LEAD + setup.interval * k as u32).into()).await;
        if !setup.probe_after_load && load_end.lock().unwrap().is_some() {
            break;
        }
        let now = Utc::now();
        let body = format!(
            "{}\n{}\n",
            share_created(
                &format!("{}-probe-{k}", setup.tag),
                &format!("{}-share-{k}", setup.tag),
                &setup.user,
                now
            ),
            click(
                &format!("{}-click-{k}", setup.tag),
                &setup.code,
                &format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255),
                now
            ),
        );
        let before = Instant::now();
        post_ndjson(&http, &setup.ingest_url, &service, Bytes::from(body)).await;
        let mut seen = seen.lock().unwrap();
        seen.sent[k] = Some(before);
        seen.posted[k] = Some(before.elapsed());
        sent = k + 1;
    }
    // A closing event well past every probe and background event in event time: the watermark then passes the
    // last probes too (the counters of a click wait for the next tick), whatever the load did.
    let closing = Utc::now().max(setup.last_background) + chrono::Duration::seconds(12);
    let closer = format!("{}-closer", setup.tag);
    let body = format!("{}\n", share_created(&closer, &closer, &closer, closing));
    post_ndjson(&http, &setup.ingest_url, &service, Bytes::from(body)).await;

    // Every probe's effects, or a timeout.
    let deadline = Instant::now() + Duration::from_secs(if smoke { 120 } else { 600 });
    loop {
        let done = {
            let seen = seen.lock().unwrap();
            (0..sent).all(|k| seen.history[k].is_some() && seen.sse[k].is_some() && seen.live[k].is_some())
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    finished.store(true, Ordering::Relaxed);
    sse_task.abort();
    let _ = history_task.await;
    let _ = live_task.await;
    let mut seen = std::mem::take(&mut *seen.lock().unwrap());
    for list in [&mut seen.history, &mut seen.sse, &mut seen.live] {
        list.truncate(sent);
    }
    seen.sent.truncate(sent);
    seen.posted.truncate(sent);
    seen
}

/// p50, p95, p99 and max of `samples` (ms), nearest rank.
fn percentiles(samples: &mut [f64]) -> String {
    if samples.is_empty() {
        return "n/a".into();
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    format!(
        "p50 {:8.1}  p95 {:8.1}  p99 {:8.1}  max {:8.1} ms",
        rank(0.50),
        rank(0.95),
        rank(0.99),
        samples[samples.len() - 1]
    )
}

fn p99(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted
        .get(((0.99 * sorted.len() as f64).ceil() as usize).max(1) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

async fn latency(
    options: &Options,
    rate: Rate,
    index: usize,
    measured: Option<Throughput>,
    cleanup: &Cleanup,
) {
    let (name, offered, event_rate) = match rate {
        Rate::Fixed(r) => (format!("{} events/s", thousands(r)), Some(r), r),
        // Event time at the rate the ingest took events in the throughput run.
        Rate::Max => (
            "max rate".to_string(),
            None,
            measured.map_or(100_000.0, |m| m.ingest),
        ),
        Rate::Half => {
            let r = measured.map_or(2_000.0, |m| m.sustained / 2.0);
            (
                format!("{} events/s (half the sustained figure)", thousands(r)),
                Some(r),
                r,
            )
        }
    };
    let probe_span = LEAD + options.probe_interval * options.probes as u32;
    // Load after the last probe: long enough for its live-state effect to come from the load's watermark (the
    // smoke run does not measure that one).
    let load_tail = if options.bench {
        WATERMARK_TAIL
    } else {
        Duration::from_millis(500)
    };
    let events = match offered {
        Some(r) => ((probe_span + load_tail).as_secs_f64() * r) as usize,
        None => options.events,
    };
    // Live-state latency is measured at fixed rates, where event time follows the wall clock.
    let live_measured = options.bench && offered.is_some();

    // Background events whose event time follows the wall clock from `start` on: generated ahead, with `start`
    // set far enough in the future for the generation to finish first.
    let sample = Instant::now();
    let _ = Generator::new(GeneratorConfig::with_seed(1)).take(20_000).count();
    let per_event = sample.elapsed().as_secs_f64() / 20_000.0;
    let start_wall = Utc::now()
        + chrono::Duration::milliseconds(((per_event * events as f64 * 2.0 + 1.0) * 1000.0) as i64 + 2000);
    let workload = Arc::new(workload(
        GeneratorConfig {
            seed: 100 + index as u64,
            start_time: start_wall,
            events_per_second: event_rate,
            ..GeneratorConfig::default()
        },
        events,
        options.batch,
    ));
    let deployment = Deployment::start(&format!("lat{index}"), options, cleanup).await;
    let tag = format!("bench-{}-{index}", nanos() % 1_000_000_000);
    let user = format!("{tag}-user");
    let referrer = format!("{tag}-referrer");
    let code = format!("{tag}-code");
    let service = token("bench-producer", &["service"]);
    let ingest_url = deployment.pipeline.url("/v1/events");
    // The probe referrer's code, before every probe in event time.
    post_ndjson(
        &reqwest::Client::new(),
        &ingest_url,
        &service,
        Bytes::from(format!(
            "{}\n",
            code_generated(
                &format!("{tag}-code"),
                &code,
                &referrer,
                start_wall - chrono::Duration::seconds(1)
            )
        )),
    )
    .await;

    let setup = ProbeSetup {
        ingest_url: ingest_url.clone(),
        stream_url: deployment
            .delivery
            .url(&format!("/v1/stream?topic=user.{user}.social")),
        history_key: format!("{}history:{{user.{user}.social}}", deployment.prefix),
        counters_key: format!("{}counters:{{user.{referrer}.referrals}}", deployment.prefix),
        tag: tag.clone(),
        user,
        code,
        probes: options.probes,
        interval: options.probe_interval,
        probe_after_load: offered.is_none(),
        last_background: workload.last_time,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    let load_end: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let smoke = !options.bench;
    let probe_thread = {
        let load_end = load_end.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(probe_side(setup, ready_tx, go_rx, load_end, smoke))
        })
    };
    ready_rx.await.unwrap();
    let public_messages = Arc::new(AtomicU64::new(0));
    let public = count_stream(
        deployment.delivery.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        public_messages.clone(),
    );

    // Start at `start_wall`, so that event time and wall clock agree.
    let wait = (start_wall - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let load_before = load_average();
    let cpu_before = cpu_now(&deployment, &mut conn).await;
    let started = Instant::now();
    let _ = go_tx.send(started);
    let stop = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(monitor(
        deployment.pipeline.url("/v1/status"),
        deployment.pipeline.url("/metrics"),
        deployment.database.clone(),
        started,
        Duration::from_secs(if options.bench { 5 } else { 1 }),
        stop.clone(),
    ));
    let load = post_all(
        &ingest_url,
        &service,
        workload.clone(),
        options.clients,
        options.batch,
        offered,
        started,
    )
    .await;
    let ended = Instant::now();
    *load_end.lock().unwrap() = Some(ended);
    let load_after = load_average();
    let cpu_after = cpu_now(&deployment, &mut conn).await;
    let seen = tokio::task::spawn_blocking(move || probe_thread.join().unwrap())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    public.abort();

    let sent = seen.sent.len();
    let mut history = Vec::new();
    let mut sse = Vec::new();
    let mut live = Vec::new();
    let mut posted = Vec::new();
    let mut live_eligible = 0;
    for k in 0..sent {
        let Some(at) = seen.sent[k] else { continue };
        let ms = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(at).as_secs_f64() * 1000.0);
        history.extend(ms(seen.history[k]));
        sse.extend(ms(seen.sse[k]));
        posted.extend(seen.posted[k].map(|d| d.as_secs_f64() * 1000.0));
        if live_measured && at + WATERMARK_TAIL <= ended {
            live_eligible += 1;
            live.extend(ms(seen.live[k]));
        }
    }
    let live_complete = seen.live.iter().filter(|t| t.is_some()).count();
    let mean_skew = load.skews.iter().sum::<i64>() as f64 / load.skews.len().max(1) as f64;
    println!(
        "latency at {name}: {} background events posted in {:.1} s ({} events/s achieved, {} retries), event \
         time - wall clock at posting {:+.0} ms on average; {} probes every {} ms; load {} -> {}",
        thousands(events as f64),
        load.elapsed.as_secs_f64(),
        thousands(events as f64 / load.elapsed.as_secs_f64()),
        load.retries,
        mean_skew,
        sent,
        options.probe_interval.as_millis(),
        load_before,
        load_after,
    );
    println!(
        "  event -> Redis history      {}  ({}/{sent})",
        percentiles(&mut history.clone()),
        history.len()
    );
    println!(
        "  event -> SSE client         {}  ({}/{sent})",
        percentiles(&mut sse.clone()),
        sse.len()
    );
    if live_measured {
        println!(
            "  event -> Redis live state   {}  ({}/{live_eligible} probes sent >= {} s before the load ended; \
             {live_complete}/{sent} counted in the end)",
            percentiles(&mut live.clone()),
            live.len(),
            WATERMARK_TAIL.as_secs(),
        );
    } else {
        println!(
            "  event -> Redis live state   not measured (event time does not follow the wall clock in this run); \
             {live_complete}/{sent} counted in the end"
        );
    }
    println!("  ingest POST (202)           {}", percentiles(&mut posted));
    println!(
        "  p99 aim < 250 ms: Redis history {}, SSE {}, live state {}; {} public messages read by one SSE client",
        verdict(&history),
        verdict(&sse),
        verdict(&live),
        thousands(public_messages.load(Ordering::Relaxed) as f64)
    );
    println!(
        "  {}",
        cpu_line(cpu_before, cpu_after, load.elapsed.as_secs_f64())
    );
    // Where the slow probes were: their send time in the run, to line them up with checkpoints (every 10 s).
    let mut slowest: Vec<(f64, f64)> = (0..sent)
        .filter_map(|k| {
            let at = seen.sent[k]?;
            let latency = seen.history[k]?.saturating_duration_since(at).as_secs_f64() * 1000.0;
            Some((latency, at.saturating_duration_since(started).as_secs_f64()))
        })
        .collect();
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    let listed: Vec<String> = slowest
        .iter()
        .take(8)
        .map(|(latency, at)| format!("{latency:.0} ms at {at:.1} s"))
        .collect();
    let metrics = metrics_text(&reqwest::Client::new(), &deployment.pipeline).await;
    let checkpoints = metric_sum(&metrics, "pipeline_checkpoint_duration_seconds_count").unwrap_or(0.0);
    let checkpoint_secs = metric_sum(&metrics, "pipeline_checkpoint_duration_seconds_sum").unwrap_or(0.0);
    println!(
        "  slowest probes to Redis history (latency at send time): {}; {} checkpoints, {:.0} ms each on average",
        listed.join(", "),
        checkpoints,
        checkpoint_secs / checkpoints.max(1.0) * 1000.0
    );
    if let Ok(dir) = std::env::var("SYSTEM_BENCH_DUMP") {
        let path = format!("{dir}/system-probes-{index}.csv");
        let mut csv = String::from("probe,sent_s,post_ms,history_ms,sse_ms,live_ms\n");
        for k in 0..sent {
            let Some(at) = seen.sent[k] else { continue };
            let ms = |t: Option<Instant>| {
                t.map_or(String::new(), |t| {
                    format!("{:.1}", t.saturating_duration_since(at).as_secs_f64() * 1000.0)
                })
            };
            csv.push_str(&format!(
                "{k},{:.3},{:.1},{},{},{}\n",
                at.saturating_duration_since(started).as_secs_f64(),
                seen.posted[k].map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                ms(seen.history[k]),
                ms(seen.sse[k]),
                ms(seen.live[k])
            ));
        }
        std::fs::write(&path, csv).unwrap();
        println!("  probes written to {path}");
    }
    assert!(sent > 0, "no probe was sent");
    assert_eq!(
        history.len(),
        sent,
        "probes missing from the Redis delivery history"
    );
    assert_eq!(sse.len(), sent, "probes missing at the SSE client");
    assert_eq!(
        live_complete, sent,
        "probe clicks missing from the Redis live state"
    );
    drop(deployment);
}

fn verdict(samples: &[f64]) -> String {
    if samples.is_empty() {
        return "n/a".into();
    }
    let p99 = p99(samples);
    format!("{p99:.0} ms {}", if p99 < 250.0 { "met" } else { "NOT met" })
}

fn main() {
    let options = options();
    if let Err(why) = services_reachable() {
        if std::env::var_os("REQUIRE_SERVICES").is_some() {
            panic!("system benchmark: {why} (REQUIRE_SERVICES is set)");
        }
        println!("SKIPPED: system benchmark: {why} (set REQUIRE_SERVICES=1 to fail instead)");
        return;
    }
    println!(
        "system benchmark ({}): {} cores, load average {}",
        if options.bench {
            "full"
        } else {
            "smoke run; pass --bench for the full one"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    if options.bench {
        match redis_keys() {
            Some(0) => {}
            Some(keys) => println!(
                "note: Redis already holds {keys} keys (other runs or tests): the figures below may be slower than \
                 on an empty Redis, and are not comparable with runs that had one"
            ),
            None => println!("note: could not read the number of keys in Redis"),
        }
    }
    let cleanup = Cleanup::default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut measured = None;
        if options.only.as_deref() != Some("latency") {
            measured = Some(throughput(&options, &cleanup).await);
        }
        if options.only.as_deref() != Some("throughput") {
            for (index, rate) in options.rates.iter().enumerate() {
                latency(&options, *rate, index, measured, &cleanup).await;
            }
        }
    });
    drop(runtime);
    drop(cleanup);
}
