use std::fs::OpenOptions;

use super::*;
use crate::bus::conformance::{self, assert_tagged, records};

async fn open(dir: &Path) -> DurableBus {
    DurableBus::open(DurableBusConfig::new(dir)).await.unwrap()
}

async fn topic(bus: &DurableBus, name: &str, partitions: u32) {
    bus.ensure_topic(&TopicSpec {
        name: name.to_string(),
        partitions,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path()).await;
    conformance::run_all(&bus).await;
    bus.close().await.unwrap();
}

#[tokio::test]
async fn long_poll_wakes_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    conformance::long_poll(&open(dir.path()).await).await;
}

#[tokio::test]
async fn close_wakes_waiting_fetch() {
    let dir = tempfile::tempdir().unwrap();
    conformance::close_wakes_fetch(Arc::new(open(dir.path()).await)).await;
}

#[tokio::test]
async fn retention_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = DurableBusConfig {
        segment_bytes: 2048,
        retention_bytes_per_partition: 8192,
        ..DurableBusConfig::new(dir.path())
    };
    let bus = DurableBus::open(config.clone()).await.unwrap();
    conformance::retention(&bus).await;
    let start = bus.start_offset("t", 0).await.unwrap();
    bus.close().await.unwrap();
    let bus = DurableBus::open(config).await.unwrap();
    assert_eq!(bus.start_offset("t", 0).await.unwrap(), start);
}

#[tokio::test]
async fn reopen_restores_topics_records_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so that reads after reopening cross segments that have no index yet.
    let config = DurableBusConfig {
        segment_bytes: 512,
        ..DurableBusConfig::new(dir.path())
    };
    let bus = DurableBus::open(config.clone()).await.unwrap();
    topic(&bus, "social events/ü", 3).await;
    topic(&bus, "empty", 1).await;
    bus.append("social events/ü", 0, records(0, 100)).await.unwrap();
    bus.append("social events/ü", 2, records(0, 7)).await.unwrap();
    bus.commit("group one", "social events/ü", 0, 60).await.unwrap();
    bus.commit("g2", "empty", 0, 0).await.unwrap();
    bus.close().await.unwrap();

    let bus = DurableBus::open(config).await.unwrap();
    assert_eq!(bus.partitions("social events/ü").unwrap(), 3);
    assert_eq!(bus.partitions("empty").unwrap(), 1);
    topic(&bus, "social events/ü", 3).await;
    let mismatch = bus
        .ensure_topic(&TopicSpec {
            name: "empty".into(),
            partitions: 2,
        })
        .await;
    assert!(matches!(
        mismatch,
        Err(BusError::PartitionMismatch { existing: 1, .. })
    ));
    assert_eq!(bus.end_offset("social events/ü", 0).await.unwrap(), 100);
    assert_eq!(bus.end_offset("social events/ü", 1).await.unwrap(), 0);
    assert_tagged(
        &bus.fetch("social events/ü", 0, 37, 1000, Duration::ZERO)
            .await
            .unwrap(),
        37,
    );
    assert_eq!(
        bus.fetch("social events/ü", 0, 0, 1000, Duration::ZERO)
            .await
            .unwrap()
            .len(),
        100
    );
    assert_tagged(
        &bus.fetch("social events/ü", 2, 0, 1000, Duration::ZERO)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(
        bus.committed("group one", "social events/ü", 0).await.unwrap(),
        Some(60)
    );
    assert_eq!(bus.committed("g2", "empty", 0).await.unwrap(), Some(0));
    assert_eq!(bus.committed("g2", "social events/ü", 0).await.unwrap(), None);
    assert_eq!(
        bus.append("social events/ü", 0, records(100, 1)).await.unwrap(),
        100
    );
    bus.close().await.unwrap();
}

#[tokio::test]
async fn reopen_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path()).await;
    topic(&bus, "t", 1).await;
    bus.append("t", 0, records(0, 10)).await.unwrap();
    bus.close().await.unwrap();
    let segment = dir.path().join("topics/t/0/00000000000000000000.log");
    let len = std::fs::metadata(&segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let bus = open(dir.path()).await;
    assert_eq!(bus.end_offset("t", 0).await.unwrap(), 9);
    assert_eq!(bus.append("t", 0, records(9, 3)).await.unwrap(), 9);
    assert_tagged(&bus.fetch("t", 0, 0, 100, Duration::ZERO).await.unwrap(), 0);
    assert_eq!(bus.end_offset("t", 0).await.unwrap(), 12);
    bus.close().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_topic_creation_is_ignored_and_redone() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).await.close().await.unwrap();
    std::fs::create_dir_all(dir.path().join("topics/half/0")).unwrap(); // no topic.meta: creation never finished
    let bus = open(dir.path()).await;
    assert!(matches!(bus.partitions("half"), Err(BusError::UnknownTopic(_))));
    topic(&bus, "half", 2).await;
    assert_eq!(bus.append("half", 1, records(0, 1)).await.unwrap(), 0);
    bus.close().await.unwrap();
    assert_eq!(open(dir.path()).await.partitions("half").unwrap(), 2);
}

/// On the current-thread runtime the writer cannot run while `join_all` polls every append once, so a queue of
/// one takes the first append and refuses the second.
#[tokio::test]
async fn a_full_queue_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let bus = DurableBus::open(DurableBusConfig {
        max_pending_appends: 1,
        ..DurableBusConfig::new(dir.path())
    })
    .await
    .unwrap();
    topic(&bus, "t", 1).await;
    let results = futures::future::join_all((0..3).map(|n| bus.append("t", 0, records(n, 1)))).await;
    assert!(matches!(results[0], Ok(0)));
    assert!(
        results[1..]
            .iter()
            .all(|result| matches!(result, Err(BusError::Backpressure))),
        "{results:?}"
    );
    assert!(results[1].as_ref().is_err_and(BusError::is_retryable));
    assert_eq!(bus.append("t", 0, records(1, 1)).await.unwrap(), 1);
    bus.close().await.unwrap();
}

/// Appends already queued when `close` starts are written and answered before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_drains_queued_appends() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(open(dir.path()).await);
    topic(&bus, "t", 1).await;
    let appends: Vec<_> = (0..50)
        .map(|_| {
            let bus = Arc::clone(&bus);
            tokio::spawn(async move { bus.append("t", 0, records(0, 100)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    bus.close().await.unwrap();
    let mut accepted = 0;
    for append in appends {
        match append.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(BusError::Closed) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let bus = open(dir.path()).await;
    assert_eq!(
        bus.end_offset("t", 0).await.unwrap(),
        accepted * 100,
        "every acknowledged append is on disk"
    );
}

/// Appends and reads back 1,000,000 records of 300 bytes in batches of 1,000, from concurrent producers, and
/// prints the rates. `cargo test -p social-pipeline --release bus::durable::tests::throughput -- --ignored
/// --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn throughput() {
    for (partitions, producers, batch) in [(1u32, 1u64, 1000u64), (4, 16, 1000), (4, 64, 100)] {
        let dir = tempfile::tempdir().unwrap();
        let bus = Arc::new(open(dir.path()).await);
        topic(&bus, "t", partitions).await;
        let total = 1_000_000 / (producers * batch) * producers * batch;
        let value = bytes::Bytes::from(vec![b'x'; 300]);
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..producers)
            .map(|producer| {
                let (bus, value) = (Arc::clone(&bus), value.clone());
                tokio::spawn(async move {
                    let partition = (producer % u64::from(partitions)) as u32;
                    for _ in 0..total / producers / batch {
                        let records: Vec<Record> = (0..batch)
                            .map(|_| Record {
                                key: "user".into(),
                                value: value.clone(),
                                timestamp_ms: 0,
                            })
                            .collect();
                        loop {
                            match bus.append("t", partition, records.clone()).await {
                                Err(BusError::Backpressure) => tokio::task::yield_now().await,
                                other => break other.map(|_| ()).unwrap(),
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let append_secs = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let mut read = 0;
        for partition in 0..partitions {
            let mut next = 0;
            loop {
                let got = bus
                    .fetch("t", partition, next, 10_000, Duration::ZERO)
                    .await
                    .unwrap();
                let Some(last) = got.last() else { break };
                next = last.offset + 1;
                read += got.len();
            }
        }
        assert_eq!(read as u64, total);
        println!(
            "{partitions} partitions, {producers} producers, batches of {batch}: append {:.0} records/s, fetch {:.0} records/s",
            total as f64 / append_secs,
            total as f64 / started.elapsed().as_secs_f64()
        );
        bus.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_second_bus_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).await;
    let second = DurableBus::open(DurableBusConfig::new(dir.path())).await;
    assert!(
        matches!(second, Err(BusError::Backend(ref message)) if message.contains("in use")),
        "{:?}",
        second.err()
    );
    first.close().await.unwrap();
    drop(first);
    let again = open(dir.path()).await;
    again.close().await.unwrap();
}

/// Appends one record of 100 bytes to `t`/0, `n` times; the first error, if any.
async fn append_each(bus: &DurableBus, n: usize) -> Result<(), BusError> {
    for _ in 0..n {
        let record = Record {
            key: bytes::Bytes::new(),
            value: bytes::Bytes::from(vec![b'x'; 100]),
            timestamp_ms: 1,
        };
        bus.append("t", 0, vec![record]).await?;
    }
    Ok(())
}

/// Retention keeps what a protected consumer has not committed (it would otherwise find its input gone after
/// an outage); beyond `max_bytes_per_partition` appends are refused with `Backpressure`; once it commits,
/// retention frees space and appends are taken again. Across a reopen, too.
#[tokio::test]
async fn retention_waits_for_protected_consumers_and_appends_push_back_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = DurableBusConfig {
        segment_bytes: 1024,
        retention_bytes_per_partition: 4096,
        max_bytes_per_partition: 16_384,
        ..DurableBusConfig::new(dir.path()).protecting("operators", "t")
    };
    let bus = DurableBus::open(config.clone()).await.unwrap();
    topic(&bus, "t", 1).await;
    // Far beyond the retention and the cap: nothing committed, so nothing deleted, and appends stop at the cap.
    let refused = append_each(&bus, 400).await;
    assert!(matches!(refused, Err(BusError::Backpressure)), "{refused:?}");
    assert_eq!(
        bus.start_offset("t", 0).await.unwrap(),
        0,
        "the uncommitted records are kept"
    );
    let end = bus.end_offset("t", 0).await.unwrap();
    assert!(end > 40 && end < 400, "{end}");
    assert_eq!(
        bus.fetch("t", 0, 0, 1_000, Duration::ZERO).await.unwrap().len() as u64,
        end
    );

    // An unprotected group's commit changes nothing; the protected one's lets retention go up to it.
    bus.commit("someone-else", "t", 0, end).await.unwrap();
    assert!(matches!(append_each(&bus, 1).await, Err(BusError::Backpressure)));
    let half = end / 2;
    bus.commit("operators", "t", 0, half).await.unwrap();
    append_each(&bus, 1).await.unwrap();
    let start = bus.start_offset("t", 0).await.unwrap();
    assert!(
        start > 0 && start <= half,
        "retention deleted up to the commit at most: {start} {half}"
    );

    // Reopened, the protection holds from the stored commit.
    bus.close().await.unwrap();
    let bus = DurableBus::open(config).await.unwrap();
    append_each(&bus, 5).await.unwrap();
    assert!(bus.start_offset("t", 0).await.unwrap() <= half);
    let all = bus.end_offset("t", 0).await.unwrap();
    bus.commit("operators", "t", 0, all).await.unwrap();
    append_each(&bus, 50).await.unwrap();
    assert!(
        bus.start_offset("t", 0).await.unwrap() > half,
        "all read: retention as usual"
    );
    bus.close().await.unwrap();
}

/// `append_when_room` on a partition full of records a protected consumer has not committed: it waits (neither
/// fails nor drops the batch), appends the batch once as soon as the consumer's commit lets retention free space,
/// and stops with `Closed` when shutdown comes first.
#[tokio::test]
async fn append_when_room_waits_for_the_protected_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let config = DurableBusConfig {
        segment_bytes: 1024,
        retention_bytes_per_partition: 4096,
        max_bytes_per_partition: 16_384,
        ..DurableBusConfig::new(dir.path()).protecting("analytics", "t")
    };
    let bus = Arc::new(DurableBus::open(config).await.unwrap());
    topic(&bus, "t", 1).await;
    let full = append_each(&bus, 1_000).await;
    assert!(matches!(full, Err(BusError::Backpressure)), "{full:?}");
    let end = bus.end_offset("t", 0).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn({
        let (bus, shutdown) = (bus.clone(), shutdown.clone());
        async move { crate::bus::append_when_room(&*bus, "t", 0, records(0, 3), &shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !writer.is_finished(),
        "the append waits while the partition is full"
    );
    bus.commit("analytics", "t", 0, end).await.unwrap();
    let appended = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(appended.unwrap(), end);
    assert_eq!(bus.end_offset("t", 0).await.unwrap(), end + 3);

    // Full again, and shutdown comes first: `Closed` instead of waiting on.
    let full = append_each(&bus, 1_000).await;
    assert!(matches!(full, Err(BusError::Backpressure)), "{full:?}");
    let stopped = tokio::spawn({
        let (bus, shutdown) = (bus.clone(), shutdown.clone());
        async move { crate::bus::append_when_room(&*bus, "t", 0, records(0, 1), &shutdown).await }
    });
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(BusError::Closed)), "{result:?}");
}

/// A partition whose log failed (a failed fsync) answers its appends with an error and is reported failed, for
/// readiness: only reopening the bus (a restart) makes it take appends again.
#[tokio::test]
async fn a_partition_whose_log_failed_is_reported_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    let read = Arc::new(PartitionRead {
        reader: wal.reader(),
        appended: Notify::new(),
    });
    wal.fail_for_test();
    let (queue, requests) = mpsc::channel(4);
    let failed = Arc::new(AtomicBool::new(false));
    let limits = WriterLimits {
        max_group: 4,
        max_bytes: u64::MAX,
    };
    let writer = tokio::spawn(run_writer(wal, requests, read, limits, Arc::clone(&failed)));
    let (reply, answer) = oneshot::channel();
    queue
        .send(AppendRequest {
            records: records(0, 1),
            reply,
        })
        .await
        .unwrap();
    assert!(answer.await.unwrap().is_err());
    assert!(failed.load(Ordering::Acquire));
    drop(queue);
    writer.await.unwrap();
}

#[tokio::test]
async fn partitions_are_not_failed_after_ordinary_appends() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path()).await;
    topic(&bus, "t", 2).await;
    bus.append("t", 1, records(0, 3)).await.unwrap();
    assert!(bus.failed_partitions().is_empty());
}
