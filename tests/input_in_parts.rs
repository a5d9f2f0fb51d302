//! The live state does not depend on how the input arrives: the same events ingested in parts, each part read to
//! its end and what it left buffered flushed (as a quiet spell makes the pipeline do), reach the state the whole
//! input read at once reaches. A flush moves the watermark past every event read, so the next part's first
//! events are late, and some are read before the code or share they name.
#![allow(clippy::unwrap_used)]

mod common;

use common::backends::*;
use social_pipeline::generate::{Generator, GeneratorConfig};

const EVENTS: usize = 36_000;
const PARTITIONS: u32 = 4;

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
        let (whole, late) = state_after_parts(&events, PARTITIONS, &[]).await;
        let whole = order_independent(&whole);
        assert_eq!(late, 0, "read at once, nothing is late");
        for cuts in [
            vec![12_000],
            vec![24_000],
            vec![12_000, 24_000],
            vec![5_000, 17_000, 30_000],
        ] {
            let (parts, late) = state_after_parts(&events, PARTITIONS, &cuts).await;
            let parts = order_independent(&parts);
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
