//! Connection setup, shared with the delivery tier's backend: a single server or a Redis Cluster (see
//! [`RedisTarget`]), with connect and response timeouts, so a dead Redis fails operations fast.

use std::time::Duration;

use social_delivery::redis::{RedisConnection, RedisTarget, Timeouts};

use crate::StateError;

#[derive(Debug, Clone)]
pub(crate) struct Connector {
    target: RedisTarget,
    timeouts: Timeouts,
}

impl Connector {
    pub(crate) fn new(
        url: &str,
        connect_timeout_ms: u64,
        response_timeout_ms: u64,
    ) -> Result<Self, StateError> {
        let target = RedisTarget::parse(url).map_err(StateError::Config)?;
        let connect = Duration::from_millis(connect_timeout_ms.max(1));
        Ok(Connector {
            target,
            timeouts: Timeouts {
                connect,
                response: Duration::from_millis(response_timeout_ms.max(1)),
                max_delay: connect,
            },
        })
    }

    /// A connection whose first connection succeeded.
    pub(crate) async fn connect(&self) -> Result<RedisConnection, StateError> {
        self.target.connect(self.timeouts).await.map_err(StateError::from)
    }
}
