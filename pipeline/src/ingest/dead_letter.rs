//! Dead-letter records: what was rejected, why, and when, readable back from the dead-letter topic.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bus::Record;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterReason {
    /// The stable error code also returned to the producer (`missing_field`, `malformed_json`, ...).
    pub code: &'static str,
    pub message: String,
}

/// One rejected input, as stored (JSON) on the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub received_at: DateTime<Utc>,
    pub reason: DeadLetterReason,
    /// Position of the event in its request; absent when the whole body was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub content_type: String,
    /// Size of the rejected input in bytes.
    pub bytes: usize,
    /// Whether `payload` holds only the first bytes of the input (inputs larger than the per-event limit).
    pub truncated: bool,
    /// The rejected input as text (invalid UTF-8 replaced by U+FFFD).
    pub payload: String,
    /// Where the operators read it on the input topic, for a record another producer wrote there directly
    /// (absent for input refused by ingest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<InputPosition>,
}

/// A record's place on the input topic, and the timestamp its producer gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputPosition {
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
}

impl DeadLetter {
    pub fn new(
        reason: DeadLetterReason,
        index: Option<usize>,
        content_type: &str,
        raw: &[u8],
        keep_bytes: usize,
        now_ms: i64,
    ) -> Self {
        let kept = raw.get(..keep_bytes).unwrap_or(raw);
        Self {
            received_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
            reason,
            index,
            content_type: content_type.chars().take(200).collect(),
            bytes: raw.len(),
            truncated: kept.len() < raw.len(),
            payload: String::from_utf8_lossy(kept).into_owned(),
            input: None,
        }
    }

    pub fn to_record(&self, now_ms: i64) -> Record {
        // Serializing a struct of strings and numbers cannot fail; fall back to an empty object all the same.
        let value = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        Record {
            key: Bytes::new(),
            value: Bytes::from(value),
            timestamp_ms: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_reason_and_truncates() {
        let reason = DeadLetterReason {
            code: "event_too_large",
            message: "too big".into(),
        };
        let letter = DeadLetter::new(reason, Some(2), "application/json", &[b'x'; 100], 10, 0);
        assert!(letter.truncated);
        assert_eq!(letter.bytes, 100);
        assert_eq!(letter.payload.len(), 10);
        let json: serde_json::Value = serde_json::from_slice(&letter.to_record(0).value).unwrap();
        assert_eq!(json["reason"]["code"], "event_too_large");
        assert_eq!(json["index"], 2);
    }
}
