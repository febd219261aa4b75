//! Quarantine for rejected messages: the payload exactly as received (still
//! sealed) plus a machine-readable reason, for an operator to inspect.
//!
//! Layout: `quarantine/<agency>/<id>.sealed` and `quarantine/<agency>/<id>.json`
//! ([`QuarantineRecord`]). Both are written durably (temporary file, fsync,
//! rename, fsync directory), the payload first and the JSON last, so a JSON
//! always has its payload. Agency names are validated with [`is_valid_agency`]
//! before being used as a path component; the file names come from the
//! [`MessageId`] only. The sender's original file name is kept, sanitised, for
//! display only.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::fsio;
use crate::store::{MessageId, timestamp};

/// Longest original file name kept for display, in characters.
const MAX_ORIGINAL_NAME: usize = 255;

/// Whether `name` is a valid agency name: `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn is_valid_agency(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Reduces a sender-supplied file name to something safe to *display*: its last
/// path component, with every character outside `[A-Za-z0-9._-]` replaced by
/// `_`, at most 255 characters. Never use the result as a path.
pub fn sanitise_original_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    last.chars()
        .take(MAX_ORIGINAL_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One validation problem, e.g. a schema violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// 1-based line in the XML, if known.
    pub line: Option<u64>,
    /// 1-based column in the XML, if known.
    pub column: Option<u64>,
    /// Path of the offending element or attribute, if known.
    pub path: Option<String>,
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// Why a message was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable rejection code (e.g. `schema`, `signature`, `duplicate`).
    pub code: String,
    /// Human-readable detail.
    pub detail: String,
    /// Individual problems, when there are any.
    pub violations: Option<Vec<Violation>>,
    /// When the message arrived.
    pub received_at: OffsetDateTime,
    /// The sender's file name, if any (sanitised before being stored).
    pub original_name: Option<String>,
}

/// The JSON file `quarantine/<agency>/<id>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// The gateway's id.
    pub gateway_message_id: MessageId,
    /// The sending agency.
    pub agency: String,
    /// Machine-readable rejection code.
    pub code: String,
    /// Human-readable detail.
    pub detail: String,
    /// Individual problems, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<Violation>>,
    /// When the message arrived (RFC 3339, UTC).
    #[serde(with = "timestamp::rfc3339")]
    pub received_at: OffsetDateTime,
    /// When it was quarantined (RFC 3339, UTC).
    #[serde(with = "timestamp::rfc3339")]
    pub quarantined_at: OffsetDateTime,
    /// The sanitised original file name, for display only.
    pub original_name: Option<String>,
    /// The payload file's name next to this JSON (`<id>.sealed`).
    pub sealed_file: String,
    /// Size of the sealed payload in bytes.
    pub size: u64,
}

/// Errors of the quarantine.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Reading the original or writing the quarantine failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The agency name is not acceptable as a path component.
    #[error("invalid agency name {0:?}")]
    InvalidAgency(String),
    /// This message is already quarantined.
    #[error("message {0} is already quarantined")]
    AlreadyKept(MessageId),
    /// The record could not be serialised.
    #[error("record json: {0}")]
    Json(#[from] serde_json::Error),
}

/// The quarantine directory.
#[derive(Clone, Debug)]
pub struct Quarantine {
    root: PathBuf,
}

impl Quarantine {
    /// Opens (creating with mode `0700` if needed) the quarantine at `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, QuarantineError> {
        let root = dir.as_ref().to_path_buf();
        fsio::create_private_dir(&root)?;
        Ok(Quarantine { root })
    }

    /// The quarantine directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Copies `original` (the payload as received) to `<agency>/<id>.sealed` and
    /// writes the reason to `<agency>/<id>.json`. Returns the `.sealed` path.
    pub fn keep(
        &self,
        id: &MessageId,
        agency: &str,
        original: impl Read,
        reason: &Rejection,
    ) -> Result<PathBuf, QuarantineError> {
        if !is_valid_agency(agency) {
            return Err(QuarantineError::InvalidAgency(
                agency.chars().take(80).collect(),
            ));
        }
        let dir = self.root.join(agency);
        fsio::create_private_dir(&dir)?;
        fsio::sync_dir(&self.root)?;
        let sealed_file = format!("{id}.sealed");
        let json_file = format!("{id}.json");
        if dir.join(&json_file).exists() || dir.join(&sealed_file).exists() {
            return Err(QuarantineError::AlreadyKept(id.clone()));
        }
        let (sealed_path, size) = fsio::write_atomic_from(&dir, &sealed_file, original)?;
        let record = QuarantineRecord {
            gateway_message_id: id.clone(),
            agency: agency.to_owned(),
            code: reason.code.clone(),
            detail: reason.detail.clone(),
            violations: reason.violations.clone(),
            received_at: reason.received_at,
            quarantined_at: timestamp::now(),
            original_name: reason.original_name.as_deref().map(sanitise_original_name),
            sealed_file,
            size,
        };
        let mut json = serde_json::to_vec_pretty(&record)?;
        json.push(b'\n');
        if let Err(e) = fsio::write_atomic(&dir, &json_file, &json) {
            // No payload without its reason.
            let _ = std::fs::remove_file(&sealed_path);
            return Err(e.into());
        }
        tracing::info!(id = %id, agency, code = %reason.code, "message quarantined");
        Ok(sealed_path)
    }

    /// Like [`Quarantine::keep`], reading the original from a file.
    pub fn keep_file(
        &self,
        id: &MessageId,
        agency: &str,
        original: &Path,
        reason: &Rejection,
    ) -> Result<PathBuf, QuarantineError> {
        if !is_valid_agency(agency) {
            return Err(QuarantineError::InvalidAgency(
                agency.chars().take(80).collect(),
            ));
        }
        self.keep(id, agency, File::open(original)?, reason)
    }

    /// Reads back the record of a quarantined message.
    pub fn record(
        &self,
        id: &MessageId,
        agency: &str,
    ) -> Result<QuarantineRecord, QuarantineError> {
        if !is_valid_agency(agency) {
            return Err(QuarantineError::InvalidAgency(
                agency.chars().take(80).collect(),
            ));
        }
        let bytes = std::fs::read(self.root.join(agency).join(format!("{id}.json")))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rejection() -> Rejection {
        Rejection {
            code: "schema".into(),
            detail: "2 schema violations".into(),
            violations: Some(vec![
                Violation {
                    line: Some(3),
                    column: Some(7),
                    path: Some("/Message/Header/Date".into()),
                    code: "invalid-value".into(),
                    message: "'2024-13-01' is not a valid xs:date".into(),
                },
                Violation {
                    line: None,
                    column: None,
                    path: None,
                    code: "missing-element".into(),
                    message: "Body is missing".into(),
                },
            ]),
            received_at: timestamp::parse("2024-05-01T10:00:00Z").unwrap(),
            original_name: Some("../../etc/passwd; rm -rf *.xml.age".into()),
        }
    }

    #[test]
    fn keep_stores_the_sealed_payload_and_a_machine_readable_reason() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path().join("quarantine")).unwrap();
        let id = MessageId::new();
        let sealed = b"age-encryption.org/v1\n-> X25519 ...\x00\xff binary";
        let path = q
            .keep(&id, "tax-office-7", &sealed[..], &rejection())
            .unwrap();

        let agency_dir = dir.path().join("quarantine/tax-office-7");
        assert_eq!(path, agency_dir.join(format!("{id}.sealed")));
        assert_eq!(fs::read(&path).unwrap(), sealed);

        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(agency_dir.join(format!("{id}.json"))).unwrap())
                .unwrap();
        assert_eq!(json["gateway_message_id"], id.as_str());
        assert_eq!(json["agency"], "tax-office-7");
        assert_eq!(json["code"], "schema");
        assert_eq!(json["detail"], "2 schema violations");
        assert_eq!(json["received_at"], "2024-05-01T10:00:00.000000Z");
        assert_eq!(json["original_name"], "passwd__rm_-rf__.xml.age");
        assert_eq!(json["sealed_file"], format!("{id}.sealed"));
        assert_eq!(json["size"], sealed.len() as u64);
        let v = &json["violations"];
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[0]["line"], 3);
        assert_eq!(v[0]["column"], 7);
        assert_eq!(v[0]["path"], "/Message/Header/Date");
        assert_eq!(v[0]["code"], "invalid-value");
        assert!(v[1]["line"].is_null());

        let record = q.record(&id, "tax-office-7").unwrap();
        assert_eq!(record.violations, rejection().violations);

        let mut names: Vec<_> = fs::read_dir(&agency_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![format!("{id}.json"), format!("{id}.sealed")]);
    }

    #[test]
    fn keep_file_copies_the_original_and_leaves_it_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path().join("q")).unwrap();
        let original = dir.path().join("incoming.age");
        fs::write(&original, b"sealed bytes").unwrap();
        let id = MessageId::new();
        let mut r = rejection();
        r.violations = None;
        r.original_name = None;
        let path = q.keep_file(&id, "agency1", &original, &r).unwrap();
        assert_eq!(fs::read(path).unwrap(), b"sealed bytes");
        assert!(original.exists());
        let json: serde_json::Value = serde_json::from_slice(
            &fs::read(dir.path().join(format!("q/agency1/{id}.json"))).unwrap(),
        )
        .unwrap();
        assert!(json.get("violations").is_none());
        assert!(json["original_name"].is_null());
    }

    #[test]
    fn keeping_the_same_message_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path()).unwrap();
        let id = MessageId::new();
        q.keep(&id, "a", &b"one"[..], &rejection()).unwrap();
        let err = q.keep(&id, "a", &b"two"[..], &rejection()).unwrap_err();
        assert!(matches!(err, QuarantineError::AlreadyKept(_)), "{err}");
        assert_eq!(
            fs::read(dir.path().join(format!("a/{id}.sealed"))).unwrap(),
            b"one"
        );
    }

    #[test]
    fn hostile_agency_names_are_rejected_before_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path().join("q")).unwrap();
        let long = "a".repeat(64);
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "/abs",
            "-lead",
            "Upper",
            "a b",
            "a.b",
            "a\0b",
            "ä",
            long.as_str(),
        ] {
            let err = q
                .keep(&MessageId::new(), bad, &b"x"[..], &rejection())
                .unwrap_err();
            assert!(matches!(err, QuarantineError::InvalidAgency(_)), "{bad:?}");
        }
        assert_eq!(fs::read_dir(dir.path().join("q")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn valid_agency_names_follow_the_pattern() {
        for good in ["a", "0", "tax-office-7", "a-", &"b".repeat(63)] {
            assert!(is_valid_agency(good), "{good:?}");
        }
    }

    #[test]
    fn original_names_are_sanitised_for_display() {
        assert_eq!(sanitise_original_name("C:\\in\\msg 1.xml"), "msg_1.xml");
        assert_eq!(sanitise_original_name("a/b/c\n.xml"), "c_.xml");
        assert_eq!(sanitise_original_name(".."), "..");
        assert_eq!(sanitise_original_name(&"x".repeat(400)).len(), 255);
    }
}
