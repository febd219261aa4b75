//! Quarantine for rejected messages: the payload exactly as received (still
//! sealed) plus a machine-readable reason, for an operator to inspect.
//!
//! ```text
//! quarantine/<agency>/<id>.json        one record per rejection (QuarantineRecord)
//! quarantine/<agency>/<sha256>.sealed  the payload, once per distinct content
//! quarantine/.lock                     serialises writers and sweepers across processes
//! ```
//!
//! - **Once per content.** A sender resending the same rejected file five times leaves five
//!   records (each rejection is a fact of its own) pointing at one payload, named by its
//!   SHA-256. Payloads are kept per agency, so an agency's quota is its own bytes.
//! - **Bounded.** Every agency has a quota and all of them together another
//!   (`[quarantine] max_agency_bytes`, `max_total_bytes`), counting payloads once and the
//!   records. A new entry that does not fit makes room by dropping the oldest entries (of the
//!   agency, or of all agencies for the total) first; a payload larger than a quota is not
//!   kept at all. Entries older than `retention_days` are removed by [`Quarantine::sweep`]
//!   (at start-up and hourly while serving), which also re-applies the quotas and removes
//!   payloads no record points to. Every dropped entry is logged and audited
//!   (`quarantine dropped`, with its reason).
//! - **Durable.** Payload and record are written durably (temporary file, fsync, rename,
//!   fsync directory), the payload first and the record last, so a record always has its
//!   payload; a payload left without record by a crash is removed by the sweep after an hour.
//! - **Confined.** Agency names are validated with [`is_safe_name`] before being used as a
//!   path component; file names come from the [`MessageId`] and the hash only. The sender's
//!   original file name is kept, sanitised, for display only.
//!
//! The sizes are tracked in memory (read from the records at the first use, re-read by each
//! sweep), so keeping an entry does not list the quarantine. Entries another process (`gateway
//! check --forward`, `gateway import`) adds meanwhile are counted from the next sweep.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::AuditLog;
use crate::config::QuarantinePolicy;
use crate::fsio;
use crate::message::{MessageId, is_safe_name, timestamp};

mod review;

/// Longest original file name kept for display, in characters.
const MAX_ORIGINAL_NAME: usize = 255;
/// Payload and temporary files without a record are removed once this old: younger ones may
/// belong to an entry being written by another process.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
/// Suffix of payload files.
const PAYLOAD_SUFFIX: &str = ".sealed";

/// Moves a staged payload to `<dir>/<sha256>.sealed`, unless the same bytes are kept there
/// already (then this rejection points to them). Returns the file name, its path and whether
/// it was placed now.
fn place_payload(dir: &Path, tmp: &Path, sha256: &str) -> io::Result<(String, PathBuf, bool)> {
    let sealed_file = format!("{sha256}{PAYLOAD_SUFFIX}");
    let sealed_path = dir.join(&sealed_file);
    let fresh = !std::fs::symlink_metadata(&sealed_path).is_ok_and(|m| m.is_file());
    if fresh {
        std::fs::rename(tmp, &sealed_path).inspect_err(|_| drop(std::fs::remove_file(tmp)))?;
        fsio::sync_dir(dir)?;
    } else {
        std::fs::remove_file(tmp)?;
    }
    Ok((sealed_file, sealed_path, fresh))
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
    /// The payload file's name next to this JSON (`<sha256>.sealed`; `<id>.sealed` in
    /// quarantines written before payloads were kept once per content).
    pub sealed_file: String,
    /// SHA-256 of the sealed payload (hex); empty in records from before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Size of the sealed payload in bytes.
    pub size: u64,
}

/// Errors of the quarantine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The payload is larger than a quota: it was not kept (logged and audited as dropped).
    #[error(
        "the payload is larger than the quarantine quota of {limit} bytes and was not kept (raise `quarantine.max_agency_bytes` / `max_total_bytes`)"
    )]
    TooLarge {
        /// The smaller of the two quotas.
        limit: u64,
    },
}

/// Why an entry left the quarantine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    /// Older than `quarantine.retention_days`.
    Retention,
    /// Room was needed within `quarantine.max_agency_bytes`.
    AgencyQuota,
    /// Room was needed within `quarantine.max_total_bytes`.
    TotalQuota,
    /// The payload alone is larger than a quota; it was never kept.
    TooLarge,
}

impl DropReason {
    /// The stable name used in logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Retention => "retention",
            DropReason::AgencyQuota => "agency_quota",
            DropReason::TotalQuota => "total_quota",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// What a [`Quarantine::sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Entries removed because of their age.
    pub expired: usize,
    /// Entries removed to bring the quarantine within its quotas.
    pub evicted: usize,
    /// Payload and temporary files no record pointed to, removed.
    pub orphans: usize,
    /// Entries kept.
    pub entries: usize,
    /// Bytes kept (payloads once, and records).
    pub bytes: u64,
}

/// One record, as the size accounting sees it.
#[derive(Clone, Debug)]
struct Entry {
    agency: String,
    id: String,
    payload: String,
    sha256: String,
    code: String,
    record_bytes: u64,
}

/// Sizes of everything kept: entries oldest first, and payloads with their reference counts.
#[derive(Debug, Default)]
struct Index {
    /// (quarantined at, id) -> entry; the order is the eviction order.
    entries: BTreeMap<(OffsetDateTime, String), Entry>,
    /// (agency, payload file) -> (size, records pointing to it).
    payloads: HashMap<(String, String), (u64, u32)>,
    per_agency: HashMap<String, u64>,
    total: u64,
}

impl Index {
    fn add(&mut self, at: OffsetDateTime, e: Entry, payload_size: u64) {
        let key = (e.agency.clone(), e.payload.clone());
        let slot = self.payloads.entry(key).or_insert((payload_size, 0));
        let mut bytes = e.record_bytes;
        if slot.1 == 0 {
            bytes += slot.0;
        }
        slot.1 += 1;
        *self.per_agency.entry(e.agency.clone()).or_default() += bytes;
        self.total += bytes;
        self.entries.insert((at, e.id.clone()), e);
    }

    /// Takes an entry out; returns it and whether its payload is no longer used.
    fn remove(&mut self, key: &(OffsetDateTime, String)) -> Option<(Entry, bool)> {
        let e = self.entries.remove(key)?;
        let mut bytes = e.record_bytes;
        let pkey = (e.agency.clone(), e.payload.clone());
        let mut last = false;
        if let Some(slot) = self.payloads.get_mut(&pkey) {
            slot.1 = slot.1.saturating_sub(1);
            if slot.1 == 0 {
                bytes += slot.0;
                last = true;
                self.payloads.remove(&pkey);
            }
        }
        if let Some(a) = self.per_agency.get_mut(&e.agency) {
            *a = a.saturating_sub(bytes);
        }
        self.total = self.total.saturating_sub(bytes);
        Some((e, last))
    }

    fn agency_bytes(&self, agency: &str) -> u64 {
        self.per_agency.get(agency).copied().unwrap_or(0)
    }

    /// The oldest entry (of `agency`, when given) other than `except`.
    fn oldest(&self, agency: Option<&str>, except: &str) -> Option<(OffsetDateTime, String)> {
        self.entries
            .iter()
            .find(|(k, e)| k.1 != except && agency.is_none_or(|a| e.agency == a))
            .map(|(k, _)| k.clone())
    }
}

/// The quarantine directory.
#[derive(Clone, Debug)]
pub struct Quarantine {
    root: PathBuf,
    policy: QuarantinePolicy,
    audit: Option<AuditLog>,
    /// `None` until first needed.
    index: Arc<Mutex<Option<Index>>>,
}

impl Quarantine {
    /// Opens (creating with mode `0700` if needed) the quarantine at `dir`, with the default
    /// bounds and no audit trail.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, QuarantineError> {
        Quarantine::open_with(dir, QuarantinePolicy::default(), None)
    }

    /// Opens the quarantine at `dir` with `policy`; drops are recorded in `audit`.
    pub fn open_with(
        dir: impl AsRef<Path>,
        policy: QuarantinePolicy,
        audit: Option<AuditLog>,
    ) -> Result<Self, QuarantineError> {
        let root = dir.as_ref().to_path_buf();
        fsio::create_private_dir(&root)?;
        Ok(Quarantine {
            root,
            policy,
            audit,
            index: Arc::default(),
        })
    }

    /// The quarantine directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Copies `original` (the payload as received) to `<agency>/<sha256>.sealed`, unless that
    /// content is already kept, and writes the reason to `<agency>/<id>.json`; then drops the
    /// oldest entries as far as the quotas require. Returns the payload's path.
    pub fn keep(
        &self,
        id: &MessageId,
        agency: &str,
        original: impl Read,
        reason: &Rejection,
    ) -> Result<PathBuf, QuarantineError> {
        check_agency(agency)?;
        let dir = self.root.join(agency);
        fsio::create_private_dir(&dir)?;
        fsio::sync_dir(&self.root)?;
        let json_file = format!("{id}.json");
        if dir.join(&json_file).exists() || dir.join(format!("{id}.sealed")).exists() {
            return Err(QuarantineError::AlreadyKept(id.clone()));
        }
        // Written before taking the lock: a large payload does not hold up the others.
        let limit = self
            .policy
            .max_agency_bytes
            .min(self.policy.max_total_bytes);
        let staged = stage(&dir, original, limit)?;
        let Some((tmp, sha256, size)) = staged else {
            let detail = serde_json::json!({ "code": reason.code, "limit": limit });
            self.dropped(agency, id.as_str(), DropReason::TooLarge, detail);
            return Err(QuarantineError::TooLarge { limit });
        };
        let _lock = self.lock()?;
        let mut guard = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match guard.as_mut() {
            Some(i) => i,
            None => guard.insert(self.load_index()?),
        };
        let (sealed_file, sealed_path, fresh) = place_payload(&dir, &tmp, &sha256)?;
        let record = QuarantineRecord {
            gateway_message_id: id.clone(),
            agency: agency.to_owned(),
            code: reason.code.clone(),
            detail: reason.detail.clone(),
            violations: reason.violations.clone(),
            received_at: reason.received_at,
            quarantined_at: timestamp::now(),
            original_name: reason.original_name.as_deref().map(sanitise_original_name),
            sealed_file: sealed_file.clone(),
            sha256: sha256.clone(),
            size,
        };
        let mut json = serde_json::to_vec_pretty(&record)?;
        json.push(b'\n');
        if let Err(e) = fsio::write_atomic(&dir, &json_file, &json) {
            // No payload without its reason (unless another record uses it).
            if fresh {
                let _ = std::fs::remove_file(&sealed_path);
            }
            return Err(e.into());
        }
        index.add(
            record.quarantined_at,
            Entry {
                agency: agency.to_owned(),
                id: id.to_string(),
                payload: sealed_file,
                sha256,
                code: reason.code.clone(),
                record_bytes: json.len() as u64,
            },
            size,
        );
        tracing::info!(id = %id, agency, code = %reason.code, size, stored_once = !fresh, "message quarantined");
        self.enforce_quotas(index, Some(agency), id.as_str());
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
        check_agency(agency)?;
        self.keep(id, agency, File::open(original)?, reason)
    }

    /// Reads back the record of a quarantined message.
    pub fn record(
        &self,
        id: &MessageId,
        agency: &str,
    ) -> Result<QuarantineRecord, QuarantineError> {
        check_agency(agency)?;
        let bytes = std::fs::read(self.root.join(agency).join(format!("{id}.json")))?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Removes the entries older than the retention period, re-applies the quotas (they may
    /// have been lowered, or other processes added entries) and removes payload and temporary
    /// files no record points to. Re-reads every record: the in-memory sizes start afresh.
    pub fn sweep(&self) -> Result<Swept, QuarantineError> {
        self.sweep_at(timestamp::now())
    }

    /// [`Quarantine::sweep`] as if the time were `now`.
    pub fn sweep_at(&self, now: OffsetDateTime) -> Result<Swept, QuarantineError> {
        let _lock = self.lock()?;
        let mut guard = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let index = guard.insert(self.load_index()?);
        let mut swept = Swept::default();
        let retention =
            time::Duration::try_from(self.policy.retention).unwrap_or(time::Duration::MAX);
        let cutoff = now.checked_sub(retention);
        let expired: Vec<_> = index
            .entries
            .keys()
            .take_while(|(at, _)| cutoff.is_some_and(|c| *at < c))
            .cloned()
            .collect();
        for key in expired {
            if self.drop_entry(index, &key, DropReason::Retention) {
                swept.expired += 1;
            }
        }
        swept.evicted = self.enforce_quotas(index, None, "");
        swept.orphans = self.remove_orphans(index, now);
        swept.entries = index.entries.len();
        swept.bytes = index.total;
        Ok(swept)
    }

    /// Drops the oldest entries until `agency` (when given) and the total are within their
    /// quotas, never the entry `keep`. Returns how many were dropped.
    fn enforce_quotas(&self, index: &mut Index, agency: Option<&str>, keep: &str) -> usize {
        let mut dropped = 0;
        let agencies: Vec<String> = match agency {
            Some(a) => vec![a.to_owned()],
            None => index.per_agency.keys().cloned().collect(),
        };
        for a in agencies {
            while index.agency_bytes(&a) > self.policy.max_agency_bytes {
                let Some(key) = index.oldest(Some(&a), keep) else {
                    break;
                };
                if !self.drop_entry(index, &key, DropReason::AgencyQuota) {
                    break;
                }
                dropped += 1;
            }
        }
        while index.total > self.policy.max_total_bytes {
            let Some(key) = index.oldest(None, keep) else {
                break;
            };
            if !self.drop_entry(index, &key, DropReason::TotalQuota) {
                break;
            }
            dropped += 1;
        }
        dropped
    }

    /// Removes one entry's record (and its payload when no other record uses it), logs and
    /// audits it. False when the files could not be removed (the entry stays counted).
    fn drop_entry(
        &self,
        index: &mut Index,
        key: &(OffsetDateTime, String),
        why: DropReason,
    ) -> bool {
        let Some(e) = index.entries.get(key).cloned() else {
            return false;
        };
        let dir = self.root.join(&e.agency);
        if let Err(err) = remove_if_present(&dir.join(format!("{}.json", e.id))) {
            tracing::error!(id = %e.id, agency = %e.agency, error = %err, "cannot remove a quarantine record");
            return false;
        }
        let Some((e, last)) = index.remove(key) else {
            return false;
        };
        if last && let Err(err) = remove_if_present(&dir.join(&e.payload)) {
            tracing::warn!(agency = %e.agency, file = %e.payload, error = %err, "cannot remove a quarantined payload; the next sweep tries again");
        }
        let _ = fsio::sync_dir(&dir);
        let details = serde_json::json!({
            "code": e.code,
            "sha256": e.sha256,
            "quarantined_at": timestamp::format(&key.0),
            "payload_removed": last,
        });
        self.dropped(&e.agency, &e.id, why, details);
        true
    }

    /// Logs and audits one entry leaving the quarantine (or never entering it).
    fn dropped(&self, agency: &str, id: &str, why: DropReason, mut details: serde_json::Value) {
        if why == DropReason::Retention {
            tracing::info!(
                id,
                agency,
                reason = why.as_str(),
                "quarantine entry dropped"
            );
        } else {
            tracing::warn!(
                id,
                agency,
                reason = why.as_str(),
                "quarantine entry dropped"
            );
        }
        details["reason"] = serde_json::Value::String(why.as_str().to_owned());
        if let Some(audit) = &self.audit
            && let Err(e) = audit.append("message", agency, "quarantine dropped", id, details)
        {
            tracing::error!(id, error = %e, "the audit log could not record a quarantine drop");
        }
    }

    /// Payload files no record points to and temporary files, once older than
    /// [`ORPHAN_AGE`]: what a crash between the two writes of an entry leaves.
    fn remove_orphans(&self, index: &Index, now: OffsetDateTime) -> usize {
        let mut removed = 0;
        let Ok(agencies) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        for a in agencies.flatten() {
            let agency = a.file_name().to_string_lossy().into_owned();
            if !is_safe_name(&agency) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(a.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let candidate = name.starts_with(fsio::TEMP_PREFIX)
                    || (name.ends_with(PAYLOAD_SUFFIX)
                        && !index.payloads.contains_key(&(agency.clone(), name.clone())));
                let old = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| OffsetDateTime::from(t) + ORPHAN_AGE < now)
                    .unwrap_or(false);
                if candidate && old && std::fs::remove_file(f.path()).is_ok() {
                    tracing::info!(agency, file = %name, "removed a quarantine file no record points to");
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Reads every record.
    fn load_index(&self) -> Result<Index, QuarantineError> {
        let mut index = Index::default();
        let agencies = match std::fs::read_dir(&self.root) {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(index),
            Err(e) => return Err(e.into()),
        };
        for a in agencies {
            let a = a?;
            let agency = a.file_name().to_string_lossy().into_owned();
            if !is_safe_name(&agency) || !a.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for f in std::fs::read_dir(a.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".json") {
                    continue;
                }
                let read = std::fs::read(f.path())
                    .map_err(QuarantineError::from)
                    .and_then(|bytes| {
                        let r: QuarantineRecord = serde_json::from_slice(&bytes)?;
                        Ok((r, bytes.len() as u64))
                    });
                let (r, record_bytes) = match read {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(agency, file = %name, error = %e, "unreadable quarantine record; not counted");
                        continue;
                    }
                };
                if fsio::check_file_name(&r.sealed_file).is_err() {
                    continue;
                }
                let payload_size = std::fs::metadata(a.path().join(&r.sealed_file))
                    .map(|m| m.len())
                    .unwrap_or(0);
                let id = name.trim_end_matches(".json").to_owned();
                index.add(
                    r.quarantined_at,
                    Entry {
                        agency: agency.clone(),
                        id,
                        payload: r.sealed_file,
                        sha256: r.sha256,
                        code: r.code,
                        record_bytes,
                    },
                    payload_size,
                );
            }
        }
        Ok(index)
    }

    /// The exclusive lock on `quarantine/.lock`, held while entries are added or removed.
    fn lock(&self) -> Result<FileLock, QuarantineError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))?;
        file.lock()?;
        Ok(FileLock(file))
    }
}

/// Unlocks on drop.
struct FileLock(File);

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn check_agency(agency: &str) -> Result<(), QuarantineError> {
    if is_safe_name(agency) {
        Ok(())
    } else {
        Err(QuarantineError::InvalidAgency(
            agency.chars().take(80).collect(),
        ))
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Streams `original` into a fresh temporary file in `dir`, hashing it, and fsyncs it.
/// Returns the file, the SHA-256 and the size; `None` (and no file) when the payload is
/// larger than `limit`, found without reading more than `limit + 1` bytes.
fn stage(
    dir: &Path,
    original: impl Read,
    limit: u64,
) -> Result<Option<(PathBuf, String, u64)>, QuarantineError> {
    let tmp = dir.join(format!("{}{}", fsio::TEMP_PREFIX, uuid::Uuid::now_v7()));
    let result = (|| {
        let mut file = fsio::create_private(&tmp)?;
        let mut reader = original.take(limit.saturating_add(1));
        let mut hash = openssl::sha::Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            hash.update(chunk);
            file.write_all(chunk)?;
            size += n as u64;
        }
        if size > limit {
            return Ok(None);
        }
        file.sync_all()?;
        Ok(Some((hex::encode(hash.finish()), size)))
    })();
    match result {
        Ok(Some((sha, size))) => Ok(Some((tmp, sha, size))),
        Ok(None) => {
            std::fs::remove_file(&tmp)?;
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.into())
        }
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
        let sha = hex::encode(openssl::sha::sha256(sealed));
        assert_eq!(path, agency_dir.join(format!("{sha}.sealed")));
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
        assert_eq!(json["sealed_file"], format!("{sha}.sealed"));
        assert_eq!(json["sha256"], sha);
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
        assert_eq!(names, vec![format!("{id}.json"), format!("{sha}.sealed")]);
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
        assert_eq!(q.record(&id, "agency1").unwrap().size, 12);
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
        let sealed = q.record(&id, "a").unwrap().sealed_file;
        assert_eq!(fs::read(dir.path().join("a").join(sealed)).unwrap(), b"one");
        assert_eq!(payloads(&dir.path().join("a")).len(), 1);
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
        assert!(
            fs::read_dir(dir.path().join("q")).unwrap().all(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// The payload files in an agency's folder.
    fn payloads(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sealed"))
            .collect();
        v.sort();
        v
    }

    fn records(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().ends_with(".json")
            })
            .count()
    }

    fn policy(total: u64, agency: u64) -> QuarantinePolicy {
        QuarantinePolicy {
            max_total_bytes: total,
            max_agency_bytes: agency,
            ..QuarantinePolicy::default()
        }
    }

    /// The quarantine's own audit records: (action, subject, reason).
    fn drops(audit: &AuditLog, dir: &Path) -> Vec<(String, String, String)> {
        assert!(matches!(
            audit.verify().unwrap(),
            crate::audit::Verdict::Intact { .. }
        ));
        fs::read_to_string(dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<crate::audit::Record>(l).unwrap())
            .filter(|r| r.action == "quarantine dropped")
            .map(|r| {
                (
                    r.actor,
                    r.subject,
                    r.details["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn identical_rejected_payloads_are_stored_once_with_a_record_each() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path()).unwrap();
        let payload = vec![7u8; 20_000];
        let mut ids = Vec::new();
        for _ in 0..5 {
            let id = MessageId::new();
            q.keep(&id, "police", &payload[..], &rejection()).unwrap();
            ids.push(id);
        }
        let agency = dir.path().join("police");
        assert_eq!(payloads(&agency).len(), 1, "one payload file");
        assert_eq!(records(&agency), 5, "one record per rejection");
        let first = q.record(&ids[0], "police").unwrap();
        for id in &ids {
            let r = q.record(id, "police").unwrap();
            assert_eq!(r.sealed_file, first.sealed_file);
            assert_eq!(r.size, 20_000);
        }
        let swept = q.sweep().unwrap();
        assert_eq!(swept.entries, 5);
        assert!(
            swept.bytes < 2 * 20_000,
            "the payload is counted once: {swept:?}"
        );
    }

    #[test]
    fn over_the_agency_quota_the_oldest_entries_are_dropped_and_audited() {
        let dir = tempfile::tempdir().unwrap();
        let audit_dir = dir.path().join("audit");
        let audit = AuditLog::open(&audit_dir).unwrap();
        // Room for two 4,000-byte payloads with their records, not three.
        let q = Quarantine::open_with(
            dir.path().join("q"),
            policy(1 << 20, 10_000),
            Some(audit.clone()),
        )
        .unwrap();
        let ids: Vec<MessageId> = (0..3u8)
            .map(|n| {
                let id = MessageId::new();
                q.keep(&id, "police", &vec![n; 4000][..], &rejection())
                    .unwrap();
                id
            })
            .collect();
        // Another agency's entries are not touched by police's quota.
        let other = MessageId::new();
        q.keep(&other, "housing", &vec![9u8; 4000][..], &rejection())
            .unwrap();
        let police = dir.path().join("q/police");
        assert!(q.record(&ids[0], "police").is_err(), "the oldest is gone");
        assert!(q.record(&ids[1], "police").is_ok());
        assert!(q.record(&ids[2], "police").is_ok());
        assert!(q.record(&other, "housing").is_ok());
        assert_eq!(payloads(&police).len(), 2, "its payload went with it");
        assert_eq!(
            drops(&audit, &audit_dir),
            vec![(
                "police".to_owned(),
                ids[0].to_string(),
                "agency_quota".to_owned()
            )]
        );
    }

    #[test]
    fn over_the_total_quota_the_oldest_entry_of_any_agency_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open_with(dir.path(), policy(10_000, 10_000), None).unwrap();
        let a = MessageId::new();
        q.keep(&a, "housing", &vec![1u8; 4000][..], &rejection())
            .unwrap();
        let b = MessageId::new();
        q.keep(&b, "police", &vec![2u8; 4000][..], &rejection())
            .unwrap();
        let c = MessageId::new();
        q.keep(&c, "police", &vec![3u8; 4000][..], &rejection())
            .unwrap();
        assert!(q.record(&a, "housing").is_err());
        assert!(q.record(&b, "police").is_ok() && q.record(&c, "police").is_ok());
        assert!(payloads(&dir.path().join("housing")).is_empty());
    }

    #[test]
    fn a_payload_shared_by_several_records_stays_until_the_last_one_goes() {
        let dir = tempfile::tempdir().unwrap();
        let probe_dir = tempfile::tempdir().unwrap();
        let probe = Quarantine::open(probe_dir.path()).unwrap();
        let id = MessageId::new();
        probe.keep(&id, "police", &b"x"[..], &rejection()).unwrap();
        let record = fs::metadata(probe_dir.path().join(format!("police/{id}.json")))
            .unwrap()
            .len();
        // Three payloads and three and a half records: one of the four records must go.
        let quota = 3 * 4000 + 3 * record + record / 2;
        let q = Quarantine::open_with(dir.path(), policy(1 << 20, quota), None).unwrap();
        let shared = vec![5u8; 4000];
        let first = MessageId::new();
        q.keep(&first, "police", &shared[..], &rejection()).unwrap();
        let second = MessageId::new();
        q.keep(&second, "police", &shared[..], &rejection())
            .unwrap();
        // Two more distinct payloads: the first record must go, its payload must stay.
        for n in 0..2u8 {
            q.keep(
                &MessageId::new(),
                "police",
                &vec![n; 4000][..],
                &rejection(),
            )
            .unwrap();
        }
        assert!(q.record(&first, "police").is_err());
        let kept = q.record(&second, "police").unwrap();
        let bytes = fs::read(dir.path().join("police").join(kept.sealed_file)).unwrap();
        assert_eq!(bytes, shared);
    }

    #[test]
    fn a_payload_larger_than_the_quota_is_not_kept_and_the_drop_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let audit_dir = dir.path().join("audit");
        let audit = AuditLog::open(&audit_dir).unwrap();
        let q = Quarantine::open_with(
            dir.path().join("q"),
            policy(1 << 20, 5000),
            Some(audit.clone()),
        )
        .unwrap();
        let small = MessageId::new();
        q.keep(&small, "police", &[1u8; 100][..], &rejection())
            .unwrap();
        let big = MessageId::new();
        let err = q
            .keep(&big, "police", &vec![0u8; 6000][..], &rejection())
            .unwrap_err();
        assert!(
            matches!(err, QuarantineError::TooLarge { limit: 5000 }),
            "{err}"
        );
        assert!(q.record(&small, "police").is_ok(), "nothing evicted for it");
        let police = dir.path().join("q/police");
        assert_eq!(payloads(&police).len(), 1);
        assert!(
            fs::read_dir(&police).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp")),
            "no temporary file left"
        );
        assert_eq!(
            drops(&audit, &audit_dir),
            vec![("police".to_owned(), big.to_string(), "too_large".to_owned())]
        );
    }

    #[test]
    fn entries_older_than_the_retention_period_are_removed_by_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let audit_dir = dir.path().join("audit");
        let audit = AuditLog::open(&audit_dir).unwrap();
        let q = Quarantine::open_with(
            dir.path().join("q"),
            QuarantinePolicy::default(),
            Some(audit.clone()),
        )
        .unwrap();
        let old = MessageId::new();
        q.keep(&old, "police", &b"old"[..], &rejection()).unwrap();
        let young = MessageId::new();
        q.keep(&young, "police", &b"young"[..], &rejection())
            .unwrap();
        // Age the first record by 31 days, as if written then.
        let path = dir.path().join(format!("q/police/{old}.json"));
        let mut r: QuarantineRecord = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        r.quarantined_at -= time::Duration::days(31);
        fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();

        let swept = q.sweep().unwrap();
        assert_eq!(swept.expired, 1, "{swept:?}");
        assert!(q.record(&old, "police").is_err());
        assert!(q.record(&young, "police").is_ok());
        assert_eq!(payloads(&dir.path().join("q/police")).len(), 1);
        // 29 days on, the other is still kept; 31 days on, it goes too.
        let now = timestamp::now();
        assert_eq!(
            q.sweep_at(now + time::Duration::days(29)).unwrap().expired,
            0
        );
        assert_eq!(
            q.sweep_at(now + time::Duration::days(31)).unwrap().expired,
            1
        );
        let reasons: Vec<String> = drops(&audit, &audit_dir).into_iter().map(|d| d.2).collect();
        assert_eq!(reasons, ["retention", "retention"]);
    }

    #[test]
    fn the_sweep_removes_old_payloads_no_record_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path()).unwrap();
        let id = MessageId::new();
        q.keep(&id, "police", &b"kept"[..], &rejection()).unwrap();
        let police = dir.path().join("police");
        fs::write(police.join(format!("{}.sealed", "0".repeat(64))), b"orphan").unwrap();
        assert_eq!(q.sweep().unwrap().orphans, 0, "too young to be sure");
        let later = timestamp::now() + time::Duration::hours(2);
        assert_eq!(q.sweep_at(later).unwrap().orphans, 1);
        assert_eq!(payloads(&police).len(), 1);
        assert!(q.record(&id, "police").is_ok());
    }

    #[test]
    fn valid_agency_names_follow_the_pattern() {
        for good in ["a", "0", "tax-office-7", "a-", &"b".repeat(63)] {
            assert!(is_safe_name(good), "{good:?}");
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
