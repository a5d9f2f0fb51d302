//! [`RedisStateSink`]: the handle the pipeline writes through. `apply` only coalesces into the bounded buffer; the
//! writer task (`writer.rs`) does all Redis I/O.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use social_pipeline::operator::SnapshotUpdate;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::breaker::BreakerState;
use crate::buffer::Buffer;
use crate::connection::Connector;
use crate::keys::StateKeys;
use crate::writer::Writer;
use crate::{RedisStateConfig, StateError, StateVersion, metrics as m};

/// What the writer has done, published to `apply` (buffer space) and `flush` (barrier) waiters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Every `apply` call up to this count is written.
    pub(crate) written: u64,
    /// Bumped after every flush attempt (buffer space may have changed).
    pub(crate) generation: u64,
    /// The writer has stopped.
    pub(crate) closed: bool,
}

pub(crate) struct Shared {
    buffer: Mutex<Buffer>,
    /// Wakes the writer (a flush is wanted, or the buffer is filling).
    pub(crate) wake: Notify,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) healthy: AtomicBool,
    pub(crate) breaker: AtomicU8,
    /// `apply` calls a `flush` caller waits for.
    pub(crate) flush_wanted: std::sync::atomic::AtomicU64,
    pub(crate) max_buffered_keys: usize,
}

impl Shared {
    /// The buffer; never held across an `.await`.
    pub(crate) fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the writer should not wait for the flush interval.
    pub(crate) fn urgent(&self, buffer: &Buffer) -> bool {
        buffer.buffered_keys() >= self.max_buffered_keys / 2
            || self.flush_wanted.load(Ordering::Acquire) > self.progress.borrow().written
    }
}

/// Writes the operators' snapshot updates to Redis as fenced absolute values (see the crate docs). Cheap to clone.
#[derive(Clone)]
pub struct RedisStateSink {
    shared: Arc<Shared>,
}

impl RedisStateSink {
    /// Validates `config` and starts the writer task, which runs until `shutdown` is cancelled, then tries to write
    /// what is left for `shutdown_flush_timeout_ms` and ends. Redis need not be up: the sink buffers and reports
    /// unhealthy until it connects. Await the handle after cancelling to know the writer has stopped.
    pub fn start(
        config: RedisStateConfig,
        shutdown: CancellationToken,
    ) -> Result<(RedisStateSink, JoinHandle<()>), StateError> {
        config.validate()?;
        let keys = StateKeys::new(&config.key_prefix)?;
        let connector = Connector::new(&config.url, config.connect_timeout_ms, config.response_timeout_ms)?;
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            progress: watch::Sender::new(Progress::default()),
            healthy: AtomicBool::new(false),
            breaker: AtomicU8::new(0),
            flush_wanted: std::sync::atomic::AtomicU64::new(0),
            max_buffered_keys: config.max_buffered_keys,
        });
        let writer = Writer::new(config, keys, connector, shared.clone());
        let handle = tokio::spawn(writer.run(shutdown));
        Ok((RedisStateSink { shared }, handle))
    }

    /// Queues `updates` (one round's snapshot updates, at `version`) for writing, keeping only the latest value per
    /// `(topic, part)`. Returns at once unless the buffer holds `max_buffered_keys`: then it waits for the writer
    /// (backpressure to the pipeline while Redis is down). `version` must never be older than a previous call's.
    pub async fn apply(&self, version: StateVersion, updates: Vec<SnapshotUpdate>) -> Result<(), StateError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut progress = self.shared.progress.subscribe();
        let mut waited = false;
        loop {
            if progress.borrow_and_update().closed {
                return Err(StateError::Closed);
            }
            let urgent = {
                let mut buffer = self.shared.buffer();
                let held = buffer.buffered_keys();
                if held == 0 || held < self.shared.max_buffered_keys {
                    let inserted = buffer.insert(version, updates)?;
                    metrics::counter!(m::UPDATES).increment(inserted.updates as u64);
                    metrics::counter!(m::UPDATES_COALESCED).increment(inserted.coalesced as u64);
                    metrics::gauge!(m::BUFFERED_KEYS).set(buffer.buffered_keys() as f64);
                    let urgent = self.shared.urgent(&buffer);
                    drop(buffer);
                    if urgent {
                        self.shared.wake.notify_one();
                    }
                    return Ok(());
                }
                true
            };
            if urgent && !waited {
                waited = true;
                metrics::counter!(m::BACKPRESSURE).increment(1);
            }
            self.shared.wake.notify_one();
            if progress.changed().await.is_err() {
                return Err(StateError::Closed);
            }
        }
    }

    /// A barrier: returns once everything applied before the call is written to Redis (or fenced as stale). Call
    /// it before committing a checkpoint. While Redis is down it waits (wrap it in a timeout to bound that);
    /// `Err(Closed)` when the writer stopped first.
    pub async fn flush(&self) -> Result<(), StateError> {
        let target = self.shared.buffer().applied();
        self.shared.flush_wanted.fetch_max(target, Ordering::AcqRel);
        self.shared.wake.notify_one();
        let mut progress = self.shared.progress.subscribe();
        let reached = progress
            .wait_for(|p| p.written >= target || p.closed)
            .await
            .map_err(|_| StateError::Closed)?;
        if reached.written >= target {
            Ok(())
        } else {
            Err(StateError::Closed)
        }
    }

    /// For `/readyz`: Redis answered the last attempts (the circuit breaker is closed). `false` before the first
    /// successful connection.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    pub fn breaker_state(&self) -> BreakerState {
        match self.shared.breaker.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            1 => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        }
    }

    /// `(topic, part)` keys waiting or being written.
    pub fn buffered_keys(&self) -> usize {
        self.shared.buffer().buffered_keys()
    }
}
