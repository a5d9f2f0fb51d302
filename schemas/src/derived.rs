//! Messages the pipeline derives from input events and hands to the outputs (SSE topics, output bus topics).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

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
    pub data: MessageData,
}

/// A message payload: one JSON value, serialized once when the message is built (no `serde_json::Value` tree per
/// message) and shared by its clones (a message and the topic snapshot it updates hold the same bytes).
///
/// Its JSON form is the value itself: a `TopicMessage` serializes exactly as with a `serde_json::Value` payload.
/// Build it from a `Value` (`json!({..}).into()`) or from any `Serialize` type ([`MessageData::new`]); read it
/// as text ([`MessageData::get`]) or as a `Value` ([`MessageData::to_value`]). Equality compares the JSON text.
#[derive(Clone)]
pub struct MessageData(Arc<RawValue>);

impl MessageData {
    /// Serializes `value` (compact JSON). A value serde_json cannot represent (a map with non-string keys)
    /// becomes `null`.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => MessageData(Arc::from(raw)),
            Err(_) => MessageData::null(),
        }
    }

    /// Checks and wraps JSON text (kept as it is, whitespace included).
    pub fn from_json(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(|raw| MessageData(Arc::from(raw)))
    }

    pub fn null() -> Self {
        MessageData::new(&())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a `serde_json::Value` (parses the text).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }
}

impl Default for MessageData {
    fn default() -> Self {
        MessageData::null()
    }
}

impl From<serde_json::Value> for MessageData {
    fn from(value: serde_json::Value) -> Self {
        MessageData::new(&value)
    }
}

impl From<&serde_json::Value> for MessageData {
    fn from(value: &serde_json::Value) -> Self {
        MessageData::new(value)
    }
}

impl PartialEq for MessageData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for MessageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for MessageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for MessageData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MessageData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| MessageData(Arc::from(raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_json_as_a_value_payload() {
        let value = json!({"b": 1, "a": [true, null, 1.5], "c": {"z": "x", "y": -2}});
        let data = MessageData::from(value.clone());
        assert_eq!(data.get(), serde_json::to_string(&value).unwrap_or_default());
        assert_eq!(data.to_value(), value);
        let message = TopicMessage {
            topic: "t".into(),
            id: "i".into(),
            event_type: "e".into(),
            timestamp: DateTime::<Utc>::from_timestamp_millis(0).unwrap_or_default(),
            data,
        };
        let text = serde_json::to_string(&message).unwrap_or_default();
        assert!(
            text.ends_with(r#""data":{"a":[true,null,1.5],"b":1,"c":{"y":-2,"z":"x"}}}"#),
            "{text}"
        );
        let back: TopicMessage = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, message);
        assert_eq!(serde_json::to_value(&message.data).ok(), Some(value));
    }
}
