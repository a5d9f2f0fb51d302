//! Start and end offsets of a partition, asked of its leader SPU.
//!
//! The client has no public call for them (its consumer asks the leader internally before it streams); the
//! controller's partition status carries them too, but only as often as the SPU reports, so it lags behind
//! appends. This module sends the same `FetchOffsetsRequest` the consumer sends, over one connection per SPU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use fluvio::dataplane::link::ErrorCode;
use fluvio::dataplane::record::ReplicaKey;
use fluvio::metadata::partition::PartitionSpec;
use fluvio::metadata::spu::SpuSpec;
use fluvio_socket::{ClientConfig, MultiplexerSocket, VersionedSerialSocket};
use fluvio_spu_schema::server::fetch_offset::FetchOffsetsRequest;

use super::{FluvioBus, backend, with_timeout};
use crate::bus::{BusError, Offset};

/// What a partition retains: offsets `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PartitionOffsets {
    pub(super) start: Offset,
    pub(super) end: Offset,
}

#[derive(Default)]
pub(super) struct LeaderOffsets {
    /// Public address of the leader SPU of each partition.
    leaders: Mutex<HashMap<(String, u32), String>>,
    /// One connection per SPU address, shared by all its partitions.
    sockets: tokio::sync::Mutex<HashMap<String, Arc<VersionedSerialSocket>>>,
}

impl LeaderOffsets {
    pub(super) async fn offsets(
        &self,
        bus: &FluvioBus,
        topic: &str,
        partition: u32,
    ) -> Result<PartitionOffsets, BusError> {
        let address = self.leader_address(bus, topic, partition).await?;
        let socket = self.socket(bus, &address).await?;
        let cluster_topic = bus.config.cluster_topic(topic);
        let request = FetchOffsetsRequest::new(cluster_topic.clone(), partition);
        let response = match with_timeout(
            bus.config.request_timeout(),
            "fetch offsets",
            socket.send_receive(request),
        )
        .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                self.forget(topic, partition, Some(&address)).await;
                return Err(backend("fetch offsets", &error));
            }
            Err(error) => {
                self.forget(topic, partition, Some(&address)).await;
                return Err(error);
            }
        };
        let Some(found) = response.find_partition(&ReplicaKey::new(cluster_topic, partition)) else {
            self.forget(topic, partition, None).await;
            return Err(BusError::Backend(format!(
                "fluvio fetch offsets: no answer for {topic}-{partition}"
            )));
        };
        if found.error_code != ErrorCode::None {
            // Typically `PartitionNotLeader` after a leader change or a re-created topic: look the leader up
            // again.
            self.forget(topic, partition, None).await;
            return Err(BusError::Backend(format!(
                "fluvio fetch offsets of {topic}-{partition}: {:?}",
                found.error_code
            )));
        }
        let to_offset = |value: i64| {
            Offset::try_from(value)
                .map_err(|_| BusError::Backend(format!("fluvio returned a negative offset {value}")))
        };
        Ok(PartitionOffsets {
            start: to_offset(found.start_offset)?,
            end: to_offset(found.last_stable_offset)?,
        })
    }

    pub(super) fn forget_topic(&self, topic: &str) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(name, _), _| name != topic);
    }

    async fn forget(&self, topic: &str, partition: u32, address: Option<&str>) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(topic.to_string(), partition));
        if let Some(address) = address {
            self.sockets.lock().await.remove(address);
        }
    }

    async fn leader_address(&self, bus: &FluvioBus, topic: &str, partition: u32) -> Result<String, BusError> {
        let key = (topic.to_string(), partition);
        if let Some(address) = self
            .leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(address.clone());
        }
        let name = format!("{}-{partition}", bus.config.cluster_topic(topic));
        let leader = with_timeout(
            bus.config.request_timeout(),
            "list partitions",
            bus.admin.list::<PartitionSpec, String>(vec![name.clone()]),
        )
        .await?
        .map_err(|error| backend("list partitions", &error))?
        .into_iter()
        .find(|found| found.name == name)
        .map(|found| found.spec.leader)
        .ok_or_else(|| BusError::Backend(format!("fluvio has no partition {name} yet")))?;
        let address = with_timeout(
            bus.config.request_timeout(),
            "list spus",
            bus.admin.all::<SpuSpec>(),
        )
        .await?
        .map_err(|error| backend("list spus", &error))?
        .into_iter()
        .find(|spu| spu.spec.id == leader)
        .map(|spu| spu.spec.public_endpoint.addr())
        .ok_or_else(|| BusError::Backend(format!("fluvio has no spu {leader} (leader of {name})")))?;
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, address.clone());
        Ok(address)
    }

    async fn socket(&self, bus: &FluvioBus, address: &str) -> Result<Arc<VersionedSerialSocket>, BusError> {
        let mut sockets = self.sockets.lock().await;
        if let Some(socket) = sockets.get(address) {
            if !socket.is_stale() {
                return Ok(Arc::clone(socket));
            }
            sockets.remove(address);
        }
        let connected = with_timeout(
            bus.config.request_timeout(),
            "connect to spu",
            ClientConfig::with_addr(address.to_string()).connect(),
        )
        .await?
        .map_err(|error| backend("connect to spu", &error))?;
        let (socket, config, versions) = connected.split();
        let socket = Arc::new(VersionedSerialSocket::new(
            MultiplexerSocket::shared(socket),
            config,
            versions,
        ));
        sockets.insert(address.to_string(), Arc::clone(&socket));
        Ok(socket)
    }
}
