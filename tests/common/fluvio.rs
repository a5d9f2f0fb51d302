//! Helpers of the Fluvio cases, which run when `FLUVIO_ENDPOINT` names a cluster's SC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use social_pipeline::bus::{Bus, BusError, StoredRecord};

/// The SC address, or `None` after printing that `test` is skipped.
pub fn endpoint(test: &str) -> Option<String> {
    let endpoint = std::env::var("FLUVIO_ENDPOINT")
        .ok()
        .filter(|endpoint| !endpoint.trim().is_empty());
    if endpoint.is_none() {
        eprintln!("SKIPPED {test}: FLUVIO_ENDPOINT is not set (no Fluvio cluster to test against)");
    }
    endpoint
}

/// A topic prefix of this process alone, starting with `tag` (Fluvio names: lowercase letters, digits, dashes).
pub fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{tag}-{:x}{:x}-", std::process::id(), nanos % 0xffff_ffff)
}

/// A bus on the cluster at `endpoint` whose topics are named with `prefix`.
#[cfg(feature = "fluvio")]
pub async fn connect(endpoint: &str, prefix: &str) -> Box<dyn Bus> {
    use social_pipeline::bus::fluvio::{FluvioBus, FluvioBusConfig};
    let config = FluvioBusConfig {
        topic_prefix: prefix.to_string(),
        ..FluvioBusConfig::new(endpoint)
    };
    Box::new(FluvioBus::connect(config).await.unwrap())
}

#[cfg(not(feature = "fluvio"))]
pub async fn connect(_endpoint: &str, _prefix: &str) -> Box<dyn Bus> {
    panic!("FLUVIO_ENDPOINT is set but this build has no Fluvio client (feature `fluvio`)")
}

/// Every record of a partition, from offset 0 to its end offset now (on any bus).
pub async fn read_partition(bus: &dyn Bus, topic: &str, partition: u32) -> Vec<StoredRecord> {
    let end = bus.end_offset(topic, partition).await.unwrap();
    let mut all = Vec::new();
    let mut next = 0;
    while next < end {
        let records = match bus
            .fetch(topic, partition, next, 5000, Duration::from_secs(5))
            .await
        {
            Ok(records) => records,
            Err(BusError::OffsetOutOfRange { earliest, .. }) => {
                panic!("{topic}-{partition} trimmed at {earliest}")
            }
            Err(error) => panic!("{error}"),
        };
        assert!(!records.is_empty(), "nothing at {next} of {topic}-{partition}");
        next = records.last().unwrap().offset + 1;
        all.extend(records);
    }
    all
}
