//! Splitting a request body into single events: one CloudEvent, a JSON array of them, or NDJSON.

use serde_json::value::RawValue;

/// How the body holds its events, from the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/cloudevents+json` or `application/json`: one event, or a JSON array of events.
    Json,
    /// `application/cloudevents-batch+json`: a JSON array of events.
    Batch,
    /// `application/x-ndjson`: one event per line; blank lines are ignored.
    Ndjson,
}

impl BodyKind {
    /// Reads the media type (parameters such as `charset` are ignored). `None` for any other type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/cloudevents+json" | "application/json" => Some(Self::Json),
            "application/cloudevents-batch+json" => Some(Self::Batch),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Some(Self::Ndjson),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is empty")]
    Empty,
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("a batch body must be a JSON array of events")]
    NotAnArray,
}

/// The events of `body`, each as its own byte slice. A single JSON event (not an array) gives one item whatever it
/// holds, so that its validation error is reported per event.
pub fn split_body(kind: BodyKind, body: &[u8]) -> Result<Vec<&[u8]>, BodyError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    match kind {
        BodyKind::Ndjson => Ok(trimmed
            .split(|byte| *byte == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .collect()),
        BodyKind::Json if !trimmed.starts_with(b"[") => Ok(vec![trimmed]),
        BodyKind::Json | BodyKind::Batch => {
            if !trimmed.starts_with(b"[") {
                return Err(BodyError::NotAnArray);
            }
            let items: Vec<&RawValue> = serde_json::from_slice(trimmed)
                .map_err(|error| BodyError::MalformedJson(error.to_string()))?;
            Ok(items.into_iter().map(|raw| raw.get().as_bytes()).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            BodyKind::from_content_type("application/json; charset=utf-8"),
            Some(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::from_content_type("Application/CloudEvents+JSON"),
            Some(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::from_content_type("application/x-ndjson"),
            Some(BodyKind::Ndjson)
        );
        assert_eq!(BodyKind::from_content_type("text/plain"), None);
        assert_eq!(BodyKind::from_content_type(""), None);
    }

    #[test]
    fn splits_each_kind() {
        assert_eq!(
            split_body(BodyKind::Json, b" {\"a\":1} ").unwrap(),
            vec![&b"{\"a\":1}"[..]]
        );
        assert_eq!(
            split_body(BodyKind::Json, b"[{\"a\":1}, {\"b\":2}]").unwrap(),
            vec![&b"{\"a\":1}"[..], b"{\"b\":2}"]
        );
        assert_eq!(
            split_body(BodyKind::Ndjson, b"{\"a\":1}\r\n\n{\"b\":2}\n").unwrap(),
            vec![&b"{\"a\":1}"[..], b"{\"b\":2}"]
        );
        assert_eq!(split_body(BodyKind::Json, b"  \n"), Err(BodyError::Empty));
        assert_eq!(split_body(BodyKind::Batch, b"{}"), Err(BodyError::NotAnArray));
        assert!(matches!(
            split_body(BodyKind::Json, b"[{\"a\":1}"),
            Err(BodyError::MalformedJson(_))
        ));
        // A malformed single event is one item, judged by the validator.
        assert_eq!(split_body(BodyKind::Json, b"{oops").unwrap(), vec![&b"{oops"[..]]);
    }
}
