//! The CloudEvents 1.0 envelope: [`Event`], [`parse_event`] and the canonical JSON form.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{ValidationCode, ValidationError};
use crate::event_type::EventType;
use crate::limits::Limits;
use crate::payload::Payload;
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::validate::{check_id, check_len, err, is_valid_id, truncate_for_message};

/// The only supported `specversion`.
pub const SPECVERSION: &str = "1.0";
/// Maximum length of `source` and of `subject`, in characters.
pub const MAX_SOURCE_LEN: usize = 256;
pub const MAX_SUBJECT_LEN: usize = 256;

/// Attribute names of the envelope; every other lowercase alphanumeric attribute is an extension.
pub const ENVELOPE_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "subject",
    "data",
];

/// One validated input event. `(source, id)` is its deduplication key; `time` is its event time.
///
/// `datacontenttype` is checked (`application/json` when present) but not kept: [`Event::to_json`] always writes
/// JSON data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub time: DateTime<Utc>,
    pub subject: Option<String>,
    /// CloudEvents extension attributes (lowercase alphanumeric names; string, number or boolean values).
    pub extensions: BTreeMap<String, serde_json::Value>,
    pub payload: Payload,
}

impl Event {
    /// An event without subject or extensions.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        time: DateTime<Utc>,
        payload: impl Into<Payload>,
    ) -> Self {
        Event {
            id: id.into(),
            source: source.into(),
            time,
            subject: None,
            extensions: BTreeMap::new(),
            payload: payload.into(),
        }
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The partition key of `docs/EVENTS.md` for this event's type.
    pub fn partition_key(&self) -> &str {
        self.payload.partition_key()
    }

    /// Canonical compact CloudEvent JSON: `specversion`, `id`, `source`, `type`, `time` (RFC 3339 UTC with `Z`,
    /// sub-second precision kept), `subject`, the extensions in name order, then `data`. For an event that
    /// [`parse_event`] accepted, `parse_event(&e.to_json(), limits) == Ok(e)`. Extensions named like an envelope
    /// attribute are not written.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing this type cannot fail (string keys only; non-finite floats become null).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Runs the checks of [`parse_event`] that apply to an already typed event (identifiers, lengths, ranges,
    /// extension names and values). Useful for events built in code.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        check_id("id", &self.id)?;
        check_source(&self.source)?;
        if let Some(s) = &self.subject {
            check_len("subject", s, MAX_SUBJECT_LEN)?;
        }
        for (name, value) in &self.extensions {
            check_extension(name, value, limits)?;
        }
        self.payload.validate(limits)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPECVERSION)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("type", self.event_type().as_str())?;
        map.serialize_entry("time", &format_rfc3339(&self.time))?;
        if let Some(s) = &self.subject {
            map.serialize_entry("subject", s)?;
        }
        for (k, v) in &self.extensions {
            if !ENVELOPE_ATTRIBUTES.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.serialize_entry("data", &self.payload)?;
        map.end()
    }
}

/// Parses and validates one CloudEvent (JSON structured mode). Checks run in this order: size, JSON syntax, object,
/// envelope (missing attributes, attribute types, `specversion`, `id`, `source`, `time`, `type`, `datacontenttype`,
/// `subject`, extensions), then the payload (structure via serde, then identifiers, lengths, ranges, addresses).
/// Never panics.
pub fn parse_event(raw: &[u8], limits: &Limits) -> Result<Event, ValidationError> {
    if raw.len() > limits.max_event_bytes {
        return Err(ValidationError::new(
            ValidationCode::EventTooLarge,
            format!(
                "event is {} bytes, more than the limit of {} bytes",
                raw.len(),
                limits.max_event_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(raw).map_err(|e| {
        ValidationError::new(
            ValidationCode::MalformedJson,
            format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()),
        )
    })?;
    let env = read_envelope(text)?;
    env.into_event(limits)
}

fn malformed(e: &serde_json::Error) -> ValidationError {
    ValidationError::new(ValidationCode::MalformedJson, e.to_string())
}

fn read_envelope(text: &str) -> Result<RawEnvelope<'_>, ValidationError> {
    let mut de = serde_json::Deserializer::from_str(text);
    match RawEnvelope::deserialize(&mut de) {
        Ok(env) => {
            de.end().map_err(|e| malformed(&e))?;
            Ok(env)
        }
        Err(e) if e.is_data() => {
            // The top-level value is not an object; tell "not JSON" from "JSON but not an object".
            match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Err(ValidationError::new(
                    ValidationCode::NotAnObject,
                    "event must be a JSON object",
                )),
                Err(e) => Err(malformed(&e)),
            }
        }
        Err(e) => Err(malformed(&e)),
    }
}

/// JSON kind of an envelope attribute value; strings kept (borrowed when unescaped).
enum Attr<'a> {
    Str(Cow<'a, str>),
    Null,
    Bool,
    Number,
    Array,
    Object,
}

impl Attr<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Attr::Str(_) => "string",
            Attr::Null => "null",
            Attr::Bool => "boolean",
            Attr::Number => "number",
            Attr::Array => "array",
            Attr::Object => "object",
        }
    }
}

impl<'de> Deserialize<'de> for Attr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Attr<'de>, E> {
                Ok(Attr::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Attr<'de>, E> {
                Ok(Attr::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Attr<'de>, E> {
                Ok(Attr::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Attr<'de>, E> {
                Ok(Attr::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Attr<'de>, E> {
                Ok(Attr::Bool)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Attr<'de>, E> {
                Ok(Attr::Number)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Attr<'de>, E> {
                Ok(Attr::Number)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Attr<'de>, E> {
                Ok(Attr::Number)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Attr<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Attr::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attr<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Attr::Object)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The envelope as read in one pass: attributes kept as they came, `data` and extension values as raw JSON.
#[derive(Default)]
struct RawEnvelope<'a> {
    specversion: Option<Attr<'a>>,
    id: Option<Attr<'a>>,
    source: Option<Attr<'a>>,
    ty: Option<Attr<'a>>,
    time: Option<Attr<'a>>,
    datacontenttype: Option<Attr<'a>>,
    subject: Option<Attr<'a>>,
    data: Option<&'a RawValue>,
    extensions: Vec<(Cow<'a, str>, &'a RawValue)>,
    duplicate: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for RawEnvelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEnvelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CloudEvent object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEnvelope<'de>, A::Error> {
                let mut env = RawEnvelope::default();
                while let Some(key) = map.next_key_seed(Key)? {
                    let slot = match &*key {
                        "specversion" => &mut env.specversion,
                        "id" => &mut env.id,
                        "source" => &mut env.source,
                        "type" => &mut env.ty,
                        "time" => &mut env.time,
                        "datacontenttype" => &mut env.datacontenttype,
                        "subject" => &mut env.subject,
                        "data" => {
                            let v = map.next_value::<&'de RawValue>()?;
                            if env.data.replace(v).is_some() && env.duplicate.is_none() {
                                env.duplicate = Some(key);
                            }
                            continue;
                        }
                        _ => {
                            let v = map.next_value::<&'de RawValue>()?;
                            env.extensions.push((key, v));
                            continue;
                        }
                    };
                    let v = map.next_value::<Attr<'de>>()?;
                    if slot.replace(v).is_some() && env.duplicate.is_none() {
                        env.duplicate = Some(key);
                    }
                }
                Ok(env)
            }
        }
        deserializer.deserialize_map(V)
    }
}

fn check_source(source: &str) -> Result<(), ValidationError> {
    if source.is_empty() || source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            ValidationCode::InvalidFieldValue,
            "source",
            "must be a non-empty URI reference without whitespace or control characters",
        ));
    }
    check_len("source", source, MAX_SOURCE_LEN)
}

/// Extension attribute names: lowercase ASCII letters and digits.
fn is_extension_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn check_extension(name: &str, value: &serde_json::Value, limits: &Limits) -> Result<(), ValidationError> {
    if !is_extension_name(name) || ENVELOPE_ATTRIBUTES.contains(&name) {
        return Err(err(
            ValidationCode::UnknownField,
            truncate_for_message(name),
            "unknown attribute (extension names are lowercase letters and digits)",
        ));
    }
    match value {
        serde_json::Value::String(s) => check_len(name, s, limits.max_text_len),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok(()),
        _ => Err(err(
            ValidationCode::InvalidFieldType,
            name,
            "extension must be a string, number or boolean",
        )),
    }
}

fn missing(name: &str) -> ValidationError {
    err(
        ValidationCode::MissingField,
        name,
        "required attribute is missing",
    )
}

/// A required string attribute: present (checked before) and a string.
fn required_str<'a>(name: &str, attr: Option<Attr<'a>>) -> Result<Cow<'a, str>, ValidationError> {
    match attr {
        Some(Attr::Str(s)) => Ok(s),
        None => Err(missing(name)),
        Some(other) => Err(err(
            ValidationCode::InvalidFieldType,
            name,
            format_args!("must be a string, found {}", other.kind()),
        )),
    }
}

/// An optional string attribute; JSON `null` counts as absent.
fn optional_str<'a>(name: &str, attr: Option<Attr<'a>>) -> Result<Option<Cow<'a, str>>, ValidationError> {
    match attr {
        None | Some(Attr::Null) => Ok(None),
        Some(Attr::Str(s)) => Ok(Some(s)),
        Some(other) => Err(err(
            ValidationCode::InvalidFieldType,
            name,
            format_args!("must be a string, found {}", other.kind()),
        )),
    }
}

/// First non-whitespace byte of a raw JSON value.
fn first_byte(raw: &RawValue) -> Option<u8> {
    raw.get().bytes().find(|b| !b.is_ascii_whitespace())
}

fn json_kind(first: Option<u8>) -> &'static str {
    match first {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// `application/json`, optionally followed by parameters (`application/json; charset=utf-8`).
/// Media types are case-insensitive (RFC 9110, section 8.3.1).
fn is_json_media_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl<'a> RawEnvelope<'a> {
    fn into_event(self, limits: &Limits) -> Result<Event, ValidationError> {
        if let Some(name) = &self.duplicate {
            return Err(err(ValidationCode::MalformedJson, name, "duplicate attribute"));
        }
        for (name, present) in [
            ("specversion", self.specversion.is_some()),
            ("id", self.id.is_some()),
            ("source", self.source.is_some()),
            ("type", self.ty.is_some()),
            ("time", self.time.is_some()),
            ("data", self.data.is_some()),
        ] {
            if !present {
                return Err(missing(name));
            }
        }
        let specversion = required_str("specversion", self.specversion)?;
        let id = required_str("id", self.id)?;
        let source = required_str("source", self.source)?;
        let ty = required_str("type", self.ty)?;
        let time = required_str("time", self.time)?;
        let datacontenttype = optional_str("datacontenttype", self.datacontenttype)?;
        let subject = optional_str("subject", self.subject)?;
        let data = self.data.ok_or_else(|| missing("data"))?;
        let first = first_byte(data);
        if first != Some(b'{') {
            return Err(err(
                ValidationCode::InvalidFieldType,
                "data",
                format_args!("must be an object, found {}", json_kind(first)),
            ));
        }

        if specversion != SPECVERSION {
            return Err(err(
                ValidationCode::UnsupportedSpecversion,
                "specversion",
                format_args!(
                    "`{}` is not supported (expected `1.0`)",
                    truncate_for_message(&specversion)
                ),
            ));
        }
        if !is_valid_id(&id) {
            return Err(err(
                ValidationCode::InvalidId,
                "id",
                "must be 1 to 128 characters of [A-Za-z0-9._:-]",
            ));
        }
        check_source(&source)?;
        let time = parse_rfc3339(&time).ok_or_else(|| {
            err(
                ValidationCode::InvalidTimestamp,
                "time",
                "must be an RFC 3339 date-time with offset",
            )
        })?;
        let ty = EventType::from_type_str(&ty).ok_or_else(|| {
            err(
                ValidationCode::UnknownEventType,
                "type",
                format_args!("unknown event type `{}`", truncate_for_message(&ty)),
            )
        })?;
        if let Some(ct) = &datacontenttype
            && !is_json_media_type(ct)
        {
            return Err(err(
                ValidationCode::InvalidFieldValue,
                "datacontenttype",
                "must be `application/json` when present",
            ));
        }
        if let Some(s) = &subject {
            check_len("subject", s, MAX_SUBJECT_LEN)?;
        }
        let mut extensions = BTreeMap::new();
        for (name, raw) in self.extensions {
            if !is_extension_name(&name) {
                return Err(err(
                    ValidationCode::UnknownField,
                    truncate_for_message(&name),
                    "unknown attribute (extension names are lowercase letters and digits)",
                ));
            }
            let value: serde_json::Value = serde_json::from_str(raw.get())
                .map_err(|e| err(ValidationCode::InvalidFieldValue, &name, format_args!("{e}")))?;
            // `null` counts as absent, as on every optional attribute; it still takes part in the duplicate check.
            if !value.is_null() {
                check_extension(&name, &value, limits)?;
            }
            match extensions.entry(name.into_owned()) {
                Entry::Occupied(o) => {
                    return Err(err(ValidationCode::MalformedJson, o.key(), "duplicate attribute"));
                }
                Entry::Vacant(v) => {
                    v.insert(value);
                }
            }
        }

        extensions.retain(|_, value| !value.is_null());
        let payload = Payload::parse(ty, data.get(), limits)?;
        Ok(Event {
            id: id.into_owned(),
            source: source.into_owned(),
            time,
            subject: subject.map(Cow::into_owned),
            extensions,
            payload,
        })
    }
}
