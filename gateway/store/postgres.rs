//! The ledger on PostgreSQL, shared by several gateway instances.
//!
//! The same contract as [`super::SqliteStore`], with what sharing needs:
//!
//! * **Deduplication by a unique index**, not a check-then-insert: `messages.dedupe_key` is
//!   `UNIQUE`, so when two instances register the same message at once, the second `INSERT`
//!   waits for the first transaction and then fails; `begin` reads the winner's record and
//!   answers from it ([`Begin::InProgress`] while the winner works, then its outcome).
//! * **Leases instead of process ids**: every instance has a row in `instances` whose
//!   `lease_until` a heartbeat thread pushes forward every third of the lease. An
//!   `in_progress` record names its instance; it is abandoned once that lease has run out
//!   (the database's clock decides, so no two hosts' clocks are compared). A crashed
//!   instance's messages are therefore settled by the others within a lease (10 s by
//!   default), and a live instance on another host is never mistaken for a dead one.
//! * **Durability** is PostgreSQL's: each write is committed with `synchronous_commit` as the
//!   server has it (on by default) before it returns, and nothing is deferred here. The
//!   per-message writes of concurrent threads are committed in groups, one statement each
//!   (see [`writes`]).
//!
//! Why the synchronous `postgres` crate (with `r2d2` for the pool): the [`Store`] trait is
//! synchronous and called from blocking threads (the pipeline is CPU-bound and runs outside
//! the async runtime), so a blocking client is the natural fit; it is the same code as
//! `tokio-postgres` underneath, by the same maintainers, and `sqlx`'s compile-time checks
//! would need a database at build time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{NoTls, Row, Transaction};
use time::OffsetDateTime;

use super::{
    Begin, Decision, MessageRecord, NewMessage, RequestEvent, RequestRecord, SignInEvent,
    SignInState, Status, Step, StepRecord, Store, StoreError,
};
use crate::group::Group;
use crate::message::{Channel, MessageId, Receipt, timestamp};
use crate::rejection::{Code, Rejection, Violations};

mod writes;

use writes::{Closing, NewRow, Outcome, Write};

type Pool = r2d2::Pool<Manager>;

/// A pooled connection with the statements prepared on it: the hot statements are parsed and
/// planned once per connection, not once per message.
pub(super) struct Conn {
    client: postgres::Client,
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
}

impl Conn {
    /// `sql`, prepared on this connection the first time.
    fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl std::ops::Deref for Conn {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// Makes [`Conn`]s for the `r2d2` pool.
struct Manager(postgres::Config);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect(NoTls)?,
            prepared: Default::default(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// Migrations, in order; `gateway_schema.version` holds how many were applied.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE messages (
        id                TEXT PRIMARY KEY,
        agency            TEXT NOT NULL,
        agency_message_id TEXT,
        sha256            TEXT NOT NULL,
        size              BIGINT NOT NULL CHECK (size >= 0),
        channel           TEXT NOT NULL,
        status            TEXT NOT NULL
                          CHECK (status IN ('in_progress', 'forwarded', 'rejected')),
        dedupe_key        TEXT UNIQUE,
        rejection_code    TEXT,
        rejection_detail  TEXT,
        receipt_json      TEXT,
        received_at       TIMESTAMPTZ NOT NULL,
        updated_at        TIMESTAMPTZ NOT NULL,
        finished_at       TIMESTAMPTZ,
        owner             TEXT
    );
    CREATE INDEX messages_in_progress ON messages (owner) WHERE status = 'in_progress';
    CREATE INDEX messages_agency_message ON messages (agency, agency_message_id);
    CREATE INDEX messages_received_at ON messages (received_at);
    CREATE TABLE steps (
        seq        BIGSERIAL PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES messages (id),
        step       TEXT NOT NULL,
        detail     TEXT,
        at         TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX steps_message ON steps (message_id, seq);
    CREATE TABLE instances (
        id          TEXT PRIMARY KEY,
        host        TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        started_at  TIMESTAMPTZ NOT NULL,
        lease_until TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE jobs (
        name     TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        since    TIMESTAMPTZ NOT NULL
    );",
    "
    -- A message's steps live in its row (a JSON array appended to), not in a table of their
    -- own: one row written per ledger write instead of one per step, each with its index
    -- entries and foreign-key check (a third of PostgreSQL's CPU per message).
    ALTER TABLE messages ADD COLUMN steps JSONB NOT NULL DEFAULT '[]';
    UPDATE messages m SET steps = s.steps
    FROM (SELECT message_id, jsonb_agg(jsonb_build_object(
                 'step', step, 'detail', detail,
                 'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
                 ORDER BY seq) AS steps
          FROM steps GROUP BY message_id) s
    WHERE s.message_id = m.id;
    DROP TABLE steps;",
    // Failed sign-ins to the upload page and the console, and the last TOTP step used.
    super::sign_ins::TABLE,
    // The hub's requests to agencies.
    super::requests::TABLE,
    // Where a rejected message's XML is wrong, for a later status query.
    "ALTER TABLE messages ADD COLUMN violations_json TEXT;",
];

/// Serialises migrations of instances starting together (any constant; this one is "gw").
const MIGRATION_LOCK: i64 = 0x6777;

pub(super) const RECORD_COLUMNS: &str = "id, agency, agency_message_id, sha256, size, channel, status, \
     rejection_code, rejection_detail, receipt_json, received_at, updated_at, finished_at, owner";

/// A new message and its first steps, unless its dedupe key is taken (see `begin_new`).
const BEGIN_NEW: &str = "INSERT INTO messages (id, agency, agency_message_id, sha256, size,
                 channel, status, dedupe_key, received_at, updated_at, owner, steps)
             VALUES ($1, $2, $3, $4, $5, $6, 'in_progress', $7, $8, now(), $9, $10::text::jsonb)
             ON CONFLICT (dedupe_key) DO NOTHING";

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Database(Box::new(e))
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> StoreError {
        StoreError::Database(format!("no connection to PostgreSQL: {e}").into())
    }
}

/// The PostgreSQL ledger; see the module documentation.
pub struct PostgresStore {
    pool: Pool,
    instance: Arc<str>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    /// The last heartbeat's failure, for `/readyz`.
    lease_error: Arc<std::sync::Mutex<Option<String>>>,
    /// Per-message writes waiting for the writer, committed together by whoever takes it.
    writes: Group<Write, Result<bool, StoreError>>,
    /// The connection the groups are written on, kept (one backend, its caches warm) until
    /// it breaks.
    writer: std::sync::Mutex<Option<r2d2::PooledConnection<Manager>>>,
    /// Rung for each request recorded here, and by the serving instance's listener for each
    /// one announced by the others ([`watch_changes`]).
    bell: super::RequestBell,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("instance", &self.instance)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url`, migrates the schema, registers this instance with a lease of
    /// `lease` and starts renewing it.
    pub fn open(url: &str, pool_size: u32, lease: Duration) -> Result<Self, StoreError> {
        let manager = Manager(connection_config(url, Some(STATEMENT_TIMEOUT))?);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            // No `SELECT`-like probe before every use (a round trip per ledger write): a
            // connection the server dropped fails its next statement, the pool discards it
            // (it reports itself closed), and the sender's retry gets a fresh one.
            .test_on_check_out(false)
            .build(manager)?;
        migrate(&pool)?;
        let instance: Arc<str> = format!("{}-{}", host_name(), uuid::Uuid::now_v7()).into();
        pool.get()?.execute(
            "INSERT INTO instances (id, host, pid, started_at, lease_until)
             VALUES ($1, $2, $3, now(), now() + $4 * interval '1 millisecond')",
            &[
                &&*instance,
                &host_name(),
                &(std::process::id() as i32),
                &(lease.as_millis() as f64),
            ],
        )?;
        tracing::info!(instance = %instance, "ledger opened on PostgreSQL");
        let stop = Arc::new(AtomicBool::new(false));
        let lease_error = Arc::new(std::sync::Mutex::new(None));
        let heartbeat = std::thread::Builder::new()
            .name("ledger-lease".into())
            .spawn({
                let (pool, instance, stop, lease_error) = (
                    pool.clone(),
                    instance.clone(),
                    stop.clone(),
                    lease_error.clone(),
                );
                move || renew_lease(&pool, &instance, lease, &stop, &lease_error)
            })?;
        Ok(PostgresStore {
            pool,
            instance,
            stop,
            heartbeat: Some(heartbeat),
            lease_error,
            writes: Group::default(),
            writer: std::sync::Mutex::new(None),
            bell: super::RequestBell::new(REQUESTS_LOOK_EVERY),
        })
    }

    /// This instance's id, as its `in_progress` records name their owner.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn client(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Runs `write` with the per-message writes other threads queued meanwhile (one
    /// statement); whether it was written.
    fn write(&self, write: Write) -> Result<bool, StoreError> {
        self.writes.submit(
            write,
            || self.writer.lock().unwrap_or_else(|p| p.into_inner()),
            |held, writes| {
                if held.as_ref().is_some_and(|c| c.client.is_closed()) {
                    **held = None;
                }
                let conn = match &mut **held {
                    Some(conn) => conn,
                    None => match self.client() {
                        Ok(conn) => held.insert(conn),
                        Err(e) => {
                            return writes
                                .iter()
                                .map(|_| Err(StoreError::GroupFailed(e.to_string())))
                                .collect();
                        }
                    },
                };
                writes::commit(conn, &self.instance, &writes)
            },
            || Err(StoreError::GroupFailed("the write was not run".into())),
        )
    }

    /// The common case of `begin`: the record and its first steps, unless the dedupe key is
    /// taken (false).
    fn begin_new(&self, m: &NewMessage, sha256: &str, key: &str) -> Result<bool, StoreError> {
        self.write(Write::Begin(new_row(m, sha256, key)?))
    }

    /// Closes in-progress record `id` as `outcome`, with one more step (`step`, `detail`); an
    /// error says why when it was not in progress.
    fn finish(
        &self,
        id: &MessageId,
        outcome: Outcome,
        step: Step,
        detail: &str,
        action: &'static str,
    ) -> Result<(), StoreError> {
        let closing = Closing {
            id: id.to_string(),
            outcome,
            step: steps_json(&[(step, Some(detail), timestamp::now())])?,
        };
        if self.write(Write::Finish(closing))? {
            return Ok(());
        }
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        Err(not_in_progress(&mut tx, id, action))
    }

    /// One attempt of `begin`; `Ok(None)` when another instance won a race for the key.
    fn try_begin(
        &self,
        m: &NewMessage,
        sha256: &str,
        key: &str,
    ) -> Result<Option<Begin>, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE dedupe_key = $1 FOR UPDATE");
        let existing = tx
            .query_opt(&sql, &[&key])?
            .map(|r| record(&r))
            .transpose()?;
        if let Some(old) = existing {
            let old_id = old.id.clone();
            match super::decide(old, m, sha256, timestamp::now()) {
                Decision::Answer(begun) => return Ok(Some(begun)),
                Decision::TakeOver(detail) => {
                    close_interrupted(&mut tx, &old_id, &detail)?;
                }
                Decision::Release => {
                    tx.execute(
                        "UPDATE messages SET dedupe_key = NULL WHERE id = $1",
                        &[&old_id.as_str()],
                    )?;
                }
            }
        }
        if !insert_new(
            &mut tx,
            BEGIN_NEW,
            &new_row(m, sha256, key)?,
            &self.instance,
        )? {
            // Another instance took the key meanwhile: decide again against its record.
            return Ok(None);
        }
        tx.commit()?;
        Ok(Some(Begin::New(m.id.clone())))
    }
}

/// How long a ledger statement may run (lock waits included) before it fails: a stuck
/// database answers `queue_unavailable` rather than holding the message's thread for ever.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection settings of `url`, bounded where the URL says nothing: 5 s to connect, and
/// `statement_timeout` for every statement when given.
pub(crate) fn connection_config(
    url: &str,
    statement_timeout: Option<Duration>,
) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| StoreError::InvalidInput(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if let Some(limit) = statement_timeout
        && config.get_options().is_none()
    {
        config.options(&format!("-c statement_timeout={}", limit.as_millis()));
    }
    Ok(config)
}

/// This host's name, as instance ids and audit chains name it.
pub(crate) fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Keeps this instance's lease alive until `stop`; a failure is kept for `/readyz`.
fn renew_lease(
    pool: &Pool,
    instance: &str,
    lease: Duration,
    stop: &AtomicBool,
    error: &std::sync::Mutex<Option<String>>,
) {
    let every = lease / 3;
    let mut last = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < every {
            continue;
        }
        last = std::time::Instant::now();
        let renewed = pool.get().map_err(StoreError::from).and_then(|mut c| {
            c.execute(
                "UPDATE instances SET lease_until = now() + $2 * interval '1 millisecond'
                 WHERE id = $1",
                &[&instance, &(lease.as_millis() as f64)],
            )
            .map_err(StoreError::from)
        });
        let problem = match renewed {
            Ok(1) => None,
            Ok(_) => Some("this instance's lease row is gone".to_owned()),
            Err(e) => Some(format!("cannot renew this instance's lease: {e}")),
        };
        if let Some(p) = &problem {
            tracing::warn!(instance, problem = %p, "ledger lease");
        }
        if let Ok(mut slot) = error.lock() {
            *slot = problem;
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        // A clean stop gives up the lease at once: what it left in progress (nothing, after
        // a graceful drain) may be settled by the others without waiting.
        if let Ok(mut c) = self.pool.get() {
            let _ = c.execute(
                "UPDATE instances SET lease_until = now() WHERE id = $1",
                &[&&*self.instance],
            );
        }
    }
}

fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get()?;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let fresh: bool = tx
        .query_one("SELECT to_regclass('gateway_schema') IS NULL", &[])?
        .get(0);
    if fresh {
        tx.batch_execute("CREATE TABLE gateway_schema (version INTEGER NOT NULL)")?;
    }
    let version: i32 = match tx.query_opt("SELECT version FROM gateway_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO gateway_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let supported = MIGRATIONS.len() as i32;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version.into(),
            supported: supported.into(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(sql)?;
        tracing::info!(version = i + 1, "ledger schema migrated (PostgreSQL)");
    }
    tx.execute("UPDATE gateway_schema SET version = $1", &[&supported])?;
    tx.commit()?;
    Ok(())
}

fn violates(e: &postgres::Error, constraint: &str) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().and_then(|d| d.constraint()) == Some(constraint)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn record(row: &Row) -> Result<MessageRecord, StoreError> {
    let id: String = row.try_get(0)?;
    let size: i64 = row.try_get(4)?;
    let channel: String = row.try_get(5)?;
    let status: String = row.try_get(6)?;
    Ok(MessageRecord {
        id: MessageId::parse(&id).map_err(|e| corrupt("id", e))?,
        agency: row.try_get(1)?,
        agency_message_id: row.try_get(2)?,
        sha256: row.try_get(3)?,
        size: u64::try_from(size).map_err(|e| corrupt("size", e))?,
        channel: channel
            .parse::<Channel>()
            .map_err(|e| corrupt("channel", e))?,
        status: status.parse::<Status>().map_err(|e| corrupt("status", e))?,
        rejection_code: row.try_get(7)?,
        rejection_detail: row.try_get(8)?,
        receipt_json: row.try_get(9)?,
        received_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
        finished_at: row.try_get(12)?,
        owner: row.try_get(13)?,
    })
}

/// One entry of `messages.steps`, as [`StepRecord`] reads it back.
#[derive(serde::Serialize)]
struct StepJson<'a> {
    step: Step,
    detail: Option<&'a str>,
    #[serde(with = "timestamp::rfc3339")]
    at: OffsetDateTime,
}

/// `steps` as the JSON array that `messages.steps` holds (or has appended to it).
fn steps_json(steps: &[(Step, Option<&str>, OffsetDateTime)]) -> Result<String, StoreError> {
    let entries: Vec<StepJson<'_>> = steps
        .iter()
        .map(|&(step, detail, at)| StepJson { step, detail, at })
        .collect();
    Ok(serde_json::to_string(&entries)?)
}

/// A message's first steps: received, then what happened before it was registered.
fn first_steps(m: &NewMessage) -> Vec<(Step, Option<&str>, OffsetDateTime)> {
    let mut steps = vec![(Step::Received, None, m.received_at)];
    steps.extend(
        m.history
            .iter()
            .map(|s| (s.step, s.detail.as_deref(), s.at)),
    );
    steps
}

/// The row of message `m` (SHA-256 `sha256`, dedupe key `key`) as registered.
fn new_row(m: &NewMessage, sha256: &str, key: &str) -> Result<NewRow, StoreError> {
    Ok(NewRow {
        id: m.id.clone(),
        agency: m.agency.clone(),
        agency_message_id: m.agency_message_id.clone(),
        sha256: sha256.to_owned(),
        size: m.size.min(i64::MAX as u64) as i64,
        channel: m.channel.as_str(),
        key: key.to_owned(),
        received_at: m.received_at,
        steps: steps_json(&first_steps(m))?,
    })
}

/// Inserts `row` in progress, owned by `instance` (`BEGIN_NEW`, prepared or not); false when
/// another record holds its dedupe key.
fn insert_new<C: postgres::GenericClient, S: postgres::ToStatement + ?Sized>(
    client: &mut C,
    statement: &S,
    row: &NewRow,
    instance: &str,
) -> Result<bool, StoreError> {
    let inserted = client.execute(
        statement,
        &[
            &row.id.as_str(),
            &row.agency,
            &row.agency_message_id,
            &row.sha256,
            &row.size,
            &row.channel,
            &row.key,
            &row.received_at,
            &instance,
            &row.steps,
        ],
    );
    match inserted {
        Ok(n) => Ok(n == 1),
        Err(e) if violates(&e, "messages_pkey") => Err(StoreError::IdInUse(row.id.clone())),
        Err(e) => Err(e.into()),
    }
}

/// Inserts message `m` already rejected, outside deduplication, with its steps.
fn insert_rejected(
    tx: &mut Transaction<'_>,
    m: &NewMessage,
    sha256: &str,
    rejection: &Rejection,
) -> Result<(), StoreError> {
    let code = rejection.code.as_str();
    let mut steps = first_steps(m);
    steps.push((Step::Rejected, Some(code), timestamp::now()));
    let steps = steps_json(&steps)?;
    let violations = super::violations_json(rejection)?;
    let size = m.size.min(i64::MAX as u64) as i64;
    tx.execute(
        "INSERT INTO messages (id, agency, agency_message_id, sha256, size, channel, status,
             rejection_code, rejection_detail, received_at, updated_at, finished_at, steps,
             violations_json)
         VALUES ($1, $2, $3, $4, $5, $6, 'rejected', $7, $8, $9, now(), now(),
             $10::text::jsonb, $11)",
        &[
            &m.id.as_str(),
            &m.agency,
            &m.agency_message_id,
            &sha256,
            &size,
            &m.channel.as_str(),
            &code,
            &rejection.detail,
            &m.received_at,
            &steps,
            &violations,
        ],
    )
    .map_err(|e| {
        if violates(&e, "messages_pkey") {
            StoreError::IdInUse(m.id.clone())
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// Closes an in-progress record as `interrupted` and releases its key; false if it was not
/// in progress.
fn close_interrupted(
    tx: &mut Transaction<'_>,
    id: &MessageId,
    detail: &str,
) -> Result<bool, StoreError> {
    let code = Code::Interrupted.as_str();
    let added = steps_json(&[(Step::Rejected, Some(code), timestamp::now())])?;
    let n = tx.execute(
        "UPDATE messages SET status = 'rejected', dedupe_key = NULL, rejection_code = $2,
             rejection_detail = $3, updated_at = now(), finished_at = now(), owner = NULL,
             steps = steps || $4::text::jsonb
         WHERE id = $1 AND status = 'in_progress'",
        &[&id.as_str(), &code, &detail, &added],
    )?;
    Ok(n == 1)
}

/// Why `id` cannot do `action`: it is missing, or not in progress.
fn not_in_progress(tx: &mut Transaction<'_>, id: &MessageId, action: &'static str) -> StoreError {
    match tx.query_opt("SELECT status FROM messages WHERE id = $1", &[&id.as_str()]) {
        Ok(None) => StoreError::NotFound(id.clone()),
        Ok(Some(row)) => match row.get::<_, String>(0).parse::<Status>() {
            Ok(status) => StoreError::InvalidTransition {
                id: id.clone(),
                status,
                action,
            },
            Err(e) => corrupt("status", e),
        },
        Err(e) => e.into(),
    }
}

impl Store for PostgresStore {
    fn begin(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        let sha256 = super::normalise_sha256(&m.sha256)?;
        let key = super::dedupe_key(m, &sha256);
        if self.begin_new(m, &sha256, &key)? {
            return Ok(Begin::New(m.id.clone()));
        }
        // The key is taken: decide against the record that holds it. A lost race ends with
        // the winner's record committed (the unique index made this insert wait for it), so
        // the next attempt reads it; three is plenty.
        for _ in 0..3 {
            if let Some(begun) = self.try_begin(m, &sha256, &key)? {
                return Ok(begun);
            }
        }
        Err(StoreError::GroupFailed(
            "the deduplication key kept changing under concurrent registrations".into(),
        ))
    }

    fn record_unregistered_rejection(
        &self,
        m: &NewMessage,
        rejection: &Rejection,
    ) -> Result<MessageRecord, StoreError> {
        let sha256 = super::normalise_sha256(&m.sha256)?;
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        insert_rejected(&mut tx, m, &sha256, rejection)?;
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1");
        let rec = record(&tx.query_one(&sql, &[&m.id.as_str()])?)?;
        tx.commit()?;
        Ok(rec)
    }

    fn record_step(
        &self,
        id: &MessageId,
        step: Step,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let added = steps_json(&[(step, detail, timestamp::now())])?;
        let n = self.client()?.execute(
            "UPDATE messages SET updated_at = now(), steps = steps || $2::text::jsonb
             WHERE id = $1",
            &[&id.as_str(), &added],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(id.clone()));
        }
        Ok(())
    }

    fn finish_forwarded(&self, id: &MessageId, receipt: &Receipt) -> Result<(), StoreError> {
        if &receipt.gateway_message_id != id {
            return Err(StoreError::InvalidInput(format!(
                "receipt for {} given for message {id}",
                receipt.gateway_message_id
            )));
        }
        let receipt_json = serde_json::to_string(receipt)?;
        self.finish(
            id,
            Outcome::Forwarded { receipt_json },
            Step::Forwarded,
            &receipt.queue,
            "finish as forwarded",
        )
    }

    fn finish_rejected(&self, id: &MessageId, code: Code, detail: &str) -> Result<(), StoreError> {
        // The code is the step's detail and the record's code; the sentence is the record's
        // detail.
        // A retryable refusal (the queue was down...) is no verdict on the message: its key
        // is released, so that the resend is processed afresh.
        let outcome = Outcome::Rejected {
            code: code.as_str(),
            detail: detail.to_owned(),
            release: code.retryable(),
        };
        self.finish(
            id,
            outcome,
            Step::Rejected,
            code.as_str(),
            "finish as rejected",
        )
    }

    fn get(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1");
        self.client()?
            .query_opt(&sql, &[&id.as_str()])?
            .map(|r| record(&r))
            .transpose()
    }

    fn violations(&self, id: &MessageId) -> Result<Option<Violations>, StoreError> {
        let row = self.client()?.query_opt(
            "SELECT violations_json FROM messages WHERE id = $1",
            &[&id.as_str()],
        )?;
        super::parse_violations(row.map(|r| r.try_get(0)).transpose()?.flatten())
    }

    fn steps(&self, id: &MessageId) -> Result<Vec<StepRecord>, StoreError> {
        let row = self.client()?.query_opt(
            "SELECT steps::text FROM messages WHERE id = $1",
            &[&id.as_str()],
        )?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let text: String = row.try_get(0)?;
        serde_json::from_str(&text).map_err(|e| corrupt("steps", e))
    }

    fn in_progress(&self) -> Result<Vec<MessageRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE status = 'in_progress'");
        self.client()?
            .query(&sql, &[])?
            .iter()
            .map(record)
            .collect()
    }

    fn abandon(&self, id: &MessageId, detail: &str) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let closed = close_interrupted(&mut tx, id, detail)?;
        tx.commit()?;
        Ok(closed)
    }

    fn list(&self, q: &super::MessageQuery) -> Result<Vec<MessageRecord>, StoreError> {
        super::browse::postgres_list(&mut self.client()?.client, q)
    }

    fn hours(&self, since: OffsetDateTime) -> Result<Vec<super::HourCount>, StoreError> {
        super::browse::postgres_hours(&mut self.client()?.client, since)
    }

    fn release(&self, id: &MessageId) -> Result<bool, StoreError> {
        super::browse::postgres_release(&mut self.client()?.client, id)
    }

    fn request(&self, event: &RequestEvent) -> Result<Vec<RequestRecord>, StoreError> {
        let records = super::requests::postgres(&mut self.client()?.client, event)?;
        if let RequestEvent::Ask(r) = event {
            self.bell.ring(&r.agency);
        }
        Ok(records)
    }

    fn request_bell(&self) -> Option<&super::RequestBell> {
        Some(&self.bell)
    }

    fn sign_in(&self, name: &str, event: SignInEvent) -> Result<SignInState, StoreError> {
        super::sign_ins::postgres(&mut self.client()?.client, name, event)
    }

    fn is_abandoned(&self, rec: &MessageRecord) -> bool {
        if rec.status != Status::InProgress || self.is_mine(rec) {
            return false;
        }
        let Some(owner) = rec.owner.as_deref() else {
            return true;
        };
        // Unknown (the database is unreachable) counts as alive: never settle another
        // instance's work on a guess.
        self.client()
            .and_then(|mut c| {
                Ok(c.query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM instances WHERE id = $1 AND lease_until > now())",
                    &[&owner],
                )?)
            })
            .map(|row| row.get::<_, bool>(0))
            .unwrap_or(false)
    }

    fn is_mine(&self, rec: &MessageRecord) -> bool {
        rec.owner.as_deref() == Some(&*self.instance)
    }

    fn hold(&self, what: &str) -> Result<bool, StoreError> {
        // The holder's liveness is its instance lease: a job changes hands only once that
        // has run out (or the holder gave it up by stopping).
        let row = self.client()?.query_opt(
            "INSERT INTO jobs (name, instance, since) VALUES ($1, $2, now())
             ON CONFLICT (name) DO UPDATE SET instance = EXCLUDED.instance, since = now()
                 WHERE jobs.instance <> EXCLUDED.instance
                   AND NOT EXISTS (SELECT 1 FROM instances i
                                   WHERE i.id = jobs.instance AND i.lease_until > now())
             RETURNING instance",
            &[&what, &&*self.instance],
        )?;
        if row.is_some() {
            return Ok(true);
        }
        let holder = self
            .client()?
            .query_opt("SELECT instance FROM jobs WHERE name = $1", &[&what])?;
        Ok(holder.is_some_and(|r| r.get::<_, String>(0) == *self.instance))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn not_ready(&self) -> Option<String> {
        if let Some(e) = self.lease_error.lock().ok().and_then(|e| e.clone()) {
            return Some(format!("ledger (PostgreSQL): {e}"));
        }
        match self
            .client()
            .and_then(|mut c| Ok(c.simple_query("SELECT 1")?))
        {
            Ok(_) => None,
            Err(e) => Some(format!("ledger (PostgreSQL): {e}")),
        }
    }

    fn advice(&self) -> Vec<String> {
        // `SHOW` is open to every role; a failure here is not the check's to report.
        let delay = self
            .client()
            .and_then(|mut c| Ok(c.query_one("SHOW commit_delay", &[])?))
            .and_then(|row| Ok(row.try_get::<_, String>(0)?));
        match delay {
            Ok(d) if d == "0" => vec![
                "commit_delay is 0, so every instance's commits flush the WAL on their own; \
                 commit_delay = 1000 and commit_siblings = 0 let them share flushes \
                 (docs/scale-out.md, \"PostgreSQL settings\")"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }
}

/// The channel admin changes are announced on.
const ADMIN_CHANNEL: &str = "gateway_admin";
/// The channel new requests are announced on, with their agency as the payload.
pub(super) const REQUESTS_CHANNEL: &str = "gateway_requests";
/// How often a waiting long poll looks at a shared ledger when its bell does not ring: only
/// what an announcement missed (a listener reconnecting) waits this long.
const REQUESTS_LOOK_EVERY: Duration = Duration::from_secs(15);

/// Tells every instance listening on the database at `url` that `keys/` changed (`what`: the
/// admin action), so they reload now rather than at their next periodic reload.
pub fn announce_admin_change(url: &str, what: &str) -> Result<(), StoreError> {
    let mut client = connection_config(url, Some(STATEMENT_TIMEOUT))?.connect(NoTls)?;
    client.execute("SELECT pg_notify($1, $2)", &[&ADMIN_CHANNEL, &what])?;
    Ok(())
}

/// Calls `on_change` for every admin change announced on the database at `url`, and rings
/// `bell` for every request (both once after each (re)connection too, for what was announced
/// while it was away), until `stop`. Reconnects with back-off; returns the thread.
pub fn watch_changes(
    url: String,
    on_change: Box<dyn Fn(&str) + Send>,
    bell: Option<super::RequestBell>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ledger-listen".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(250);
            while !stop.load(Ordering::Relaxed) {
                match listen(&url, &*on_change, bell.as_ref(), &stop) {
                    Ok(()) => backoff = Duration::from_millis(250),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for changes on PostgreSQL; retrying (keys/ is still checked before every payload, and waiting agents still look for requests every few seconds)");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
}

/// One connection's worth of listening; returns when it drops or `stop` is set.
fn listen(
    url: &str,
    on_change: &dyn Fn(&str),
    bell: Option<&super::RequestBell>,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let mut client = connection_config(url, None)?.connect(NoTls)?;
    client.batch_execute(&format!(
        "LISTEN {ADMIN_CHANNEL}; LISTEN {REQUESTS_CHANNEL}"
    ))?;
    on_change("(re)connected");
    if let Some(bell) = bell {
        bell.ring_everyone();
    }
    while !stop.load(Ordering::Relaxed) {
        {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_millis(500));
            while let Some(n) = postgres::fallible_iterator::FallibleIterator::next(&mut iter)? {
                match (n.channel(), bell) {
                    (REQUESTS_CHANNEL, Some(bell)) => bell.ring(n.payload()),
                    (REQUESTS_CHANNEL, None) => {}
                    _ => on_change(n.payload()),
                }
            }
        }
        if client.is_closed() {
            return Err(StoreError::Database("the connection closed".into()));
        }
    }
    Ok(())
}
