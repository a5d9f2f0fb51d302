//! The async runner: `run` reads the bus, sends output to a bounded channel, checkpoints on shutdown, and a new
//! topology over the same checkpoint directory resumes from the committed offsets without re-sending anything.

use std::sync::Arc;
use std::time::Duration;

use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::bus::partition::partition_for_key;
use social_pipeline::bus::{Bus, DEAD_LETTER_TOPIC, INPUT_TOPIC, Record, TopicSpec};
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

/// The one record of the dead-letter topic, as JSON.
async fn the_dead_letter(bus: &MemoryBus) -> serde_json::Value {
    let letters = bus
        .fetch(DEAD_LETTER_TOPIC, 0, 0, 10, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(letters.len(), 1, "one dead letter");
    serde_json::from_slice(&letters[0].value).expect("json")
}

/// Runs a topology until offsets up to `total` records are committed, then shuts it down; returns what it sent.
async fn run_until(bus: Arc<MemoryBus>, dir: &std::path::Path, total: u64) -> Vec<Output> {
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        poll_interval_ms: 5,
        checkpoint_interval_ms: 10,
        // The committed offsets are then the newest checkpoint's (they are the oldest kept one's).
        checkpoints_kept: 1,
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

/// Takes rounds over `dir` until offsets up to `total` records are read, then drops the topology without a
/// checkpoint (a crash): its rounds are in the round log.
async fn read_then_crash(bus: Arc<MemoryBus>, dir: &std::path::Path, total: u64) {
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        checkpoint_interval_ms: 3_600_000,
        ..TopologyConfig::default()
    };
    let mut crashed = Topology::new(config, bus, Some(dir.to_owned())).expect("topology");
    let mut out = social_pipeline::operator::Emitter::default();
    crashed.start(&mut out);
    while crashed.offsets().iter().sum::<u64>() < total {
        crashed.round(&mut out).await.expect("round");
    }
}

/// A record written to the input topic by another producer, not through ingest, that does not parse goes to the
/// dead-letter topic with its reason and input position, once: also when the process stops without a checkpoint
/// after reading it and its round is taken again from the round log.
#[tokio::test]
async fn invalid_input_records_are_dead_lettered_once() {
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
    read_then_crash(bus.clone(), dir.path(), 201).await;
    assert_eq!(bus.end_offset(DEAD_LETTER_TOPIC, 0).await.expect("end"), 1);

    // The restarted process replays those rounds, then runs on.
    run_until(bus.clone(), dir.path(), 201).await;

    let letter = the_dead_letter(&bus).await;
    assert_eq!(letter["reason"]["code"], "malformed_json", "{letter}");
    assert_eq!(letter["input"]["partition"], 1);
    assert_eq!(letter["input"]["offset"], offset);
    assert_eq!(letter["input"]["timestampMs"], 1_700_000_000_000_i64);
    assert_eq!(letter["payload"], "{\"specversion\":\"1.0\", not json");
}

/// Appends `events` straight to the input topic (as a producer other than ingest would), each to its key's
/// partition, then a copy of each event of `copies` to the other partition (a producer's retry).
async fn append_with_copies(bus: &MemoryBus, events: &[(String, String)], copies: std::ops::Range<usize>) {
    let record = |key: &str, json: &str| Record {
        key: bytes::Bytes::copy_from_slice(key.as_bytes()),
        value: bytes::Bytes::copy_from_slice(json.as_bytes()),
        timestamp_ms: 0,
    };
    for (key, json) in events {
        let partition = partition_for_key(key.as_bytes(), PARTITIONS);
        bus.append(INPUT_TOPIC, partition, vec![record(key, json)])
            .await
            .expect("append");
    }
    for (key, json) in &events[copies] {
        let partition = (partition_for_key(key.as_bytes(), PARTITIONS) + 1) % PARTITIONS;
        bus.append(INPUT_TOPIC, partition, vec![record(key, json)])
            .await
            .expect("append");
    }
}

/// Records written twice to the input topic (a retrying producer bypasses ingest's deduplication) count once:
/// the output, across a restart from a checkpoint, is the output without the copies, also for copies of events
/// read before the restart.
#[tokio::test]
async fn copies_written_straight_to_the_input_topic_count_once() {
    let events: Vec<(String, String)> = Generator::new(GeneratorConfig::with_seed(11))
        .take(6_000)
        .map(|g| (g.key, String::from_utf8_lossy(&g.json).into_owned()))
        .collect();
    let (first, second) = events.split_at(3_000);

    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain = input_bus().await;
    append_with_copies(&plain, first, 0..0).await;
    let mut want = run_until(plain.clone(), plain_dir.path(), 3_000).await;
    append_with_copies(&plain, second, 0..0).await;
    want.extend(run_until(plain.clone(), plain_dir.path(), 6_000).await);

    let copied_dir = tempfile::tempdir().expect("tempdir");
    let copied = input_bus().await;
    append_with_copies(&copied, first, 0..300).await;
    let mut got = run_until(copied.clone(), copied_dir.path(), 3_300).await;
    // Copies of events read before the restart (first's 2,700..3,000) and of new ones.
    let mut again: Vec<(String, String)> = first[2_700..].to_vec();
    again.extend_from_slice(second);
    append_with_copies(&copied, &again, 0..600).await;
    got.extend(run_until(copied.clone(), copied_dir.path(), 3_300 + 3_300 + 600).await);

    let lines = |outputs: &[Output]| {
        let mut lines: Vec<String> = outputs
            .iter()
            .map(|o| serde_json::to_string(o).expect("serializable"))
            .collect();
        lines.sort_unstable();
        lines
    };
    assert!(
        want.len() > 2_000,
        "the workload produces messages: {}",
        want.len()
    );
    let (got, want) = (lines(&got), lines(&want));
    assert_eq!(got.len(), want.len(), "as many messages with copies as without");
    assert!(got == want, "the same messages with copies as without");
}

/// A record another producer wrote with an event time far ahead of its bus timestamp is dead-lettered
/// (`timestamp_in_future`) instead of carrying the watermark years ahead; the records around it count.
#[tokio::test]
async fn a_record_dated_far_ahead_of_its_timestamp_is_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(13));
    append(&bus, &mut generator, 100).await;
    let mut event: serde_json::Value =
        serde_json::from_slice(&generator.next().expect("event").json).expect("json");
    event["time"] = serde_json::json!("2999-01-01T00:00:00Z");
    let ahead = Record {
        key: bytes::Bytes::new(),
        value: serde_json::to_vec(&event).expect("json").into(),
        // Received at the generator's start: 2026-01-01.
        timestamp_ms: 1_767_225_600_000,
    };
    let offset = bus.append(INPUT_TOPIC, 0, vec![ahead]).await.expect("append");
    append(&bus, &mut generator, 100).await;

    let outputs = run_until(bus.clone(), dir.path(), 201).await;
    let letter = the_dead_letter(&bus).await;
    assert_eq!(letter["reason"]["code"], "timestamp_in_future", "{letter}");
    assert_eq!(letter["input"]["offset"], offset);
    assert!(
        outputs
            .iter()
            .all(|o| o.message.timestamp.timestamp_millis() < 1_767_225_600_000 + 24 * 3_600_000),
        "nothing dated near the far-ahead time"
    );
    assert!(
        !outputs
            .iter()
            .any(|o| o.destination == social_pipeline::operator::Destination::LateData),
        "the events after it are not late"
    );
}

/// The operators' committed input offsets, per partition (0 when none).
async fn committed(bus: &MemoryBus) -> Vec<u64> {
    let mut offsets = Vec::new();
    for p in 0..PARTITIONS {
        let offset = bus.committed("social-operators", INPUT_TOPIC, p).await;
        offsets.push(offset.expect("committed").unwrap_or(0));
    }
    offsets
}

/// Without a checkpoint directory the offsets read are committed all the same (at the checkpoint interval and at
/// shutdown, once their output is handled), so that a bus keeping the operators' unread input can let it go.
#[tokio::test]
async fn without_checkpoints_the_offsets_read_are_committed() {
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(6));
    append(&bus, &mut generator, 1_000).await;
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        ..TopologyConfig::default()
    };
    let mut topology = Topology::new(config, bus.clone(), None).expect("topology");
    let mut out = Default::default();
    topology.start(&mut out);
    while topology.round(&mut out).await.expect("round").records > 0 {}
    assert_eq!(committed(&bus).await, vec![0; PARTITIONS as usize]);
    topology.checkpoint().await.expect("commit");
    assert_eq!(committed(&bus).await, topology.offsets().to_vec());
    assert_eq!(committed(&bus).await.iter().sum::<u64>(), 1_000);
}

/// The offsets committed with a checkpoint are those of the oldest checkpoint kept, also across a restart: a
/// restore that falls back to it (the newer ones unreadable) finds its input still retained.
#[tokio::test]
async fn committed_offsets_are_the_oldest_kept_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(5));
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        checkpoints_kept: 2,
        ..TopologyConfig::default()
    };
    // Checkpoints 1, 2 and 3, each after 500 more events.
    let mut at_checkpoint: Vec<Vec<u64>> = Vec::new();
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let mut topology =
        Topology::new(config.clone(), dyn_bus.clone(), Some(dir.path().to_owned())).expect("topology");
    let mut out = Default::default();
    topology.start(&mut out);
    for _ in 0..3 {
        append(&bus, &mut generator, 500).await;
        while topology.round(&mut out).await.expect("round").records > 0 {}
        topology.checkpoint().await.expect("checkpoint");
        at_checkpoint.push(topology.offsets().to_vec());
    }
    assert!(at_checkpoint[0] < at_checkpoint[1] && at_checkpoint[1] < at_checkpoint[2]);
    // Checkpoints 2 and 3 are kept: 2's offsets are committed.
    assert_eq!(committed(&bus).await, at_checkpoint[1]);

    // A restart knows the kept checkpoints' offsets: its first checkpoint (4) commits 3's.
    drop(topology);
    let mut topology = Topology::new(config, dyn_bus, Some(dir.path().to_owned())).expect("topology");
    topology.start(&mut out);
    append(&bus, &mut generator, 500).await;
    while topology.round(&mut out).await.expect("round").records > 0 {}
    topology.checkpoint().await.expect("checkpoint");
    assert_eq!(committed(&bus).await, at_checkpoint[2]);
}

/// A process that dies after writing a round's dead letters but before recording the round: the next one takes the
/// round again and finds the letter already on the dead-letter topic, so it is not written twice.
#[tokio::test]
async fn a_dead_letter_written_before_a_crash_is_not_written_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(8));
    append(&bus, &mut generator, 50).await;
    let garbage = Record {
        key: bytes::Bytes::new(),
        value: bytes::Bytes::from_static(b"not json at all"),
        timestamp_ms: 1_700_000_000_000,
    };
    let offset = bus.append(INPUT_TOPIC, 0, vec![garbage]).await.expect("append");
    append(&bus, &mut generator, 50).await;
    read_then_crash(bus.clone(), dir.path(), 101).await;
    assert_eq!(bus.end_offset(DEAD_LETTER_TOPIC, 0).await.expect("end"), 1);
    // The crash came before any round reached the round log.
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("rounds-"))
        {
            std::fs::remove_file(path).expect("remove round log");
        }
    }

    run_until(bus.clone(), dir.path(), 101).await;

    let letter = the_dead_letter(&bus).await;
    assert_eq!(letter["input"]["partition"], 0);
    assert_eq!(letter["input"]["offset"], offset);
}

/// An input topic deleted and created again starts its offsets over, while the dead-letter topic keeps the letters
/// of the old one: an invalid record of the new topic at a position an old letter names is still dead-lettered
/// (the letters name the record's producer timestamp too).
#[tokio::test]
async fn an_old_letter_at_the_same_position_does_not_hide_a_new_invalid_record() {
    let garbage = |timestamp_ms| Record {
        key: bytes::Bytes::new(),
        value: bytes::Bytes::from_static(b"not json at all"),
        timestamp_ms,
    };
    let with_garbage_at_50 = |timestamp_ms| async move {
        let bus = input_bus().await;
        let mut generator = Generator::new(GeneratorConfig::with_seed(9));
        append(&bus, &mut generator, 50).await;
        let offset = bus
            .append(INPUT_TOPIC, 0, vec![garbage(timestamp_ms)])
            .await
            .expect("append");
        (bus, offset)
    };
    let (old, old_offset) = with_garbage_at_50(1_600_000_000_000).await;
    let old_dir = tempfile::tempdir().expect("tempdir");
    run_until(old.clone(), old_dir.path(), 51).await;
    let old_letter = old
        .fetch(DEAD_LETTER_TOPIC, 0, 0, 10, Duration::ZERO)
        .await
        .expect("fetch")
        .remove(0);

    // The new topic: its invalid record lands at the same partition and offset, with another timestamp.
    let (new, new_offset) = with_garbage_at_50(1_700_000_000_000).await;
    assert_eq!(new_offset, old_offset);
    new.ensure_topic(&TopicSpec {
        name: DEAD_LETTER_TOPIC.into(),
        partitions: 1,
    })
    .await
    .expect("topic");
    new.append(
        DEAD_LETTER_TOPIC,
        0,
        vec![Record {
            key: old_letter.key.clone(),
            value: old_letter.value.clone(),
            timestamp_ms: old_letter.timestamp_ms,
        }],
    )
    .await
    .expect("append");
    let new_dir = tempfile::tempdir().expect("tempdir");
    run_until(new.clone(), new_dir.path(), 51).await;

    let letters = new
        .fetch(DEAD_LETTER_TOPIC, 0, 0, 10, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(letters.len(), 2, "the new record is dead-lettered too");
    let letter: serde_json::Value = serde_json::from_slice(&letters[1].value).expect("json");
    assert_eq!(letter["input"]["offset"], new_offset);
    assert_eq!(letter["input"]["timestampMs"], 1_700_000_000_000_i64);
}

/// The live-state store as the topology sees it: every `apply` call, in order.
#[derive(Default)]
struct RecordingLiveState {
    applied: std::sync::Mutex<Vec<Vec<social_pipeline::operator::SnapshotUpdate>>>,
}

#[async_trait::async_trait]
impl social_pipeline::topology::LiveState for RecordingLiveState {
    async fn apply(
        &self,
        _stamp: social_pipeline::topology::StateStamp,
        updates: Vec<social_pipeline::operator::SnapshotUpdate>,
    ) -> Result<(), social_pipeline::topology::PipelineError> {
        self.applied.lock().expect("lock").push(updates);
        Ok(())
    }

    async fn flush(&self) -> Result<(), social_pipeline::topology::PipelineError> {
        Ok(())
    }
}

/// After a crash, the live-state store may hold the newer values the crashed run wrote: the rounds replayed from
/// the round log do not write their intermediate values over them one by one; the whole state goes out once the
/// replay is over.
#[tokio::test]
async fn a_replay_writes_the_live_state_once_it_is_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = input_bus().await;
    let mut generator = Generator::new(GeneratorConfig::with_seed(9));
    append(&bus, &mut generator, 3_000).await;
    // The crashed run takes many small rounds, each with its own updates.
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        poll_interval_ms: 5,
        checkpoint_interval_ms: 3_600_000,
        fetch_max_records: 100,
        ..TopologyConfig::default()
    };
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let mut crashed = Topology::new(config.clone(), dyn_bus, Some(dir.path().to_owned())).expect("topology");
    let mut out = social_pipeline::operator::Emitter::default();
    crashed.start(&mut out);
    let mut rounds = 0;
    while crashed.offsets().iter().sum::<u64>() < 3_000 {
        crashed.round(&mut out).await.expect("round");
        rounds += 1;
    }
    assert!(rounds > 10, "{rounds} rounds");
    drop(crashed);

    let config = TopologyConfig {
        checkpoint_interval_ms: 10,
        ..config
    };
    let live = Arc::new(RecordingLiveState::default());
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let topology = Topology::new(config, dyn_bus, Some(dir.path().to_owned()))
        .expect("topology")
        .with_live_state(live.clone(), 1)
        .expect("live state");
    let snapshots = topology.snapshots();
    let (tx, mut rx) = mpsc::channel::<Output>(1 << 16);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(topology.run(tx, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while live.applied.lock().expect("lock").is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    while rx.recv().await.is_some() {}
    task.await.expect("join").expect("run");

    let applied = live.applied.lock().expect("lock");
    let first = applied.first().expect("the state was written");
    let written: std::collections::BTreeMap<(String, String), String> = first
        .iter()
        .map(|u| ((u.topic.clone(), u.part.clone()), format!("{:?}", u.value)))
        .collect();
    // Nothing new was read after the replay: the first write is the whole final state.
    let state: std::collections::BTreeMap<(String, String), String> = snapshots
        .export()
        .into_iter()
        .flat_map(|(topic, parts)| {
            parts
                .into_iter()
                .map(move |(part, value)| ((topic.clone(), part), format!("{:?}", Some(value))))
        })
        .collect();
    assert!(!state.is_empty());
    assert_eq!(written, state, "the first write is the state after the replay");
}
