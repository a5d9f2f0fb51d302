//! Metric names and the fixed label values of the sink (never an id as a label).

pub const ROWS_WRITTEN: &str = "analytics_clickhouse_rows_written_total";
pub const FLUSH_SECONDS: &str = "analytics_clickhouse_flush_duration_seconds";
pub const RETRIES: &str = "analytics_clickhouse_retries_total";
pub const BUFFER_ROWS: &str = "analytics_clickhouse_buffer_rows";
pub const DIRTY_MINUTES: &str = "analytics_clickhouse_dirty_minutes";

/// Label `table`: one of the tables the sink writes.
pub const TABLES: [&str; 8] = [
    "raw_events",
    "leaderboard_snapshots",
    "trending_snapshots",
    "delivery_latency",
    "dead_letters",
    "aggregates",
    "health",
    "migrations",
];

pub(crate) fn rows_written(table: &'static str, rows: usize) {
    debug_assert!(TABLES.contains(&table));
    metrics::counter!(ROWS_WRITTEN, "table" => table).increment(rows as u64);
}

pub(crate) fn flush_duration(table: &'static str, seconds: f64) {
    metrics::histogram!(FLUSH_SECONDS, "table" => table).record(seconds);
}

pub(crate) fn retry(table: &'static str, transient: bool) {
    let kind = if transient { "transient" } else { "permanent" };
    metrics::counter!(RETRIES, "table" => table, "kind" => kind).increment(1);
}

pub(crate) fn buffer_rows(rows: usize) {
    metrics::gauge!(BUFFER_ROWS).set(rows as f64);
}

pub(crate) fn dirty_minutes(minutes: usize) {
    metrics::gauge!(DIRTY_MINUTES).set(minutes as f64);
}
