//! The steps one message goes through, in order:
//!
//! 1. **open**: the size cap, then age decryption with the keys of the moment;
//! 2. **check**: the signature, the signer and the schema in one streaming pass, the XML
//!    staged in the queue as it goes (transcoded to UTF-8 on the way when configured);
//! 3. **register**: the ledger decides (new, a resend, a reused id, or being processed now);
//! 4. **publish**: the queue makes the message visible to the hub once the ledger's record is
//!    durable, and the record is closed with the receipt.
//!
//! Each step reads and extends one [`Message`]; the first refusal stops the run, and
//! [`Gateway::reject`](super::Gateway) records it with the history gathered so far.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::SystemTime;

use time::OffsetDateTime;

use super::outcome::{duplicate, facts};
use super::{Forwarding, Gateway, Outcome, Payload, payload_limit};
use crate::envelope::{Checks, Envelope, Opened, Validated};
use crate::keyring::Keyring;
use crate::message::{AgencyName, Channel, MessageId};
use crate::rejection::{Code, Rejection};
use crate::sinks::transcode::{ToUtf8, Transcoded};
use crate::sinks::{MessageInfo, SinkError, Staging};
use crate::store::{Begin, NewMessage, PendingStep, Step};

/// One message on its way through the pipeline: what every step reads and adds to.
pub(super) struct Message<'a> {
    /// The agency its channel authenticated.
    pub agency: &'a AgencyName,
    /// How it came.
    pub channel: Channel,
    /// The sealed bytes.
    pub payload: &'a Payload<'a>,
    /// The gateway's id for it, from the moment it arrived.
    pub id: MessageId,
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// The steps done so far, recorded with the message or with its rejection.
    pub history: Vec<PendingStep>,
    /// The hub's request it answers, if any.
    pub request: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// `payload` from `agency`, arrived now.
    pub fn new(agency: &'a AgencyName, channel: Channel, payload: &'a Payload<'a>) -> Self {
        Message {
            agency,
            channel,
            payload,
            id: MessageId::new(),
            received_at: OffsetDateTime::now_utc(),
            history: Vec::new(),
            request: None,
        }
    }
}

/// The sealed file after the size cap, as the reader decryption reads from.
type Sealed<'a> = io::Take<Box<dyn Read + Send + 'a>>;

/// A payload decrypted with the keys of the moment (one keyring for the whole payload,
/// whatever reloads happen meanwhile).
struct Decrypted<'a> {
    ring: Arc<Keyring>,
    envelope: Envelope<Opened<Sealed<'a>>>,
}

/// A message that passed every check, staged in the queue while the ledger decides.
struct Checked {
    envelope: Envelope<Validated>,
    staged: Box<dyn Staging>,
    transcoded: Option<Transcoded>,
}

/// The ledger's decision on a checked message.
enum Registered {
    /// Go on and publish it.
    New(Checked),
    /// A resend of a finished message: its original outcome; nothing is queued again.
    Answered(Outcome),
}

fn queue_down(e: &dyn std::fmt::Display) -> Rejection {
    Rejection::new(
        Code::QueueUnavailable,
        format!("the queue cannot take the message: {e}"),
    )
}

impl Gateway {
    /// Runs the steps; `Err` is a refusal for [`Gateway::reject`] to record.
    pub(super) fn run(&self, m: &mut Message<'_>) -> Result<Outcome, Rejection> {
        let Some(fw) = &self.forwarding else {
            return self.dry_run(m);
        };
        let Decrypted { ring, envelope } = self.open(m)?;
        let checks = self.checks(&ring);
        let checked = self.check(fw, m, envelope, &checks)?;
        match self.register(fw, m, checked)? {
            Registered::Answered(outcome) => Ok(outcome),
            Registered::New(checked) => Ok(self.publish(fw, m, checked)),
        }
    }

    /// Every check, nothing kept: [`Outcome::Accepted`] or the refusal.
    pub(super) fn dry_run(&self, m: &mut Message<'_>) -> Result<Outcome, Rejection> {
        let Decrypted { ring, envelope } = self.open(m)?;
        let env = envelope.verify_and_validate(&self.checks(&ring), &mut io::sink())?;
        Ok(Outcome::Accepted {
            facts: facts(&m.id, &env),
        })
    }

    fn checks<'a>(&'a self, ring: &'a Keyring) -> Checks<'a> {
        Checks {
            trust: &ring.trust,
            catalog: &self.catalog,
            limits: &self.config.limits,
            now: SystemTime::now(),
        }
    }

    /// Step 1: the size cap and decryption.
    fn open<'a>(&self, m: &mut Message<'a>) -> Result<Decrypted<'a>, Rejection> {
        let (file, size) = m.payload.open().map_err(|e| {
            let code = if e.is_not_regular() {
                Code::NotARegularFile
            } else {
                Code::QueueUnavailable
            };
            Rejection::new(code, format!("cannot read the payload: {e}"))
        })?;
        let ring = self.keyring.get();
        // One limit on every channel: HTTPS refuses a larger upload before reading it, the
        // folders and `import` here, with the same code and sentence.
        let max = payload_limit(&ring, &self.config, m.agency);
        if size > max {
            return Err(Rejection::new(
                Code::PayloadTooLarge,
                format!(
                    "the payload is {size} bytes; the limit for {} is {max} bytes",
                    m.agency
                ),
            ));
        }
        let envelope = Envelope::received(m.agency, file.take(max)).open(&ring.identities)?;
        let identity = envelope.opened_with();
        if ring
            .identities
            .in_grace(identity, OffsetDateTime::now_utc())
        {
            // Who still seals to a rotated-out recipient: what an admin checks before retiring.
            tracing::info!(identity = %identity, "opened with an identity in grace");
            self.metrics.record_grace_open(m.agency, identity);
        }
        m.history.push(PendingStep::now(
            Step::Opened,
            Some(&format!("identity {identity}")),
        ));
        Ok(Decrypted { ring, envelope })
    }

    /// Step 2: signature, signer and schema, with the XML staged in the queue as it streams.
    /// A refusal drops the stage, which removes it.
    fn check(
        &self,
        fw: &Forwarding,
        m: &mut Message<'_>,
        envelope: Envelope<Opened<Sealed<'_>>>,
        checks: &Checks<'_>,
    ) -> Result<Checked, Rejection> {
        let mut staged = fw.sink.begin_staging(&m.id).map_err(|e| queue_down(&e))?;
        let (envelope, transcoded) = if self.config.transcode_to_utf8 {
            let mut to_utf8 = ToUtf8::new(&mut staged);
            let validated = envelope.verify_and_validate(checks, &mut to_utf8);
            let finished = to_utf8.finish();
            (
                validated?,
                finished.map_err(|e| queue_down(&SinkError::Io(e)))?,
            )
        } else {
            (envelope.verify_and_validate(checks, &mut staged)?, None)
        };
        m.history.push(PendingStep::now(
            Step::Verified,
            Some(&envelope.state.fingerprints().join(", ")),
        ));
        m.history.push(PendingStep::now(
            Step::Validated,
            Some(&envelope.state.schema_id),
        ));
        Ok(Checked {
            envelope,
            staged,
            transcoded,
        })
    }

    /// Step 3: the ledger decides, on agency + agency message id + SHA-256.
    fn register(
        &self,
        fw: &Forwarding,
        m: &Message<'_>,
        checked: Checked,
    ) -> Result<Registered, Rejection> {
        let v = &checked.envelope.state;
        let new = NewMessage {
            id: m.id.clone(),
            agency: m.agency.to_string(),
            agency_message_id: v.agency_message_id.clone(),
            sha256: v.sha256.clone(),
            size: v.size,
            channel: m.channel,
            received_at: m.received_at,
            history: m.history.clone(),
        };
        // Not fsynced here: the record is made durable just before the message becomes
        // visible in the queue (see `publish`), usually by another message's fsync.
        let mut begun = fw.store.begin_deferred(&new);
        if let Ok(Begin::InProgress(original)) = &begun
            && self.settle_if_stuck(fw, original)
        {
            // Nobody works on it any more (a crash, or its final ledger write failed): it
            // was settled now rather than make the sender wait; decide again.
            begun = fw.store.begin_deferred(&new);
        }
        match begun.map_err(|e| queue_down(&e))? {
            Begin::New(_) => Ok(Registered::New(checked)),
            Begin::Duplicate(original) => {
                tracing::info!(original = %original.id, "resend of a known message");
                Ok(Registered::Answered(duplicate(&original)))
            }
            Begin::Conflict(original) => Err(Rejection::new(
                Code::Duplicate,
                format!(
                    "message id {} was already used by message {} with different content",
                    v.agency_message_id.as_deref().unwrap_or("(none)"),
                    original.id
                ),
            )),
            Begin::InProgress(original) => Err(Rejection::new(
                Code::QueueUnavailable,
                format!(
                    "the same message is being processed now (as {}): try again shortly",
                    original.id
                ),
            )),
        }
    }

    /// Step 4: publish once the ledger's record is durable, then close the record.
    fn publish(&self, fw: &Forwarding, m: &Message<'_>, checked: Checked) -> Outcome {
        let Checked {
            envelope,
            staged,
            transcoded,
        } = checked;
        let facts = facts(&m.id, &envelope);
        let info = MessageInfo {
            gateway_message_id: m.id.clone(),
            validated: envelope,
            transcoded,
            channel: m.channel,
            received_at: m.received_at,
            request_id: m.request.map(str::to_owned),
        };
        let mut ledger_durable = || {
            fw.store
                .sync()
                .map_err(|e| SinkError::Io(io::Error::other(format!("ledger: {e}"))))
        };
        let receipt = match staged.publish_after(&info, &mut ledger_durable) {
            Ok(receipt) => receipt,
            Err(e) => {
                let r = queue_down(&e);
                let _ = fw.store.finish_rejected(&m.id, r.code, &r.detail);
                return Outcome::Rejected {
                    gateway_message_id: Some(m.id.to_string()),
                    rejection: r,
                    quarantined: None,
                };
            }
        };
        // Not fsynced here: the message is durable in the queue, and the next message's
        // sync (or start-up, after a crash) settles the record.
        if let Err(e) = fw
            .store
            .finish_forwarded_deferred(&m.id, &receipt)
            .or_else(|_| fw.store.finish_forwarded(&m.id, &receipt))
        {
            // The hub has it, but no success is claimed that the ledger cannot back: the
            // resend is answered from the queue (settled as forwarded, with this receipt)
            // once the ledger can write.
            tracing::error!(error = %e, "forwarded but the ledger could not record it; a resend gets the receipt once it can");
            return Outcome::Rejected {
                gateway_message_id: Some(m.id.to_string()),
                rejection: Rejection::new(
                    Code::QueueUnavailable,
                    format!(
                        "the message reached the queue but the ledger could not record it ({e}): send it again later; the resend is answered with its receipt"
                    ),
                ),
                quarantined: None,
            };
        }
        tracing::info!(schema = %facts.schema_id, size = facts.size, queue = %receipt.queue, "forwarded");
        Outcome::Forwarded { facts, receipt }
    }
}
