//! With `--data-dir`, an event answered `202` survives SIGKILL of the process: after a restart every accepted
//! event is on the bus exactly once, and re-sending it is recognised as a duplicate.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use social_pipeline::bus::durable::{DurableBus, DurableBusConfig};
use social_pipeline::bus::{Bus, INPUT_TOPIC};
use tokio::sync::Mutex;

fn batch(worker: usize, round: usize, size: usize) -> String {
    (0..size)
        .map(|i| format!("{}\n", click_event(&format!("w{worker}-r{round}-{i}"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let mut server = BinaryServer::start(&["run", "--data-dir", &data_dir]);
    let url = server.url("/v1/events");
    let token = service_token();

    // Four producers post batches until the process dies under them; only 202s count as accepted.
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut producers = Vec::new();
    for worker in 0..4 {
        let (url, token, accepted) = (url.clone(), token.clone(), accepted.clone());
        producers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for round in 0.. {
                let body = batch(worker, round, 100);
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().as_u16() == 202 => {
                        let mut accepted = accepted.lock().await;
                        accepted.extend((0..100).map(|i| format!("w{worker}-r{round}-{i}")));
                    }
                    _ => return,
                }
            }
        }));
    }
    while accepted.lock().await.len() < 20_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for producer in producers {
        producer.await.unwrap();
    }
    let accepted = accepted.lock().await.clone();

    // Read the log the killed process left behind.
    let bus = DurableBus::open(DurableBusConfig::new(dir.path())).await.unwrap();
    let mut on_bus: HashMap<String, u32> = HashMap::new();
    for partition in 0..bus.partitions(INPUT_TOPIC).unwrap() {
        let end = bus.end_offset(INPUT_TOPIC, partition).await.unwrap();
        let mut next = bus.start_offset(INPUT_TOPIC, partition).await.unwrap();
        while next < end {
            let records = bus
                .fetch(INPUT_TOPIC, partition, next, 5000, Duration::ZERO)
                .await
                .unwrap();
            next = records.last().unwrap().offset + 1;
            for record in records {
                let event: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
                *on_bus
                    .entry(event["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    bus.close().await.unwrap();
    drop(bus); // releases the data directory's lock
    let missing: Vec<&String> = accepted.iter().filter(|id| !on_bus.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} accepted events lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice: Vec<_> = on_bus.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "events on the bus twice: {:?}", twice.first());
    assert!(on_bus.len() >= accepted.len());

    // After a restart, the same events are duplicates and the bus does not grow.
    let server = BinaryServer::start(&["run", "--data-dir", &data_dir]);
    let (status, reply) = get_json(&server.url("/v1/status"), None).await;
    assert_eq!(status, 200);
    let total_before = reply["inputTopic"]["total"].as_u64().unwrap();
    assert_eq!(total_before, on_bus.len() as u64);
    let (status, reply) = post(
        &server.url("/v1/events"),
        Some(&token),
        "application/x-ndjson",
        batch(0, 0, 100),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["duplicates"], 100, "{reply}");
    let (_, reply) = get_json(&server.url("/v1/status"), None).await;
    assert_eq!(reply["inputTopic"]["total"].as_u64().unwrap(), total_before);
}

/// Operators that stop on an error (here: their checkpoint directory is replaced by a file, so no checkpoint can
/// be written) shut the process down, which exits with an error for its supervisor to restart it, instead of
/// staying up accepting input that nothing derives from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_that_fail_stop_the_process_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let mut server =
        BinaryServer::start(&["run", "--data-dir", &data_dir, "--checkpoint-interval-ms", "200"]);
    let url = server.url("/v1/events");
    let token = service_token();
    let (status, _) = post(
        &url,
        Some(&token),
        "application/json",
        click_event("before").to_string(),
    )
    .await;
    assert_eq!(status, 202);
    let checkpoints = dir.path().join("operators");
    assert!(checkpoints.is_dir(), "the operators keep their checkpoints there");
    std::fs::remove_dir_all(&checkpoints).unwrap();
    std::fs::write(&checkpoints, b"not a directory").unwrap();
    for n in 0..50 {
        // Something new for the next checkpoint to cover; the process may already be going down.
        let _ = try_post(
            &url,
            Some(&token),
            "application/json",
            click_event(&format!("after-{n}")).to_string(),
        )
        .await;
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process stayed up without its operators"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(2), "{status:?}");
}
