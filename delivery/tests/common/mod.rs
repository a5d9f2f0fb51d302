//! Test harness: the real server on port 0, tokens, and a small SSE client over TCP (reqwest streaming).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Value, json};
use social_auth::{AuthConfig, Minter, Verifier};
use social_delivery::{Delivery, DeliveryConfig, History, MemorySnapshots, Publisher};
use social_schemas::TopicMessage;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "delivery-tests-secret-of-at-least-32-bytes";

#[derive(Debug, Clone, Copy)]
enum Serving {
    /// `Delivery::serve`: streams on the lean path, the rest through the router.
    Lean,
    /// `axum::serve` with the router alone.
    RouterOnly,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub delivery: Delivery,
    pub publisher: Publisher,
    pub snapshots: Arc<MemorySnapshots>,
    pub shutdown: CancellationToken,
    pub served: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: DeliveryConfig) -> TestServer {
        TestServer::start_on("127.0.0.1:0".parse().unwrap(), config).await
    }

    /// Starts on `addr` (port 0 for any); an address a stopped server used can be bound again (restart tests).
    pub async fn start_on(addr: SocketAddr, config: DeliveryConfig) -> TestServer {
        TestServer::start_with(addr, config, Serving::Lean).await
    }

    /// Starts with every request, `/v1/stream` included, served by the router through `axum::serve`.
    pub async fn start_router_only(config: DeliveryConfig) -> TestServer {
        TestServer::start_with("127.0.0.1:0".parse().unwrap(), config, Serving::RouterOnly).await
    }

    /// Starts with `history` instead of the in-memory one.
    pub async fn start_with_history(config: DeliveryConfig, history: Arc<dyn History>) -> TestServer {
        TestServer::start_with_parts(
            "127.0.0.1:0".parse().unwrap(),
            config,
            Serving::Lean,
            Some(history),
        )
        .await
    }

    async fn start_with(addr: SocketAddr, config: DeliveryConfig, serving: Serving) -> TestServer {
        TestServer::start_with_parts(addr, config, serving, None).await
    }

    async fn start_with_parts(
        addr: SocketAddr,
        config: DeliveryConfig,
        serving: Serving,
        history: Option<Arc<dyn History>>,
    ) -> TestServer {
        let verifier = Arc::new(Verifier::new(&AuthConfig::hs256(SECRET)).unwrap());
        let snapshots = Arc::new(MemorySnapshots::new());
        let shutdown = CancellationToken::new();
        let mut builder = Delivery::builder(config, verifier)
            .snapshots(snapshots.clone())
            .shutdown(shutdown.clone())
            .demo_minter(minter());
        if let Some(history) = history {
            builder = builder.history(history);
        }
        let delivery = builder.build();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = shutdown.clone();
        let served = match serving {
            Serving::Lean => {
                let served = delivery.clone();
                tokio::spawn(async move { served.serve(listener, served.router()).await.unwrap() })
            }
            Serving::RouterOnly => {
                let app = delivery
                    .router()
                    .into_make_service_with_connect_info::<SocketAddr>();
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                        .unwrap();
                })
            }
        };
        let publisher = delivery.publisher();
        TestServer {
            addr,
            delivery,
            publisher,
            snapshots,
            shutdown,
            served,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Publishes a message with id `id` on `topic`.
    pub async fn publish(&self, topic: &str, id: &str) {
        self.publish_data(topic, id, json!({"n": id})).await;
    }

    pub async fn publish_data(&self, topic: &str, id: &str, data: Value) {
        self.publisher
            .publish(TopicMessage {
                topic: topic.into(),
                id: id.into(),
                event_type: "test.event".into(),
                timestamp: chrono::Utc::now(),
                data: data.into(),
            })
            .await
            .unwrap();
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.served).await;
    }
}

pub fn minter() -> Minter {
    Minter::new(&AuthConfig::hs256(SECRET)).unwrap()
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn token(sub: &str, programs: &[&str], roles: &[&str]) -> String {
    token_ttl(sub, programs, roles, Duration::from_secs(3600))
}

pub fn token_ttl(sub: &str, programs: &[&str], roles: &[&str], ttl: Duration) -> String {
    let programs: Vec<String> = programs.iter().map(|p| p.to_string()).collect();
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    minter().mint(sub, &roles, &programs, ttl, now_unix()).unwrap()
}

pub fn expired_token(sub: &str) -> String {
    minter()
        .mint(sub, &[], &[], Duration::from_secs(60), now_unix() - 3600)
        .unwrap()
}

pub fn bad_signature_token(sub: &str) -> String {
    let other = Minter::new(&AuthConfig::hs256("another-secret-that-is-32-bytes-long!!")).unwrap();
    other
        .mint(
            sub,
            &["admin".to_string()],
            &[],
            Duration::from_secs(3600),
            now_unix(),
        )
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// One SSE frame as parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comment: bool,
}

impl Frame {
    pub fn json(&self) -> Option<Value> {
        self.data
            .as_deref()
            .map(|data| serde_json::from_str(data).unwrap())
    }
}

/// A stream refused by a limit: `429`, `Retry-After` of at least a second, the error `code`.
pub async fn assert_limited(sse: Sse, code: &str) {
    assert_eq!(sse.status, 429, "{code}");
    let retry_after: u64 = sse.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{code}");
    assert_eq!(sse.error_json().await["error"]["code"], code);
}

/// A refused `POST /v1/tickets`: `429` with a `Retry-After` within the minute and `ticket_rate_limited`.
pub async fn assert_ticket_rate_limited(refused: reqwest::Response) {
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ticket_rate_limited");
}

/// A streaming SSE reader.
pub struct Sse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buffer: String,
    /// The last `id:` seen, as an EventSource keeps it.
    pub last_id: Option<String>,
}

impl Sse {
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Sse {
        let mut request = client().get(url).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = Some(response.bytes_stream().boxed());
        Sse {
            status,
            headers,
            body,
            buffer: String::new(),
            last_id: None,
        }
    }

    /// The error body of a refused stream.
    pub async fn error_json(mut self) -> Value {
        let mut text = String::new();
        if let Some(body) = self.body.as_mut() {
            while let Some(Ok(chunk)) = body.next().await {
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        }
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The next frame (comments included), or `None` at the end of the stream.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame::default();
                for line in raw.lines() {
                    if line.starts_with(':') {
                        frame.comment = true;
                    } else if let Some(value) = line.strip_prefix("id: ") {
                        frame.id = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        frame.data = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("retry: ") {
                        frame.retry = Some(value.parse().unwrap());
                    } else if !line.is_empty() {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                if let Some(id) = &frame.id {
                    self.last_id = Some(id.clone());
                }
                return Some(frame);
            }
            let chunk = self.body.as_mut()?.next().await?.ok()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next message (skipping comments and id-only frames), with a 10 s guard.
    pub async fn next_message(&mut self) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let frame = self.next_frame().await?;
                if let Some(value) = frame.json() {
                    return Some(value);
                }
            }
        })
        .await
        .expect("no message within 10 s")
    }

    /// The next `n` messages.
    pub async fn messages(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next_message().await.expect("stream ended early"));
        }
        out
    }

    pub fn close(self) {}
}

/// `(topic, id)` of a message, for comparisons.
pub fn key(message: &Value) -> (String, String) {
    (
        message["topic"].as_str().unwrap().to_owned(),
        message["id"].as_str().unwrap().to_owned(),
    )
}
