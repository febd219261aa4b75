//! A refused message: kept, as received, in the quarantine and recorded in the ledger.

use std::io;

use super::steps::Message;
use super::{Gateway, Outcome};
use crate::fsio::Hashing;
use crate::quarantine;
use crate::rejection::Rejection;
use crate::store::NewMessage;

impl Gateway {
    /// Records a refusal: in the ledger (with the steps done so far) and the payload, as
    /// received, in the quarantine. Our own failures (retryable) keep nothing.
    pub(super) fn reject(&self, m: &mut Message<'_>, rejection: Rejection) -> Outcome {
        let (agency, id, payload) = (m.agency, &m.id, m.payload);
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
            received_at: m.received_at,
            original_name: payload.name(),
        };
        // One read of the payload: the quarantine keeps it while it is hashed for the ledger.
        let (kept, (sha256, size)) = match payload.open() {
            Ok((reader, _)) => {
                let mut hashing = Hashing::new(reader);
                let kept = fw.quarantine.keep(id, agency, &mut hashing, &reason);
                (kept, hashing.finish().unwrap_or_default())
            }
            Err(e) => (
                Err(quarantine::QuarantineError::from(io::Error::other(e))),
                Default::default(),
            ),
        };
        let quarantined = match kept {
            Ok(p) => Some(p),
            // Logged and audited as dropped by the quarantine.
            Err(quarantine::QuarantineError::TooLarge { .. }) => None,
            Err(e) => {
                tracing::error!(error = %e, "a rejected payload could not be quarantined");
                None
            }
        };
        let new = NewMessage {
            id: id.clone(),
            agency: agency.to_string(),
            agency_message_id: None,
            sha256,
            size,
            channel: m.channel,
            received_at: m.received_at,
            history: std::mem::take(&mut m.history),
        };
        if let Err(e) = fw.store.record_unregistered_rejection(&new, &rejection) {
            tracing::error!(error = %e, "the ledger could not record a rejection");
        }
        Outcome::Rejected {
            gateway_message_id: Some(id.to_string()),
            rejection,
            quarantined,
        }
    }
}
