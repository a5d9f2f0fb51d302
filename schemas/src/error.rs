//! Validation errors: a stable snake_case code and a message naming the field path.

use std::fmt;

use serde::Serialize;

/// Why an event was rejected. [`ValidationCode::as_str`] gives the stable snake_case codes of `docs/EVENTS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationCode {
    MalformedJson,
    NotAnObject,
    UnsupportedSpecversion,
    MissingField,
    InvalidFieldType,
    InvalidFieldValue,
    UnknownField,
    InvalidId,
    InvalidTimestamp,
    UnknownEventType,
    StringTooLong,
    EventTooLarge,
    /// `time` too far after the moment the event was received (see [`check_not_ahead`]).
    TimestampInFuture,
}

impl ValidationCode {
    /// Every code, in the order of `docs/EVENTS.md`.
    pub const ALL: [ValidationCode; 13] = [
        ValidationCode::MalformedJson,
        ValidationCode::NotAnObject,
        ValidationCode::UnsupportedSpecversion,
        ValidationCode::MissingField,
        ValidationCode::InvalidFieldType,
        ValidationCode::InvalidFieldValue,
        ValidationCode::UnknownField,
        ValidationCode::InvalidId,
        ValidationCode::InvalidTimestamp,
        ValidationCode::UnknownEventType,
        ValidationCode::StringTooLong,
        ValidationCode::EventTooLarge,
        ValidationCode::TimestampInFuture,
    ];

    /// The stable snake_case code.
    pub fn as_str(&self) -> &'static str {
        match self {
            ValidationCode::MalformedJson => "malformed_json",
            ValidationCode::NotAnObject => "not_an_object",
            ValidationCode::UnsupportedSpecversion => "unsupported_specversion",
            ValidationCode::MissingField => "missing_field",
            ValidationCode::InvalidFieldType => "invalid_field_type",
            ValidationCode::InvalidFieldValue => "invalid_field_value",
            ValidationCode::UnknownField => "unknown_field",
            ValidationCode::InvalidId => "invalid_id",
            ValidationCode::InvalidTimestamp => "invalid_timestamp",
            ValidationCode::UnknownEventType => "unknown_event_type",
            ValidationCode::StringTooLong => "string_too_long",
            ValidationCode::EventTooLarge => "event_too_large",
            ValidationCode::TimestampInFuture => "timestamp_in_future",
        }
    }
}

impl fmt::Display for ValidationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected event: the code and a human-readable message that names the field path (`data.shareId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ValidationError {
    pub code: ValidationCode,
    pub message: String,
}

impl ValidationError {
    pub fn new(code: ValidationCode, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            message: message.into(),
        }
    }
}

/// `Err(timestamp_in_future)` when `event_time_ms` is more than `max_future_ms` after `received_ms` (when the
/// event was received: wall clock at ingest, the record's bus timestamp in the operators). An event time far
/// ahead of every other would carry the watermark with it and make all the real events after it too late.
pub fn check_not_ahead(
    event_time_ms: i64,
    received_ms: i64,
    max_future_ms: i64,
) -> Result<(), ValidationError> {
    if event_time_ms.saturating_sub(received_ms) > max_future_ms {
        return Err(ValidationError::new(
            ValidationCode::TimestampInFuture,
            format!(
                "time is {} s after the event was received; at most {} s ahead is accepted",
                event_time_ms.saturating_sub(received_ms) / 1000,
                max_future_ms / 1000
            ),
        ));
    }
    Ok(())
}
