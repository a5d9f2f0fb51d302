//! The live state does not depend on how the input arrives: the same events ingested in parts, each part read to
//! its end and what it left buffered flushed (as a quiet spell makes the pipeline do), reach the state the whole
//! input read at once reaches. A flush moves the watermark past every event read, so the next part's first
//! events are late, and some are read before the code or share they name.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::backends::*;
use social_pipeline::bus::Bus;
use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::ingest::{IngestConfig, Ingestor};
use social_pipeline::operator::Emitter;
use social_pipeline::topology::{Topology, TopologyConfig};

const EVENTS: usize = 36_000;
const PARTITIONS: u32 = 4;

/// The order-independent live state after ingesting `events` in parts ending at `cuts` (and at the end), reading
/// each part until two rounds find nothing.
async fn state_after_parts(events: &[Vec<u8>], cuts: &[usize]) -> (State, u64) {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(MemoryBusConfig::default()));
    let ingest_config = IngestConfig {
        input_partitions: PARTITIONS,
        ..IngestConfig::default()
    };
    let ingestor = Ingestor::open(bus.clone(), ingest_config).await.unwrap();
    let config = TopologyConfig {
        idle_flush_ms: Some(0),
        partition_idle_ms: 0,
        ..TopologyConfig::default()
    };
    let mut topology = Topology::new(config, bus, None).unwrap();
    let snapshots = topology.snapshots();
    let mut out = Emitter::default();
    topology.start(&mut out);
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&events.len())) {
        for chunk in events[from..to].chunks(1000) {
            let items: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let report = ingestor
                .ingest(&items, "application/cloudevents+json")
                .await
                .unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
        }
        from = to;
        let mut quiet_rounds = 0;
        while quiet_rounds < 2 {
            let outcome = topology.round(&mut out).await.unwrap();
            snapshots.apply(out.snapshots.drain(..));
            out.outputs.clear();
            quiet_rounds = if outcome.records == 0 { quiet_rounds + 1 } else { 0 };
        }
    }
    let late = topology.engine().stats().late;
    let state = snapshots
        .export()
        .into_iter()
        .map(|(topic, parts)| {
            let parts = parts
                .into_iter()
                .map(|(part, value)| (part, value.to_value()))
                .collect();
            (topic, parts)
        })
        .collect();
    (order_independent(&state), late)
}

#[tokio::test]
async fn input_read_in_parts_reaches_the_state_of_the_whole() {
    for seed in [21, 5] {
        let events: Vec<Vec<u8>> = Generator::new(GeneratorConfig {
            seed,
            ..GeneratorConfig::default()
        })
        .take(EVENTS)
        .map(|e| e.json)
        .collect();
        let (whole, late) = state_after_parts(&events, &[]).await;
        assert_eq!(late, 0, "read at once, nothing is late");
        for cuts in [
            vec![12_000],
            vec![24_000],
            vec![12_000, 24_000],
            vec![5_000, 17_000, 30_000],
        ] {
            let (parts, late) = state_after_parts(&events, &cuts).await;
            assert!(
                late > 0,
                "seed {seed}, parts ending at {cuts:?}: some events are late"
            );
            let differences = state_differences(&whole, &parts);
            assert!(
                differences.is_empty(),
                "seed {seed}, parts ending at {cuts:?}: {} differences, e.g. {:?}",
                differences.len(),
                &differences[..differences.len().min(3)]
            );
        }
    }
}
