//! Metric names of the live-state writer and reader. Labels come from small fixed sets (`result`), never a topic
//! or user id.

/// Snapshot updates accepted by `apply` (counter).
pub const UPDATES: &str = "state_updates_total";
/// Updates that replaced a value not yet written (counter).
pub const UPDATES_COALESCED: &str = "state_updates_coalesced_total";
/// `(topic, part)` keys waiting or being written (gauge).
pub const BUFFERED_KEYS: &str = "state_buffered_keys";
/// `apply` calls that waited for buffer space (counter).
pub const BACKPRESSURE: &str = "state_backpressure_total";
/// Flush attempts, `result` = `ok` | `error` (counter).
pub const FLUSHES: &str = "state_flushes_total";
/// Duration of a flush attempt in seconds (histogram).
pub const FLUSH_SECONDS: &str = "state_flush_seconds";
/// Topic writes, `result` = `applied` | `fenced` (older than stored) | `dropped` (refused by Redis for good)
/// (counter).
pub const TOPIC_WRITES: &str = "state_topic_writes_total";
/// Attempts that failed and will be retried (counter).
pub const RETRIES: &str = "state_retries_total";
/// Circuit breaker: 0 closed, 1 half-open, 2 open (gauge).
pub const BREAKER_STATE: &str = "state_breaker_state";
/// Snapshot reads from Redis, `result` = `ok` | `error` (counter).
pub const SNAPSHOT_READS: &str = "state_snapshot_reads_total";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(UPDATES, "snapshot updates accepted by the live-state sink");
    metrics::describe_counter!(
        UPDATES_COALESCED,
        "snapshot updates that replaced a value not yet written"
    );
    metrics::describe_gauge!(
        BUFFERED_KEYS,
        "live-state (topic, part) keys waiting to be written"
    );
    metrics::describe_counter!(BACKPRESSURE, "live-state applies that waited for buffer space");
    metrics::describe_counter!(FLUSHES, "live-state flush attempts by result");
    metrics::describe_histogram!(FLUSH_SECONDS, metrics::Unit::Seconds, "live-state flush duration");
    metrics::describe_counter!(
        TOPIC_WRITES,
        "live-state topic writes by result (applied, fenced, dropped)"
    );
    metrics::describe_counter!(RETRIES, "live-state attempts that failed and are retried");
    metrics::describe_gauge!(
        BREAKER_STATE,
        "live-state circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    metrics::describe_counter!(SNAPSHOT_READS, "snapshot reads from redis by result");
}
