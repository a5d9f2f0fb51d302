//! The operators survive SIGKILL: a `run --data-dir` process killed mid-stream and restarted writes exactly the
//! derived messages an uninterrupted run writes, none lost and none twice (by id). On the embedded durable bus
//! always; on a Fluvio cluster too when `FLUVIO_ENDPOINT` is set (the input offsets then resume from the
//! checkpoint against Fluvio's partitions, and the derived messages are read back from Fluvio).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use common::backends::generated_events;
use common::*;
use social_pipeline::bus::durable::{DurableBus, DurableBusConfig};
use social_pipeline::bus::{Bus, TopicSpec};

const EVENTS: usize = 20_000;
const BATCH: usize = 500;

fn batches(batch: usize) -> Vec<String> {
    let events = generated_events(11, EVENTS);
    events
        .chunks(batch)
        .map(|chunk| {
            chunk
                .iter()
                .map(|json| format!("{}\n", String::from_utf8_lossy(json)))
                .collect()
        })
        .collect()
}

/// Where the bus of a run lives.
#[derive(Clone)]
enum TestBus {
    /// The embedded durable bus, in the run's data directory.
    Embedded,
    /// Topics named with this prefix on the Fluvio cluster at `endpoint`.
    Fluvio { endpoint: String, prefix: String },
}

impl TestBus {
    /// A Fluvio bus with topics of its own (a prefix unique to this run and `name`), when `FLUVIO_ENDPOINT`
    /// is set.
    fn fluvio(name: &str) -> Option<Self> {
        let endpoint = common::fluvio::endpoint(&format!("operators_crash::{name}"))?;
        let prefix = common::fluvio::unique_prefix(&format!("oc-{name}"));
        Some(Self::Fluvio { endpoint, prefix })
    }
}

fn start(dir: &Path, bus: &TestBus) -> BinaryServer {
    let mut args = vec![
        "run".to_string(),
        "--data-dir".into(),
        dir.to_str().unwrap().into(),
        "--idle-flush-ms".into(),
        "0".into(),
        "--checkpoint-interval-ms".into(),
        "1000".into(),
    ];
    if let TestBus::Fluvio { endpoint, prefix } = bus {
        args.extend(["--fluvio-endpoint".into(), endpoint.clone()]);
        args.extend(["--fluvio-topic-prefix".into(), prefix.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    BinaryServer::start(&args)
}

async fn post_all(server: &BinaryServer, batches: &[String], pause: Duration) {
    for body in batches {
        tokio::time::sleep(pause).await;
        let (status, reply) = post(
            &server.url("/v1/events"),
            Some(&service_token()),
            "application/x-ndjson",
            body.clone(),
        )
        .await;
        assert_eq!(status, 202, "{reply}");
    }
}

/// Waits until the derived-events count has not moved for a while (the operators are idle).
async fn wait_until_settled(server: &BinaryServer) -> u64 {
    let mut last = u64::MAX;
    let mut stable_since = std::time::Instant::now();
    loop {
        let (_, status) = get_json(&server.url("/v1/status"), None).await;
        let derived = status["derivedTopic"]["total"].as_u64().unwrap();
        if derived != last {
            last = derived;
            stable_since = std::time::Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(3) {
            return derived;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the operators have written a checkpoint into `dir`.
fn has_checkpoint(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with("checkpoint-") && name.ends_with(".json")
        })
    })
}

async fn wait_for_checkpoint(dir: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !has_checkpoint(dir) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every derived message id in the log, in order.
async fn derived_ids(dir: &Path, test_bus: &TestBus) -> Vec<String> {
    let bus: Box<dyn Bus> = match test_bus {
        TestBus::Embedded => Box::new(DurableBus::open(DurableBusConfig::new(dir)).await.unwrap()),
        TestBus::Fluvio { endpoint, prefix } => {
            let bus = common::fluvio::connect(endpoint, prefix).await;
            bus.ensure_topic(&TopicSpec {
                name: "social-derived".into(),
                partitions: 1,
            })
            .await
            .unwrap();
            bus
        }
    };
    let ids = common::fluvio::read_partition(bus.as_ref(), "social-derived", 0)
        .await
        .into_iter()
        .map(|record| {
            let event: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
            event["id"].as_str().unwrap().to_string()
        })
        .collect();
    bus.close().await.unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_no_derived_message() {
    sigkill_mid_stream(BATCH, Duration::ZERO, &TestBus::Embedded, &TestBus::Embedded).await;
}

/// The same over Fluvio: the restarted process resumes its input from the checkpointed Fluvio offsets and
/// skips the derived messages its first life already produced to Fluvio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_over_fluvio_loses_and_duplicates_no_derived_message() {
    let (Some(reference), Some(crashed)) = (TestBus::fluvio("reference"), TestBus::fluvio("crashed")) else {
        return;
    };
    sigkill_mid_stream(BATCH, Duration::ZERO, &reference, &crashed).await;
}

/// Under a light load the operators read small rounds as events trickle in, while the replay after the restart
/// reads the backlog in full rounds: the output must still be the same, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_a_light_load_loses_and_duplicates_no_derived_message() {
    sigkill_mid_stream(
        40,
        Duration::from_millis(8),
        &TestBus::Embedded,
        &TestBus::Embedded,
    )
    .await;
}

/// `reference` and `crashed`: the buses of the uninterrupted and of the killed run.
async fn sigkill_mid_stream(batch: usize, pause: Duration, reference_bus: &TestBus, crashed_bus: &TestBus) {
    let batches = batches(batch);

    // The reference: one uninterrupted run.
    let reference_dir = tempfile::tempdir().unwrap();
    let mut server = start(reference_dir.path(), reference_bus);
    post_all(&server, &batches, pause).await;
    wait_until_settled(&server).await;
    server.terminate();
    let reference = derived_ids(reference_dir.path(), reference_bus).await;
    assert!(
        reference.len() > 1000,
        "only {} derived messages",
        reference.len()
    );

    // Killed mid-stream, restarted, fed the rest (re-sending everything: ingest drops what it already has).
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), crashed_bus);
    // SIGKILL while events are still arriving and the operators are busy with them.
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producer = {
        let (url, batches, acknowledged) = (server.url("/v1/events"), batches.clone(), acknowledged.clone());
        let checkpoints = dir.path().join("operators");
        tokio::spawn(async move {
            let half = batches.len() / 2;
            for (n, body) in batches.into_iter().enumerate() {
                if n == half {
                    // The kill must come after a checkpoint, so that the restart restores one and replays the
                    // rounds recorded after it (not only the rounds since the start).
                    wait_for_checkpoint(&checkpoints).await;
                }
                tokio::time::sleep(pause).await;
                // The server is killed mid-stream: a request it never answered ends the producer.
                let Ok(reply) = try_post(&url, Some(&service_token()), "application/x-ndjson", body).await
                else {
                    return;
                };
                if reply.0 != 202 {
                    return;
                }
                acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < batches.len() * 6 / 10 {
        assert!(!producer.is_finished(), "the producer stopped before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        has_checkpoint(&dir.path().join("operators")),
        "no checkpoint before the kill"
    );
    server.kill9();
    let _ = producer.await;
    let mut server = start(dir.path(), crashed_bus);
    post_all(&server, &batches, Duration::ZERO).await;
    wait_until_settled(&server).await;
    server.terminate();
    let recovered = derived_ids(dir.path(), crashed_bus).await;

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &recovered {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} derived messages written twice, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let expected: BTreeSet<&str> = reference.iter().map(String::as_str).collect();
    let got: BTreeSet<&str> = recovered.iter().map(String::as_str).collect();
    let lost: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "lost {} (e.g. {:?}), unexpected {} (e.g. {:?})",
        lost.len(),
        lost.first(),
        extra.len(),
        extra.first()
    );
}
