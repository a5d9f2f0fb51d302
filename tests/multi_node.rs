//! A deployment of separate processes sharing Redis: one `pipeline` and two `delivery` nodes. A client that read
//! some messages on node 1, disconnected, and resumed on node 2 gets exactly the messages it missed, in order.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use social_pipeline::generate::{Generator, GeneratorConfig};

const TOPICS: &str =
    "topic=testimonials.recent&topic=leaderboard.all-time&topic=trending.1h&topic=leaderboard.daily";

/// One SSE message as received: the resume token and the message's own id and type.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    token: String,
    id: String,
    kind: String,
}

/// Reads `url` as an SSE stream into `sink` until the task is aborted. Like EventSource, it reconnects with the
/// last id when the server ends the stream (a client that falls behind is cut off with a resumable position).
fn read_stream(
    url: String,
    last_event_id: Option<String>,
    sink: Arc<Mutex<Vec<Received>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut token = last_event_id;
        loop {
            let mut request = reqwest::Client::new().get(&url);
            if let Some(id) = &token {
                request = request.header("last-event-id", id);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{url}");
            let mut bytes = response.bytes_stream();
            let mut buffer = String::new();
            let mut data = String::new();
            while let Some(Ok(chunk)) = bytes.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    let line = line.trim_end_matches(['\r', '\n']);
                    if line.is_empty() {
                        if !data.is_empty() {
                            let message: serde_json::Value = serde_json::from_str(&data).unwrap();
                            sink.lock().unwrap().push(Received {
                                token: token.clone().unwrap_or_default(),
                                id: message["id"].as_str().unwrap().to_string(),
                                kind: message["type"].as_str().unwrap().to_string(),
                            });
                        }
                        data.clear();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        token = Some(value.trim_start().to_string());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn post_events(pipeline: &BinaryServer, events: &[Vec<u8>]) {
    for chunk in events.chunks(1000) {
        let body: String = chunk
            .iter()
            .map(|json| format!("{}\n", String::from_utf8_lossy(json)))
            .collect();
        let (status, reply) = post(
            &pipeline.url("/v1/events"),
            Some(&service_token()),
            "application/x-ndjson",
            body,
        )
        .await;
        assert_eq!(status, 202, "{reply}");
    }
}

async fn wait_until_quiet(received: &Arc<Mutex<Vec<Received>>>) {
    let mut last = usize::MAX;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(4) {
        let now = received.lock().unwrap().len();
        if now != last {
            last = now;
            since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_with_exactly_the_missed_messages() {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("test:e2e:{}:{}:", std::process::id(), nanos);
    let backend = ["--redis-url", redis.as_str(), "--redis-prefix", prefix.as_str()];
    let pipeline = BinaryServer::start(&[&["pipeline"][..], &backend].concat());
    let node1 = BinaryServer::start(&[&["delivery"][..], &backend].concat());
    let node2 = BinaryServer::start(&[&["delivery"][..], &backend].concat());

    let events: Vec<Vec<u8>> = Generator::new(GeneratorConfig {
        seed: 3,
        ..GeneratorConfig::default()
    })
    .take(30_000)
    .map(|e| e.json)
    .collect();

    // A reference client stays on node 2 for the whole run; the other reads part of it on node 1.
    let reference = Arc::new(Mutex::new(Vec::new()));
    let reference_task = read_stream(
        node2.url(&format!("/v1/stream?{TOPICS}")),
        None,
        reference.clone(),
    );
    let first = Arc::new(Mutex::new(Vec::new()));
    let first_task = read_stream(node1.url(&format!("/v1/stream?{TOPICS}")), None, first.clone());
    post_events(&pipeline, &events[..10_000]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "node 1 delivered nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first_task.abort();
    let _ = first_task.await;
    let seen = first.lock().unwrap().clone();
    let last = seen.last().unwrap().clone();

    // Missed while disconnected, then resumed on node 2.
    post_events(&pipeline, &events[10_000..]).await;
    wait_until_quiet(&reference).await;
    let resumed = Arc::new(Mutex::new(Vec::new()));
    let resumed_task = read_stream(
        node2.url(&format!("/v1/stream?{TOPICS}")),
        Some(last.token.clone()),
        resumed.clone(),
    );
    wait_until_quiet(&resumed).await;
    resumed_task.abort();
    reference_task.abort();

    let reference: Vec<String> = reference.lock().unwrap().iter().map(|r| r.id.clone()).collect();
    let resumed: Vec<Received> = resumed.lock().unwrap().clone();
    assert!(
        resumed.iter().all(|r| r.kind == "EVENT"),
        "no reset expected: {:?}",
        resumed.iter().find(|r| r.kind != "EVENT")
    );
    let position = reference
        .iter()
        .position(|id| *id == last.id)
        .expect("the reference saw the last message");
    let missed: Vec<String> = reference[position + 1..].to_vec();
    let got: Vec<String> = resumed.iter().map(|r| r.id.clone()).collect();
    assert!(!missed.is_empty(), "nothing was published while disconnected");
    let first_difference = got.iter().zip(&missed).position(|(a, b)| a != b);
    assert!(
        got == missed,
        "resumed on node 2: {} messages, missed {}; first difference at {:?}; resumed starts {:?}, missed starts {:?}",
        got.len(),
        missed.len(),
        first_difference,
        got.iter().take(3).collect::<Vec<_>>(),
        missed.iter().take(3).collect::<Vec<_>>()
    );
    drop((pipeline, node1, node2));
    cleanup(&redis, &prefix);
}

fn cleanup(url: &str, prefix: &str) {
    let host_port = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "6379"));
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-h",
            host,
            "-p",
            port,
            "--scan",
            "--pattern",
            &format!("{prefix}*"),
        ])
        .output();
    if let Ok(keys) = keys {
        for key in String::from_utf8_lossy(&keys.stdout).lines() {
            let _ = std::process::Command::new("redis-cli")
                .args(["-h", host, "-p", port, "del", key])
                .output();
        }
    }
}
