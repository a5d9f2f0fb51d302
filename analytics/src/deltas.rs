//! Counters accumulated in memory between flushes and written as delta rows keyed by (writer id, flush sequence):
//! delivery latency histograms and dead-letter counts. A retried flush repeats its key, so it is written once.
//! Dead letters read from a log are keyed by their place in it instead (`writer_id` = `log:{log}`, `seq` = the
//! offset), so that a consumer reading them again after a restart writes the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::extract::minute_of;
use crate::rows::{DeadLetterRow, DeliveryLatencyRow};

/// `writer_id` prefix of the dead-letter rows keyed by their place in a log.
pub const DEAD_LETTER_LOG_PREFIX: &str = "log:";

/// Upper bounds (inclusive, milliseconds) of the delivery latency buckets; the last is +Inf.
pub const BUCKETS_MS: [u32; 15] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    150,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    u32::MAX,
];

/// The bucket bound for a latency.
pub fn bucket_of(latency: Duration) -> u32 {
    let ms = u32::try_from(latency.as_millis()).unwrap_or(u32::MAX);
    BUCKETS_MS
        .iter()
        .copied()
        .find(|&le| ms <= le)
        .unwrap_or(u32::MAX)
}

/// Counts since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Deltas {
    latency: BTreeMap<(i64, String, u32), u64>,
    dead_letters: BTreeMap<(i64, String), u64>,
    /// Dead letters read from a log, one row each: `(minute, reason, log, offset)`.
    dead_letter_records: BTreeSet<(i64, String, String, u64)>,
}

impl Deltas {
    pub(crate) fn record_latency(&mut self, topic_class: &str, at: DateTime<Utc>, latency: Duration) {
        *self
            .latency
            .entry((minute_of(at), topic_class.to_owned(), bucket_of(latency)))
            .or_default() += 1;
    }

    pub(crate) fn record_dead_letter(&mut self, reason: &str, at: DateTime<Utc>, count: u64) {
        *self
            .dead_letters
            .entry((minute_of(at), reason.to_owned()))
            .or_default() += count;
    }

    pub(crate) fn record_dead_letter_at(&mut self, reason: &str, at: DateTime<Utc>, log: &str, offset: u64) {
        self.dead_letter_records
            .insert((minute_of(at), reason.to_owned(), log.to_owned(), offset));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.latency.is_empty() && self.dead_letters.is_empty() && self.dead_letter_records.is_empty()
    }

    /// Takes the counts as rows of flush `seq`.
    pub(crate) fn take_rows(
        &mut self,
        node: &str,
        writer_id: &str,
        seq: u64,
    ) -> (Vec<DeliveryLatencyRow>, Vec<DeadLetterRow>) {
        let minute = |m: i64| DateTime::<Utc>::from_timestamp(m, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let latency = std::mem::take(&mut self.latency)
            .into_iter()
            .map(|((m, topic_class, le_ms), count)| DeliveryLatencyRow {
                minute: minute(m),
                node: node.to_owned(),
                topic_class,
                le_ms,
                count,
                writer_id: writer_id.to_owned(),
                seq,
            })
            .collect();
        let mut dead: Vec<DeadLetterRow> = std::mem::take(&mut self.dead_letters)
            .into_iter()
            .map(|((m, reason), count)| DeadLetterRow {
                minute: minute(m),
                reason,
                count,
                writer_id: writer_id.to_owned(),
                seq,
            })
            .collect();
        // Keyed by where the letter was read, so that reading it again writes the same row.
        dead.extend(std::mem::take(&mut self.dead_letter_records).into_iter().map(
            |(m, reason, log, offset)| DeadLetterRow {
                minute: minute(m),
                reason,
                count: 1,
                writer_id: format!("{DEAD_LETTER_LOG_PREFIX}{log}"),
                seq: offset,
            },
        ));
        (latency, dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket_of(Duration::from_micros(300)), 1);
        assert_eq!(bucket_of(Duration::from_millis(1)), 1);
        assert_eq!(bucket_of(Duration::from_millis(3)), 5);
        assert_eq!(bucket_of(Duration::from_secs(3600)), u32::MAX);
    }

    #[test]
    fn take_rows_groups_by_minute_and_empties() {
        let mut d = Deltas::default();
        let t = DateTime::<Utc>::from_timestamp(125, 0).unwrap_or_default();
        d.record_latency("user", t, Duration::from_millis(7));
        d.record_latency("user", t, Duration::from_millis(8));
        d.record_dead_letter("missing_field", t, 2);
        let (lat, dead) = d.take_rows("n", "w", 3);
        assert_eq!(lat.len(), 1);
        assert_eq!(
            (lat[0].le_ms, lat[0].count, lat[0].minute.timestamp()),
            (10, 2, 120)
        );
        assert_eq!((dead[0].count, dead[0].seq), (2, 3));
        assert!(d.is_empty());
    }

    #[test]
    fn a_dead_letter_read_twice_gives_the_same_row() {
        let t = DateTime::<Utc>::from_timestamp(125, 0).unwrap_or_default();
        let rows = |writer: &str, seq: u64| {
            let mut d = Deltas::default();
            d.record_dead_letter_at("missing_field", t, "dlq/0", 41);
            d.record_dead_letter_at("missing_field", t, "dlq/0", 41);
            d.take_rows("n", writer, seq).1
        };
        let first = rows("w1", 1);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].count, first[0].writer_id.as_str(), first[0].seq),
            (1, "log:dlq/0", 41)
        );
        assert_eq!(first, rows("w2", 9));
    }
}
