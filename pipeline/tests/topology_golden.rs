//! Golden test of recovery: a generated workload of 100,000 events on a 4-partition bus, processed once without
//! interruption and once with a checkpoint half-way, the process state dropped, and a restore from the
//! checkpoint directory. The outputs (message ids included) and the topic snapshots must be identical, and the
//! uninterrupted run's must match the digests recorded in `tests/golden/` (re-recorded on purpose with
//! `UPDATE_GOLDEN=1 cargo test -p social-pipeline --test topology_golden` when the operators' output changes).
//! Recorded on Linux with glibc: the trending score uses `exp2`, whose last bit may differ elsewhere.

use std::path::Path;
use std::sync::Arc;

use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::bus::partition::partition_for_key;
use social_pipeline::bus::{Bus, INPUT_TOPIC, Record, TopicSpec};
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::operator::config::ProgramConfig;
use social_pipeline::operator::config::Tier;
use social_pipeline::operator::engine::LateStats;
use social_pipeline::operator::{Emitter, Output};
use social_pipeline::topology::{Topology, TopologyConfig};

const EVENTS: usize = 100_000;
/// The recorded digests of the uninterrupted runs' output: any change of what the operators emit for this workload
/// (a message, an id, the order) shows here, and is recorded on purpose with `UPDATE_GOLDEN=1`.
const GOLDEN: &str = "tests/golden/topology-100k.txt";
const GOLDEN_LATE: &str = "tests/golden/topology-100k-late.txt";
const PARTITIONS: u32 = 4;

async fn loaded_bus() -> Arc<dyn Bus> {
    let bus = MemoryBus::new(MemoryBusConfig {
        retention_bytes_per_partition: u64::MAX,
        ..MemoryBusConfig::default()
    });
    bus.ensure_topic(&TopicSpec {
        name: INPUT_TOPIC.into(),
        partitions: PARTITIONS,
    })
    .await
    .expect("topic");
    let mut per_partition: Vec<Vec<Record>> = vec![Vec::new(); PARTITIONS as usize];
    for generated in Generator::new(GeneratorConfig::with_seed(42)).take(EVENTS) {
        let partition = partition_for_key(generated.key.as_bytes(), PARTITIONS);
        per_partition[partition as usize].push(Record {
            key: generated.key.into_bytes().into(),
            value: generated.json.into(),
            timestamp_ms: 0,
        });
    }
    for (partition, records) in per_partition.into_iter().enumerate() {
        for chunk in records.chunks(1_000) {
            bus.append(INPUT_TOPIC, partition as u32, chunk.to_vec())
                .await
                .expect("append");
        }
    }
    Arc::new(bus)
}

fn config() -> TopologyConfig {
    config_with_bound(None)
}

/// The operators' out-of-orderness bound set below the generator's (5 s): events up to 5 s out of order come
/// after the watermark has passed them, as late data within the allowed lateness (corrections).
fn late_config() -> TopologyConfig {
    config_with_bound(Some(300))
}

fn config_with_bound(max_out_of_order_ms: Option<i64>) -> TopologyConfig {
    let mut config = TopologyConfig {
        fetch_max_records: 256,
        idle_flush_ms: None,
        partition_idle_ms: 0,
        ..TopologyConfig::default()
    };
    let tiers = vec![
        Tier {
            threshold: 2,
            reward_amount: 10.0,
        },
        Tier {
            threshold: 4,
            reward_amount: 30.0,
        },
    ];
    config
        .operators
        .programs
        .programs
        .insert("program-standard".into(), ProgramConfig { tiers });
    if let Some(bound) = max_out_of_order_ms {
        config.operators.max_out_of_order_ms = bound;
    }
    config
}

/// Rounds until `stop` records were read (or the input is exhausted: two empty rounds in a row).
async fn rounds(topology: &mut Topology, out: &mut Emitter, stop: usize) -> usize {
    let mut read = 0;
    let mut empty = 0;
    while read < stop && empty < 2 {
        let outcome = topology.round(out).await.expect("round");
        read += outcome.records;
        empty = if outcome.records == 0 { empty + 1 } else { 0 };
    }
    read
}

fn lines(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| serde_json::to_string(o).expect("json"))
        .collect()
}

async fn uninterrupted(
    config: TopologyConfig,
    bus: Arc<dyn Bus>,
    dir: &Path,
) -> (Vec<String>, serde_json::Value, LateStats) {
    let mut topology = Topology::new(config, bus, Some(dir.to_owned())).expect("topology");
    let mut out = Emitter::default();
    topology.start(&mut out);
    assert_eq!(rounds(&mut topology, &mut out, usize::MAX).await, EVENTS);
    let snapshots = topology.snapshots();
    snapshots.apply(out.snapshots.drain(..));
    (
        lines(&out.outputs),
        snapshot_of(&snapshots),
        topology.engine().stats(),
    )
}

fn snapshot_of(store: &social_pipeline::topology::SnapshotStore) -> serde_json::Value {
    let topics = [
        "leaderboard.daily",
        "leaderboard.all-time",
        "trending.1h",
        "trending.24h",
        "testimonials.recent",
        "program.program-standard.updates",
    ];
    serde_json::Value::Array(topics.iter().map(|t| store.get(t).unwrap_or_default()).collect())
}

#[tokio::test(flavor = "current_thread")]
async fn checkpoint_halfway_restore_gives_identical_output() {
    let late = checkpoint_halfway_restore(config, Some(GOLDEN)).await;
    assert_eq!(late, LateStats::default(), "within the bound, no event is late");
}

/// The same with late data: corrections of windows already emitted, with the state they need (closed windows kept
/// for their lateness) crossing the checkpoint.
#[tokio::test(flavor = "current_thread")]
async fn checkpoint_halfway_restore_gives_identical_output_with_late_data() {
    let late = checkpoint_halfway_restore(late_config, Some(GOLDEN_LATE)).await;
    assert!(late.late > 1_000, "{late:?}");
    assert_eq!(late.too_late, 0, "all within the allowed lateness");
}

async fn checkpoint_halfway_restore(config: fn() -> TopologyConfig, golden: Option<&str>) -> LateStats {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    // Both runs read the same bus (reading does not change it).
    let bus = loaded_bus().await;
    let (expected, expected_snapshots, late) = uninterrupted(config(), bus.clone(), dir_a.path()).await;
    assert!(
        expected.len() > 10_000,
        "a meaningful amount of output: {}",
        expected.len()
    );
    if let Some(golden) = golden {
        check_golden(golden, &expected, &expected_snapshots);
    }

    // Same input; stop half-way, checkpoint, drop everything in memory.
    let mut first = Emitter::default();
    let mut topology = Topology::new(config(), bus.clone(), Some(dir_b.path().to_owned())).expect("topology");
    topology.start(&mut first);
    let read = rounds(&mut topology, &mut first, EVENTS / 2).await;
    topology.snapshots().apply(first.snapshots.drain(..));
    topology.checkpoint().await.expect("checkpoint");
    drop(topology);

    // A new process: restore from the directory and continue.
    let mut topology = Topology::new(config(), bus, Some(dir_b.path().to_owned())).expect("restore");
    let mut second = Emitter::default();
    topology.start(&mut second);
    assert_eq!(
        read + rounds(&mut topology, &mut second, usize::MAX).await,
        EVENTS
    );
    let snapshots = topology.snapshots();
    snapshots.apply(second.snapshots.drain(..));

    let mut actual = lines(&first.outputs);
    actual.extend(lines(&second.outputs));
    assert_eq!(actual.len(), expected.len(), "same number of messages");
    if let Some(i) = actual.iter().zip(&expected).position(|(a, e)| a != e) {
        panic!(
            "first difference at message {i}:\n  got      {}\n  expected {}",
            actual[i], expected[i]
        );
    }
    assert_eq!(snapshot_of(&snapshots), expected_snapshots);
    let ids: std::collections::HashSet<&str> = actual
        .iter()
        .map(|l| {
            l.split("\"id\":\"")
                .nth(1)
                .unwrap_or_default()
                .get(..33)
                .unwrap_or_default()
        })
        .collect();
    if ids.len() != actual.len() {
        let mut seen = std::collections::HashMap::new();
        for line in &actual {
            let id = line
                .split("\"id\":\"")
                .nth(1)
                .unwrap_or_default()
                .get(..33)
                .unwrap_or_default();
            if let Some(previous) = seen.insert(id, line) {
                panic!("duplicate id:\n  {previous}\n  {line}");
            }
        }
    }
    late
}

/// The checkpoint files in `dir`, oldest first.
fn checkpoint_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

/// A checkpoint that never reached the disk (the process died while it was being written, after its round log was
/// started), a restart that replays two round logs, a checkpoint taken after the replay, and a second restart:
/// the output is still exactly the uninterrupted run's.
#[tokio::test(flavor = "current_thread")]
async fn restarts_after_a_checkpoint_that_never_reached_the_disk_give_identical_output() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = loaded_bus().await;
    let (expected, expected_snapshots, _) = uninterrupted(config(), bus.clone(), dir_a.path()).await;

    // First process: checkpoint 1 on disk; checkpoint 2 lost; rounds after it recorded; crash.
    let mut first = Emitter::default();
    let mut topology = Topology::new(config(), bus.clone(), Some(dir.path().to_owned())).expect("topology");
    topology.start(&mut first);
    let mut read = rounds(&mut topology, &mut first, EVENTS / 4).await;
    topology.checkpoint().await.expect("checkpoint 1");
    let kept_first = first.outputs.len();
    rounds(&mut topology, &mut first, EVENTS / 4).await;
    topology.checkpoint().await.expect("checkpoint 2");
    rounds(&mut topology, &mut first, EVENTS / 8).await;
    drop(topology);
    let files = checkpoint_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    std::fs::remove_file(&files[1]).expect("lose checkpoint 2");

    // Second process: restores checkpoint 1, replays both logs, goes on, checkpoints, crashes.
    let mut second = Emitter::default();
    let mut topology = Topology::new(config(), bus.clone(), Some(dir.path().to_owned())).expect("restore 1");
    topology.start(&mut second);
    let replayed_and_more = rounds(&mut topology, &mut second, 3 * EVENTS / 8 + EVENTS / 8).await;
    read += replayed_and_more;
    topology.checkpoint().await.expect("checkpoint 3");
    let kept_second = second.outputs.len();
    rounds(&mut topology, &mut second, EVENTS / 16).await;
    drop(topology);

    // Third process: restores the second one's checkpoint and runs to the end.
    let mut third = Emitter::default();
    let mut topology = Topology::new(config(), bus, Some(dir.path().to_owned())).expect("restore 2");
    topology.start(&mut third);
    assert_eq!(read + rounds(&mut topology, &mut third, usize::MAX).await, EVENTS);
    let snapshots = topology.snapshots();
    snapshots.apply(first.snapshots.drain(..));
    snapshots.apply(second.snapshots.drain(..));
    snapshots.apply(third.snapshots.drain(..));

    let mut actual = lines(&first.outputs[..kept_first]);
    actual.extend(lines(&second.outputs[..kept_second]));
    actual.extend(lines(&third.outputs));
    if let Some(i) = actual.iter().zip(&expected).position(|(a, e)| a != e) {
        panic!(
            "first difference at message {i}:\n  got      {}\n  expected {}",
            actual[i], expected[i]
        );
    }
    assert_eq!(actual.len(), expected.len(), "same number of messages");
    assert_eq!(snapshot_of(&snapshots), expected_snapshots);
}

/// FNV-1a, 64 bits: a digest that depends on nothing but the bytes (no dependency, stable across platforms).
fn fnv1a(bytes: impl IntoIterator<Item = u8>, mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Compares the output with the digest recorded at `path` (relative to the crate), or records it when
/// `UPDATE_GOLDEN` is set.
fn check_golden(path: &str, lines: &[String], snapshots: &serde_json::Value) {
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for line in lines {
        hash = fnv1a(line.bytes().chain([b'\n']), hash);
    }
    let snapshot_hash = fnv1a(snapshots.to_string().into_bytes(), 0xcbf2_9ce4_8422_2325);
    let first = lines.first().map(String::as_str).unwrap_or_default();
    let id = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["message"]["id"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let recorded = format!(
        "messages {}\noutput fnv1a64 {hash:016x}\nsnapshots fnv1a64 {snapshot_hash:016x}\nfirst id {}\nlast id {}\n",
        lines.len(),
        id(first),
        id(lines.last().map(String::as_str).unwrap_or_default()),
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(file.parent().expect("a directory")).expect("golden directory");
        std::fs::write(&file, &recorded).expect("golden file written");
        return;
    }
    let golden = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (record it with UPDATE_GOLDEN=1)", file.display()));
    assert_eq!(
        recorded,
        golden,
        "the operators' output for the golden workload changed ({}); if on purpose, record it with UPDATE_GOLDEN=1",
        file.display()
    );
}
