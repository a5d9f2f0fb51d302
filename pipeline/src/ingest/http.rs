//! `POST /v1/events` (CONTRACT section 2) and `GET /v1/dead-letters` (reading rejected input back, role `admin`).
//!
//! Order of checks: token (`401`/`403`) before anything is read, then media type (`415`), then size (`413`,
//! streamed: a body is never buffered past the limit) while the body arrives, taking room in the in-flight body
//! budget from its first bytes (`503 ingest_busy`), then content. Answers:
//! - `202 {"accepted": n, "duplicates": d}` when every event was accepted (duplicates count as accepted);
//! - `400` with `error.code` and `errors: [{index, code, message}]` when some were rejected. The valid events of the
//!   same request are accepted all the same (`accepted` says how many), and a retry of the whole request is safe
//!   because accepted events are deduplicated. A single-event body uses that event's code as `error.code`; a batch
//!   uses `invalid_events`;
//! - `503 bus_unavailable` with `Retry-After` when the bus could not take the events, `503 ingest_busy` when the
//!   requests in flight hold `max_inflight_body_bytes`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::json;
use social_auth::{AuthError, Claims, Verifier};

use super::{BodyError, BodyKind, DeadLetterReason, IngestError, IngestReport, Ingestor, split_body};
use crate::bus::{BusError, DEAD_LETTER_TOPIC};

#[derive(Clone)]
pub struct IngestHttpState {
    pub ingestor: Arc<Ingestor>,
    pub verifier: Arc<Verifier>,
}

pub fn router(state: IngestHttpState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/dead-letters", get(get_dead_letters))
        .with_state(state)
}

/// Every error answer of the ingest routes.
#[derive(Debug)]
pub enum IngestHttpError {
    Auth(AuthError),
    UnsupportedMediaType,
    /// A `Content-Encoding` other than `identity`: the ingest reads bodies as they are.
    UnsupportedEncoding,
    BodyTooLarge {
        limit: usize,
    },
    TooManyEvents {
        count: usize,
        limit: usize,
    },
    EmptyBody,
    MalformedBody(String),
    BodyRead,
    BodyTimeout {
        ms: u64,
    },
    BusUnavailable,
    Busy,
    BadQuery(String),
}

impl IngestHttpError {
    fn status_code_message(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Auth(error) => (
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNAUTHORIZED),
                error.code(),
                error.to_string(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "use application/cloudevents+json, application/json, application/cloudevents-batch+json or \
                 application/x-ndjson"
                    .into(),
            ),
            Self::UnsupportedEncoding => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                "send the body without Content-Encoding (identity): compressed bodies are not accepted"
                    .into(),
            ),
            Self::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {limit} bytes"),
            ),
            Self::TooManyEvents { count, limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!("the request holds {count} events, more than {limit}: send them in smaller batches"),
            ),
            Self::EmptyBody => (
                StatusCode::BAD_REQUEST,
                "empty_body",
                "the request body is empty".into(),
            ),
            Self::MalformedBody(detail) => (StatusCode::BAD_REQUEST, "malformed_json", detail.clone()),
            Self::BodyRead => (
                StatusCode::BAD_REQUEST,
                "body_read_failed",
                "the request body could not be read".into(),
            ),
            Self::BodyTimeout { ms } => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {ms} ms"),
            ),
            Self::BusUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_unavailable",
                "the event bus cannot take events right now; retry later (accepted events are deduplicated)"
                    .into(),
            ),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ingest_busy",
                "the ingest is handling as many request bytes as it may hold; retry later".into(),
            ),
            Self::BadQuery(detail) => (StatusCode::BAD_REQUEST, "invalid_query", detail.clone()),
        }
    }
}

impl IntoResponse for IngestHttpError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.status_code_message();
        metrics::counter!("ingest_requests_total", "status" => status_label(status)).increment(1);
        let mut response =
            (status, Json(json!({"error": {"code": code, "message": message}}))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::UnsupportedEncoding) {
            // RFC 7694: say which codings the resource accepts.
            response
                .headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        408 => "408",
        413 => "413",
        415 => "415",
        503 => "503",
        _ => "other",
    }
}

fn authorize(verifier: &Verifier, headers: &HeaderMap, role: &str) -> Result<Claims, IngestHttpError> {
    // No header: `missing_token`; a header that is not `Bearer <token>`: `malformed_token`, as on delivery.
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or(IngestHttpError::Auth(AuthError::MissingToken))?;
    let token = header
        .to_str()
        .ok()
        .and_then(social_auth::bearer_token)
        .ok_or(IngestHttpError::Auth(AuthError::Malformed))?;
    let claims = verifier.verify(token).map_err(IngestHttpError::Auth)?;
    if !claims.has_role(role) {
        return Err(IngestHttpError::Auth(AuthError::MissingRole(role.to_string())));
    }
    Ok(claims)
}

async fn post_events(
    State(state): State<IngestHttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngestHttpError> {
    let started = Instant::now();
    authorize(&state.verifier, &headers, "service")?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let kind = BodyKind::from_content_type(content_type).ok_or(IngestHttpError::UnsupportedMediaType)?;
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    if encoded {
        return Err(IngestHttpError::UnsupportedEncoding);
    }
    let ingestor = &state.ingestor;
    let limit = ingestor.config().max_body_bytes;

    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    // Room in the in-flight budget, held until the answer (the body, its events and their records while they
    // wait for the bus): taken when the body's first bytes arrive, so a client that declares a large body and
    // sends nothing holds none.
    let mut room = Room::default();
    let read = match declared_length {
        Some(length) if length > limit => BodyRead::TooLarge {
            first_bytes: bytes::Bytes::new(),
            size: length,
        },
        _ => {
            let timeout_ms = ingestor.config().body_timeout_ms;
            read_limited(body, limit, timeout_ms, declared_length, ingestor, &mut room).await?
        }
    };
    let bytes = match read {
        BodyRead::Complete(bytes) => bytes,
        BodyRead::TooLarge { first_bytes, size } => {
            let reason = DeadLetterReason {
                code: "body_too_large",
                message: format!("request body over {limit} bytes, not read past the limit"),
            };
            write_body_letter(
                &state.ingestor,
                room,
                reason,
                content_type,
                first_bytes,
                Some(size),
            )
            .await?;
            return Err(IngestHttpError::BodyTooLarge { limit });
        }
    };

    let max_events = ingestor.config().max_events_per_request;
    let items = match split_body(kind, &bytes, max_events) {
        Ok(items) => items,
        Err(BodyError::Empty) => return Err(IngestHttpError::EmptyBody),
        Err(BodyError::TooManyEvents { count, limit }) => {
            // Refused whole, before any per-event work: a body of millions of tiny items would otherwise cost a
            // rejection and a dead letter each.
            let reason = DeadLetterReason {
                code: "too_many_events",
                message: format!("request of {count} events, over the limit of {limit}"),
            };
            write_body_letter(&state.ingestor, room, reason, content_type, bytes.clone(), None).await?;
            return Err(IngestHttpError::TooManyEvents { count, limit });
        }
        Err(error) => {
            let reason = DeadLetterReason {
                code: "malformed_json",
                message: error.to_string(),
            };
            write_body_letter(&state.ingestor, room, reason, content_type, bytes.clone(), None).await?;
            return Err(IngestHttpError::MalformedBody(error.to_string()));
        }
    };
    let single = kind == BodyKind::Json && items.len() == 1 && !bytes.trim_ascii().starts_with(b"[");
    // The appends run in a task of their own, holding the request's room: a handler dropped mid-request (an
    // HTTP/2 stream reset) must not leave events appended with their deduplication keys never confirmed, or the
    // request's dead letters unwritten.
    let items = owned_items(&bytes, &items);
    let task_ingestor = Arc::clone(&state.ingestor);
    let task_content_type = content_type.to_owned();
    let appends = tokio::spawn(async move {
        let _room = room;
        let items: Vec<&[u8]> = items.iter().map(|item| item.as_ref()).collect();
        task_ingestor.ingest(&items, &task_content_type).await
    });
    let report = joined(appends.await)?.map_err(bus_error)?;
    metrics::histogram!("ingest_request_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(report_response(report, single))
}

/// Writes a refused body's dead letter (`size`: of a body over the limit, of which `body` is the first bytes) in
/// a task of its own that holds the request's `room`, like the appends of an accepted one.
async fn write_body_letter(
    ingestor: &Arc<Ingestor>,
    room: Room,
    reason: DeadLetterReason,
    content_type: &str,
    body: bytes::Bytes,
    size: Option<usize>,
) -> Result<(), IngestHttpError> {
    let ingestor = Arc::clone(ingestor);
    let content_type = content_type.to_owned();
    let task = tokio::spawn(async move {
        // The body's room stays held until the letter is written.
        let _room = room;
        match size {
            Some(size) => {
                ingestor
                    .dead_letter_oversized_body(reason, &content_type, &body, size)
                    .await
            }
            None => ingestor.dead_letter_body(reason, &content_type, &body).await,
        }
    });
    joined(task.await)?.map_err(bus_error)
}

/// The outcome of an ingest task; one that panicked is logged and answered as the bus being unavailable (a retry
/// is safe: appends are deduplicated).
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, IngestHttpError> {
    result.map_err(|error| {
        tracing::error!(%error, "an ingest task failed");
        IngestHttpError::BusUnavailable
    })
}

/// The items of `body` as shared views of it (no copy), for a task that outlives the borrow.
fn owned_items(body: &bytes::Bytes, items: &[&[u8]]) -> Vec<bytes::Bytes> {
    let base = body.as_ptr() as usize;
    items
        .iter()
        .map(|item| {
            let start = (item.as_ptr() as usize).wrapping_sub(base);
            match body.get(start..start.saturating_add(item.len())) {
                Some(within) if within.as_ptr() == item.as_ptr() => body.slice(start..start + item.len()),
                // Not a part of `body` (never the case for what `split_body` gives): a copy.
                _ => bytes::Bytes::copy_from_slice(item),
            }
        })
        .collect()
}

/// What reading a request body gave.
enum BodyRead {
    Complete(bytes::Bytes),
    /// Longer than the limit: the first bytes read (at most `--max-event-bytes`, none when the declared length
    /// was already over the limit) and the size known: the declared length, or else what was read before the
    /// limit stopped the reading (the body is longer).
    TooLarge {
        first_bytes: bytes::Bytes,
        size: usize,
    },
}

/// A request's room in the ingest's in-flight body budget: one permit, taken at its first bytes.
#[derive(Default)]
struct Room {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Room {
    /// Takes room for `bytes` when it holds none yet, waiting as [`Ingestor::reserve_body`] does. Taken once per
    /// request, whole: a request never waits for more while holding some, so requests cannot each hold what
    /// another waits for.
    async fn take(&mut self, bytes: usize, ingestor: &Ingestor) -> Result<(), IngestHttpError> {
        if self.permit.is_some() {
            return Ok(());
        }
        let permit = ingestor.reserve_body(bytes).await.ok_or(IngestHttpError::Busy)?;
        self.permit = Some(permit);
        Ok(())
    }
}

/// Reads the body up to `limit` bytes, within `timeout_ms` (0: no limit). Room in the ingest's in-flight budget
/// is taken into `room` when the first bytes arrive, all at once, for the declared length or without one for
/// `limit` (partly read bodies cannot hold the budget between them); `503 ingest_busy` when none comes in time.
async fn read_limited(
    body: Body,
    limit: usize,
    timeout_ms: u64,
    declared: Option<usize>,
    ingestor: &Ingestor,
    room: &mut Room,
) -> Result<BodyRead, IngestHttpError> {
    let collect = async {
        let mut body = Limited::new(body, limit);
        let mut bytes = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                    let size = bytes.len();
                    bytes.truncate(ingestor.config().max_event_bytes);
                    return Ok(BodyRead::TooLarge {
                        first_bytes: bytes.freeze(),
                        size,
                    });
                }
                Err(_) => return Err(IngestHttpError::BodyRead),
            };
            let Ok(data) = frame.into_data() else { continue };
            if data.is_empty() {
                continue;
            }
            // The declared length, or without one the most the body may hold (a body that grew its room chunk by
            // chunk would wait for more while holding some, and two such bodies could wait for each other).
            room.take(declared.unwrap_or(limit).min(limit), ingestor).await?;
            bytes.extend_from_slice(&data);
        }
        Ok(BodyRead::Complete(bytes.freeze()))
    };
    if timeout_ms == 0 {
        collect.await
    } else {
        tokio::time::timeout(Duration::from_millis(timeout_ms), collect)
            .await
            .map_err(|_| IngestHttpError::BodyTimeout { ms: timeout_ms })?
    }
}

fn bus_error(error: IngestError) -> IngestHttpError {
    let IngestError::Bus(error) = error;
    tracing::warn!(%error, "ingest could not append to the bus");
    IngestHttpError::BusUnavailable
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

fn report_response(report: IngestReport, single: bool) -> Response {
    if report.rejected.is_empty() {
        metrics::counter!("ingest_requests_total", "status" => "202").increment(1);
        let body = json!({"accepted": report.accepted + report.duplicates, "duplicates": report.duplicates});
        return (StatusCode::ACCEPTED, Json(body)).into_response();
    }
    metrics::counter!("ingest_requests_total", "status" => "400").increment(1);
    let rejected = report.rejected.len();
    let error = match (single, report.rejected.first()) {
        (true, Some(first)) => ErrorDetail {
            code: first.code,
            message: first.message.clone(),
        },
        _ => ErrorDetail {
            code: "invalid_events",
            message: format!(
                "{rejected} of {} events were rejected; the others were accepted",
                rejected + report.accepted + report.duplicates
            ),
        },
    };
    let body = json!({
        "error": error,
        "accepted": report.accepted + report.duplicates,
        "duplicates": report.duplicates,
        "errors": report.rejected,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[derive(Deserialize)]
struct DeadLetterQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// Reads the dead-letter topic back: `{"records":[{"offset","timestampMs","record"}],"next":n,"end":m}`.
async fn get_dead_letters(
    State(state): State<IngestHttpState>,
    headers: HeaderMap,
    query: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, IngestHttpError> {
    authorize(&state.verifier, &headers, "admin")?;
    let Query(query) = query.map_err(|error| IngestHttpError::BadQuery(error.body_text()))?;
    let bus = state.ingestor.bus();
    let limit = query.limit.clamp(1, 1000);
    let read = async {
        let start = bus.start_offset(DEAD_LETTER_TOPIC, 0).await?;
        let end = bus.end_offset(DEAD_LETTER_TOPIC, 0).await?;
        let from = query.from.max(start);
        let records = if from < end {
            bus.fetch(DEAD_LETTER_TOPIC, 0, from, limit, Duration::ZERO)
                .await?
        } else {
            Vec::new()
        };
        Ok::<_, BusError>((records, from, end))
    };
    let (records, from, end) = read.await.map_err(|error| bus_error(IngestError::Bus(error)))?;
    let next = records.last().map_or(from, |record| record.offset + 1);
    let records: Vec<_> = records
        .iter()
        .map(|record| {
            let value: serde_json::Value = serde_json::from_slice(&record.value).unwrap_or_default();
            json!({"offset": record.offset, "timestampMs": record.timestamp_ms, "record": value})
        })
        .collect();
    Ok(Json(json!({"records": records, "next": next, "end": end})).into_response())
}
