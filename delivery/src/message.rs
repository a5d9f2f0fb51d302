//! The wire format of a message (the spec's appendix): `type` (`EVENT`, `SNAPSHOT`, `RESET`), `topic`, `id`,
//! `timestamp`, `data` (`eventType` plus the payload fields) and `version` (the version of this format, 1).
//!
//! A payload that is not a JSON object is carried as `data.value`, except `null`, which leaves `data` with
//! `eventType` alone. `SNAPSHOT` messages have `eventType`
//! `"snapshot"` and the topic's state fields; `RESET` messages have `eventType` `"reset"` and a `reason`
//! (`history_expired`, `epoch_changed` or `position_unknown`).

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
///
/// Written around the payload's JSON text rather than through a parsed copy of it: `data` is `eventType` followed
/// by the payload object's members as they are (the payload is scanned once, keys only, to check that it is an
/// object without an `eventType` member or a repeated key). A payload that fails that check, has more than
/// [`MAX_SCANNED_KEYS`] keys or a line break between tokens is parsed and merged as [`data_object`] does, so a
/// payload key never doubles `eventType` and the message stays on one line. Publishing is most of the derived
/// writer's work, and the parse-and-rewrite of every payload was a third of it.
pub fn event_json(message: &TopicMessage) -> Result<Bytes, DeliveryError> {
    let payload = message.data.get().trim_matches(JSON_WHITESPACE);
    let members = match payload_shape(payload) {
        // A line break between tokens would end the SSE `data:` line: such a payload is written compact by the
        // parsed path (inside strings, JSON has line breaks only as escapes).
        PayloadShape::Object if !payload.contains(['\n', '\r']) => payload
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .map(|inner| inner.trim_matches(JSON_WHITESPACE)),
        PayloadShape::Object => None,
        PayloadShape::Null => Some(""),
        PayloadShape::Other => None,
    };
    let Some(members) = members else {
        return event_json_parsed(message);
    };
    let timestamp = social_schemas::time::format_rfc3339(&message.timestamp);
    let mut out = Vec::with_capacity(
        payload.len()
            + message.topic.len()
            + message.id.len()
            + message.event_type.len()
            + timestamp.len()
            + 96,
    );
    out.extend_from_slice(br#"{"type":"EVENT","topic":"#);
    write_str(&mut out, &message.topic)?;
    out.extend_from_slice(br#","id":"#);
    write_str(&mut out, &message.id)?;
    out.extend_from_slice(br#","timestamp":"#);
    write_str(&mut out, &timestamp)?;
    out.extend_from_slice(br#","data":{"eventType":"#);
    write_str(&mut out, &message.event_type)?;
    if !members.is_empty() {
        out.push(b',');
        out.extend_from_slice(members.as_bytes());
    }
    {
        use std::io::Write;
        // Writing to a `Vec` cannot fail.
        let _ = write!(out, "}},\"version\":{MESSAGE_FORMAT_VERSION}}}");
    }
    Ok(Bytes::from(out))
}

/// [`event_json`] through a parsed copy of the payload (any payload).
fn event_json_parsed(message: &TopicMessage) -> Result<Bytes, DeliveryError> {
    to_bytes(&Wire {
        kind: "EVENT",
        topic: &message.topic,
        id: &message.id,
        timestamp: social_schemas::time::format_rfc3339(&message.timestamp),
        data: data_object(&message.event_type, &message.data.to_value()),
        version: MESSAGE_FORMAT_VERSION,
    })
}

const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];
/// Top-level keys [`event_json`] checks for repeats; a payload with more takes the parsed path.
const MAX_SCANNED_KEYS: usize = 32;

fn write_str(out: &mut Vec<u8>, text: &str) -> Result<(), DeliveryError> {
    serde_json::to_writer(out, text)
        .map_err(|error| DeliveryError::Backend(format!("serializing a message: {error}")))
}

/// What [`event_json`] can write around without parsing.
#[derive(Debug, PartialEq, Eq)]
enum PayloadShape {
    /// An object whose keys are all different and none is `eventType`.
    Object,
    Null,
    /// Anything else (another JSON type, an object [`event_json_parsed`] must merge, text that is not JSON).
    Other,
}

fn payload_shape(payload: &str) -> PayloadShape {
    use serde::Deserializer as _;
    let mut de = serde_json::Deserializer::from_str(payload);
    match de.deserialize_any(ShapeVisitor) {
        Ok(shape) if de.end().is_ok() => shape,
        _ => PayloadShape::Other,
    }
}

struct ShapeVisitor;

impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
    type Value = PayloadShape;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<PayloadShape, E> {
        Ok(PayloadShape::Null)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PayloadShape, A::Error> {
        // The operators' payloads have a dozen keys at most: a list beats a set, and a payload with more keys
        // than [`MAX_SCANNED_KEYS`] takes the parsed path (the check is quadratic).
        let mut keys: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        let mut mergeable = true;
        while let Some(Key(key)) = map.next_key()? {
            map.next_value::<serde::de::IgnoredAny>()?;
            if key == "eventType" || keys.len() >= MAX_SCANNED_KEYS || keys.contains(&key) {
                mergeable = false;
            }
            keys.push(key);
        }
        Ok(if mergeable {
            PayloadShape::Object
        } else {
            PayloadShape::Other
        })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PayloadShape, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(PayloadShape::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<PayloadShape, E> {
        Ok(PayloadShape::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<PayloadShape, E> {
        Ok(PayloadShape::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<PayloadShape, E> {
        Ok(PayloadShape::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<PayloadShape, E> {
        Ok(PayloadShape::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<PayloadShape, E> {
        Ok(PayloadShape::Other)
    }
}

/// An object key, borrowed from the text unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A `SNAPSHOT` of `topic`'s state, taken at `position`.
pub fn snapshot_json(
    topic: &str,
    position: Position,
    state: &Value,
    now: DateTime<Utc>,
) -> Result<Bytes, DeliveryError> {
    // The state is in the id: a snapshot can change with no message published (a period rollover, a privacy
    // change), and two different snapshots at one position must not share an id (a client dropping duplicates by
    // id would keep the older one). The same state at the same position keeps its id.
    let id = format!(
        "snapshot-{:x}-{}-{:016x}-{}",
        position.epoch,
        position.offset,
        fnv1a(&serde_json::to_vec(state).unwrap_or_default()),
        topic
    );
    to_bytes(&Wire {
        kind: "SNAPSHOT",
        topic,
        id: &id,
        timestamp: social_schemas::time::format_rfc3339(&now),
        data: data_object("snapshot", state),
        version: MESSAGE_FORMAT_VERSION,
    })
}

/// FNV-1a, 64 bit: stable across processes and versions, so that every node gives a snapshot the same id.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
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

    fn message_with(data: social_schemas::derived::MessageData) -> TopicMessage {
        TopicMessage {
            topic: "user.u\"1.social".into(),
            id: "msg-1".into(),
            event_type: "social.share.created".into(),
            timestamp: "2025-03-15T14:30:45.123Z".parse().unwrap(),
            data,
        }
    }

    /// The message as [`event_json`] writes it, and as the parsed path would, both parsed.
    fn both(data: social_schemas::derived::MessageData) -> (Value, Value) {
        let message = message_with(data);
        let bytes = event_json(&message).unwrap();
        // The message goes on one SSE `data:` line.
        assert!(!bytes.contains(&b'\n') && !bytes.contains(&b'\r'), "{bytes:?}");
        let fast: Value = serde_json::from_slice(&bytes).unwrap();
        let parsed: Value = serde_json::from_slice(&event_json_parsed(&message).unwrap()).unwrap();
        (fast, parsed)
    }

    #[test]
    fn payloads_written_around_equal_parsed_ones() {
        use social_schemas::derived::MessageData;
        for text in [
            r#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#,
            r#" { "spaced" : "yes" , "n" : -1.5e3 } "#,
            r#"{}"#,
            r#"{ }"#,
            r#"null"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"42"#,
            r#"true"#,
            r#"{"eventType":"spoofed","x":1}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"esc\u0061ped":"\n","escaped":1}"#,
            r#"{"k\"q":"v"}"#,
            "{\"a\":1,\n\"b\":[1,\r\n2]}",
            "{\"a\":\"line\\nbreak\"}",
        ] {
            let data = MessageData::from_json(text.to_owned()).unwrap();
            let (fast, parsed) = both(data);
            assert_eq!(fast, parsed, "{text}");
            assert_eq!(fast["data"]["eventType"], "social.share.created", "{text}");
        }
        // The first cases are written around, not parsed.
        for (text, shape) in [
            (r#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#, PayloadShape::Object),
            (r#"{ "spaced" : "yes" }"#, PayloadShape::Object),
            (r#"{}"#, PayloadShape::Object),
            (r#"null"#, PayloadShape::Null),
            (r#"{"esc\u0061ped":1,"escaped":1}"#, PayloadShape::Other),
            (r#"{"eventType":"spoofed"}"#, PayloadShape::Other),
            (r#"[1]"#, PayloadShape::Other),
            (r#"{"a":1} x"#, PayloadShape::Other),
        ] {
            assert_eq!(payload_shape(text), shape, "{text}");
        }
        let many: String = format!(
            "{{{}}}",
            (0..=MAX_SCANNED_KEYS)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(payload_shape(&many), PayloadShape::Other);
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z\"\\\n\u{e9}]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(("(eventType|[a-c\"]{0,2})", inner), 0..5)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_payload_gives_the_parsed_message(value in json_value(), pretty in proptest::bool::ANY) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let data = social_schemas::derived::MessageData::from_json(text).unwrap();
            let (fast, parsed) = both(data);
            proptest::prop_assert_eq!(fast, parsed);
        }
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
        // Another state at the same position has another id; the same state keeps its id.
        let id = |state: Value| {
            let json = snapshot_json("trending.1h", position, &state, now).unwrap();
            serde_json::from_slice::<Value>(&json).unwrap()["id"].clone()
        };
        assert_eq!(id(json!([1, 2])), snapshot["id"]);
        assert_ne!(id(json!([2, 1])), snapshot["id"]);
        let reset: Value =
            serde_json::from_slice(&reset_json("trending.1h", position, GapReason::Expired, now).unwrap())
                .unwrap();
        assert_eq!(reset["type"], "RESET");
        assert_eq!(reset["data"]["reason"], "history_expired");
    }
}
