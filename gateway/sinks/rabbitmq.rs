//! The integration queue on RabbitMQ: a durable quorum queue, persistent messages,
//! publisher confirms, `mandatory` publications with returns handled.
//!
//! * The payload is staged while it is checked: in memory up to [`MEMORY_STAGING`] bytes
//!   (and not above `claim_check_bytes`), beyond that in a private local folder
//!   (`state/spool/<queue>/tmp/`, the outbox's staging code); then it is sent. A message is
//!   acknowledged to the agency only once the broker has confirmed it (a quorum queue confirms
//!   once a majority of its replicas have it on disk).
//! * The AMQP message: `message_id` is the gateway message id, `content_type`
//!   `application/xml` (or `application/age` when re-encrypted to the hub), `delivery_mode` 2
//!   (persistent), `timestamp` the forwarding time, `app_id` `gateway`, and every field of
//!   the folder queue's metadata (DESIGN.md §6) as a header of the same name.
//! * Above `[queue] claim_check_bytes` the body goes by **claim check**: the payload is
//!   written to `claim_check_dir` (a volume the hub also mounts), fsynced with its folder, and
//!   the AMQP message has an empty body and the headers `claim_check` (the file's path),
//!   `claim_check_sha256` and `claim_check_size` (of the file as written). The hub deletes the
//!   file once it has processed the message.
//! * The connection is kept by a background task that reconnects with back-off (0.25 s,
//!   doubling, at most 5 s) and declares the queue again. While it is down, publications fail
//!   at once with a reason (`queue_unavailable`, retryable, 503 + `Retry-After`) and
//!   [`Sink::not_ready`] says why, so `/readyz` takes the instance out of the load balancer.
//! * After a crash the broker cannot be asked whether message `id` arrived, so
//!   [`Sink::published`] answers "no": a message cut off between the broker's confirm and the
//!   ledger's record is interrupted, and a resend is published again (at-least-once; the hub
//!   deduplicates on `agency` + `agency_message_id` + `sha256`, all in the headers).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::outbox::{Finished, OutboxSink, Staged};
use super::{MessageInfo, Metadata, Sink, SinkError, Staging};
use crate::fsio;
use crate::message::{MessageId, Receipt};

/// How a publication, connection or queue query may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Payloads up to this size are staged in memory, not in the spool folder: most messages
/// are far smaller, and for them a file created, written, read back and removed cost an
/// instance about a fifth of its CPU per message, more as the folder aged (`bench/cluster.sh`,
/// docs/benchmarks.md). It bounds the memory staging takes to this much per message being
/// received.
pub const MEMORY_STAGING: usize = 1 << 20;

/// What [`RabbitSink::open`] needs.
#[derive(Clone, Debug)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// The queue's name.
    pub queue: String,
    /// Payloads larger than this travel by claim check.
    pub claim_check_bytes: u64,
    /// Where claim-checked payloads go.
    pub claim_check_dir: PathBuf,
    /// How long a publication may wait for its confirm.
    pub confirm_timeout: Duration,
    /// The local staging folder (`state/spool/<queue>`).
    pub spool: PathBuf,
}

enum Link {
    Up {
        _conn: Box<Connection>,
        channel: Channel,
    },
    Down(String),
}

struct Shared {
    config: RabbitConfig,
    link: Mutex<Link>,
    wake: tokio::sync::Notify,
    stop: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channel to publish on, or why there is none.
    fn channel(&self) -> Result<Channel, SinkError> {
        let mut link = self.link();
        match &*link {
            Link::Up { channel, .. } if channel.status().connected() => Ok(channel.clone()),
            Link::Up { .. } => {
                *link = Link::Down("the connection to RabbitMQ was lost".into());
                self.wake.notify_one();
                Err(SinkError::Unavailable(
                    "the connection to RabbitMQ was lost; reconnecting".into(),
                ))
            }
            Link::Down(why) => Err(SinkError::Unavailable(format!("RabbitMQ: {why}"))),
        }
    }

    fn down(&self, why: String) {
        *self.link() = Link::Down(why);
        self.wake.notify_one();
    }
}

/// The RabbitMQ queue; see the module documentation.
pub struct RabbitSink {
    spool: OutboxSink,
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// What a publication needs (shared with every [`RabbitStaging`]).
struct Inner {
    shared: Arc<Shared>,
    /// `amqp/<queue>`, as receipts name the queue.
    label: String,
    hub_encrypted: bool,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for RabbitSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSink")
            .field("queue", &self.inner.label)
            .finish()
    }
}

impl RabbitSink {
    /// Opens the local staging folder and the claim-check folder, and starts connecting. It
    /// waits up to five seconds for the first connection, so that a start with the broker up
    /// is ready at once, and a start with it down says why in the log (and keeps trying).
    pub fn open(
        config: RabbitConfig,
        hub_recipients: Vec<age::x25519::Recipient>,
    ) -> Result<RabbitSink, SinkError> {
        let spool = OutboxSink::open(&config.spool)?.with_hub_recipients(hub_recipients);
        fsio::create_private_dir(&config.claim_check_dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("amqp")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            link: Mutex::new(Link::Down("not connected yet".into())),
            wake: tokio::sync::Notify::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
            config,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(keep_connected(shared.clone(), tx));
        let _ = rx.recv_timeout(CONNECT_TIMEOUT);
        Ok(RabbitSink {
            inner: Arc::new(Inner {
                label: format!("amqp/{}", shared.config.queue),
                hub_encrypted: spool.encrypts_to_hub(),
                shared,
                handle: runtime.handle().clone(),
            }),
            spool,
            runtime: Some(runtime),
        })
    }
}

impl Inner {
    /// How many bytes a payload may have and be staged in memory: never one that goes by
    /// claim check (its file is written from the spool).
    fn memory_staging(&self) -> usize {
        let claim = self.shared.config.claim_check_bytes;
        MEMORY_STAGING.min(usize::try_from(claim).unwrap_or(usize::MAX))
    }

    /// Runs `f` on the AMQP runtime, for at most `limit`. The timer is made inside the
    /// runtime: callers are plain threads (inbox workers) or another runtime's blocking threads.
    fn block_on<F: std::future::Future>(
        &self,
        limit: Duration,
        f: F,
    ) -> Result<F::Output, tokio::time::error::Elapsed> {
        self.handle
            .block_on(async move { tokio::time::timeout(limit, f).await })
    }

    /// Sends a finished payload and waits for the broker's confirm.
    fn send(&self, finished: &Finished) -> Result<Receipt, SinkError> {
        let mut meta = finished.metadata().clone();
        let size = finished.size()?;
        let cfg = &self.shared.config;
        let mut headers = headers_of(&meta)?;
        let read;
        let body: &[u8] = if size > cfg.claim_check_bytes {
            let (path, sha256, written) = self.claim_check(finished, &meta)?;
            insert(&mut headers, "claim_check", path.display().to_string());
            insert(&mut headers, "claim_check_sha256", sha256);
            headers.insert(
                "claim_check_size".into(),
                AMQPValue::LongLongInt(written as i64),
            );
            &[]
        } else if let Some(body) = finished.body() {
            body
        } else {
            let mut body = Vec::with_capacity(size as usize);
            std::fs::File::open(finished.path())?.read_to_end(&mut body)?;
            read = body;
            &read
        };
        meta.payload_file = String::new();
        let properties = BasicProperties::default()
            .with_message_id(meta.gateway_message_id.as_str().into())
            .with_content_type(
                if self.hub_encrypted {
                    "application/age"
                } else {
                    "application/xml"
                }
                .into(),
            )
            .with_delivery_mode(2)
            .with_timestamp(meta.forwarded_at.unix_timestamp().max(0) as u64)
            .with_app_id("gateway".into())
            .with_headers(headers);
        let channel = self.shared.channel()?;
        let queue = cfg.queue.clone();
        let confirmed = self.block_on(cfg.confirm_timeout, async {
            channel
                .basic_publish(
                    ShortString::from(""),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?
                .await
        });
        self.confirmed(confirmed, meta)
    }

    /// What the broker's answer to a publication means for the sender.
    fn confirmed(
        &self,
        confirmed: Result<lapin::Result<Confirmation>, tokio::time::error::Elapsed>,
        meta: Metadata,
    ) -> Result<Receipt, SinkError> {
        let cfg = &self.shared.config;
        let result = match confirmed {
            Ok(Ok(Confirmation::Ack(None))) => Ok(meta.receipt(&self.label)),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                // Unroutable: the queue is gone (deleted by someone). Declare it again.
                self.shared.down(format!(
                    "the broker returned a message: {} {}",
                    returned.reply_code, returned.reply_text
                ));
                Err(SinkError::Unavailable(format!(
                    "the broker could not route the message to queue {} ({}); declaring it again",
                    cfg.queue, returned.reply_text
                )))
            }
            Ok(Ok(Confirmation::Nack(_))) => Err(SinkError::Unavailable(
                "the broker refused the message (nack)".into(),
            )),
            Ok(Ok(Confirmation::NotRequested)) => Err(SinkError::Unavailable(
                "the channel is not in confirm mode".into(),
            )),
            Ok(Err(e)) => {
                self.shared.down(e.to_string());
                Err(SinkError::Unavailable(format!("publication failed: {e}")))
            }
            Err(_) => {
                self.shared
                    .down("a publication was not confirmed in time".into());
                Err(SinkError::Unavailable(format!(
                    "the broker did not confirm the message within {} s",
                    cfg.confirm_timeout.as_secs()
                )))
            }
        };
        if let Err(e) = &result {
            tracing::warn!(id = %meta.gateway_message_id, error = %e, "publication to RabbitMQ failed");
        }
        result
    }

    /// Writes the payload to the claim-check folder, durably; returns its path, SHA-256 and
    /// size.
    fn claim_check(
        &self,
        finished: &Finished,
        meta: &Metadata,
    ) -> Result<(PathBuf, String, u64), SinkError> {
        let dir = &self.shared.config.claim_check_dir;
        let name = if self.hub_encrypted {
            format!("{}.xml.age", meta.gateway_message_id)
        } else {
            format!("{}.xml", meta.gateway_message_id)
        };
        let source: Box<dyn Read + '_> = match finished.body() {
            Some(body) => Box::new(body),
            None => Box::new(std::fs::File::open(finished.path())?),
        };
        let mut hashing = fsio::Hashing::new(source);
        let (path, _) = fsio::write_atomic_from(dir, &name, &mut hashing)?;
        let (sha256, size) = hashing.finish()?;
        Ok((path, sha256, size))
    }
}

fn insert(headers: &mut FieldTable, key: &str, value: String) {
    headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
}

/// Every metadata field as a header of the same name (nulls left out).
fn headers_of(meta: &Metadata) -> Result<FieldTable, SinkError> {
    let mut headers = FieldTable::default();
    let serde_json::Value::Object(fields) = serde_json::to_value(meta)? else {
        return Err(SinkError::Mismatch("metadata is not an object".into()));
    };
    for (key, value) in fields {
        if key == "payload_file" {
            continue;
        }
        if let Some(v) = amqp_value(value) {
            headers.insert(key.into(), v);
        }
    }
    Ok(headers)
}

fn amqp_value(v: serde_json::Value) -> Option<AMQPValue> {
    use serde_json::Value;
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => AMQPValue::Boolean(b),
        Value::Number(n) => AMQPValue::LongLongInt(n.as_i64()?),
        Value::String(s) => AMQPValue::LongString(LongString::from(s)),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.into_iter().filter_map(amqp_value).collect::<Vec<_>>(),
        )),
        Value::Object(_) => return None,
    })
}

/// Connects, declares the queue and enables confirms; then watches the connection and does
/// it again, with back-off, whenever it is lost. Signals `first` after the first attempt.
async fn keep_connected(shared: Arc<Shared>, first: std::sync::mpsc::Sender<()>) {
    let mut backoff = Duration::from_millis(250);
    let mut announced_down = false;
    while !shared.stop.load(std::sync::atomic::Ordering::Relaxed) {
        let healthy =
            matches!(&*shared.link(), Link::Up { channel, .. } if channel.status().connected());
        if healthy {
            backoff = Duration::from_millis(250);
            let _ = tokio::time::timeout(Duration::from_millis(500), shared.wake.notified()).await;
            continue;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(&shared.config)).await {
            Ok(Ok((conn, channel))) => {
                tracing::info!(queue = %shared.config.queue, "connected to RabbitMQ");
                *shared.link() = Link::Up {
                    _conn: Box::new(conn),
                    channel,
                };
                announced_down = false;
            }
            Ok(Err(e)) => {
                down_for(&shared, e.to_string(), &mut announced_down);
            }
            Err(_) => down_for(&shared, "connecting timed out".into(), &mut announced_down),
        }
        let _ = first.send(());
        if !matches!(&*shared.link(), Link::Up { .. }) {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

fn down_for(shared: &Shared, why: String, announced: &mut bool) {
    if !*announced {
        tracing::warn!(queue = %shared.config.queue, error = %why, "RabbitMQ unreachable; retrying with back-off");
        *announced = true;
    }
    *shared.link() = Link::Down(why);
}

async fn connect(config: &RabbitConfig) -> lapin::Result<(Connection, Channel)> {
    let conn = Connection::connect(&config.url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, &config.queue, false).await?;
    Ok((conn, channel))
}

/// Declares the durable quorum queue (`passive`: only asks about it).
async fn declare(channel: &Channel, queue: &str, passive: bool) -> lapin::Result<lapin::Queue> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                passive,
                ..QueueDeclareOptions::default()
            },
            if passive { FieldTable::default() } else { args },
        )
        .await
}

impl Drop for RabbitSink {
    fn drop(&mut self) {
        let shared = &self.inner.shared;
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        shared.wake.notify_one();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A payload staged for RabbitMQ: written to the local spool while it is checked.
struct RabbitStaging {
    staged: Staged,
    inner: Arc<Inner>,
}

impl io::Write for RabbitStaging {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.staged.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.staged.flush()
    }
}

impl Staging for RabbitStaging {
    fn publish_after(
        self: Box<Self>,
        info: &MessageInfo,
        ready: &mut dyn FnMut() -> Result<(), SinkError>,
    ) -> Result<Receipt, SinkError> {
        let RabbitStaging { staged, inner } = *self;
        // Only a claim-checked payload is read back after a pause worth an fsync.
        let durable = info.validated.state.size > inner.shared.config.claim_check_bytes;
        let finished = staged.finish(info, durable)?;
        ready()?;
        inner.send(&finished)
    }

    fn discard(self: Box<Self>) {
        // Dropping the staged payload removes it.
    }
}

impl Sink for RabbitSink {
    fn queue(&self) -> &str {
        &self.inner.label
    }

    fn begin_staging(&self, id: &MessageId) -> Result<Box<dyn Staging>, SinkError> {
        // Refuse before the payload is read at all when the broker is away.
        self.inner.shared.channel()?;
        Ok(Box::new(RabbitStaging {
            staged: self
                .spool
                .stage_in_memory(id, self.inner.memory_staging())?,
            inner: self.inner.clone(),
        }))
    }

    fn published(&self, _id: &MessageId) -> Result<Option<Metadata>, SinkError> {
        Ok(None)
    }

    fn withdraw_unpublished(&self, id: &MessageId) -> Result<(), SinkError> {
        self.spool.withdraw_unpublished(id)
    }

    fn depth(&self) -> Result<u64, SinkError> {
        let channel = self.inner.shared.channel()?;
        let queue = self.inner.shared.config.queue.clone();
        match self.inner.block_on(QUERY_TIMEOUT, async move {
            declare(&channel, &queue, true).await
        }) {
            Ok(Ok(q)) => Ok(u64::from(q.message_count())),
            Ok(Err(e)) => Err(SinkError::Unavailable(e.to_string())),
            Err(_) => Err(SinkError::Unavailable(
                "asking the queue's depth timed out".into(),
            )),
        }
    }

    fn not_ready(&self) -> Option<String> {
        self.inner.shared.channel().err().map(|e| e.to_string())
    }
}
