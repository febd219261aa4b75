//! The pipeline as a whole: one sealed file in, one outcome out — forwarded to the queue with
//! its ledger record, a duplicate answered with the original outcome, or a rejection kept in
//! quarantine with its reason. Channels (CLI, folders, HTTPS) all call [`Gateway::process_file`].

mod forwarding;
mod outcome;
mod payload;
mod reject;
mod steps;

use std::path::{Path, PathBuf};

pub use forwarding::Forwarding;
pub use outcome::{Facts, Outcome, Sender, SignerFacts};
pub use payload::Payload;

use crate::config::Config;
use crate::keyring::{KeyringError, LiveKeyring};
use crate::message::{AgencyName, Channel, MessageId};
use crate::quarantine;
use crate::store::{MessageRecord, Status};
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
    /// Audit log.
    #[error("audit log {}: {error}", path.display())]
    Audit {
        /// Its folder.
        path: PathBuf,
        /// Why.
        error: crate::audit::AuditError,
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

impl Gateway {
    /// Loads keys and schemas; with `forward`, also opens the ledger, queue and quarantine.
    pub fn load(config: Config, forward: bool) -> Result<Gateway, StartError> {
        let keyring = LiveKeyring::load(&config.keys, &config.key_policy.passphrase)?;
        let catalog = Catalog::load(&config.schemas)?;
        let forwarding = if forward {
            Some(Forwarding::open(&config)?)
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
        if !fw.store.is_abandoned(rec) {
            if !fw.store.is_mine(rec) || self.is_active(&rec.id) {
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
    pub fn process_file(&self, agency: &AgencyName, channel: Channel, path: &Path) -> Outcome {
        self.process(agency, channel, Payload::File(path))
    }

    /// Runs one sealed payload from `agency` through the pipeline.
    pub fn process(&self, agency: &AgencyName, channel: Channel, payload: Payload<'_>) -> Outcome {
        self.process_by(agency, channel, payload, None, None)
    }

    /// Runs one sealed payload from `agency` through the pipeline; `person` is whoever signed
    /// in to upload it, whom the audit log names; `request` the hub's request it answers, if
    /// any (its id goes to the queue with the message).
    pub fn process_by(
        &self,
        agency: &AgencyName,
        channel: Channel,
        payload: Payload<'_>,
        person: Option<&str>,
        request: Option<&str>,
    ) -> Outcome {
        let mut m = steps::Message::new(agency, channel, &payload);
        m.request = request;
        let span = tracing::info_span!("message", id = %m.id, agency = %agency, channel = channel.as_str());
        let _enter = span.enter();
        let started = std::time::Instant::now();
        let working = self.working(&m.id);
        let result = self.run(&mut m);
        drop(working);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(rejection) => self.reject(&mut m, rejection),
        };
        let (labels, size) = outcome.metric_labels(agency, channel);
        self.metrics.record(labels, size, started.elapsed());
        if let Some(fw) = &self.forwarding {
            let from = Sender {
                agency,
                channel,
                person,
            };
            outcome::audit_outcome(&fw.audit, &from, &m.id, &outcome);
        }
        outcome
    }

    /// Runs every check of the pipeline (decryption, signature, schema) on one sealed payload
    /// from `agency`, so that an agency can try an export before sending it, and keeps nothing:
    /// no ledger record, no queue entry, no quarantine, no message metrics. The audit log says
    /// that the check was made, and its verdict.
    pub fn check_only(
        &self,
        agency: &AgencyName,
        channel: Channel,
        payload: Payload<'_>,
        person: Option<&str>,
    ) -> Outcome {
        let mut m = steps::Message::new(agency, channel, &payload);
        let span =
            tracing::info_span!("check", id = %m.id, agency = %agency, channel = channel.as_str());
        let _enter = span.enter();
        let outcome = match self.dry_run(&mut m) {
            Ok(outcome) => outcome,
            Err(rejection) => Outcome::Rejected {
                gateway_message_id: None,
                rejection,
                quarantined: None,
            },
        };
        if let Some(fw) = &self.forwarding {
            let from = Sender {
                agency,
                channel,
                person,
            };
            outcome::audit_check(&fw.audit, &from, &m.id, &outcome);
        }
        outcome
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
