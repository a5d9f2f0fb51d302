//! Integration tests of the Fluvio bus against a live cluster (feature `fluvio`).
//!
//! They run only when `FLUVIO_ENDPOINT` (the SC's public address, e.g. `127.0.0.1:9003`) is set; otherwise
//! each prints a SKIPPED line and passes. Every run uses its own topic names (a per-run prefix), so runs
//! against the same cluster do not see each other. Run with `--nocapture` to see the figures of the backlog
//! test.
//!
//! The checks follow `src/bus/conformance.rs` (private to the crate's unit tests), adapted where Fluvio
//! differs by design: record timestamps are the producer's (not the appended `timestamp_ms`), and one fetch
//! may return fewer records than are available (one stream response), so reads loop until they have what they
//! expect. Retention is not checked: Fluvio's is time-based at segment granularity.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use social_pipeline::bus::fluvio::{FluvioBus, FluvioBusConfig};
use social_pipeline::bus::{Bus, BusError, Record, StoredRecord, TopicSpec};

/// Deleting a topic while another is being created can leave the new partition offline for good (the
/// controller drops its status update), so the one test that deletes runs alone: it takes this lock for
/// writing, every other test for reading.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum ClusterUse {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// The SC address and this test's use of the cluster, or `None` after printing why the test does not run.
async fn cluster(test: &str, exclusive: bool) -> Option<(String, ClusterUse)> {
    match std::env::var("FLUVIO_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            let guard = if exclusive {
                ClusterUse::Exclusive(CLUSTER.write().await)
            } else {
                ClusterUse::Shared(CLUSTER.read().await)
            };
            Some((endpoint, guard))
        }
        _ => {
            // Straight to stderr: the test harness captures `println!`, and a skip must be visible.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED fluvio_bus::{test}: FLUVIO_ENDPOINT is not set (no Fluvio cluster to test against)"
            );
            None
        }
    }
}

/// A topic name unique to this run and call (Fluvio names: lowercase letters, digits and dashes, at most 63).
fn unique(name: &str) -> String {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        format!("{:x}{:x}", std::process::id(), nanos % 0xffff_ffff)
    });
    format!("fb-{run}-{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn config(endpoint: &str) -> FluvioBusConfig {
    FluvioBusConfig {
        offsets_topic: unique("offsets"),
        ..FluvioBusConfig::new(endpoint)
    }
}

async fn connect(endpoint: &str) -> FluvioBus {
    FluvioBus::connect(config(endpoint)).await.unwrap()
}

async fn topic(bus: &dyn Bus, name: &str, partitions: u32) {
    bus.ensure_topic(&TopicSpec {
        name: name.to_string(),
        partitions,
    })
    .await
    .unwrap();
}

/// `count` records tagged from `first`: key `k{n}`, value `v{n}`.
fn records(first: u64, count: u64) -> Vec<Record> {
    (first..first + count)
        .map(|n| Record {
            key: Bytes::from(format!("k{n}")),
            value: Bytes::from(format!("v{n}")),
            timestamp_ms: n as i64,
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

/// Asserts `got` are the records tagged `first..` at offsets `first..`, stamped within the last ten minutes.
fn assert_tagged(got: &[StoredRecord], first: u64) {
    let now = now_ms();
    for (n, record) in (first..).zip(got) {
        assert_eq!(record.offset, n);
        assert_eq!(record.key, Bytes::from(format!("k{n}")));
        assert_eq!(record.value, Bytes::from(format!("v{n}")));
        assert!(
            (now - 600_000..=now + 60_000).contains(&record.timestamp_ms),
            "timestamp {} is not the producer's clock (now {now})",
            record.timestamp_ms
        );
    }
}

/// Reads `count` records from `from` in fetches of at most `step`, checking each fetch is contiguous.
async fn read(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    from: u64,
    count: usize,
    step: usize,
) -> Vec<StoredRecord> {
    let mut all = Vec::with_capacity(count);
    let mut next = from;
    while all.len() < count {
        let step = step.min(count - all.len());
        let got = bus
            .fetch(topic, partition, next, step, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!got.is_empty(), "no record at {next} of {topic}-{partition}");
        assert!(got.len() <= step);
        for (expected, record) in (next..).zip(&got) {
            assert_eq!(record.offset, expected, "offsets must be contiguous");
        }
        next += got.len() as u64;
        all.extend(got);
    }
    assert_eq!(all.len(), count, "read past the expected records");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_errors() {
    let Some((endpoint, _cluster)) = cluster("topics_and_errors", false).await else {
        return;
    };
    let bus = connect(&endpoint).await;
    let bus: &dyn Bus = &bus;
    let errors = unique("errors");
    let nope = unique("nope");
    topic(bus, &errors, 2).await;
    topic(bus, &errors, 2).await; // idempotent
    let mismatch = bus
        .ensure_topic(&TopicSpec {
            name: errors.clone(),
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
    assert_eq!(bus.partitions(&errors).unwrap(), 2);

    assert!(matches!(bus.partitions(&nope), Err(BusError::UnknownTopic(_))));
    assert!(matches!(
        bus.append(&nope, 0, records(0, 1)).await,
        Err(BusError::UnknownTopic(_))
    ));
    let wait = Duration::ZERO;
    assert!(matches!(
        bus.fetch(&nope, 0, 0, 1, wait).await,
        Err(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        bus.end_offset(&nope, 0).await,
        Err(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        bus.commit("g", &nope, 0, 1).await,
        Err(BusError::UnknownTopic(_))
    ));

    let unknown =
        |result: &Result<_, BusError>| matches!(result, Err(BusError::UnknownPartition { partition: 2, .. }));
    assert!(unknown(&bus.append(&errors, 2, records(0, 1)).await.map(|_| ())));
    assert!(unknown(&bus.fetch(&errors, 2, 0, 1, wait).await.map(|_| ())));
    assert!(unknown(&bus.start_offset(&errors, 2).await.map(|_| ())));
    assert!(unknown(&bus.end_offset(&errors, 2).await.map(|_| ())));
    assert!(unknown(&bus.commit("g", &errors, 2, 0).await));
    assert!(unknown(&bus.committed("g", &errors, 2).await.map(|_| ())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_ordering_and_bounds() {
    let Some((endpoint, _cluster)) = cluster("produce_consume_ordering_and_bounds", false).await else {
        return;
    };
    let bus = connect(&endpoint).await;
    let bus: &dyn Bus = &bus;
    let order = unique("order");
    topic(bus, &order, 1).await;
    assert_eq!(bus.end_offset(&order, 0).await.unwrap(), 0);
    assert_eq!(bus.append(&order, 0, records(0, 3)).await.unwrap(), 0);
    assert_eq!(bus.append(&order, 0, records(3, 1000)).await.unwrap(), 3);
    assert_eq!(
        bus.append(&order, 0, Vec::new()).await.unwrap(),
        1003,
        "an empty append changes nothing"
    );
    assert_eq!(bus.append(&order, 0, records(1003, 2)).await.unwrap(), 1003);
    assert_eq!(bus.start_offset(&order, 0).await.unwrap(), 0);
    assert_eq!(bus.end_offset(&order, 0).await.unwrap(), 1005);

    let all = read(bus, &order, 0, 0, 1005, 10_000).await;
    assert_tagged(&all, 0);
    // Reading in small steps sees the same sequence.
    let small = read(bus, &order, 0, 0, 1005, 7).await;
    assert_eq!(small, all);

    // Bounds: the middle, the tail, the end, zero records, beyond the end.
    let middle = bus.fetch(&order, 0, 20, 5, Duration::ZERO).await.unwrap();
    assert_eq!(middle.len(), 5);
    assert_tagged(&middle, 20);
    let tail = read(bus, &order, 0, 995, 10, 100).await;
    assert_tagged(&tail, 995);
    let started = Instant::now();
    assert!(
        bus.fetch(&order, 0, 1005, 100, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a zero wait at the end returns at once"
    );
    assert!(
        bus.fetch(&order, 0, 0, 0, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let beyond = bus.fetch(&order, 0, 1006, 100, Duration::ZERO).await;
    assert!(
        matches!(
            beyond,
            Err(BusError::OffsetBeyondEnd {
                requested: 1006,
                end: 1005
            })
        ),
        "{beyond:?}"
    );

    // Partitions are independent.
    let parts = unique("parts");
    topic(bus, &parts, 3).await;
    bus.append(&parts, 1, records(0, 4)).await.unwrap();
    assert_eq!(bus.append(&parts, 2, records(0, 2)).await.unwrap(), 0);
    assert_eq!(bus.end_offset(&parts, 0).await.unwrap(), 0);
    assert_eq!(bus.end_offset(&parts, 1).await.unwrap(), 4);
    assert_eq!(bus.end_offset(&parts, 2).await.unwrap(), 2);
    assert_tagged(&read(bus, &parts, 2, 0, 2, 10).await, 0);
}

/// Many appends in flight at once get disjoint, gapless offsets, and each batch stays contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_stay_contiguous() {
    let Some((endpoint, _cluster)) = cluster("concurrent_appends_stay_contiguous", false).await else {
        return;
    };
    let bus = connect(&endpoint).await;
    let bus: &dyn Bus = &bus;
    let name = unique("concurrent");
    topic(bus, &name, 1).await;
    let appends = (0..64u64).map(|batch| {
        let name = name.clone();
        async move {
            let mut records = records(0, 10);
            for record in &mut records {
                record.value = Bytes::from(format!("{batch}"));
            }
            (batch, bus.append(&name, 0, records).await.unwrap())
        }
    });
    let mut firsts = futures::future::join_all(appends).await;
    firsts.sort_by_key(|(_, first)| *first);
    for (n, (_, first)) in firsts.iter().enumerate() {
        assert_eq!(*first, n as u64 * 10);
    }
    let all = read(bus, &name, 0, 0, 640, 1000).await;
    for (batch, first) in firsts {
        for record in &all[first as usize..first as usize + 10] {
            assert_eq!(record.value, Bytes::from(format!("{batch}")));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_and_close() {
    let Some((endpoint, _cluster)) = cluster("long_poll_and_close", false).await else {
        return;
    };
    let bus: Arc<dyn Bus> = Arc::new(connect(&endpoint).await);
    let poll = unique("poll");
    topic(bus.as_ref(), &poll, 1).await;
    let started = Instant::now();
    assert!(
        bus.fetch(&poll, 0, 0, 10, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the whole max_wait"
    );

    let started = Instant::now();
    let fetch = bus.fetch(&poll, 0, 0, 10, Duration::from_secs(60));
    let append = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        bus.append(&poll, 0, records(0, 2)).await.unwrap()
    };
    let (got, _) = tokio::join!(fetch, append);
    assert_tagged(&got.unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the append, not the deadline"
    );

    // A fetch waiting at the end returns `Closed` when the bus closes; afterwards every call fails with
    // `Closed`.
    let waiting = {
        let bus = Arc::clone(&bus);
        let poll = poll.clone();
        tokio::spawn(async move { bus.fetch(&poll, 0, 2, 10, Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    bus.close().await.unwrap();
    let started = Instant::now();
    assert!(matches!(waiting.await.unwrap(), Err(BusError::Closed)));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        bus.append(&poll, 0, records(2, 1)).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.fetch(&poll, 0, 0, 1, Duration::ZERO).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(bus.partitions(&poll), Err(BusError::Closed)));
    assert!(matches!(
        bus.commit("g", &poll, 0, 1).await,
        Err(BusError::Closed)
    ));
    bus.close().await.unwrap(); // closing twice is harmless
}

/// Committed offsets survive the bus: a new bus (a restarted pipeline) reads them back and resumes from
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_resumed_after_reopen() {
    let Some((endpoint, _cluster)) = cluster("offsets_resumed_after_reopen", false).await else {
        return;
    };
    let config = config(&endpoint);
    let input = unique("input");
    {
        let bus = FluvioBus::connect(config.clone()).await.unwrap();
        topic(&bus, &input, 2).await;
        bus.append(&input, 0, records(0, 100)).await.unwrap();
        bus.append(&input, 1, records(0, 50)).await.unwrap();
        assert_eq!(bus.committed("g1", &input, 0).await.unwrap(), None);
        let consumed = read(&bus, &input, 0, 0, 60, 25).await;
        bus.commit("g1", &input, 0, consumed.len() as u64).await.unwrap();
        bus.commit("g1", &input, 1, 10).await.unwrap();
        bus.commit("g1", &input, 1, 12).await.unwrap();
        bus.commit("g2", &input, 0, 3).await.unwrap();
        assert_eq!(bus.committed("g1", &input, 1).await.unwrap(), Some(12));
        bus.close().await.unwrap();
    }
    let bus = FluvioBus::connect(config).await.unwrap();
    topic(&bus, &input, 2).await;
    assert_eq!(bus.committed("g1", &input, 0).await.unwrap(), Some(60));
    assert_eq!(bus.committed("g1", &input, 1).await.unwrap(), Some(12));
    assert_eq!(bus.committed("g2", &input, 0).await.unwrap(), Some(3));
    assert_eq!(bus.committed("g2", &input, 1).await.unwrap(), None);
    let rest = read(&bus, &input, 0, 60, 40, 1000).await;
    assert_tagged(&rest, 60);
    assert_tagged(&read(&bus, &input, 1, 12, 38, 1000).await, 12);
}

/// What the bus writes is plain Fluvio data: a consumer that knows nothing of the bus reads keys and values,
/// from the topic named with the bus's prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_topics_readable_by_a_plain_consumer() {
    let Some((endpoint, _cluster)) = cluster("output_topics_readable_by_a_plain_consumer", false).await
    else {
        return;
    };
    let prefix = unique("staging-");
    let bus = FluvioBus::connect(FluvioBusConfig {
        topic_prefix: prefix.clone(),
        ..config(&endpoint)
    })
    .await
    .unwrap();
    let output = "social-derived";
    topic(&bus, output, 2).await;
    bus.append(output, 0, records(0, 20)).await.unwrap();
    bus.append(output, 1, records(20, 10)).await.unwrap();
    let unkeyed = Record {
        key: Bytes::new(),
        value: Bytes::from_static(b"{\"no\":\"key\"}"),
        timestamp_ms: 0,
    };
    bus.append(output, 1, vec![unkeyed]).await.unwrap();

    let client = fluvio::Fluvio::connect_with_config(&fluvio::FluvioClusterConfig::new(endpoint))
        .await
        .unwrap();
    let cluster_topic = bus.config().cluster_topic(output);
    assert_eq!(cluster_topic, format!("{prefix}social-derived"));
    let consumer = fluvio::consumer::ConsumerConfigExt::builder()
        .topic(cluster_topic)
        .offset_start(fluvio::Offset::beginning())
        .build()
        .unwrap();
    let mut stream = client.consumer_with_config(consumer).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 31 {
        let record = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the plain consumer got every record in time")
            .expect("stream open")
            .unwrap();
        seen.push((
            record.partition(),
            record.offset(),
            record.key().map(<[u8]>::to_vec),
            record.value().to_vec(),
        ));
    }
    seen.sort();
    for (n, (partition, offset, key, value)) in seen.iter().take(30).enumerate() {
        let (expected_partition, expected_offset) = if n < 20 { (0, n) } else { (1, n - 20) };
        assert_eq!(
            (*partition, *offset),
            (expected_partition, expected_offset as i64)
        );
        assert_eq!(key.as_deref(), Some(format!("k{n}").as_bytes()));
        assert_eq!(value.as_slice(), format!("v{n}").as_bytes());
    }
    assert_eq!(seen[30], (1, 10, None, b"{\"no\":\"key\"}".to_vec()));
}

/// Backlogs of several MB: the client alone loses records here (see DEPENDENCY-FACTS); the bus must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_backlog_is_read_without_loss() {
    let Some((endpoint, _cluster)) = cluster("large_backlog_is_read_without_loss", false).await else {
        return;
    };
    const RECORDS: u64 = 60_000;
    const VALUE_BYTES: usize = 200; // 60,000 x ~210 B: about 12.6 MB, a dozen fetch limits.
    let bus = connect(&endpoint).await;
    let name = unique("backlog");
    topic(&bus, &name, 1).await;
    let started = Instant::now();
    for chunk in 0..RECORDS / 5_000 {
        let batch = (chunk * 5_000..(chunk + 1) * 5_000)
            .map(|n| Record {
                key: Bytes::from(format!("k{n}")),
                value: Bytes::from(format!("{n:0width$}", width = VALUE_BYTES)),
                timestamp_ms: 0,
            })
            .collect();
        assert_eq!(bus.append(&name, 0, batch).await.unwrap(), chunk * 5_000);
    }
    let produced = started.elapsed();
    assert_eq!(bus.end_offset(&name, 0).await.unwrap(), RECORDS);

    // The plain client, for comparison (not asserted: a future client may be fixed).
    let plain = plain_consumer_count(&endpoint, &name, RECORDS).await;

    let started = Instant::now();
    let mut next = 0;
    while next < RECORDS {
        let got = bus
            .fetch(&name, 0, next, 5_000, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!got.is_empty(), "no progress at {next}");
        for record in &got {
            assert_eq!(record.offset, next, "contiguous");
            assert_eq!(record.value.len(), VALUE_BYTES);
            assert_eq!(
                record.value,
                Bytes::from(format!("{next:0width$}", width = VALUE_BYTES))
            );
            next += 1;
        }
    }
    let consumed = started.elapsed();
    let stats = bus.stats();
    println!(
        "fluvio backlog: {RECORDS} records of {VALUE_BYTES} B produced in {produced:?}, read back \
         complete in {consumed:?} with {} gap and {} stall re-opens ({} other); the plain client \
         stream delivered {} of {RECORDS} distinct offsets ({})",
        stats.gaps, stats.stalls, stats.other, plain.0, plain.1
    );
    assert!(
        bus.fetch(&name, 0, RECORDS, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Distinct offsets a bare client stream delivers from the beginning within a few seconds, and how it ended.
async fn plain_consumer_count(endpoint: &str, topic: &str, expected: u64) -> (u64, String) {
    let client = fluvio::Fluvio::connect_with_config(&fluvio::FluvioClusterConfig::new(endpoint))
        .await
        .unwrap();
    let consumer = fluvio::consumer::ConsumerConfigExt::builder()
        .topic(topic.to_string())
        .partition(0)
        .offset_start(fluvio::Offset::beginning())
        .build()
        .unwrap();
    let mut stream = client.consumer_with_config(consumer).await.unwrap();
    let mut distinct = 0;
    let mut next_expected = 0i64;
    let mut gaps = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
            Ok(Some(Ok(record))) => {
                if record.offset() > next_expected {
                    gaps += 1;
                }
                if record.offset() >= next_expected {
                    distinct += 1;
                    next_expected = record.offset() + 1;
                }
                if next_expected as u64 >= expected {
                    return (distinct, format!("reached the end, {gaps} gaps"));
                }
            }
            Ok(Some(Err(code))) => return (distinct, format!("error {code:?}")),
            Ok(None) => return (distinct, "stream ended".into()),
            Err(_) => {
                return (
                    distinct,
                    format!("stalled at offset {next_expected}, {gaps} gaps"),
                );
            }
        }
    }
}

/// Deleting a topic and creating it again right away: the bus keeps the delay the cluster needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_after_delete() {
    let Some((endpoint, _cluster)) = cluster("recreate_after_delete", true).await else {
        return;
    };
    let bus = connect(&endpoint).await;
    let name = unique("recreate");
    topic(&bus, &name, 1).await;
    bus.append(&name, 0, records(0, 5)).await.unwrap();
    bus.delete_topic(&name).await.unwrap();
    let started = Instant::now();
    topic(&bus, &name, 2).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "kept the re-create delay"
    );
    assert_eq!(bus.partitions(&name).unwrap(), 2);
    assert_eq!(bus.end_offset(&name, 0).await.unwrap(), 0);
    assert_eq!(bus.append(&name, 1, records(0, 3)).await.unwrap(), 0);
    assert_tagged(&read(&bus, &name, 1, 0, 3, 10).await, 0);
}

/// A small fetch limit and small producer batches make the SPU cut responses often, at every position in a
/// batch, including the last batch of the partition (the stall: the client believes it is at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fetch_limit_loses_nothing() {
    let Some((endpoint, _cluster)) = cluster("small_fetch_limit_loses_nothing", false).await else {
        return;
    };
    let bus = FluvioBus::connect(FluvioBusConfig {
        fetch_max_bytes: Some(64 * 1024),
        producer_batch_bytes: 16 * 1024,
        stall_timeout_ms: 300,
        ..config(&endpoint)
    })
    .await
    .unwrap();
    let mut total = 0;
    for (round, count) in [700u64, 1_500, 2_300, 3_100, 4_700].into_iter().enumerate() {
        let name = unique(&format!("small{round}"));
        topic(&bus, &name, 1).await;
        let batch = (0..count)
            .map(|n| Record {
                key: Bytes::from(format!("k{n}")),
                value: Bytes::from(format!("{n:0100}")),
                timestamp_ms: 0,
            })
            .collect();
        bus.append(&name, 0, batch).await.unwrap();
        let got = read(&bus, &name, 0, 0, count as usize, 100_000).await;
        for (n, record) in (0..).zip(&got) {
            assert_eq!(record.value, Bytes::from(format!("{n:0100}")));
        }
        total += count;
    }
    let stats = bus.stats();
    println!(
        "fluvio small fetch limit (64 KiB): {total} records in 5 topics read complete with {} gap and {} stall \
         re-opens ({} other)",
        stats.gaps, stats.stalls, stats.other
    );
}
