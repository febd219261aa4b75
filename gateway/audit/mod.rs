//! The audit log: append-only, hash-chained JSON lines of every message outcome and every admin
//! action, fsynced record by record.
//!
//! Each record carries its sequence number, the SHA-256 of the previous record and its own hash
//! (SHA-256 of the previous hash and the record's canonical JSON without the `hash` field), so
//! an edit, a deletion, an insertion, a reordering or a truncation breaks the chain at a record
//! [`AuditLog::verify`] names. Appends from several processes (the server and admin commands)
//! are serialised by an exclusive lock on the log file. When the current file passes
//! [`ROTATE_AT`] bytes it is renamed `audit-<first seq>.log` and a new one continues the
//! chain; `verify` follows the chain across every file. The head (`audit.head`: last sequence
//! number and hash, rewritten and fsynced after each append) lets `verify` notice records cut
//! off the end, which a chain alone cannot show.
//!
//! Appends within one process are committed in groups: records queued while another thread
//! is writing go out together, with one fsync of the log and one of the head. Each `append`
//! still returns only once its own record is on disk.

mod shared;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A file is rotated once it is larger than this.
pub const ROTATE_AT: u64 = 64 << 20;
/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// File system.
    #[error("audit log {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
}

/// One record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// 1, 2, 3... across all files.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    /// `message` or `admin`.
    pub kind: String,
    /// Who: the agency (messages) or the local user running a command (admin).
    pub actor: String,
    /// What: an outcome (`forwarded`, `rejected`...) or a command (`agency cert add`...).
    pub action: String,
    /// What it applied to: a message id, an agency, a key id.
    pub subject: String,
    /// Everything else worth keeping (codes, fingerprints, hashes).
    pub details: Value,
    /// Hash of the previous record.
    pub prev: String,
    /// This record's hash.
    #[serde(default)]
    pub hash: String,
}

impl Record {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let body = serde_json::to_vec(&unhashed).unwrap_or_default();
        let mut h = openssl::sha::Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(&body);
        hex::encode(h.finish())
    }
}

/// The audit log in a folder (`state/audit/`), or one chain of the shared log in PostgreSQL
/// when instances share the ledger (see [`AuditLog::open_for`]).
#[derive(Debug, Clone)]
pub struct AuditLog {
    dir: PathBuf,
    group: std::sync::Arc<Appends>,
    shared: Option<std::sync::Arc<shared::Chain>>,
    /// The shared log's URL, for `verify`.
    shared_url: Option<String>,
}

/// A record waiting to be written.
#[derive(Debug)]
struct Entry {
    kind: String,
    actor: String,
    action: String,
    subject: String,
    details: Value,
}

/// Records queue up while one thread writes; the next writer takes them all.
#[derive(Debug, Default)]
struct Appends {
    queue: crate::group::Group<Entry, Result<Record, String>>,
    writer: std::sync::Mutex<()>,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> AuditError + '_ {
    move |error| AuditError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The user running this process, for admin records.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

impl AuditLog {
    /// The log in `dir` (created 0700 when missing).
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        crate::fsio::create_private_dir(dir).map_err(io_err(dir))?;
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            group: std::sync::Arc::default(),
            shared: None,
            shared_url: None,
        })
    }

    /// The log `config` calls for: the folder `state/audit/`, or, when the ledger is
    /// PostgreSQL, the shared log in that database, appending to the chain `chain` (a server:
    /// its own chain per run, `None`; admin commands: the one chain `admin`).
    pub fn open_for(
        config: &crate::config::Config,
        chain: Option<&str>,
    ) -> Result<AuditLog, AuditError> {
        let mut log = AuditLog::open(&config.audit_dir())?;
        if let crate::config::Ledger::Postgres { url_env, .. } = &config.ledger {
            let url = std::env::var(url_env).map_err(|_| AuditError::Io {
                path: format!("${url_env}").into(),
                error: io::Error::other(format!(
                    "the ledger is PostgreSQL but {url_env} (its URL) is not set"
                )),
            })?;
            let host = crate::store::host_name();
            let name = chain.map_or_else(
                || format!("serve@{host}/{}", uuid::Uuid::now_v7()),
                str::to_owned,
            );
            log.shared = Some(std::sync::Arc::new(shared::Chain::open(&url, name)?));
            log.shared_url = Some(url);
        }
        Ok(log)
    }

    fn current(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// Appends one record (fsynced before returning) and returns it.
    pub fn append(
        &self,
        kind: &str,
        actor: &str,
        action: &str,
        subject: &str,
        details: Value,
    ) -> Result<Record, AuditError> {
        let entry = Entry {
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            details,
        };
        let out = self.group.queue.submit(
            entry,
            || {
                self.group
                    .writer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            },
            |_, entries| match self.write_batch(entries.iter()) {
                Ok(records) => records.into_iter().map(Ok).collect(),
                Err(e) => {
                    let text = e.to_string();
                    entries.iter().map(|_| Err(text.clone())).collect()
                }
            },
            || Err(String::from("record not written")),
        );
        out.map_err(|e| self.batch_error(e))
    }

    fn batch_error(&self, message: String) -> AuditError {
        AuditError::Io {
            path: self.current(),
            error: io::Error::other(message),
        }
    }

    /// Writes `entries` in order, chained, with one fsync (or one transaction); returns
    /// their records.
    fn write_batch<'a>(
        &self,
        entries: impl Iterator<Item = &'a Entry>,
    ) -> Result<Vec<Record>, AuditError> {
        if let Some(chain) = &self.shared {
            let entries: Vec<&Entry> = entries.collect();
            return chain.append(&entries);
        }
        let path = self.current();
        let err = io_err(&path);
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(&err)?;
        // Other processes (admin commands) append too.
        file.lock().map_err(&err)?;
        let (seq, prev) = match last_record(&mut file).map_err(&err)? {
            Some(r) => (r.seq + 1, r.hash),
            None => self
                .last_of_rotated()?
                .map_or((1, GENESIS.to_owned()), |r| (r.seq + 1, r.hash)),
        };
        let records = chained(entries, seq, prev);
        let mut lines = Vec::new();
        for rec in &records {
            serde_json::to_writer(&mut lines, rec).map_err(|e| err(io::Error::other(e)))?;
            lines.push(b'\n');
        }
        let Some(last) = records.last() else {
            return Ok(records);
        };
        file.write_all(&lines).map_err(&err)?;
        file.sync_data().map_err(&err)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > ROTATE_AT {
            // Still under the lock: nobody appends to the old name after this rename.
            let first = first_seq(&path).unwrap_or(last.seq);
            let rotated = self.dir.join(format!("audit-{first:012}.log"));
            crate::fsio::rename_durable(&path, &rotated).map_err(&err)?;
        }
        self.write_head(last)?;
        let _ = file.unlock();
        Ok(records)
    }

    fn head(&self) -> PathBuf {
        self.dir.join("audit.head")
    }

    fn write_head(&self, rec: &Record) -> Result<(), AuditError> {
        use std::os::unix::fs::FileExt;
        let path = self.head();
        let err = io_err(&path);
        let line = format!("{} {}\n", rec.seq, rec.hash);
        // Rewritten in place rather than truncated: truncating freed and reallocated the file's
        // block for every group (the `openat` was 0.8% of the server's CPU under load), and the
        // line never gets shorter, as the sequence number only grows.
        let mut opts = OpenOptions::new();
        opts.write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let f = opts.open(&path).map_err(&err)?;
        f.write_all_at(line.as_bytes(), 0).map_err(&err)?;
        if f.metadata().map_err(&err)?.len() > line.len() as u64 {
            f.set_len(line.len() as u64).map_err(&err)?;
        }
        f.sync_data().map_err(&err)
    }

    fn files(&self) -> Result<Vec<PathBuf>, AuditError> {
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".log"))
            })
            .collect();
        rotated.sort();
        let cur = self.current();
        if cur.exists() {
            rotated.push(cur);
        }
        Ok(rotated)
    }

    fn last_of_rotated(&self) -> Result<Option<Record>, AuditError> {
        let files = self.files()?;
        let Some(last) = files.iter().rev().find(|p| **p != self.current()) else {
            return Ok(None);
        };
        let mut f = File::open(last).map_err(io_err(last))?;
        last_record(&mut f).map_err(io_err(last))
    }

    /// Checks the whole chain, every file in order (or, for the shared log, every chain in
    /// the database); see [`Verdict`].
    pub fn verify(&self) -> Result<Verdict, AuditError> {
        if let Some(url) = &self.shared_url {
            return shared::verify(url);
        }
        let mut prev = GENESIS.to_owned();
        let mut expect_seq = 1u64;
        let mut records = 0u64;
        let files = self.files()?;
        for path in &files {
            let f = File::open(path).map_err(io_err(path))?;
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let at = format!("{}:{}", path.display(), i + 1);
                let line = line.map_err(io_err(path))?;
                let bad = |why: String| {
                    Ok(Verdict::Broken {
                        at: at.clone(),
                        seq: expect_seq,
                        why,
                    })
                };
                let rec: Record = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(e) => return bad(format!("not a record ({e})")),
                };
                if rec.seq != expect_seq {
                    return bad(format!(
                        "sequence {} where {expect_seq} was expected (a record was deleted, inserted or moved)",
                        rec.seq
                    ));
                }
                if rec.prev != prev {
                    return bad("it does not follow the previous record (prev hash differs)".into());
                }
                if rec.compute_hash() != rec.hash {
                    return bad("its content was changed (hash differs)".into());
                }
                prev = rec.hash;
                expect_seq += 1;
                records += 1;
            }
        }
        if let Ok(head) = std::fs::read_to_string(self.head()) {
            let mut parts = head.split_whitespace();
            let seq: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let hash = parts.next().unwrap_or_default();
            if seq != records || (records > 0 && hash != prev) {
                return Ok(Verdict::Broken {
                    at: self.head().display().to_string(),
                    seq: records + 1,
                    why: format!(
                        "the log ends at record {records} but record {seq} was written (records were cut off the end)"
                    ),
                });
            }
        }
        Ok(Verdict::Intact {
            records,
            files: files.len(),
            last_hash: prev,
        })
    }
}

/// `entries` as records chained after (`seq` - 1, `prev`), hashed, timestamped now.
fn chained<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    mut seq: u64,
    mut prev: String,
) -> Vec<Record> {
    let mut records = Vec::new();
    for e in entries {
        let mut rec = Record {
            seq,
            time: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            details: e.details.clone(),
            prev,
            hash: String::new(),
        };
        rec.hash = rec.compute_hash();
        prev = rec.hash.clone();
        seq += 1;
        records.push(rec);
    }
    records
}

/// The result of [`AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every record is in place.
    Intact {
        /// Records checked.
        records: u64,
        /// Files read.
        files: usize,
        /// Hash of the last record (publish it elsewhere to detect truncation of the tail).
        last_hash: String,
    },
    /// Every chain of the shared log (PostgreSQL) is intact.
    #[serde(rename = "intact")]
    IntactChains {
        /// Records checked.
        records: u64,
        /// Chains checked (one per server run, and `admin`).
        chains: usize,
    },
    /// The first bad record.
    Broken {
        /// `file:line`.
        at: String,
        /// The sequence number expected there.
        seq: u64,
        /// What is wrong.
        why: String,
    },
}

/// The last complete record of `file` (read backwards from its end).
fn last_record(file: &mut File) -> io::Result<Option<Record>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        Read::by_ref(file).take(len - start).read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let mut lines = text.trim_end_matches('\n').rsplit('\n');
        if let Some(last) = lines.next()
            && (start == 0 || lines.next().is_some())
        {
            return Ok(serde_json::from_str(last).ok());
        }
        if start == 0 {
            return Ok(None);
        }
        window *= 4;
    }
}

fn first_seq(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let line = BufReader::new(f).lines().next()?.ok()?;
    serde_json::from_str::<Record>(&line).ok().map(|r| r.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..n {
            log.append(
                "admin",
                "tester",
                "agency add",
                &format!("a{i}"),
                json!({"i": i}),
            )
            .unwrap();
        }
        (dir, log)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(log.current())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write(log: &AuditLog, lines: &[String]) {
        std::fs::write(log.current(), lines.join("\n") + "\n").unwrap();
    }

    fn broken_at(log: &AuditLog) -> (u64, String) {
        match log.verify().unwrap() {
            Verdict::Broken { seq, why, .. } => (seq, why),
            v => panic!("tampering not detected: {v:?}"),
        }
    }

    #[test]
    fn untouched_log_verifies_and_continues_its_chain_across_opens() {
        let (dir, log) = log_with(5);
        let again = AuditLog::open(dir.path()).unwrap();
        let r = again
            .append("message", "police", "forwarded", "m1", json!({}))
            .unwrap();
        assert_eq!(r.seq, 6);
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Intact { records: 6, .. }
        ));
    }

    #[test]
    fn the_head_is_rewritten_whole_even_over_a_longer_one() {
        let (_d, log) = log_with(5);
        let head = std::fs::read_to_string(log.head()).unwrap();
        assert!(head.starts_with("5 "), "{head}");
        // A longer line than the next one (as a restored backup could leave).
        std::fs::write(log.head(), format!("123456789 {GENESIS}   \n")).unwrap();
        let r = log
            .append("message", "police", "forwarded", "m6", json!({}))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(log.head()).unwrap(),
            format!("6 {}\n", r.hash)
        );
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Intact { records: 6, .. }
        ));
    }

    #[test]
    fn edited_record_is_named() {
        let (_d, log) = log_with(5);
        let mut l = lines(&log);
        l[2] = l[2].replace("\"a2\"", "\"evil\"");
        write(&log, &l);
        let (seq, why) = broken_at(&log);
        assert_eq!(seq, 3);
        assert!(why.contains("changed"), "{why}");
    }

    #[test]
    fn deleted_inserted_and_reordered_records_are_named() {
        let (_d, log) = log_with(5);
        let orig = lines(&log);
        let mut l = orig.clone();
        l.remove(1);
        write(&log, &l);
        assert_eq!(broken_at(&log).0, 2);

        let mut l = orig.clone();
        l.insert(3, orig[1].clone());
        write(&log, &l);
        assert_eq!(broken_at(&log).0, 4);

        let mut l = orig.clone();
        l.swap(3, 4);
        write(&log, &l);
        assert_eq!(broken_at(&log).0, 4);
    }

    #[test]
    fn truncated_log_is_detected_whole_records_or_half_a_line() {
        let (_d, log) = log_with(5);
        let orig = lines(&log);
        write(&log, &orig[..3]);
        let (seq, why) = broken_at(&log);
        assert_eq!(seq, 4);
        assert!(why.contains("cut off"), "{why}");
        let mut text = orig.join("\n");
        text.truncate(text.len() - 20);
        std::fs::write(log.current(), text).unwrap();
        assert_eq!(broken_at(&log).0, 5);
    }

    #[test]
    fn concurrent_appends_are_grouped_into_one_intact_chain_each_getting_its_own_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let seqs: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let log = log.clone();
                    s.spawn(move || {
                        (0..50)
                            .map(|i| {
                                let r = log
                                    .append(
                                        "message",
                                        "a",
                                        "forwarded",
                                        &format!("{t}-{i}"),
                                        json!({}),
                                    )
                                    .unwrap();
                                assert_eq!(
                                    r.subject,
                                    format!("{t}-{i}"),
                                    "each caller gets its own record"
                                );
                                r.seq
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=400).collect::<Vec<u64>>());
        match log.verify().unwrap() {
            Verdict::Intact { records, .. } => assert_eq!(records, 400),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chain_continues_across_rotated_files() {
        let (dir, log) = log_with(3);
        std::fs::rename(log.current(), dir.path().join("audit-000000000001.log")).unwrap();
        log.append("admin", "t", "x", "y", json!({})).unwrap();
        match log.verify().unwrap() {
            Verdict::Intact { records, files, .. } => assert_eq!((records, files), (4, 2)),
            v => panic!("{v:?}"),
        }
        std::fs::remove_file(dir.path().join("audit-000000000001.log")).unwrap();
        assert_eq!(broken_at(&log).0, 1);
    }
}
