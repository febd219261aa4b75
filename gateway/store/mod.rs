//! The message ledger: one record per received message, with its processing
//! steps and final outcome.
//!
//! # Life of a record
//!
//! The gateway assigns every incoming message a [`MessageId`] the moment it is
//! received ([`MessageId::new`]); the same id names the staged outbox file, the
//! quarantine entry and the log lines. The ledger, however, only learns about a
//! message once its identity is known, because the deduplication key (agency,
//! agency message id, SHA-256 of the XML) is only available after the message
//! was decrypted and validated:
//!
//! * **Registered messages** — [`Store::begin`] is called *late*, once all fields
//!   of [`NewMessage`] are known (normally right after validation, before
//!   publishing to the outbox). Steps that happened before (opened, verified,
//!   validated) are passed in [`NewMessage::history`] with their real
//!   timestamps and written atomically with the record. `begin` answers:
//!   [`Begin::New`] (go on and forward), [`Begin::Duplicate`] (identical message
//!   already finished: answer with the original outcome, never queue it again),
//!   [`Begin::Conflict`] (same agency message id, different content: reject with
//!   code `duplicate`), or [`Begin::InProgress`] (identical message being
//!   processed right now). The record is then closed with
//!   [`Store::finish_forwarded`] or [`Store::finish_rejected`].
//! * **Unregistered rejections** — a message rejected before its identity is
//!   known (cannot be decrypted, bad signature, not well-formed, …) or rejected
//!   because of a [`Begin::Conflict`] is logged with
//!   [`Store::record_unregistered_rejection`]. Such records take no part in
//!   deduplication. Their `sha256` is that of the XML when known, otherwise that
//!   of the payload as received.
//!
//! A message that was *registered* and then rejected keeps its deduplication key,
//! so an identical resend gets [`Begin::Duplicate`] with the original rejection, unless the
//! rejection was retryable (`queue_unavailable`, `internal_error`...: the gateway's own
//! trouble, no verdict on the message): then the key is released and the resend is processed
//! afresh.
//! A *corrected* resend with the same agency message id but different content is
//! accepted as new: a rejected record never causes a [`Begin::Conflict`]; its key
//! is released and handed to the new record.
//!
//! # Crash consistency (stale `in_progress` records)
//!
//! If the gateway dies between `begin` and `finish_*`, the record stays
//! `in_progress`. A record whose last activity (`begin` or `record_step`) is
//! older than the *stale-after* period ([`DEFAULT_STALE_AFTER`],
//! 15 minutes) may be taken over: `begin` for an identical message then closes the
//! old record as `rejected` with code [`Code::Interrupted`] (releasing its key) and
//! registers the new one, answering [`Begin::New`] with the caller's new id.
//! Within the period the answer is [`Begin::InProgress`] and the caller should ask
//! the sender to retry later. The crash window between publishing to the outbox
//! and `finish_forwarded` makes delivery at-least-once; the hub can deduplicate
//! with the (agency, agency message id, sha256) in the outbox metadata.
//!
//! The trait is storage-agnostic; [`SqliteStore`] is the embedded implementation.
//! A PostgreSQL implementation can reuse the same schema (the deduplication key
//! is a single nullable column with a UNIQUE index, which behaves identically).

pub mod bell;
mod browse;
mod checkpoint;
pub mod owner;
mod postgres;
mod requests;
mod sign_ins;
mod sqlite;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use bell::RequestBell;
pub use browse::{HourCount, MessageQuery};
pub use postgres::PostgresStore;
pub(crate) use postgres::{connection_config, host_name};
pub use sqlite::SqliteStore;

use crate::message::{Channel, MessageId, Receipt, timestamp};
use crate::rejection::{Code, Rejection, Violations};

/// How long an `in_progress` record may be idle before an identical message may
/// take it over (see the module documentation).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// A processing step in a message's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The payload arrived.
    Received,
    /// The payload was decrypted.
    Opened,
    /// The signature was verified.
    Verified,
    /// The XML was validated against its schema.
    Validated,
    /// The message was published to the hub's queue.
    Forwarded,
    /// A receipt was issued to the agency.
    ReceiptIssued,
    /// The message was rejected.
    Rejected,
}

impl Step {
    /// The snake_case name (`"received"`, …, `"receipt_issued"`, `"rejected"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Received => "received",
            Step::Opened => "opened",
            Step::Verified => "verified",
            Step::Validated => "validated",
            Step::Forwarded => "forwarded",
            Step::ReceiptIssued => "receipt_issued",
            Step::Rejected => "rejected",
        }
    }
}

impl FromStr for Step {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "received" => Step::Received,
            "opened" => Step::Opened,
            "verified" => Step::Verified,
            "validated" => Step::Validated,
            "forwarded" => Step::Forwarded,
            "receipt_issued" => Step::ReceiptIssued,
            "rejected" => Step::Rejected,
            other => return Err(format!("unknown step {other:?}")),
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a record stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Registered, not finished yet.
    InProgress,
    /// Published to the hub's queue.
    Forwarded,
    /// Rejected (see the rejection code and detail).
    Rejected,
}

impl Status {
    /// `"in_progress"`, `"forwarded"` or `"rejected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Forwarded => "forwarded",
            Status::Rejected => "rejected",
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "in_progress" => Status::InProgress,
            "forwarded" => Status::Forwarded,
            "rejected" => Status::Rejected,
            other => return Err(format!("unknown status {other:?}")),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step that happened before the record was written, with its real time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingStep {
    /// Which step.
    pub step: Step,
    /// Free-text detail (never secrets or payload content).
    pub detail: Option<String>,
    /// When it happened.
    pub at: OffsetDateTime,
}

impl PendingStep {
    /// A step that happens now.
    pub fn now(step: Step, detail: Option<&str>) -> Self {
        PendingStep {
            step,
            detail: detail.map(str::to_owned),
            at: timestamp::now(),
        }
    }
}

/// What the caller knows about a message when registering it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The id assigned on receipt; becomes the record's id if it is new.
    pub id: MessageId,
    /// The sending agency.
    pub agency: String,
    /// The agency's own message id; when `None`, deduplication is on
    /// (agency, sha256) only.
    pub agency_message_id: Option<String>,
    /// Lowercase hex SHA-256 of the XML (see the module docs for unregistered
    /// rejections).
    pub sha256: String,
    /// Size in bytes of what `sha256` covers.
    pub size: u64,
    /// How the message arrived.
    pub channel: Channel,
    /// When the message arrived.
    pub received_at: OffsetDateTime,
    /// Steps after `received` that happened before registration, in order. The
    /// store records a `received` step at `received_at` itself, so don't include it.
    pub history: Vec<PendingStep>,
}

/// The stored record of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageRecord {
    /// The gateway's id.
    pub id: MessageId,
    /// The sending agency.
    pub agency: String,
    /// The agency's own message id, if known.
    pub agency_message_id: Option<String>,
    /// Lowercase hex SHA-256 (see [`NewMessage::sha256`]).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// How the message arrived.
    pub channel: Channel,
    /// Current status.
    pub status: Status,
    /// Machine-readable rejection code, when rejected.
    pub rejection_code: Option<String>,
    /// Human-readable rejection detail, when rejected.
    pub rejection_detail: Option<String>,
    /// The receipt as JSON, when forwarded.
    pub receipt_json: Option<String>,
    /// When the message arrived.
    #[serde(with = "timestamp::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Last activity (registration, a step, or the finish).
    #[serde(with = "timestamp::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the record was finished, if it is.
    #[serde(serialize_with = "serialize_opt_ts")]
    pub finished_at: Option<OffsetDateTime>,
    /// Who is processing it, while `in_progress`: a process (SQLite, see [`owner`]) or an
    /// instance holding a lease (PostgreSQL); [`Store::is_abandoned`] tells if it still lives.
    #[serde(skip)]
    pub owner: Option<String>,
}

fn serialize_opt_ts<S: serde::Serializer>(
    t: &Option<OffsetDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&timestamp::format(t)),
        None => s.serialize_none(),
    }
}

/// How both backends keep a rejection's violations (column `violations_json`).
fn violations_json(rejection: &Rejection) -> Result<Option<String>, StoreError> {
    Ok(match rejection.located() {
        Some(v) => Some(serde_json::to_string(&v)?),
        None => None,
    })
}

/// Reads back what [`violations_json`] wrote.
fn parse_violations(json: Option<String>) -> Result<Option<Violations>, StoreError> {
    Ok(match json {
        Some(json) => Some(serde_json::from_str(&json)?),
        None => None,
    })
}

impl MessageRecord {
    /// The stored receipt, parsed.
    pub fn receipt(&self) -> Result<Option<Receipt>, StoreError> {
        self.receipt_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(StoreError::from)
    }
}

/// One entry of a message's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// Free-text detail.
    pub detail: Option<String>,
    /// When it happened.
    #[serde(with = "timestamp::rfc3339")]
    pub at: OffsetDateTime,
}

/// The answer of [`Store::begin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Registered; the id is the caller's [`NewMessage::id`].
    New(MessageId),
    /// The identical message (same agency, agency message id and sha256) was
    /// already finished: answer with its outcome, whatever it was; never queue
    /// it a second time.
    Duplicate(MessageRecord),
    /// Same agency and agency message id, different content, and the earlier
    /// message is forwarded or in progress: reject with code `duplicate`.
    Conflict(MessageRecord),
    /// The identical message is being processed right now (and is not stale).
    InProgress(MessageRecord),
}

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (SQLite's or another backend's error, kept as the source).
    #[error("database error: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
    /// Creating or securing the database file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// No record with this id.
    #[error("no message {0}")]
    NotFound(MessageId),
    /// The record is not in a state that allows this operation.
    #[error("message {id} is {status}, cannot {action}")]
    InvalidTransition {
        /// The record.
        id: MessageId,
        /// Its current status.
        status: Status,
        /// What was attempted.
        action: &'static str,
    },
    /// The caller tried to register an id that already names another record.
    #[error("message id {0} is already used")]
    IdInUse(MessageId),
    /// The caller passed an unusable value (e.g. a malformed SHA-256).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The shared transaction that carried this write could not be committed.
    #[error("database error (group commit): {0}")]
    GroupFailed(String),
    /// A stored value could not be read back.
    #[error("corrupt ledger data: {0}")]
    Corrupt(String),
    /// The database was written by a newer version of the gateway.
    #[error("database schema version {found} is newer than supported {supported}")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Highest version this code knows.
        supported: i64,
    },
    /// The receipt could not be (de)serialized.
    #[error("receipt json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Opens the ledger `config` names (the embedded SQLite file `state/ledger.sqlite`, or the
/// shared PostgreSQL database whose URL is in `[ledger] url_env`): the one place a ledger
/// backend is chosen. On failure, what it concerns (a path, or the variable) and why.
pub fn open(
    config: &crate::config::Config,
) -> Result<Box<dyn Store>, (std::path::PathBuf, StoreError)> {
    match &config.ledger {
        crate::config::Ledger::Sqlite => {
            let ledger = config.ledger_path();
            crate::fsio::create_private_dir(&config.state)
                .map_err(|e| (ledger.clone(), e.into()))?;
            let store = SqliteStore::open(&ledger).map_err(|e| (ledger.clone(), e))?;
            Ok(Box::new(store))
        }
        crate::config::Ledger::Postgres {
            url_env,
            pool_size,
            lease,
        } => {
            let shown = std::path::PathBuf::from(format!("${url_env}"));
            let url = std::env::var(url_env).map_err(|_| {
                (
                    shown.clone(),
                    StoreError::InvalidInput(format!(
                        "[ledger] backend is postgres but the environment variable {url_env} (the database URL, e.g. postgres://gateway@db.example:5432/gateway) is not set"
                    )),
                )
            })?;
            let store = PostgresStore::open(&url, *pool_size, *lease).map_err(|e| (shown, e))?;
            Ok(Box::new(store))
        }
    }
}

/// The PostgreSQL URL `config` names, when the ledger is shared.
fn shared_url(config: &crate::config::Config) -> Option<Result<String, StoreError>> {
    match &config.ledger {
        crate::config::Ledger::Sqlite => None,
        crate::config::Ledger::Postgres { url_env, .. } => {
            Some(std::env::var(url_env).map_err(|_| {
                StoreError::InvalidInput(format!("the environment variable {url_env} is not set"))
            }))
        }
    }
}

/// After an admin command changed `keys/`: with a shared ledger, tells every instance to
/// reload now (PostgreSQL `NOTIFY`); alone, nothing to do (the server checks `keys/` itself).
pub fn announce_admin_change(config: &crate::config::Config, what: &str) -> Result<(), StoreError> {
    match shared_url(config) {
        None => Ok(()),
        Some(url) => postgres::announce_admin_change(&url?, what),
    }
}

/// With a shared ledger, calls `on_change` whenever an admin command on any instance changed
/// `keys/`, and rings `bell` whenever a request was asked anywhere (PostgreSQL `LISTEN`),
/// until `stop`; `None` alone.
pub fn watch_changes(
    config: &crate::config::Config,
    on_change: Box<dyn Fn(&str) + Send>,
    bell: Option<RequestBell>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<Result<std::thread::JoinHandle<()>, StoreError>> {
    let url = shared_url(config)?;
    Some(url.and_then(|url| {
        postgres::watch_changes(url, on_change, bell, stop).map_err(StoreError::from)
    }))
}

/// The message ledger. See the module documentation for the protocol.
pub trait Store: Send + Sync {
    /// Registers a message whose identity is known; deduplicates on
    /// (agency, agency_message_id, sha256), or (agency, sha256) when the agency
    /// message id is `None`. Records a `received` step plus `m.history`.
    fn begin(&self, m: &NewMessage) -> Result<Begin, StoreError>;

    /// Like [`Store::begin`], but the answer need not be on disk yet: call [`Store::sync`]
    /// before acting on a [`Begin::New`] in a way that must survive a crash (publishing the
    /// message). Meanwhile other commits usually make it durable for free.
    fn begin_deferred(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        self.begin(m)
    }

    /// Commits deferred writes now (a server calls it periodically, so that other processes
    /// reading the ledger see them).
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Returns once every commit made so far is on disk.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Logs a message rejected before it could be registered (or because of a
    /// [`Begin::Conflict`]). The record is created already `rejected`, with the
    /// steps `received`, `m.history` and `rejected`, its code and detail, and the places the
    /// XML is wrong (read back with [`Store::violations`]); it takes no part in
    /// deduplication.
    fn record_unregistered_rejection(
        &self,
        m: &NewMessage,
        rejection: &Rejection,
    ) -> Result<MessageRecord, StoreError>;

    /// Where the XML of rejected message `id` is wrong, as recorded by
    /// [`Store::record_unregistered_rejection`]: `None` when no place was given (or there is
    /// no such record).
    fn violations(&self, id: &MessageId) -> Result<Option<Violations>, StoreError>;

    /// Appends a step to a record (any status) and refreshes its last activity.
    fn record_step(
        &self,
        id: &MessageId,
        step: Step,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Closes an `in_progress` record as forwarded, storing the receipt and
    /// recording a `forwarded` step (detail: the queue).
    fn finish_forwarded(&self, id: &MessageId, receipt: &Receipt) -> Result<(), StoreError>;

    /// Like [`Store::finish_forwarded`], but the record need not be on disk, nor even
    /// committed, on return: it is committed with the next write, before any read of this
    /// store, or by [`Store::flush`], and is durable after the next [`Store::sync`] that follows
    /// that commit. Only for a
    /// message already durable in the queue: a crash before that leaves the record
    /// `in_progress`, and start-up settles an in-progress record whose message is in the queue
    /// as forwarded, with the same receipt. A failure to record it is logged.
    fn finish_forwarded_deferred(
        &self,
        id: &MessageId,
        receipt: &Receipt,
    ) -> Result<(), StoreError> {
        self.finish_forwarded(id, receipt)
    }

    /// Closes an `in_progress` record as rejected, recording a `rejected` step
    /// (detail: the code).
    fn finish_rejected(&self, id: &MessageId, code: Code, detail: &str) -> Result<(), StoreError>;

    /// The record with this id.
    fn get(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError>;

    /// The steps of a record, oldest first.
    fn steps(&self, id: &MessageId) -> Result<Vec<StepRecord>, StoreError>;

    /// Every record still `in_progress`.
    fn in_progress(&self) -> Result<Vec<MessageRecord>, StoreError>;

    /// Closes an `in_progress` record as `interrupted`, releasing its dedupe key so a resend
    /// is processed afresh. Returns false when it was no longer in progress.
    fn abandon(&self, id: &MessageId, detail: &str) -> Result<bool, StoreError>;

    /// Whether `rec` is `in_progress` and its owner is gone (a crash cut it off): for SQLite,
    /// a process of this host that no longer runs; for PostgreSQL, an instance whose lease
    /// expired. Never true for this process's own records.
    fn is_abandoned(&self, rec: &MessageRecord) -> bool;

    /// Whether `rec` was registered by this process (this instance).
    fn is_mine(&self, rec: &MessageRecord) -> bool;

    /// Why the ledger cannot take messages now, if it cannot (`/readyz`).
    fn not_ready(&self) -> Option<String> {
        None
    }

    /// Server settings worth changing, each as a sentence (`gateway check-config`).
    fn advice(&self) -> Vec<String> {
        Vec::new()
    }

    /// Claims (or keeps) the job `what` — e.g. `"inbox"`, watching the inbox folders — for
    /// this instance, when no live instance holds it; true while this instance holds it. A
    /// shared ledger gives one job to one instance at a time, for as long as its lease lives;
    /// a ledger of one host (SQLite) has one instance, which always holds every job.
    fn hold(&self, what: &str) -> Result<bool, StoreError> {
        let _ = what;
        Ok(true)
    }

    /// Whether several instances share this ledger (each job is then held by one).
    fn is_shared(&self) -> bool {
        false
    }

    /// Counts a sign-in of account `name` (see [`SignInEvent`]); what the ledger knows of its
    /// sign-ins afterwards. Every instance sharing the ledger sees the same counts, so a
    /// lock-out holds whichever instance the load balancer picks.
    fn sign_in(&self, name: &str, event: SignInEvent) -> Result<SignInState, StoreError>;

    /// Messages as the console lists them: newest first, filtered and paged as `q` says.
    fn list(&self, q: &MessageQuery) -> Result<Vec<MessageRecord>, StoreError>;

    /// Counts by agency, hour and status of the messages received since `since`.
    fn hours(&self, since: OffsetDateTime) -> Result<Vec<HourCount>, StoreError>;

    /// Releases the dedupe key of a rejected message, so that the same payload is processed
    /// afresh (an operator's re-run after a fix); false when the message is not rejected.
    fn release(&self, id: &MessageId) -> Result<bool, StoreError>;

    /// Asks, takes, reads, lists or closes hub requests (see [`RequestEvent`]); the requests
    /// concerned, as they are afterwards. A deadline that passed is applied first.
    fn request(&self, event: &RequestEvent) -> Result<Vec<RequestRecord>, StoreError>;

    /// The bell this store rings when it records a request, for the agents' long polls to
    /// wait on; `None`: they look at the ledger every second.
    fn request_bell(&self) -> Option<&RequestBell> {
        None
    }
}

/// Where a hub request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Asked, waiting for the agency's agent.
    Queued,
    /// Collected by the agent, not answered yet.
    Taken,
    /// Answered by a message.
    Answered,
    /// The agent could not answer, or its answer was rejected.
    Failed,
    /// The deadline passed first.
    TimedOut,
}

impl RequestState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Queued => "queued",
            RequestState::Taken => "taken",
            RequestState::Answered => "answered",
            RequestState::Failed => "failed",
            RequestState::TimedOut => "timed_out",
        }
    }

    /// Whether nothing more will happen to it.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            RequestState::Answered | RequestState::Failed | RequestState::TimedOut
        )
    }
}

impl FromStr for RequestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => RequestState::Queued,
            "taken" => RequestState::Taken,
            "answered" => RequestState::Answered,
            "failed" => RequestState::Failed,
            "timed_out" => RequestState::TimedOut,
            other => return Err(format!("unknown request state {other:?}")),
        })
    }
}

/// A request from the hub to an agency: a named query with parameters (Unix seconds for
/// the times).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Its id (`rq-` and a UUID).
    pub id: String,
    /// The agency asked.
    pub agency: String,
    /// The query's name, as the agency's agent knows it.
    pub query: String,
    /// The parameters, names to values (the agent checks their types).
    pub params: std::collections::BTreeMap<String, String>,
    /// Where it stands.
    pub state: RequestState,
    /// Who asked.
    pub asked_by: String,
    /// When.
    pub asked_at: i64,
    /// Unanswered then, it is timed out.
    pub deadline: i64,
    /// When the agent took it.
    pub taken_at: Option<i64>,
    /// When it was answered, failed or timed out.
    pub finished_at: Option<i64>,
    /// The message that answered it.
    pub message_id: Option<String>,
    /// Why it failed.
    pub detail: Option<String>,
}

/// What happens to hub requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEvent {
    /// A new request (state `queued`).
    Ask(RequestRecord),
    /// The agency's agent takes its oldest queued request, if any.
    Take {
        /// The agency.
        agency: String,
        /// Now (Unix seconds).
        now: i64,
    },
    /// One request.
    Get {
        /// Its id.
        id: String,
        /// Now (Unix seconds).
        now: i64,
    },
    /// The newest requests, of one agency or all.
    List {
        /// Only this agency's.
        agency: Option<String>,
        /// How many.
        limit: u32,
        /// Now (Unix seconds).
        now: i64,
    },
    /// Answered by `message_id` (if still open).
    Answered {
        /// The request.
        id: String,
        /// The answering message.
        message_id: String,
        /// Now (Unix seconds).
        now: i64,
    },
    /// Failed, and why (if still open).
    Failed {
        /// The request.
        id: String,
        /// Why.
        detail: String,
        /// Now (Unix seconds).
        now: i64,
    },
}

/// What happened at a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInEvent {
    /// Nothing yet: only read the state (is the account locked?).
    Look,
    /// A wrong password or code: one more failure; the `max_failures`-th locks the account
    /// until `lock_until` (Unix seconds) and starts the count again.
    Failed {
        /// Failures in a row that lock the account.
        max_failures: u32,
        /// When a lock that this failure sets ends.
        lock_until: i64,
    },
    /// The right password (and code): the failures are forgotten. With a TOTP step, only if
    /// it is later than the last step accepted (a code is good once).
    Succeeded {
        /// The time step of the code accepted, if any.
        totp_step: Option<i64>,
    },
}

/// The ledger's count of an account's sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInState {
    /// Failures in a row since the last success or lock.
    pub failures: u32,
    /// Locked until then (Unix seconds), if a lock was ever set.
    pub locked_until: Option<i64>,
    /// For [`SignInEvent::Succeeded`]: false when the code's step was used already.
    pub accepted: bool,
}

/// The deduplication key: JSON so that no agency or message id can make two
/// different triples collide.
fn dedupe_key(m: &NewMessage, sha256: &str) -> String {
    let parts: [&str; 3] = match &m.agency_message_id {
        Some(mid) => ["id", &m.agency, mid],
        None => ["sha256", &m.agency, sha256],
    };
    serde_json::to_string(&parts).unwrap_or_default()
}

fn normalise_sha256(s: &str) -> Result<String, StoreError> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(StoreError::InvalidInput(format!(
            "sha256 must be 64 hex digits, got {:?}",
            s.chars().take(80).collect::<String>()
        )))
    }
}

/// What `begin` does about `old`, the record that holds the dedupe key of a message whose
/// SHA-256 is `sha256` (the same for every backend; see the module documentation).
// Made once per registration and matched at once: boxing the answer would only allocate.
#[allow(clippy::large_enum_variant)]
enum Decision {
    /// Answer with this, registering nothing.
    Answer(Begin),
    /// `old` is a stale `in_progress` record: close it as `interrupted` (this detail), then
    /// register the new one.
    TakeOver(String),
    /// `old` was rejected: it gives its key up to the corrected resend, which is registered.
    Release,
}

fn decide(old: MessageRecord, m: &NewMessage, sha256: &str, now: OffsetDateTime) -> Decision {
    let same = old.sha256 == sha256;
    let idle = now - old.updated_at;
    let stale = idle.is_positive() && idle.unsigned_abs() >= DEFAULT_STALE_AFTER;
    match old.status {
        Status::Forwarded | Status::Rejected if same => Decision::Answer(Begin::Duplicate(old)),
        Status::Forwarded => Decision::Answer(Begin::Conflict(old)),
        Status::InProgress if !stale && same => Decision::Answer(Begin::InProgress(old)),
        Status::InProgress if !stale => Decision::Answer(Begin::Conflict(old)),
        Status::InProgress => {
            tracing::warn!(old = %old.id, new = %m.id, "taking over stale in-progress message");
            Decision::TakeOver(format!(
                "processing interrupted; idle since {}, taken over by {}",
                timestamp::format(&old.updated_at),
                m.id
            ))
        }
        Status::Rejected => Decision::Release,
    }
}
