//! Consumer-group offsets, kept by the bus in a one-partition topic.
//!
//! Fluvio 0.50 stores consumer offsets only through a live consumer stream (the offset of the last record
//! that stream delivered), so `commit(group, topic, partition, next_offset)` for an arbitrary offset cannot
//! be mapped onto it. Instead each commit appends one JSON record `{group, topic, partition, next_offset}` to
//! the offsets topic ([`super::FluvioBusConfig::offsets_topic`]); the bus reads that topic in order, so the
//! last record for a key wins, also across processes. The topic is created on first use; its time retention
//! bounds its size, so a group that commits nothing for longer than `offsets_retention_secs` loses its
//! offsets (the pipeline restores its input offsets from its own checkpoints anyway).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::FluvioBus;
use crate::bus::{Bus, BusError, Offset, Record, TopicSpec};

/// Records read per fetch while catching up.
const CATCH_UP_BATCH: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    group: String,
    topic: String,
    partition: u32,
    next_offset: Offset,
}

#[derive(Default)]
struct State {
    ready: bool,
    /// Offset of the next record of the offsets topic to read.
    read_to: Offset,
    offsets: HashMap<(String, String, u32), Offset>,
}

#[derive(Default)]
pub(super) struct GroupOffsets {
    state: tokio::sync::Mutex<State>,
}

impl GroupOffsets {
    pub(super) async fn commit(
        &self,
        bus: &FluvioBus,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: Offset,
    ) -> Result<(), BusError> {
        let mut state = self.state.lock().await;
        self.catch_up(bus, &mut state).await?;
        let entry = Entry {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            next_offset,
        };
        let value = serde_json::to_vec(&entry)
            .map_err(|error| BusError::Backend(format!("offset entry: {error}")))?;
        let record = Record {
            key: Bytes::from(group.to_string()),
            value: Bytes::from(value),
            timestamp_ms: 0,
        };
        bus.append(&bus.config.offsets_topic, 0, vec![record]).await?;
        state
            .offsets
            .insert((entry.group, entry.topic, entry.partition), next_offset);
        Ok(())
    }

    pub(super) async fn committed(
        &self,
        bus: &FluvioBus,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<Offset>, BusError> {
        let mut state = self.state.lock().await;
        self.catch_up(bus, &mut state).await?;
        Ok(state
            .offsets
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied())
    }

    /// Creates the offsets topic when needed and applies the entries appended since the last call.
    async fn catch_up(&self, bus: &FluvioBus, state: &mut State) -> Result<(), BusError> {
        let name = &bus.config.offsets_topic;
        if !state.ready {
            bus.ensure_topic(&TopicSpec {
                name: name.clone(),
                partitions: 1,
            })
            .await?;
            state.read_to = bus.start_offset(name, 0).await?;
            state.ready = true;
        }
        loop {
            let end = bus.end_offset(name, 0).await?;
            if state.read_to >= end {
                return Ok(());
            }
            let batch = match bus
                .fetch(name, 0, state.read_to, CATCH_UP_BATCH, Duration::ZERO)
                .await
            {
                Ok(batch) => batch,
                Err(BusError::OffsetOutOfRange { earliest, .. }) => {
                    state.read_to = earliest;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let Some(last) = batch.last() else {
                return Ok(());
            };
            state.read_to = last.offset + 1;
            for record in batch {
                match serde_json::from_slice::<Entry>(&record.value) {
                    Ok(entry) => {
                        state
                            .offsets
                            .insert((entry.group, entry.topic, entry.partition), entry.next_offset);
                    }
                    Err(error) => {
                        let offset = record.offset;
                        tracing::warn!(topic = %name, offset, %error, "skipping invalid offset entry");
                    }
                }
            }
        }
    }
}
