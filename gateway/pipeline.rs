//! The pipeline as a whole: one sealed file in, one outcome out — forwarded to the queue with
//! its ledger record, a duplicate answered with the original outcome, or a rejection kept in
//! quarantine with its reason. Channels (CLI, folders, HTTPS) all call [`Gateway::process_file`].

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Config;
use crate::envelope::{Checks, Envelope, Validated};
use crate::keyring::{KeyringError, LiveKeyring};
use crate::quarantine::{self, Quarantine};
use crate::receipts::ReceiptSigner;
use crate::rejection::{Code, Rejection};
use crate::sinks::{MessageInfo, OutboxSink, Receipt};
use crate::store::{
    Begin, Channel, MessageId, MessageRecord, NewMessage, PendingStep, SqliteStore, Status, Step,
    Store,
};
use crate::validation::{Catalog, CatalogError};

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Schemas.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Keys.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Ledger.
    #[error("ledger {}: {error}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        error: crate::store::StoreError,
    },
    /// Outbox.
    #[error("outbox {}: {error}", path.display())]
    Sink {
        /// The queue folder.
        path: PathBuf,
        /// Why.
        error: crate::sinks::SinkError,
    },
    /// Quarantine.
    #[error("quarantine {}: {error}", path.display())]
    Quarantine {
        /// The folder.
        path: PathBuf,
        /// Why.
        error: quarantine::QuarantineError,
    },
}

/// What the forwarding side needs; absent in a dry run.
pub struct Forwarding {
    /// The ledger.
    pub store: Box<dyn Store>,
    /// The queue.
    pub sink: OutboxSink,
    /// Where rejected payloads are kept.
    pub quarantine: Quarantine,
    /// Signs receipts.
    pub receipts: ReceiptSigner,
    /// The audit trail of every outcome.
    pub audit: crate::audit::AuditLog,
}

impl Forwarding {
    /// Settles an `in_progress` record whose process died. If its metadata reached the queue,
    /// the queue is the truth: it is recorded as forwarded, with the receipt the queue entry
    /// gives, so a resend gets that receipt. Otherwise whatever was staged is withdrawn and the
    /// record closed as `interrupted`, releasing its key: a resend is processed afresh.
    /// Returns whether it was settled.
    pub fn settle_abandoned(&self, rec: &MessageRecord) -> bool {
        let settled = match self.sink.published(&rec.id) {
            Ok(Some(meta)) => {
                let receipt = Receipt::from_metadata(&meta, self.sink.queue());
                self.store
                    .finish_forwarded(&rec.id, &receipt)
                    .map(|()| "forwarded")
                    .map_err(|e| e.to_string())
            }
            Ok(None) => self
                .sink
                .withdraw_unpublished(&rec.id)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    self.store
                        .abandon(
                            &rec.id,
                            "processing was cut off (the gateway stopped) before the message reached the queue; a resend is processed afresh",
                        )
                        .map_err(|e| e.to_string())
                })
                .map(|_| "interrupted"),
            Err(e) => Err(e.to_string()),
        };
        match settled {
            Ok(outcome) => {
                tracing::warn!(id = %rec.id, agency = %rec.agency, outcome, "settled a message left in progress (by a crash, or a ledger write that failed)");
                let _ = self.audit.append(
                    "message",
                    &rec.agency,
                    &format!("recovered {outcome}"),
                    rec.id.as_str(),
                    serde_json::json!({ "sha256": rec.sha256 }),
                );
                true
            }
            Err(e) => {
                tracing::error!(id = %rec.id, error = %e, "cannot settle a message left in progress; will try again");
                false
            }
        }
    }

    /// Settles every abandoned `in_progress` record; returns how many.
    pub fn settle_all_abandoned(&self) -> usize {
        match self.store.in_progress() {
            Ok(records) => records
                .iter()
                .filter(|r| r.is_abandoned() && self.settle_abandoned(r))
                .count(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list the messages in progress");
                0
            }
        }
    }
}

/// A loaded gateway: configuration, keys, compiled schemas and (unless a dry run) the ledger,
/// queue and quarantine.
pub struct Gateway {
    /// The configuration it was loaded from.
    pub config: Config,
    /// Identities and trust.
    pub keyring: LiveKeyring,
    /// Compiled schemas.
    pub catalog: Catalog,
    /// `None` for a dry run: check only, nothing recorded or forwarded.
    pub forwarding: Option<Forwarding>,
    /// Counts and timings of every outcome.
    pub metrics: crate::metrics::Metrics,
    /// Messages this process is working on now, by ledger id: an `in_progress` record of
    /// ours that is not among them had its final ledger write fail, and is settled (from the
    /// queue) instead of answering "being processed" for ever.
    active: std::sync::Mutex<std::collections::HashSet<MessageId>>,
    /// This process, as the ledger names owners.
    owner: String,
}

/// Keeps a message id in [`Gateway::active`] while it is processed.
struct Working<'a> {
    gateway: &'a Gateway,
    id: MessageId,
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        let mut active = self
            .gateway
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        active.remove(&self.id);
    }
}

/// The outcome of one payload.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Dry run: everything passed; nothing was forwarded.
    Accepted {
        /// What was established.
        #[serde(flatten)]
        facts: Facts,
    },
    /// In the queue.
    Forwarded {
        /// What was established.
        #[serde(flatten)]
        facts: Facts,
        /// The receipt.
        receipt: Receipt,
    },
    /// Sent before: the original outcome, nothing queued again.
    Duplicate {
        /// The original message.
        gateway_message_id: String,
        /// Its outcome: `forwarded` or `rejected`.
        original_status: String,
        /// Its receipt, when it was forwarded.
        #[serde(skip_serializing_if = "Option::is_none")]
        receipt: Option<Receipt>,
        /// Its rejection code, when it was rejected.
        #[serde(skip_serializing_if = "Option::is_none")]
        original_code: Option<String>,
    },
    /// Refused.
    Rejected {
        /// The ledger id, when recorded.
        #[serde(skip_serializing_if = "Option::is_none")]
        gateway_message_id: Option<String>,
        /// Why.
        rejection: Rejection,
        /// Where the payload was kept, as received.
        #[serde(skip_serializing_if = "Option::is_none")]
        quarantined: Option<PathBuf>,
    },
}

impl Outcome {
    /// Whether the sender's message is (or already was) safely accepted.
    pub fn is_success(&self) -> bool {
        match self {
            Outcome::Accepted { .. } | Outcome::Forwarded { .. } => true,
            Outcome::Duplicate {
                original_status, ..
            } => original_status == Status::Forwarded.as_str(),
            Outcome::Rejected { .. } => false,
        }
    }
}

/// What checking established about a message.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// The gateway's id for it.
    pub gateway_message_id: String,
    /// The sending agency.
    pub agency: String,
    /// The agency's own id, from the document.
    pub agency_message_id: Option<String>,
    /// The schema it is valid against.
    pub schema_id: String,
    /// Its root element.
    pub root: String,
    /// SHA-256 of the XML.
    pub sha256: String,
    /// Size of the XML.
    pub size: u64,
    /// The XML's encoding.
    pub encoding: String,
    /// The (first) signer.
    pub signer: SignerFacts,
    /// Every signer, in signing order (the first is `signer`).
    pub signers: Vec<SignerFacts>,
}

/// Who signed.
#[derive(Debug, Clone, Serialize)]
pub struct SignerFacts {
    /// Certificate subject.
    pub subject: String,
    /// SHA-256 of the certificate.
    pub fingerprint_sha256: String,
}

fn facts(id: &MessageId, env: &Envelope<Validated>) -> Facts {
    let v = &env.state;
    let signers: Vec<SignerFacts> = v
        .signers
        .iter()
        .map(|s| SignerFacts {
            subject: s.subject.clone(),
            fingerprint_sha256: s.fingerprint_sha256.clone(),
        })
        .collect();
    Facts {
        gateway_message_id: id.to_string(),
        agency: env.agency.clone(),
        agency_message_id: v.agency_message_id.clone(),
        schema_id: v.schema_id.clone(),
        root: v.root.clone(),
        sha256: v.sha256.clone(),
        size: v.size,
        encoding: v.encoding.clone(),
        signer: signers.first().cloned().unwrap_or(SignerFacts {
            subject: String::new(),
            fingerprint_sha256: String::new(),
        }),
        signers,
    }
}

/// Every signer's certificate fingerprint, in signing order.
fn fingerprints(v: &Validated) -> Vec<String> {
    v.signers
        .iter()
        .map(|s| s.fingerprint_sha256.clone())
        .collect()
}

impl Gateway {
    /// Loads keys and schemas; with `forward`, also opens the ledger, queue and quarantine.
    pub fn load(config: Config, forward: bool) -> Result<Gateway, StartError> {
        let keyring = LiveKeyring::load(&config.keys, &config.key_policy.passphrase)?;
        let catalog = Catalog::load(&config.schemas)?;
        let forwarding = if forward {
            let ledger = config.ledger_path();
            crate::fsio::create_private_dir(&config.state).map_err(|e| StartError::Store {
                path: ledger.clone(),
                error: e.into(),
            })?;
            let store = SqliteStore::open(&ledger).map_err(|error| StartError::Store {
                path: ledger.clone(),
                error,
            })?;
            let queue = config.queue_dir();
            let sink = OutboxSink::open(&queue)
                .map_err(|error| StartError::Sink {
                    path: queue.clone(),
                    error,
                })?
                .with_hub_recipients(config.hub_recipients.clone());
            let receipts = ReceiptSigner::load(&config.keys)?;
            let audit_dir = config.audit_dir();
            let audit =
                crate::audit::AuditLog::open(&audit_dir).map_err(|e| StartError::Store {
                    path: audit_dir.clone(),
                    error: crate::store::StoreError::Io(std::io::Error::other(e.to_string())),
                })?;
            let qdir = config.quarantine_dir();
            let quarantine =
                Quarantine::open_with(&qdir, config.quarantine.clone(), Some(audit.clone()))
                    .map_err(|error| StartError::Quarantine {
                        path: qdir.clone(),
                        error,
                    })?;
            let fw = Forwarding {
                audit,
                receipts,
                store: Box::new(store),
                sink,
                quarantine,
            };
            fw.settle_all_abandoned();
            Some(fw)
        } else {
            None
        };
        Ok(Gateway {
            config,
            keyring,
            catalog,
            forwarding,
            metrics: crate::metrics::Metrics::new(),
            active: Default::default(),
            owner: crate::store::owner::token(),
        })
    }

    fn working(&self, id: &MessageId) -> Working<'_> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.insert(id.clone());
        Working {
            gateway: self,
            id: id.clone(),
        }
    }

    fn is_active(&self, id: &MessageId) -> bool {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.contains(id)
    }

    /// Settles `rec` (an `in_progress` record) if nobody is working on it: its process is
    /// gone, or it is this process's and its final write failed. Returns whether it did.
    fn settle_if_stuck(&self, fw: &Forwarding, rec: &MessageRecord) -> bool {
        if !rec.is_abandoned() {
            if rec.owner.as_deref() != Some(self.owner.as_str()) || self.is_active(&rec.id) {
                return false;
            }
            // It may only look unfinished: its final write may be waiting for a commit.
            let _ = fw.store.flush();
            match fw.store.get(&rec.id) {
                Ok(Some(now)) if now.status == Status::InProgress && !self.is_active(&rec.id) => {}
                _ => return false,
            }
        }
        fw.settle_abandoned(rec)
    }

    /// Settles every `in_progress` record nobody works on (the server calls it every few
    /// seconds, so a failed ledger write is repaired without a restart); returns how many.
    pub fn settle_stuck(&self) -> usize {
        let Some(fw) = &self.forwarding else {
            return 0;
        };
        match fw.store.in_progress() {
            Ok(records) => records
                .iter()
                .filter(|r| self.settle_if_stuck(fw, r))
                .count(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list the messages in progress");
                0
            }
        }
    }

    /// Applies the quarantine's retention period and quotas (at start-up and periodically
    /// while serving) and logs what it removed.
    pub fn sweep_quarantine(&self) {
        let Some(fw) = &self.forwarding else { return };
        match fw.quarantine.sweep() {
            Ok(s) => tracing::info!(
                expired = s.expired,
                evicted = s.evicted,
                orphans = s.orphans,
                entries = s.entries,
                bytes = s.bytes,
                "quarantine swept"
            ),
            Err(e) => tracing::error!(error = %e, "cannot sweep the quarantine"),
        }
    }

    /// Commits the ledger's deferred writes (the final state of the last messages forwarded);
    /// the server calls it periodically, so that other processes see them when no further
    /// message carries them.
    pub fn flush_ledger(&self) {
        if let Some(fw) = &self.forwarding
            && let Err(e) = fw.store.flush()
        {
            tracing::error!(error = %e, "cannot commit the ledger's deferred writes");
        }
    }

    /// Runs one sealed file from `agency` through the pipeline.
    pub fn process_file(&self, agency: &str, channel: Channel, path: &Path) -> Outcome {
        self.process(agency, channel, Payload::File(path))
    }

    /// Runs one sealed payload from `agency` through the pipeline.
    pub fn process(&self, agency: &str, channel: Channel, payload: Payload<'_>) -> Outcome {
        let received_at = OffsetDateTime::now_utc();
        let id = MessageId::new();
        let span = tracing::info_span!("message", id = %id, agency, channel = channel.as_str());
        let _enter = span.enter();
        let started = std::time::Instant::now();
        let working = self.working(&id);
        let result = self.run(agency, channel, &payload, &id, received_at);
        drop(working);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err((rejection, history)) => self.reject(
                agency,
                channel,
                &payload,
                &id,
                received_at,
                rejection,
                history,
            ),
        };
        self.metrics
            .record(agency, channel.as_str(), &outcome, started.elapsed());
        if let Some(fw) = &self.forwarding {
            audit_outcome(&fw.audit, agency, channel, &id, &outcome);
        }
        outcome
    }

    fn run(
        &self,
        agency: &str,
        channel: Channel,
        payload: &Payload<'_>,
        id: &MessageId,
        received_at: OffsetDateTime,
    ) -> Result<Outcome, (Rejection, Vec<PendingStep>)> {
        let mut history = Vec::new();
        let fail = |r: Rejection, h: &Vec<PendingStep>| (r, h.clone());
        let (file, size) = payload.open().map_err(|e| {
            let code = if e.is_not_regular() {
                Code::NotARegularFile
            } else {
                Code::QueueUnavailable
            };
            fail(
                Rejection::new(code, format!("cannot read the payload: {e}")),
                &history,
            )
        })?;
        // One keyring for the whole payload, whatever reloads happen meanwhile.
        let ring = self.keyring.get();
        // One limit on every channel: HTTPS refuses a larger upload before reading it, the
        // folders and `import` here, with the same code and sentence.
        let max = payload_limit(&ring, &self.config, agency);
        if size > max {
            return Err(fail(
                Rejection::new(
                    Code::PayloadTooLarge,
                    format!("the payload is {size} bytes; the limit for {agency} is {max} bytes"),
                ),
                &history,
            ));
        }
        let opened = Envelope::received(agency, file.take(max))
            .open(&ring.identities)
            .map_err(|r| fail(r, &history))?;
        let identity = opened.opened_with().to_owned();
        if ring
            .identities
            .in_grace(&identity, time::OffsetDateTime::now_utc())
        {
            // Who still seals to a rotated-out recipient: what an admin checks before retiring.
            tracing::info!(identity = %identity, "opened with an identity in grace");
            self.metrics.record_grace_open(agency, &identity);
        }
        history.push(PendingStep::now(
            Step::Opened,
            Some(&format!("identity {identity}")),
        ));
        let checks = Checks {
            trust: &ring.trust,
            catalog: &self.catalog,
            limits: &self.config.limits,
            now: SystemTime::now(),
        };
        let Some(fw) = &self.forwarding else {
            let env = opened
                .verify_and_validate(&checks, &mut io::sink())
                .map_err(|r| fail(r, &history))?;
            return Ok(Outcome::Accepted {
                facts: facts(id, &env),
            });
        };
        let queue_down = |e: &dyn std::fmt::Display| {
            Rejection::new(
                Code::QueueUnavailable,
                format!("the queue cannot take the message: {e}"),
            )
        };
        let mut staged = fw
            .sink
            .stage(id)
            .map_err(|e| fail(queue_down(&e), &history))?;
        let (validated, transcoded) = if self.config.transcode_to_utf8 {
            let mut to_utf8 = crate::sinks::transcode::ToUtf8::new(&mut staged);
            let validated = opened.verify_and_validate(&checks, &mut to_utf8);
            let finished = to_utf8.finish();
            (validated, Some(finished))
        } else {
            (opened.verify_and_validate(&checks, &mut staged), None)
        };
        let env = match validated {
            Ok(env) => env,
            Err(r) => {
                staged.discard();
                return Err(fail(r, &history));
            }
        };
        let transcoded = match transcoded.transpose() {
            Ok(t) => t.flatten(),
            Err(e) => {
                staged.discard();
                return Err(fail(queue_down(&crate::sinks::SinkError::Io(e)), &history));
            }
        };
        history.push(PendingStep::now(
            Step::Verified,
            Some(&fingerprints(&env.state).join(", ")),
        ));
        history.push(PendingStep::now(
            Step::Validated,
            Some(&env.state.schema_id),
        ));
        let v = &env.state;
        let new = NewMessage {
            id: id.clone(),
            agency: agency.to_owned(),
            agency_message_id: v.agency_message_id.clone(),
            sha256: v.sha256.clone(),
            size: v.size,
            channel,
            received_at,
            history: history.clone(),
        };
        // Not fsynced here: the record is made durable just before the message becomes
        // visible in the queue (see `publish_after`), usually by another message's fsync.
        let mut begun = fw.store.begin_deferred(&new);
        if let Ok(Begin::InProgress(original)) = &begun
            && self.settle_if_stuck(fw, original)
        {
            // Nobody works on it any more (a crash, or its final ledger write failed): it
            // was settled now rather than make the sender wait; decide again.
            begun = fw.store.begin_deferred(&new);
        }
        match begun {
            Err(e) => {
                staged.discard();
                Err(fail(queue_down(&e), &history))
            }
            Ok(Begin::Duplicate(original)) => {
                staged.discard();
                tracing::info!(original = %original.id, "resend of a known message");
                Ok(duplicate(&original))
            }
            Ok(Begin::Conflict(original)) => {
                staged.discard();
                Err(fail(
                    Rejection::new(
                        Code::Duplicate,
                        format!(
                            "message id {} was already used by message {} with different content",
                            v.agency_message_id.as_deref().unwrap_or("(none)"),
                            original.id
                        ),
                    ),
                    &history,
                ))
            }
            Ok(Begin::InProgress(original)) => {
                staged.discard();
                Err(fail(
                    Rejection::new(
                        Code::QueueUnavailable,
                        format!(
                            "the same message is being processed now (as {}): try again shortly",
                            original.id
                        ),
                    ),
                    &history,
                ))
            }
            Ok(Begin::New(id)) => {
                let info = MessageInfo {
                    gateway_message_id: id.clone(),
                    agency: agency.to_owned(),
                    agency_message_id: v.agency_message_id.clone(),
                    schema_id: v.schema_id.clone(),
                    signer_fingerprint_sha256: fingerprints(v)
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                    signer_fingerprints_sha256: fingerprints(v),
                    encoding: v.encoding.clone(),
                    transcoded: transcoded.clone(),
                    sha256: v.sha256.clone(),
                    size: v.size,
                    channel,
                    received_at,
                };
                let ledger_durable = || {
                    fw.store.sync().map_err(|e| {
                        crate::sinks::SinkError::Io(io::Error::other(format!("ledger: {e}")))
                    })
                };
                match staged.publish_after(&info, ledger_durable) {
                    Ok(published) => {
                        let receipt = published.receipt;
                        // Not fsynced here: the message is durable in the queue, and the
                        // next message's sync (or start-up, after a crash) settles the record.
                        if let Err(e) = fw
                            .store
                            .finish_forwarded_deferred(&id, &receipt)
                            .or_else(|_| fw.store.finish_forwarded(&id, &receipt))
                        {
                            // The hub has it, but no success is claimed that the ledger
                            // cannot back: the resend is answered from the queue (settled
                            // as forwarded, with this receipt) once the ledger can write.
                            tracing::error!(error = %e, "forwarded but the ledger could not record it; a resend gets the receipt once it can");
                            return Ok(Outcome::Rejected {
                                gateway_message_id: Some(id.to_string()),
                                rejection: Rejection::new(
                                    Code::QueueUnavailable,
                                    format!(
                                        "the message reached the queue but the ledger could not record it ({e}): send it again later; the resend is answered with its receipt"
                                    ),
                                ),
                                quarantined: None,
                            });
                        }
                        tracing::info!(schema = %v.schema_id, size = v.size, queue = %receipt.queue, "forwarded");
                        Ok(Outcome::Forwarded {
                            facts: facts(&id, &env),
                            receipt,
                        })
                    }
                    Err(e) => {
                        let r = queue_down(&e);
                        let _ = fw.store.finish_rejected(&id, r.code, &r.detail);
                        Ok(Outcome::Rejected {
                            gateway_message_id: Some(id.to_string()),
                            rejection: r,
                            quarantined: None,
                        })
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(
        &self,
        agency: &str,
        channel: Channel,
        payload: &Payload<'_>,
        id: &MessageId,
        received_at: OffsetDateTime,
        rejection: Rejection,
        history: Vec<PendingStep>,
    ) -> Outcome {
        tracing::info!(code = %rejection.code, detail = %rejection.detail, "rejected");
        let Some(fw) = &self.forwarding else {
            return Outcome::Rejected {
                gateway_message_id: None,
                rejection,
                quarantined: None,
            };
        };
        // Our own failures leave nothing behind: the sender retries with the same file.
        if rejection.retryable() {
            return Outcome::Rejected {
                gateway_message_id: None,
                rejection,
                quarantined: None,
            };
        }
        let (sha256, size) = payload
            .open()
            .map_err(io::Error::other)
            .and_then(|(r, _)| hash_reader(r))
            .unwrap_or_default();
        let new = NewMessage {
            id: id.clone(),
            agency: agency.to_owned(),
            agency_message_id: None,
            sha256,
            size,
            channel,
            received_at,
            history,
        };
        if let Err(e) =
            fw.store
                .record_unregistered_rejection(&new, rejection.code, &rejection.detail)
        {
            tracing::error!(error = %e, "the ledger could not record a rejection");
        }
        let reason = quarantine::Rejection {
            code: rejection.code.as_str().to_owned(),
            detail: rejection.detail.clone(),
            violations: (!rejection.violations.is_empty()).then(|| {
                rejection
                    .violations
                    .iter()
                    .map(|v| quarantine::Violation {
                        line: Some(v.line),
                        column: Some(v.column),
                        path: Some(v.path.clone()),
                        code: v.code.clone(),
                        message: v.message.clone(),
                    })
                    .collect()
            }),
            received_at,
            original_name: payload.name(),
        };
        let kept = payload
            .open()
            .map_err(|e| quarantine::QuarantineError::from(io::Error::other(e)))
            .and_then(|(r, _)| fw.quarantine.keep(id, agency, r, &reason));
        let quarantined = match kept {
            Ok(p) => Some(p),
            // Logged and audited as dropped by the quarantine.
            Err(quarantine::QuarantineError::TooLarge { .. }) => None,
            Err(e) => {
                tracing::error!(error = %e, "a rejected payload could not be quarantined");
                None
            }
        };
        Outcome::Rejected {
            gateway_message_id: Some(id.to_string()),
            rejection,
            quarantined,
        }
    }
}

/// The largest sealed payload `agency` may send: its own `max_payload_bytes` (`agency.toml`)
/// when it has one, never more than `[limits] max_payload_bytes`.
pub fn payload_limit(ring: &crate::keyring::Keyring, config: &Config, agency: &str) -> u64 {
    let global = config.limits.max_payload_bytes;
    ring.agencies
        .iter()
        .find(|a| a.name == agency)
        .and_then(|a| a.max_payload_bytes)
        .map_or(global, |own| own.min(global))
}

fn duplicate(original: &MessageRecord) -> Outcome {
    Outcome::Duplicate {
        gateway_message_id: original.id.to_string(),
        original_status: original.status.as_str().to_owned(),
        receipt: original.receipt().ok().flatten(),
        original_code: original.rejection_code.clone(),
    }
}

/// A sealed payload as received: a file (watched folders, import, large uploads) or, for
/// small HTTPS uploads, the bytes in memory — creating and deleting a file per small message
/// costs more than everything else on some filesystems (ext4 without a journal scans
/// recently deleted inodes on every create).
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A file on disk.
    File(&'a Path),
    /// Bytes received, with the name to record for them.
    Bytes {
        /// The sealed payload.
        bytes: &'a [u8],
        /// A name for messages and the quarantine record.
        name: &'a str,
    },
}

impl<'a> Payload<'a> {
    /// A reader from its start, and its size. Only regular files are opened: a FIFO would
    /// block and a device (`/dev/zero`) never end, whatever the channel passed in.
    fn open(&self) -> Result<(Box<dyn Read + Send + 'a>, u64), crate::fsio::InputError> {
        match *self {
            Payload::File(path) => {
                let (f, size) = crate::fsio::open_regular(path)?;
                Ok((Box::new(f), size))
            }
            Payload::Bytes { bytes, .. } => Ok((Box::new(bytes), bytes.len() as u64)),
        }
    }

    fn name(&self) -> Option<String> {
        match *self {
            Payload::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Payload::Bytes { name, .. } => Some(name.to_owned()),
        }
    }
}

fn hash_reader(mut f: impl Read) -> io::Result<(String, u64)> {
    let mut h = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(buf.get(..k).unwrap_or_default());
        n += k as u64;
    }
    Ok((hex::encode(h.finish()), n))
}

/// One audit record per message outcome.
fn audit_outcome(
    log: &crate::audit::AuditLog,
    agency: &str,
    channel: Channel,
    id: &MessageId,
    outcome: &Outcome,
) {
    let (action, subject, details) = match outcome {
        Outcome::Accepted { facts } | Outcome::Forwarded { facts, .. } => (
            "forwarded",
            facts.gateway_message_id.clone(),
            serde_json::json!({
                "channel": channel.as_str(),
                "agency_message_id": facts.agency_message_id,
                "schema_id": facts.schema_id,
                "sha256": facts.sha256,
                "size": facts.size,
                "signer_fingerprint_sha256": facts.signer.fingerprint_sha256,
                "signer_fingerprints_sha256": facts.signers.iter().map(|s| s.fingerprint_sha256.as_str()).collect::<Vec<_>>(),
            }),
        ),
        Outcome::Duplicate {
            gateway_message_id,
            original_status,
            ..
        } => (
            "duplicate",
            id.to_string(),
            serde_json::json!({
                "channel": channel.as_str(),
                "original": gateway_message_id,
                "original_status": original_status,
            }),
        ),
        Outcome::Rejected {
            rejection,
            gateway_message_id,
            ..
        } => (
            "rejected",
            gateway_message_id.clone().unwrap_or_else(|| id.to_string()),
            serde_json::json!({
                "channel": channel.as_str(),
                "code": rejection.code,
                "detail": rejection.detail,
            }),
        ),
    };
    if let Err(e) = log.append("message", agency, action, &subject, details) {
        tracing::error!(error = %e, "the audit log could not record a message outcome");
    }
}
