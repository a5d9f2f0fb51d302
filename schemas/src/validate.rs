//! Field checks shared by the payloads, and the mapping of serde errors to validation codes.

use std::borrow::Cow;
use std::fmt::{Display, Write as _};
use std::net::IpAddr;

use serde_path_to_error::Segment;

use crate::error::{ValidationCode, ValidationError};
use crate::limits::Limits;

/// JSON Schema pattern of an identifier: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";
/// Maximum length of an identifier.
pub const MAX_ID_LEN: usize = 128;
/// Longest piece of input quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// Whether `s` is an identifier: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Semantic checks that serde cannot express, run after a payload deserialized.
pub(crate) trait Validate {
    fn validate(&self, limits: &Limits) -> Result<(), ValidationError>;
}

pub(crate) fn err(code: ValidationCode, path: impl Display, what: impl Display) -> ValidationError {
    ValidationError::new(code, format!("{path}: {what}"))
}

/// Longest serde message kept (serde quotes offending strings in full).
const MAX_SERDE_MESSAGE: usize = 240;

/// At most [`MAX_QUOTED`] characters of `s`, for quoting input back in a message.
pub(crate) fn truncate_for_message(s: &str) -> Cow<'_, str> {
    truncate_chars(s, MAX_QUOTED)
}

fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}...", s.get(..end).unwrap_or_default())),
    }
}

pub(crate) fn check_id(path: impl Display, v: &str) -> Result<(), ValidationError> {
    if is_valid_id(v) {
        Ok(())
    } else {
        Err(err(
            ValidationCode::InvalidId,
            path,
            "must be 1 to 128 characters of [A-Za-z0-9._:-]",
        ))
    }
}

pub(crate) fn check_opt_id(path: impl Display, v: Option<&str>) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| check_id(path, v))
}

/// Length in characters (Unicode scalar values) at most `max`.
pub(crate) fn check_len(path: impl Display, v: &str, max: usize) -> Result<(), ValidationError> {
    // Byte length bounds the character count from above: skip counting for the common short string.
    if v.len() <= max || v.chars().count() <= max {
        Ok(())
    } else {
        Err(err(
            ValidationCode::StringTooLong,
            path,
            format_args!("longer than {max} characters"),
        ))
    }
}

pub(crate) fn check_opt_len(path: impl Display, v: Option<&str>, max: usize) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| check_len(path, v, max))
}

/// Largest accepted money amount.
pub const MAX_AMOUNT: f64 = 1e9;

/// A finite number from 0 to 1e9.
pub(crate) fn check_amount(path: impl Display, v: f64) -> Result<(), ValidationError> {
    if v.is_finite() && (0.0..=MAX_AMOUNT).contains(&v) {
        Ok(())
    } else {
        Err(err(
            ValidationCode::InvalidFieldValue,
            path,
            "must be a finite number from 0 to 1e9",
        ))
    }
}

pub(crate) fn check_int_range(path: impl Display, v: i64, min: i64, max: i64) -> Result<(), ValidationError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else if max == i64::MAX {
        Err(err(
            ValidationCode::InvalidFieldValue,
            path,
            format_args!("must be an integer >= {min}"),
        ))
    } else {
        Err(err(
            ValidationCode::InvalidFieldValue,
            path,
            format_args!("must be an integer from {min} to {max}"),
        ))
    }
}

pub(crate) fn check_array_len(path: impl Display, len: usize, max: usize) -> Result<(), ValidationError> {
    if len <= max {
        Ok(())
    } else {
        Err(err(
            ValidationCode::InvalidFieldValue,
            path,
            format_args!("more than {max} items"),
        ))
    }
}

pub(crate) fn check_ip(path: impl Display, v: &str) -> Result<(), ValidationError> {
    if v.parse::<IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(err(
            ValidationCode::InvalidFieldValue,
            path,
            "must be an IPv4 or IPv6 address",
        ))
    }
}

/// Strings anywhere inside a value of an open object (keys included) are at most `limits.max_text_len`.
pub(crate) fn check_open_value(
    path: &dyn Display,
    v: &serde_json::Value,
    limits: &Limits,
) -> Result<(), ValidationError> {
    match v {
        serde_json::Value::String(s) => check_len(path, s, limits.max_text_len),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_open_value(&format_args!("{path}[{i}]"), item, limits)?;
            }
            Ok(())
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let k = truncate_for_message(key);
                check_len(format_args!("{path}.{k}"), key, limits.max_text_len)?;
                check_open_value(&format_args!("{path}.{k}"), item, limits)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Renders a serde path below `prefix`: `data` + `engagerInfo`, `platform` -> `data.engagerInfo.platform`.
fn render_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    let mut out = String::with_capacity(prefix.len() + 24);
    out.push_str(prefix);
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } => {
                out.push('.');
                out.push_str(&truncate_for_message(key));
            }
            Segment::Enum { .. } => {}
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// The text between the first pair of backticks of a serde message (`missing field `shareId``).
fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let rest = msg.get(start..)?;
    let end = rest.find('`')?;
    rest.get(..end)
}

/// serde_json appends ` at line L column C`; the field path says more, so drop it.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg),
        None => msg,
    }
}

/// Replaces Rust type names in serde's "..., expected X" with JSON terms.
fn plain_expectation(msg: &str) -> Cow<'_, str> {
    let Some((head, expected)) = msg.rsplit_once(", expected ") else {
        return Cow::Borrowed(msg);
    };
    let plain = match expected {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" => "a non-negative integer",
        "i64" | "i32" => "an integer",
        "f64" | "f32" => "a number",
        "a boolean" | "a string" | "a sequence" => return Cow::Borrowed(msg),
        e if e.starts_with("struct ") => "an object",
        _ => return Cow::Borrowed(msg),
    };
    Cow::Owned(format!("{head}, expected {plain}"))
}

/// Maps a payload deserialization error to a code and a message naming the field path below `prefix` (`data`).
pub(crate) fn classify_serde_error(
    prefix: &str,
    e: serde_path_to_error::Error<serde_json::Error>,
) -> ValidationError {
    let mut path = render_path(prefix, e.path());
    let inner = e.into_inner();
    let full = inner.to_string();
    let msg = strip_position(&full);
    let code = if msg.starts_with("missing field") {
        ValidationCode::MissingField
    } else if msg.starts_with("unknown field") {
        ValidationCode::UnknownField
    } else if msg.starts_with("duplicate field") {
        ValidationCode::MalformedJson
    } else if msg.starts_with("invalid type") {
        ValidationCode::InvalidFieldType
    } else if msg.starts_with(crate::time::INVALID_TIMESTAMP_MSG) {
        ValidationCode::InvalidTimestamp
    } else if msg.starts_with("number out of range") {
        ValidationCode::InvalidFieldValue
    } else if msg == "expected value" {
        // serde_json's enum deserializer meeting a number, boolean, array or null: a type error, the document
        // itself is valid JSON (the envelope pass checked its syntax).
        ValidationCode::InvalidFieldType
    } else if matches!(inner.classify(), serde_json::error::Category::Data) {
        // unknown variant, invalid value, invalid length, custom messages
        ValidationCode::InvalidFieldValue
    } else {
        ValidationCode::MalformedJson
    };
    // Name the field itself, not only its parent object, where serde names it in backticks.
    let names_field = matches!(
        code,
        ValidationCode::MissingField | ValidationCode::UnknownField | ValidationCode::MalformedJson
    );
    if let (true, Some(name)) = (names_field, backticked(msg)) {
        let tail = truncate_for_message(name);
        let already = path.strip_suffix(tail.as_ref()).is_some_and(|p| p.ends_with('.'));
        if !already {
            path.push('.');
            path.push_str(&tail);
        }
    }
    let msg = match code {
        // "unknown field `x`, expected one of ..." is long; keep the first clause.
        ValidationCode::UnknownField => msg.split(", expected").next().unwrap_or(msg),
        ValidationCode::InvalidFieldType if msg == "expected value" => "invalid type: expected a string",
        _ => msg,
    };
    ValidationError::new(
        code,
        format!(
            "{path}: {}",
            truncate_chars(&plain_expectation(msg), MAX_SERDE_MESSAGE)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_valid_id("user-1.a_b:c"));
        assert!(is_valid_id(&"a".repeat(128)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"a".repeat(129)));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id("é"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(100);
        let t = truncate_for_message(&s);
        assert_eq!(t.chars().count(), MAX_QUOTED + 3);
        assert_eq!(truncate_for_message("short"), "short");
    }

    #[test]
    fn serde_messages_are_mapped() {
        assert_eq!(
            strip_position("missing field `a` at line 1 column 5"),
            "missing field `a`"
        );
        assert_eq!(backticked("unknown field `x`, expected `y`"), Some("x"));
        assert_eq!(
            plain_expectation("invalid type: string \"3\", expected u32"),
            "invalid type: string \"3\", expected an integer from 0 to 4294967295"
        );
        assert_eq!(
            plain_expectation("invalid type: map, expected struct Reward"),
            "invalid type: map, expected an object"
        );
    }
}
