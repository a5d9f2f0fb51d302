//! Configuration of the ClickHouse sink (serde, defaults, unknown fields rejected).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};

/// Where and how the sink writes. Every field has a default; `{}` is a valid configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database of all tables; created by [`crate::ClickHouseSink::migrate`] when missing.
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Raw event rows per INSERT: the buffer is flushed when it holds this many rows.
    pub batch_rows: usize,
    /// Longest time a row waits in the buffer before a flush, in milliseconds.
    pub flush_interval_ms: u64,
    /// Rows accepted but not yet written; `write_events` waits (backpressure) when the buffer is full.
    pub buffer_rows: usize,
    /// How often dirty minutes are recomputed into the per-minute aggregates, in milliseconds.
    pub aggregate_interval_ms: u64,
    /// Out-of-orderness allowed between a referral code and the clicks that use it (a share and its engagements),
    /// in milliseconds: when a `referral.code.generated` (`social.share.created`) arrives, the minutes up to this
    /// much later are recomputed.
    pub attribution_lateness_ms: u64,
    /// First retry delay, doubled on each failure up to `retry_max_backoff_ms`. Retries never stop while the
    /// sink runs: nothing accepted is dropped.
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    /// Name of this process in `delivery_latency.node` and as the prefix of its writer id.
    pub node: String,
    /// Per-request timeout, in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "social".to_owned(),
            user: None,
            password: None,
            batch_rows: 20_000,
            flush_interval_ms: 1_000,
            buffer_rows: 200_000,
            aggregate_interval_ms: 5_000,
            attribution_lateness_ms: 60_000,
            retry_initial_backoff_ms: 100,
            retry_max_backoff_ms: 5_000,
            node: "pipeline".to_owned(),
            request_timeout_ms: 30_000,
        }
    }
}

impl ClickHouseConfig {
    /// The defaults with another URL and database.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        ClickHouseConfig {
            url: url.into(),
            database: database.into(),
            ..Self::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let db_ok = !self.database.is_empty()
            && self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !db_ok {
            return Err(AnalyticsError::Config(format!(
                "database {:?} must be non-empty [A-Za-z0-9_]",
                self.database
            )));
        }
        if self.batch_rows == 0 || self.buffer_rows < self.batch_rows {
            return Err(AnalyticsError::Config(
                "batch_rows must be >= 1 and buffer_rows >= batch_rows".to_owned(),
            ));
        }
        if self.buffer_rows > u32::MAX as usize {
            return Err(AnalyticsError::Config("buffer_rows is too large".to_owned()));
        }
        Ok(())
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }

    pub(crate) fn aggregate_interval(&self) -> Duration {
        Duration::from_millis(self.aggregate_interval_ms.max(1))
    }

    /// A client for this configuration: validation off (Debian's 18.16 rejects `RowBinaryWithNamesAndTypes`),
    /// lz4 compression, the configured database (`with_database = false` for statements that create it).
    pub(crate) fn client(&self, with_database: bool) -> clickhouse::Client {
        let mut client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_validation(false)
            .with_compression(clickhouse::Compression::Lz4)
            .with_setting(
                "max_execution_time",
                (self.request_timeout_ms / 1000).max(1).to_string(),
            );
        if with_database {
            client = client.with_database(&self.database);
        }
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        if let Some(password) = &self.password {
            client = client.with_password(password);
        }
        client
    }
}
