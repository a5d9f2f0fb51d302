//! ClickHouse analytics sink of the real-time tier.
//!
//! Map of the crate:
//! - [`config`]: [`ClickHouseConfig`] (URL, database, batch size, flush interval, buffer, retries).
//! - [`migrate`]: the SQL files of `schemas/clickhouse/` (portable `core/`, version-gated `modern/`), applied at
//!   start and recorded in `schema_migrations`.
//! - [`sink`]: [`ClickHouseSink`], the handle: `write_events`, snapshots, latency / dead-letter counters,
//!   `flush` (checkpoint barrier), `health`, `shutdown`, `stats`.
//! - `writer`: the background task (batches, retries with backoff, recomputation of dirty minutes).
//! - [`aggregate`]: the per-minute recomputation SQL and [`verify_aggregates`], the check that stored aggregates
//!   equal a recomputation from `raw_events`.
//! - [`rows`]: one `clickhouse::Row` struct per table; [`extract`]: `Event` -> `raw_events` row.
//! - [`deltas`]: latency histogram buckets and dead-letter counts; [`metrics`]: metric names and labels.
//!
//! Against Debian's ClickHouse 18.16 the client runs with validation off (see `DEPENDENCY-FACTS.md`); the row
//! structs are checked by round-trip tests instead.

pub mod aggregate;
pub mod config;
pub mod deltas;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod migrate;
mod retry;
pub mod rows;
pub mod sink;
mod stats;
mod writer;

pub use aggregate::{AggregateCounts, AggregateMismatch, verify_aggregates};
pub use config::ClickHouseConfig;
pub use error::{AnalyticsError, Result};
pub use migrate::{MIGRATIONS, MigrationReport};
pub use rows::*;
pub use sink::ClickHouseSink;
pub use stats::SinkStats;
