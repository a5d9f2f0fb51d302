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
    /// Whether `payload` holds only the first part of the input (see `payload`).
    pub truncated: bool,
    /// The rejected input as text (invalid UTF-8 replaced by U+FFFD), cut so that its JSON string form is at most
    /// the per-event limit and at most twice the input's size: control bytes (6 bytes escaped) and invalid UTF-8
    /// (3 bytes each as U+FFFD) cannot make a letter many times larger than the input it records.
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
        let budget = keep_bytes.min(kept.len().saturating_mul(2));
        let (payload, whole) = escaped_prefix(&String::from_utf8_lossy(kept), budget);
        Self {
            received_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
            reason,
            index,
            content_type: content_type.chars().take(200).collect(),
            bytes: raw.len(),
            truncated: kept.len() < raw.len() || !whole,
            payload,
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

/// The longest prefix of `text` whose JSON string form (as serde_json writes it, quotes excluded) takes at most
/// `budget` bytes, and whether that is all of `text`.
fn escaped_prefix(text: &str, budget: usize) -> (String, bool) {
    let mut used = 0usize;
    for (at, c) in text.char_indices() {
        let escaped = match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if u32::from(c) < 0x20 => 6,
            c => c.len_utf8(),
        };
        used += escaped;
        if used > budget {
            return (text.get(..at).unwrap_or_default().to_owned(), false);
        }
    }
    (text.to_owned(), true)
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

    fn payload_json_len(letter: &DeadLetter) -> usize {
        serde_json::to_string(&letter.payload).unwrap().len() - 2
    }

    #[test]
    fn escaping_cannot_make_a_letter_much_larger_than_its_input() {
        let reason = || DeadLetterReason {
            code: "malformed_json",
            message: "bad".into(),
        };
        // Control bytes escape to six bytes each, invalid UTF-8 becomes three-byte U+FFFD.
        for raw in [vec![1u8; 840], vec![0xffu8; 840], b"\x01\xff\"".repeat(300)] {
            let letter = DeadLetter::new(reason(), Some(0), "application/x-ndjson", &raw, 64 * 1024, 0);
            assert!(
                payload_json_len(&letter) <= 2 * raw.len(),
                "{}",
                payload_json_len(&letter)
            );
            assert!(letter.truncated);
            assert!(!letter.payload.is_empty());
            assert_eq!(letter.bytes, raw.len());
        }
        let letter = DeadLetter::new(reason(), None, "application/json", &[1u8; 100], 12, 0);
        assert!(payload_json_len(&letter) <= 12);
        assert_eq!(letter.payload, "\u{1}\u{1}");
    }

    #[test]
    fn ordinary_text_is_kept_whole() {
        let raw = br#"{"specversion":"1.0","id":"e\"1","note":"caf\u00e9 \\ tab\there"}"#;
        let letter = DeadLetter::new(
            DeadLetterReason {
                code: "missing_field",
                message: "no source".into(),
            },
            Some(0),
            "application/json",
            raw,
            64 * 1024,
            0,
        );
        assert!(!letter.truncated);
        assert_eq!(letter.payload.as_bytes(), raw.as_slice());
        let text = "é→😀 plain";
        let letter = DeadLetter::new(
            DeadLetterReason {
                code: "missing_field",
                message: "x".into(),
            },
            None,
            "application/json",
            text.as_bytes(),
            64 * 1024,
            0,
        );
        assert_eq!(letter.payload, text);
        assert!(!letter.truncated);
    }
}
