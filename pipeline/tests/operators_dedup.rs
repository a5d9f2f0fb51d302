//! Copies of input events (same `source` and `id`, as a producer that retries writes them) have no effect: the
//! output with copies anywhere later in the input, in any batching, is the output without them, byte for byte,
//! message ids and snapshot updates included, and a checkpoint taken between an event and its copy still drops
//! the copy after a restore.

mod common;

use proptest::prelude::*;
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::operator::output::LATE_DATA_TOPIC;
use social_pipeline::operator::{Emitter, Engine, EngineState, OperatorConfig};
use social_schemas::{Event, Limits, parse_event};

const PARTITIONS: u32 = 4;

fn workload(seed: u64, events: usize) -> Vec<(u32, Event)> {
    workload_at(seed, events, GeneratorConfig::with_seed(seed).events_per_second)
}

fn workload_at(seed: u64, events: usize, events_per_second: f64) -> Vec<(u32, Event)> {
    let limits = Limits::default();
    let config = GeneratorConfig {
        events_per_second,
        ..GeneratorConfig::with_seed(seed)
    };
    Generator::new(config)
        .take(events)
        .map(|g| {
            let partition = social_pipeline::bus::partition::partition_for_key(g.key.as_bytes(), PARTITIONS);
            (
                partition,
                parse_event(&g.json, &limits).expect("generated events are valid"),
            )
        })
        .collect()
}

/// The input in batches of `batch`, with a copy of event `i` inserted `delay` events after it for each
/// `(i, delay)` (the copy joins the batch of the event it follows; from another partition when `other_partition`).
fn with_copies(
    events: &[(u32, Event)],
    batch: usize,
    copies: &[(usize, usize, bool)],
) -> Vec<Vec<(u32, Event)>> {
    let mut after: Vec<Vec<(u32, Event)>> = vec![Vec::new(); events.len()];
    for &(i, delay, other_partition) in copies {
        let Some((partition, event)) = events.get(i % events.len()) else {
            continue;
        };
        let at = (i % events.len() + delay).min(events.len() - 1);
        let partition = if other_partition {
            (partition + 1) % PARTITIONS
        } else {
            *partition
        };
        after[at].push((partition, event.clone()));
    }
    let mut batches = Vec::new();
    for (chunk, copies) in events.chunks(batch).zip(after.chunks(batch)) {
        let mut list = Vec::new();
        for (original, copies) in chunk.iter().zip(copies) {
            list.push(original.clone());
            list.extend(copies.iter().cloned());
        }
        batches.push(list);
    }
    batches
}

/// Every output and snapshot update, serialized, in order.
fn lines(out: &Emitter) -> Vec<String> {
    let outputs = out
        .outputs
        .iter()
        .map(|o| serde_json::to_string(o).expect("serializable"));
    let snapshots = out.snapshots.iter().map(|s| {
        let value = s.value.as_ref().map(|v| v.get().to_owned()).unwrap_or_default();
        format!("snapshot {} {} {value}", s.topic, s.part)
    });
    outputs.chain(snapshots).collect()
}

fn assert_same(got: &[String], want: &[String], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("{what}: line {i} differs:\n  got  {}\n  want {}", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "{what}: number of lines");
}

/// Runs `batches`, checkpointing (serialize, drop, restore) after batch `restore_after` when given.
fn run(
    config: &OperatorConfig,
    batches: &[Vec<(u32, Event)>],
    restore_after: Option<usize>,
) -> (Engine, Emitter) {
    let mut engine = Engine::new(config.clone(), PARTITIONS).expect("valid config");
    let mut out = Emitter::default();
    engine.start(&mut out);
    for (index, batch) in batches.iter().enumerate() {
        for (partition, event) in batch {
            engine.push(*partition, event.clone(), &mut out);
        }
        engine.advance(&mut out);
        if restore_after == Some(index) {
            let json = serde_json::to_string(&engine.snapshot()).expect("serializable");
            drop(engine);
            let state: EngineState = serde_json::from_str(&json).expect("a checkpoint reads back");
            engine = Engine::restore(config.clone(), state).expect("restore");
        }
    }
    engine.finish(&mut out);
    (engine, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn copies_change_nothing(
        seed in 0u64..1_000,
        batch in 1usize..800,
        copies in prop::collection::vec((0usize..3_000, 0usize..2_000, any::<bool>()), 1..200),
        threads in 1usize..=2,
        restore in any::<bool>(),
    ) {
        let events = workload(seed, 3_000);
        let config = OperatorConfig { threads, ..OperatorConfig::default() };
        let plain = with_copies(&events, batch, &[]);
        let copied = with_copies(&events, batch, &copies);
        let restore_after = restore.then_some(plain.len() / 2);
        let (_, want) = run(&config, &plain, restore_after);
        let (engine, got) = run(&config, &copied, restore_after);
        assert_same(&lines(&got), &lines(&want), "with copies");
        // Checkpoints carry the counts: every copy is counted once, restore or not.
        prop_assert_eq!(engine.stats().duplicates, copies.len() as u64);
        prop_assert_eq!(engine.stats().too_late, 0);
    }
}

#[test]
fn a_copy_after_the_lateness_is_too_late_and_counts_nothing() {
    let config = OperatorConfig {
        allowed_lateness_ms: 60_000,
        ..OperatorConfig::default()
    };
    // 20 events per second of event time: 6,000 events span 5 minutes.
    let events = workload_at(3, 6_000, 20.0);
    let first_click = events
        .iter()
        .position(|(_, e)| e.event_type().as_str() == "referral.link.clicked")
        .expect("the workload has clicks");
    let span_ms = events
        .last()
        .map(|(_, e)| e.time.timestamp_millis())
        .unwrap_or_default()
        - events[first_click].1.time.timestamp_millis();
    assert!(
        span_ms > 3 * 60_000,
        "the workload spans more than the lateness and a bucket"
    );
    let plain = with_copies(&events, 500, &[]);
    let copied = with_copies(&events, 500, &[(first_click, events.len(), false)]);
    let (plain_engine, _) = run(&config, &plain, None);
    let (engine, out) = run(&config, &copied, None);
    // Not taken as a copy (its key is forgotten) but too late: the late-data side output, no aggregate changed.
    assert_eq!(engine.stats().duplicates, 0);
    assert_eq!(engine.stats().too_late, 1);
    let late: Vec<_> = out
        .outputs
        .iter()
        .filter(|o| o.message.topic == LATE_DATA_TOPIC)
        .collect();
    assert_eq!(late.len(), 1, "the copy reaches the late-data side output");
    assert_eq!(
        late[0].message.data.to_value()["id"],
        serde_json::json!(events[first_click].1.id)
    );
    let state = |e: &Engine| serde_json::to_value(&e.snapshot().graph).expect("serializable");
    assert!(
        state(&engine) == state(&plain_engine),
        "the copy changed no state"
    );
}

#[test]
fn old_checkpoints_without_keys_restore_with_none() {
    let events = workload(5, 2_000);
    let config = OperatorConfig::default();
    let (engine, _) = common::run_full(&config, PARTITIONS, &with_copies(&events, 1_000, &[]));
    let mut value = serde_json::to_value(engine.snapshot()).expect("serializable");
    assert!(value["dedup"].as_array().is_some_and(|b| !b.is_empty()));
    value.as_object_mut().expect("object").remove("dedup");
    value["stats"]
        .as_object_mut()
        .expect("object")
        .remove("duplicates");
    let state: EngineState = serde_json::from_value(value).expect("an older checkpoint reads back");
    let mut engine = Engine::restore(config, state).expect("restore");
    let mut out = Emitter::default();
    let (partition, event) = events[1_999].clone();
    engine.push(partition, event, &mut out);
    assert_eq!(engine.stats().duplicates, 0, "nothing remembered from before");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// With a cap small enough that keys are forgotten (so some copies count again), which copies are dropped
    /// does not depend on the batching: the keys go when an admission passes the cap, oldest minutes first.
    /// (The messages may differ: a copy that counts arrives behind the watermark in one batching and not in
    /// another, and late events are applied as corrections.)
    #[test]
    fn what_the_cap_forgets_does_not_depend_on_batching(
        seed in 0u64..1_000,
        batches in (1usize..600, 1usize..600),
        copies in prop::collection::vec((0usize..3_000, 0usize..2_000, any::<bool>()), 50..300),
    ) {
        // 5 events per second of event time: 3,000 events span 10 minutes, about 300 per minute.
        let events = workload_at(seed, 3_000, 5.0);
        let config = OperatorConfig { dedup_max_keys: 400, ..OperatorConfig::default() };
        let (first, _) = run(&config, &with_copies(&events, batches.0, &copies), None);
        let (second, _) = run(&config, &with_copies(&events, batches.1, &copies), None);
        prop_assert_eq!(first.stats().duplicates, second.stats().duplicates);
        prop_assert!(first.stats().duplicates < copies.len() as u64, "some keys were forgotten");
    }
}
