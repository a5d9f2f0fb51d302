//! The crate's error type, with a retry hint for callers that decide between waiting and giving up.

use std::time::Duration;

/// Errors of the analytics sink.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// ClickHouse could not be reached or answered with an error; the operation may succeed later.
    #[error("clickhouse {operation} failed: {source}")]
    ClickHouse {
        operation: &'static str,
        #[source]
        source: clickhouse::error::Error,
    },
    /// A migration failed: the schema is not what the sink needs.
    #[error("{kind} migration {version} failed: {source}")]
    Migration {
        version: String,
        kind: &'static str,
        #[source]
        source: clickhouse::error::Error,
    },
    /// The server's `version()` could not be parsed.
    #[error("cannot parse clickhouse server version {0:?}")]
    ServerVersion(String),
    /// Invalid configuration.
    #[error("invalid analytics configuration: {0}")]
    Config(String),
    /// The sink was shut down (or its task ended) before the request could be served.
    #[error("analytics sink is closed")]
    Closed,
    /// Shutdown gave up with rows still unwritten: the caller must not commit offsets past them.
    #[error("analytics sink stopped with {rows} rows unwritten")]
    Unwritten { rows: usize },
    /// A timed operation (flush, shutdown) did not finish in time; the work goes on in the background.
    #[error("analytics sink {0} timed out")]
    Timeout(&'static str),
}

impl AnalyticsError {
    pub(crate) fn clickhouse(operation: &'static str, source: clickhouse::error::Error) -> Self {
        AnalyticsError::ClickHouse { operation, source }
    }

    /// Whether retrying the same operation later can succeed (the server was down, slow or overloaded).
    pub fn is_retryable(&self) -> bool {
        match self {
            AnalyticsError::ClickHouse { source, .. } => is_transient(source),
            AnalyticsError::Timeout(_) => true,
            AnalyticsError::Migration { .. }
            | AnalyticsError::ServerVersion(_)
            | AnalyticsError::Config(_)
            | AnalyticsError::Closed
            | AnalyticsError::Unwritten { .. } => false,
        }
    }

    /// A suggested delay before retrying, `None` when retrying is pointless.
    pub fn retry_after(&self) -> Option<Duration> {
        self.is_retryable().then_some(Duration::from_millis(500))
    }
}

/// Network errors, timeouts and server-side errors that typically pass (overload, too many parts, memory limit).
pub(crate) fn is_transient(error: &clickhouse::error::Error) -> bool {
    use clickhouse::error::Error;
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(text) => {
            // Code 252 TOO_MANY_PARTS, 241 MEMORY_LIMIT_EXCEEDED, 202 TOO_MANY_SIMULTANEOUS_QUERIES,
            // 159 TIMEOUT_EXCEEDED, 209 SOCKET_TIMEOUT, 210 NETWORK_ERROR, 242 TABLE_IS_READ_ONLY.
            [
                "Code: 252",
                "Code: 241",
                "Code: 202",
                "Code: 159",
                "Code: 209",
                "Code: 210",
                "Code: 242",
            ]
            .iter()
            .any(|code| text.contains(code))
                || text.contains("503")
                || text.contains("502")
        }
        _ => false,
    }
}

pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;
