//! The async runner: `run` reads the bus, sends output to a bounded channel, checkpoints on shutdown, and a new
//! topology over the same checkpoint directory resumes from the committed offsets without re-sending anything.

use std::sync::Arc;
use std::time::Duration;

use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::bus::partition::partition_for_key;
use social_pipeline::bus::{Bus, INPUT_TOPIC, Record, TopicSpec};
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::operator::Output;
use social_pipeline::topology::{Topology, TopologyConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 2;

async fn append(bus: &MemoryBus, generator: &mut Generator, count: usize) {
    for generated in generator.by_ref().take(count) {
        let partition = partition_for_key(generated.key.as_bytes(), PARTITIONS);
        let record = Record {
            key: generated.key.into_bytes().into(),
            value: generated.json.into(),
            timestamp_ms: 0,
        };
        bus.append(INPUT_TOPIC, partition, vec![record])
            .await
            .expect("append");
    }
}

/// An in-memory bus with the input topic.
async fn input_bus() -> Arc<MemoryBus> {
    let bus = Arc::new(MemoryBus::new(MemoryBusConfig::default()));
    bus.ensure_topic(&TopicSpec {
        name: INPUT_TOPIC.into(),
        partitions: PARTITIONS,
    })
    .await
    .expect("topic");
    bus
}

/// Runs a topology until offsets up to `total` records are committed, then shuts it down; returns what it sent.
async fn run_until(bus: Arc<MemoryBus>, dir: &std::path::Path, total: u64) -> Vec<Output> {
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        poll_interval_ms: 5,
        checkpoint_interval_ms: 10,
        ..TopologyConfig::default()
    };
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let topology = Topology::new(config, dyn_bus, Some(dir.to_owned())).expect("topology");
    let (tx, mut rx) = mpsc::channel::<Output>(64);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(topology.run(tx, shutdown.clone()));
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut committed = 0;
        for p in 0..PARTITIONS {
            committed += bus
                .committed("social-operators", INPUT_TOPIC, p)
                .await
                .expect("committed")
                .unwrap_or(0);
        }
        while let Ok(output) = rx.try_recv() {
            received.push(output);
        }
        // Offsets are committed with each checkpoint, after the output they cover was accepted.
        if committed >= total || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    while let Some(output) = rx.recv().await {
        received.push(output);
    }
    task.await.expect("join").expect("run");
    received
}

#[tokio::test]
async fn run_checkpoints_on_shutdown_and_resumes_without_resending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(3));

    append(&bus, &mut generator, 3_000).await;
    let first = run_until(bus.clone(), dir.path(), 3_000).await;
    assert!(!first.is_empty());

    append(&bus, &mut generator, 3_000).await;
    let second = run_until(bus.clone(), dir.path(), 6_000).await;
    assert!(!second.is_empty());

    let mut ids: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|o| o.message.id.as_str())
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "nothing sent twice across the restart");
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").count() >= 1,
        "checkpoint files written"
    );
}

/// A record written to the input topic by another producer, not through ingest, that does not parse goes to the
/// dead-letter topic with its reason and input position, once: also when the process stops without a checkpoint
/// after reading it and its round is taken again from the round log.
#[tokio::test]
async fn invalid_input_records_are_dead_lettered_once() {
    use social_pipeline::bus::DEAD_LETTER_TOPIC;
    use social_pipeline::operator::Emitter;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(5));
    append(&bus, &mut generator, 100).await;
    let garbage = Record {
        key: bytes::Bytes::new(),
        value: bytes::Bytes::from_static(b"{\"specversion\":\"1.0\", not json"),
        timestamp_ms: 1_700_000_000_000,
    };
    let offset = bus.append(INPUT_TOPIC, 1, vec![garbage]).await.expect("append");
    append(&bus, &mut generator, 100).await;

    // A process reads everything, then stops without a checkpoint (a crash): its rounds are in the round log.
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        checkpoint_interval_ms: 3_600_000,
        ..TopologyConfig::default()
    };
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let mut crashed = Topology::new(config, dyn_bus, Some(dir.path().to_owned())).expect("topology");
    let mut out = Emitter::default();
    crashed.start(&mut out);
    while crashed.offsets().iter().sum::<u64>() < 201 {
        crashed.round(&mut out).await.expect("round");
    }
    drop(crashed);
    assert_eq!(bus.end_offset(DEAD_LETTER_TOPIC, 0).await.expect("end"), 1);

    // The restarted process replays those rounds, then runs on.
    run_until(bus.clone(), dir.path(), 201).await;

    let letters = bus
        .fetch(DEAD_LETTER_TOPIC, 0, 0, 10, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(letters.len(), 1, "one dead letter");
    let letter: serde_json::Value = serde_json::from_slice(&letters[0].value).expect("json");
    assert_eq!(letter["reason"]["code"], "malformed_json", "{letter}");
    assert_eq!(letter["input"]["partition"], 1);
    assert_eq!(letter["input"]["offset"], offset);
    assert_eq!(letter["input"]["timestampMs"], 1_700_000_000_000_i64);
    assert_eq!(letter["payload"], "{\"specversion\":\"1.0\", not json");
}
