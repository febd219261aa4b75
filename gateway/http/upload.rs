//! Receiving an upload's body: who may hold an upload slot, how slowly a body may arrive, and
//! where it goes (memory for small declared sizes, a file under `state/incoming/` otherwise).
//!
//! Upload slots are shared two ways: a global number (`http.max_uploads`) and a share per
//! agency (`http.max_uploads_per_agency`), so one agency's slow or stuck senders cannot take
//! every slot from the others. A body must keep up a minimum average rate once its grace period
//! is over (`http.min_upload_bytes_per_sec` after `http.upload_grace_secs`): a client that
//! trickles a byte a minute holds its slot for seconds, not for the whole request timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, BodyDataStream, Bytes};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Http;

/// Why a body could not be received.
#[derive(Debug)]
pub enum UploadError {
    /// More than the agency's limit (bytes).
    TooLarge(u64),
    /// Nothing arrived for the idle timeout.
    Idle(Duration),
    /// The body arrived more slowly than the minimum rate allows.
    TooSlow {
        /// Bytes received.
        received: u64,
        /// Over this long.
        elapsed: Duration,
        /// The minimum, bytes per second.
        min_rate: u64,
    },
    /// The body is not valid HTTP framing (a malformed chunk size, oversized trailers...).
    Malformed(String),
    /// The connection broke off.
    Interrupted(String),
    /// Our side could not store it.
    Io(std::io::Error),
}

/// Why no upload slot was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// Every slot of the gateway is taken.
    Gateway(usize),
    /// The agency holds its whole share.
    Agency(usize),
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Busy::Gateway(n) => write!(
                f,
                "the gateway is receiving as many uploads as it may ({n}); retry shortly"
            ),
            Busy::Agency(n) => write!(
                f,
                "this agency already has {n} uploads in progress, its share of the gateway; retry when one has finished"
            ),
        }
    }
}

/// The upload slots, global and per agency.
pub struct UploadSlots {
    global: Arc<Semaphore>,
    total: usize,
    per_agency: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One slot, released on drop.
pub struct UploadSlot {
    _global: OwnedSemaphorePermit,
    agency: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.agency) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.agency);
            }
        }
    }
}

impl UploadSlots {
    /// `total` slots, at most `per_agency` of them for one agency.
    pub fn new(total: usize, per_agency: usize) -> UploadSlots {
        UploadSlots {
            global: Arc::new(Semaphore::new(total)),
            total,
            per_agency,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `agency`, or why not.
    pub fn try_acquire(&self, agency: &str) -> Result<UploadSlot, Busy> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mine = held.get(agency).copied().unwrap_or(0);
        if mine >= self.per_agency {
            return Err(Busy::Agency(self.per_agency));
        }
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Gateway(self.total))?;
        held.insert(agency.to_owned(), mine + 1);
        Ok(UploadSlot {
            _global: permit,
            agency: agency.to_owned(),
            held: self.held.clone(),
        })
    }
}

/// The pace a body must keep: something within the idle timeout, and on average at least the
/// minimum rate once the grace period is over.
#[derive(Clone, Copy)]
pub struct Pace {
    started: Instant,
    idle: Duration,
    grace: Duration,
    min_rate: u64,
}

impl Pace {
    /// From the `[http]` settings, starting now.
    pub fn new(http: &Http) -> Pace {
        Pace {
            started: Instant::now(),
            idle: http.idle_timeout,
            grace: http.upload_grace,
            min_rate: http.min_upload_rate,
        }
    }

    /// How long to wait for the next piece when `received` bytes have arrived so far, and
    /// whether running out of that time means "too slow" rather than "idle".
    fn wait(&self, received: u64) -> (Duration, bool) {
        let elapsed = self.started.elapsed();
        let idle = self.idle;
        if self.min_rate == 0 {
            return (idle, false);
        }
        // The average stays at the minimum until `received / min_rate` seconds in.
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        let limit = earned.max(self.grace);
        let left = limit.saturating_sub(elapsed);
        if left < idle {
            (left, true)
        } else {
            (idle, false)
        }
    }
}

/// The next piece of a body, within the pace.
async fn next_chunk(
    stream: &mut BodyDataStream,
    pace: &Pace,
    received: u64,
) -> Result<Option<Bytes>, UploadError> {
    let (wait, rate_bound) = pace.wait(received);
    let Ok(next) = tokio::time::timeout(wait, stream.next()).await else {
        return Err(if rate_bound {
            UploadError::TooSlow {
                received,
                elapsed: pace.started.elapsed(),
                min_rate: pace.min_rate,
            }
        } else {
            UploadError::Idle(pace.idle)
        });
    };
    next.transpose().map_err(body_error)
}

/// Sorts a body error: bad framing from the client (400) or a broken connection.
fn body_error(e: axum::Error) -> UploadError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{InvalidData, InvalidInput};
            if matches!(io.kind(), InvalidData | InvalidInput) {
                return UploadError::Malformed(io.to_string());
            }
        }
        source = s.source();
    }
    UploadError::Interrupted(e.to_string())
}

/// Reads a small body into memory (at most `max` bytes).
pub async fn read_body(
    stream: &mut BodyDataStream,
    declared: u64,
    max: u64,
    pace: Pace,
) -> Result<Vec<u8>, UploadError> {
    let mut out = Vec::with_capacity(usize::try_from(declared.min(max)).unwrap_or(0));
    while let Some(chunk) = next_chunk(stream, &pace, out.len() as u64).await? {
        if (out.len() + chunk.len()) as u64 > max {
            return Err(UploadError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Streams a body to `path` (at most `max` bytes).
pub async fn write_body(
    stream: &mut BodyDataStream,
    path: &Path,
    max: u64,
    pace: Pace,
) -> Result<u64, UploadError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(UploadError::Io)?;
    let mut n = 0u64;
    while let Some(chunk) = next_chunk(stream, &pace, n).await? {
        n += chunk.len() as u64;
        if n > max {
            return Err(UploadError::TooLarge(max));
        }
        file.write_all(&chunk).await.map_err(UploadError::Io)?;
    }
    file.flush().await.map_err(UploadError::Io)?;
    Ok(n)
}

/// A response that keeps `held` (the request's unread body) alive until the response has
/// been sent. Dropping an unread HTTP/2 request body earlier makes h2 reset the stream with
/// CANCEL, and clients never see the answer; dropped after it, the reset is NO_ERROR, which
/// RFC 9113 §8.1 provides for a server that answers before reading the whole request.
pub fn answer_holding<T: Send + Unpin + 'static>(
    response: axum::response::Response,
    held: T,
) -> axum::response::Response {
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(
        parts,
        Body::new(Holding {
            inner: body,
            _held: held,
        }),
    )
}

struct Holding<T> {
    inner: Body,
    _held: T,
}

impl<T: Unpin> hyper::body::Body for Holding<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// An upload's file, removed whatever happens.
pub struct Incoming(pub PathBuf);

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agency_gets_its_share_and_the_others_keep_theirs() {
        let slots = UploadSlots::new(4, 2);
        let a1 = slots.try_acquire("police").unwrap();
        let _a2 = slots.try_acquire("police").unwrap();
        assert_eq!(slots.try_acquire("police").err(), Some(Busy::Agency(2)));
        let _b1 = slots.try_acquire("housing").unwrap();
        let _b2 = slots.try_acquire("housing").unwrap();
        assert_eq!(slots.try_acquire("careers").err(), Some(Busy::Gateway(4)));
        drop(a1);
        assert!(slots.try_acquire("police").is_ok());
    }

    #[test]
    fn pace_allows_the_grace_period_then_the_minimum_average() {
        let pace = Pace {
            started: Instant::now(),
            idle: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            min_rate: 1000,
        };
        let (wait, rate_bound) = pace.wait(0);
        assert!(rate_bound && wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        // 30,000 bytes earn 30 s at 1,000 bytes/s.
        let (wait, rate_bound) = pace.wait(30_000);
        assert!(rate_bound && wait > Duration::from_secs(29), "{wait:?}");
        // Far ahead of the minimum: only the idle timeout applies.
        assert_eq!(pace.wait(10_000_000), (Duration::from_secs(60), false));
    }
}
