//! Wiring of the embedded system (bus, ingest, operations routes) into one HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use social_analytics::{ClickHouseConfig, ClickHouseSink};
use social_auth::{AuthConfig, Minter, Verifier};
use social_delivery::redis::{RedisBackend, RedisConfig};
use social_delivery::{Delivery, DeliveryConfig};
use social_pipeline::bus::durable::{DurableBus, DurableBusConfig};
use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::bus::{Bus, INPUT_TOPIC};
use social_pipeline::ingest::http::IngestHttpState;
use social_pipeline::ingest::{DedupConfig, IngestConfig, Ingestor};
use social_pipeline::topology::{PipelineError, Topology, TopologyConfig};
use social_state::{RedisStateConfig, RedisStateSink};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use operators::{DerivedSink, OperatorSnapshots};

use crate::cli::ServerArgs;

pub mod analytics;
pub mod durable_history;
pub mod fallback;
pub mod operators;
pub mod ops;
mod publish_queue;

/// The running parts of one process, shared by its routes and background tasks.
pub struct System {
    pub bus: Arc<dyn Bus>,
    /// The same bus when it is the embedded durable one (for readiness: a partition whose log failed).
    durable_bus: Option<Arc<DurableBus>>,
    pub ingestor: Arc<Ingestor>,
    pub verifier: Arc<Verifier>,
    pub delivery: Delivery,
    /// The ClickHouse sink, when configured, and whether it is healthy (for `/readyz`).
    pub analytics: Option<Arc<ClickHouseSink>>,
    pub analytics_healthy: Arc<AtomicBool>,
    /// The Redis delivery backend, when configured.
    pub redis: Option<RedisBackend>,
    /// The delivery history kept under `--data-dir` when there is no Redis.
    pub durable_history: Option<Arc<durable_history::DurableHistory>>,
    /// The operators' live state in Redis, when configured, with the token that stops its writer (after the
    /// operators, so that their last updates are written) and the writer task.
    pub live_state: Option<RedisStateSink>,
    live_state_writer: std::sync::Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
    /// The operators, until [`System::start_operators`] takes them to run.
    topology: tokio::sync::Mutex<Option<Topology>>,
    pub ready: Arc<AtomicBool>,
    /// Why the operators stopped, when they stopped on an error: the process then shuts down and exits with it,
    /// so that its supervisor restarts it from its checkpoint instead of leaving it up with nothing derived.
    operators_failure: Arc<std::sync::Mutex<Option<String>>>,
    pub started: Instant,
    pub durable: bool,
}

impl System {
    /// Opens the embedded bus (durable under `--data-dir`), the ingest on top of it and the delivery tier.
    /// `demo` enables the demo page's sign-in as any user (only with the public demo secret); `shutdown` ends
    /// streams and long polls.
    pub async fn open(
        args: &ServerArgs,
        auth: &AuthConfig,
        demo: bool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let verifier = Arc::new(Verifier::new(auth)?);
        let durable = args.data_dir.is_some() || args.fluvio_endpoint.is_some();
        // Retention of the embedded buses keeps the input the operators have not committed yet: an outage of
        // Redis stalls them, it must not cost them events.
        let protected = vec![(TopologyConfig::default().consumer_group, INPUT_TOPIC)];
        // On disk, every record the analytics feed has not read too: a ClickHouse outage must not cost it rows.
        // In memory (lost at exit anyway) ClickHouse being down must not stop ingest after 256 MiB; the feed
        // skips what retention dropped, with a warning.
        let mut protected_on_disk = protected.clone();
        if args.clickhouse_url.is_some() {
            protected_on_disk.extend(analytics::TOPICS.map(|topic| (analytics::GROUP.to_owned(), topic)));
        }
        let mut durable_bus = None;
        let bus: Arc<dyn Bus> = match &args.data_dir {
            _ if args.fluvio_endpoint.is_some() => {
                fluvio_bus(args.fluvio_endpoint.as_deref(), &args.fluvio).await?
            }
            Some(dir) => {
                let config = protected_on_disk
                    .iter()
                    .fold(DurableBusConfig::new(dir.clone()), |config, (group, topic)| {
                        config.protecting(group, topic)
                    });
                let opened = Arc::new(
                    DurableBus::open(config)
                        .await
                        .with_context(|| format!("opening the durable bus in {}", dir.display()))?,
                );
                durable_bus = Some(opened.clone());
                opened
            }
            None => {
                let config = protected
                    .iter()
                    .fold(MemoryBusConfig::default(), |config, (group, topic)| {
                        config.protecting(group, topic)
                    });
                Arc::new(MemoryBus::new(config))
            }
        };
        let config = IngestConfig {
            max_body_bytes: args.max_body_bytes,
            max_inflight_body_bytes: args.max_inflight_body_bytes,
            body_timeout_ms: args.body_timeout_ms,
            max_event_bytes: args.max_event_bytes,
            max_events_per_request: args.max_events_per_request,
            input_partitions: args.partitions,
            dedup: DedupConfig {
                window_secs: args.dedup_window_secs,
                max_entries: args.dedup_max_entries,
            },
            max_future_ms: args.max_future_ms,
        };
        let ingestor = Arc::new(
            Ingestor::open(bus.clone(), config)
                .await
                .context("opening the ingest")?,
        );
        let analytics = match &args.clickhouse_url {
            Some(url) => {
                let config = ClickHouseConfig {
                    url: url.clone(),
                    database: args.clickhouse_database.clone(),
                    ..ClickHouseConfig::default()
                };
                Some(Arc::new(
                    ClickHouseSink::start(config).context("starting the ClickHouse sink")?,
                ))
            }
            None => None,
        };
        let mut topology_config = TopologyConfig {
            checkpoint_interval_ms: args.checkpoint_interval_ms,
            idle_flush_ms: (args.idle_flush_ms > 0).then_some(args.idle_flush_ms),
            max_future_ms: args.max_future_ms,
            ..TopologyConfig::default()
        };
        topology_config.operators.threads = usize::from(args.operator_threads);
        topology_config.operators.dedup_max_keys = args.operator_dedup_max_keys;
        topology_config.operators.max_waiting_events = args.operator_max_waiting_events;
        let public_topics = topology_config.operators.public_topics();
        let checkpoints = args.data_dir.as_ref().map(|dir| dir.join("operators"));
        let mut topology =
            Topology::new(topology_config, bus.clone(), checkpoints).context("starting the operators")?;
        let mut live_state = None;
        let mut live_state_writer = None;
        if let Some(url) = &args.redis_url {
            // Its own token: the writer must outlive the operators' final round at shutdown.
            let stop = CancellationToken::new();
            let config = RedisStateConfig::new(url, &args.redis_prefix);
            let (sink, writer) = RedisStateSink::start(config, stop.clone())
                .context("starting the Redis live-state writer")?;
            let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
            topology = topology
                .with_live_state(Arc::new(sink.clone()), now_ms)
                .context("starting the operators' live state")?;
            live_state = Some(sink);
            live_state_writer = Some((stop, writer));
        }
        let delivery_config = args.streams.apply(DeliveryConfig {
            public_topics: Some(public_topics),
            ..DeliveryConfig::default()
        });
        let mut delivery = Delivery::builder(delivery_config.clone(), verifier.clone())
            .snapshots(Arc::new(OperatorSnapshots(topology.snapshots())))
            .shutdown(shutdown.clone());
        let mut redis = None;
        if let Some(url) = &args.redis_url {
            let config = RedisConfig::for_delivery(url, &args.redis_prefix, &delivery_config);
            let backend = RedisBackend::connect(config, shutdown)
                .await
                .context("connecting to Redis")?;
            delivery = delivery
                .history(backend.history())
                .fanout(backend.fanout())
                .tickets(backend.tickets())
                .stream_limits(backend.stream_limits());
            redis = Some(backend);
        }
        let mut durable_history = None;
        if let (None, Some(dir)) = (&args.redis_url, &args.data_dir) {
            let dir = dir.join("delivery-history");
            let history = Arc::new(
                durable_history::DurableHistory::open(&dir, delivery_config.history_retention())
                    .await
                    .with_context(|| format!("opening the delivery history in {}", dir.display()))?,
            );
            delivery = delivery.history(history.clone());
            durable_history = Some(history);
        }
        // The demo page's sign-in mints a token for any user name: only with the public demo secret, whose tokens
        // anyone can mint anyway. With a real key it would let anyone act as anyone.
        if demo && auth.secret.as_deref() == Some(crate::commands::DEMO_SECRET) {
            delivery = delivery.demo_minter(Minter::new(auth)?);
        } else if demo {
            tracing::info!(
                "demo sign-in disabled: a JWT key is configured (the demo page shows public topics)"
            );
        }
        Ok(Self {
            bus,
            durable_bus,
            ingestor,
            verifier,
            delivery: delivery.build(),
            topology: tokio::sync::Mutex::new(Some(topology)),
            analytics_healthy: Arc::new(AtomicBool::new(analytics.is_none())),
            redis,
            durable_history,
            live_state,
            live_state_writer: std::sync::Mutex::new(live_state_writer),
            analytics,
            ready: Arc::new(AtomicBool::new(true)),
            operators_failure: Arc::default(),
            started: Instant::now(),
            durable,
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        let ingest = social_pipeline::ingest::http::router(IngestHttpState {
            ingestor: self.ingestor.clone(),
            verifier: self.verifier.clone(),
        });
        fallback::with_json_fallbacks(
            ingest
                .merge(self.delivery.router())
                .merge(ops::router(self.clone())),
        )
    }

    /// Runs the operators on `tracker` until `shutdown`, their output going to the derived-events topic and the
    /// delivery tier. Only the first call starts them.
    pub async fn start_operators(
        &self,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let Some(mut topology) = self.topology.lock().await.take() else {
            return Ok(());
        };
        if topology.lineage().derived_start.is_none() {
            let derived_end = operators::derived_log_end(&*self.bus)
                .await
                .context("opening the derived-events topic")?;
            topology
                .record_derived_start(derived_end)
                .context("recording where the lineage starts")?;
        }
        let sink = DerivedSink::open(
            self.bus.clone(),
            self.delivery.publisher(),
            topology.outputs_emitted(),
            topology.lineage(),
            shutdown.clone(),
        )
        .await
        .context("opening the derived-events topic")?;
        let ready = self.ready.clone();
        let writer = self
            .live_state_writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let failure = self.operators_failure.clone();
        tracker.spawn(async move {
            // In a task of its own so that a panic, too, stops the process rather than leaving it up without
            // operators.
            let outcome = match tokio::spawn(topology.run(sink, shutdown.clone())).await {
                Ok(outcome) => outcome,
                Err(panicked) => Err(PipelineError::task("operators", panicked)),
            };
            if let Err(error) = outcome {
                // Without operators nothing derived flows: report not ready, then stop the whole process (a
                // restart resumes from the last checkpoint; ingest on its own would only pile up input). An
                // error while shutting down is only logged: the next start resumes from the last checkpoint.
                ready.store(false, Ordering::SeqCst);
                if shutdown.is_cancelled() {
                    tracing::error!(%error, "the operators stopped while shutting down");
                } else {
                    tracing::error!(%error, "the operators stopped: shutting the process down");
                    *failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(error.to_string());
                    shutdown.cancel();
                }
            }
            // The operators have written their last checkpoint: now the live-state writer may stop.
            if let Some((stop, writer)) = writer {
                stop.cancel();
                let _ = writer.await;
            }
        });
        Ok(())
    }

    /// Feeds ClickHouse on `tracker` until `shutdown`, when it is configured: the bus's topics, and the delivery
    /// tier's latency (when this is the process's first system to start it).
    pub fn start_analytics(&self, tracker: &TaskTracker, shutdown: CancellationToken) {
        if let Some(sink) = &self.analytics {
            tracker.spawn(analytics::feed_clickhouse(
                self.bus.clone(),
                sink.clone(),
                self.analytics_healthy.clone(),
                analytics::DeliveryLatency::install(),
                shutdown,
            ));
        }
    }

    /// Why the operators stopped, when they stopped on an error.
    pub fn operators_failure(&self) -> Option<String> {
        self.operators_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether every part this process depends on can do its work.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && self.analytics_healthy.load(Ordering::SeqCst)
            && self.redis.as_ref().is_none_or(RedisBackend::is_subscribed)
            && self.live_state.as_ref().is_none_or(RedisStateSink::healthy)
            && self
                .durable_history
                .as_ref()
                .is_none_or(|history| history.healthy())
            && self
                .durable_bus
                .as_ref()
                .is_none_or(|bus| bus.failed_partitions().is_empty())
    }

    /// End offsets of the input topic's partitions.
    pub async fn input_offsets(&self) -> Vec<u64> {
        let partitions = self.bus.partitions(INPUT_TOPIC).unwrap_or(0);
        let mut offsets = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            offsets.push(self.bus.end_offset(INPUT_TOPIC, partition).await.unwrap_or(0));
        }
        offsets
    }

    /// Stops taking work, flushes the bus and waits for the delivery backend's tasks. Call it once the shutdown
    /// token given to [`System::open`] is cancelled.
    pub async fn close(&self) {
        self.ready.store(false, Ordering::SeqCst);
        if let Err(error) = self.bus.close().await {
            tracing::error!(%error, "closing the bus failed");
        }
        if let Some(history) = &self.durable_history {
            history.close().await;
        }
        // The delivery backend's tasks (fan-out listener, stream leases) end with the shutdown token; wait for
        // them, so that this node's stream leases are given back before the process exits.
        if let Some(redis) = &self.redis
            && tokio::time::timeout(std::time::Duration::from_secs(15), redis.stopped())
                .await
                .is_err()
        {
            tracing::warn!("the Redis backend's tasks did not stop within 15 s; exiting without them");
        }
    }
}

#[cfg(feature = "fluvio")]
async fn fluvio_bus(endpoint: Option<&str>, args: &crate::cli::FluvioArgs) -> anyhow::Result<Arc<dyn Bus>> {
    use social_pipeline::bus::fluvio::FluvioBus;
    let endpoint = endpoint.unwrap_or_default();
    let bus = FluvioBus::connect(args.bus_config(endpoint))
        .await
        .with_context(|| format!("connecting to Fluvio at {endpoint}"))?;
    Ok(Arc::new(bus))
}

#[cfg(not(feature = "fluvio"))]
async fn fluvio_bus(_endpoint: Option<&str>, _args: &crate::cli::FluvioArgs) -> anyhow::Result<Arc<dyn Bus>> {
    anyhow::bail!("this build has no Fluvio client: build with the `fluvio` feature (on by default)")
}

/// Binds `addr` and prints the address actually bound (useful with port 0) on stdout.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    tracing::info!(%local, "listening");
    Ok(listener)
}

/// Serves the system's routes until shutdown, then lets requests in flight finish.
///
/// The delivery tier serves the connections (its lean path for SSE streams, hyper for the rest); it stops on the
/// shutdown token given to [`System::open`].
pub async fn serve(system: Arc<System>, listener: TcpListener) -> anyhow::Result<()> {
    let router = system.router();
    system
        .delivery
        .serve(listener, router)
        .await
        .context("serving HTTP")
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate => {},
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}
