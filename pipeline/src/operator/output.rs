//! What operators produce: messages routed to SSE topics and/or the output bus, snapshot updates for the
//! delivery tier, and too-late input for the side output.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use social_schemas::TopicMessage;
use social_schemas::derived::MessageData;

use crate::window::EventTimeMs;

/// Topic of the late-data side output (too-late input events, unchanged).
pub const LATE_DATA_TOPIC: &str = "social-events-late";

/// Where a message goes.
///
/// - `Sse`: the CONTRACT section 3 topic in `message.topic` only;
/// - `Bus`: the output bus only, as a derived CloudEvent of type `message.event_type` on the output topic of the
///   same name (e.g. `referral.fraud.suspected`); `message.topic` then equals `message.event_type`;
/// - `SseAndBus`: both;
/// - `LateData`: the late-data side output ([`LATE_DATA_TOPIC`]); `data` is the input CloudEvent as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    Sse,
    Bus,
    SseAndBus,
    LateData,
}

impl Destination {
    pub fn to_sse(self) -> bool {
        matches!(self, Destination::Sse | Destination::SseAndBus)
    }

    pub fn to_bus(self) -> bool {
        matches!(self, Destination::Bus | Destination::SseAndBus)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub destination: Destination,
    pub message: TopicMessage,
}

/// The current state of one part of a topic (`counters` of `user.u1.referrals`, `top` of `leaderboard.daily`),
/// for `?snapshot=true` and `GET /v1/topics/{topic}/snapshot`. `None` removes the part. The value is serialized
/// JSON, often shared with the message that announced the change.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotUpdate {
    pub topic: String,
    pub part: String,
    pub value: Option<MessageData>,
}

/// Collects what the operators produce for one call; the caller drains it.
#[derive(Debug, Default)]
pub struct Emitter {
    pub outputs: Vec<Output>,
    pub snapshots: Vec<SnapshotUpdate>,
}

impl Emitter {
    pub fn emit(
        &mut self,
        destination: Destination,
        topic: String,
        id: String,
        event_type: &str,
        time_ms: EventTimeMs,
        data: MessageData,
    ) {
        let message = TopicMessage {
            topic,
            id,
            event_type: event_type.to_owned(),
            timestamp: to_utc(time_ms),
            data,
        };
        self.outputs.push(Output { destination, message });
    }

    pub fn snapshot(&mut self, topic: String, part: &str, value: Option<MessageData>) {
        self.snapshots.push(SnapshotUpdate {
            topic,
            part: part.to_owned(),
            value,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty() && self.snapshots.is_empty()
    }

    pub fn clear(&mut self) {
        self.outputs.clear();
        self.snapshots.clear();
    }
}

pub fn to_utc(ms: EventTimeMs) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Text of event times in message payloads (`"2026-01-01T00:00:00Z"`, as `DateTime<Utc>` serializes), formatted
/// once per distinct time: the window bounds of one tick's firings repeat in every message.
#[derive(Debug, Default)]
pub struct TimeText {
    entries: Vec<(EventTimeMs, String)>,
}

impl TimeText {
    /// Formats `ms` unless it already was; then [`TimeText::text`] returns it.
    pub fn add(&mut self, ms: EventTimeMs) {
        if self.entries.iter().any(|(t, _)| *t == ms) {
            return;
        }
        let text = match serde_json::to_value(to_utc(ms)) {
            Ok(serde_json::Value::String(s)) => s,
            _ => to_utc(ms).to_rfc3339(),
        };
        self.entries.push((ms, text));
    }

    /// The text of `ms` (empty when it was not added).
    pub fn text(&self, ms: EventTimeMs) -> &str {
        self.entries
            .iter()
            .find(|(t, _)| *t == ms)
            .map_or("", |(_, s)| s.as_str())
    }
}

/// Topic names of CONTRACT section 3.
pub mod topics {
    fn concat(prefix: &str, id: &str, suffix: &str) -> String {
        let mut topic = String::with_capacity(prefix.len() + id.len() + suffix.len());
        topic.push_str(prefix);
        topic.push_str(id);
        topic.push_str(suffix);
        topic
    }
    pub fn user_social(user: &str) -> String {
        concat("user.", user, ".social")
    }
    pub fn user_referrals(user: &str) -> String {
        concat("user.", user, ".referrals")
    }
    pub fn user_network(user: &str) -> String {
        concat("user.", user, ".network")
    }
    pub fn program_updates(program: &str) -> String {
        concat("program.", program, ".updates")
    }
    pub fn leaderboard(board: &str) -> String {
        concat("leaderboard.", board, "")
    }
    pub fn trending(window: &str) -> String {
        concat("trending.", window, "")
    }
    pub const TESTIMONIALS_RECENT: &str = "testimonials.recent";

    /// Whether anyone may read the topic (CONTRACT section 3): privacy rules apply to these.
    pub fn is_public(topic: &str) -> bool {
        topic.starts_with("leaderboard.") || topic.starts_with("trending.") || topic == TESTIMONIALS_RECENT
    }
}
