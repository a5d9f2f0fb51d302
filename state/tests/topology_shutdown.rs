//! Shutdown of the operators while Redis is down and the live-state buffer is full: the round waiting for room is
//! given up (nothing of it left the process; the next start takes it again) instead of holding the shutdown for as
//! long as Redis stays down.

mod support;

use std::sync::Arc;
use std::time::Duration;

use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::bus::partition::partition_for_key;
use social_pipeline::bus::{Bus, INPUT_TOPIC, Record, TopicSpec};
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::operator::Output;
use social_pipeline::topology::{Topology, TopologyConfig};
use social_state::{RedisStateConfig, RedisStateSink};
use support::{free_port, unique_prefix};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 2;

#[tokio::test]
async fn shutdown_does_not_wait_for_a_full_live_state_buffer_while_redis_is_down() {
    let bus = Arc::new(MemoryBus::new(MemoryBusConfig::default()));
    bus.ensure_topic(&TopicSpec {
        name: INPUT_TOPIC.into(),
        partitions: PARTITIONS,
    })
    .await
    .unwrap();
    for generated in Generator::new(GeneratorConfig::with_seed(4)).take(3_000) {
        let partition = partition_for_key(generated.key.as_bytes(), PARTITIONS);
        let record = Record {
            key: generated.key.into_bytes().into(),
            value: generated.json.into(),
            timestamp_ms: 0,
        };
        bus.append(INPUT_TOPIC, partition, vec![record]).await.unwrap();
    }

    // Nothing listens on the port: every write fails and is retried; the buffer holds 5 keys at most.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let writer_stop = CancellationToken::new();
    let config = RedisStateConfig {
        max_buffered_keys: 5,
        retry_initial_delay_ms: 20,
        retry_max_delay_ms: 100,
        connect_timeout_ms: 200,
        response_timeout_ms: 200,
        ..RedisStateConfig::new(&url, &unique_prefix())
    };
    let (sink, writer) = RedisStateSink::start(config, writer_stop.clone()).unwrap();
    let config = TopologyConfig {
        idle_flush_ms: None,
        partition_idle_ms: 0,
        poll_interval_ms: 5,
        ..TopologyConfig::default()
    };
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    let topology = Topology::new(config, dyn_bus, None)
        .unwrap()
        .with_live_state(Arc::new(sink.clone()), 1_000)
        .unwrap();
    let (tx, mut rx) = mpsc::channel::<Output>(1_000_000);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(topology.run(tx, shutdown.clone()));
    let filled = tokio::time::timeout(Duration::from_secs(30), async {
        while sink.buffered_keys() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(filled.is_ok(), "the live-state buffer never filled");
    tokio::time::sleep(Duration::from_millis(300)).await;

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), run).await;
    let outcome = stopped.expect("the operators did not stop while the live state had no room");
    outcome.unwrap().unwrap();
    while rx.try_recv().is_ok() {}
    writer_stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .unwrap()
        .unwrap();
}
