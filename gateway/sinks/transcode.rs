//! `[outbox] transcode_to_utf8`: for a hub that wants UTF-8 only, the XML is written to the
//! queue as UTF-8 while it streams in (byte order mark dropped, the declaration's `encoding`
//! rewritten to UTF-8). The agency's signature covers the bytes as sent, so the metadata keeps
//! their SHA-256 and encoding, with the SHA-256 and size of the forwarded bytes beside them.
//! A UTF-8 document passes through untouched.

use std::io::{self, Write};

use xsd::xml::encoding::{Detected, declared_encoding, detect};

/// Bytes looked at to decide the encoding (as the reader does).
const HEAD: usize = 1024;

enum State {
    Sniffing,
    Pass,
    Decode {
        decoder: encoding_rs::Decoder,
        first: bool,
    },
}

/// A writer that transcodes what is written to it into UTF-8 for `out`.
pub struct ToUtf8<'a> {
    out: &'a mut (dyn Write + Send),
    head: Vec<u8>,
    state: State,
    hasher: openssl::sha::Sha256,
    written: u64,
    text: String,
}

/// What reached the queue when the document was transcoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcoded {
    /// SHA-256 (hex) of the forwarded UTF-8 bytes.
    pub sha256: String,
    /// Their size.
    pub size: u64,
}

impl<'a> ToUtf8<'a> {
    /// Transcodes into `out`.
    pub fn new(out: &'a mut (dyn Write + Send)) -> ToUtf8<'a> {
        ToUtf8 {
            out,
            head: Vec::with_capacity(HEAD),
            state: State::Sniffing,
            hasher: openssl::sha::Sha256::new(),
            written: 0,
            text: String::new(),
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn decide(&mut self) -> io::Result<()> {
        // A document the reader refuses is never published: what is written then is moot.
        let detected = detect(&self.head).unwrap_or(Detected::Utf8);
        let head = std::mem::take(&mut self.head);
        match detected {
            Detected::Utf8 => {
                self.state = State::Pass;
                self.emit(&head)
            }
            Detected::Decode(enc) => {
                self.state = State::Decode {
                    decoder: enc.new_decoder_without_bom_handling(),
                    first: true,
                };
                self.decode(&head, false)
            }
        }
    }

    fn decode(&mut self, bytes: &[u8], last: bool) -> io::Result<()> {
        let State::Decode { decoder, first } = &mut self.state else {
            return self.emit(bytes);
        };
        self.text.clear();
        self.text.reserve(
            decoder
                .max_utf8_buffer_length(bytes.len())
                .unwrap_or(bytes.len() * 3),
        );
        let _ = decoder.decode_to_string(bytes, &mut self.text, last);
        if std::mem::take(first) {
            let text = std::mem::take(&mut self.text);
            let text = utf8_declaration(text.strip_prefix('\u{FEFF}').unwrap_or(&text));
            return self.emit(text.as_bytes());
        }
        let text = std::mem::take(&mut self.text);
        let r = self.emit(text.as_bytes());
        self.text = text;
        r
    }

    /// Writes what is still held back; returns what was forwarded when it was transcoded.
    pub fn finish(mut self) -> io::Result<Option<Transcoded>> {
        if matches!(self.state, State::Sniffing) {
            self.decide()?;
        }
        let transcoded = matches!(self.state, State::Decode { .. });
        if transcoded {
            self.decode(&[], true)?;
        }
        self.out.flush()?;
        Ok(transcoded.then(|| Transcoded {
            sha256: hex::encode(self.hasher.finish()),
            size: self.written,
        }))
    }
}

impl Write for ToUtf8<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.state {
            State::Sniffing => {
                self.head.extend_from_slice(buf);
                if self.head.len() >= HEAD {
                    self.decide()?;
                }
            }
            State::Pass => self.emit(buf)?,
            State::Decode { .. } => self.decode(buf, false)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `text` with its XML declaration (if any) saying `encoding="UTF-8"`.
fn utf8_declaration(text: &str) -> String {
    match declared_encoding(text.as_bytes()) {
        Some(value) => format!(
            "{}UTF-8{}",
            text.get(..value.start).unwrap_or(""),
            text.get(value.end..).unwrap_or("")
        ),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_becomes_utf8_with_its_declaration_rewritten() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<a>é€</a>";
        let mut bytes = vec![0xFF, 0xFE];
        for u in doc.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let mut out = Vec::new();
        let mut w = ToUtf8::new(&mut out);
        for chunk in bytes.chunks(7) {
            w.write_all(chunk).unwrap();
        }
        let t = w.finish().unwrap().unwrap();
        let want = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>é€</a>";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(t.size, want.len() as u64);
        assert_eq!(t.sha256, hex::encode(openssl::sha::sha256(want.as_bytes())));
    }

    #[test]
    fn utf8_passes_through_untouched() {
        let doc = b"<?xml version='1.0'?><a>x</a>";
        let mut out = Vec::new();
        let mut w = ToUtf8::new(&mut out);
        w.write_all(doc).unwrap();
        assert!(w.finish().unwrap().is_none());
        assert_eq!(out, doc);
    }
}
