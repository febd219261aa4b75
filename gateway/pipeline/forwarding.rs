//! The forwarding side of a loaded gateway: the ledger, the queue, the quarantine, the
//! receipt signer and the audit log, behind the [`Store`] and [`Sink`] traits. Absent in a
//! dry run (`gateway check`).

use super::StartError;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::quarantine::Quarantine;
use crate::receipts::ReceiptSigner;
use crate::sinks::Sink;
use crate::store::{MessageRecord, Store};

/// What the forwarding side needs; absent in a dry run.
pub struct Forwarding {
    /// The ledger.
    pub store: Box<dyn Store>,
    /// The queue.
    pub sink: Box<dyn Sink>,
    /// Where rejected payloads are kept.
    pub quarantine: Quarantine,
    /// Signs receipts.
    pub receipts: ReceiptSigner,
    /// The audit trail of every outcome.
    pub audit: AuditLog,
}

impl Forwarding {
    /// Opens the ledger, queue, quarantine, receipt signer and audit log that `config` names,
    /// and settles what a crash left in progress. The backends are chosen by
    /// [`crate::store::open`] and [`crate::sinks::open`]; nothing here names one.
    pub fn open(config: &Config) -> Result<Forwarding, StartError> {
        let store = crate::store::open(config)
            .map_err(|(path, error)| StartError::Store { path, error })?;
        let sink =
            crate::sinks::open(config).map_err(|(path, error)| StartError::Sink { path, error })?;
        let receipts = ReceiptSigner::load(&config.keys)?;
        let audit_dir = config.audit_dir();
        let audit = AuditLog::open_for(config, None).map_err(|error| StartError::Audit {
            path: audit_dir.clone(),
            error,
        })?;
        let qdir = config.quarantine_dir();
        let quarantine =
            Quarantine::open_with(&qdir, config.quarantine.clone(), Some(audit.clone())).map_err(
                |error| StartError::Quarantine {
                    path: qdir.clone(),
                    error,
                },
            )?;
        let fw = Forwarding {
            audit,
            receipts,
            store,
            sink,
            quarantine,
        };
        fw.settle_all_abandoned();
        Ok(fw)
    }

    /// Settles an `in_progress` record whose process died. If its metadata reached the queue,
    /// the queue is the truth: it is recorded as forwarded, with the receipt the queue entry
    /// gives, so a resend gets that receipt. Otherwise whatever was staged is withdrawn and the
    /// record closed as `interrupted`, releasing its key: a resend is processed afresh.
    /// Returns whether it was settled.
    pub fn settle_abandoned(&self, rec: &MessageRecord) -> bool {
        let settled = match self.sink.published(&rec.id) {
            Ok(Some(meta)) => {
                let receipt = meta.receipt(self.sink.queue());
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
                .filter(|r| self.store.is_abandoned(r) && self.settle_abandoned(r))
                .count(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list the messages in progress");
                0
            }
        }
    }
}
