//! [`StallGuard`]: a connection whose writes may not stay blocked for longer than a limit.
//!
//! Why: hyper polls a response body only when the socket takes more bytes. A client that stops reading leaves a
//! stream (or a long poll's answer) blocked in the write, so the body never sees its slow-client cut-off, its
//! token expiry or shutdown, and the connection holds its slot until the peer goes away on its own. A write
//! blocked past `DeliveryConfig::write_stall_timeout_ms` fails instead (`TimedOut`), and hyper closes the
//! connection. (The lean stream path bounds its writes itself.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

pub(crate) struct StallGuard {
    inner: TcpStream,
    limit: Duration,
    /// Armed when a write first finds the socket full; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    pub(crate) fn new(inner: TcpStream, limit: Duration) -> StallGuard {
        StallGuard {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Handles the outcome of one write attempt: progress disarms the timer; `Pending` arms it (once) and fails
    /// the write when it has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer took nothing for the write stall timeout",
        )))
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, outcome)
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

    async fn pair(limit: Duration) -> (StallGuard, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (StallGuard::new(server, limit), client)
    }

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        let (mut guarded, _client) = pair(Duration::from_millis(200)).await;
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
        let (mut guarded, mut client) = pair(Duration::from_secs(2)).await;
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
}
