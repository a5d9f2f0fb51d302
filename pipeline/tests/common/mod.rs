//! Helpers shared by the operator tests: building events and running the engine.
#![allow(dead_code, unreachable_pub)]

use chrono::DateTime;
use social_pipeline::operator::{Emitter, Engine, OperatorConfig, Output};
use social_schemas::{Event, Payload};

pub fn event(id: &str, t_ms: i64, payload: impl Into<Payload>) -> Event {
    let time = DateTime::from_timestamp_millis(t_ms).expect("time in range");
    Event::new(id, "/tests", time, payload)
}

/// Feeds `batches` (partition, event) into a fresh engine, advancing after each batch, then finishes.
pub fn run(config: &OperatorConfig, partitions: u32, batches: &[Vec<(u32, Event)>]) -> (Engine, Vec<Output>) {
    let (engine, out) = run_full(config, partitions, batches);
    (engine, out.outputs)
}

/// Like [`run`], with the snapshot updates too.
pub fn run_full(
    config: &OperatorConfig,
    partitions: u32,
    batches: &[Vec<(u32, Event)>],
) -> (Engine, Emitter) {
    let mut engine = Engine::new(config.clone(), partitions).expect("valid config");
    let mut out = Emitter::default();
    engine.start(&mut out);
    for batch in batches {
        for (partition, event) in batch {
            engine.push(*partition, event.clone(), &mut out);
        }
        engine.advance(&mut out);
    }
    engine.finish(&mut out);
    (engine, out)
}

pub fn data_of<'a>(outputs: &'a [Output], event_type: &'a str) -> impl Iterator<Item = &'a Output> + 'a {
    outputs.iter().filter(move |o| o.message.event_type == event_type)
}
