//! Helpers of the Redis integration tests: the server at `REDIS_URL` (default `redis://127.0.0.1:6379`, which may
//! hold other data and serve parallel tests), a unique key prefix per test, cleanup, and a private `redis-server`
//! for outage tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `test:<random>:`, so tests never meet each other's keys.
pub fn unique_prefix() -> String {
    format!("test:{:016x}:", rand::random::<u64>())
}

/// A plain connection for inspecting and deleting keys.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    match client.get_multiplexed_async_connection().await {
        Ok(conn) => conn,
        Err(error) => panic!(
            "these tests need a running Redis at {url} (set REDIS_URL; CI starts one with scripts/services.sh): {error}"
        ),
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

/// Every key under `prefix` with its `DUMP`-independent content (type and members), for equality checks.
pub async fn contents(url: &str, prefix: &str) -> Vec<(String, String)> {
    let mut conn = raw(url).await;
    let mut out = Vec::new();
    for key in keys_under(url, prefix).await {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let content = match kind.as_str() {
            "hash" => {
                let mut fields: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                fields.sort();
                format!("{fields:?}")
            }
            "zset" => {
                let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                format!("{members:?}")
            }
            other => format!("unexpected type {other}"),
        };
        out.push((key, content));
    }
    out
}

/// Polls `condition` every 10 ms until it holds; fails the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free TCP port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` on a given port, with an append-only file in its own directory so a killed and
/// restarted server keeps its data (like a production Redis that restarts). Killed on drop; the directory is
/// removed by [`PrivateRedis::remove_dir`].
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    child: std::process::Child,
}

impl PrivateRedis {
    pub async fn start(port: u16, dir: PathBuf) -> PrivateRedis {
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("outage tests need the redis-server binary: {error}"));
        let server = PrivateRedis { port, dir, child };
        let url = server.url();
        for _ in 0..300 {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) -> (u16, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, std::mem::take(&mut self.dir))
    }

    pub fn remove_dir(dir: &PathBuf) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
