//! The ingest core against a bus that refuses one partition: what a `503` leaves behind and what its retry adds.

use std::sync::Arc;

use bytes::Bytes;

use super::{IngestConfig, IngestError, Ingestor};
use crate::bus::memory::{MemoryBus, MemoryBusConfig};
use crate::bus::partition::partition_for_key;
use crate::bus::{Bus, BusError, DEAD_LETTER_TOPIC, INPUT_TOPIC, ProtectedConsumer, Record};

const GROUP: &str = "operators";

fn registered(user: &str) -> Vec<u8> {
    serde_json::json!({
        "specversion": "1.0", "id": format!("reg-{user}"), "source": "/services/user-management",
        "type": "user.registered", "time": "2025-03-15T14:30:40Z",
        "data": {"userId": user, "role": "homeowner"}
    })
    .to_string()
    .into_bytes()
}

/// A user whose events go to `partition` of `partitions`.
fn user_on(partition: u32, partitions: u32) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|user| partition_for_key(user.as_bytes(), partitions) == partition)
        .unwrap_or_default()
}

async fn records(bus: &MemoryBus, topic: &str, partition: u32) -> usize {
    bus.fetch(topic, partition, 0, 1_000, std::time::Duration::ZERO)
        .await
        .expect("fetch")
        .len()
}

#[tokio::test]
async fn a_request_refused_by_one_partition_writes_its_dead_letters_once_on_the_retry() {
    let bus = Arc::new(MemoryBus::new(MemoryBusConfig {
        retention_bytes_per_partition: 1_024,
        protected: vec![ProtectedConsumer::new(GROUP, INPUT_TOPIC)],
        max_bytes_per_partition: 4_096,
    }));
    let ingestor = Ingestor::open(bus.clone(), IngestConfig::default())
        .await
        .expect("open");
    let partitions = bus.partitions(INPUT_TOPIC).expect("partitions");
    // Partition 0 is full: its consumer has read nothing.
    let filler = Record {
        key: Bytes::new(),
        value: Bytes::from(vec![b'x'; 5_000]),
        timestamp_ms: 0,
    };
    bus.append(INPUT_TOPIC, 0, vec![filler]).await.expect("filler");
    let (full, free) = (user_on(0, partitions), user_on(1, partitions));
    let (to_full, to_free) = (registered(&full), registered(&free));
    let request: [&[u8]; 3] = [&to_full, b"{not json", &to_free];

    let refused = ingestor.ingest(&request, "application/x-ndjson").await;
    assert!(
        matches!(refused, Err(IngestError::Bus(BusError::Backpressure))),
        "{refused:?}"
    );
    assert_eq!(
        records(&bus, DEAD_LETTER_TOPIC, 0).await,
        0,
        "written by the retry"
    );
    assert_eq!(
        records(&bus, INPUT_TOPIC, 1).await,
        1,
        "the other partition took its event"
    );
    let stats = ingestor.stats().snapshot();
    assert_eq!((stats.accepted, stats.duplicates, stats.rejected), (1, 0, 0));

    // The consumer catches up; the client retries the whole request.
    bus.commit(GROUP, INPUT_TOPIC, 0, 1).await.expect("commit");
    let report = ingestor
        .ingest(&request, "application/x-ndjson")
        .await
        .expect("retry");
    assert_eq!(
        (report.accepted, report.duplicates, report.rejected.len()),
        (1, 1, 1)
    );
    assert_eq!(records(&bus, DEAD_LETTER_TOPIC, 0).await, 1);
    let stats = ingestor.stats().snapshot();
    assert_eq!((stats.accepted, stats.duplicates, stats.rejected), (2, 1, 1));
}
