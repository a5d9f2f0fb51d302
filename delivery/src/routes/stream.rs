//! `GET /v1/stream`: Server-Sent Events.
//!
//! Frames: `retry:` (with jitter) first; each message is `id: <resume token>` + `data: <message JSON>`; when the
//! connection starts without replaying anything, an `id:`-only frame gives the client its starting position (an
//! EventSource records it without firing an event), so a reconnect before the first message still resumes exactly.
//! Heartbeats are `: heartbeat` comments. The stream ends when the token expires, when the client is too slow
//! (the last id it received is its resumable position) or when the server shuts down.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{admit, peer_of};
use crate::DeliveryError;
use crate::auth::now_unix;
use crate::delivery::Shared;
use crate::limits::Permit;
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
            message
                .published
                .map(|(at, kind)| (kind, now.saturating_duration_since(at))),
        );
    }
}

/// Opens a stream for an admitted request: the first chunk to write (the `retry:` hint, then the replay or the
/// start position) and the [`Live`] part that follows. Shared by the router ([`stream`]) and the lean HTTP/1 path
/// of [`Delivery::serve`](crate::Delivery::serve). `peer` is the TCP peer, for the per-address limit of anonymous
/// streams.
pub(crate) async fn open_stream(
    shared: Arc<Shared>,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<(Bytes, Live), DeliveryError> {
    let admitted = admit(&shared, uri, headers, peer).await?;
    let expires_in = admitted
        .claims
        .as_ref()
        .map(|claims| Duration::from_secs(claims.exp.saturating_sub(now_unix())));
    let (session, initial) = Session::open(shared.clone(), admitted.topics, admitted.options).await?;

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
    let now = Instant::now();
    let live = Live {
        session,
        heartbeat_every,
        next_heartbeat: now + heartbeat_every,
        // A token that expires beyond what `Instant` holds never expires here.
        expires_at: expires_in.and_then(|after| now.checked_add(after)),
        close: CloseGuard::new(Transport::Sse),
        failed: false,
        _permit: admitted.permit,
    };
    Ok((first.freeze(), live))
}

async fn open(shared: Arc<Shared>, request: Request) -> Result<Response, DeliveryError> {
    let (first, mut live) = open_stream(shared, request.uri(), request.headers(), peer_of(&request)).await?;
    drop(request);
    let body = async_stream::stream! {
        yield Ok::<Bytes, Infallible>(first);
        let timer = tokio::time::sleep_until(live.next_deadline());
        tokio::pin!(timer);
        let stop = live.stop_token().cancelled_owned();
        tokio::pin!(stop);
        // hyper notices a client that went away by itself.
        let gone = std::future::pending::<()>();
        tokio::pin!(gone);
        while let Some(chunk) = live.next(timer.as_mut(), stop.as_mut(), gone.as_mut()).await {
            yield Ok(chunk);
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

/// The live part of one stream: heartbeats, expiry, the slow-client cut-off and shutdown, and live messages.
///
/// The caller pins, for the whole connection, the one timer (`sleep_until(next_deadline())`, used for both the
/// heartbeat and the token expiry) and the stop future (`stop_token().cancelled_owned()`), so waiting for the next
/// chunk registers nothing anew per message.
pub(crate) struct Live {
    session: Session,
    heartbeat_every: Duration,
    next_heartbeat: Instant,
    expires_at: Option<Instant>,
    close: CloseGuard,
    failed: bool,
    _permit: Permit,
}

impl Live {
    /// When the timer must fire next: the next heartbeat or the token expiry, whichever comes first.
    pub(crate) fn next_deadline(&self) -> Instant {
        match self.expires_at {
            Some(expiry) => expiry.min(self.next_heartbeat),
            None => self.next_heartbeat,
        }
    }

    /// Cancelled when this connection must stop: cut off as too slow, or server shutdown.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.session.cut().clone()
    }

    /// Records why the connection stopped after `stop` fired outside [`Live::next`] (while writing).
    pub(crate) fn stopped(&mut self) {
        self.close.reason = self.session.stop_reason();
    }

    /// The next bytes to write (heartbeat comment or a batch of frames), or `None` when the stream ends. Not
    /// cancel-safe (a history read may be under way): poll it to completion. `gone` completes when the client went
    /// away.
    pub(crate) async fn next<G: Future<Output = ()>>(
        &mut self,
        mut timer: Pin<&mut Sleep>,
        mut stop: Pin<&mut WaitForCancellationFutureOwned>,
        mut gone: Pin<&mut G>,
    ) -> Option<Bytes> {
        if self.failed {
            return None;
        }
        loop {
            let deadline = self.next_deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let delivered = tokio::select! {
                biased;
                _ = stop.as_mut() => {
                    self.close.reason = self.session.stop_reason();
                    return None;
                }
                _ = timer.as_mut() => {
                    let now = Instant::now();
                    if self.expires_at.is_some_and(|expiry| now >= expiry) {
                        self.close.reason = CloseReason::Expired;
                        return None;
                    }
                    self.next_heartbeat = now + self.heartbeat_every;
                    return Some(Bytes::from_static(b": heartbeat\n\n"));
                }
                _ = gone.as_mut() => return None,
                delivered = self.session.recv() => delivered,
            };
            let delivered = delivered?;
            let mut out = Vec::new();
            let mut next = Some(delivered);
            while let Some(delivered) = next.take() {
                if let Err(error) = self.session.accept(delivered, &mut out).await {
                    tracing::warn!(%error, "stream ended by a history error");
                    // What was accepted is still written; the next call ends the stream.
                    self.failed = true;
                    break;
                }
                if out.len() < MAX_BATCH {
                    next = self.session.try_recv();
                }
            }
            if !out.is_empty() {
                let mut buffer =
                    BytesMut::with_capacity(out.iter().map(|m| m.token.len() + m.json.len() + 12).sum());
                write_frames(&mut buffer, &out);
                record_written(&out);
                return Some(buffer.freeze());
            }
        }
    }
}
