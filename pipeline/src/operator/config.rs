//! Configuration of the operator graph: serde with defaults, unknown fields rejected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::window::assigner::{HOUR_MS, MINUTE_MS, WindowSpec};
use crate::window::sliding::SlidingSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// Bounded out-of-orderness: events at most this much older than the newest one are never late.
    pub max_out_of_order_ms: i64,
    /// Late events up to this much behind the watermark still update their windows (corrections); later ones go
    /// to the late-data side output.
    pub allowed_lateness_ms: i64,
    /// Event-time interval of ticks: early window results, coalesced counters, grouped alerts and rank changes are
    /// emitted at most once per interval.
    pub emit_interval_ms: i64,
    /// Rank changes are published for the top N of each leaderboard.
    pub leaderboard_top_n: usize,
    pub trending_top_k: usize,
    pub trending: Vec<TrendingWindow>,
    /// Windows of the engagement aggregates (per share, content and sharer).
    pub engagement_window: WindowSpec,
    /// Whether engagement aggregates also publish early results at every tick while their window is open (one
    /// message per changed share, content and sharer per tick: the largest stream of all). Off by default: finals
    /// and corrections only; grouped engagement alerts carry the live view.
    pub engagement_early_updates: bool,
    pub fraud: FraudConfig,
    pub programs: ProgramsConfig,
    /// How many testimonials the `testimonials.recent` snapshot keeps.
    pub testimonials_recent: usize,
    /// Threads the operators run on: 1, or 2 (the social side, engagement, trending and testimonials, on a second
    /// thread while the referral side runs on the caller's). The output is the same either way.
    pub threads: usize,
    /// At most this many input event keys are remembered to drop copies of an event (about 50 bytes each;
    /// normally every event within the allowed lateness). Beyond it the oldest minutes are forgotten first (never
    /// the minute being written), counted by `pipeline_dedup_evicted_keys_total`.
    pub dedup_max_keys: usize,
    /// At most this many events wait for the referral code or share they name (read late, before the event that
    /// creates it; see [`super::waiting`]). Past it, such an event counts as naming nothing, as it would without
    /// waiting, and `pipeline_waiting_events_dropped_total{reason="full"}` counts it.
    pub max_waiting_events: usize,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            max_out_of_order_ms: 5_000,
            allowed_lateness_ms: HOUR_MS,
            emit_interval_ms: 5_000,
            leaderboard_top_n: 100,
            trending_top_k: 10,
            trending: vec![
                TrendingWindow {
                    name: "1h".into(),
                    window: SlidingSpec {
                        size_ms: HOUR_MS,
                        step_ms: MINUTE_MS,
                    },
                    half_life_ms: 30 * MINUTE_MS,
                },
                TrendingWindow {
                    name: "24h".into(),
                    window: SlidingSpec {
                        size_ms: 24 * HOUR_MS,
                        step_ms: 30 * MINUTE_MS,
                    },
                    half_life_ms: 6 * HOUR_MS,
                },
            ],
            engagement_window: WindowSpec::Tumbling {
                size_ms: HOUR_MS,
                offset_ms: 0,
            },
            engagement_early_updates: false,
            fraud: FraudConfig::default(),
            programs: ProgramsConfig::default(),
            testimonials_recent: 20,
            threads: 2,
            dedup_max_keys: 1_000_000,
            max_waiting_events: 100_000,
        }
    }
}

impl OperatorConfig {
    /// The public `leaderboard.*` and `trending.*` topics the operators publish on (for the delivery tier's
    /// allowlist of public topics).
    pub fn public_topics(&self) -> Vec<String> {
        let boards = super::leaderboard::BOARDS
            .iter()
            .map(|b| super::output::topics::leaderboard(b));
        let windows = self
            .trending
            .iter()
            .map(|w| super::output::topics::trending(&w.name));
        boards.chain(windows).collect()
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_out_of_order_ms < 0 || self.allowed_lateness_ms < 0 {
            return Err("max_out_of_order_ms and allowed_lateness_ms must be >= 0".into());
        }
        if self.emit_interval_ms <= 0 {
            return Err("emit_interval_ms must be > 0".into());
        }
        if !self.engagement_window.is_valid() {
            return Err("engagement_window is not a valid window".into());
        }
        for t in &self.trending {
            if !t.window.is_valid() || t.half_life_ms <= 0 || t.name.is_empty() {
                return Err(format!("trending window {:?} is not valid", t.name));
            }
        }
        if !(1..=2).contains(&self.threads) {
            return Err("threads must be 1 or 2".into());
        }
        if self.fraud.window_ms <= 0 || self.fraud.click_threshold == 0 {
            return Err("fraud.window_ms and fraud.click_threshold must be > 0".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendingWindow {
    /// Topic suffix: `trending.{name}`.
    pub name: String,
    pub window: SlidingSpec,
    /// Half-life of the decayed score that breaks ties between equal counts and shows momentum.
    pub half_life_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudConfig {
    /// Tumbling window of the click-flood detector.
    pub window_ms: i64,
    /// Clicks from one IP on one referral within a window beyond which clicks are flagged (not counted as clicks
    /// by the counters) and a signal is raised (once per referral, IP and window).
    pub click_threshold: u32,
}

impl Default for FraudConfig {
    fn default() -> Self {
        FraudConfig {
            window_ms: 10 * MINUTE_MS,
            click_threshold: 20,
        }
    }
}

/// Reward tiers per program. Programs not listed use `default_tiers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgramsConfig {
    pub default_tiers: Vec<Tier>,
    pub programs: BTreeMap<String, ProgramConfig>,
}

impl Default for ProgramsConfig {
    fn default() -> Self {
        let tier = |threshold, amount| Tier {
            threshold,
            reward_amount: amount,
        };
        ProgramsConfig {
            default_tiers: vec![
                tier(1, 25.0),
                tier(3, 100.0),
                tier(5, 200.0),
                tier(10, 500.0),
                tier(25, 1500.0),
            ],
            programs: BTreeMap::new(),
        }
    }
}

impl ProgramsConfig {
    pub fn tiers(&self, program: &str) -> &[Tier] {
        self.programs
            .get(program)
            .map_or(&self.default_tiers, |p| &p.tiers)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// Ascending thresholds of completed referrals.
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    pub threshold: u32,
    pub reward_amount: f64,
}
