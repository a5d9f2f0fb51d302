//! Connection setup, in the style of the delivery tier's backend: one `ConnectionManager` (multiplexed, reconnects
//! on the next operation) with connect and response timeouts, so a dead Redis fails operations fast.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::StateError;

#[derive(Debug, Clone)]
pub(crate) struct Connector {
    client: redis::Client,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(
        url: &str,
        connect_timeout_ms: u64,
        response_timeout_ms: u64,
    ) -> Result<Self, StateError> {
        let client =
            redis::Client::open(url).map_err(|error| StateError::Config(format!("redis url: {error}")))?;
        Ok(Connector {
            client,
            connect_timeout: Duration::from_millis(connect_timeout_ms.max(1)),
            response_timeout: Duration::from_millis(response_timeout_ms.max(1)),
        })
    }

    /// A connection manager whose first connection succeeded.
    pub(crate) async fn connect(&self) -> Result<ConnectionManager, StateError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.connect_timeout);
        let budget = self
            .connect_timeout
            .saturating_mul(3)
            .saturating_add(self.response_timeout);
        tokio::time::timeout(
            budget,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| StateError::Unavailable("connecting timed out".into()))?
        .map_err(StateError::from)
    }
}
