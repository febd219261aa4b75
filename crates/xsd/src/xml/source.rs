//! The reader's input window: bytes are taken from the `BufRead` in chunks of
//! at most [`CHUNK`] bytes, checked as UTF-8 once (a character split between
//! two chunks is carried over), and appended to a `String`, so that every
//! token is a `&str` slice of the window: no per-token copy or re-validation.
//!
//! The window holds the unconsumed part of the current token plus at most one
//! chunk; the tokeniser drops consumed bytes ([`Input::compact`]) before asking
//! for more, and bounds a single token by `max_token_bytes`.

use std::io::{BufRead, ErrorKind};

use super::chars::find_invalid_char;

/// Bytes taken from the underlying reader per read.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Why no more input can be delivered (reported once the buffered data is used up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InputError {
    Utf8,
    /// Bytes (hex) at this offset of the original input are not valid in the encoding.
    Decode {
        offset: u64,
        bytes: String,
        encoding: &'static str,
    },
    Io(String),
    Document,
}

pub(crate) struct Input<R> {
    inner: R,
    /// Validated input not yet dropped; `buf[0]` is at absolute offset `base`.
    pub buf: String,
    pub base: u64,
    /// Bytes taken from `inner`.
    total: u64,
    max_document: u64,
    /// The start of a UTF-8 sequence cut by a chunk boundary.
    carry: [u8; 4],
    carry_len: usize,
    eof: bool,
    pub error: Option<InputError>,
    /// Absolute offset of the first character that is not an XML `Char`.
    pub bad_char: Option<u64>,
    /// The first bytes, read ahead to decide the encoding; delivered before `inner`'s.
    head: Vec<u8>,
    head_at: usize,
    /// Transcodes to UTF-8 when the document is not UTF-8.
    decoder: Option<encoding_rs::Decoder>,
}

/// Length of the UTF-8 sequence that `lead` starts (0 for a continuation or invalid byte).
#[inline]
fn seq_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 0,
    }
}

/// The largest `k <= s.len()` such that `s[k..]` is the incomplete start of a
/// UTF-8 sequence (or `s.len()` when `s` ends on a character boundary).
#[inline]
fn complete_prefix(s: &[u8]) -> usize {
    let n = s.len();
    // Look back at most 3 bytes for the lead byte of the last sequence.
    for back in 1..=3.min(n) {
        let i = n - back;
        let b = s.get(i).copied().unwrap_or(0);
        if b & 0xC0 != 0x80 {
            let need = seq_len(b);
            return if need > back { i } else { n };
        }
    }
    n
}

impl<R: BufRead> Input<R> {
    pub(crate) fn new(inner: R, max_document: u64) -> Self {
        Input {
            inner,
            buf: String::new(),
            base: 0,
            total: 0,
            max_document,
            carry: [0; 4],
            carry_len: 0,
            eof: false,
            error: None,
            bad_char: None,
            head: Vec::new(),
            head_at: 0,
            decoder: None,
        }
    }

    /// The first `want` raw bytes of the input (fewer at its end), not yet delivered: for
    /// deciding the encoding.
    pub(crate) fn head(&mut self, want: usize) -> std::io::Result<&[u8]> {
        while self.head.len() < want {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            let n = avail.len().min(want - self.head.len());
            self.head.extend_from_slice(avail.get(..n).unwrap_or(&[]));
            self.inner.consume(n);
        }
        Ok(&self.head)
    }

    /// From now on the input is transcoded from `encoding` (before anything was delivered).
    pub(crate) fn decode_from(&mut self, encoding: &'static encoding_rs::Encoding) {
        // The byte order mark stays in the text, as for UTF-8, where the reader skips it.
        self.decoder = Some(encoding.new_decoder_without_bom_handling());
    }

    /// Drops `buf[..n]`.
    pub(crate) fn compact(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if n >= self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..n.min(self.buf.len()));
        }
        self.base = self.base.saturating_add(n as u64);
    }

    /// Appends more input to `buf`. Returns false at the end of the input or after an
    /// error (see `error`); the data appended before an error stays usable.
    pub(crate) fn read_more(&mut self) -> bool {
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK + 16);
        }
        loop {
            if self.eof || self.error.is_some() {
                return false;
            }
            let from_head = self.head_at < self.head.len();
            let avail: &[u8] = if from_head {
                self.head.get(self.head_at..).unwrap_or(&[])
            } else {
                match self.inner.fill_buf() {
                    Ok(a) => a,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.error = Some(InputError::Io(e.to_string()));
                        return false;
                    }
                }
            };
            if avail.is_empty() {
                self.eof = true;
                if self.carry_len > 0 {
                    self.error = Some(InputError::Utf8);
                }
                if let Some(dec) = self.decoder.as_mut() {
                    let before = self.buf.len();
                    self.buf.reserve(16);
                    let (result, _) =
                        dec.decode_to_string_without_replacement(&[], &mut self.buf, true);
                    if let encoding_rs::DecoderResult::Malformed(bad, _) = result {
                        self.error = Some(InputError::Decode {
                            offset: self.total.saturating_sub(u64::from(bad)),
                            bytes: "(the end of the input, inside a character)".into(),
                            encoding: dec.encoding().name(),
                        });
                    }
                    return self.buf.len() > before;
                }
                return false;
            }
            // Never take more than one byte past the document limit.
            let room = self
                .max_document
                .saturating_sub(self.total)
                .saturating_add(1);
            let n = avail
                .len()
                .min(CHUNK)
                .min(usize::try_from(room).unwrap_or(usize::MAX));
            let chunk = avail.get(..n).unwrap_or(&[]);
            let before = self.buf.len();
            if let Some(dec) = self.decoder.as_mut() {
                let room = dec
                    .max_utf8_buffer_length_without_replacement(chunk.len())
                    .unwrap_or(chunk.len().saturating_mul(3));
                self.buf.reserve(room);
                let (result, read) =
                    dec.decode_to_string_without_replacement(chunk, &mut self.buf, false);
                if let encoding_rs::DecoderResult::Malformed(bad, after) = result {
                    let end = read.saturating_sub(usize::from(after));
                    let start = end.saturating_sub(usize::from(bad));
                    let bytes = chunk
                        .get(start..end)
                        .unwrap_or(&[])
                        .iter()
                        .map(|b| format!("0x{b:02X}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    self.error = Some(InputError::Decode {
                        offset: self.total + start as u64,
                        bytes,
                        encoding: dec.encoding().name(),
                    });
                }
                if from_head {
                    self.head_at += read;
                } else {
                    self.inner.consume(read);
                }
                self.total = self.total.saturating_add(read as u64);
                if self.error.is_none() && self.total > self.max_document {
                    self.error = Some(InputError::Document);
                }
                if self.buf.len() > before {
                    if self.bad_char.is_none()
                        && let Some(off) = self.buf.get(before..).and_then(find_invalid_char)
                    {
                        self.bad_char = Some(self.base + (before + off) as u64);
                    }
                    return true;
                }
                continue;
            }
            let mut i = 0usize;
            let mut bad = false;
            if self.carry_len > 0 {
                let need = seq_len(self.carry[0]).max(1);
                while self.carry_len < need && i < chunk.len() {
                    if let (Some(dst), Some(&b)) =
                        (self.carry.get_mut(self.carry_len), chunk.get(i))
                    {
                        *dst = b;
                    }
                    self.carry_len += 1;
                    i += 1;
                }
                if self.carry_len >= need {
                    match std::str::from_utf8(self.carry.get(..need).unwrap_or(&[])) {
                        Ok(s) => self.buf.push_str(s),
                        Err(_) => bad = true,
                    }
                    self.carry_len = 0;
                }
            }
            if !bad && self.carry_len == 0 {
                let rest = chunk.get(i..).unwrap_or(&[]);
                let k = complete_prefix(rest);
                match std::str::from_utf8(rest.get(..k).unwrap_or(&[])) {
                    Ok(s) => {
                        self.buf.push_str(s);
                        for (j, &b) in rest.get(k..).unwrap_or(&[]).iter().enumerate() {
                            if let Some(d) = self.carry.get_mut(j) {
                                *d = b;
                            }
                        }
                        self.carry_len = rest.len() - k;
                    }
                    Err(e) => {
                        let ok = rest.get(..e.valid_up_to()).unwrap_or(&[]);
                        self.buf.push_str(std::str::from_utf8(ok).unwrap_or(""));
                        bad = true;
                    }
                }
            }
            if from_head {
                self.head_at += n;
            } else {
                self.inner.consume(n);
            }
            self.total = self.total.saturating_add(n as u64);
            if bad {
                self.error = Some(InputError::Utf8);
            } else if self.total > self.max_document {
                self.error = Some(InputError::Document);
            }
            if self.buf.len() > before {
                // Whole characters were appended, so a U+FFFE/U+FFFF is never cut.
                if self.bad_char.is_none()
                    && let Some(off) = self.buf.get(before..).and_then(find_invalid_char)
                {
                    self.bad_char = Some(self.base + (before + off) as u64);
                }
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_carried() {
        let text = "aé€𝄞b".repeat(50);
        for cap in 1..9 {
            let r = std::io::BufReader::with_capacity(cap, text.as_bytes());
            let mut inp = Input::new(r, u64::MAX);
            while inp.read_more() {}
            assert_eq!(inp.error, None);
            assert_eq!(inp.buf, text);
        }
    }

    #[test]
    fn invalid_utf8_keeps_the_valid_prefix() {
        let mut inp = Input::new(&b"abc\xC3\x28def"[..], u64::MAX);
        while inp.read_more() {}
        assert_eq!(inp.buf, "abc");
        assert_eq!(inp.error, Some(InputError::Utf8));
        let mut inp = Input::new(&b"abc\xE2\x82"[..], u64::MAX);
        while inp.read_more() {}
        assert_eq!(inp.buf, "abc");
        assert_eq!(inp.error, Some(InputError::Utf8));
    }
}
