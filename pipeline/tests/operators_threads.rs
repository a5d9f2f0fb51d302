//! The operators on one thread and on two give the same output, message for message and snapshot update for
//! snapshot update: the generator's workload (every live feature), in batches large enough for the second thread
//! to run and in batches too small for it. (Across batchings only the on-arrival notifications move: the oracle
//! test covers that.)

mod common;

use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::operator::{Emitter, OperatorConfig};
use social_schemas::{Event, Limits, parse_event};

const EVENTS: usize = 40_000;
const PARTITIONS: u32 = 4;

fn workload() -> Vec<(u32, Event)> {
    let limits = Limits::default();
    Generator::new(GeneratorConfig::with_seed(7))
        .take(EVENTS)
        .map(|g| {
            let partition = social_pipeline::bus::partition::partition_for_key(g.key.as_bytes(), PARTITIONS);
            let event = parse_event(&g.json, &limits).expect("generated events are valid");
            (partition, event)
        })
        .collect()
}

fn batches(events: &[(u32, Event)], size: usize) -> Vec<Vec<(u32, Event)>> {
    events.chunks(size).map(<[_]>::to_vec).collect()
}

/// Every output and snapshot update, serialized, in order.
fn lines(out: &Emitter) -> (Vec<String>, Vec<String>) {
    let outputs = out
        .outputs
        .iter()
        .map(|o| serde_json::to_string(o).expect("serializable"))
        .collect();
    let snapshots = out
        .snapshots
        .iter()
        .map(|s| {
            let value = s.value.as_ref().map(|v| v.get().to_owned()).unwrap_or_default();
            format!("{} {} {value}", s.topic, s.part)
        })
        .collect();
    (outputs, snapshots)
}

fn run(threads: usize, events: &[(u32, Event)], batch: usize) -> ((Vec<String>, Vec<String>), String) {
    let config = OperatorConfig {
        threads,
        ..OperatorConfig::default()
    };
    let (engine, out) = common::run_full(&config, PARTITIONS, &batches(events, batch));
    let state = serde_json::to_string(&engine.snapshot().graph).expect("serializable");
    (lines(&out), state)
}

#[test]
fn one_and_two_threads_give_the_same_output_and_state() {
    let events = workload();
    for batch in [2_048, 700, 64] {
        let (reference, reference_state) = run(1, &events, batch);
        assert!(reference.0.len() > EVENTS / 2, "the workload produces messages");
        assert!(!reference.1.is_empty(), "the workload updates snapshots");
        let (got, state) = run(2, &events, batch);
        assert_eq!(got.0.len(), reference.0.len(), "outputs, batches of {batch}");
        if let Some(i) = (0..got.0.len()).find(|&i| got.0[i] != reference.0[i]) {
            panic!(
                "batches of {batch}: output {i} differs:\n{}\n{}",
                got.0[i], reference.0[i]
            );
        }
        assert!(got.1 == reference.1, "snapshot updates, batches of {batch}");
        assert!(state == reference_state, "final state, batches of {batch}");
    }
}

#[test]
fn a_checkpoint_of_two_sides_restores_to_the_same_state() {
    let events = workload();
    let config = OperatorConfig::default();
    let (engine, _) = common::run_full(&config, PARTITIONS, &batches(&events[..EVENTS / 2], 1_000));
    let state = engine.snapshot();
    let json = serde_json::to_string(&state).expect("serializable");
    // One directory in the checkpoint, holding both sides' parts.
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let directory = &value["graph"]["directory"];
    for part in ["codes", "referred_by", "shares", "testimonial_authors", "privacy"] {
        assert!(
            directory[part].as_object().is_some_and(|m| !m.is_empty()),
            "directory part {part} in the checkpoint"
        );
    }
    let restored = social_pipeline::operator::Engine::restore(
        config,
        serde_json::from_str(&json).expect("a checkpoint reads back"),
    )
    .expect("restore");
    // Compared as values: hash maps list their entries in another order once rebuilt.
    let again = serde_json::to_value(restored.snapshot()).expect("serializable");
    assert!(
        again == value,
        "restore then checkpoint gives the same checkpoint"
    );
}

#[test]
fn the_engine_stays_send_and_sync() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<social_pipeline::operator::Engine>();
    send_and_sync::<social_pipeline::operator::EngineState>();
}
