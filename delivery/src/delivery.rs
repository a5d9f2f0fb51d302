//! [`Delivery`]: the delivery tier's state and entry points (router, publisher, maintenance), built by
//! [`DeliveryBuilder`].

use std::sync::Arc;
use std::time::Duration;

use social_auth::{Minter, Verifier};
use social_schemas::TopicMessage;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, MemoryTickets, TicketStore};
use crate::fanout::{FanOut, LocalFanOut};
use crate::history::{History, MemoryHistory, Position, SequencedAppend};
use crate::hub::Hub;
use crate::limits::{LimitConfig, Limiter};
use crate::snapshot::{MemorySnapshots, SnapshotSource};
use crate::stream_limits::StreamLimitStore;
use crate::topics::Topic;
use crate::{DeliveryConfig, DeliveryError, message, metrics};

/// Everything the routes share.
pub(crate) struct Shared {
    pub config: DeliveryConfig,
    pub auth: Authenticator,
    pub limiter: Arc<Limiter>,
    pub hub: Arc<Hub>,
    pub history: Arc<dyn History>,
    pub fanout: Arc<dyn FanOut>,
    pub snapshots: Arc<dyn SnapshotSource>,
    pub shutdown: CancellationToken,
    pub demo_minter: Option<Minter>,
    /// Per-user stream counts shared with the other nodes, when there are any.
    pub stream_limits: Option<Arc<dyn StreamLimitStore>>,
}

type FanOutFactory = Box<dyn FnOnce(Arc<Hub>) -> Arc<dyn FanOut> + Send>;

/// Builds a [`Delivery`]. Defaults: in-memory history, in-process fan-out, [`MemorySnapshots`], a fresh shutdown
/// token, no demo sessions.
pub struct DeliveryBuilder {
    config: DeliveryConfig,
    verifier: Arc<Verifier>,
    snapshots: Option<Arc<dyn SnapshotSource>>,
    history: Option<Arc<dyn History>>,
    fanout: Option<FanOutFactory>,
    tickets: Option<Arc<dyn TicketStore>>,
    stream_limits: Option<Arc<dyn StreamLimitStore>>,
    shutdown: CancellationToken,
    demo_minter: Option<Minter>,
}

impl DeliveryBuilder {
    /// Where `SNAPSHOT`s come from.
    pub fn snapshots(mut self, snapshots: Arc<dyn SnapshotSource>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Another history backend (Redis).
    pub fn history(mut self, history: Arc<dyn History>) -> Self {
        self.history = Some(history);
        self
    }

    /// Another fan-out backend, built around this node's hub.
    pub fn fanout(mut self, factory: impl FnOnce(Arc<Hub>) -> Arc<dyn FanOut> + Send + 'static) -> Self {
        self.fanout = Some(Box::new(factory));
        self
    }

    /// Another single-use ticket store (Redis, shared by every node).
    pub fn tickets(mut self, tickets: Arc<dyn TicketStore>) -> Self {
        self.tickets = Some(tickets);
        self
    }

    /// Where the per-user stream counts are kept when several nodes serve the same users (Redis); without one,
    /// each node counts its own streams.
    pub fn stream_limits(mut self, store: Arc<dyn StreamLimitStore>) -> Self {
        self.stream_limits = Some(store);
        self
    }

    /// Streams end and polls answer when this token is cancelled (so graceful shutdown completes).
    pub fn shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Enables `POST /demo/session?user=...`, which sets an HttpOnly cookie with a short-lived token for any demo
    /// user. Only for `run --demo`: it lets anyone act as anyone.
    pub fn demo_minter(mut self, minter: Minter) -> Self {
        self.demo_minter = Some(minter);
        self
    }

    pub fn build(self) -> Delivery {
        let config = self.config;
        let retention = config.history_retention();
        let hub = Arc::new(Hub::new());
        let history = self
            .history
            .unwrap_or_else(|| Arc::new(MemoryHistory::new(retention)));
        let fanout = match self.fanout {
            Some(factory) => factory(hub.clone()),
            None => Arc::new(LocalFanOut::new(hub.clone())),
        };
        let tickets = self
            .tickets
            .unwrap_or_else(|| Arc::new(MemoryTickets::new(config.max_outstanding_tickets.max(1))));
        let auth = Authenticator::new(
            self.verifier,
            config.cookie_name.clone(),
            Duration::from_secs(config.ticket_ttl_secs()),
            tickets,
        );
        let limiter = Arc::new(Limiter::new(LimitConfig {
            max_connections: config.max_connections,
            max_streams_per_user: config.max_streams_per_user,
            max_new_per_minute: config.max_new_streams_per_user_per_minute,
            max_anonymous_per_address: config.max_anonymous_streams_per_address,
            max_new_anonymous_per_address_per_minute: config.max_new_anonymous_streams_per_address_per_minute,
            counted_elsewhere: self.stream_limits.is_some(),
        }));
        let snapshots = self.snapshots.unwrap_or_else(|| Arc::new(MemorySnapshots::new()));
        let shared = Shared {
            config,
            auth,
            limiter,
            hub,
            history,
            fanout,
            snapshots,
            shutdown: self.shutdown,
            demo_minter: self.demo_minter,
            stream_limits: self.stream_limits,
        };
        Delivery {
            shared: Arc::new(shared),
        }
    }
}

/// The delivery tier of one process.
#[derive(Clone)]
pub struct Delivery {
    pub(crate) shared: Arc<Shared>,
}

impl Delivery {
    pub fn builder(config: DeliveryConfig, verifier: Arc<Verifier>) -> DeliveryBuilder {
        DeliveryBuilder {
            config,
            verifier,
            snapshots: None,
            history: None,
            fanout: None,
            tickets: None,
            stream_limits: None,
            shutdown: CancellationToken::new(),
            demo_minter: None,
        }
    }

    /// The embedded delivery tier: in-memory history and snapshots, in-process fan-out.
    pub fn new(config: DeliveryConfig, verifier: Arc<Verifier>, shutdown: CancellationToken) -> Delivery {
        Delivery::builder(config, verifier).shutdown(shutdown).build()
    }

    /// The routes: `/v1/stream`, `/v1/poll`, `/v1/tickets`, `/v1/topics/{topic}/snapshot`, `/demo` and its pages.
    pub fn router(&self) -> axum::Router {
        crate::routes::router(self.shared.clone()).merge(crate::page::router(self.shared.clone()))
    }

    /// Serves `app` (the caller's router, which should include [`Delivery::router`]) on `listener` until the
    /// shutdown token is cancelled, then lets requests in flight finish. Plain `GET /v1/stream` requests are served
    /// on a lean path (see `server.rs`): about a third of the memory per idle stream of serving the router with
    /// `axum::serve`, and one write per message instead of two.
    pub async fn serve(&self, listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
        crate::server::serve(self.shared.clone(), listener, app).await
    }

    /// A handle that publishes pipeline output to subscribers.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            shared: self.shared.clone(),
        }
    }

    /// This node's hub (for a fan-out backend, and tests).
    pub fn hub(&self) -> Arc<Hub> {
        self.shared.hub.clone()
    }

    /// Streams and long polls held now.
    pub fn active_connections(&self) -> usize {
        self.shared.limiter.active()
    }

    /// Periodic upkeep (history retention, limiter memory) until shutdown. Spawn it on the process's tracker.
    pub fn maintenance(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(error) = shared.history.expire().await {
                    tracing::warn!(%error, "history expiry failed");
                }
                shared.limiter.sweep();
            }
        }
    }
}

/// Publishes pipeline output ([`TopicMessage`]s) to history and subscribers. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

impl Publisher {
    /// Serializes `message` once, appends it to its topic's history, and fans it out. Returns its position.
    pub async fn publish(&self, message: TopicMessage) -> Result<Position, DeliveryError> {
        let topic = Topic::parse(&message.topic)?;
        let json = message::event_json(&message)?;
        let entry = self.shared.history.append(topic.name(), json).await?;
        let position = entry.position;
        self.shared.fanout.publish(entry).await?;
        metrics::published(topic.kind());
        Ok(position)
    }

    /// [`Publisher::publish`] for a producer that numbers its messages (increasing across all topics, the same
    /// numbers on a replay): a message whose topic already holds this producer's `sequence` or a later one is not
    /// published again, and `None` is returned. This makes a replayed output reach subscribers once.
    pub async fn publish_sequenced(
        &self,
        message: TopicMessage,
        sequence: u64,
    ) -> Result<Option<Position>, DeliveryError> {
        let topic = Topic::parse(&message.topic)?;
        let json = message::event_json(&message)?;
        let Some(entry) = self
            .shared
            .history
            .append_sequenced(topic.name(), json, sequence)
            .await?
        else {
            metrics::duplicate_publish();
            return Ok(None);
        };
        let position = entry.position;
        self.shared.fanout.publish(entry).await?;
        metrics::published(topic.kind());
        Ok(Some(position))
    }

    /// [`Publisher::publish_sequenced`] for many messages, in order, in as few round trips as the history allows.
    /// Messages on topics the delivery tier does not serve are refused (logged, counted, returned in `refused`);
    /// the others are appended unless already held. On `Err` (the store is unavailable) call it again with the
    /// same batch: what was appended is not appended twice.
    pub async fn publish_batch_sequenced(
        &self,
        messages: &[(TopicMessage, u64)],
    ) -> Result<BatchOutcome, DeliveryError> {
        let mut outcome = BatchOutcome::default();
        let mut kinds = Vec::with_capacity(messages.len());
        let mut batch = Vec::with_capacity(messages.len());
        for (message, sequence) in messages {
            let prepared = Topic::parse(&message.topic).and_then(|topic| {
                Ok((
                    topic.kind(),
                    topic.name().to_owned(),
                    message::event_json(message)?,
                ))
            });
            match prepared {
                Ok((kind, topic, json)) => {
                    kinds.push(kind);
                    batch.push(SequencedAppend {
                        topic,
                        json,
                        sequence: *sequence,
                    });
                }
                Err(error) => {
                    tracing::error!(%error, topic = %message.topic, "message refused by the delivery tier");
                    outcome.refused += 1;
                }
            }
        }
        let entries = self.shared.history.append_batch_sequenced(batch).await?;
        for (entry, kind) in entries.into_iter().zip(kinds) {
            match entry {
                Some(entry) => {
                    self.shared.fanout.publish(entry).await?;
                    metrics::published(kind);
                    outcome.published += 1;
                }
                None => {
                    metrics::duplicate_publish();
                    outcome.duplicates += 1;
                }
            }
        }
        Ok(outcome)
    }
}

/// What [`Publisher::publish_batch_sequenced`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub published: usize,
    /// Already held by history (a replay).
    pub duplicates: usize,
    /// On a topic the delivery tier does not serve.
    pub refused: usize,
}
