//! Helpers of the Redis integration tests: the server at `REDIS_URL` (default `redis://127.0.0.1:6379`, which may
//! hold other data and serve parallel tests), a unique key prefix per test, cleanup, delivery nodes sharing Redis,
//! and a private `redis-server` for outage tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use social_auth::{AuthConfig, Verifier};
use social_delivery::redis::{RedisBackend, RedisConfig};
use social_delivery::{Delivery, DeliveryConfig, Publisher};
use social_schemas::TopicMessage;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "delivery-tests-secret-of-at-least-32-bytes";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `test:<random>:`, so tests never meet each other's keys.
pub fn unique_prefix() -> String {
    format!("test:{:016x}:", rand::random::<u64>())
}

/// A configuration for tests: short lifetimes, so keys a failed test leaves behind expire soon.
pub fn test_config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        history_retention_secs: 600,
        meta_ttl_secs: 900,
        ping_interval_ms: 500,
        reconnect_max_delay_ms: 300,
        stream_lease_secs: 2,
        ..RedisConfig::default()
    }
}

/// Connects, or fails the test with a message saying what is missing.
pub async fn connect(config: RedisConfig, shutdown: CancellationToken) -> RedisBackend {
    let url = config.url.clone();
    match RedisBackend::connect(config, shutdown).await {
        Ok(backend) => backend,
        Err(error) => panic!(
            "these tests need a running Redis at {url} (set REDIS_URL; CI starts one with scripts/services.sh): {error}"
        ),
    }
}

/// A plain connection for inspecting and deleting keys.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    match client.get_multiplexed_async_connection().await {
        Ok(conn) => conn,
        Err(error) => panic!("these tests need a running Redis at {url} (set REDIS_URL): {error}"),
    }
}

/// Keys under `prefix`, sorted, each once (`SCAN` may return a key more than once while Redis rehashes).
pub async fn keys_under(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = raw(url).await;
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            keys.sort();
            keys.dedup();
            return keys;
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix`.
pub async fn cleanup(url: &str, prefix: &str) {
    let keys = keys_under(url, prefix).await;
    if keys.is_empty() {
        return;
    }
    let mut conn = raw(url).await;
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
}

/// One delivery node on port 0 whose history, fan-out and tickets are in Redis.
pub struct Node {
    pub addr: SocketAddr,
    pub delivery: Delivery,
    pub publisher: Publisher,
    pub backend: RedisBackend,
    pub shutdown: CancellationToken,
    pub served: tokio::task::JoinHandle<()>,
}

impl Node {
    pub async fn start(url: &str, prefix: &str, config: DeliveryConfig) -> Node {
        let shutdown = CancellationToken::new();
        let backend = connect(test_config(url, prefix), shutdown.clone()).await;
        let verifier = Arc::new(Verifier::new(&AuthConfig::hs256(SECRET)).unwrap());
        let delivery = Delivery::builder(config, verifier)
            .history(backend.history())
            .fanout(backend.fanout())
            .tickets(backend.tickets())
            .stream_limits(backend.stream_limits())
            .shutdown(shutdown.clone())
            .build();
        assert!(
            backend.wait_subscribed(Duration::from_secs(5)).await,
            "the fan-out listener did not subscribe"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = delivery
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        let served = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        let publisher = delivery.publisher();
        Node {
            addr,
            delivery,
            publisher,
            backend,
            shutdown,
            served,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub async fn publish(&self, topic: &str, id: &str) {
        self.publisher
            .publish(TopicMessage {
                topic: topic.into(),
                id: id.into(),
                event_type: "test.event".into(),
                timestamp: chrono::Utc::now(),
                data: serde_json::json!({"n": id}).into(),
            })
            .await
            .unwrap();
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.served).await;
        tokio::time::timeout(Duration::from_secs(10), self.backend.stopped())
            .await
            .expect("the redis listener stops on shutdown");
    }
}

/// A private `redis-server` (no persistence) on a free port, killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    /// The password clients must give (`--requirepass`), if any.
    password: Option<String>,
    child: std::process::Child,
}

impl PrivateRedis {
    pub async fn start_on(port: u16) -> PrivateRedis {
        PrivateRedis::start_with(port, None).await
    }

    /// A server that requires `password` (`AUTH`) of every client.
    pub async fn start_with_password(password: &str) -> PrivateRedis {
        PrivateRedis::start_with(free_port(), Some(password)).await
    }

    async fn start_with(port: u16, password: Option<&str>) -> PrivateRedis {
        let mut command = std::process::Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let server = PrivateRedis {
            port,
            password: password.map(str::to_owned),
            child: command
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("outage tests need the redis-server binary: {error}")),
        };
        let url = server.url();
        for _ in 0..200 {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    pub async fn start() -> PrivateRedis {
        PrivateRedis::start_on(free_port()).await
    }

    /// The URL clients use, with the password when the server requires one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
