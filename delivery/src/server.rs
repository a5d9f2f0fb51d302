//! [`Delivery::serve`](crate::Delivery::serve): HTTP/1 serving with a lean path for SSE streams.
//!
//! Every accepted connection has its first request head peeked (read without consuming it). A plain
//! `GET /v1/stream` over HTTP/1.1 whose head arrived whole is served on the connection itself: the response head,
//! then the stream's chunks in chunked encoding, one write per chunk, with nothing per connection but the stream's
//! own state. Everything else (other routes and methods, a head split across packets or larger than
//! [`MAX_HEAD`], a request body, an upgrade) goes to hyper with the full router, which serves `/v1/stream`
//! identically, only with hyper's per-connection buffers. hyper runs with a timer (unlike under `axum::serve`), so
//! its request-head timeout bounds every later request on a kept-alive connection too.
//!
//! Why: hyper keeps two 8 KiB buffers (read, and header write) per HTTP/1 connection for its whole life and writes
//! each body chunk in two syscalls; for 10,000 idle streams that is most of the memory and, for a broadcast, half
//! the writes (BENCHMARKS.md, `## Delivery`). Layers the caller wraps around the router (none today) do not see
//! the lean path.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::DeliveryError;
use crate::delivery::Shared;
use crate::routes::open_stream;
use crate::stall::GuardedIo;

/// The largest request head the lean path takes (longer ones go to hyper).
const MAX_HEAD: usize = 8 * 1024;
/// The most header lines the lean path takes.
const MAX_HEADERS: usize = 64;
/// How long a stream that ends (cut off, expired, shutdown) waits for its client to take the rest of its last
/// chunk and the end of the body.
const END_GRACE: Duration = Duration::from_secs(10);
/// Largest error body rendered on the lean path.
const MAX_ERROR_BODY: usize = 64 * 1024;

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
x-accel-buffering: no\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";

/// Serves `app` on `listener` until the shutdown token of `shared` is cancelled, then lets requests in flight
/// finish (streams end at shutdown).
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, app: Router) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracker.spawn(connection(shared.clone(), stream, peer, app.clone()));
            }
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: wait a little, go on.
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, app: Router) {
    let head_timeout = Duration::from_millis(shared.config.request_head_timeout_ms);
    let sniffed = tokio::select! {
        sniffed = sniff(&stream, head_timeout) => sniffed,
        // A connection that has not sent its first head by shutdown is not served (nor waited for).
        _ = shared.shutdown.cancelled() => Sniffed::Closed,
    };
    match sniffed {
        Sniffed::Stream(head) => serve_stream(shared, stream, head, peer.ip()).await,
        Sniffed::Other => serve_router(shared, stream, peer, app).await,
        Sniffed::Closed => {}
    }
}

/// Serves a connection with hyper and the whole router: every request carries the peer as `ConnectInfo`, every
/// request head (not only the first, which the sniff bounds) must arrive within `request_head_timeout_ms`, and the
/// connection's writes and silences are bounded ([`GuardedIo`]). At shutdown, a request in flight finishes (streams
/// and long polls end at shutdown) and the connection closes.
async fn serve_router(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, app: Router) {
    let io = TokioIo::new(GuardedIo::new(stream, shared.config.io_limits()));
    let service = service_fn(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(
            shared.config.request_head_timeout_ms.max(1),
        ));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = shared.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A request head the lean path serves.
#[derive(Debug)]
struct Head {
    uri: Uri,
    headers: HeaderMap,
    len: usize,
}

#[derive(Debug)]
enum Sniffed {
    Stream(Head),
    Other,
    Closed,
}

/// Waits up to `timeout` (`request_head_timeout_ms`) for a whole request head (or [`MAX_HEAD`] bytes of one), then
/// decides who serves the connection: the lean path needs the whole head to tell. A connection whose head does not
/// arrive in time is closed.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buffer = vec![0; MAX_HEAD];
    let mut pause = Duration::from_millis(2);
    loop {
        // `peek` waits for data itself (a readiness report alone can be spurious), so it is what is timed.
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Sniffed::Closed,
        };
        let head = &buffer[..n];
        if n == buffer.len() || head.windows(4).any(|w| w == b"\r\n\r\n") {
            return parse_head(head).map_or(Sniffed::Other, Sniffed::Stream);
        }
        // A partial head: peeking leaves the socket readable, so wait a little (longer each time) for the rest.
        if tokio::time::Instant::now() + pause >= deadline {
            return Sniffed::Closed;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Parses a complete `GET /v1/stream` HTTP/1.1 head without a body or upgrade; `None` for anything else.
fn parse_head(bytes: &[u8]) -> Option<Head> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (request_line.next()?, request_line.next()?, request_line.next()?);
    if method != "GET" || version != "HTTP/1.1" || request_line.next().is_some() {
        return None;
    }
    let path = target.split('?').next()?;
    if path != "/v1/stream" {
        return None;
    }
    let uri = Uri::try_from(target).ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS || line.starts_with([' ', '\t']) {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.trim_matches([' ', '\t'])).ok()?;
        let has_body =
            name == header::TRANSFER_ENCODING || (name == header::CONTENT_LENGTH && value.as_bytes() != b"0");
        if has_body || name == header::UPGRADE || name == header::EXPECT {
            return None;
        }
        headers.append(name, value);
    }
    Some(Head {
        uri,
        headers,
        len: end + 4,
    })
}

async fn serve_stream(shared: Arc<Shared>, mut stream: TcpStream, head: Head, peer: IpAddr) {
    // The head was only peeked: consume it (it is already in the socket's buffer).
    let mut consumed = vec![0; head.len];
    if stream.read_exact(&mut consumed).await.is_err() {
        return;
    }
    drop(consumed);
    // Frames are written as they come; Nagle's algorithm would hold one back behind an unacknowledged one.
    let _ = stream.set_nodelay(true);
    let first_chunk_timeout = Duration::from_millis(shared.config.first_chunk_timeout_ms);
    let opened = open_stream(shared, &head.uri, &head.headers, Some(peer)).await;
    drop(head);
    let (first, mut live) = match opened {
        Ok(opened) => opened,
        Err(error) => return write_error(&stream, error).await,
    };
    let mut start = Vec::with_capacity(STREAM_HEAD.len() + first.len() + 16);
    start.extend_from_slice(STREAM_HEAD);
    push_chunk(&mut start, &first);
    drop(first);
    // The first chunk (a replay can be large) is bounded like the others: a client that does not take it before a
    // stop (cut off, shutdown) or within `first_chunk_timeout_ms` is dropped, with its position unchanged.
    let stop = live.stop_token();
    tokio::select! {
        biased;
        _ = stop.cancelled() => {
            live.stopped();
            return;
        }
        written = tokio::time::timeout(first_chunk_timeout, write_all(&stream, &start)) => {
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
        }
    }
    drop(start);

    let timer = tokio::time::sleep_until(live.next_deadline());
    tokio::pin!(timer);
    let stop = live.stop_token().cancelled_owned();
    tokio::pin!(stop);
    let gone = client_gone(&stream);
    tokio::pin!(gone);
    loop {
        let Some(chunk) = live.next(timer.as_mut(), stop.as_mut(), gone.as_mut()).await else {
            break;
        };
        let mut framed = Vec::with_capacity(chunk.len() + 16);
        push_chunk(&mut framed, &chunk);
        drop(chunk);
        // Usually the socket takes the whole chunk at once: then nothing needs waiting for (a stop is seen by the
        // next `live.next`).
        let mut sent = match stream.try_write(&framed) {
            Ok(0) => return,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => return,
        };
        if sent == framed.len() {
            continue;
        }
        tokio::select! {
            biased;
            // A client that stops reading fills its socket buffer, then its queue, and is cut off even while a
            // write waits: it gets `END_GRACE` to take the rest of this chunk, so its last frame is whole.
            _ = stop.as_mut() => {
                live.stopped();
                let rest = write_tracked(&stream, &framed, &mut sent);
                if !matches!(tokio::time::timeout(END_GRACE, rest).await, Ok(Ok(()))) {
                    return;
                }
                break;
            }
            written = write_tracked(&stream, &framed, &mut sent) => {
                if written.is_err() {
                    return;
                }
            }
        }
    }
    // The end of the chunked body, so the client sees a clean end (bounded: it may not be reading).
    let mut sent = 0;
    let _ = tokio::time::timeout(END_GRACE, write_tracked(&stream, b"0\r\n\r\n", &mut sent)).await;
}

/// Appends `data` as one chunk of chunked transfer encoding.
fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes all of `bytes`, trying at once before waiting for the socket (one syscall in the usual case).
async fn write_all(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    write_tracked(stream, bytes, &mut 0).await
}

/// Writes `bytes[*sent..]`, counting in `sent` what was written (so a cancelled write can be resumed).
async fn write_tracked(stream: &TcpStream, bytes: &[u8], sent: &mut usize) -> io::Result<()> {
    while *sent < bytes.len() {
        match stream.try_write(&bytes[*sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *sent += n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Completes when the client closed its side (or the socket failed); ignores anything it sends.
async fn client_gone(stream: &TcpStream) {
    let mut scratch = [0; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Writes the error answer the router would give, then closes.
async fn write_error(stream: &TcpStream, error: DeliveryError) {
    let (parts, body) = error.into_response().into_parts();
    let body = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    let _ = tokio::time::timeout(END_GRACE, write_all(stream, &out)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lean_path_takes_only_whole_plain_stream_heads() {
        let head = parse_head(
            b"GET /v1/stream?topic=a&topic=b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\nrest",
        )
        .unwrap();
        assert_eq!(head.uri.query(), Some("topic=a&topic=b"));
        assert_eq!(head.headers["authorization"], "Bearer t");
        assert_eq!(head.len, 77);
        for other in [
            &b"GET /v1/stream?topic=a HTTP/1.1\r\nHost: x\r\n"[..],
            b"GET /v1/poll?topic=a HTTP/1.1\r\n\r\n",
            b"GET /v1/streams HTTP/1.1\r\n\r\n",
            b"HEAD /v1/stream HTTP/1.1\r\n\r\n",
            b"GET /v1/stream HTTP/1.0\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc",
            b"GET /v1/stream HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\nx: a\r\n folded\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(parse_head(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn chunks_are_framed() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"id: x\n\n");
        assert_eq!(out, b"7\r\nid: x\n\n\r\n");
    }
}
