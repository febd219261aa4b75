//! One mail as the channel sees it: who answers go to, whether it may be answered at all, and
//! its sealed attachments.

use mail_parser::{MessageParser, MimeHeaders};

/// The first bytes of an age file, binary or armored.
const AGE_BINARY: &[u8] = b"age-encryption.org/v1\n";
const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// A mail, read.
#[derive(Debug)]
pub struct Letter {
    /// The `From:` address, lowercase (where the answer goes).
    pub from: Option<String>,
    /// Its `Message-ID` (without angle brackets).
    pub message_id: Option<String>,
    /// Its `References` (without angle brackets), for the answer's own.
    pub references: Vec<String>,
    /// Its subject.
    pub subject: String,
    /// Why it must not be answered (an auto-reply, a bounce, a list), if so.
    pub automatic: Option<&'static str>,
    /// Every attachment, in order.
    pub attachments: Vec<Attachment>,
}

/// One attachment.
#[derive(Debug)]
pub struct Attachment {
    /// Its file name as sent (or `attachment-N`).
    pub name: String,
    /// Its decoded content.
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// Whether it is an age file (any name): only those are opened.
    pub fn is_sealed(&self) -> bool {
        let start = self.bytes.trim_ascii_start();
        self.bytes.starts_with(AGE_BINARY) || start.starts_with(AGE_ARMOR)
    }
}

/// Reads a raw mail; `None` when it is not a mail at all.
pub fn read(raw: &[u8]) -> Option<Letter> {
    let m = MessageParser::default().parse(raw)?;
    let from = m
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'));
    let header = |name: &str| m.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    let references = m
        .references()
        .as_text_list()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .or_else(|| m.references().as_text().map(|s| vec![s.to_owned()]))
        .unwrap_or_default();
    let attachments = m
        .attachments()
        .enumerate()
        .map(|(i, part)| Attachment {
            name: part
                .attachment_name()
                .map(|n| crate::sources::folder::names::sanitise(std::ffi::OsStr::new(n)))
                .unwrap_or_else(|| format!("attachment-{}", i + 1)),
            bytes: part.contents().to_vec(),
        })
        .collect();
    Some(Letter {
        from,
        message_id: m.message_id().map(str::to_owned),
        references,
        subject: m.subject().unwrap_or_default().to_owned(),
        automatic: automatic(
            header("auto-submitted").as_deref(),
            header("return-path").as_deref(),
            header("precedence").as_deref(),
            m.header_raw("list-id").is_some() || m.header_raw("list-unsubscribe").is_some(),
        ),
        attachments,
    })
}

/// RFC 3834's rules for not answering: anything automatic (`Auto-Submitted` other than `no`),
/// a bounce (empty return path), bulk or list mail.
fn automatic(
    auto_submitted: Option<&str>,
    return_path: Option<&str>,
    precedence: Option<&str>,
    list: bool,
) -> Option<&'static str> {
    if auto_submitted.is_some_and(|v| !v.starts_with("no")) {
        return Some("it is automatic (Auto-Submitted)");
    }
    if return_path.is_some_and(|v| v == "<>" || v.is_empty()) {
        return Some("it is a bounce (empty return path)");
    }
    if precedence.is_some_and(|v| ["bulk", "list", "junk"].contains(&v)) {
        return Some("it is bulk or list mail (Precedence)");
    }
    if list {
        return Some("it comes from a mailing list (List-Id)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &str) -> Letter {
        let raw = format!(
            "From: Clerk <Clerk@School.Test>\r\nTo: hub@hub.test\r\nSubject: extract\r\nMessage-ID: <m1@school.test>\r\n{headers}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"../x.age\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOQ==\r\n--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"notes.csv\"\r\n\r\na,b\r\n--b--\r\n"
        );
        read(raw.as_bytes()).expect("a mail")
    }

    #[test]
    fn reads_sender_id_and_attachments() {
        let l = mail("");
        assert_eq!(l.from.as_deref(), Some("clerk@school.test"));
        assert_eq!(l.message_id.as_deref(), Some("m1@school.test"));
        assert_eq!(l.automatic, None);
        assert_eq!(l.attachments.len(), 2);
        assert!(l.attachments[0].is_sealed());
        assert!(
            !l.attachments[0].name.contains('/'),
            "{}",
            l.attachments[0].name
        );
        assert!(!l.attachments[1].is_sealed());
    }

    #[test]
    fn auto_replies_bounces_and_lists_are_never_answered() {
        assert!(mail("Auto-Submitted: auto-replied\r\n").automatic.is_some());
        assert!(mail("Auto-Submitted: no\r\n").automatic.is_none());
        assert!(mail("Return-Path: <>\r\n").automatic.is_some());
        assert!(mail("Precedence: bulk\r\n").automatic.is_some());
        assert!(mail("Precedence: list\r\n").automatic.is_some());
        assert!(mail("List-Id: <x.lists.test>\r\n").automatic.is_some());
        assert!(
            mail("Return-Path: <clerk@school.test>\r\n")
                .automatic
                .is_none()
        );
    }
}
