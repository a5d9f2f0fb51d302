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
}

impl ValidationCode {
    /// Every code, in the order of `docs/EVENTS.md`.
    pub const ALL: [ValidationCode; 12] = [
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
