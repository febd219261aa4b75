//! The content tap: every byte of the signed content passes here once, on its way to the XSD
//! engine, into the SHA-256 of the XML and into the spool (the queue's staging file).

use std::io::{self, Read, Write};

use openssl::sha::Sha256;

/// Reads from `inner`, hashing and copying what passes; the first failure is kept so the
/// caller can classify it (the validator only sees a generic I/O error).
pub struct Tap<'a, R: Read> {
    inner: R,
    spool: &'a mut dyn Write,
    sha256: Sha256,
    size: u64,
    /// The first error of the content stream (decryption or CMS framing).
    pub read_error: Option<io::Error>,
    /// The first error writing the spool (our side: disk full...).
    pub spool_error: Option<io::Error>,
}

impl<'a, R: Read> Tap<'a, R> {
    /// A tap over `inner` copying into `spool`.
    pub fn new(inner: R, spool: &'a mut dyn Write) -> Self {
        Tap {
            inner,
            spool,
            sha256: Sha256::new(),
            size: 0,
            read_error: None,
            spool_error: None,
        }
    }

    /// Reads what is left, so the hash and the spool cover all the content.
    pub fn drain(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while self.read_error.is_none() {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    /// SHA-256 (hex) and size of everything that passed.
    pub fn finish(self) -> (String, u64, R) {
        (hex::encode(self.sha256.finish()), self.size, self.inner)
    }
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read_error.is_some() {
            return Err(io::Error::other("the content stream failed"));
        }
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.read_error = Some(e);
                    return Err(io::Error::other("the content stream failed"));
                }
            }
        };
        let got = buf.get(..n).unwrap_or_default();
        self.sha256.update(got);
        self.size += n as u64;
        if self.spool_error.is_none()
            && let Err(e) = self.spool.write_all(got)
        {
            self.spool_error = Some(e);
        }
        Ok(n)
    }
}
