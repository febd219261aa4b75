//! A lingering close, so that a client still sending reads the answer.
//!
//! The server sometimes answers before it has read the whole request: hyper answers a body
//! whose chunked framing is broken as soon as it sees the fault (`400 malformed_request`),
//! and closes. Closing a socket with unread bytes makes the kernel send a reset, and a client
//! still writing then gets a broken pipe, often before it has read the answer. So on close,
//! after the TLS `close_notify` and the TCP FIN, whatever the client still sends is read and
//! thrown away, until it closes its side, for at most [`LINGER_TIME`] and [`LINGER_BYTES`]
//! (Apache's `lingering_close` and nginx's `lingering_close` do the same). A client that
//! closes when told costs nothing more.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a closed connection is read from at most.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a closed connection is read at most.
pub const LINGER_BYTES: u64 = 16 << 20;

/// `S`, closed with a linger.
pub struct Lingering<S> {
    inner: S,
    state: State,
}

enum State {
    Open,
    Draining {
        until: Pin<Box<tokio::time::Sleep>>,
        left: u64,
    },
    Closed,
}

impl<S> Lingering<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Lingering<S> {
        Lingering {
            inner,
            state: State::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> Lingering<S> {
    /// Reads and discards until the client closes, an error, or the time or byte bound.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Draining { until, left } = &mut self.state else {
            return Poll::Ready(());
        };
        let mut buf = [0u8; 8192];
        loop {
            if until.as_mut().poll(cx).is_ready() {
                break;
            }
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    *left = left.saturating_sub(read.filled().len() as u64);
                    if *left == 0 {
                        break;
                    }
                }
                // The client closed its side, or the connection failed: nothing to wait for.
                Poll::Ready(_) => break,
            }
        }
        self.state = State::Closed;
        Poll::Ready(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Open = self.state {
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.state = State::Draining {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                left: LINGER_BYTES,
            };
        }
        ready!(self.poll_drain(cx));
        Poll::Ready(Ok(()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_close_reads_what_the_peer_still_sends_until_it_closes() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = Lingering::new(server);
        // The client sends more than the pipe holds, then closes: the shutdown takes it all.
        let sender = tokio::spawn(async move {
            client.write_all(&vec![7u8; 100_000]).await.unwrap();
            client.shutdown().await.unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            rest
        });
        server.write_all(b"answer").await.unwrap();
        tokio::time::timeout(LINGER_TIME / 2, server.shutdown())
            .await
            .expect("done when the client closed, not at the time bound")
            .unwrap();
        assert_eq!(sender.await.unwrap(), b"answer");
    }

    // Paused time: the clock jumps to the bound as soon as nothing else can happen.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_closes_is_let_go_after_the_linger_time() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut server = Lingering::new(server);
        let started = tokio::time::Instant::now();
        tokio::time::timeout(LINGER_TIME * 5, server.shutdown())
            .await
            .expect("let go")
            .unwrap();
        assert!(started.elapsed() >= LINGER_TIME);
    }

    #[tokio::test]
    async fn a_peer_that_sends_without_end_is_let_go_after_the_byte_bound() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let mut server = Lingering::new(server);
        let sender = tokio::spawn(async move {
            let chunk = vec![1u8; 64 * 1024];
            let mut sent = 0u64;
            while client.write_all(&chunk).await.is_ok() {
                sent += chunk.len() as u64;
            }
            sent
        });
        tokio::time::timeout(LINGER_TIME * 5, server.shutdown())
            .await
            .expect("let go")
            .unwrap();
        drop(server);
        let sent = sender.await.unwrap();
        assert!(
            (LINGER_BYTES - 256 * 1024..LINGER_BYTES + 256 * 1024).contains(&sent),
            "{sent}"
        );
    }
}
