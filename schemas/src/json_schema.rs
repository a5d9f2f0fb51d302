//! JSON Schema (draft 2020-12) of each event type as a whole CloudEvent, generated from the Rust types. The files
//! under `schemas/json/` are these schemas; a test keeps them in sync.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::envelope::{MAX_SOURCE_LEN, MAX_SUBJECT_LEN};
use crate::event_type::EventType;
use crate::payload::*;
use crate::time::Rfc3339;
use crate::validate::ID_PATTERN;

/// Pattern of `source`: no whitespace or control characters.
const SOURCE_PATTERN: &str = r"^[^\s\u0000-\u001f\u007f]+$";
/// Pattern of extension attribute names.
const EXTENSION_NAME_PATTERN: &str = "^[a-z0-9]+$";

#[derive(Serialize, Deserialize, JsonSchema)]
enum SpecVersion {
    #[serde(rename = "1.0")]
    V1,
}

/// Pattern of `datacontenttype`: `application/json`, optionally with parameters.
const DATACONTENTTYPE_PATTERN: &str = r"^application/json(\s*;.*)?$";

/// Schema source for a whole CloudEvent carrying `T`; never instantiated.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CloudEvent<T> {
    specversion: SpecVersion,
    /// Identifier; `(source, id)` is the deduplication key.
    #[schemars(pattern(ID_PATTERN))]
    id: String,
    /// URI reference.
    #[schemars(length(min = 1, max = MAX_SOURCE_LEN), pattern(SOURCE_PATTERN))]
    source: String,
    #[serde(rename = "type")]
    ty: String,
    /// Event time.
    #[schemars(with = "Rfc3339")]
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DATACONTENTTYPE_PATTERN))]
    datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SUBJECT_LEN))]
    subject: Option<String>,
    data: T,
}

fn schema_of<T: JsonSchema>(ty: EventType) -> Schema {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<CloudEvent<T>>();
    let t = ty.as_str();
    schema.insert("title".into(), t.into());
    schema.insert(
        "description".into(),
        format!("CloudEvents 1.0 event `{t}` (see docs/EVENTS.md).").into(),
    );
    if let Some(ty_prop) = schema.get_mut("properties").and_then(|p| p.get_mut("type")) {
        *ty_prop = serde_json::json!({ "const": t });
    }
    // Extensions: any other lowercase alphanumeric attribute holding a string, number or boolean.
    schema.insert(
        "propertyNames".into(),
        serde_json::json!({ "pattern": EXTENSION_NAME_PATTERN }),
    );
    schema.insert(
        "additionalProperties".into(),
        serde_json::json!({ "type": ["string", "number", "boolean"] }),
    );
    schema
}

/// The JSON Schema of a whole CloudEvent of type `ty` (envelope, `type` as a const, typed `data`).
pub fn event_schema(ty: EventType) -> Schema {
    match ty {
        EventType::ShareCreated => schema_of::<ShareCreated>(ty),
        EventType::ShareEngaged => schema_of::<ShareEngaged>(ty),
        EventType::CodeGenerated => schema_of::<CodeGenerated>(ty),
        EventType::LinkClicked => schema_of::<LinkClicked>(ty),
        EventType::ConversionStarted => schema_of::<ConversionStarted>(ty),
        EventType::ConversionCompleted => schema_of::<ConversionCompleted>(ty),
        EventType::RewardEarned => schema_of::<RewardEarned>(ty),
        EventType::LeaderboardUpdated => schema_of::<LeaderboardUpdated>(ty),
        EventType::UserRegistered => schema_of::<UserRegistered>(ty),
        EventType::ProfileUpdated => schema_of::<ProfileUpdated>(ty),
        EventType::ProjectCreated => schema_of::<ProjectCreated>(ty),
        EventType::ProjectCompleted => schema_of::<ProjectCompleted>(ty),
        EventType::BidAwarded => schema_of::<BidAwarded>(ty),
        EventType::MessageSentSocial => schema_of::<MessageSentSocial>(ty),
        EventType::TestimonialPublished => schema_of::<TestimonialPublished>(ty),
        EventType::TestimonialEngaged => schema_of::<TestimonialEngaged>(ty),
    }
}

/// File name of the schema of `ty` under `schemas/json/`: `<type>.schema.json`.
pub fn schema_file_name(ty: EventType) -> String {
    format!("{}.schema.json", ty.as_str())
}

/// The checked-in text of the schema of `ty`: pretty-printed JSON with a trailing newline.
pub fn event_schema_text(ty: EventType) -> String {
    let mut text = serde_json::to_string_pretty(&event_schema(ty)).unwrap_or_default();
    text.push('\n');
    text
}
