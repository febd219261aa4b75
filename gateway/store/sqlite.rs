//! The embedded SQLite implementation of [`Store`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use time::OffsetDateTime;

use super::checkpoint::Checkpointer;
use super::{
    Begin, DEFAULT_STALE_AFTER, Decision, MessageRecord, NewMessage, RequestEvent, RequestRecord,
    SignInEvent, SignInState, Status, Step, StepRecord, Store, StoreError, dedupe_key,
    normalise_sha256,
};
use crate::group::Group;
use crate::message::Receipt;
use crate::message::{Channel, MessageId, timestamp};
use crate::rejection::{Code, Rejection, Violations};

/// A per-message write that may share a transaction with other threads' writes.
#[derive(Debug)]
pub(super) enum Write {
    Begin(NewMessage),
    Forwarded {
        id: MessageId,
        receipt_json: String,
        queue: String,
        /// Queued without waiting: nobody reads the answer, so a failure is logged by the
        /// group's commit.
        deferred: bool,
    },
}

/// What a [`Write`] did.
#[derive(Debug)]
pub(super) enum Written {
    Begun(Box<Begin>),
    Finished,
}

/// How often the background checkpoint runs. A checkpoint copies each page changed since the
/// last one once, however often it changed: the pages messages touch are mostly the same few
/// index and table leaves, so an interval of a few hundred milliseconds writes far fewer pages
/// than checkpointing every 1,000 WAL frames did.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the store reads the time it writes into records and judges staleness by: the system
/// clock ([`timestamp::now`]), or, in tests, one they move by hand.
struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    fn system() -> Clock {
        Clock(Arc::new(timestamp::now))
    }

    fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Schema migrations; `PRAGMA user_version` holds how many were applied.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: messages and their steps.
    "CREATE TABLE messages (
        id                TEXT PRIMARY KEY NOT NULL,
        agency            TEXT NOT NULL,
        agency_message_id TEXT,
        sha256            TEXT NOT NULL,
        size              INTEGER NOT NULL CHECK (size >= 0),
        channel           TEXT NOT NULL,
        status            TEXT NOT NULL
                          CHECK (status IN ('in_progress', 'forwarded', 'rejected')),
        dedupe_key        TEXT,
        rejection_code    TEXT,
        rejection_detail  TEXT,
        receipt_json      TEXT,
        received_at       TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        finished_at       TEXT
    );
    CREATE UNIQUE INDEX messages_dedupe_key ON messages (dedupe_key);
    CREATE INDEX messages_agency_message ON messages (agency, agency_message_id);
    CREATE INDEX messages_received_at ON messages (received_at);
    CREATE TABLE steps (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL REFERENCES messages (id),
        step       TEXT NOT NULL,
        detail     TEXT,
        at         TEXT NOT NULL
    );
    CREATE INDEX steps_message ON steps (message_id, seq);",
    // 2: the process working on an in_progress record.
    "ALTER TABLE messages ADD COLUMN owner TEXT;",
    // 3: steps without AUTOINCREMENT, which wrote the `sqlite_sequence` page on every commit
    // (1.5 of the 33.5 KB written per message under `bench/load-ab.sh`). `seq` stays the
    // insertion order: a new row gets the largest seq + 1, and steps are never deleted.
    // Dropping the old table also drops its index and its `sqlite_sequence` row.
    "CREATE TABLE steps_v3 (
        seq        INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES messages (id),
        step       TEXT NOT NULL,
        detail     TEXT,
        at         TEXT NOT NULL
    );
    INSERT INTO steps_v3 (seq, message_id, step, detail, at)
        SELECT seq, message_id, step, detail, at FROM steps ORDER BY seq;
    DROP TABLE steps;
    ALTER TABLE steps_v3 RENAME TO steps;
    CREATE INDEX steps_message ON steps (message_id, seq);",
    // 4: failed sign-ins to the upload page and the console, and the last TOTP step used.
    super::sign_ins::TABLE,
    // 5: the hub's requests to agencies.
    super::requests::TABLE,
    // 6: where a rejected message's XML is wrong, for a later status query.
    "ALTER TABLE messages ADD COLUMN violations_json TEXT;",
];

pub(super) const RECORD_COLUMNS: &str = "id, agency, agency_message_id, sha256, size, channel, status, \
     rejection_code, rejection_detail, receipt_json, received_at, updated_at, finished_at, owner";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(Box::new(e))
    }
}

/// The ledger in an embedded SQLite database.
///
/// The database runs in WAL mode and every write returns only once its commit is
/// on disk (a committed outcome survives power loss), as with `synchronous=FULL`;
/// but the WAL is fsynced by the store itself after the commit, outside the
/// connection lock, so commits made by other threads meanwhile share one fsync
/// (group commit) instead of queueing behind one fsync each. A busy timeout lets
/// several processes share the file. Deduplication is enforced by a UNIQUE index on a `dedupe_key` column;
/// `begin` runs in an `IMMEDIATE` transaction, so concurrent `begin`s on any
/// number of connections are serialised and exactly one gets [`Begin::New`].
/// One connection is kept behind a mutex. The per-message writes (`begin`, `finish_forwarded`)
/// of concurrent threads are committed in groups ([`crate::group`]): one transaction, each write
/// under its own savepoint, so that a write that fails is undone alone. A deferred finish
/// ([`Store::finish_forwarded_deferred`]) waits in that queue for the next group, for any other
/// operation of this store (which commits the queue first), for [`Store::flush`] or for the
/// store's drop.
#[derive(Debug)]
pub struct SqliteStore {
    // Declared (so dropped) first: its thread stops before the writer's connection closes.
    checkpointer: Checkpointer,
    conn: Mutex<Connection>,
    /// Writes waiting for the connection, committed together by whoever gets it next.
    writes: Group<Write, Result<(Written, u64), StoreError>>,
    path: PathBuf,
    /// The time of every timestamp the store writes, and of staleness decisions.
    clock: Clock,
    /// Commits made so far (counted under the connection lock, so in commit order).
    committed: std::sync::atomic::AtomicU64,
    /// Commits known to be on disk, and the WAL file to fsync; one syncer at a time.
    durable: Mutex<(u64, Option<std::fs::File>)>,
    /// This process, as its `in_progress` records name their owner.
    owner: String,
    /// Rung for each request recorded here; the command line's, recorded by another
    /// process, are found by looking every second.
    bell: super::RequestBell,
}

impl SqliteStore {
    /// Opens (creating with mode `0600` if needed) and migrates the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            // An empty file is a valid empty database; SQLite gives the -wal and
            // -shm files the same permissions.
            match crate::fsio::create_private(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // A new ledger gets 1 KiB pages (only possible before the first table exists): a
        // message touches about a dozen pages (its row, five indexes, its steps), and every
        // touched page is written to the WAL whole; the server's bytes written per message
        // went from 82 to 41 KB (`bench/load-ab.sh`, "written"). Existing ledgers keep theirs.
        conn.pragma_update(None, "page_size", 1024)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not enable WAL mode (journal_mode is {mode})"
            )));
        }
        // Commits are made durable by `sync_upto` (an fsync of the WAL, as FULL would do).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints run in the background (see `checkpoint`); this one, inside a commit,
        // is only a backstop in case they fall behind (64 MiB of WAL with 1 KiB pages).
        conn.pragma_update(None, "wal_autocheckpoint", 65_536)?;
        migrate(&mut conn)?;
        tracing::debug!(path = %path.display(), "ledger opened");
        let checkpointer = Checkpointer::start(&path, CHECKPOINT_EVERY)?;
        let store = SqliteStore {
            checkpointer,
            conn: Mutex::new(conn),
            writes: Group::default(),
            path,
            clock: Clock::system(),
            committed: std::sync::atomic::AtomicU64::new(1),
            durable: Mutex::new((0, None)),
            owner: super::owner::token(),
            bell: super::RequestBell::new(Duration::from_secs(1)),
        };
        store.sync_upto(1)?;
        Ok(store)
    }

    /// After how long an idle `in_progress` record may be taken over.
    pub fn stale_after(&self) -> Duration {
        DEFAULT_STALE_AFTER
    }

    /// Reads the time from `now` instead of the system clock (tests: staleness without
    /// waiting).
    #[cfg(test)]
    pub(super) fn with_clock(
        mut self,
        now: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Clock(Arc::new(now));
        self
    }

    /// WAL frames the background checkpoint has copied into the database so far (a lower
    /// bound).
    pub fn checkpointed_frames(&self) -> u64 {
        self.checkpointer.checkpointed_frames()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no open transaction behind
        // (rusqlite rolls back on drop), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection, once every queued write is committed: for operations that must see (or
    /// come after) every write made so far, deferred ones included.
    fn lock_current(&self) -> MutexGuard<'_, Connection> {
        let mut conn = self.lock();
        self.writes
            .run_pending(&mut conn, |conn, writes| self.commit_group(conn, writes));
        conn
    }

    /// Counts a commit just made (call with the connection lock held); returns its number.
    fn committed(&self) -> u64 {
        self.committed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Returns once commit `n` is on disk: one fsync of the WAL covers every commit made
    /// before it, so a thread that finds another syncing waits for it and usually has
    /// nothing left to do.
    fn sync_upto(&self, n: u64) -> Result<(), StoreError> {
        let mut durable = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if durable.0 >= n {
            return Ok(());
        }
        let target = self.committed.load(std::sync::atomic::Ordering::SeqCst);
        if durable.1.is_none() {
            let mut wal = self.path.clone().into_os_string();
            wal.push("-wal");
            durable.1 = Some(std::fs::File::open(PathBuf::from(wal))?);
        }
        if let Some(f) = &durable.1 {
            f.sync_data()?;
        }
        durable.0 = target;
        Ok(())
    }

    /// Runs `write` in a transaction shared with the writes other threads queued meanwhile;
    /// returns what it did and the number of the commit that carried it.
    fn write(&self, write: Write) -> Result<(Written, u64), StoreError> {
        self.writes.submit(
            write,
            || self.lock(),
            |conn, writes| self.commit_group(conn, writes),
            || Err(StoreError::GroupFailed("the write was not run".into())),
        )
    }

    fn commit_group(
        &self,
        conn: &mut Connection,
        writes: Vec<Write>,
    ) -> Vec<Result<(Written, u64), StoreError>> {
        let outs = self.run_group(conn, &writes);
        // Nobody collects a deferred write's answer: its failure (its own, or the group's) is
        // reported here. The message is in the queue; start-up settles the record.
        for (write, out) in writes.iter().zip(&outs) {
            if let (
                Write::Forwarded {
                    id, deferred: true, ..
                },
                Err(e),
            ) = (write, out)
            {
                tracing::error!(id = %id, error = %e, "forwarded but the ledger could not record it");
            }
        }
        outs
    }

    fn run_group(
        &self,
        conn: &mut Connection,
        writes: &[Write],
    ) -> Vec<Result<(Written, u64), StoreError>> {
        let count = writes.len();
        let all_failed = |e: &dyn std::fmt::Display| {
            (0..count)
                .map(|_| Err(StoreError::GroupFailed(e.to_string())))
                .collect()
        };
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return all_failed(&e),
        };
        let mut outs = Vec::with_capacity(count);
        if let [write] = writes {
            // Alone, the transaction is the unit: no savepoint, and nothing to commit on failure.
            match self.apply(&tx, write) {
                Ok(w) => outs.push(Ok(w)),
                Err(e) => return vec![Err(e)],
            }
        } else {
            for write in writes {
                match savepoint(&tx, |tx| self.apply(tx, write)) {
                    Ok(result) => outs.push(result),
                    // The savepoint machinery itself failed: trust nothing in this transaction.
                    Err(e) => return all_failed(&e),
                }
            }
        }
        if let Err(e) = tx.commit() {
            return all_failed(&e);
        }
        let n = self.committed();
        outs.into_iter().map(|r| r.map(|w| (w, n))).collect()
    }

    /// Commits `writes` as one group now (tests: groups otherwise form only under contention).
    #[cfg(test)]
    pub(super) fn commit_group_now(
        &self,
        writes: Vec<Write>,
    ) -> Vec<Result<(Written, u64), StoreError>> {
        let mut conn = self.lock();
        self.commit_group(&mut conn, writes)
    }

    fn apply(&self, tx: &Transaction<'_>, write: &Write) -> Result<Written, StoreError> {
        match write {
            Write::Begin(m) => self.begin_in(tx, m).map(|b| Written::Begun(Box::new(b))),
            Write::Forwarded {
                id,
                receipt_json,
                queue,
                ..
            } => finish_forwarded_in(tx, id, receipt_json, queue, self.clock.now())
                .map(|()| Written::Finished),
        }
    }

    /// Commits the forwarded state of `id`; returns the commit's number.
    fn finish_forwarded_unsynced(
        &self,
        id: &MessageId,
        receipt: &Receipt,
    ) -> Result<u64, StoreError> {
        check_receipt_names(id, receipt)?;
        let receipt_json = serde_json::to_string(receipt)?;
        let (_, n) = self.write(Write::Forwarded {
            id: id.clone(),
            receipt_json,
            queue: receipt.queue.clone(),
            deferred: false,
        })?;
        Ok(n)
    }

    fn begin_unsynced(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        match self.write(Write::Begin(m.clone()))? {
            (Written::Begun(b), _) => Ok(*b),
            (Written::Finished, _) => Err(StoreError::GroupFailed(
                "a begin was answered as a finish".into(),
            )),
        }
    }

    fn begin_in(&self, tx: &Transaction<'_>, m: &NewMessage) -> Result<Begin, StoreError> {
        let sha256 = normalise_sha256(&m.sha256)?;
        let key = dedupe_key(m, &sha256);
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE dedupe_key = ?1");
        let existing = tx
            .prepare_cached(&sql)?
            .query_row([&key], record_from_row)
            .optional()?;
        if let Some(old) = existing {
            let now = self.clock.now();
            let old_id = old.id.clone();
            match super::decide(old, m, &sha256, now) {
                Decision::Answer(begun) => return Ok(begun),
                Decision::TakeOver(detail) => {
                    tx.prepare_cached(
                        "UPDATE messages SET status = 'rejected', dedupe_key = NULL,
                             rejection_code = ?2, rejection_detail = ?3,
                             updated_at = ?4, finished_at = ?4
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        old_id.as_str(),
                        Code::Interrupted.as_str(),
                        detail,
                        timestamp::format(&now)
                    ])?;
                    insert_step(
                        tx,
                        &old_id,
                        Step::Rejected,
                        Some(Code::Interrupted.as_str()),
                        &now,
                    )?;
                }
                Decision::Release => {
                    tx.prepare_cached("UPDATE messages SET dedupe_key = NULL WHERE id = ?1")?
                        .execute([old_id.as_str()])?;
                }
            }
        }
        insert_message(tx, m, &sha256, Some(&key), None, self.clock.now())?;
        Ok(Begin::New(m.id.clone()))
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(sql)?;
        tracing::info!(version = i + 1, "ledger schema migrated");
    }
    if version != supported {
        tx.pragma_update(None, "user_version", supported)?;
    }
    tx.commit()?;
    Ok(())
}

fn conversion<T, E: std::fmt::Display>(idx: usize, r: Result<T, E>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, e.to_string().into()))
}

fn ts_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<OffsetDateTime> {
    let s: String = row.get(idx)?;
    conversion(idx, timestamp::parse(&s))
}

pub(super) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    let id: String = row.get(0)?;
    let size: i64 = row.get(4)?;
    let channel: String = row.get(5)?;
    let status: String = row.get(6)?;
    let finished_at: Option<String> = row.get(12)?;
    Ok(MessageRecord {
        id: conversion(0, MessageId::parse(&id))?,
        agency: row.get(1)?,
        agency_message_id: row.get(2)?,
        sha256: row.get(3)?,
        size: conversion(4, u64::try_from(size))?,
        channel: conversion(5, channel.parse::<Channel>())?,
        status: conversion(6, status.parse::<Status>())?,
        rejection_code: row.get(7)?,
        rejection_detail: row.get(8)?,
        receipt_json: row.get(9)?,
        received_at: ts_column(row, 10)?,
        updated_at: ts_column(row, 11)?,
        finished_at: finished_at
            .map(|s| conversion(12, timestamp::parse(&s)))
            .transpose()?,
        owner: row.get(13)?,
    })
}

fn get_record(conn: &Connection, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.as_str()], record_from_row)
        .optional()?)
}

fn require_record(conn: &Connection, id: &MessageId) -> Result<MessageRecord, StoreError> {
    get_record(conn, id)?.ok_or_else(|| StoreError::NotFound(id.clone()))
}

/// Refuses `action` unless message `id` exists and is still in progress.
fn require_in_progress(
    conn: &Connection,
    id: &MessageId,
    action: &'static str,
) -> Result<(), StoreError> {
    let rec = require_record(conn, id)?;
    if rec.status != Status::InProgress {
        return Err(StoreError::InvalidTransition {
            id: id.clone(),
            status: rec.status,
            action,
        });
    }
    Ok(())
}

fn insert_step(
    tx: &Transaction<'_>,
    id: &MessageId,
    step: Step,
    detail: Option<&str>,
    at: &OffsetDateTime,
) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO steps (message_id, step, detail, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            id.as_str(),
            step.as_str(),
            detail,
            timestamp::format(at)
        ])?;
    Ok(())
}

/// Inserts a record (in progress, or already rejected) with its initial steps, as of `now`.
fn insert_message(
    tx: &Transaction<'_>,
    m: &NewMessage,
    sha256: &str,
    dedupe_key: Option<&str>,
    rejection: Option<&Rejection>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let exists: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1)")?
        .query_row([m.id.as_str()], |r| r.get(0))?;
    if exists {
        return Err(StoreError::IdInUse(m.id.clone()));
    }
    let size = i64::try_from(m.size)
        .map_err(|_| StoreError::InvalidInput(format!("size {} out of range", m.size)))?;
    let (status, code, detail, finished_at, violations) = match rejection {
        Some(r) => (
            Status::Rejected,
            Some(r.code.as_str()),
            Some(r.detail.as_str()),
            Some(timestamp::format(&now)),
            super::violations_json(r)?,
        ),
        None => (Status::InProgress, None, None, None, None),
    };
    tx.prepare_cached(
        "INSERT INTO messages (id, agency, agency_message_id, sha256, size, channel, status,
             dedupe_key, rejection_code, rejection_detail, received_at, updated_at, finished_at,
             owner, violations_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        m.id.as_str(),
        m.agency,
        m.agency_message_id,
        sha256,
        size,
        m.channel.as_str(),
        status.as_str(),
        dedupe_key,
        code,
        detail,
        timestamp::format(&m.received_at),
        timestamp::format(&now),
        finished_at,
        (status == Status::InProgress).then(super::owner::token),
        violations,
    ])?;
    insert_step(tx, &m.id, Step::Received, None, &m.received_at)?;
    for s in &m.history {
        insert_step(tx, &m.id, s.step, s.detail.as_deref(), &s.at)?;
    }
    if let Some(code) = code {
        insert_step(tx, &m.id, Step::Rejected, Some(code), &now)?;
    }
    Ok(())
}

fn check_receipt_names(id: &MessageId, receipt: &Receipt) -> Result<(), StoreError> {
    if &receipt.gateway_message_id != id {
        return Err(StoreError::InvalidInput(format!(
            "receipt for {} given for message {id}",
            receipt.gateway_message_id
        )));
    }
    Ok(())
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Deferred writes are committed before the connection closes.
        if let Err(e) = Store::flush(self) {
            tracing::error!(error = %e, "ledger writes lost at close");
        }
    }
}

/// Marks in-progress message `id` forwarded with its receipt, as of `now`.
fn finish_forwarded_in(
    tx: &Transaction<'_>,
    id: &MessageId,
    receipt_json: &str,
    queue: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    require_in_progress(tx, id, "finish as forwarded")?;
    tx.prepare_cached(
        "UPDATE messages SET status = 'forwarded', receipt_json = ?2,
             updated_at = ?3, finished_at = ?3
         WHERE id = ?1",
    )?
    .execute(params![id.as_str(), receipt_json, timestamp::format(&now)])?;
    insert_step(tx, id, Step::Forwarded, Some(queue), &now)?;
    Ok(())
}

/// Runs `f` under a savepoint, undoing what it wrote if it fails. The outer error is a failure
/// of the savepoint statements themselves; the inner result is `f`'s.
fn savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> rusqlite::Result<Result<T, StoreError>> {
    tx.prepare_cached("SAVEPOINT write")?.execute([])?;
    let result = f(tx);
    if result.is_err() {
        tx.prepare_cached("ROLLBACK TO write")?.execute([])?;
    }
    tx.prepare_cached("RELEASE write")?.execute([])?;
    Ok(result)
}

impl Store for SqliteStore {
    fn begin(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        let begun = self.begin_unsynced(m)?;
        // Whatever it answers — a new record, or one another thread just committed — is on
        // disk before the caller acts on it.
        self.sync()?;
        Ok(begun)
    }

    fn begin_deferred(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        self.begin_unsynced(m)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.sync_upto(self.committed.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn record_unregistered_rejection(
        &self,
        m: &NewMessage,
        rejection: &Rejection,
    ) -> Result<MessageRecord, StoreError> {
        let sha256 = normalise_sha256(&m.sha256)?;
        let mut conn = self.lock_current();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_message(&tx, m, &sha256, None, Some(rejection), self.clock.now())?;
        let rec = require_record(&tx, &m.id)?;
        tx.commit()?;
        let n = self.committed();
        drop(conn);
        self.sync_upto(n)?;
        Ok(rec)
    }

    fn record_step(
        &self,
        id: &MessageId,
        step: Step,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock_current();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = self.clock.now();
        let n = tx
            .prepare_cached("UPDATE messages SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![id.as_str(), timestamp::format(&now)])?;
        if n == 0 {
            return Err(StoreError::NotFound(id.clone()));
        }
        insert_step(&tx, id, step, detail, &now)?;
        tx.commit()?;
        let n = self.committed();
        drop(conn);
        self.sync_upto(n)
    }

    fn finish_forwarded(&self, id: &MessageId, receipt: &Receipt) -> Result<(), StoreError> {
        let n = self.finish_forwarded_unsynced(id, receipt)?;
        self.sync_upto(n)
    }

    fn finish_forwarded_deferred(
        &self,
        id: &MessageId,
        receipt: &Receipt,
    ) -> Result<(), StoreError> {
        check_receipt_names(id, receipt)?;
        // Not even committed now: it goes out with the next message's `begin` (whose
        // transaction mostly touches the same pages), before any read, or with `flush`.
        self.writes.defer(Write::Forwarded {
            id: id.clone(),
            receipt_json: serde_json::to_string(receipt)?,
            queue: receipt.queue.clone(),
            deferred: true,
        });
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.writes.has_pending() {
            drop(self.lock_current());
        }
        Ok(())
    }

    fn finish_rejected(&self, id: &MessageId, code: Code, detail: &str) -> Result<(), StoreError> {
        let mut conn = self.lock_current();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_in_progress(&tx, id, "finish as rejected")?;
        let now = self.clock.now();
        // A retryable refusal (the queue was down...) is no verdict on the message: its key
        // is released, so that the resend is processed afresh.
        tx.prepare_cached(
            "UPDATE messages SET status = 'rejected', rejection_code = ?2,
                 rejection_detail = ?3, updated_at = ?4, finished_at = ?4,
                 dedupe_key = CASE WHEN ?5 THEN NULL ELSE dedupe_key END
             WHERE id = ?1",
        )?
        .execute(params![
            id.as_str(),
            code.as_str(),
            detail,
            timestamp::format(&now),
            code.retryable()
        ])?;
        insert_step(&tx, id, Step::Rejected, Some(code.as_str()), &now)?;
        tx.commit()?;
        let n = self.committed();
        drop(conn);
        self.sync_upto(n)
    }

    fn in_progress(&self) -> Result<Vec<MessageRecord>, StoreError> {
        let conn = self.lock_current();
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE status = 'in_progress'");
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], record_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn abandon(&self, id: &MessageId, detail: &str) -> Result<bool, StoreError> {
        let mut conn = self.lock_current();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = self.clock.now();
        let n = tx
            .prepare_cached(
                "UPDATE messages SET status = 'rejected', dedupe_key = NULL,
                     rejection_code = ?2, rejection_detail = ?3,
                     updated_at = ?4, finished_at = ?4
                 WHERE id = ?1 AND status = 'in_progress'",
            )?
            .execute(params![
                id.as_str(),
                Code::Interrupted.as_str(),
                detail,
                timestamp::format(&now)
            ])?;
        if n == 0 {
            return Ok(false);
        }
        insert_step(
            &tx,
            id,
            Step::Rejected,
            Some(Code::Interrupted.as_str()),
            &now,
        )?;
        tx.commit()?;
        let n = self.committed();
        drop(conn);
        self.sync_upto(n)?;
        Ok(true)
    }

    fn get(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        get_record(&self.lock_current(), id)
    }

    fn violations(&self, id: &MessageId) -> Result<Option<Violations>, StoreError> {
        let json: Option<String> = self
            .lock_current()
            .prepare_cached("SELECT violations_json FROM messages WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?
            .flatten();
        super::parse_violations(json)
    }

    fn is_abandoned(&self, rec: &MessageRecord) -> bool {
        // One host shares a SQLite ledger: the owner's process is asked of /proc.
        rec.status == Status::InProgress && !rec.owner.as_deref().is_some_and(super::owner::alive)
    }

    fn is_mine(&self, rec: &MessageRecord) -> bool {
        rec.owner.as_deref() == Some(self.owner.as_str())
    }

    fn list(&self, q: &super::MessageQuery) -> Result<Vec<MessageRecord>, StoreError> {
        super::browse::sqlite_list(&self.lock_current(), q)
    }

    fn hours(&self, since: OffsetDateTime) -> Result<Vec<super::HourCount>, StoreError> {
        super::browse::sqlite_hours(&self.lock_current(), since)
    }

    fn release(&self, id: &MessageId) -> Result<bool, StoreError> {
        let conn = self.lock_current();
        let released = super::browse::sqlite_release(&conn, id)?;
        let n = self.committed();
        drop(conn);
        self.sync_upto(n)?;
        Ok(released)
    }

    fn sign_in(&self, name: &str, event: SignInEvent) -> Result<SignInState, StoreError> {
        let conn = self.lock_current();
        let state = super::sign_ins::sqlite(&conn, name, event)?;
        if event != SignInEvent::Look {
            let n = self.committed();
            drop(conn);
            self.sync_upto(n)?;
        }
        Ok(state)
    }

    fn request(&self, event: &RequestEvent) -> Result<Vec<RequestRecord>, StoreError> {
        let conn = self.lock_current();
        let records = super::requests::sqlite(&conn, event)?;
        let n = self.committed();
        drop(conn);
        self.sync_upto(n)?;
        if let RequestEvent::Ask(r) = event {
            self.bell.ring(&r.agency);
        }
        Ok(records)
    }

    fn request_bell(&self) -> Option<&super::RequestBell> {
        Some(&self.bell)
    }

    fn steps(&self, id: &MessageId) -> Result<Vec<StepRecord>, StoreError> {
        let conn = self.lock_current();
        let mut stmt = conn.prepare_cached(
            "SELECT step, detail, at FROM steps WHERE message_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([id.as_str()], |row| {
            let step: String = row.get(0)?;
            Ok(StepRecord {
                step: conversion(0, step.parse::<Step>())?,
                detail: row.get(1)?,
                at: ts_column(row, 2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
