//! `GET /v1/stream`: Server-Sent Events.
//!
//! Frames: `retry:` (with jitter) first; each message is `id: <resume token>` + `data: <message JSON>`; when the
//! connection starts without replaying anything, an `id:`-only frame gives the client its starting position (an
//! EventSource records it without firing an event), so a reconnect before the first message still resumes exactly.
//! Heartbeats are `: heartbeat` comments. The stream ends when the token expires, when the client is too slow
//! (the last id it received is its resumable position) or when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

use super::admit;
use crate::DeliveryError;
use crate::auth::now_unix;
use crate::delivery::Shared;
use crate::metrics::{self, CloseReason, Transport};
use crate::session::{Out, Session};

/// Messages written in one chunk at most.
const MAX_BATCH: usize = 64;

pub(super) async fn stream(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match open(shared, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Records the close of a connection with its reason when dropped.
pub(crate) struct CloseGuard {
    pub transport: Transport,
    pub reason: CloseReason,
}

impl CloseGuard {
    pub(crate) fn new(transport: Transport) -> CloseGuard {
        metrics::connection_opened(transport);
        CloseGuard {
            transport,
            reason: CloseReason::Client,
        }
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        metrics::connection_closed(self.transport, self.reason);
    }
}

pub(crate) fn write_frames(buffer: &mut BytesMut, out: &[Out]) {
    for message in out {
        buffer.reserve(message.token.len() + message.json.len() + 12);
        buffer.put_slice(b"id: ");
        buffer.put_slice(message.token.as_bytes());
        buffer.put_slice(b"\ndata: ");
        buffer.put_slice(&message.json);
        buffer.put_slice(b"\n\n");
    }
}

fn record_written(out: &[Out]) {
    let now = Instant::now();
    for message in out {
        metrics::written(
            1,
            message.published_at.map(|at| now.saturating_duration_since(at)),
        );
    }
}

async fn open(shared: Arc<Shared>, request: Request) -> Result<Response, DeliveryError> {
    let admitted = admit(&shared, request.uri(), request.headers())?;
    let permit = shared
        .limiter
        .admit(admitted.claims.as_ref().map(|c| c.sub.as_str()))?;
    let expires_in = admitted
        .claims
        .as_ref()
        .map(|claims| Duration::from_secs(claims.exp.saturating_sub(now_unix())));
    let (mut session, initial) = Session::open(shared.clone(), admitted.topics, admitted.options).await?;

    let config = &shared.config;
    let retry_ms = config.retry_base_ms + rand::random_range(0..config.retry_jitter_ms.max(1));
    let mut first = BytesMut::with_capacity(256);
    first.put_slice(format!("retry: {retry_ms}\n").as_bytes());
    if initial.is_empty() {
        first.put_slice(format!("id: {}\n\n", session.token()).as_bytes());
    } else {
        first.put_slice(b"\n");
        write_frames(&mut first, &initial);
        record_written(&initial);
    }
    let heartbeat_every = Duration::from_secs(config.heartbeat_secs.max(1));
    let shutdown = shared.shutdown.clone();

    let body = async_stream::stream! {
        let _permit = permit;
        let mut close = CloseGuard::new(Transport::Sse);
        yield Ok::<Bytes, Infallible>(first.freeze());
        let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let expiry = async move {
            match expires_in {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        let cut = session.cut().clone();
        loop {
            let delivered = tokio::select! {
                biased;
                _ = shutdown.cancelled() => { close.reason = CloseReason::Shutdown; break; }
                _ = cut.cancelled() => { close.reason = CloseReason::Slow; break; }
                _ = &mut expiry => { close.reason = CloseReason::Expired; break; }
                delivered = session.recv() => delivered,
                _ = heartbeat.tick() => {
                    yield Ok(Bytes::from_static(b": heartbeat\n\n"));
                    continue;
                }
            };
            let Some(delivered) = delivered else { break };
            let mut out = Vec::new();
            let mut next = Some(delivered);
            let mut failed = false;
            while let Some(delivered) = next.take() {
                if let Err(error) = session.accept(delivered, &mut out).await {
                    tracing::warn!(%error, "stream ended by a history error");
                    failed = true;
                    break;
                }
                if out.len() < MAX_BATCH {
                    next = session.try_recv();
                }
            }
            if !out.is_empty() {
                let mut buffer = BytesMut::new();
                write_frames(&mut buffer, &out);
                record_written(&out);
                yield Ok(buffer.freeze());
            }
            if failed {
                break;
            }
        }
    };

    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
