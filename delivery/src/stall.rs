//! [`GuardedIo`]: a connection served by the router whose writes may not stay blocked, and which may not stay
//! silent, for longer than a limit.
//!
//! Why: hyper has no write timeout, and polls a response body only when the socket takes more bytes:
//! - a client that stops reading leaves a stream (or a long poll's answer) blocked in the write, so the body never
//!   sees its slow-client cut-off, its token expiry or shutdown, and the connection holds its slot until the peer
//!   goes away on its own. A write blocked past `DeliveryConfig::write_stall_timeout_ms` fails (`TimedOut`);
//! - a connection on which nothing moves holds an open file for as long as the client likes (hyper's own
//!   request-head timeout, which `server.rs` sets, covers a head being read, not every silence). A read pending
//!   while nothing has moved either way for `DeliveryConfig::idle_connection_timeout_ms` fails too. Streams and
//!   long polls are never that quiet: heartbeats, and answers by `max_poll_wait_secs`.
//!
//! Either failure makes hyper close the connection. (The lean stream path bounds its own writes.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The two limits of a [`GuardedIo`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IoLimits {
    pub write_stall: Duration,
    pub idle: Duration,
}

pub(crate) struct GuardedIo {
    inner: TcpStream,
    limits: IoLimits,
    /// Armed when a write first finds the socket full; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
    /// When bytes last moved either way.
    last_activity: Instant,
    /// Armed while a read is pending, for `last_activity + idle`.
    idle: Option<Pin<Box<Sleep>>>,
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl GuardedIo {
    pub(crate) fn new(inner: TcpStream, limits: IoLimits) -> GuardedIo {
        GuardedIo {
            inner,
            limits,
            stalled: None,
            last_activity: Instant::now(),
            idle: None,
        }
    }

    /// Handles the outcome of one write (or flush) attempt: progress disarms the timer (and `moved_bytes`, bytes
    /// written, counts as activity; a flush, which hyper calls whenever it is polled, does not); `Pending` arms it
    /// (once) and fails the write when it has run out.
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
        moved_bytes: bool,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            if moved_bytes {
                self.last_activity = Instant::now();
            }
            return outcome;
        }
        let limit = self.limits.write_stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(timed_out(
            "the peer took nothing for the write stall timeout",
        )))
    }

    /// Handles the outcome of one read attempt: a pending read fails once nothing has moved for the idle limit
    /// (writes count as activity: a stream that only writes is not idle).
    fn watch_read(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
        if outcome.is_ready() {
            self.idle = None;
            self.last_activity = Instant::now();
            return outcome;
        }
        loop {
            let deadline = self.last_activity + self.limits.idle;
            let timer = self
                .idle
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            ready!(timer.as_mut().poll(cx));
            if self.last_activity + self.limits.idle <= Instant::now() {
                return Poll::Ready(Err(timed_out("the connection was idle for the idle timeout")));
            }
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.watch_read(cx, outcome)
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        let moved = matches!(outcome, Poll::Ready(Ok(n)) if n > 0);
        self.watch_write(cx, outcome, moved)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let moved = matches!(outcome, Poll::Ready(Ok(n)) if n > 0);
        self.watch_write(cx, outcome, moved)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, outcome, false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(limits: IoLimits) -> (GuardedIo, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (GuardedIo::new(server, limits), client)
    }

    fn limits(write_stall_ms: u64, idle_ms: u64) -> IoLimits {
        IoLimits {
            write_stall: Duration::from_millis(write_stall_ms),
            idle: Duration::from_millis(idle_ms),
        }
    }

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        let (mut guarded, _client) = pair(limits(200, 60_000)).await;
        let chunk = vec![b'x'; 64 * 1024];
        let started = std::time::Instant::now();
        let error = loop {
            if let Err(error) = guarded.write_all(&chunk).await {
                break error;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    /// The kernel reports a full socket writable again only once a good part of its buffer (megabytes on
    /// loopback) has drained, so a reader slower than the writer still blocks writes for a while: the limit is
    /// about the peer taking nothing, not about it being slower.
    #[tokio::test]
    async fn a_slower_reader_that_keeps_taking_is_not_cut() {
        let (mut guarded, mut client) = pair(limits(2_000, 60_000)).await;
        let reader = tokio::spawn(async move {
            let mut buffer = vec![0; 64 * 1024];
            let mut total = 0;
            while total < 8 << 20 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                total += client.read(&mut buffer).await.unwrap();
            }
        });
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..128 {
            guarded.write_all(&chunk).await.unwrap();
        }
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_connection_fails_its_read_after_the_idle_limit() {
        let (mut guarded, _client) = pair(limits(60_000, 300)).await;
        let started = std::time::Instant::now();
        let mut byte = [0u8; 1];
        let error = guarded.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn writes_keep_a_connection_that_reads_nothing_open() {
        let (guarded, mut client) = pair(limits(60_000, 1_000)).await;
        let (mut reader, mut writer) = tokio::io::split(guarded);
        let started = std::time::Instant::now();
        let read = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            reader.read(&mut byte).await
        });
        // A write every 100 ms for 2 s (a stream's heartbeats): the pending read is not idle. The idle limit
        // leaves a busy machine 900 ms of slack per write.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer.write_all(b"ping").await.unwrap();
            assert!(
                !read.is_finished(),
                "idle while writing, after {:?}",
                started.elapsed()
            );
        }
        let mut received = [0u8; 80];
        client.read_exact(&mut received).await.unwrap();
        // Then silence: the read fails one idle limit after the last write.
        let error = read.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(2_900));
    }
}
