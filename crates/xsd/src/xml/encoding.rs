//! Which encoding a document is in (XML 1.0 §4.3.3 and Appendix F): a byte order mark, or the
//! encoding its declaration names. UTF-8 is read as it is; UTF-16 (with a byte order mark) and
//! every encoding `encoding_rs` decodes are transcoded to UTF-8 as they stream into the
//! reader's window (`source::Input`), so everything after works on UTF-8 text.
//!
//! Note: `encoding_rs` follows the WHATWG Encoding Standard, where `ISO-8859-1` and `US-ASCII`
//! labels name windows-1252 (its superset: bytes 0x80-0x9F are `€`, curly quotes... instead of
//! C1 controls, which XML documents do not use).

use encoding_rs::Encoding;

use super::clip;

/// How the bytes of a document become UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// UTF-8 (or ASCII): read as it is.
    Utf8,
    /// Transcoded from this encoding.
    Decode(&'static Encoding),
}

/// Decides from the first bytes of a document (as many as are at hand; 4 KiB is plenty).
pub fn detect(head: &[u8]) -> Result<Detected, String> {
    match head {
        [0, 0, 0xFE, 0xFF, ..]
        | [0xFF, 0xFE, 0, 0, ..]
        | [0, 0, 0, 0x3C, ..]
        | [0x3C, 0, 0, 0, ..] => {
            return Err(
                "the document is in UTF-32, which is not supported: save it as UTF-8 or UTF-16"
                    .into(),
            );
        }
        [0x4C, 0x6F, 0xA7, 0x94, ..] => {
            return Err(
                "the document is in EBCDIC, which is not supported: convert it to UTF-8 (or UTF-16, or an ASCII-based encoding that its declaration names)"
                    .into(),
            );
        }
        [0xFE, 0xFF, ..] => return Ok(Detected::Decode(encoding_rs::UTF_16BE)),
        [0xFF, 0xFE, ..] => return Ok(Detected::Decode(encoding_rs::UTF_16LE)),
        [0, 0x3C, 0, _, ..] | [0x3C, 0, _, 0, ..] => {
            return Err(
                "the document looks like UTF-16 without a byte order mark: save it with one (the XML specification requires it for UTF-16)"
                    .into(),
            );
        }
        _ => {}
    }
    let (bom, rest) = match head.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        Some(rest) => (true, rest),
        None => (false, head),
    };
    let Some(label) = declared(rest) else {
        return Ok(Detected::Utf8);
    };
    let Some(enc) = Encoding::for_label(label.as_bytes()) else {
        return Err(format!(
            "encoding '{}' in the XML declaration is not an encoding name known to the gateway (such as UTF-8, UTF-16, ISO-8859-1, windows-1252, Shift_JIS): correct the declaration",
            clip(label)
        ));
    };
    if label.eq_ignore_ascii_case("utf-8") || label.eq_ignore_ascii_case("us-ascii") {
        // US-ASCII is UTF-8's subset: read as UTF-8, as before.
        return Ok(Detected::Utf8);
    }
    if bom {
        return Err(format!(
            "the document starts with a UTF-8 byte order mark but its declaration says encoding '{}': remove the mark or correct the declaration",
            clip(label)
        ));
    }
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        return Err(format!(
            "the declaration says encoding '{}' but the document has no UTF-16 byte order mark (it is not UTF-16, or was saved without the mark): correct the declaration or save it with the mark",
            clip(label)
        ));
    }
    if enc == encoding_rs::REPLACEMENT || enc == encoding_rs::X_USER_DEFINED {
        return Err(format!(
            "encoding '{}' is not supported: save the document as UTF-8",
            clip(label)
        ));
    }
    if enc == encoding_rs::UTF_8 {
        return Ok(Detected::Utf8);
    }
    Ok(Detected::Decode(enc))
}

/// Whether `label` in a (decoded) declaration agrees with how the document was decoded.
pub fn agrees(label: &str, detected: Detected) -> Result<(), String> {
    let named = Encoding::for_label(label.as_bytes());
    let ok = match detected {
        Detected::Utf8 => {
            label.eq_ignore_ascii_case("us-ascii") || named == Some(encoding_rs::UTF_8)
        }
        Detected::Decode(enc) if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE => {
            named.is_some_and(|n| n == encoding_rs::UTF_16LE || n == encoding_rs::UTF_16BE)
        }
        Detected::Decode(enc) => named == Some(enc),
    };
    if ok {
        return Ok(());
    }
    Err(match detected {
        Detected::Decode(enc) => format!(
            "the document is {} (by its byte order mark) but its declaration says encoding '{}': correct the declaration",
            enc.name(),
            clip(label)
        ),
        // The first KiB decides; a declaration seen only later cannot change the encoding.
        Detected::Utf8 => format!(
            "the declaration says encoding '{}', but the document was read as UTF-8 (no byte order mark, and no such declaration within its first 1024 bytes): start the document with the declaration",
            clip(label)
        ),
    })
}

/// The `encoding` of an XML declaration at the start of `bytes` (ASCII-compatible encodings).
fn declared(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes.get(declared_encoding(bytes)?)?).ok()
}

/// Where the `encoding` value of an XML declaration at the start of `bytes` is (within the
/// first KiB), for reading it, or for rewriting it when the document is transcoded.
pub fn declared_encoding(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    const PREFIX: &[u8] = b"<?xml";
    let rest = bytes.strip_prefix(PREFIX)?;
    if !rest
        .first()
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return None;
    }
    let decl = rest.get(..memchr::memmem::find(rest.get(..rest.len().min(1024))?, b"?>")?)?;
    let name = memchr::memmem::find(decl, b"encoding")?;
    let mut i = name + b"encoding".len();
    let skip_ws = |i: &mut usize| {
        while decl.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if decl.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    let quote = *decl.get(i).filter(|q| matches!(q, b'"' | b'\''))?;
    let start = i + 1;
    let len = memchr::memchr(quote, decl.get(start..)?)?;
    Some(PREFIX.len() + start..PREFIX.len() + start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_marks_and_declarations_decide() {
        assert_eq!(detect(b"<a/>"), Ok(Detected::Utf8));
        assert_eq!(detect(b"\xEF\xBB\xBF<a/>"), Ok(Detected::Utf8));
        assert_eq!(
            detect(b"<?xml version='1.0' encoding='utf-8'?><a/>"),
            Ok(Detected::Utf8)
        );
        assert_eq!(
            detect(b"\xFF\xFE<\x00"),
            Ok(Detected::Decode(encoding_rs::UTF_16LE))
        );
        assert_eq!(
            detect(b"\xFE\xFF\x00<"),
            Ok(Detected::Decode(encoding_rs::UTF_16BE))
        );
        assert_eq!(
            detect(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>"),
            Ok(Detected::Decode(encoding_rs::WINDOWS_1252))
        );
        assert_eq!(
            detect(b"<?xml version='1.0' encoding='Shift_JIS'?><a/>"),
            Ok(Detected::Decode(encoding_rs::SHIFT_JIS))
        );
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let e = |b: &[u8]| detect(b).unwrap_err();
        assert!(e(b"\x00\x00\xFE\xFF\x00\x00\x00<").contains("UTF-32"));
        assert!(e(b"\x4C\x6F\xA7\x94").contains("EBCDIC"));
        assert!(e(b"<\x00?\x00x\x00").contains("without a byte order mark"));
        assert!(e(b"<?xml version='1.0' encoding='klingon-7'?>").contains("not an encoding name"));
        assert!(
            e(b"\xEF\xBB\xBF<?xml version='1.0' encoding='windows-1252'?>")
                .contains("byte order mark")
        );
        assert!(
            e(b"<?xml version='1.0' encoding='UTF-16'?>").contains("no UTF-16 byte order mark")
        );
    }

    #[test]
    fn a_declaration_must_agree_with_the_byte_order_mark() {
        let le = Detected::Decode(encoding_rs::UTF_16LE);
        assert!(agrees("UTF-16", le).is_ok());
        assert!(agrees("utf-16le", le).is_ok());
        assert!(agrees("UTF-8", le).unwrap_err().contains("byte order mark"));
        assert!(agrees("ISO-8859-1", le).is_err());
    }
}
