//! Finds the root element before validation starts, so the catalog can pick the schema.
//!
//! The root start tag must begin within [`PEEK_LIMIT`] bytes (only the XML declaration,
//! comments and processing instructions may come before it). The bytes read are handed back
//! so the validator reads the document from its first byte: one pass, nothing re-read.

use std::io::{self, Read};

use xsd::QName;
use xsd::xml::{Event, XmlReader};

/// How far into the document the root element must start.
pub const PEEK_LIMIT: usize = 64 * 1024;

/// Why no root element was found.
#[derive(Debug)]
pub enum PeekError {
    /// The XML before the root is wrong (code, message, line, column).
    Xml(xsd::xml::XmlError),
    /// Reading the content failed (decryption or CMS framing).
    Io(io::Error),
}

/// Reads up to [`PEEK_LIMIT`] bytes and returns the root's name and the bytes consumed.
pub fn peek_root<R: Read>(
    input: &mut R,
    limits: &xsd::Limits,
) -> Result<(QName, Vec<u8>), PeekError> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut at_eof = false;
    loop {
        // Try with what we have once per chunk; the prolog is almost always tiny.
        match first_start(&buf, limits) {
            Ok(Some(root)) => return Ok((root, buf)),
            Ok(None) if at_eof || buf.len() >= PEEK_LIMIT => {
                return Err(PeekError::Xml(xsd::xml::XmlError {
                    kind: if at_eof {
                        xsd::xml::XmlErrorKind::Malformed
                    } else {
                        xsd::xml::XmlErrorKind::LimitExceeded
                    },
                    line: 1,
                    column: 1,
                    message: if at_eof {
                        "the document has no root element".into()
                    } else {
                        format!("the root element must start within the first {PEEK_LIMIT} bytes")
                    },
                    element: None,
                }));
            }
            Ok(None) => {}
            Err(e) if at_eof || e.kind == xsd::xml::XmlErrorKind::DoctypeForbidden => {
                return Err(PeekError::Xml(e));
            }
            Err(e) if buf.len() >= PEEK_LIMIT => return Err(PeekError::Xml(e)),
            Err(_) => {}
        }
        let n = loop {
            match input.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PeekError::Io(e)),
            }
        };
        if n == 0 {
            at_eof = true;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The first start tag in `buf`, `None` when `buf` ends before it.
fn first_start(buf: &[u8], limits: &xsd::Limits) -> Result<Option<QName>, xsd::xml::XmlError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut r = XmlReader::new(buf, limits.clone());
    match r.next() {
        Ok(Event::Start(tag)) => Ok(Some(QName::new(tag.namespace, tag.local))),
        Ok(Event::Eof) => Ok(None),
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_after_prolog_and_bytes_are_returned() {
        let doc = b"<?xml version='1.0'?><!-- c --><r:A xmlns:r='urn:x'><b/></r:A>";
        let (root, got) = peek_root(&mut &doc[..], &xsd::Limits::default()).unwrap();
        assert_eq!(root, QName::new(Some("urn:x"), "A"));
        assert!(doc.starts_with(&got));
    }

    #[test]
    fn doctype_is_refused_with_its_code() {
        let doc = b"<!DOCTYPE a [<!ENTITY x 'y'>]><a/>";
        match peek_root(&mut &doc[..], &xsd::Limits::default()) {
            Err(PeekError::Xml(e)) => assert_eq!(e.kind.code(), "dtd_forbidden"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_xml_is_malformed() {
        let doc = b"hello";
        match peek_root(&mut &doc[..], &xsd::Limits::default()) {
            Err(PeekError::Xml(e)) => assert_eq!(e.kind.code(), "xml_malformed"),
            other => panic!("{other:?}"),
        }
    }
}
