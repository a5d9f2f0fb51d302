//! `GET /v1/poll?topic=...&lastEventId=...&wait=25`: the polling fallback. It answers
//! `{"messages":[...],"lastEventId":"..."}` with the same messages and tokens as the stream would, waiting up to
//! `wait` seconds (at most `max_poll_wait_secs`) when there is nothing new. Without `lastEventId` it starts at the
//! live head (plus `?history=N` / `?snapshot=true` when asked).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};

use super::stream::CloseGuard;
use super::{admit, peer_of};
use crate::DeliveryError;
use crate::auth::now_unix;
use crate::delivery::Shared;
use crate::metrics::{CloseReason, Transport};
use crate::session::{Out, Session};

const DEFAULT_WAIT_SECS: u64 = 25;
const MAX_MESSAGES: usize = 1_000;

pub(super) async fn poll(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match answer(shared, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn answer(shared: Arc<Shared>, request: Request) -> Result<Response, DeliveryError> {
    let admitted = admit(&shared, request.uri(), request.headers(), peer_of(&request)).await?;
    let _permit = admitted.permit;
    // A long poll is a stream: it ends when its token expires, so it waits no longer than that. A token past its
    // `exp` (accepted within the verifier's leeway) is refused: answered at once with nothing, a polling client
    // would loop without waiting and never learn to refresh it.
    let expires_in = admitted
        .claims
        .as_ref()
        .map_or(u64::MAX, |claims| claims.exp.saturating_sub(now_unix()));
    if expires_in == 0 {
        let error = DeliveryError::Auth(social_auth::AuthError::Expired);
        crate::metrics::auth_rejected(error.code());
        return Err(error);
    }
    let mut close = CloseGuard::new(Transport::Poll);
    let wait = Duration::from_secs(
        admitted
            .query
            .wait_secs
            .unwrap_or(DEFAULT_WAIT_SECS)
            .min(shared.config.max_poll_wait_secs)
            .min(expires_in),
    );
    let (mut session, mut out) = Session::open(shared.clone(), admitted.topics, admitted.options).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let cut = session.cut().clone();
    // Wait on: a live message can be one the session already sent (published between subscribing and reading
    // the head), which `accept` drops; only a message for the client ends the wait early.
    while out.is_empty() && !wait.is_zero() {
        let first = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => break,
            _ = cut.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            delivered = session.recv() => delivered,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        while let Some(delivered) = next.take() {
            session.accept(delivered, &mut out).await?;
            if out.len() < MAX_MESSAGES {
                next = session.try_recv();
            }
        }
    }
    close.reason = CloseReason::Done;
    Ok(render(&out, &session.token()))
}

fn render(out: &[Out], last_token: &str) -> Response {
    let size: usize = out.iter().map(|m| m.json.len() + 1).sum();
    let mut body = BytesMut::with_capacity(size + last_token.len() + 40);
    body.put_slice(b"{\"messages\":[");
    for (index, message) in out.iter().enumerate() {
        if index > 0 {
            body.put_u8(b',');
        }
        body.put_slice(&message.json);
    }
    body.put_slice(b"],\"lastEventId\":\"");
    // Tokens are base64url: nothing to escape.
    body.put_slice(last_token.as_bytes());
    body.put_slice(b"\"}");
    let mut response = body.freeze().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
