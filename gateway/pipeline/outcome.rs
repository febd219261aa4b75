//! What became of a message, as the sender, the audit log and the metrics see it.

use std::path::PathBuf;

use serde::Serialize;

use crate::audit::AuditLog;
use crate::envelope::{Envelope, Validated};
use crate::message::{Channel, MessageId, Receipt};
use crate::metrics::MessageLabels;
use crate::rejection::Rejection;
use crate::store::{MessageRecord, Status};

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

    /// The gateway's message id, when the message has one (a refusal before the ledger has
    /// none); for a resend, the original's.
    pub fn gateway_message_id(&self) -> Option<String> {
        match self {
            Outcome::Accepted { facts } | Outcome::Forwarded { facts, .. } => {
                Some(facts.gateway_message_id.clone())
            }
            Outcome::Duplicate {
                gateway_message_id, ..
            } => Some(gateway_message_id.clone()),
            Outcome::Rejected {
                gateway_message_id, ..
            } => gateway_message_id.clone(),
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

pub(super) fn facts(id: &MessageId, env: &Envelope<Validated>) -> Facts {
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

impl Outcome {
    /// Its labels in `gateway_messages_total`, and the XML's size when it was accepted.
    pub(super) fn metric_labels(
        &self,
        agency: &str,
        channel: Channel,
    ) -> (MessageLabels, Option<u64>) {
        let (outcome, code, size) = match self {
            Outcome::Accepted { facts } => ("accepted", "", Some(facts.size)),
            Outcome::Forwarded { facts, .. } => ("forwarded", "", Some(facts.size)),
            Outcome::Duplicate { .. } => ("duplicate", "", None),
            Outcome::Rejected { rejection, .. } => ("rejected", rejection.code.as_str(), None),
        };
        let labels = MessageLabels {
            agency: agency.to_owned(),
            channel: channel.as_str().to_owned(),
            outcome: outcome.to_owned(),
            code: code.to_owned(),
        };
        (labels, size)
    }
}

pub(super) fn duplicate(original: &MessageRecord) -> Outcome {
    Outcome::Duplicate {
        gateway_message_id: original.id.to_string(),
        original_status: original.status.as_str().to_owned(),
        receipt: original.receipt().ok().flatten(),
        original_code: original.rejection_code.clone(),
    }
}

/// The audit record of a check-only run (`check_only`): what was checked and the verdict.
pub(super) fn audit_check(log: &AuditLog, from: &Sender<'_>, id: &MessageId, outcome: &Outcome) {
    let channel = from.channel;
    let mut details = match outcome {
        Outcome::Accepted { facts } | Outcome::Forwarded { facts, .. } => serde_json::json!({
            "channel": channel.as_str(),
            "verdict": "passed",
            "agency_message_id": facts.agency_message_id,
            "schema_id": facts.schema_id,
            "sha256": facts.sha256,
        }),
        Outcome::Rejected { rejection, .. } => serde_json::json!({
            "channel": channel.as_str(),
            "verdict": "refused",
            "code": rejection.code,
            "detail": rejection.detail,
        }),
        Outcome::Duplicate { .. } => serde_json::json!({ "channel": channel.as_str() }),
    };
    details["agency"] = serde_json::json!(from.agency);
    if let Err(e) = log.append("message", from.actor(), "checked", id.as_str(), details) {
        tracing::error!(error = %e, "the audit log could not record a check");
    }
}

/// Who sent a payload: the agency, by which channel, and the person when one signed in to
/// the upload page (the audit log names them).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The agency.
    pub agency: &'a str,
    /// The channel.
    pub channel: Channel,
    /// The person, for uploads from the upload page.
    pub person: Option<&'a str>,
}

impl Sender<'_> {
    /// Whom the audit log names: the person, or else the agency.
    fn actor(&self) -> &str {
        self.person.unwrap_or(self.agency)
    }
}

/// One audit record per message outcome.
pub(super) fn audit_outcome(log: &AuditLog, from: &Sender<'_>, id: &MessageId, outcome: &Outcome) {
    let channel = from.channel;
    let (action, subject, mut details) = match outcome {
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
    details["agency"] = serde_json::json!(from.agency);
    if let Err(e) = log.append("message", from.actor(), action, &subject, details) {
        tracing::error!(error = %e, "the audit log could not record a message outcome");
    }
}
