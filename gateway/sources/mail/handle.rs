//! One mail, start to end: its sealed attachments through the pipeline (the agency taken from
//! each signature), the answer composed, the folder it goes to decided.

use std::sync::Arc;

use super::answer::Part;
use super::letter::{Attachment, Letter};
use crate::config::Mail;
use crate::envelope::Envelope;
use crate::message::{AgencyName, Channel};
use crate::pipeline::{Gateway, Outcome, Payload};
use crate::rejection::{Code, Rejection};

/// What to do with a mail once its attachments were handled.
pub struct Verdict {
    /// One entry per attachment.
    pub parts: Vec<Part>,
    /// A refusal of the whole mail (no sealed attachment, too large, unreadable).
    pub whole: Option<Rejection>,
    /// Some attachment met a retryable failure (the queue or the ledger could not take it):
    /// the mail stays where it is and is handled again later; what was queued is answered
    /// from the ledger then, as a resend.
    pub retry: bool,
}

impl Verdict {
    /// A refusal of the whole mail.
    pub fn refused(r: Rejection) -> Verdict {
        Verdict {
            parts: Vec::new(),
            whole: Some(r),
            retry: false,
        }
    }

    /// Whether every attachment was accepted (the mail goes to the processed folder).
    pub fn accepted(&self) -> bool {
        self.whole.is_none() && self.parts.iter().all(|p| p.outcome.is_success())
    }
}

fn refusal(r: Rejection) -> Outcome {
    Outcome::Rejected {
        gateway_message_id: None,
        rejection: r,
        quarantined: None,
    }
}

/// Runs every attachment of `letter` and decides.
pub fn letter(gateway: &Arc<Gateway>, mail: &Mail, letter: &Letter) -> Verdict {
    if !letter.attachments.iter().any(Attachment::is_sealed) {
        return Verdict::refused(Rejection::new(
            Code::NoPayload,
            format!(
                "the mail has {} attachment(s) and none is a sealed file",
                letter.attachments.len()
            ),
        ));
    }
    let mut parts = Vec::new();
    let mut retry = false;
    for a in &letter.attachments {
        let outcome = if a.is_sealed() {
            attachment(gateway, mail, letter.from.as_deref(), a)
        } else {
            refusal(Rejection::new(
                Code::NotAgeEncrypted,
                format!("{} is not a sealed file; it was not read", a.name),
            ))
        };
        if let Outcome::Rejected { rejection, .. } = &outcome
            && rejection.retryable()
        {
            retry = true;
        }
        let receipt = receipt_of(gateway, &outcome);
        parts.push(Part {
            name: a.name.clone(),
            outcome,
            receipt,
        });
    }
    Verdict {
        parts,
        whole: None,
        retry,
    }
}

/// One sealed attachment: its agency from the signature, the sender's address checked against
/// `mail.senders`, then the pipeline.
fn attachment(gateway: &Gateway, mail: &Mail, from: Option<&str>, a: &Attachment) -> Outcome {
    let payload = Payload::Bytes {
        bytes: &a.bytes,
        name: &a.name,
    };
    let agency = match signing_agency(gateway, &payload) {
        Ok(agency) => agency,
        Err(r) => return refusal(r),
    };
    if let Some(allowed) = mail.senders.get(agency.as_str()) {
        let from = from.unwrap_or("(no address)");
        if !allowed.iter().any(|s| sender_matches(s, from)) {
            return refusal(Rejection::new(
                Code::AgencyMismatch,
                format!(
                    "the mail comes from {from}, which is not an address of agency {agency} (mail.senders): send it from one of your agency's registered addresses"
                ),
            ));
        }
    }
    gateway.process(&agency, Channel::Mail, payload)
}

/// `allowed` is an address (`clerk@school.test`) or a domain (`@school.test`).
fn sender_matches(allowed: &str, from: &str) -> bool {
    if allowed.starts_with('@') {
        from.ends_with(allowed)
    } else {
        from == allowed
    }
}

/// The agency whose registered certificate signed `payload`: decrypted and its signatures
/// checked here once to learn it; the pipeline then checks the signer in full for that agency.
fn signing_agency(gateway: &Gateway, payload: &Payload<'_>) -> Result<AgencyName, Rejection> {
    let ring = gateway.keyring.get();
    let (input, size) = payload
        .open()
        .map_err(|e| Rejection::new(Code::IoError, format!("cannot read the attachment: {e}")))?;
    let max = gateway.config.limits.max_payload_bytes;
    if size > max {
        return Err(Rejection::new(
            Code::PayloadTooLarge,
            format!("the attachment is {size} bytes; the limit is {max} bytes"),
        ));
    }
    let agencies = Envelope::received("(mail)", input)
        .open(&ring.identities)?
        .signing_agencies(&ring.trust)?;
    match agencies.as_slice() {
        [one] => AgencyName::parse(one).map_err(|e| {
            Rejection::new(
                Code::SignerUnknown,
                format!("the signer's agency has an unusable name: {e}"),
            )
        }),
        several => Err(Rejection::new(
            Code::AgencyMismatch,
            format!(
                "the payload is signed with certificates of several agencies ({}): one agency signs its own payloads",
                several.join(", ")
            ),
        )),
    }
}

/// The signed receipt of an accepted attachment (a resend: its original receipt).
fn receipt_of(gateway: &Gateway, outcome: &Outcome) -> Option<crate::receipts::SignedReceipt> {
    let receipt = match outcome {
        Outcome::Forwarded { receipt, .. } => receipt,
        Outcome::Duplicate {
            receipt: Some(receipt),
            original_code: None,
            ..
        } => receipt,
        _ => return None,
    };
    let fw = gateway.forwarding.as_ref()?;
    match fw.receipts.sign(receipt) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "the receipt could not be signed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sender_matches;

    #[test]
    fn senders_are_addresses_or_whole_domains() {
        assert!(sender_matches("clerk@school.test", "clerk@school.test"));
        assert!(!sender_matches("clerk@school.test", "other@school.test"));
        assert!(sender_matches("@school.test", "anyone@school.test"));
        assert!(!sender_matches("@school.test", "x@notschool.test.evil"));
        assert!(!sender_matches("@school.test", "x@evilschool.test"));
    }
}
