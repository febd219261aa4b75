//! The recipient document: which age recipient agencies must seal to now, and which older
//! ones still open payloads (grace) until when. Served at `GET /v1/recipient`, signed with
//! the receipt key (detached CMS in the `Gateway-Signature` header), so an agency's tooling
//! can fetch it, check it against the gateway's receipt certificate and switch by itself.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Identities;

/// One recipient still accepted after a rotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GraceRecipient {
    /// `age1...`
    pub recipient: String,
    /// The identity's id.
    pub id: String,
    /// RFC 3339 end of its grace period (it may be retired earlier by an admin).
    pub until: Option<String>,
}

/// `GET /v1/recipient`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientDocument {
    /// Seal to this.
    pub current: String,
    /// The current identity's id.
    pub current_id: String,
    /// Older recipients that still open payloads.
    pub grace: Vec<GraceRecipient>,
    /// RFC 3339 time the document was made.
    pub issued_at: String,
}

impl RecipientDocument {
    /// The document for `identities` at `now`.
    pub fn new(identities: &Identities, now: OffsetDateTime) -> RecipientDocument {
        let current = identities.current();
        RecipientDocument {
            current: current.map(|c| c.recipient.clone()).unwrap_or_default(),
            current_id: current.map(|c| c.id.clone()).unwrap_or_default(),
            grace: identities
                .grace_at(now)
                .into_iter()
                .map(|g| GraceRecipient {
                    recipient: g.recipient.clone(),
                    id: g.id.clone(),
                    until: g.grace_until.clone(),
                })
                .collect(),
            issued_at: now
                .replace_nanosecond(0)
                .unwrap_or(now)
                .format(&Rfc3339)
                .unwrap_or_default(),
        }
    }

    /// The bytes that are signed and served.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}
