//! Messages the pipeline derives from input events and hands to the outputs (SSE topics, output bus topics).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One derived message bound for one topic of CONTRACT section 3 (for example `user.u1.referrals`).
///
/// `id` is computed from the inputs that produced the message, so replaying the same input yields the same id and
/// consumers can drop duplicates. `data` is the payload object without `eventType`; the delivery tier adds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicMessage {
    pub topic: String,
    pub id: String,
    pub event_type: String,
    /// Event time of the input that produced the message.
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}
