//! Metrics of the operators. Labels come from small fixed sets (operator names, partition numbers, kinds);
//! never a user id. Per-event counts are kept in plain integers and published at ticks, so the hot path does
//! no atomic or registry work.

/// The operators, as the `operator` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKind {
    Attribution,
    Privacy,
    Counters,
    Rewards,
    Leaderboard,
    Engagement,
    Trending,
    Notifications,
    Testimonials,
    Fraud,
}

impl OperatorKind {
    pub const ALL: [OperatorKind; 10] = [
        OperatorKind::Attribution,
        OperatorKind::Privacy,
        OperatorKind::Counters,
        OperatorKind::Rewards,
        OperatorKind::Leaderboard,
        OperatorKind::Engagement,
        OperatorKind::Trending,
        OperatorKind::Notifications,
        OperatorKind::Testimonials,
        OperatorKind::Fraud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperatorKind::Attribution => "attribution",
            OperatorKind::Privacy => "privacy",
            OperatorKind::Counters => "counters",
            OperatorKind::Rewards => "rewards",
            OperatorKind::Leaderboard => "leaderboard",
            OperatorKind::Engagement => "engagement",
            OperatorKind::Trending => "trending",
            OperatorKind::Notifications => "notifications",
            OperatorKind::Testimonials => "testimonials",
            OperatorKind::Fraud => "fraud",
        }
    }
}

pub const EVENTS_PROCESSED: &str = "pipeline_operator_events_total";
pub const WATERMARK_LAG: &str = "pipeline_watermark_lag_ms";
pub const LATE_EVENTS: &str = "pipeline_late_events_total";
pub const DUPLICATE_EVENTS: &str = "pipeline_duplicate_events_total";
pub const DEDUP_EVICTED_KEYS: &str = "pipeline_dedup_evicted_keys_total";
/// Events that waited for the code or share they name and never counted (`reason`: `full`, `expired`, or
/// `reference_later`: the reference was created after them in event order).
pub const WAITING_EVENTS_DROPPED: &str = "pipeline_waiting_events_dropped_total";
pub const CHECKPOINT_SECONDS: &str = "pipeline_checkpoint_duration_seconds";
pub const CHECKPOINT_BYTES: &str = "pipeline_checkpoint_bytes";
pub const STATE_ENTRIES: &str = "pipeline_state_entries";

/// Unpublished per-operator event counts.
#[derive(Debug, Clone, Default)]
pub struct ProcessedCounts {
    counts: [u64; 10],
}

impl ProcessedCounts {
    pub fn add(&mut self, kind: OperatorKind) {
        if let Some(slot) = self.counts.get_mut(kind as usize) {
            *slot += 1;
        }
    }

    /// Adds the counts to the `metrics` counters and resets them.
    pub fn publish(&mut self) {
        for kind in OperatorKind::ALL {
            let Some(slot) = self.counts.get_mut(kind as usize) else {
                continue;
            };
            if *slot > 0 {
                metrics::counter!(EVENTS_PROCESSED, "operator" => kind.as_str()).increment(*slot);
                *slot = 0;
            }
        }
    }
}
