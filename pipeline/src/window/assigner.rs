//! Window assigners: the windows `[start, end)` an event time belongs to.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{EventTimeMs, align_down};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
pub const WEEK_MS: i64 = 7 * DAY_MS;
/// 1970-01-01 was a Thursday; ISO weeks start on Monday, 4 days later.
pub const MONDAY_OFFSET_MS: i64 = 4 * DAY_MS;

/// How event times are grouped into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSpec {
    /// Back-to-back windows of `size_ms`, starting at `offset_ms` modulo `size_ms` (UTC days: offset 0).
    Tumbling { size_ms: i64, offset_ms: i64 },
    /// Overlapping windows of `size_ms` starting every `slide_ms` (`size_ms` a multiple of `slide_ms`).
    Hopping { size_ms: i64, slide_ms: i64 },
    /// UTC calendar months (not a fixed size, hence their own kind).
    CalendarMonth,
    /// One window for all time.
    Global,
}

/// Start and end (exclusive) of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: EventTimeMs,
    pub end: EventTimeMs,
}

impl WindowSpec {
    pub const fn daily() -> Self {
        WindowSpec::Tumbling {
            size_ms: DAY_MS,
            offset_ms: 0,
        }
    }

    pub const fn weekly() -> Self {
        WindowSpec::Tumbling {
            size_ms: WEEK_MS,
            offset_ms: MONDAY_OFFSET_MS,
        }
    }

    /// Whether the parameters make sense (positive sizes, hopping size a multiple of the slide).
    pub fn is_valid(&self) -> bool {
        match *self {
            WindowSpec::Tumbling { size_ms, .. } => size_ms > 0,
            WindowSpec::Hopping { size_ms, slide_ms } => {
                slide_ms > 0 && size_ms >= slide_ms && size_ms % slide_ms == 0
            }
            WindowSpec::CalendarMonth | WindowSpec::Global => true,
        }
    }

    /// Calls `f` for every window containing `t`, oldest first.
    pub fn for_each_window(&self, t: EventTimeMs, mut f: impl FnMut(Window)) {
        match *self {
            WindowSpec::Tumbling { size_ms, offset_ms } => {
                let start = align_down(t - offset_ms, size_ms) + offset_ms;
                f(Window {
                    start,
                    end: start + size_ms,
                });
            }
            WindowSpec::Hopping { size_ms, slide_ms } => {
                let last = align_down(t, slide_ms);
                let mut start = last - size_ms + slide_ms;
                while start <= last {
                    f(Window {
                        start,
                        end: start + size_ms,
                    });
                    start += slide_ms;
                }
            }
            WindowSpec::CalendarMonth => f(month_of(t)),
            WindowSpec::Global => f(Window {
                start: EventTimeMs::MIN,
                end: EventTimeMs::MAX,
            }),
        }
    }

    /// The one window containing `t` for non-overlapping specs; the latest one for hopping windows.
    pub fn window_of(&self, t: EventTimeMs) -> Window {
        let mut last = Window { start: t, end: t };
        self.for_each_window(t, |w| last = w);
        last
    }
}

fn month_of(t: EventTimeMs) -> Window {
    let Some(date) = DateTime::<Utc>::from_timestamp_millis(t) else {
        return Window {
            start: t,
            end: t.saturating_add(1),
        };
    };
    let (y, m) = (date.year(), date.month());
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let start = first_of_month_ms(y, m).unwrap_or(t);
    let end = first_of_month_ms(ny, nm).unwrap_or(EventTimeMs::MAX);
    Window { start, end }
}

fn first_of_month_ms(year: i32, month: u32) -> Option<EventTimeMs> {
    let date = NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?;
    Some(Utc.from_utc_datetime(&date).timestamp_millis())
}

/// `YYYY-MM-DD` of the UTC day containing `t` (used to name closed periods).
pub fn utc_date(t: EventTimeMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(spec: WindowSpec, t: i64) -> Vec<Window> {
        let mut v = Vec::new();
        spec.for_each_window(t, |w| v.push(w));
        v
    }

    #[test]
    fn tumbling_and_weeks() {
        assert_eq!(
            windows(WindowSpec::daily(), DAY_MS + 5),
            vec![Window {
                start: DAY_MS,
                end: 2 * DAY_MS
            }]
        );
        assert_eq!(
            windows(WindowSpec::daily(), -1),
            vec![Window {
                start: -DAY_MS,
                end: 0
            }]
        );
        // 2026-01-01 is a Thursday; its week started on Monday 2025-12-29.
        let w = WindowSpec::weekly().window_of(1_767_225_600_000);
        assert_eq!(utc_date(w.start), "2025-12-29");
        assert_eq!(w.end - w.start, WEEK_MS);
    }

    #[test]
    fn hopping_covers_t() {
        let spec = WindowSpec::Hopping {
            size_ms: 60,
            slide_ms: 20,
        };
        let ws = windows(spec, 45);
        assert_eq!(ws.iter().map(|w| w.start).collect::<Vec<_>>(), vec![0, 20, 40]);
        assert!(ws.iter().all(|w| w.start <= 45 && 45 < w.end));
    }

    #[test]
    fn months() {
        let w = WindowSpec::CalendarMonth.window_of(1_767_225_600_000 + 40 * DAY_MS); // 2026-02-10
        assert_eq!(utc_date(w.start), "2026-02-01");
        assert_eq!(utc_date(w.end), "2026-03-01");
        let dec = WindowSpec::CalendarMonth.window_of(1_767_225_600_000 - 1);
        assert_eq!(utc_date(dec.start), "2025-12-01");
        assert_eq!(dec.end, 1_767_225_600_000);
    }
}
