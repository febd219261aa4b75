//! [`SignedDataReader`]: walks ContentInfo/SignedData from a stream, passes the eContent
//! octets through while hashing them, then buffers (bounded) the trailer.

use std::io::{self, Read};

use openssl::hash::Hasher;
use openssl::x509::X509;

use super::ber::{
    CLASS_CONTEXT, Header, INTEGER, MAX_DEPTH, OCTET_STRING, OID, Parser, SEQUENCE, SET, Source,
};
use super::error::CmsError;
use super::oid::{self, Oid};
use super::signer::{DigestAlgorithm, SignedTrailer, SignerInfo};

/// Bound on the bytes buffered after the content (certificates, CRLs, signer infos).
pub const MAX_TRAILER_BYTES: u64 = 1024 * 1024;
/// Bound on the number of certificates accepted.
pub const MAX_CERTIFICATES: usize = 32;
/// Bound on the number of SignerInfos accepted.
pub const MAX_SIGNERS: usize = 8;
/// Bound on the number of digest algorithms announced (each one is computed over the content).
pub const MAX_DIGEST_ALGORITHMS: usize = 4;
const MAX_OID_LEN: u64 = 64;
const MAX_DIGEST_SET_BYTES: u64 = 4096;

/// An open constructed element: `end` is its absolute end offset, `None` if indefinite.
struct Frame {
    end: Option<u64>,
}

enum State {
    Content,
    ContentDone,
    /// A previous read failed: the message, and the kind if it was the underlying reader's.
    Failed(String, Option<io::ErrorKind>),
}

/// Streaming reader of an attached CMS SignedData (RFC 5652).
///
/// `Read` yields exactly the eContent octets, whatever the chunking of the encoding, and
/// hashes them with every algorithm of `digestAlgorithms`. Memory use is bounded: the content
/// is never buffered, and the parts after it are capped (see [`MAX_TRAILER_BYTES`]).
pub struct SignedDataReader<R: Read> {
    src: Source<R>,
    frames: Vec<Frame>,
    /// `frames.len()` just inside the `[0] EXPLICIT` wrapper of the eContent.
    content_base: usize,
    /// Octets left in the current primitive OCTET STRING chunk.
    remaining: u64,
    state: State,
    content_type: Oid,
    hashers: Vec<(DigestAlgorithm, Hasher)>,
}

impl<R: Read> std::fmt::Debug for SignedDataReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedDataReader")
            .field("content_type", &self.content_type)
            .field("offset", &self.src.pos())
            .finish_non_exhaustive()
    }
}

impl<R: Read> SignedDataReader<R> {
    /// Parses ContentInfo/SignedData up to the first eContent octet (version,
    /// digestAlgorithms, eContentType).
    ///
    /// Fails with `not_signed` if the input is not a SignedData with attached content.
    pub fn new(inner: R) -> Result<Self, CmsError> {
        let mut r = SignedDataReader {
            src: Source::new(inner),
            frames: Vec::new(),
            content_base: 0,
            remaining: 0,
            state: State::Content,
            content_type: Oid::from_content(&[]),
            hashers: Vec::new(),
        };
        r.start_content_info()?;
        r.start_signed_data()?;
        Ok(r)
    }

    /// The eContentType; always id-data, since anything else is refused by [`Self::new`].
    pub fn content_type(&self) -> &Oid {
        &self.content_type
    }

    /// The digest algorithms being computed over the content.
    pub fn digest_algorithms(&self) -> Vec<DigestAlgorithm> {
        self.hashers.iter().map(|(a, _)| *a).collect()
    }

    /// Number of input bytes consumed so far.
    pub fn input_offset(&self) -> u64 {
        self.src.pos()
    }

    /// The outer ContentInfo header and OID: every failure here means "not a signed message",
    /// except the underlying reader's own errors.
    fn start_content_info(&mut self) -> Result<(), CmsError> {
        fn not_signed(reason: impl Into<String>) -> CmsError {
            CmsError::NotSigned {
                reason: reason.into(),
            }
        }
        let soften = |e: CmsError| match e {
            CmsError::Io(e) => CmsError::Io(e),
            _ => not_signed("it does not start with a CMS ContentInfo"),
        };
        let h = self
            .src
            .header()
            .map_err(soften)?
            .ok_or_else(|| not_signed("the file is empty"))?;
        if !h.is_universal(true, SEQUENCE) {
            return Err(not_signed("it does not start with a CMS ContentInfo"));
        }
        self.open(&h);
        let oid_h = self
            .next_child()
            .map_err(soften)?
            .ok_or_else(|| not_signed("the ContentInfo is empty"))?;
        if !oid_h.is_universal(false, OID) || oid_h.len.unwrap_or(u64::MAX) > MAX_OID_LEN {
            return Err(not_signed("it does not start with a CMS ContentInfo"));
        }
        let oid = self.read_value(&oid_h, MAX_OID_LEN).map_err(soften)?;
        if oid == oid::SIGNED_DATA {
            Ok(())
        } else if oid.starts_with(oid::PKCS7_PREFIX) {
            Err(not_signed(format!(
                "it is CMS content of type {}, not SignedData",
                oid::dotted(&oid)
            )))
        } else {
            Err(not_signed(format!(
                "unknown content type {}",
                oid::dotted(&oid)
            )))
        }
    }

    fn start_signed_data(&mut self) -> Result<(), CmsError> {
        let h = self.required_child("SignedData [0]")?;
        self.expect(&h, CLASS_CONTEXT, true, 0, "SignedData [0] wrapper")?;
        self.open(&h);
        let h = self.required_child("SignedData")?;
        self.expect_universal(&h, true, SEQUENCE, "SignedData SEQUENCE")?;
        self.open(&h);

        // The version is not interpreted: RFC 5652 readers must not reject on it alone.
        let h = self.required_child("version")?;
        self.expect_universal(&h, false, INTEGER, "version INTEGER")?;
        self.read_value(&h, 8)?;

        let h = self.required_child("digestAlgorithms")?;
        self.expect_universal(&h, true, SET, "digestAlgorithms SET")?;
        let base = self.src.pos() - h.raw().len() as u64;
        let mut buf = Vec::new();
        let mut budget = MAX_DIGEST_SET_BYTES;
        self.src.capture(&h, &mut buf, &mut budget, 0)?;
        self.check_within_parent()?;
        self.hashers = parse_digest_set(&buf, base)?;

        let h = self.required_child("encapContentInfo")?;
        self.expect_universal(&h, true, SEQUENCE, "encapContentInfo SEQUENCE")?;
        self.open(&h);
        let h = self.required_child("eContentType")?;
        self.expect_universal(&h, false, OID, "eContentType OID")?;
        let ct = self.read_value(&h, MAX_OID_LEN)?;
        self.content_type = Oid::from_content(&ct);
        if !self.content_type.is_data() {
            return Err(CmsError::UnsupportedContentType {
                oid: self.content_type.to_string(),
            });
        }
        let Some(h) = self.next_child()? else {
            return Err(CmsError::NotSigned {
                reason: "it is a detached signature: the content is not inside".into(),
            });
        };
        self.expect(&h, CLASS_CONTEXT, true, 0, "eContent [0] wrapper")?;
        self.open(&h);
        self.content_base = self.frames.len();
        let h = self.required_child("eContent")?;
        self.start_octet_chunk(&h)
    }

    /// Handles the header of an eContent OCTET STRING (or of one of its chunks).
    fn start_octet_chunk(&mut self, h: &Header) -> Result<(), CmsError> {
        let offset = self.src.pos();
        if h.class != 0 || h.number != OCTET_STRING {
            return Err(CmsError::malformed(
                offset,
                format!(
                    "expected an OCTET STRING in the content, found {}",
                    h.describe()
                ),
            ));
        }
        if h.constructed {
            if self.frames.len() - self.content_base >= MAX_DEPTH {
                return Err(CmsError::malformed(
                    offset,
                    "content chunks nested too deep",
                ));
            }
            self.open(h);
        } else {
            self.remaining = h.len.unwrap_or(0);
        }
        Ok(())
    }

    fn read_content(&mut self, out: &mut [u8]) -> Result<usize, CmsError> {
        loop {
            match &self.state {
                State::Failed(msg, kind) => {
                    return Err(match kind {
                        // Keep reporting an I/O failure as one, even on a later call.
                        Some(k) => CmsError::Io(io::Error::new(*k, msg.clone())),
                        None => CmsError::malformed(
                            self.src.pos(),
                            format!("reading already failed: {msg}"),
                        ),
                    });
                }
                State::ContentDone => return Ok(0),
                State::Content => {}
            }
            if out.is_empty() {
                return Ok(0);
            }
            if self.remaining > 0 {
                let want = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(out.len());
                let dst = out.get_mut(..want).unwrap_or(&mut []);
                let n = self.src.read_some(dst)?;
                if n == 0 {
                    return Err(CmsError::Truncated {
                        offset: self.src.pos(),
                    });
                }
                let got = dst.get(..n).unwrap_or(&[]);
                for (_, h) in &mut self.hashers {
                    h.update(got)
                        .map_err(|e| CmsError::crypto("hashing the content", e))?;
                }
                self.remaining -= n as u64;
                return Ok(n);
            }
            if self.frames.len() <= self.content_base {
                self.close("eContent [0] wrapper")?;
                self.close("encapContentInfo")?;
                self.state = State::ContentDone;
                return Ok(0);
            }
            match self.next_child()? {
                None => {
                    self.frames.pop();
                }
                Some(h) => self.start_octet_chunk(&h)?,
            }
        }
    }

    /// Drains any unread content, parses certificates, CRLs and signerInfos, and requires the
    /// end of the ContentInfo followed by the end of input.
    pub fn finish(mut self) -> Result<SignedTrailer, CmsError> {
        let mut sink = [0u8; 8192];
        while self.read_content(&mut sink)? > 0 {}

        let mut budget = MAX_TRAILER_BYTES;
        let mut h = self.required_child("signerInfos")?;
        let mut certs_raw = None;
        if h.is(CLASS_CONTEXT, true, 0) {
            let base = self.src.pos() - h.raw().len() as u64;
            let mut buf = Vec::new();
            self.src.capture(&h, &mut buf, &mut budget, 0)?;
            self.check_within_parent()?;
            certs_raw = Some((buf, base));
            h = self.required_child("signerInfos")?;
        }
        if h.is(CLASS_CONTEXT, true, 1) {
            // CRLs are not used (revocation is the trust store's business) but still bounded.
            let mut buf = Vec::new();
            self.src.capture(&h, &mut buf, &mut budget, 0)?;
            self.check_within_parent()?;
            h = self.required_child("signerInfos")?;
        }
        self.expect_universal(&h, true, SET, "signerInfos SET")?;
        let signers_base = self.src.pos() - h.raw().len() as u64;
        let mut signers_raw = Vec::new();
        self.src.capture(&h, &mut signers_raw, &mut budget, 0)?;
        self.check_within_parent()?;
        self.close("SignedData")?;
        self.close("SignedData [0] wrapper")?;
        self.close("ContentInfo")?;
        if !self.src.at_eof()? {
            return Err(CmsError::TrailingData {
                offset: self.src.pos(),
            });
        }

        let certificates = match &certs_raw {
            Some((buf, base)) => parse_certificates(buf, *base)?,
            None => Vec::new(),
        };
        let signers = parse_signer_set(&signers_raw, signers_base)?;
        let mut digests = Vec::with_capacity(self.hashers.len());
        for (alg, mut h) in self.hashers {
            let d = h
                .finish()
                .map_err(|e| CmsError::crypto("hashing the content", e))?;
            digests.push((alg, d.to_vec()));
        }
        Ok(SignedTrailer::new(
            self.content_type,
            certificates,
            digests,
            signers,
        ))
    }

    // --- structure helpers -------------------------------------------------------------

    /// The smallest definite end among the open elements.
    fn limit(&self) -> Option<u64> {
        self.frames.iter().filter_map(|f| f.end).min()
    }

    fn check_within_parent(&self) -> Result<(), CmsError> {
        match self.limit() {
            Some(l) if self.src.pos() > l => Err(CmsError::malformed(
                self.src.pos(),
                "element extends past its enclosing element",
            )),
            _ => Ok(()),
        }
    }

    fn open(&mut self, h: &Header) {
        let end = h.len.map(|l| self.src.pos().saturating_add(l));
        self.frames.push(Frame { end });
    }

    /// Reads the next child header of the innermost open element; `None` at its end (consuming
    /// the end-of-contents marker of an indefinite element).
    fn next_child(&mut self) -> Result<Option<Header>, CmsError> {
        let Some(top) = self.frames.last() else {
            return Err(CmsError::malformed(self.src.pos(), "no open element"));
        };
        let top_end = top.end;
        if top_end == Some(self.src.pos()) {
            return Ok(None);
        }
        let start = self.src.pos();
        let h = self
            .src
            .header()?
            .ok_or(CmsError::Truncated { offset: start })?;
        self.check_within_parent()?;
        if h.is_eoc() {
            if top_end.is_none() {
                return Ok(None);
            }
            return Err(CmsError::malformed(
                start,
                "end-of-contents marker inside a definite-length element",
            ));
        }
        if let (Some(len), Some(limit)) = (h.len, self.limit())
            && self.src.pos().checked_add(len).is_none_or(|e| e > limit)
        {
            return Err(CmsError::malformed(
                start,
                "element extends past its enclosing element",
            ));
        }
        Ok(Some(h))
    }

    fn required_child(&mut self, what: &str) -> Result<Header, CmsError> {
        let off = self.src.pos();
        self.next_child()?
            .ok_or_else(|| CmsError::malformed(off, format!("missing {what}")))
    }

    /// Requires the innermost element to be complete, then closes it.
    fn close(&mut self, what: &str) -> Result<(), CmsError> {
        let off = self.src.pos();
        if self.next_child()?.is_some() {
            return Err(CmsError::malformed(
                off,
                format!("unexpected data at the end of {what}"),
            ));
        }
        self.frames.pop();
        Ok(())
    }

    fn expect(
        &self,
        h: &Header,
        class: u8,
        constructed: bool,
        number: u32,
        what: &str,
    ) -> Result<(), CmsError> {
        if h.is(class, constructed, number) {
            Ok(())
        } else {
            Err(CmsError::malformed(
                self.src.pos(),
                format!("expected {what}, found {}", h.describe()),
            ))
        }
    }

    fn expect_universal(
        &self,
        h: &Header,
        constructed: bool,
        number: u32,
        what: &str,
    ) -> Result<(), CmsError> {
        self.expect(h, 0, constructed, number, what)
    }

    /// Reads the contents of a small primitive element.
    fn read_value(&mut self, h: &Header, max: u64) -> Result<Vec<u8>, CmsError> {
        let len = h.len.unwrap_or(u64::MAX);
        if len > max {
            return Err(CmsError::malformed(
                self.src.pos(),
                format!("{} is too long ({len} octets)", h.describe()),
            ));
        }
        let mut v = Vec::new();
        self.src.read_into_vec(len, &mut v)?;
        Ok(v)
    }
}

impl<R: Read> Read for SignedDataReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_content(buf).map_err(|e| {
            let kind = match &e {
                CmsError::Io(io) => Some(io.kind()),
                _ => None,
            };
            self.state = State::Failed(e.to_string(), kind);
            e.into_io()
        })
    }
}

fn parse_digest_set(buf: &[u8], base: u64) -> Result<Vec<(DigestAlgorithm, Hasher)>, CmsError> {
    let mut outer = Parser::new(buf, base);
    let set = outer.expect(true, SET, "digestAlgorithms")?;
    outer.finish("digestAlgorithms")?;
    let mut items = set.children();
    let mut out: Vec<(DigestAlgorithm, Hasher)> = Vec::new();
    while let Some(t) = items.next()? {
        let alg = DigestAlgorithm::from_algorithm_identifier(&t)?;
        if out.iter().any(|(a, _)| *a == alg) {
            continue;
        }
        if out.len() >= MAX_DIGEST_ALGORITHMS {
            return Err(CmsError::LimitExceeded {
                what: "number of digest algorithms",
                limit: MAX_DIGEST_ALGORITHMS as u64,
            });
        }
        let h = Hasher::new(alg.message_digest())
            .map_err(|e| CmsError::crypto("starting a digest", e))?;
        out.push((alg, h));
    }
    Ok(out)
}

fn parse_certificates(buf: &[u8], base: u64) -> Result<Vec<X509>, CmsError> {
    let mut outer = Parser::new(buf, base);
    let set = outer.required("certificates")?;
    let mut items = set.children();
    let mut out = Vec::new();
    while let Some(t) = items.next()? {
        // Other CertificateChoices (attribute certificates…) are tagged [0]..[3]; skip them.
        if !t.header.is_universal(true, SEQUENCE) {
            continue;
        }
        if out.len() >= MAX_CERTIFICATES {
            return Err(CmsError::LimitExceeded {
                what: "number of certificates",
                limit: MAX_CERTIFICATES as u64,
            });
        }
        let cert = parse_certificate(t.raw).map_err(|e| CmsError::Malformed {
            offset: t.offset,
            detail: format!("an included certificate cannot be parsed ({e})"),
        })?;
        out.push(cert);
    }
    Ok(out)
}

/// Agencies send the same few certificates with every payload, and OpenSSL 3 decodes a
/// certificate and its public key slowly (a quarter of `gateway check`'s time on small
/// messages): each thread keeps the distinct ones it parsed (by exact DER), up to
/// [`CERT_CACHE`]. Per thread, not shared: OpenSSL 3 locks a certificate's key while it is
/// used, and one shared copy made the server 25% slower under load than parsing every time.
fn parse_certificate(der: &[u8]) -> Result<X509, openssl::error::ErrorStack> {
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(Vec<u8>, X509)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let hit = CACHE.with_borrow(|cache| {
        cache
            .iter()
            .find(|(d, _)| d.as_slice() == der)
            .map(|(_, cert)| cert.clone())
    });
    if let Some(cert) = hit {
        return Ok(cert);
    }
    let cert = X509::from_der(der)?;
    if der.len() > CERT_CACHE_MAX_DER {
        return Ok(cert);
    }
    CACHE.with_borrow_mut(|cache| {
        if cache.len() >= CERT_CACHE {
            cache.remove(0);
        }
        cache.push((der.to_vec(), cert.clone()));
    });
    Ok(cert)
}

/// Distinct certificates kept parsed, per thread; with the certificate size cap below, a few
/// hundred KiB per processing thread at most, whatever senders put in their payloads.
const CERT_CACHE: usize = 16;
/// Larger certificates are parsed every time.
const CERT_CACHE_MAX_DER: usize = 8 * 1024;

fn parse_signer_set(buf: &[u8], base: u64) -> Result<Vec<SignerInfo>, CmsError> {
    let mut outer = Parser::new(buf, base);
    let set = outer.expect(true, SET, "signerInfos")?;
    let mut items = set.children();
    let mut out = Vec::new();
    while let Some(t) = items.next()? {
        if out.len() >= MAX_SIGNERS {
            return Err(CmsError::LimitExceeded {
                what: "number of signers",
                limit: MAX_SIGNERS as u64,
            });
        }
        out.push(SignerInfo::parse(&t)?);
    }
    Ok(out)
}
