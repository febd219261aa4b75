//! Batch import: a folder of sealed files (a disc, a dump) from one agency, through the same
//! pipeline as every channel.
//!
//! The source may be read-only, so nothing is moved: each file's outcome goes to a report
//! folder, laid out like the watched folder's (`accepted/<name>.receipt.json` + `.p7s`,
//! `rejected/<name>.error.json` + `.error.txt`). A manifest of the SHA-256 of every sealed file
//! accepted (`state/imports/<agency>.accepted`) lets a second run skip them without opening
//! them again.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::folder::names;
use super::folder::outcome::error_text;
use crate::fsio;
use crate::message::AgencyName;
use crate::message::Channel;
use crate::pipeline::{Gateway, Outcome};

/// One file's result.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// Path relative to the imported folder.
    pub file: PathBuf,
    /// `accepted`, `duplicate`, `skipped`, `rejected`, `failed`.
    pub outcome: String,
    /// The gateway message id, when there is one.
    pub gateway_message_id: Option<String>,
    /// The rejection code, when rejected.
    pub code: Option<String>,
    /// Size of the sealed file.
    pub bytes: u64,
}

/// The files to import, with their sizes, and the special files found (never followed).
pub type Listing = (Vec<(PathBuf, u64)>, Vec<PathBuf>);

/// Every regular file under `dir` (recursively, sorted), skipping hidden names; symlinks and
/// other special files are reported, never followed.
pub fn list_files(dir: &Path) -> io::Result<Listing> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let meta = std::fs::symlink_metadata(e.path())?;
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                files.push((e.path(), meta.len()));
            } else {
                skipped.push(e.path());
            }
        }
    }
    files.sort();
    Ok((files, skipped))
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let (sha, _) = crate::fsio::Hashing::new(std::fs::File::open(path)?).finish()?;
    Ok(sha)
}

/// The manifest of sealed files already accepted for `agency`: SHA-256 → message id.
fn read_manifest(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (sha, id) = l.split_once(' ')?;
            Some((sha.to_owned(), id.trim().to_owned()))
        })
        .collect()
}

/// Imports `files` (from [`list_files`]) for `agency`, with `threads` workers; `progress` is
/// called after each file with its size. Outcome files go under `report`.
pub fn import(
    gateway: &Gateway,
    agency: &AgencyName,
    root: &Path,
    files: &[(PathBuf, u64)],
    report: &Path,
    threads: usize,
    progress: &(dyn Fn(&Imported) + Sync),
) -> io::Result<Vec<Imported>> {
    let manifest_path = gateway
        .config
        .state
        .join("imports")
        .join(format!("{agency}.accepted"));
    if let Some(d) = manifest_path.parent() {
        fsio::create_private_dir(d)?;
    }
    let seen = read_manifest(&manifest_path);
    let manifest = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&manifest_path)?,
    );
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((path, bytes)) = files.get(i) else {
                        break;
                    };
                    let r = one(
                        gateway, agency, root, path, *bytes, report, &seen, &manifest,
                    );
                    progress(&r);
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                }
            });
        }
    });
    let mut out = results.into_inner().unwrap_or_default();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn one(
    gateway: &Gateway,
    agency: &AgencyName,
    root: &Path,
    path: &Path,
    bytes: u64,
    report: &Path,
    seen: &HashMap<String, String>,
    manifest: &Mutex<std::fs::File>,
) -> Imported {
    let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let mut r = Imported {
        file: rel.clone(),
        outcome: "failed".into(),
        gateway_message_id: None,
        code: None,
        bytes,
    };
    let sha = match sha256_file(path) {
        Ok(s) => s,
        Err(e) => {
            r.code = Some(format!("unreadable: {e}"));
            return r;
        }
    };
    if let Some(id) = seen.get(&sha) {
        r.outcome = "skipped".into();
        r.gateway_message_id = Some(id.clone());
        return r;
    }
    let outcome = gateway.process_file(agency, Channel::Import, path);
    // Report names: the relative path flattened, sanitised (never a path from the disc).
    let name = names::sanitise(rel.as_os_str());
    let written = write_report(gateway, report, &name, &outcome);
    if let Err(e) = written {
        tracing::error!(file = %rel.display(), error = %e, "cannot write the import report");
    }
    match &outcome {
        Outcome::Forwarded { facts, .. } | Outcome::Accepted { facts } => {
            r.outcome = "accepted".into();
            r.gateway_message_id = Some(facts.gateway_message_id.clone());
        }
        Outcome::Duplicate {
            gateway_message_id, ..
        } => {
            r.outcome = if outcome.is_success() {
                "duplicate"
            } else {
                "rejected"
            }
            .into();
            r.gateway_message_id = Some(gateway_message_id.clone());
        }
        Outcome::Rejected {
            rejection,
            gateway_message_id,
            ..
        } => {
            r.outcome = "rejected".into();
            r.code = Some(rejection.code.as_str().to_owned());
            r.gateway_message_id = gateway_message_id.clone();
        }
    }
    if outcome.is_success()
        && let (Some(id), Ok(mut m)) = (&r.gateway_message_id, manifest.lock())
    {
        use std::io::Write;
        if let Err(e) = writeln!(m, "{sha} {id}").and_then(|_| m.sync_data()) {
            tracing::warn!(error = %e, "cannot record the import manifest");
        }
    }
    r
}

fn write_report(gateway: &Gateway, report: &Path, name: &str, outcome: &Outcome) -> io::Result<()> {
    if outcome.is_success() {
        let receipt = match outcome {
            Outcome::Forwarded { receipt, .. } => Some(receipt),
            Outcome::Duplicate { receipt, .. } => receipt.as_ref(),
            _ => None,
        };
        let dir = report.join("accepted");
        std::fs::create_dir_all(&dir)?;
        if let (Some(r), Some(fw)) = (receipt, gateway.forwarding.as_ref())
            && let Ok(signed) = fw.receipts.sign(r)
        {
            fsio::write_atomic(&dir, &format!("{name}.receipt.json"), &signed.json)?;
            fsio::write_atomic(&dir, &format!("{name}.receipt.p7s"), &signed.signature)?;
        }
        return Ok(());
    }
    let dir = report.join("rejected");
    std::fs::create_dir_all(&dir)?;
    let mut json = serde_json::to_value(outcome).map_err(io::Error::other)?;
    json["file"] = serde_json::Value::String(name.to_owned());
    let json = serde_json::to_vec_pretty(&json).map_err(io::Error::other)?;
    fsio::write_atomic(&dir, &format!("{name}.error.json"), &json)?;
    fsio::write_atomic(
        &dir,
        &format!("{name}.error.txt"),
        error_text(name, outcome).as_bytes(),
    )?;
    Ok(())
}
