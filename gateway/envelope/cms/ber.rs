//! Minimal BER tag/length reader, streaming ([`Source`]) and in-memory ([`Parser`]), and the
//! one-element DER writer ([`tlv`]) the gateway's own receipts are encoded with.
//!
//! Only what CMS SignedData needs is accepted: low- and high-number tags (number below 2^28),
//! definite lengths of at most 8 octets, and the indefinite form for constructed encodings.
//! Indefinite nesting is bounded by [`MAX_DEPTH`] so a hostile input cannot recurse forever.

use std::io::{ErrorKind, Read};

use super::error::CmsError;

/// Maximum nesting of indefinite-length or constructed-string encodings we follow.
pub(crate) const MAX_DEPTH: usize = 16;

pub(crate) const CLASS_UNIVERSAL: u8 = 0;
pub(crate) const CLASS_CONTEXT: u8 = 2;

pub(crate) const INTEGER: u32 = 2;
pub(crate) const OCTET_STRING: u32 = 4;
pub(crate) const NULL: u32 = 5;
pub(crate) const OID: u32 = 6;
pub(crate) const SEQUENCE: u32 = 16;
pub(crate) const SET: u32 = 17;

/// One DER element: identifier octet `tag`, definite length, content.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 10);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let octets = len.to_be_bytes();
        let skip = octets.iter().take_while(|&&b| b == 0).count();
        let used = octets.get(skip..).unwrap_or_default();
        out.push(0x80 | used.len() as u8);
        out.extend_from_slice(used);
    }
    out.extend_from_slice(content);
    out
}

/// A decoded identifier + length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub class: u8,
    pub constructed: bool,
    pub number: u32,
    /// `None` for the indefinite form.
    pub len: Option<u64>,
    /// Whether the length used the shortest (DER) form.
    pub minimal_len: bool,
    /// Raw identifier + length octets (at most 5 + 9).
    raw: [u8; 16],
    raw_len: u8,
}

impl Header {
    pub fn raw(&self) -> &[u8] {
        self.raw.get(..usize::from(self.raw_len)).unwrap_or(&[])
    }

    pub fn is(&self, class: u8, constructed: bool, number: u32) -> bool {
        self.class == class && self.constructed == constructed && self.number == number
    }

    pub fn is_universal(&self, constructed: bool, number: u32) -> bool {
        self.is(CLASS_UNIVERSAL, constructed, number)
    }

    pub fn is_eoc(&self) -> bool {
        self.class == CLASS_UNIVERSAL && self.number == 0
    }

    pub fn describe(&self) -> String {
        let class = ["universal", "application", "context", "private"]
            .get(usize::from(self.class))
            .copied()
            .unwrap_or("?");
        format!(
            "{class} {} tag {}",
            if self.constructed {
                "constructed"
            } else {
                "primitive"
            },
            self.number
        )
    }
}

/// Decodes one header from `next` (which yields `None` at end of input). Returns `Ok(None)` only
/// if the input ends before the first octet.
pub(crate) fn decode_header(
    offset: u64,
    mut next: impl FnMut() -> Result<Option<u8>, CmsError>,
) -> Result<Option<Header>, CmsError> {
    let first = match next()? {
        None => return Ok(None),
        Some(b) => b,
    };
    let mut raw = [0u8; 16];
    raw[0] = first;
    let mut n: usize = 1;
    let mut take = |n: &mut usize| -> Result<u8, CmsError> {
        let b = next()?.ok_or(CmsError::Truncated {
            offset: offset + *n as u64,
        })?;
        if let Some(slot) = raw.get_mut(*n) {
            *slot = b;
        }
        *n += 1;
        Ok(b)
    };
    let class = first >> 6;
    let constructed = first & 0x20 != 0;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = long_tag_number(offset, || take(&mut n))?;
    }
    let (len, minimal_len) = length(offset, constructed, || take(&mut n))?;
    if class == CLASS_UNIVERSAL && number == 0 && (constructed || len != Some(0)) {
        return Err(CmsError::malformed(
            offset,
            "invalid end-of-contents marker",
        ));
    }
    Ok(Some(Header {
        class,
        constructed,
        number,
        len,
        minimal_len,
        raw,
        raw_len: n as u8,
    }))
}

/// A tag number in the high-tag-number form (the octets after a first octet of `0x1f`).
fn long_tag_number(
    offset: u64,
    mut take: impl FnMut() -> Result<u8, CmsError>,
) -> Result<u32, CmsError> {
    let mut number = 0u32;
    for i in 0.. {
        let b = take()?;
        if i == 0 && b == 0x80 {
            return Err(CmsError::malformed(offset, "non-minimal tag number"));
        }
        if i >= 4 {
            return Err(CmsError::malformed(offset, "tag number too large"));
        }
        number = (number << 7) | u32::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok(number)
}

/// The length octets: the length (`None` for the indefinite form) and whether it was encoded
/// minimally (DER requires it of signed attributes).
fn length(
    offset: u64,
    constructed: bool,
    mut take: impl FnMut() -> Result<u8, CmsError>,
) -> Result<(Option<u64>, bool), CmsError> {
    let l = take()?;
    if l < 0x80 {
        return Ok((Some(u64::from(l)), true));
    }
    if l == 0x80 {
        if !constructed {
            return Err(CmsError::malformed(
                offset,
                "indefinite length on a primitive encoding",
            ));
        }
        return Ok((None, true));
    }
    let count = l & 0x7f;
    if count > 8 {
        return Err(CmsError::malformed(
            offset,
            format!("length of {count} octets is too large"),
        ));
    }
    let mut v: u64 = 0;
    for _ in 0..count {
        v = (v << 8) | u64::from(take()?);
    }
    let needed = (64 - v.leading_zeros()).div_ceil(8);
    let minimal = v >= 0x80 && needed == u32::from(count);
    Ok((Some(v), minimal))
}

/// Buffered byte source over the untrusted reader that tracks the absolute offset.
pub(crate) struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    pos: u64,
    eof: bool,
}

impl<R: Read> Source<R> {
    pub fn new(inner: R) -> Self {
        Source {
            inner,
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
        }
    }

    /// Number of bytes consumed so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Makes at least one byte available; `false` at end of input. Underlying errors are kept
    /// as-is (only `Interrupted` is retried, as `Read` users are expected to do).
    fn fill(&mut self) -> Result<bool, CmsError> {
        if self.start < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.start = 0;
                    self.end = n.min(self.buf.len());
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(CmsError::Io(e)),
            }
        }
    }

    fn next_byte(&mut self) -> Result<Option<u8>, CmsError> {
        if !self.fill()? {
            return Ok(None);
        }
        let b = self.buf.get(self.start).copied();
        self.start += 1;
        self.pos += 1;
        Ok(b)
    }

    pub fn at_eof(&mut self) -> Result<bool, CmsError> {
        Ok(!self.fill()?)
    }

    /// Reads a header; `None` at a clean end of input.
    pub fn header(&mut self) -> Result<Option<Header>, CmsError> {
        let offset = self.pos;
        decode_header(offset, || self.next_byte())
    }

    /// Reads up to `out.len()` bytes; 0 only at end of input.
    pub fn read_some(&mut self, out: &mut [u8]) -> Result<usize, CmsError> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or(&[]);
        let n = avail.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.start += n;
        self.pos += n as u64;
        Ok(n)
    }

    /// Appends exactly `n` bytes to `v`.
    pub fn read_into_vec(&mut self, n: u64, v: &mut Vec<u8>) -> Result<(), CmsError> {
        let mut left = n;
        let mut chunk = [0u8; 4096];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
            let got = self.read_some(chunk.get_mut(..want).unwrap_or(&mut []))?;
            if got == 0 {
                return Err(CmsError::Truncated { offset: self.pos });
            }
            v.extend_from_slice(chunk.get(..got).unwrap_or(&[]));
            left -= got as u64;
        }
        Ok(())
    }

    /// Copies the remainder of an element whose header `h` was just read (raw header included)
    /// into `out`, following indefinite lengths. `budget` is decremented by every byte copied.
    pub fn capture(
        &mut self,
        h: &Header,
        out: &mut Vec<u8>,
        budget: &mut u64,
        depth: usize,
    ) -> Result<(), CmsError> {
        let limit = *budget;
        let spend = |n: u64, budget: &mut u64| -> Result<(), CmsError> {
            *budget = budget.checked_sub(n).ok_or(CmsError::LimitExceeded {
                what: "size of certificates, CRLs and signer infos",
                limit,
            })?;
            Ok(())
        };
        spend(h.raw().len() as u64, budget)?;
        out.extend_from_slice(h.raw());
        match h.len {
            Some(len) => {
                spend(len, budget)?;
                self.read_into_vec(len, out)
            }
            None => {
                if depth >= MAX_DEPTH {
                    return Err(CmsError::malformed(self.pos, "nesting too deep"));
                }
                loop {
                    let child = self
                        .header()?
                        .ok_or(CmsError::Truncated { offset: self.pos })?;
                    if child.is_eoc() {
                        spend(2, budget)?;
                        out.extend_from_slice(child.raw());
                        return Ok(());
                    }
                    self.capture(&child, out, budget, depth + 1)?;
                }
            }
        }
    }
}

/// One element parsed from memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub header: Header,
    /// The whole encoding (header, contents and end-of-contents marker).
    pub raw: &'a [u8],
    /// The contents, without the end-of-contents marker.
    pub content: &'a [u8],
    /// Absolute offset of the element, for messages.
    pub offset: u64,
}

impl<'a> Tlv<'a> {
    pub fn children(&self) -> Parser<'a> {
        Parser {
            data: self.content,
            pos: 0,
            base: self.offset + (self.header.raw().len() as u64),
        }
    }

    pub fn err(&self, detail: impl Into<String>) -> CmsError {
        CmsError::malformed(self.offset, detail)
    }
}

/// In-memory parser over buffered parts (digest algorithms, certificates, signer infos).
pub(crate) struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute offset of `data[0]` in the input, for messages.
    base: u64,
}

impl<'a> Parser<'a> {
    pub fn new(data: &'a [u8], base: u64) -> Self {
        Parser { data, pos: 0, base }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn header_at(&self, pos: usize) -> Result<Option<Header>, CmsError> {
        let mut i = pos;
        decode_header(self.base + pos as u64, || {
            let b = self.data.get(i).copied();
            i += 1;
            Ok(b)
        })
    }

    /// End (exclusive) of the element starting at `pos`, and its contents' range.
    fn element_end(&self, pos: usize, depth: usize) -> Result<(Header, usize, usize), CmsError> {
        let h = self.header_at(pos)?.ok_or(CmsError::Truncated {
            offset: self.base + pos as u64,
        })?;
        let body = pos + h.raw().len();
        match h.len {
            Some(len) => {
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| body.checked_add(l))
                    .filter(|&e| e <= self.data.len())
                    .ok_or(CmsError::Truncated {
                        offset: self.base + pos as u64,
                    })?;
                Ok((h, end, end))
            }
            None => {
                if depth >= MAX_DEPTH {
                    return Err(CmsError::malformed(
                        self.base + pos as u64,
                        "nesting too deep",
                    ));
                }
                let mut p = body;
                loop {
                    let (child, child_end, _) = self.element_end(p, depth + 1)?;
                    if child.is_eoc() {
                        return Ok((h, child_end, p));
                    }
                    p = child_end;
                }
            }
        }
    }

    /// The next element, or `None` when the data is exhausted.
    pub fn next(&mut self) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.is_empty() {
            return Ok(None);
        }
        let start = self.pos;
        let (header, end, content_end) = self.element_end(start, 0)?;
        if header.is_eoc() {
            return Err(CmsError::malformed(
                self.offset(),
                "unexpected end-of-contents marker",
            ));
        }
        let data = self.data;
        let raw = data.get(start..end).ok_or(CmsError::Truncated {
            offset: self.offset(),
        })?;
        let content =
            data.get(start + header.raw().len()..content_end)
                .ok_or(CmsError::Truncated {
                    offset: self.offset(),
                })?;
        let tlv = Tlv {
            header,
            raw,
            content,
            offset: self.offset(),
        };
        self.pos = end;
        Ok(Some(tlv))
    }

    /// The next element, which must exist.
    pub fn required(&mut self, what: &str) -> Result<Tlv<'a>, CmsError> {
        let off = self.offset();
        self.next()?
            .ok_or_else(|| CmsError::malformed(off, format!("missing {what}")))
    }

    /// The next element, which must be a universal element with the given tag number.
    pub fn expect(
        &mut self,
        constructed: bool,
        number: u32,
        what: &str,
    ) -> Result<Tlv<'a>, CmsError> {
        let t = self.required(what)?;
        if !t.header.is_universal(constructed, number) {
            return Err(t.err(format!("expected {what}, found {}", t.header.describe())));
        }
        Ok(t)
    }

    /// The next element if it has the given class/form/number, without consuming otherwise.
    pub fn optional(
        &mut self,
        class: u8,
        constructed: bool,
        number: u32,
    ) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.is_empty() {
            return Ok(None);
        }
        match self.header_at(self.pos)? {
            Some(h) if h.is(class, constructed, number) => self.next(),
            _ => Ok(None),
        }
    }

    /// Requires that nothing is left.
    pub fn finish(&self, what: &str) -> Result<(), CmsError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CmsError::malformed(
                self.offset(),
                format!("unexpected data after {what}"),
            ))
        }
    }
}
