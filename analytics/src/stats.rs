//! Counters of the sink, readable by tests and health endpoints (the same values go to `metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    rows_written: AtomicU64,
    retries: AtomicU64,
    flushes: AtomicU64,
    recomputations: AtomicU64,
}

/// A snapshot of the sink's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Raw event and snapshot rows written (a replayed row counts again).
    pub rows_written: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Successful INSERTs of raw events and snapshots.
    pub flushes: u64,
    /// Successful recomputations of dirty minutes.
    pub recomputations: u64,
    /// Rows accepted and not yet written.
    pub buffered_rows: u64,
}

impl Stats {
    pub(crate) fn add_rows(&self, n: usize) {
        self.rows_written.fetch_add(n as u64, Ordering::Relaxed);
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_recomputation(&self) {
        self.recomputations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, buffered_rows: u64) -> SinkStats {
        SinkStats {
            rows_written: self.rows_written.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            recomputations: self.recomputations.load(Ordering::Relaxed),
            buffered_rows,
        }
    }
}
