//! Row structs, one per table, field order = column order. With validation off (required against 18.16) a struct
//! that does not match its table reads or writes wrong values silently: `tests/roundtrip.rs` inserts and selects
//! every type.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// `raw_events`: one accepted input event.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct RawEventRow {
    pub source: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub event_time: DateTime<Utc>,
    pub event_time_ms: i64,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub ingest_time: DateTime<Utc>,
    pub partition_key: String,
    pub user_id: String,
    pub program_id: String,
    /// The referral code: `codeId` of `referral.code.generated`, `referralId` of the other referral events.
    pub referral_id: String,
    pub referrer_id: String,
    pub content_id: String,
    pub content_type: String,
    pub platform: String,
    pub engagement_type: String,
    pub amount: f64,
    /// The canonical CloudEvent JSON.
    pub payload: String,
}

/// `referral_codes` (filled by a materialized view from `raw_events`).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ReferralCodeRow {
    pub code_id: String,
    pub program_id: String,
    pub user_id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub created_time: DateTime<Utc>,
}

/// `referral_funnel_1m`. `reward_amount` is `Decimal(18, 4)`: units of 1/10,000.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Row, Serialize, Deserialize)]
pub struct FunnelRow {
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub minute: DateTime<Utc>,
    pub program_id: String,
    pub clicks: u64,
    pub conversions_started: u64,
    pub conversions_completed: u64,
    pub rewards: u64,
    pub reward_amount: i64,
    pub version: u64,
}

/// `engagement_1m`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Row, Serialize, Deserialize)]
pub struct EngagementRow {
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub minute: DateTime<Utc>,
    pub content_id: String,
    pub engagement_type: String,
    pub engagements: u64,
    pub version: u64,
}

/// `shares_1m`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Row, Serialize, Deserialize)]
pub struct SharesRow {
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub minute: DateTime<Utc>,
    pub platform: String,
    pub content_type: String,
    pub shares: u64,
    pub version: u64,
}

/// `leaderboard_snapshots`: one position of one board at one time.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct LeaderboardSnapshotRow {
    pub board_id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub snapshot_time: DateTime<Utc>,
    pub position: u32,
    pub user_id: String,
    pub score: f64,
}

/// `trending_snapshots`: one rank of one trending window at one time.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TrendingSnapshotRow {
    pub window_name: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub snapshot_time: DateTime<Utc>,
    pub rank: u32,
    pub content_id: String,
    pub score: f64,
}

/// `delivery_latency`: a histogram delta (see [`crate::deltas::BUCKETS_MS`]).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DeliveryLatencyRow {
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub minute: DateTime<Utc>,
    pub node: String,
    pub topic_class: String,
    pub le_ms: u32,
    pub count: u64,
    pub writer_id: String,
    pub seq: u64,
}

/// `dead_letters`: rejected input counted per minute and validation code (a delta).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DeadLetterRow {
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub minute: DateTime<Utc>,
    pub reason: String,
    pub count: u64,
    pub writer_id: String,
    pub seq: u64,
}
