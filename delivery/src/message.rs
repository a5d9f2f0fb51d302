//! The wire format of a message (the spec's appendix): `type` (`EVENT`, `SNAPSHOT`, `RESET`), `topic`, `id`,
//! `timestamp`, `data` (`eventType` plus the payload fields) and `version` (the version of this format, 1).
//!
//! A payload that is not a JSON object is carried as `data.value`. `SNAPSHOT` messages have `eventType`
//! `"snapshot"` and the topic's state fields; `RESET` messages have `eventType` `"reset"` and a `reason`
//! (`history_expired` or `epoch_changed`).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use social_schemas::TopicMessage;

use crate::DeliveryError;
use crate::history::{GapReason, Position};

/// The version of the message format.
pub const MESSAGE_FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    topic: &'a str,
    id: &'a str,
    timestamp: String,
    data: Map<String, Value>,
    version: u32,
}

fn data_object(event_type: &str, payload: &Value) -> Map<String, Value> {
    let mut data = match payload {
        Value::Object(fields) => fields.clone(),
        Value::Null => Map::new(),
        other => {
            let mut map = Map::new();
            map.insert("value".to_owned(), other.clone());
            map
        }
    };
    data.insert("eventType".to_owned(), Value::String(event_type.to_owned()));
    data
}

fn to_bytes(wire: &Wire<'_>) -> Result<Bytes, DeliveryError> {
    serde_json::to_vec(wire)
        .map(Bytes::from)
        .map_err(|error| DeliveryError::Backend(format!("serializing a message: {error}")))
}

/// The `EVENT` message of a pipeline output.
pub fn event_json(message: &TopicMessage) -> Result<Bytes, DeliveryError> {
    to_bytes(&Wire {
        kind: "EVENT",
        topic: &message.topic,
        id: &message.id,
        timestamp: social_schemas::time::format_rfc3339(&message.timestamp),
        data: data_object(&message.event_type, &message.data.to_value()),
        version: MESSAGE_FORMAT_VERSION,
    })
}

/// A `SNAPSHOT` of `topic`'s state, taken at `position`.
pub fn snapshot_json(
    topic: &str,
    position: Position,
    state: &Value,
    now: DateTime<Utc>,
) -> Result<Bytes, DeliveryError> {
    let id = format!("snapshot-{:x}-{}-{}", position.epoch, position.offset, topic);
    to_bytes(&Wire {
        kind: "SNAPSHOT",
        topic,
        id: &id,
        timestamp: social_schemas::time::format_rfc3339(&now),
        data: data_object("snapshot", state),
        version: MESSAGE_FORMAT_VERSION,
    })
}

/// A `RESET` of `topic`: what happened between the client's position and `position` cannot be replayed.
pub fn reset_json(
    topic: &str,
    position: Position,
    reason: GapReason,
    now: DateTime<Utc>,
) -> Result<Bytes, DeliveryError> {
    let id = format!("reset-{:x}-{}-{}", position.epoch, position.offset, topic);
    let mut payload = Map::new();
    payload.insert("reason".to_owned(), Value::String(reason.as_str().to_owned()));
    to_bytes(&Wire {
        kind: "RESET",
        topic,
        id: &id,
        timestamp: social_schemas::time::format_rfc3339(&now),
        data: data_object("reset", &Value::Object(payload)),
        version: MESSAGE_FORMAT_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_has_the_spec_shape() {
        let message = TopicMessage {
            topic: "user.123.referrals".into(),
            id: "msg-456789".into(),
            event_type: "referral.conversion.completed".into(),
            timestamp: "2025-03-15T14:30:45Z".parse().unwrap(),
            data: json!({"referralId": "ref-123456", "rewardPending": true}).into(),
        };
        let value: Value = serde_json::from_slice(&event_json(&message).unwrap()).unwrap();
        assert_eq!(value["type"], "EVENT");
        assert_eq!(value["topic"], "user.123.referrals");
        assert_eq!(value["id"], "msg-456789");
        assert!(
            value["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2025-03-15T14:30:45")
        );
        assert_eq!(value["data"]["eventType"], "referral.conversion.completed");
        assert_eq!(value["data"]["referralId"], "ref-123456");
        assert_eq!(value["version"], 1);
    }

    #[test]
    fn snapshot_and_reset() {
        let position = Position {
            epoch: 255,
            offset: 4,
        };
        let now = Utc::now();
        let snapshot: Value =
            serde_json::from_slice(&snapshot_json("trending.1h", position, &json!([1, 2]), now).unwrap())
                .unwrap();
        assert_eq!(snapshot["type"], "SNAPSHOT");
        assert_eq!(snapshot["data"]["value"], json!([1, 2]));
        let reset: Value =
            serde_json::from_slice(&reset_json("trending.1h", position, GapReason::Expired, now).unwrap())
                .unwrap();
        assert_eq!(reset["type"], "RESET");
        assert_eq!(reset["data"]["reason"], "history_expired");
    }
}
