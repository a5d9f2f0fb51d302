//! Configuration of the synthetic traffic generator.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// What to simulate. Every field has a default (serde and [`Default`]), so `{}` and `{"seed": 7}` are valid
/// configurations. The same configuration always yields the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeneratorConfig {
    /// Seed of the random number generator (ChaCha8). Also part of every event id (`evt-<seed>-<n>`).
    pub seed: u64,
    /// Users that exist before the first event (`user-0` .. `user-<users-1>`, never announced by
    /// `user.registered`). New users register on top of them as the simulation runs.
    pub users: u32,
    /// Referral programs (`program-standard`, `program-contractor`, ...). At least 1 is used.
    pub programs: u32,
    /// Event time of the first event. Fixed by default so that output is reproducible; the demo passes "now".
    pub start_time: DateTime<Utc>,
    /// Average number of events per second of EVENT time (spacing of the `time` attribute, Poisson arrivals).
    /// Not a wall-clock rate: pacing the output is the caller's business. Non-positive or non-finite: 200.
    pub events_per_second: f64,
    /// Largest difference between emission order and event-time order: an event is never emitted after one
    /// whose event time is more than this many milliseconds later than its own.
    pub max_out_of_order_ms: u64,
    /// CloudEvents `source` of every event.
    pub source: String,
}

/// Default of [`GeneratorConfig::users`].
pub const DEFAULT_USERS: u32 = 10_000;
/// Default of [`GeneratorConfig::programs`].
pub const DEFAULT_PROGRAMS: u32 = 5;
/// Default of [`GeneratorConfig::events_per_second`].
pub const DEFAULT_EVENTS_PER_SECOND: f64 = 200.0;
/// Default of [`GeneratorConfig::max_out_of_order_ms`].
pub const DEFAULT_MAX_OUT_OF_ORDER_MS: u64 = 5_000;
/// Default of [`GeneratorConfig::source`].
pub const DEFAULT_SOURCE: &str = "/generators/synthetic";

/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch, the default start time.
const DEFAULT_START_MS: i64 = 1_767_225_600_000;

/// Event times are kept within years 1..=9999 so that they always format as RFC 3339.
const MIN_START_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
const MAX_START_MS: i64 = 253_370_764_800_000; // 9999-01-01T00:00:00Z

pub(crate) fn default_start_time() -> DateTime<Utc> {
    match Utc.timestamp_millis_opt(DEFAULT_START_MS) {
        chrono::LocalResult::Single(t) => t,
        _ => DateTime::<Utc>::UNIX_EPOCH,
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            users: DEFAULT_USERS,
            programs: DEFAULT_PROGRAMS,
            start_time: default_start_time(),
            events_per_second: DEFAULT_EVENTS_PER_SECOND,
            max_out_of_order_ms: DEFAULT_MAX_OUT_OF_ORDER_MS,
            source: DEFAULT_SOURCE.to_owned(),
        }
    }
}

impl GeneratorConfig {
    /// The default configuration with another seed.
    pub fn with_seed(seed: u64) -> Self {
        GeneratorConfig {
            seed,
            ..Self::default()
        }
    }

    /// Values the generator actually uses: out-of-range values replaced by something usable.
    pub(crate) fn effective(&self) -> Effective {
        let eps = if self.events_per_second.is_finite() && self.events_per_second > 0.0 {
            self.events_per_second
        } else {
            DEFAULT_EVENTS_PER_SECOND
        };
        let source = if self.source.is_empty()
            || self.source.len() > 256
            || self.source.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            DEFAULT_SOURCE.to_owned()
        } else {
            self.source.clone()
        };
        Effective {
            seed: self.seed,
            users: self.users,
            programs: self.programs.clamp(1, 1_000),
            start_ms: self
                .start_time
                .timestamp_millis()
                .clamp(MIN_START_MS, MAX_START_MS),
            mean_gap_ms: 1_000.0 / eps,
            // Kept far below i64::MAX so that time arithmetic cannot overflow.
            max_out_of_order_ms: self.max_out_of_order_ms.min(365 * 86_400_000) as i64,
            source,
        }
    }
}

/// Sanitized configuration.
#[derive(Debug, Clone)]
pub(crate) struct Effective {
    pub(crate) seed: u64,
    pub(crate) users: u32,
    pub(crate) programs: u32,
    pub(crate) start_ms: i64,
    pub(crate) mean_gap_ms: f64,
    pub(crate) max_out_of_order_ms: i64,
    pub(crate) source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_defaults() {
        let c: GeneratorConfig = serde_json::from_str(r#"{"seed": 7}"#).unwrap();
        assert_eq!(c, GeneratorConfig::with_seed(7));
        assert_eq!(c.start_time.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(c.users, 10_000);
        assert_eq!(c.programs, 5);
        assert_eq!(c.events_per_second, 200.0);
        assert_eq!(c.max_out_of_order_ms, 5_000);
        assert_eq!(c.source, "/generators/synthetic");
        let back: GeneratorConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn sanitizes() {
        let c = GeneratorConfig {
            events_per_second: f64::NAN,
            programs: 0,
            source: "has space".into(),
            ..GeneratorConfig::default()
        };
        let e = c.effective();
        assert_eq!(e.mean_gap_ms, 5.0);
        assert_eq!(e.programs, 1);
        assert_eq!(e.source, DEFAULT_SOURCE);
    }
}
