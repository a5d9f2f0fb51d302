//! Cross-node live publish. The publisher appends to [`History`](crate::history::History), then hands the entry to
//! a [`FanOut`], which brings it to the [`Hub`] of every delivery node. The embedded [`LocalFanOut`] is one node;
//! the Redis one publishes on a channel per topic shard and feeds each node's hub from its subscription.
//!
//! Fan-out may reorder or (on a reconnecting backend) lose live entries: connections drop entries at or before their
//! position and fill a gap from history, so the order a client sees is always the history order.

use std::sync::Arc;

use async_trait::async_trait;

use crate::DeliveryError;
use crate::history::Entry;
use crate::hub::Hub;

/// Brings an appended entry to the subscribers of its topic on every node.
#[async_trait]
pub trait FanOut: Send + Sync + 'static {
    async fn publish(&self, entry: Arc<Entry>) -> Result<(), DeliveryError>;
}

/// Fan-out within this process.
pub struct LocalFanOut {
    hub: Arc<Hub>,
}

impl LocalFanOut {
    pub fn new(hub: Arc<Hub>) -> LocalFanOut {
        LocalFanOut { hub }
    }
}

#[async_trait]
impl FanOut for LocalFanOut {
    async fn publish(&self, entry: Arc<Entry>) -> Result<(), DeliveryError> {
        self.hub.deliver(&entry);
        Ok(())
    }
}
