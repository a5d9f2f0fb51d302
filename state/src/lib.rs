//! Live state in Redis (CONTRACT section 6, issue 5 item 2): the operators' snapshot updates written as absolute
//! values, fenced by version so a replay after a crash never moves state backwards, and read back for `SNAPSHOT`
//! messages by delivery nodes in other processes. Key layout: [`keys`] and `docs/REDIS.md` ("Live state").
//!
//! - `sink.rs`: [`RedisStateSink`], the handle: `apply(version, updates)` coalesces into a bounded buffer,
//!   `flush()` is the barrier before a checkpoint commit, `healthy()` feeds `/readyz`.
//! - `writer.rs`: the writer task: flushes the coalesced buffer as pipelines of fenced script calls, retries with
//!   backoff behind a circuit breaker (`breaker.rs`), gives back what failed so nothing is lost.
//! - `buffer.rs`: the coalescing buffer (latest value per `(topic, part)`, newest version per topic).
//! - `plan.rs`: one topic's write: the state hash plus the derived sorted sets and hashes.
//! - `script.rs`: the Lua script that compares versions and writes a topic atomically.
//! - `snapshots.rs`: [`RedisSnapshots`], the delivery tier's `SnapshotSource` over the state hashes.
//! - `keys.rs`, `version.rs`, `config.rs`, `error.rs`, `metrics.rs`, `connection.rs`.
//!
//! Wiring in the pipeline process:
//! ```no_run
//! # async fn wire() -> Result<(), social_state::StateError> {
//! use social_state::{RedisStateConfig, RedisStateSink, StateVersion};
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let config = RedisStateConfig::new("redis://127.0.0.1:6379", "social:");
//! let (sink, writer) = RedisStateSink::start(config, shutdown.clone())?;
//! // per round: the same updates the SnapshotStore gets, at (writer epoch of this start, round)
//! sink.apply(StateVersion::new(7, 3), Vec::new()).await?;
//! // before writing a checkpoint and committing offsets:
//! sink.flush().await?;
//! // readiness: sink.healthy(); on shutdown: flush, cancel, then
//! shutdown.cancel();
//! let _ = writer.await;
//! # Ok(()) }
//! ```

mod breaker;
mod buffer;
mod config;
mod connection;
mod error;
pub mod keys;
mod live;
pub mod metrics;
mod plan;
mod script;
mod sink;
mod snapshots;
mod version;
mod writer;

pub use breaker::BreakerState;
pub use config::RedisStateConfig;
pub use error::StateError;
pub use keys::StateKeys;
pub use sink::RedisStateSink;
pub use snapshots::RedisSnapshots;
pub use version::StateVersion;
