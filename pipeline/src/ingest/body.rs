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
    /// More events than the caller takes: `count` is exact, but only the first events were kept while counting.
    #[error("request of {count} events, over the limit of {limit}")]
    TooManyEvents { count: usize, limit: usize },
}

/// The events of `body`, each as its own byte slice, at most `max_items` of them (more is
/// [`BodyError::TooManyEvents`], counted without keeping them: a body of millions of tiny items costs no more
/// memory than its bytes). A single JSON event (not an array) gives one item whatever it holds, so that its
/// validation error is reported per event.
pub fn split_body(kind: BodyKind, body: &[u8], max_items: usize) -> Result<Vec<&[u8]>, BodyError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    let (items, count) = match kind {
        BodyKind::Ndjson => {
            let mut lines = trimmed
                .split(|byte| *byte == b'\n')
                .map(<[u8]>::trim_ascii)
                .filter(|line| !line.is_empty());
            let items: Vec<&[u8]> = lines.by_ref().take(max_items).collect();
            let count = items.len() + lines.count();
            (items, count)
        }
        BodyKind::Json if !trimmed.starts_with(b"[") => (vec![trimmed], 1),
        BodyKind::Json | BodyKind::Batch => {
            if !trimmed.starts_with(b"[") {
                return Err(BodyError::NotAnArray);
            }
            let malformed = |error: serde_json::Error| BodyError::MalformedJson(error.to_string());
            let mut deserializer = serde_json::Deserializer::from_slice(trimmed);
            let (items, count) =
                serde::Deserializer::deserialize_seq(&mut deserializer, ArrayItems { max_items })
                    .map_err(malformed)?;
            deserializer.end().map_err(malformed)?;
            (items, count)
        }
    };
    if count > max_items {
        return Err(BodyError::TooManyEvents {
            count,
            limit: max_items,
        });
    }
    Ok(items)
}

/// The raw items of a JSON array, the first `max_items` kept and the rest only counted.
struct ArrayItems {
    max_items: usize,
}

impl<'de> serde::de::Visitor<'de> for ArrayItems {
    type Value = (Vec<&'de [u8]>, usize);

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let mut count = 0usize;
        loop {
            let more = if count < self.max_items {
                seq.next_element::<&'de RawValue>()?
                    .map(|raw| items.push(raw.get().as_bytes()))
                    .is_some()
            } else {
                seq.next_element::<serde::de::IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok((items, count));
            }
            count += 1;
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
            split_body(BodyKind::Json, b" {\"a\":1} ", 100).unwrap(),
            vec![&b"{\"a\":1}"[..]]
        );
        assert_eq!(
            split_body(BodyKind::Json, b"[{\"a\":1}, {\"b\":2}]", 100).unwrap(),
            vec![&b"{\"a\":1}"[..], b"{\"b\":2}"]
        );
        assert_eq!(
            split_body(BodyKind::Ndjson, b"{\"a\":1}\r\n\n{\"b\":2}\n", 100).unwrap(),
            vec![&b"{\"a\":1}"[..], b"{\"b\":2}"]
        );
        assert_eq!(split_body(BodyKind::Json, b"  \n", 100), Err(BodyError::Empty));
        assert_eq!(
            split_body(BodyKind::Batch, b"{}", 100),
            Err(BodyError::NotAnArray)
        );
        assert!(matches!(
            split_body(BodyKind::Json, b"[{\"a\":1}", 100),
            Err(BodyError::MalformedJson(_))
        ));
        // Over the limit: refused with the exact count, whatever the kind.
        let many = format!("[{}1]", "1,".repeat(99));
        assert_eq!(
            split_body(BodyKind::Json, many.as_bytes(), 100).unwrap().len(),
            100
        );
        assert_eq!(
            split_body(BodyKind::Json, many.as_bytes(), 99),
            Err(BodyError::TooManyEvents {
                count: 100,
                limit: 99
            })
        );
        assert_eq!(
            split_body(BodyKind::Ndjson, b"1\n\n2\n3\n", 2),
            Err(BodyError::TooManyEvents { count: 3, limit: 2 })
        );
        // Counting does not skip checking: what follows the limit must still be JSON.
        assert!(matches!(
            split_body(BodyKind::Batch, b"[1, 2, oops]", 1),
            Err(BodyError::MalformedJson(_))
        ));
        assert!(matches!(
            split_body(BodyKind::Batch, b"[1] 2", 1),
            Err(BodyError::MalformedJson(_))
        ));
        // A malformed single event is one item, judged by the validator.
        assert_eq!(
            split_body(BodyKind::Json, b"{oops", 100).unwrap(),
            vec![&b"{oops"[..]]
        );
    }
}
