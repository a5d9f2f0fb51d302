//! The Redis backend of the delivery tier: history, live fan-out and single-use tickets shared by any number of
//! delivery nodes, so a client resumes losslessly on any node (issue 5, item 2; layout in [`keys`] and
//! `docs/REDIS.md`).
//!
//! - `history.rs`: [`RedisHistory`], a Redis Stream per topic. One Lua script assigns the next offset, appends
//!   (`XADD <offset>-0`, `MAXLEN ~`), trims by age (`MINID`) and publishes what it appended, all atomically; one
//!   call appends a chunk of messages of any topics and publishes them as one message on the fan-out channel
//!   (`P fanout`): offsets are dense and ordered across nodes, and every node hears live messages in offset order.
//! - `fanout.rs`: [`RedisFanOut`] and the listener task that feeds this node's [`Hub`] from its subscription to the
//!   fan-out channel, reconnects with backoff and, after a reconnect, re-reads from history what its subscribers may
//!   have missed.
//! - `tickets.rs`: [`RedisTickets`] (`SET EX NX`, consumed by `GETDEL`).
//! - `stream_limits.rs`: [`RedisStreamLimits`], each user's concurrent and new streams counted across every node
//!   (leases in a sorted set per user, renewed by the node that holds them).
//! - `keys.rs`: [`Keys`], the key and channel names.
//!
//! Wiring one node:
//! ```no_run
//! # async fn wire(config: social_delivery::DeliveryConfig, verifier: std::sync::Arc<social_auth::Verifier>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use social_delivery::redis::{RedisBackend, RedisConfig};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let redis_config = RedisConfig::for_delivery("redis://127.0.0.1:6379", "social:delivery:", &config);
//! let backend = RedisBackend::connect(redis_config, shutdown.clone()).await?;
//! let delivery = social_delivery::Delivery::builder(config, verifier)
//!     .history(backend.history())
//!     .fanout(backend.fanout())
//!     .tickets(backend.tickets())
//!     .stream_limits(backend.stream_limits())
//!     .shutdown(shutdown.clone())
//!     .build();
//! # let _ = delivery; Ok(()) }
//! ```
//!
//! When Redis is unreachable every operation fails fast with [`RedisBackendError::Unavailable`] (retryable; to HTTP
//! callers a `503 backend_unavailable` with `Retry-After`), never a panic; the connection manager reconnects on the
//! next operation and the listener reconnects by itself with backoff.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TicketStore;
use crate::fanout::FanOut;
use crate::history::History;
use crate::hub::Hub;
use crate::stream_limits::StreamLimitStore;
use crate::{DeliveryConfig, DeliveryError};

mod cluster;
pub mod connection;
mod fanout;
mod history;
pub mod keys;
mod stream_limits;
mod tickets;

pub use connection::{RedisConnection, RedisTarget, Timeouts};
pub use fanout::RedisFanOut;
pub use history::RedisHistory;
pub use keys::Keys;
pub use stream_limits::RedisStreamLimits;
pub use tickets::RedisTickets;

/// Why a Redis operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisBackendError {
    /// Redis cannot be reached, or did not answer in time. Retryable: the connection is re-established.
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error.
    #[error("redis refused the operation: {detail}")]
    Server { detail: String, retryable: bool },
    /// Redis answered something this backend does not understand.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The configuration cannot work (bad URL, bad prefix).
    #[error("invalid redis configuration: {0}")]
    Config(String),
}

impl RedisBackendError {
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            RedisBackendError::Unavailable(_) => true,
            RedisBackendError::Server { retryable, .. } => *retryable,
            RedisBackendError::Protocol(_) | RedisBackendError::Config(_) => false,
        }
    }
}

impl From<redis::RedisError> for RedisBackendError {
    fn from(error: redis::RedisError) -> Self {
        if connection::is_unavailable(&error) {
            return RedisBackendError::Unavailable(error.to_string());
        }
        match error.kind() {
            redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => {
                RedisBackendError::Protocol(error.to_string())
            }
            redis::ErrorKind::InvalidClientConfig => RedisBackendError::Config(error.to_string()),
            _ => RedisBackendError::Server {
                retryable: !matches!(error.retry_method(), redis::RetryMethod::NoRetry),
                detail: error.to_string(),
            },
        }
    }
}

impl From<RedisBackendError> for DeliveryError {
    /// Every Redis failure is a `503 backend_unavailable` with `Retry-After` to clients; the detail is logged.
    fn from(error: RedisBackendError) -> Self {
        DeliveryError::Backend(format!("redis: {error}"))
    }
}

pub(crate) fn backend_error(error: redis::RedisError) -> DeliveryError {
    RedisBackendError::from(error).into()
}

/// Configuration of the Redis backend (serde, every field defaulted, unknown fields rejected).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (no TLS), or `redis+cluster://[user:password@]host:port[,host:port...]`
    /// for a Redis Cluster.
    pub url: String,
    /// Prepended to every key and channel; no braces.
    pub key_prefix: String,
    /// Age after which messages leave history, in seconds (24 h).
    pub history_retention_secs: u64,
    /// Messages kept per topic (`MAXLEN ~`, so a few more may be kept).
    pub history_max_messages_per_topic: usize,
    /// Lifetime of a topic's epoch and offset counter after its last append, in seconds (7 days). Past it the
    /// topic starts a new epoch and old positions get a `RESET`.
    pub meta_ttl_secs: u64,
    /// How long one command may take before it fails as unavailable, in milliseconds.
    pub response_timeout_ms: u64,
    /// How long one connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest wait between two reconnection attempts of the fan-out listener, in milliseconds.
    pub reconnect_max_delay_ms: u64,
    /// Interval of the listener's liveness `PING`, in milliseconds.
    pub ping_interval_ms: u64,
    /// Lifetime of a stream's lease in the per-user counts, in seconds, renewed every third of it while the
    /// stream is open: the longest a node that died keeps its users' slots taken.
    pub stream_lease_secs: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: keys::DEFAULT_PREFIX.to_owned(),
            history_retention_secs: 24 * 3600,
            history_max_messages_per_topic: 1_000,
            meta_ttl_secs: 7 * 24 * 3600,
            response_timeout_ms: 2_000,
            connect_timeout_ms: 1_000,
            reconnect_max_delay_ms: 2_000,
            ping_interval_ms: 5_000,
            stream_lease_secs: 60,
        }
    }
}

impl RedisConfig {
    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(self.connect_timeout_ms.max(1)),
            response: Duration::from_millis(self.response_timeout_ms.max(1)),
            max_delay: Duration::from_millis(self.reconnect_max_delay_ms.max(1)),
        }
    }

    /// A configuration for `url` and `prefix` with the retention of a delivery configuration.
    pub fn for_delivery(url: &str, prefix: &str, delivery: &DeliveryConfig) -> RedisConfig {
        RedisConfig {
            url: url.to_owned(),
            key_prefix: prefix.to_owned(),
            history_retention_secs: delivery.history_retention_secs,
            history_max_messages_per_topic: delivery.history_max_messages_per_topic,
            ..RedisConfig::default()
        }
    }
}

/// One node's connection to Redis, and the history, fan-out and ticket store built on it.
pub struct RedisBackend {
    config: RedisConfig,
    target: RedisTarget,
    conn: RedisConnection,
    keys: Arc<Keys>,
    history: Arc<RedisHistory>,
    subscribed: Arc<watch::Sender<bool>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RedisBackend {
    /// Connects (one `PING` must succeed). The fan-out listener, once started by [`RedisBackend::fanout`], runs until
    /// `shutdown` is cancelled.
    pub async fn connect(
        config: RedisConfig,
        shutdown: CancellationToken,
    ) -> Result<RedisBackend, RedisBackendError> {
        let keys = Arc::new(Keys::new(&config.key_prefix)?);
        let target = RedisTarget::parse(&config.url).map_err(RedisBackendError::Config)?;
        let mut conn = target.connect(config.timeouts()).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        let history = Arc::new(RedisHistory::new(
            conn.clone(),
            keys.clone(),
            history::Settings::from_config(&config),
        ));
        Ok(RedisBackend {
            config,
            target,
            conn,
            keys,
            history,
            subscribed: Arc::new(watch::Sender::new(false)),
            shutdown,
            tasks: TaskTracker::new(),
        })
    }

    /// The key layout in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The shared history, for [`DeliveryBuilder::history`](crate::DeliveryBuilder::history).
    pub fn history(&self) -> Arc<dyn History> {
        self.history.clone()
    }

    /// The fan-out factory, for [`DeliveryBuilder::fanout`](crate::DeliveryBuilder::fanout): it starts this node's
    /// listener (on this backend's task tracker), which feeds the given hub. Use one factory per backend.
    pub fn fanout(&self) -> impl FnOnce(Arc<Hub>) -> Arc<dyn FanOut> + Send + 'static {
        let listener = fanout::ListenerParts {
            clients: self.target.pubsub_clients(),
            keys: self.keys.clone(),
            history: self.history.clone(),
            subscribed: self.subscribed.clone(),
            shutdown: self.shutdown.clone(),
            ping_interval: Duration::from_millis(self.config.ping_interval_ms.max(10)),
            connect_timeout: Duration::from_millis(self.config.connect_timeout_ms.max(1)),
            max_backoff: Duration::from_millis(self.config.reconnect_max_delay_ms.max(1)),
            recover_max: self.config.history_max_messages_per_topic.max(1),
        };
        let tasks = self.tasks.clone();
        move |hub: Arc<Hub>| -> Arc<dyn FanOut> {
            fanout::start_listener(listener, hub, &tasks);
            Arc::new(RedisFanOut::new())
        }
    }

    /// The shared single-use ticket store, for [`DeliveryBuilder::tickets`](crate::DeliveryBuilder::tickets).
    pub fn tickets(&self) -> Arc<dyn TicketStore> {
        Arc::new(RedisTickets::new(self.conn.clone(), self.keys.clone()))
    }

    /// The per-user stream limits shared by every node, for
    /// [`DeliveryBuilder::stream_limits`](crate::DeliveryBuilder::stream_limits): starts the renewal of this node's
    /// leases (on this backend's task tracker). Use one per backend.
    pub fn stream_limits(&self) -> Arc<dyn StreamLimitStore> {
        Arc::new(RedisStreamLimits::start(
            self.conn.clone(),
            self.keys.clone(),
            Duration::from_secs(self.config.stream_lease_secs.max(1)),
            self.shutdown.clone(),
            &self.tasks,
        ))
    }

    /// Whether this node's listener is subscribed now (for readiness).
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed.borrow()
    }

    /// Waits until the listener is subscribed; `false` after `timeout`.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut receiver = self.subscribed.subscribe();
        tokio::time::timeout(timeout, receiver.wait_for(|subscribed| *subscribed))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// One `PING` (for readiness).
    pub async fn ping(&self) -> Result<(), RedisBackendError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        if self.target.is_cluster() {
            // `PING` reaches the masters the connection knows; a connection rebuilt while a master was down may
            // not know it. The cluster's own view says whether every slot is served.
            let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn).await?;
            if !info.lines().any(|line| line.trim() == "cluster_state:ok") {
                return Err(RedisBackendError::Unavailable(
                    "the redis cluster does not serve every slot (cluster_state is not ok)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Waits for the listener to end (after the shutdown token is cancelled).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
