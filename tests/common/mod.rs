//! Shared helpers of the end-to-end tests: servers on port 0 (in process or the real binary), tokens, events.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod backends;
pub mod fluvio;
pub mod services;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use social_auth::{AuthConfig, Minter};
use social_realtime::cli::ServerArgs;
use social_realtime::server::System;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "end-to-end-test-secret-of-at-least-32-bytes";

pub fn auth_config() -> AuthConfig {
    AuthConfig::hs256(SECRET)
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn token(sub: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|role| role.to_string()).collect();
    Minter::new(&auth_config())
        .unwrap()
        .mint(sub, &roles, &[], Duration::from_secs(600), now_unix())
        .unwrap()
}

pub fn service_token() -> String {
    token("producer-1", &["service"])
}

pub fn admin_token() -> String {
    token("operator-1", &["admin"])
}

/// Server options exactly as the binary parses them from `extra` arguments.
pub fn server_args(extra: &[&str]) -> ServerArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        server: ServerArgs,
    }
    let args = ["test", "--listen", "127.0.0.1:0", "--jwt-secret", SECRET]
        .into_iter()
        .chain(extra.iter().copied());
    let mut server = Wrapper::parse_from(args).server;
    // Options also read the environment (REDIS_URL, CLICKHOUSE_URL, ... set for the suite): a test server uses a
    // backend only when the test asks for it.
    let asked = |flag: &str| extra.contains(&flag);
    if !asked("--redis-url") {
        server.redis_url = None;
    }
    if !asked("--clickhouse-url") {
        server.clickhouse_url = None;
    }
    if !asked("--fluvio-endpoint") {
        server.fluvio_endpoint = None;
    }
    if !asked("--data-dir") {
        server.data_dir = None;
    }
    server
}

/// An in-process server on a free port, for tests that need many requests.
pub struct TestServer {
    pub addr: SocketAddr,
    pub system: Arc<System>,
    shutdown: CancellationToken,
}

impl TestServer {
    pub async fn start(mut args: ServerArgs) -> Self {
        args.listen = "127.0.0.1:0".parse().unwrap();
        let shutdown = CancellationToken::new();
        let system = Arc::new(
            System::open(&args, &auth_config(), false, shutdown.clone())
                .await
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(social_realtime::server::serve(system.clone(), listener));
        Self {
            addr,
            system,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The real binary, started with `args` plus a port-0 listen address; killed on drop.
pub struct BinaryServer {
    pub child: Child,
    pub addr: SocketAddr,
}

impl BinaryServer {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_social-realtime"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("JWT_SECRET", SECRET)
            // A test process uses a backend only when its arguments name it, whatever the suite's environment.
            .env_remove("REDIS_URL")
            .env_remove("CLICKHOUSE_URL")
            .env_remove("FLUVIO_ENDPOINT")
            .env_remove("FLUVIO_TOPIC_PREFIX")
            .env_remove("FLUVIO_RETENTION_SECS")
            .env_remove("FLUVIO_REPLICATION")
            .env_remove("DATA_DIR")
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            if let Some(url) = line.strip_prefix("listening on http://") {
                break url.parse().unwrap();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    pub fn terminate(&mut self) {
        self.sigterm();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit: how long it took, or `None` when it was
    /// still running (it is then killed).
    pub fn terminate_within(&mut self, limit: std::time::Duration) -> Option<std::time::Duration> {
        let started = std::time::Instant::now();
        self.sigterm();
        while started.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.kill9();
        None
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A valid event of type `referral.link.clicked` with the given id.
pub fn click_event(id: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/services/web",
        "type": "referral.link.clicked",
        "time": "2026-01-01T00:00:00Z",
        "data": {"referralId": "code-1", "sourceIp": "203.0.113.9", "userAgent": "Mozilla/5.0"}
    })
}

pub fn fixtures_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/fixtures"))
}

pub async fn post(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    try_post(url, token, content_type, body)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// Like [`post`], with the transport error (a server killed mid-request) as an error.
pub async fn try_post(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let client = reqwest::Client::new();
    let mut request = client.post(url).header("content-type", content_type).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

pub async fn get_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Splits an SSE byte stream into its messages: each `data:` JSON with the resume token (`id:`) last seen.
pub struct SseFrames {
    buffer: String,
    data: String,
    /// The last `id:` read (or the one the stream was resumed from).
    pub token: Option<String>,
}

impl SseFrames {
    pub fn new(token: Option<String>) -> Self {
        Self {
            buffer: String::new(),
            data: String::new(),
            token,
        }
    }

    /// The messages `chunk` completes, with their tokens.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<(String, serde_json::Value)> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut messages = Vec::new();
        while let Some(end) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let token = self.token.clone().unwrap_or_default();
                    messages.push((token, serde_json::from_str(&self.data).unwrap()));
                }
                self.data.clear();
            } else if let Some(value) = line.strip_prefix("id:") {
                self.token = Some(value.trim_start().to_string());
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data.push_str(value.trim_start());
            }
        }
        messages
    }
}
