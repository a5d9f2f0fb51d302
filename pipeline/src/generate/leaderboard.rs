//! Referral leaderboards as the Referral Service would publish them: completed conversions per referrer in the
//! current period (day, ISO week, month, or all time), top [`TOP_N`], published as the positions that changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike};

/// Positions published per board.
pub(crate) const TOP_N: usize = 10;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug)]
pub(crate) struct Board {
    pub(crate) id: &'static str,
    period: Option<i64>,
    counts: BTreeMap<u32, u32>,
    /// Users in the top N as last published, best first.
    published: Vec<u32>,
}

impl Board {
    pub(crate) fn new(id: &'static str) -> Board {
        Board {
            id,
            period: None,
            counts: BTreeMap::new(),
            published: Vec::new(),
        }
    }

    /// Which period `ms` falls in, for this board.
    fn period_of(&self, ms: i64) -> i64 {
        let day = ms.div_euclid(DAY_MS);
        match self.id {
            "daily" => day,
            // 1970-01-01 was a Thursday; weeks start on Monday.
            "weekly" => (day + 3).div_euclid(7),
            "monthly" => DateTime::from_timestamp_millis(ms)
                .map(|t| i64::from(t.year()) * 12 + i64::from(t.month0()))
                .unwrap_or(0),
            _ => 0,
        }
    }

    fn roll(&mut self, ms: i64) {
        let period = self.period_of(ms);
        if self.period != Some(period) {
            self.period = Some(period);
            self.counts.clear();
            self.published.clear();
        }
    }

    /// One more completed conversion for `user` at `ms`.
    pub(crate) fn record(&mut self, user: u32, ms: i64) {
        self.roll(ms);
        *self.counts.entry(user).or_insert(0) += 1;
    }

    /// The positions that changed since the last publication: `(user, position, delta)`, where `delta` is how
    /// many places the user moved up (entrants count as coming from position `TOP_N + 1`). Empty when nothing
    /// changed.
    pub(crate) fn changes(&mut self, ms: i64) -> Vec<(u32, u32, i64)> {
        self.roll(ms);
        let mut ranked: Vec<(u32, u32)> = self.counts.iter().map(|(user, count)| (*user, *count)).collect();
        // Most conversions first; ties by user index (BTreeMap order), so the ranking is deterministic.
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(TOP_N);
        let mut changes = Vec::new();
        for (i, (user, _)) in ranked.iter().enumerate() {
            let position = i as i64 + 1;
            let before = self
                .published
                .iter()
                .position(|u| u == user)
                .map_or(TOP_N as i64 + 1, |p| p as i64 + 1);
            if before != position {
                changes.push((*user, position as u32, before - position));
            }
        }
        self.published = ranked.into_iter().map(|(user, _)| user).collect();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a Thursday

    #[test]
    fn reports_moves_and_entrants() {
        let mut board = Board::new("all-time");
        assert!(board.changes(T0).is_empty());
        board.record(1, T0);
        board.record(2, T0);
        board.record(2, T0);
        assert_eq!(board.changes(T0), vec![(2, 1, 10), (1, 2, 9)]);
        assert!(board.changes(T0).is_empty());
        board.record(1, T0);
        board.record(1, T0);
        assert_eq!(board.changes(T0), vec![(1, 1, 1), (2, 2, -1)]);
    }

    #[test]
    fn periods_reset() {
        let mut daily = Board::new("daily");
        daily.record(1, T0);
        assert_eq!(daily.changes(T0).len(), 1);
        daily.record(2, T0 + DAY_MS);
        assert_eq!(daily.changes(T0 + DAY_MS), vec![(2, 1, 10)]);

        let weekly = Board::new("weekly");
        // Thursday to Sunday is the same ISO week; Monday starts the next one.
        assert_eq!(weekly.period_of(T0), weekly.period_of(T0 + 3 * DAY_MS));
        assert_ne!(weekly.period_of(T0), weekly.period_of(T0 + 4 * DAY_MS));
        let monthly = Board::new("monthly");
        assert_eq!(monthly.period_of(T0), monthly.period_of(T0 + 30 * DAY_MS));
        assert_ne!(monthly.period_of(T0), monthly.period_of(T0 + 31 * DAY_MS));
    }
}
