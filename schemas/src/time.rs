//! RFC 3339 timestamps: strict parsing, canonical formatting (UTC, `Z`, sub-second precision kept).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Message prefix of the serde error raised for a string that is not an RFC 3339 timestamp; the classifier maps it
/// to `invalid_timestamp`.
pub(crate) const INVALID_TIMESTAMP_MSG: &str =
    "invalid timestamp: expected an RFC 3339 date-time with offset";

/// Parses an RFC 3339 date-time with offset (`2025-03-15T14:30:45Z`, `2025-03-15T16:30:45.120+02:00`) into UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    // chrono also accepts a space or lowercase `t` between date and time; RFC 3339 section 5.6 asks for `T`
    // (allowing lowercase); we accept `T`/`t` and reject the space.
    if s.as_bytes().get(10) == Some(&b' ') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Canonical text of a timestamp: RFC 3339 in UTC with `Z`, with as many fractional digits (0, 3, 6 or 9) as needed
/// to keep the precision.
pub fn format_rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Schema stand-in for a timestamp field: `{"type": "string", "format": "date-time"}`.
pub(crate) struct Rfc3339;

impl JsonSchema for Rfc3339 {
    fn schema_name() -> Cow<'static, str> {
        "DateTime".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_rfc3339(v).ok_or_else(|| E::custom(INVALID_TIMESTAMP_MSG))
    }
}

struct OptTimestampVisitor;

impl<'de> Visitor<'de> for OptTimestampVisitor {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp string")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(TimestampVisitor).map(Some)
    }
}

/// `#[serde(with = "crate::time::opt")]` for `Option<DateTime<Utc>>` payload fields.
pub(crate) mod opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&format_rfc3339(t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptTimestampVisitor)
    }
}
