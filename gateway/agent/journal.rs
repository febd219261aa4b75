//! The agent's journal (SQLite, `<state>/journal.sqlite`): every file it took, and where it
//! is. A file is recorded `pending` before anything is sent, and `sent` or `failed` only once it
//! has been moved to `sent/` or `failed/`; killed in between, the agent sends a pending file
//! again, and the hub answers the resend with the original receipt.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// Where a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Taken, not finished.
    Pending,
    /// Accepted by the hub; moved to `sent/` with its receipt.
    Sent,
    /// Refused by the hub (or unusable); moved to `failed/` with the problem.
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sent => "sent",
            State::Failed => "failed",
        }
    }
}

/// One file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Journal id (names the sealed file in flight).
    pub id: i64,
    /// The job.
    pub job: String,
    /// The file's name in the job's folder.
    pub name: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last transient error.
    pub last_error: Option<String>,
}

/// Counts by state, and the last error.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Files not finished.
    pub pending: u64,
    /// Files delivered.
    pub sent: u64,
    /// Files refused.
    pub failed: u64,
    /// The most recent error, if any.
    pub last_error: Option<String>,
    /// The hub's requests being answered.
    pub requests_open: u64,
    /// The hub's requests answered.
    pub requests_answered: u64,
    /// The hub's requests refused or failed.
    pub requests_failed: u64,
}

/// Where one of the hub's requests is, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStep {
    /// Taken from the hub; the command has not finished.
    Taken,
    /// The command's answer is written; not delivered yet.
    Ready,
    /// Refused or failed here (`detail`); the hub has not been told yet.
    Failing,
    /// Answered: the hub holds the answer.
    Answered,
    /// The hub knows it failed.
    Failed,
}

impl RequestStep {
    fn as_str(self) -> &'static str {
        match self {
            RequestStep::Taken => "taken",
            RequestStep::Ready => "ready",
            RequestStep::Failing => "failing",
            RequestStep::Answered => "answered",
            RequestStep::Failed => "failed",
        }
    }

    fn parse(s: &str) -> RequestStep {
        match s {
            "taken" => RequestStep::Taken,
            "ready" => RequestStep::Ready,
            "failing" => RequestStep::Failing,
            "answered" => RequestStep::Answered,
            _ => RequestStep::Failed,
        }
    }
}

/// One of the hub's requests.
#[derive(Debug, Clone)]
pub struct RequestEntry {
    /// The hub's id.
    pub id: String,
    /// The query asked.
    pub query: String,
    /// Its parameters (a JSON object of strings).
    pub params: String,
    /// Where it is.
    pub step: RequestStep,
    /// Why it failed, when it did.
    pub detail: Option<String>,
}

/// The journal.
pub struct Journal {
    conn: Connection,
}

impl Journal {
    /// Opens (creating) the journal in `state`.
    pub fn open(state: &Path) -> rusqlite::Result<Journal> {
        let _ = crate::fsio::create_private_dir(state);
        let conn = Connection::open(state.join("journal.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "full")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS files (
                id         INTEGER PRIMARY KEY,
                job        TEXT NOT NULL,
                name       TEXT NOT NULL,
                state      TEXT NOT NULL,
                attempts   INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                gateway_message_id TEXT,
                filed_as   TEXT,
                updated    TEXT NOT NULL
            );
            CREATE UNIQUE INDEX IF NOT EXISTS files_pending ON files (job, name)
                WHERE state = 'pending';
            CREATE TABLE IF NOT EXISTS runs (
                job   TEXT PRIMARY KEY,
                last  TEXT NOT NULL,
                error TEXT
            );
            CREATE TABLE IF NOT EXISTS requests (
                id      TEXT PRIMARY KEY,
                query   TEXT NOT NULL,
                params  TEXT NOT NULL,
                state   TEXT NOT NULL,
                detail  TEXT,
                gateway_message_id TEXT,
                updated TEXT NOT NULL
            );",
        )?;
        Ok(Journal { conn })
    }

    fn now() -> String {
        crate::message::timestamp::format(&crate::message::timestamp::now())
    }

    /// Records `name` of `job` as pending (once: a file already pending keeps its entry).
    pub fn take(&self, job: &str, name: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO files (job, name, state, updated) VALUES (?1, ?2, 'pending', ?3)
             ON CONFLICT DO NOTHING",
            params![job, name, Journal::now()],
        )?;
        Ok(())
    }

    /// Every pending file, oldest first.
    pub fn pending(&self) -> rusqlite::Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, job, name, attempts, last_error FROM files WHERE state = 'pending'
             ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Entry {
                id: r.get(0)?,
                job: r.get(1)?,
                name: r.get(2)?,
                attempts: r.get(3)?,
                last_error: r.get(4)?,
            })
        })?;
        rows.collect()
    }

    /// Whether `name` of `job` is pending.
    pub fn is_pending(&self, job: &str, name: &str) -> rusqlite::Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM files WHERE job = ?1 AND name = ?2 AND state = 'pending'",
                params![job, name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Entry `id` is about to be moved to `to` (recorded first: killed after the move, the
    /// agent knows where the file went).
    pub fn filing(&self, id: i64, to: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE files SET filed_as = ?2, updated = ?3 WHERE id = ?1",
            params![id, to, Journal::now()],
        )?;
        Ok(())
    }

    /// Where entry `id` was being moved to, if it was.
    pub fn filed_as(&self, id: i64) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row("SELECT filed_as FROM files WHERE id = ?1", [id], |r| {
                r.get(0)
            })
    }

    /// A transient failure of entry `id`.
    pub fn retry_later(&self, id: i64, error: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE files SET attempts = attempts + 1, last_error = ?2, updated = ?3 WHERE id = ?1",
            params![id, error, Journal::now()],
        )?;
        Ok(())
    }

    /// Entry `id` is finished: `state`, with the hub's id of the message if it has one.
    pub fn finish(
        &self,
        id: i64,
        state: State,
        message_id: Option<&str>,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE files SET state = ?2, gateway_message_id = ?3, last_error = COALESCE(?4, last_error),
                 updated = ?5 WHERE id = ?1",
            params![id, state.as_str(), message_id, error, Journal::now()],
        )?;
        Ok(())
    }

    /// When the extract of `job` last started (RFC 3339), if ever.
    pub fn last_run(&self, job: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row("SELECT last FROM runs WHERE job = ?1", [job], |r| r.get(0))
            .optional()
    }

    /// Records that the extract of `job` started at `at` (before it runs: a crash during an
    /// extract does not run it again before its next time).
    pub fn ran(&self, job: &str, at: &str, error: Option<&str>) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO runs (job, last, error) VALUES (?1, ?2, ?3)
             ON CONFLICT (job) DO UPDATE SET last = ?2, error = ?3",
            params![job, at, error],
        )?;
        Ok(())
    }

    /// Records a request taken from the hub (once: a request known already keeps its entry);
    /// false when it was known.
    pub fn request_taken(&self, id: &str, query: &str, params: &str) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO requests (id, query, params, state, updated) VALUES (?1, ?2, ?3, 'taken', ?4)
             ON CONFLICT DO NOTHING",
            params![id, query, params, Journal::now()],
        )?;
        Ok(n == 1)
    }

    /// Request `id` moves on to `step`.
    pub fn request_step(
        &self,
        id: &str,
        step: RequestStep,
        detail: Option<&str>,
        message_id: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE requests SET state = ?2, detail = COALESCE(?3, detail),
                 gateway_message_id = COALESCE(?4, gateway_message_id), updated = ?5
             WHERE id = ?1",
            params![id, step.as_str(), detail, message_id, Journal::now()],
        )?;
        Ok(())
    }

    /// The requests not finished, oldest first.
    pub fn requests_open(&self) -> rusqlite::Result<Vec<RequestEntry>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, query, params, state, detail FROM requests
             WHERE state IN ('taken', 'ready', 'failing') ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RequestEntry {
                id: r.get(0)?,
                query: r.get(1)?,
                params: r.get(2)?,
                step: RequestStep::parse(&r.get::<_, String>(3)?),
                detail: r.get(4)?,
            })
        })?;
        rows.collect()
    }

    /// How many rows of `table` (`files` or `requests`) are in each state.
    fn counts(&self, table: &str) -> rusqlite::Result<Vec<(String, u64)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT state, count(*) FROM {table} GROUP BY state"
        ))?;
        let rows = stmt.query_map([], |r| {
            let n: i64 = r.get(1)?;
            Ok((r.get::<_, String>(0)?, u64::try_from(n).unwrap_or(0)))
        })?;
        rows.collect()
    }

    /// Counts by state and the latest error.
    pub fn status(&self) -> rusqlite::Result<Status> {
        let mut s = Status::default();
        for (state, n) in self.counts("files")? {
            match state.as_str() {
                "pending" => s.pending = n,
                "sent" => s.sent = n,
                _ => s.failed = n,
            }
        }
        s.last_error = self
            .conn
            .query_row(
                "SELECT last_error FROM files WHERE last_error IS NOT NULL
                 ORDER BY updated DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let extract: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT job, error FROM runs WHERE error IS NOT NULL ORDER BY last DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((job, e)) = extract {
            s.last_error = Some(format!("extract of {job}: {e}"));
        }
        for (state, n) in self.counts("requests")? {
            match RequestStep::parse(&state) {
                RequestStep::Answered => s.requests_answered += n,
                RequestStep::Failed => s.requests_failed += n,
                _ => s.requests_open += n,
            }
        }
        Ok(s)
    }
}
