//! The outbox folder queue: `outbox/<queue>/{tmp,new,cur}`, maildir-style.
//!
//! * `tmp/` is private to the gateway: payloads are streamed there while being
//!   checked (`tmp/<id>.xml`, or `tmp/<id>.xml.age` when encrypting to the hub).
//! * `new/` is what the hub consumes. **The hub's signal is `new/<id>.json`**
//!   (the [`Metadata`]); it names the payload file, which is already complete
//!   and durable in `new/` when the JSON appears. The hub must ignore files that
//!   do not end in `.json`, and after processing move or delete the payload
//!   first and the JSON last (e.g. into `cur/`).
//! * `cur/` is for the hub's own bookkeeping; the gateway only creates it.
//!
//! Publishing order: finish the age stream, `fsync` the payload, write
//! `tmp/<id>.json` and `fsync` it, run the caller's barrier (the pipeline makes the
//! ledger's record of the message durable there), rename the payload into `new/`,
//! `fsync` `new/`, rename the JSON into `new/`, `fsync` `new/` again (concurrent
//! publications share these directory fsyncs; `tmp/` itself is not fsynced, as a
//! name a crash leaves there is only a leftover). A crash therefore never
//! leaves a JSON without its payload; at worst it leaves a payload without JSON
//! in `new/`, which the hub ignores (and files in `tmp/`, see below).
//!
//! On [`OutboxSink::open`], files in `tmp/` last modified more than
//! [`STALE_TMP_AFTER`] (one hour) ago are deleted: they are leftovers of a crash
//! or kill during staging (possibly plaintext), and no live staging goes that
//! long without writing. Long-running processes may call
//! [`OutboxSink::cleanup_tmp`] periodically.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{MessageInfo, Metadata, Sink, SinkError, Staging};
use crate::fsio;
use crate::message::Receipt;
use crate::message::{MessageId, timestamp};

/// Age after which files left in `tmp/` are removed by [`OutboxSink::open`].
pub const STALE_TMP_AFTER: Duration = Duration::from_secs(60 * 60);

const BUFFER: usize = 64 * 1024;

/// The outbox folder queue `outbox/<name>`.
pub struct OutboxSink {
    root: PathBuf,
    tmp: PathBuf,
    new: PathBuf,
    queue: String,
    hub_recipients: Vec<age::x25519::Recipient>,
    /// Group commit of `new/`: concurrent publications share its fsyncs.
    new_sync: std::sync::Arc<fsio::DirSync>,
}

impl std::fmt::Debug for OutboxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSink")
            .field("root", &self.root)
            .field("queue", &self.queue)
            .field("hub_recipients", &self.hub_recipients.len())
            .finish()
    }
}

impl OutboxSink {
    /// Opens the queue at `dir` (its last component is the queue name).
    ///
    /// Creates `tmp/`, `new/` and `cur/` (mode `0700`) if missing, checks that
    /// `tmp/` is writable and removes stale leftovers in `tmp/`. Payloads are
    /// written in plaintext until [`OutboxSink::with_hub_recipients`] is used.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SinkError> {
        let root = dir.as_ref().to_path_buf();
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| {
                SinkError::InvalidQueue(format!("no usable queue name in {}", root.display()))
            })?
            .to_owned();
        let tmp = root.join("tmp");
        let new = root.join("new");
        for d in [&tmp, &new, &root.join("cur")] {
            fsio::create_private_dir(d)?;
            if !fs::metadata(d)?.is_dir() {
                return Err(SinkError::InvalidQueue(format!(
                    "{} is not a directory",
                    d.display()
                )));
            }
        }
        // Writability probe.
        let probe = tmp.join(format!(".probe-{}", uuid::Uuid::now_v7()));
        let result = fsio::create_private(&probe).and_then(|mut f| {
            f.write_all(b"probe")?;
            f.sync_all()
        });
        let _ = fs::remove_file(&probe);
        result.map_err(|e| {
            SinkError::InvalidQueue(format!("{} is not writable: {e}", tmp.display()))
        })?;
        let sink = OutboxSink {
            root,
            new_sync: std::sync::Arc::new(fsio::DirSync::new(&new)),
            tmp,
            new,
            queue: format!("outbox/{name}"),
            hub_recipients: Vec::new(),
        };
        let removed = sink.cleanup_tmp(STALE_TMP_AFTER)?;
        if removed > 0 {
            tracing::warn!(queue = %sink.queue, removed, "removed stale files from tmp/");
        }
        Ok(sink)
    }

    /// Encrypts every payload to these hub recipients (age X25519); an empty
    /// list means plaintext.
    pub fn with_hub_recipients(mut self, recipients: Vec<age::x25519::Recipient>) -> Self {
        self.hub_recipients = recipients;
        self
    }

    /// The queue's name for receipts, `outbox/<name>`.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The queue's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether payloads are age-encrypted to the hub.
    pub fn encrypts_to_hub(&self) -> bool {
        !self.hub_recipients.is_empty()
    }

    /// The metadata of message `id` if it was published (in `new/`, or already taken into
    /// `cur/` by the hub). Used to settle a message whose processing a crash cut off after
    /// publication: the queue, not the ledger, is then the truth.
    pub fn published(&self, id: &MessageId) -> Result<Option<Metadata>, SinkError> {
        for dir in ["new", "cur"] {
            let path = self.root.join(dir).join(format!("{id}.json"));
            match fs::read(&path) {
                Ok(bytes) => return Ok(Some(serde_json::from_slice(&bytes)?)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Removes what a crash left of message `id` before its metadata was published: a
    /// payload in `new/` without its metadata, and its `tmp/` files.
    pub fn withdraw_unpublished(&self, id: &MessageId) -> Result<(), SinkError> {
        for (dir, name) in [
            (&self.new, format!("{id}.xml")),
            (&self.new, format!("{id}.xml.age")),
            (&self.tmp, format!("{id}.xml")),
            (&self.tmp, format!("{id}.xml.age")),
            (&self.tmp, format!("{id}.json")),
        ] {
            match fs::remove_file(dir.join(&name)) {
                Ok(()) => fsio::sync_dir(dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes regular files and symlinks in `tmp/` not modified for `older_than`.
    /// Returns how many were removed.
    pub fn cleanup_tmp(&self, older_than: Duration) -> Result<usize, SinkError> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let meta = match fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if meta.is_dir() {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age >= older_than {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if removed > 0 {
            fsio::sync_dir(&self.tmp)?;
        }
        Ok(removed)
    }

    /// Starts `tmp/<id>.xml` (or `tmp/<id>.xml.age`, encrypted on the fly) for
    /// message `id`. Write the XML into the returned [`Staged`], then publish or
    /// discard it.
    pub fn stage(&self, id: &MessageId) -> Result<Staged, SinkError> {
        self.stage_into(id, None)
    }

    /// Like [`OutboxSink::stage`], but the (possibly encrypted) bytes stay in memory until
    /// they exceed `limit`, and only then go to `tmp/`: for a sink that sends the bytes
    /// elsewhere, a small payload then costs no file at all (a file created, written, read
    /// back and removed). [`Staged::finish`] hands them over ([`Finished::body`]).
    pub fn stage_in_memory(&self, id: &MessageId, limit: usize) -> Result<Staged, SinkError> {
        self.stage_into(id, Some(limit))
    }

    fn stage_into(&self, id: &MessageId, memory: Option<usize>) -> Result<Staged, SinkError> {
        let encrypted = self.encrypts_to_hub();
        let payload_file = if encrypted {
            format!("{id}.xml.age")
        } else {
            format!("{id}.xml")
        };
        let tmp_payload = self.tmp.join(&payload_file);
        let out = match memory {
            Some(limit) => Spool::Memory {
                buf: Vec::new(),
                limit,
                path: tmp_payload,
            },
            None => Spool::File(BufWriter::with_capacity(
                BUFFER,
                fsio::create_private(&tmp_payload)?,
            )),
        };
        let mut staged = Staged {
            id: id.clone(),
            queue: self.queue.clone(),
            tmp_dir: self.tmp.clone(),
            new_dir: self.new.clone(),
            payload_file,
            writer: None,
            written: 0,
            encrypted,
            payload_in_new: false,
            done: false,
            new_sync: self.new_sync.clone(),
        };
        // From here on, dropping `staged` removes the temporary file.
        staged.writer = Some(if encrypted {
            let encryptor = age::Encryptor::with_recipients(
                self.hub_recipients.iter().map(|r| r as &dyn age::Recipient),
            )
            .map_err(|e| SinkError::Encrypt(e.to_string()))?;
            PayloadWriter::Age(encryptor.wrap_output(out)?)
        } else {
            PayloadWriter::Plain(out)
        });
        tracing::debug!(id = %id, queue = %self.queue, encrypted, "staging payload");
        Ok(staged)
    }
}

impl Sink for OutboxSink {
    fn queue(&self) -> &str {
        &self.queue
    }

    fn begin_staging(&self, id: &MessageId) -> Result<Box<dyn Staging>, SinkError> {
        Ok(Box::new(self.stage(id)?))
    }

    fn published(&self, id: &MessageId) -> Result<Option<Metadata>, SinkError> {
        OutboxSink::published(self, id)
    }

    fn withdraw_unpublished(&self, id: &MessageId) -> Result<(), SinkError> {
        OutboxSink::withdraw_unpublished(self, id)
    }

    fn depth(&self) -> Result<u64, SinkError> {
        let mut n = 0;
        for entry in fs::read_dir(&self.new)? {
            if entry?.path().extension().is_some_and(|x| x == "json") {
                n += 1;
            }
        }
        Ok(n)
    }

    fn not_ready(&self) -> Option<String> {
        (!fs::metadata(&self.new).is_ok_and(|m| m.is_dir()))
            .then(|| format!("the queue folder {} is missing", self.new.display()))
    }
}

enum PayloadWriter {
    Plain(Spool),
    Age(age::stream::StreamWriter<Spool>),
}

/// Where a staged payload's bytes go: the file in `tmp/`, or memory until they would exceed
/// `limit`, and then that file.
enum Spool {
    Memory {
        buf: Vec<u8>,
        limit: usize,
        path: PathBuf,
    },
    File(BufWriter<File>),
}

impl Spool {
    /// Moves bytes kept in memory to the file.
    fn spill(&mut self) -> io::Result<()> {
        if let Spool::Memory { buf, path, .. } = self {
            let mut file = BufWriter::with_capacity(BUFFER, fsio::create_private(path)?);
            file.write_all(buf)?;
            *self = Spool::File(file);
        }
        Ok(())
    }
}

impl Write for Spool {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Spool::Memory { buf, limit, .. } = self {
            let needed = buf.len() + data.len();
            if needed <= *limit {
                // Grown by doubling, but never past `limit`: that is the memory bound.
                if needed > buf.capacity() {
                    let target = needed.max(buf.capacity() * 2).min(*limit);
                    buf.reserve_exact(target - buf.len());
                }
                buf.extend_from_slice(data);
                return Ok(data.len());
            }
            self.spill()?;
        }
        match self {
            Spool::File(file) => file.write(data),
            Spool::Memory { .. } => Err(io::Error::other("staged payload did not spill")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Spool::File(file) => file.flush(),
            Spool::Memory { .. } => Ok(()),
        }
    }
}

impl PayloadWriter {
    fn inner(&mut self) -> &mut dyn Write {
        match self {
            PayloadWriter::Plain(w) => w,
            PayloadWriter::Age(w) => w,
        }
    }

    /// Finishes the stream; returns the bytes when they are still in memory, unless
    /// `durable`, which puts them in the file and syncs it.
    fn finish(self, durable: bool) -> io::Result<Option<Vec<u8>>> {
        let mut spool = match self {
            PayloadWriter::Plain(w) => w,
            PayloadWriter::Age(w) => w.finish()?,
        };
        if durable {
            spool.spill()?;
        }
        match spool {
            Spool::Memory { buf, .. } => Ok(Some(buf)),
            Spool::File(buffered) => {
                let file = buffered.into_inner().map_err(|e| e.into_error())?;
                if durable {
                    file.sync_all()?;
                }
                Ok(None)
            }
        }
    }
}

/// A payload being written into `tmp/`. Implements [`Write`].
///
/// Dropping it without [`Staged::publish`] removes the temporary file, like
/// [`Staged::discard`].
pub struct Staged {
    id: MessageId,
    queue: String,
    tmp_dir: PathBuf,
    new_dir: PathBuf,
    payload_file: String,
    writer: Option<PayloadWriter>,
    written: u64,
    encrypted: bool,
    payload_in_new: bool,
    done: bool,
    new_sync: std::sync::Arc<fsio::DirSync>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("payload_file", &self.payload_file)
            .field("written", &self.written)
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

/// A payload completed in `tmp/` by [`Staged::finish`]; dropping it removes the file.
#[derive(Debug)]
pub struct Finished {
    staged: Staged,
    metadata: Metadata,
    /// The bytes, when they were kept in memory ([`OutboxSink::stage_in_memory`]).
    body: Option<Vec<u8>>,
}

impl Finished {
    /// The payload's file in `tmp/` (absent when [`Finished::body`] has the bytes).
    pub fn path(&self) -> PathBuf {
        self.staged.tmp_payload()
    }

    /// The forwarded bytes, when they were kept in memory rather than in [`Finished::path`].
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// The metadata the hub is given with it.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// How many bytes are forwarded (plaintext, or their age encryption).
    pub fn size(&self) -> io::Result<u64> {
        match &self.body {
            Some(body) => Ok(body.len() as u64),
            None => Ok(fs::metadata(self.path())?.len()),
        }
    }
}

/// The outcome of [`Staged::publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `new/<id>.xml` or `new/<id>.xml.age`.
    pub payload_path: PathBuf,
    /// `new/<id>.json`.
    pub metadata_path: PathBuf,
    /// What was written to `metadata_path`.
    pub metadata: Metadata,
    /// The receipt for the agency.
    pub receipt: Receipt,
}

impl Staged {
    /// The message this payload belongs to.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// Plaintext bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The payload's file name (`<id>.xml` or `<id>.xml.age`).
    pub fn payload_file(&self) -> &str {
        &self.payload_file
    }

    /// Completes the payload and publishes it to `new/` (see the module docs for
    /// the order of operations). `info` must name the staged id, and its size must
    /// equal the bytes written. On error nothing is left in `tmp/` or `new/`.
    pub fn publish(self, info: &MessageInfo) -> Result<Published, SinkError> {
        self.publish_after(info, || Ok(()))
    }

    /// [`Staged::publish`], running `ready` once the payload and its metadata are on disk in
    /// `tmp/` and before either appears in `new/`: what must be durable before the hub can
    /// see the message (the ledger's record of it) is made so there, while this message's
    /// own fsyncs have given other commits time to share the work. If `ready` fails, nothing
    /// is published.
    pub fn publish_after(
        mut self,
        info: &MessageInfo,
        ready: impl FnOnce() -> Result<(), SinkError>,
    ) -> Result<Published, SinkError> {
        let (metadata, _) = self.close(info, true)?;
        let mut json = serde_json::to_vec_pretty(&metadata)?;
        json.push(b'\n');
        let mut meta_file = fsio::create_private(&self.tmp_meta())?;
        meta_file.write_all(&json)?;
        meta_file.sync_all()?;
        drop(meta_file);
        ready()?;

        let payload_path = self.new_dir.join(&self.payload_file);
        let metadata_path = self.new_dir.join(self.meta_file());
        fs::rename(self.tmp_payload(), &payload_path)?;
        self.payload_in_new = true;
        // The payload's entry is durable before the metadata's is written: a consumer never
        // finds metadata without its payload, even after a crash. Concurrent publications
        // share these fsyncs.
        self.new_sync.sync_upto(self.new_sync.changed())?;
        fs::rename(self.tmp_meta(), &metadata_path)?;
        if let Err(e) = self.new_sync.sync_upto(self.new_sync.changed()) {
            // Withdraw it: the caller will treat the message as not forwarded.
            let _ = fs::remove_file(&metadata_path);
            return Err(e.into());
        }
        self.done = true;
        // The entries leaving tmp/ are not fsynced: the message is durable in new/, and a name
        // a crash leaves behind in tmp/ is only a leftover name, removed by `cleanup_tmp`.
        // Debug: the pipeline logs the outcome (with the queue) once per message.
        tracing::debug!(id = %self.id, queue = %self.queue, size = self.written, "published");
        let receipt = metadata.receipt(&self.queue);
        Ok(Published {
            payload_path,
            metadata_path,
            metadata,
            receipt,
        })
    }

    /// Completes the payload without publishing it, for a sink that sends the bytes
    /// elsewhere and uses this folder only to stage them: in `tmp/` (and fsynced) when
    /// `durable`, else wherever it was staged. The file is removed when the returned
    /// [`Finished`] is dropped.
    pub fn finish(mut self, info: &MessageInfo, durable: bool) -> Result<Finished, SinkError> {
        let (metadata, body) = self.close(info, durable)?;
        Ok(Finished {
            staged: self,
            metadata,
            body,
        })
    }

    /// Checks `info` against what was staged, closes the payload and returns its metadata
    /// (and the bytes, if they are in memory).
    fn close(
        &mut self,
        info: &MessageInfo,
        durable: bool,
    ) -> Result<(Metadata, Option<Vec<u8>>), SinkError> {
        if info.gateway_message_id != self.id {
            return Err(SinkError::Mismatch(format!(
                "staged as {}, published as {}",
                self.id, info.gateway_message_id
            )));
        }
        let expected = info
            .transcoded
            .as_ref()
            .map_or(info.validated.state.size, |t| t.size);
        if expected != self.written {
            return Err(SinkError::Mismatch(format!(
                "{} bytes staged, message size is {expected}",
                self.written
            )));
        }
        let writer = self
            .writer
            .take()
            .ok_or_else(|| SinkError::Mismatch("payload already closed".into()))?;
        // Should finishing fail, a file may exist (Drop then removes it); bytes still in
        // memory left no file to remove.
        let body = writer.finish(durable)?;
        self.done = body.is_some();
        Ok((self.metadata(info), body))
    }

    /// Throws the payload away, removing the temporary file.
    pub fn discard(self) {
        // Drop does the work.
    }

    /// The metadata the hub reads for this message: the facts the pipeline established, and
    /// how the payload sits in the queue.
    fn metadata(&self, info: &MessageInfo) -> Metadata {
        let v = &info.validated.state;
        let signers = v.fingerprints();
        Metadata {
            gateway_message_id: self.id.clone(),
            agency: info.validated.agency.clone(),
            agency_message_id: v.agency_message_id.clone(),
            schema_id: v.schema_id.clone(),
            signer_fingerprint_sha256: signers.first().cloned().unwrap_or_default(),
            signer_fingerprints_sha256: signers,
            encoding: if info.transcoded.is_some() {
                "UTF-8".to_owned()
            } else {
                v.encoding.clone()
            },
            signed_encoding: info.transcoded.as_ref().map(|_| v.encoding.clone()),
            forwarded_sha256: info.transcoded.as_ref().map(|t| t.sha256.clone()),
            forwarded_size: info.transcoded.as_ref().map(|t| t.size),
            sha256: v.sha256.clone(),
            size: v.size,
            channel: info.channel,
            received_at: info.received_at,
            forwarded_at: timestamp::now(),
            payload_file: self.payload_file.clone(),
            encrypted_to_hub: self.encrypted,
            request_id: info.request_id.clone(),
        }
    }

    fn meta_file(&self) -> String {
        format!("{}.json", self.id)
    }

    fn tmp_meta(&self) -> PathBuf {
        self.tmp_dir.join(self.meta_file())
    }

    fn tmp_payload(&self) -> PathBuf {
        self.tmp_dir.join(&self.payload_file)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.writer = None; // closes the file
        let mut paths = vec![self.tmp_payload(), self.tmp_meta()];
        if self.payload_in_new {
            paths.push(self.new_dir.join(&self.payload_file));
        }
        for p in paths {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "cannot remove staged file")
                }
            }
        }
        // Not fsynced: a name a crash leaves in tmp/ is a leftover, as in `publish_after`.
        tracing::debug!(id = %self.id, queue = %self.queue, "staged payload discarded");
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("staged payload is closed"))?;
        let n = writer.inner().write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.inner().flush(),
            None => Ok(()),
        }
    }
}

impl Staging for Staged {
    fn publish_after(
        self: Box<Self>,
        info: &MessageInfo,
        ready: &mut dyn FnMut() -> Result<(), SinkError>,
    ) -> Result<Receipt, SinkError> {
        Staged::publish_after(*self, info, ready).map(|p| p.receipt)
    }

    fn discard(self: Box<Self>) {
        Staged::discard(*self)
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;

    #[test]
    fn memory_staging_never_holds_more_than_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spilled");
        let mut spool = Spool::Memory {
            buf: Vec::new(),
            limit: 1000,
            path: path.clone(),
        };
        for _ in 0..142 {
            spool.write_all(b"7 bytes").unwrap();
        }
        match &spool {
            Spool::Memory { buf, .. } => {
                assert_eq!(buf.len(), 994);
                assert!(buf.capacity() <= 1000, "capacity {}", buf.capacity());
            }
            Spool::File(_) => panic!("spilled before its limit"),
        }
        assert!(!path.exists());
        spool.write_all(b"7 bytes").unwrap();
        assert!(matches!(spool, Spool::File(_)), "past its limit");
        spool.flush().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 1001);
    }
}
