//! Where validated messages go: the hub's queues.
//!
//! Delivery is split in two so that memory stays bounded for multi-gigabyte
//! messages: the validated XML is *staged* (streamed into the queue's private
//! `tmp/` area) while it is still being checked, and only *published* once every
//! check passed — or *discarded* when one failed, so no plaintext lingers.
//! [`Sink`] is the object-safe interface; [`OutboxSink`] is the folder queue.

mod outbox;
mod rabbitmq;
pub mod transcode;

#[cfg(test)]
mod tests;

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use outbox::{Finished, OutboxSink, Published, STALE_TMP_AFTER, Staged};
pub use rabbitmq::{RabbitConfig, RabbitSink};

use crate::envelope::{Envelope, Validated};
use crate::message::{Channel, MessageId, Receipt, timestamp};

/// A validated message on its way into the queue: the [`Envelope<Validated>`] itself (so only
/// a message that passed every check can be published, and its facts are stated once), with
/// what the pipeline adds. The sink adds the delivery facts to make the [`Metadata`].
#[derive(Debug)]
pub struct MessageInfo {
    /// The gateway's id (must be the id the payload was staged under).
    pub gateway_message_id: MessageId,
    /// The message as checking left it: agency, signers, schema, SHA-256, size, encoding.
    pub validated: Envelope<Validated>,
    /// Set when the XML was transcoded to UTF-8 on its way to the queue
    /// (`[outbox] transcode_to_utf8`): then the staged bytes are these, not the signed size.
    pub transcoded: Option<transcode::Transcoded>,
    /// How the message reached the gateway.
    pub channel: Channel,
    /// When the message reached the gateway.
    pub received_at: OffsetDateTime,
    /// The hub's request this message answers, if it answers one.
    pub request_id: Option<String>,
}

/// The metadata file `new/<id>.json` next to each payload (a contract with the hub).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The gateway's id.
    pub gateway_message_id: MessageId,
    /// The sending agency.
    pub agency: String,
    /// The agency's own message id, if any.
    pub agency_message_id: Option<String>,
    /// The schema the XML was validated against.
    pub schema_id: String,
    /// SHA-256 (lowercase hex) of the (first) signer's certificate or key.
    pub signer_fingerprint_sha256: String,
    /// SHA-256 (lowercase hex) of every signer's certificate, in signing order (a message
    /// may carry several signatures, all from the sending agency). Absent in metadata written
    /// before it existed.
    #[serde(default)]
    pub signer_fingerprints_sha256: Vec<String>,
    /// SHA-256 (lowercase hex) of the XML (the plaintext, also when encrypted).
    pub sha256: String,
    /// Size of the XML in bytes.
    pub size: u64,
    /// The XML's encoding as signed and forwarded (`UTF-8`, `UTF-16LE`, `windows-1252`...,
    /// the WHATWG name). Metadata written before it existed is UTF-8.
    #[serde(default = "utf8")]
    pub encoding: String,
    /// With `[outbox] transcode_to_utf8`, for a document the agency signed in another
    /// encoding: that encoding (`encoding` is then UTF-8), and the SHA-256 and size of the
    /// forwarded UTF-8 bytes (`sha256` and `size` stay those of the bytes as signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_encoding: Option<String>,
    /// SHA-256 (lowercase hex) of the forwarded bytes, when they are not the signed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_sha256: Option<String>,
    /// Size of the forwarded bytes, when they are not the signed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_size: Option<u64>,
    /// How the message reached the gateway.
    pub channel: Channel,
    /// When the message reached the gateway (RFC 3339, UTC).
    #[serde(with = "timestamp::rfc3339")]
    pub received_at: OffsetDateTime,
    /// When it was published to the queue (RFC 3339, UTC).
    #[serde(with = "timestamp::rfc3339")]
    pub forwarded_at: OffsetDateTime,
    /// The payload's file name in `new/` (`<id>.xml` or `<id>.xml.age`).
    pub payload_file: String,
    /// Whether the payload is age-encrypted to the hub's recipients.
    pub encrypted_to_hub: bool,
    /// The hub's request (`gateway request ask`) this message answers, if it answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Metadata {
    /// The receipt for this message, published to `queue`.
    pub fn receipt(&self, queue: &str) -> Receipt {
        Receipt {
            gateway_message_id: self.gateway_message_id.clone(),
            agency: self.agency.clone(),
            agency_message_id: self.agency_message_id.clone(),
            sha256: self.sha256.clone(),
            schema_id: self.schema_id.clone(),
            forwarded_at: self.forwarded_at,
            queue: queue.to_owned(),
        }
    }
}

fn utf8() -> String {
    "UTF-8".to_owned()
}

/// Errors of a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading or writing the queue failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// Setting up encryption to the hub failed.
    #[error("encryption to the hub failed: {0}")]
    Encrypt(String),
    /// The queue directory is unusable.
    #[error("invalid queue: {0}")]
    InvalidQueue(String),
    /// The message info does not match what was staged.
    #[error("staged payload does not match the message info: {0}")]
    Mismatch(String),
    /// The metadata could not be serialised.
    #[error("metadata json: {0}")]
    Json(#[from] serde_json::Error),
    /// The queue's server cannot take messages now (it is down, unreachable, or refused
    /// this one); the sender should try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// Opens the queue `config` names (the outbox folder `outbox/<queue>/`, or the RabbitMQ
/// quorum queue `<queue>` whose URL is in `[queue] url_env`), encrypting to the hub's
/// recipients when it has any: the one place a queue backend is chosen. On failure, what it
/// concerns (a path, or the variable) and why.
pub fn open(
    config: &crate::config::Config,
) -> Result<Box<dyn Sink>, (std::path::PathBuf, SinkError)> {
    match &config.queue_backend {
        crate::config::QueueBackend::Outbox => {
            let queue = config.queue_dir();
            let sink = OutboxSink::open(&queue)
                .map_err(|e| (queue.clone(), e))?
                .with_hub_recipients(config.hub_recipients.clone());
            Ok(Box::new(sink))
        }
        crate::config::QueueBackend::RabbitMq {
            url_env,
            claim_check_bytes,
            claim_check_dir,
            confirm_timeout,
        } => {
            let shown = std::path::PathBuf::from(format!("${url_env}"));
            let url = std::env::var(url_env).map_err(|_| {
                (
                    shown.clone(),
                    SinkError::InvalidQueue(format!(
                        "[queue] backend is rabbitmq but the environment variable {url_env} (the AMQP URL, e.g. amqp://gateway:secret@mq.example:5672/%2f) is not set"
                    )),
                )
            })?;
            let rabbit = RabbitConfig {
                url,
                queue: config.queue.clone(),
                claim_check_bytes: *claim_check_bytes,
                claim_check_dir: claim_check_dir.clone(),
                confirm_timeout: *confirm_timeout,
                spool: config.state.join("spool").join(&config.queue),
            };
            let sink =
                RabbitSink::open(rabbit, config.hub_recipients.clone()).map_err(|e| (shown, e))?;
            Ok(Box::new(sink))
        }
    }
}

/// A payload being written to a sink; see [`Sink::begin_staging`].
pub trait Staging: Write + Send {
    /// Completes the payload and makes it visible to the hub. `ready` runs once the payload is
    /// durable but before the hub can see it: what must be on disk before the hub acts on the
    /// message (the ledger's record of it) is made so there. If `ready` fails, nothing is
    /// published.
    fn publish_after(
        self: Box<Self>,
        info: &MessageInfo,
        ready: &mut dyn FnMut() -> Result<(), SinkError>,
    ) -> Result<Receipt, SinkError>;

    /// Completes the payload and makes it visible to the hub.
    fn publish(self: Box<Self>, info: &MessageInfo) -> Result<Receipt, SinkError> {
        self.publish_after(info, &mut || Ok(()))
    }

    /// Throws the payload away (also done when dropped unpublished).
    fn discard(self: Box<Self>);
}

/// The hub's integration queue, as the pipeline uses it: stage while checking, publish when
/// every check passed, and after a crash tell what reached the hub. [`OutboxSink`] is the
/// folder queue; another queue plugs in by implementing this (see `docs/architecture.md`).
pub trait Sink: Send + Sync {
    /// The queue's name as it appears in receipts, e.g. `outbox/hub`.
    fn queue(&self) -> &str;

    /// Starts a payload for message `id`: write the XML into it while checking,
    /// then publish or discard it.
    fn begin_staging(&self, id: &MessageId) -> Result<Box<dyn Staging>, SinkError>;

    /// The metadata of message `id` if it reached the hub (still waiting, or already taken).
    /// After a crash between publishing and recording, the queue is the truth.
    fn published(&self, id: &MessageId) -> Result<Option<Metadata>, SinkError>;

    /// Removes whatever a crash left of message `id` before it was published.
    fn withdraw_unpublished(&self, id: &MessageId) -> Result<(), SinkError>;

    /// Messages published and not yet taken by the hub.
    fn depth(&self) -> Result<u64, SinkError>;

    /// Why the queue cannot take messages now, if it cannot.
    fn not_ready(&self) -> Option<String>;
}
