//! The content tap: every byte of the signed content passes here once, on its way to the XSD
//! engine, into the SHA-256 of the XML and into the spool (the queue's staging file).
//!
//! Decryption, CMS framing, hashing and spooling run on a producer thread; validation reads
//! the chunks on the caller's thread. The stock pipeline `age -d | openssl cms | xmllint` gets
//! this overlap from running three processes; we get it with one bounded channel
//! ([`CHUNK`] × [`IN_FLIGHT`] bytes at most in memory).

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use openssl::sha::Sha256;

/// Bytes per chunk handed to the validator.
pub const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the threads.
pub const IN_FLIGHT: usize = 8;
/// Content up to this size is handled on the caller's thread, in one chunk.
pub const INLINE: usize = 64 * 1024;
/// The first chunk's size; chunks double up to [`CHUNK`], so a small message does not pay
/// for a large buffer.
const FIRST_CHUNK: usize = 16 * 1024;

/// What the producer saw.
pub struct Produced {
    /// SHA-256 (hex) of the content.
    pub sha256: String,
    /// Content size in bytes.
    pub size: u64,
    /// The first error of the content stream (decryption or CMS framing).
    pub read_error: Option<io::Error>,
    /// The first error writing the spool (our side: disk full...).
    pub spool_error: Option<io::Error>,
}

/// Reads `inner` to its end, hashing and spooling every byte and sending it to `tx` while
/// the receiver listens (once it hangs up, the rest is still read, hashed and spooled: the
/// signature covers all of it).
pub fn produce<R: Read>(
    mut inner: R,
    spool: &mut (dyn Write + Send),
    tx: SyncSender<Vec<u8>>,
) -> Produced {
    let mut sha = Sha256::new();
    let mut size = 0u64;
    let mut read_error = None;
    let mut spool_error = None;
    let mut listening = true;
    let mut want = FIRST_CHUNK;
    loop {
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        // Fill whole chunks: the age and CMS layers hand out small pieces.
        while filled < want {
            match inner.read(buf.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        buf.truncate(filled);
        if filled > 0 {
            sha.update(&buf);
            size += filled as u64;
            if spool_error.is_none()
                && let Err(e) = spool.write_all(&buf)
            {
                spool_error = Some(e);
            }
            if listening && tx.send(buf).is_err() {
                listening = false;
            }
        }
        if filled < want || read_error.is_some() {
            break;
        }
        want = (want * 2).min(CHUNK);
    }
    Produced {
        sha256: hex::encode(sha.finish()),
        size,
        read_error,
        spool_error,
    }
}

/// The validator's end of the channel.
pub struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    /// A bounded channel: the sender for [`produce`], the reader for the validator.
    pub fn channel() -> (SyncSender<Vec<u8>>, ChunkReader) {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        (
            tx,
            ChunkReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            },
        )
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.cur = next;
                    self.pos = 0;
                }
                // The producer is done (end of content, or it failed: it reports why).
                Err(_) => return Ok(0),
            }
        }
        let avail = self.cur.get(self.pos..).unwrap_or_default();
        let n = avail.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(avail.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}
