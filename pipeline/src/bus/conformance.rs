//! Behaviour every [`Bus`] must show, written once against `&dyn Bus` and run by each implementation's tests
//! (a Fluvio adapter can run it against a live cluster too). Each check uses its own topic names, so they can
//! share one bus.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::{Bus, BusError, Record, StoredRecord, TopicSpec};

/// `count` records tagged from `first`: key `k{n}`, value `v{n}`, timestamp `n`.
pub(crate) fn records(first: u64, count: u64) -> Vec<Record> {
    (first..first + count)
        .map(|n| Record {
            key: Bytes::from(format!("k{n}")),
            value: Bytes::from(format!("v{n}")),
            timestamp_ms: n as i64,
        })
        .collect()
}

/// Asserts `got` are the records tagged `first..` at offsets `first..` (tags and offsets coincide in these checks).
pub(crate) fn assert_tagged(got: &[StoredRecord], first: u64) {
    for (n, record) in (first..).zip(got) {
        assert_eq!(record.offset, n);
        assert_eq!(record.key, Bytes::from(format!("k{n}")));
        assert_eq!(record.value, Bytes::from(format!("v{n}")));
        assert_eq!(record.timestamp_ms, n as i64);
    }
}

async fn topic(bus: &dyn Bus, name: &str, partitions: u32) {
    bus.ensure_topic(&TopicSpec {
        name: name.to_string(),
        partitions,
    })
    .await
    .unwrap();
}

pub(crate) async fn run_all(bus: &dyn Bus) {
    topics_and_errors(bus).await;
    ordering_and_offsets(bus).await;
    fetch_bounds(bus).await;
    partitions_are_independent(bus).await;
    concurrent_appends(bus).await;
    commit_and_committed(bus).await;
}

pub(crate) async fn topics_and_errors(bus: &dyn Bus) {
    topic(bus, "errors", 2).await;
    topic(bus, "errors", 2).await; // idempotent
    let mismatch = bus
        .ensure_topic(&TopicSpec {
            name: "errors".into(),
            partitions: 3,
        })
        .await;
    assert!(
        matches!(
            mismatch,
            Err(BusError::PartitionMismatch {
                existing: 2,
                requested: 3,
                ..
            })
        ),
        "{mismatch:?}"
    );
    assert_eq!(bus.partitions("errors").unwrap(), 2);
    let none = bus
        .ensure_topic(&TopicSpec {
            name: "no-partitions".into(),
            partitions: 0,
        })
        .await;
    assert!(matches!(none, Err(BusError::Backend(_))), "{none:?}");
    assert!(matches!(
        bus.partitions("no-partitions"),
        Err(BusError::UnknownTopic(_))
    ));

    assert!(matches!(bus.partitions("nope"), Err(BusError::UnknownTopic(_))));
    assert!(matches!(
        bus.append("nope", 0, records(0, 1)).await,
        Err(BusError::UnknownTopic(_))
    ));
    let wait = Duration::ZERO;
    assert!(matches!(
        bus.fetch("nope", 0, 0, 1, wait).await,
        Err(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        bus.end_offset("nope", 0).await,
        Err(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        bus.commit("g", "nope", 0, 1).await,
        Err(BusError::UnknownTopic(_))
    ));

    let unknown =
        |result: &Result<_, BusError>| matches!(result, Err(BusError::UnknownPartition { partition: 2, .. }));
    assert!(unknown(&bus.append("errors", 2, records(0, 1)).await.map(|_| ())));
    assert!(unknown(&bus.fetch("errors", 2, 0, 1, wait).await.map(|_| ())));
    assert!(unknown(&bus.start_offset("errors", 2).await.map(|_| ())));
    assert!(unknown(&bus.end_offset("errors", 2).await.map(|_| ())));
    assert!(unknown(&bus.commit("g", "errors", 2, 0).await));
    assert!(unknown(&bus.committed("g", "errors", 2).await.map(|_| ())));
}

pub(crate) async fn ordering_and_offsets(bus: &dyn Bus) {
    topic(bus, "order", 1).await;
    assert_eq!(bus.end_offset("order", 0).await.unwrap(), 0);
    assert_eq!(bus.append("order", 0, records(0, 3)).await.unwrap(), 0);
    assert_eq!(bus.append("order", 0, records(3, 1000)).await.unwrap(), 3);
    assert_eq!(
        bus.append("order", 0, Vec::new()).await.unwrap(),
        1003,
        "an empty append changes nothing"
    );
    assert_eq!(bus.append("order", 0, records(1003, 2)).await.unwrap(), 1003);
    assert_eq!(bus.start_offset("order", 0).await.unwrap(), 0);
    assert_eq!(bus.end_offset("order", 0).await.unwrap(), 1005);

    let all = bus.fetch("order", 0, 0, 10_000, Duration::ZERO).await.unwrap();
    assert_eq!(all.len(), 1005);
    assert_tagged(&all, 0);

    // Reading in small steps sees the same sequence.
    let mut next = 0;
    while next < 1005 {
        let got = bus.fetch("order", 0, next, 7, Duration::ZERO).await.unwrap();
        assert!(!got.is_empty() && got.len() <= 7);
        assert_tagged(&got, next);
        next += got.len() as u64;
    }
}

pub(crate) async fn fetch_bounds(bus: &dyn Bus) {
    topic(bus, "bounds", 1).await;
    bus.append("bounds", 0, records(0, 50)).await.unwrap();
    let middle = bus.fetch("bounds", 0, 20, 5, Duration::ZERO).await.unwrap();
    assert_eq!(middle.len(), 5);
    assert_tagged(&middle, 20);
    let tail = bus.fetch("bounds", 0, 45, 100, Duration::ZERO).await.unwrap();
    assert_eq!(tail.len(), 5);
    assert_tagged(&tail, 45);
    assert!(
        bus.fetch("bounds", 0, 50, 100, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        bus.fetch("bounds", 0, 0, 0, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let beyond = bus.fetch("bounds", 0, 51, 100, Duration::ZERO).await;
    assert!(
        matches!(
            beyond,
            Err(BusError::OffsetBeyondEnd {
                requested: 51,
                end: 50
            })
        ),
        "{beyond:?}"
    );
}

pub(crate) async fn partitions_are_independent(bus: &dyn Bus) {
    topic(bus, "parts", 3).await;
    bus.append("parts", 1, records(0, 4)).await.unwrap();
    assert_eq!(bus.append("parts", 2, records(0, 2)).await.unwrap(), 0);
    assert_eq!(bus.end_offset("parts", 0).await.unwrap(), 0);
    assert_eq!(bus.end_offset("parts", 1).await.unwrap(), 4);
    assert_eq!(bus.end_offset("parts", 2).await.unwrap(), 2);
    assert_tagged(&bus.fetch("parts", 2, 0, 10, Duration::ZERO).await.unwrap(), 0);
}

/// Many appends in flight at once (the durable bus commits them as groups) get disjoint, gapless offsets, and
/// each batch stays contiguous.
pub(crate) async fn concurrent_appends(bus: &dyn Bus) {
    topic(bus, "concurrent", 1).await;
    let appends = (0..64u64).map(|batch| async move {
        let mut records = records(0, 10);
        for record in &mut records {
            record.value = Bytes::from(format!("{batch}"));
        }
        (batch, bus.append("concurrent", 0, records).await.unwrap())
    });
    let mut firsts = futures::future::join_all(appends).await;
    firsts.sort_by_key(|(_, first)| *first);
    for (n, (_, first)) in firsts.iter().enumerate() {
        assert_eq!(*first, n as u64 * 10);
    }
    let all = bus.fetch("concurrent", 0, 0, 1000, Duration::ZERO).await.unwrap();
    assert_eq!(all.len(), 640);
    for (batch, first) in firsts {
        for record in &all[first as usize..first as usize + 10] {
            assert_eq!(record.value, Bytes::from(format!("{batch}")));
        }
    }
}

pub(crate) async fn commit_and_committed(bus: &dyn Bus) {
    topic(bus, "commits", 2).await;
    assert_eq!(bus.committed("g1", "commits", 0).await.unwrap(), None);
    bus.commit("g1", "commits", 0, 10).await.unwrap();
    bus.commit("g1", "commits", 0, 12).await.unwrap();
    bus.commit("g2", "commits", 0, 3).await.unwrap();
    bus.commit("g1", "commits", 1, 0).await.unwrap();
    assert_eq!(bus.committed("g1", "commits", 0).await.unwrap(), Some(12));
    assert_eq!(bus.committed("g2", "commits", 0).await.unwrap(), Some(3));
    assert_eq!(bus.committed("g1", "commits", 1).await.unwrap(), Some(0));
    assert_eq!(bus.committed("g2", "commits", 1).await.unwrap(), None);
}

/// Real time, kept short (tokio's paused clock needs the `test-util` feature, which the crate does not enable):
/// the timeout must take the whole `max_wait`; the wake-up must come long before its `max_wait`.
pub(crate) async fn long_poll(bus: &dyn Bus) {
    topic(bus, "poll", 1).await;
    let started = Instant::now();
    assert!(
        bus.fetch("poll", 0, 0, 10, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited the whole max_wait"
    );

    let started = Instant::now();
    let fetch = bus.fetch("poll", 0, 0, 10, Duration::from_secs(60));
    let append = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.append("poll", 0, records(0, 2)).await.unwrap()
    };
    let (got, _) = tokio::join!(fetch, append);
    assert_tagged(&got.unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "woken by the append, not the deadline"
    );
}

/// A fetch waiting at the end returns `Closed` when the bus closes; afterwards every call fails with `Closed`.
pub(crate) async fn close_wakes_fetch(bus: Arc<dyn Bus>) {
    topic(bus.as_ref(), "closing", 1).await;
    bus.append("closing", 0, records(0, 1)).await.unwrap();
    let waiting = {
        let bus = Arc::clone(&bus);
        tokio::spawn(async move { bus.fetch("closing", 0, 1, 10, Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    bus.close().await.unwrap();
    let started = Instant::now();
    assert!(matches!(waiting.await.unwrap(), Err(BusError::Closed)));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(
        bus.append("closing", 0, records(1, 1)).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.fetch("closing", 0, 0, 1, Duration::ZERO).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.ensure_topic(&TopicSpec {
            name: "x".into(),
            partitions: 1
        })
        .await,
        Err(BusError::Closed)
    ));
    assert!(matches!(bus.partitions("closing"), Err(BusError::Closed)));
    assert!(matches!(
        bus.commit("g", "closing", 0, 1).await,
        Err(BusError::Closed)
    ));
    bus.close().await.unwrap(); // closing twice is harmless
}

/// The bus must be configured to keep only a few KiB per partition: old records go, reading them is an error
/// that names the first retained offset, and reading from there works.
pub(crate) async fn retention(bus: &dyn Bus) {
    topic(bus, "t", 1).await;
    for batch in 0..100u64 {
        let records = (0..10)
            .map(|n| Record {
                key: Bytes::new(),
                value: Bytes::from(vec![b'x'; 100]),
                timestamp_ms: (batch * 10 + n) as i64,
            })
            .collect();
        bus.append("t", 0, records).await.unwrap();
    }
    let start = bus.start_offset("t", 0).await.unwrap();
    assert!(start > 0, "retention removed nothing");
    assert_eq!(bus.end_offset("t", 0).await.unwrap(), 1000);
    let gone = bus.fetch("t", 0, 0, 10, Duration::ZERO).await;
    assert!(
        matches!(gone, Err(BusError::OffsetOutOfRange { requested: 0, earliest }) if earliest == start),
        "{gone:?}"
    );
    let kept = bus.fetch("t", 0, start, 10_000, Duration::ZERO).await.unwrap();
    assert_eq!(kept.len() as u64, 1000 - start);
    assert_eq!(kept.first().map(|record| record.offset), Some(start));
    assert_eq!(kept.last().map(|record| record.timestamp_ms), Some(999));
}
