//! Configuration: `gateway.toml` (every key optional, embedded defaults) plus environment
//! overrides, checked once at start-up into a typed [`Config`].
//!
//! Environment variables override the file: `GATEWAY_<SECTION>__<KEY>`, e.g.
//! `GATEWAY_OUTBOX__QUEUE=integration` or `GATEWAY_LIMITS__MAX_DEPTH=64`. A value is read as a
//! TOML value when it parses as one (numbers, booleans, arrays) and as a string otherwise.
//! Mistakes are reported by key name, whichever of the two they came from.

mod mail;
mod raw;
mod web;

use std::path::{Path, PathBuf};

pub use mail::{IMAP_CREDENTIAL, Mail, SMTP_CREDENTIAL, Security, Server};
use raw::RawConfig;
pub use web::Web;

/// Default configuration file, looked up in the current folder.
pub const DEFAULT_FILE: &str = "gateway.toml";

/// Default of `limits.max_payload_bytes` (4 GiB); `gateway validate`, which runs without a
/// configuration, bounds each document by it too.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 4 << 30;

/// A configuration mistake, named by its key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key / wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (names the key and line).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("`{key}`: {message}")]
    Invalid {
        /// Dotted key, e.g. `outbox.queue`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// Bounds applied to every payload.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest sealed payload accepted, in bytes.
    pub max_payload_bytes: u64,
    /// XML safety limits handed to the XSD engine.
    pub xml: xsd::Limits,
    /// Most schema violations reported for one message.
    pub max_errors: usize,
    /// Free space below which a folder the gateway writes to makes it not ready.
    pub min_free_disk_bytes: u64,
}

/// The HTTPS channel.
#[derive(Debug, Clone)]
pub struct Http {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Payloads processed at once (default: [`default_max_in_flight`]).
    pub max_in_flight: usize,
    /// Uploads received at once.
    pub max_uploads: usize,
    /// Time allowed for the request headers.
    pub header_timeout: std::time::Duration,
    /// Time allowed for a whole upload.
    pub request_timeout: std::time::Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: std::time::Duration,
    /// Uploads one agency may have in progress at once.
    pub max_uploads_per_agency: usize,
    /// Time an upload may take before [`Http::min_upload_rate`] applies.
    pub upload_grace: std::time::Duration,
    /// Minimum average upload rate after the grace period, bytes/s (0: none).
    pub min_upload_rate: u64,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Load balancers whose connections must start with a PROXY header; its client address
    /// is then the connection's (empty: none, every address is the client's own).
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
}

/// `[metrics]`: `/metrics` is not for everyone who can reach the HTTPS port.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Plain-HTTP listener for `/metrics`, `/healthz` and `/readyz` (`None`: none).
    pub listen: Option<std::net::SocketAddr>,
    /// Environment variable whose value, when set, is a bearer token that opens `/metrics`
    /// on the HTTPS port too.
    pub token_env: String,
}

/// The watched folders.
#[derive(Debug, Clone)]
pub struct Inbox {
    /// Watch `inbox/<agency>/`.
    pub enabled: bool,
    /// Delete accepted files instead of moving them to `accepted/`.
    pub delete_accepted: bool,
    /// Quiet period before a closed file is taken.
    pub stable: std::time::Duration,
    /// Full rescan period.
    pub rescan: std::time::Duration,
    /// Poll instead of kernel notifications.
    pub poll: bool,
}

/// `[quarantine]`: bounds on what is kept of rejected payloads. Over a bound, the oldest
/// entries are dropped first (each drop logged and audited).
#[derive(Debug, Clone)]
pub struct QuarantinePolicy {
    /// Bytes kept for all agencies together: payloads once per content, plus their records.
    pub max_total_bytes: u64,
    /// Bytes kept for one agency; a payload larger than this is not kept at all.
    pub max_agency_bytes: u64,
    /// Entries older than this are removed (at start-up and hourly while serving).
    pub retention: std::time::Duration,
}

impl Default for QuarantinePolicy {
    /// Per agency 4 GiB: the default `limits.max_payload_bytes`, so any payload the size limit
    /// lets through can still be kept when it is rejected later for its contents. In total
    /// 16 GiB: four agencies at their quota at once, a bound an operator sizes the state
    /// volume for. 30 days: a monthly reporting cycle for an agency to notice and resend, the
    /// same period as `keys.grace_days`.
    fn default() -> Self {
        QuarantinePolicy {
            max_total_bytes: 16 << 30,
            max_agency_bytes: 4 << 30,
            retention: std::time::Duration::from_secs(30 * 86_400),
        }
    }
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (`None`: embedded defaults only).
    pub file: Option<PathBuf>,
    /// Schemas and `catalog.toml`.
    pub schemas: PathBuf,
    /// Key material.
    pub keys: PathBuf,
    /// Watched folders.
    pub inbox: PathBuf,
    /// The folder-queue root (`outbox/`).
    pub outbox: PathBuf,
    /// Ledger, quarantine, spool.
    pub state: PathBuf,
    /// Queue name inside `outbox/`.
    pub queue: String,
    /// age recipients forwarded XML is encrypted to (empty: written as plaintext).
    pub hub_recipients: Vec<age::x25519::Recipient>,
    /// Forward the XML transcoded to UTF-8 (`[outbox] transcode_to_utf8`); otherwise the
    /// bytes as the agency signed them, in their own encoding.
    pub transcode_to_utf8: bool,
    /// Payload bounds.
    pub limits: Limits,
    /// `[http]`
    pub http: Http,
    /// `[inbox]`
    pub watch: Inbox,
    /// `[keys]`
    pub key_policy: KeyPolicy,
    /// `[metrics]`
    pub metrics: Metrics,
    /// `[quarantine]`
    pub quarantine: QuarantinePolicy,
    /// `[ledger]`
    pub ledger: Ledger,
    /// `[queue]`
    pub queue_backend: QueueBackend,
    /// `[web]`
    pub web: Web,
    /// `[mail]` (`None`: the mail channel is off).
    pub mail: Option<Mail>,
}

/// `[keys]`: rotation and secrets at rest.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// How long a rotated-out identity still opens payloads.
    pub grace: time::Duration,
    /// Where the passphrase of protected identities comes from (never the command line).
    pub passphrase: crate::keyring::Passphrase,
    /// Periodic reload of `keys/` while serving (expiry of grace periods, safety net).
    pub reload: std::time::Duration,
}

/// `[ledger]`: which ledger backend, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ledger {
    /// The embedded SQLite file `state/ledger.sqlite` (one instance).
    Sqlite,
    /// A PostgreSQL database shared by every instance.
    Postgres {
        /// The environment variable that holds the URL (never the file: it has a password).
        url_env: String,
        /// Connections this instance keeps.
        pool_size: u32,
        /// How long this instance's claim on its in-progress messages lasts unrenewed.
        lease: std::time::Duration,
    },
}

/// `[queue]`: which integration queue backend, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    /// The folder `outbox/<queue>/`.
    Outbox,
    /// A RabbitMQ quorum queue named `[outbox] queue`.
    RabbitMq {
        /// The environment variable that holds the AMQP URL.
        url_env: String,
        /// Payloads above this size travel by claim check.
        claim_check_bytes: u64,
        /// Where claim-checked payloads are written (a volume the hub reads).
        claim_check_dir: PathBuf,
        /// How long one publication may wait for the broker's confirm.
        confirm_timeout: std::time::Duration,
    },
}

impl Config {
    /// The SQLite ledger.
    pub fn ledger_path(&self) -> PathBuf {
        self.state.join("ledger.sqlite")
    }

    /// Where rejected payloads are kept, as received.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.state.join("quarantine")
    }

    /// The audit log's folder.
    pub fn audit_dir(&self) -> PathBuf {
        self.state.join("audit")
    }

    /// `outbox/<queue>/`.
    pub fn queue_dir(&self) -> PathBuf {
        self.outbox.join(&self.queue)
    }

    /// The embedded defaults, with paths relative to `base`.
    pub fn defaults(base: &Path) -> Config {
        // The defaults are within every bound, so checking them cannot fail.
        match check(RawConfig::default(), base, None) {
            Ok(c) => c,
            Err(e) => unreachable!("embedded defaults are invalid: {e}"),
        }
    }

    /// Loads `path` (or `./gateway.toml` when it exists, else embedded defaults relative to the
    /// current folder), applies `GATEWAY_*` environment overrides and checks every value.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("GATEWAY_") && k.contains("__"))
            .collect();
        let default = Path::new(DEFAULT_FILE);
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None if default.is_file() => Some(default.to_path_buf()),
            None => None,
        };
        let text = match &file {
            Some(p) => std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                path: p.clone(),
                error,
            })?,
            None => String::new(),
        };
        let base = file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let shown = file.clone().unwrap_or_else(|| PathBuf::from("(defaults)"));
        let raw = parse(&text, &env).map_err(|message| ConfigError::Syntax {
            path: shown,
            message,
        })?;
        check(raw, &base, file)
    }
}

/// Parses the TOML text with the environment overrides applied.
fn parse(text: &str, env: &[(String, String)]) -> Result<RawConfig, String> {
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("GATEWAY_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let table = doc
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match table {
            toml::Value::Table(t) => {
                t.insert(key, value);
            }
            _ => return Err(format!("{name}: `{section}` is not a section")),
        }
    }
    toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Descriptors kept for everything but connections: files of messages in flight, the
/// ledger, the audit log, watched folders, key reloads.
const DESCRIPTOR_HEADROOM: u64 = 256;

/// Three quarters of the descriptors left after the headroom, between 16 and 10,000: past
/// that many idle TLS connections a server runs out of descriptors ("Too many open files")
/// for the files every message needs.
pub fn default_max_connections() -> u64 {
    let limit = crate::fsio::descriptor_limit();
    (limit.saturating_sub(DESCRIPTOR_HEADROOM) * 3 / 4).clamp(16, 10_000)
}

/// Eight payloads per CPU core: enough to keep the cores busy while others wait
/// on their fsyncs, and to share those fsyncs; more only time-slices the cores between more
/// messages. On the 2-core reference VM, 16 instead of 64 cut p99 latency from 107-125 ms to
/// 79-82 ms at the same ~985 messages/s (`bench/load-ab.sh`, docs/benchmarks.md).
pub fn default_max_in_flight() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    8 * cores as u64
}

fn bounded(
    key: &str,
    v: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max}, found {v}"),
        ));
    }
    Ok(v)
}

/// Turns the raw file into a [`Config`]; pure, no I/O (paths are checked where they are used).
fn check(raw: RawConfig, base: &Path, file: Option<PathBuf>) -> Result<Config, ConfigError> {
    // Only the first mistake found is reported; this order (the XML bounds of `[limits]`
    // before `[http]`, its other bounds after `[paths]`) decides which one when there are several.
    let outbox = check_outbox(raw.outbox)?;
    let xml = check_xml_limits(&raw.limits)?;
    let http = check_http(raw.http)?;
    let metrics = check_metrics(raw.metrics)?;
    let watch = check_inbox(raw.inbox)?;
    let key_policy = check_keys(raw.keys, base)?;
    let quarantine = check_quarantine(&raw.quarantine)?;
    let ledger = check_ledger(raw.ledger)?;
    let paths = check_paths(raw.paths, base)?;
    let queue_backend = check_queue(raw.queue, base, &paths.state)?;
    let limits = check_limits(&raw.limits, xml)?;
    let web = web::check_web(raw.web)?;
    let mail = mail::check_mail(raw.mail, base)?;
    Ok(Config {
        web,
        mail,
        ledger,
        queue_backend,
        http,
        metrics,
        key_policy,
        quarantine,
        watch,
        file,
        schemas: paths.schemas,
        keys: paths.keys,
        inbox: paths.inbox,
        outbox: paths.outbox,
        state: paths.state,
        queue: outbox.queue,
        hub_recipients: outbox.hub_recipients,
        transcode_to_utf8: outbox.transcode_to_utf8,
        limits,
    })
}

fn env_name(key: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    let v = v.unwrap_or_else(|| default.to_owned());
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid(
            key,
            format!("{v:?} must be an environment variable name (A-Z, 0-9, _)"),
        ));
    }
    Ok(v)
}

fn check_ledger(l: raw::RawLedger) -> Result<Ledger, ConfigError> {
    match l.backend.as_deref().unwrap_or("sqlite") {
        "sqlite" => Ok(Ledger::Sqlite),
        "postgres" | "postgresql" => Ok(Ledger::Postgres {
            url_env: env_name("ledger.url_env", l.url_env, "GATEWAY_LEDGER_URL")?,
            pool_size: bounded("ledger.pool_size", l.pool_size, 16, 1, 1000)? as u32,
            lease: std::time::Duration::from_secs(bounded(
                "ledger.lease_secs",
                l.lease_secs,
                10,
                3,
                3600,
            )?),
        }),
        other => Err(invalid(
            "ledger.backend",
            format!("{other:?} is not a ledger backend: use \"sqlite\" or \"postgres\""),
        )),
    }
}

/// RabbitMQ's own largest message (`max_message_size`) is 128 MiB by default.
const RABBITMQ_MAX_MESSAGE: u64 = 128 << 20;

fn check_queue(q: raw::RawQueue, base: &Path, state: &Path) -> Result<QueueBackend, ConfigError> {
    match q.backend.as_deref().unwrap_or("outbox") {
        "outbox" => Ok(QueueBackend::Outbox),
        "rabbitmq" => Ok(QueueBackend::RabbitMq {
            url_env: env_name("queue.url_env", q.url_env, "GATEWAY_QUEUE_URL")?,
            claim_check_bytes: bounded(
                "queue.claim_check_bytes",
                q.claim_check_bytes,
                16 << 20,
                0,
                RABBITMQ_MAX_MESSAGE - (1 << 20),
            )?,
            claim_check_dir: q
                .claim_check_dir
                .map_or_else(|| state.join("claims"), |d| base.join(d)),
            confirm_timeout: std::time::Duration::from_secs(bounded(
                "queue.confirm_timeout_secs",
                q.confirm_timeout_secs,
                30,
                1,
                3600,
            )?),
        }),
        other => Err(invalid(
            "queue.backend",
            format!("{other:?} is not a queue backend: use \"outbox\" or \"rabbitmq\""),
        )),
    }
}

/// `[outbox]`, checked; [`Config`] holds its fields directly.
struct Outbox {
    queue: String,
    hub_recipients: Vec<age::x25519::Recipient>,
    transcode_to_utf8: bool,
}

fn check_outbox(o: raw::RawOutbox) -> Result<Outbox, ConfigError> {
    let transcode_to_utf8 = o.transcode_to_utf8.unwrap_or(false);
    let queue = o.queue.unwrap_or_else(|| "integration".to_owned());
    if !crate::message::is_safe_name(&queue) {
        return Err(invalid(
            "outbox.queue",
            format!(
                "{queue:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
            ),
        ));
    }
    let hub_recipients = check_hub_recipients(o.hub_recipients.unwrap_or_default())?;
    Ok(Outbox {
        queue,
        hub_recipients,
        transcode_to_utf8,
    })
}

fn check_hub_recipients(list: Vec<String>) -> Result<Vec<age::x25519::Recipient>, ConfigError> {
    let mut hub_recipients = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let parsed = r.parse::<age::x25519::Recipient>().map_err(|e| {
            invalid(
                &format!("outbox.hub_recipients[{i}]"),
                format!("{r:?} is not an age X25519 recipient (age1...): {e}"),
            )
        })?;
        hub_recipients.push(parsed);
    }
    Ok(hub_recipients)
}

/// The XML bounds of `[limits]`, handed to the XSD engine.
fn check_xml_limits(l: &raw::RawLimits) -> Result<xsd::Limits, ConfigError> {
    const GIB: u64 = 1 << 30;
    Ok(xsd::Limits {
        max_depth: bounded("limits.max_depth", l.max_depth, 256, 8, 10_000)? as usize,
        max_attributes: bounded("limits.max_attributes", l.max_attributes, 256, 1, 100_000)?
            as usize,
        max_text_len: bounded(
            "limits.max_text_bytes",
            l.max_text_bytes,
            16 << 20,
            1024,
            GIB,
        )? as usize,
        ..xsd::Limits::default()
    })
}

/// The rest of `[limits]`, around the XML bounds already checked.
fn check_limits(l: &raw::RawLimits, xml: xsd::Limits) -> Result<Limits, ConfigError> {
    Ok(Limits {
        max_payload_bytes: bounded(
            "limits.max_payload_bytes",
            l.max_payload_bytes,
            DEFAULT_MAX_PAYLOAD_BYTES,
            1024,
            1 << 40,
        )?,
        xml,
        max_errors: bounded("limits.max_errors", l.max_errors, 100, 1, 10_000)? as usize,
        min_free_disk_bytes: bounded(
            "limits.min_free_disk_bytes",
            l.min_free_disk_bytes,
            256 << 20,
            0,
            1 << 50,
        )?,
    })
}

fn check_http(h: raw::RawHttp) -> Result<Http, ConfigError> {
    let listen = h.listen.unwrap_or_else(|| "127.0.0.1:8443".to_owned());
    let listen = listen.parse().map_err(|_| {
        invalid(
            "http.listen",
            format!("{listen:?} is not an address:port such as 127.0.0.1:8443"),
        )
    })?;
    let secs = std::time::Duration::from_secs;
    let max_uploads = bounded("http.max_uploads", h.max_uploads, 512, 1, 100_000)?;
    Ok(Http {
        listen,
        max_in_flight: bounded(
            "http.max_in_flight",
            h.max_in_flight,
            default_max_in_flight(),
            1,
            100_000,
        )? as usize,
        max_uploads: max_uploads as usize,
        header_timeout: secs(bounded(
            "http.header_timeout_secs",
            h.header_timeout_secs,
            10,
            1,
            3600,
        )?),
        request_timeout: secs(bounded(
            "http.request_timeout_secs",
            h.request_timeout_secs,
            3600,
            1,
            86_400,
        )?),
        idle_timeout: secs(bounded(
            "http.idle_timeout_secs",
            h.idle_timeout_secs,
            60,
            1,
            3600,
        )?),
        // A quarter of the slots by default: one agency cannot starve the others.
        max_uploads_per_agency: bounded(
            "http.max_uploads_per_agency",
            h.max_uploads_per_agency,
            (max_uploads / 4).max(1),
            1,
            max_uploads,
        )? as usize,
        upload_grace: secs(bounded(
            "http.upload_grace_secs",
            h.upload_grace_secs,
            30,
            1,
            86_400,
        )?),
        min_upload_rate: bounded(
            "http.min_upload_bytes_per_sec",
            h.min_upload_bytes_per_sec,
            1024,
            0,
            1 << 30,
        )?,
        max_connections: bounded(
            "http.max_connections",
            h.max_connections,
            default_max_connections(),
            1,
            1_000_000,
        )? as usize,
        proxy_protocol_from: h
            .proxy_protocol_from
            .unwrap_or_default()
            .iter()
            .map(|e| network(e).map_err(|why| invalid("http.proxy_protocol_from", why)))
            .collect::<Result<_, _>>()?,
    })
}

/// An address or a network ("10.0.0.5", "10.0.0.0/24", "::1"); a bare address is that
/// address alone.
fn network(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    if let Ok(net) = value.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    value
        .parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{value:?} is neither an address nor a network such as 10.0.0.0/24"))
}

fn check_metrics(m: raw::RawMetrics) -> Result<Metrics, ConfigError> {
    let metrics_listen = m.listen.unwrap_or_else(|| "127.0.0.1:9464".to_owned());
    Ok(Metrics {
        listen: if metrics_listen.trim().is_empty() {
            None
        } else {
            Some(metrics_listen.parse().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!(
                        "{metrics_listen:?} is not an address:port such as 127.0.0.1:9464 (or \"\" for none)"
                    ),
                )
            })?)
        },
        token_env: m
            .token_env
            .unwrap_or_else(|| "GATEWAY_METRICS_TOKEN".to_owned()),
    })
}

fn check_inbox(i: raw::RawInbox) -> Result<Inbox, ConfigError> {
    Ok(Inbox {
        enabled: i.enabled.unwrap_or(true),
        delete_accepted: i.delete_accepted.unwrap_or(false),
        stable: std::time::Duration::from_millis(bounded(
            "inbox.stable_ms",
            i.stable_ms,
            1000,
            0,
            600_000,
        )?),
        rescan: std::time::Duration::from_secs(bounded(
            "inbox.rescan_secs",
            i.rescan_secs,
            30,
            1,
            86_400,
        )?),
        poll: i.poll.unwrap_or(false),
    })
}

fn check_keys(k: raw::RawKeys, base: &Path) -> Result<KeyPolicy, ConfigError> {
    let passphrase_file = match k.passphrase_file {
        Some(f) if f.is_empty() => {
            return Err(invalid(
                "keys.passphrase_file",
                "must not be empty".to_owned(),
            ));
        }
        Some(f) => Some(base.join(f)),
        None => None,
    };
    Ok(KeyPolicy {
        grace: time::Duration::days(bounded("keys.grace_days", k.grace_days, 30, 0, 3650)? as i64),
        passphrase: crate::keyring::Passphrase {
            env: k
                .passphrase_env
                .unwrap_or_else(|| "GATEWAY_IDENTITY_PASSPHRASE".to_owned()),
            file: passphrase_file,
        },
        reload: std::time::Duration::from_secs(bounded(
            "keys.reload_secs",
            k.reload_secs,
            60,
            1,
            86_400,
        )?),
    })
}

/// `[paths]`, checked and made relative to the configuration file's folder.
struct Paths {
    schemas: PathBuf,
    keys: PathBuf,
    inbox: PathBuf,
    outbox: PathBuf,
    state: PathBuf,
}

fn check_paths(p: raw::RawPaths, base: &Path) -> Result<Paths, ConfigError> {
    let dir = |key: &str, v: Option<String>, default: &str| -> Result<PathBuf, ConfigError> {
        let v = v.unwrap_or_else(|| default.to_owned());
        if v.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
        Ok(base.join(v))
    };
    Ok(Paths {
        schemas: dir("paths.schemas", p.schemas, "schemas")?,
        keys: dir("paths.keys", p.keys, "keys")?,
        inbox: dir("paths.inbox", p.inbox, "inbox")?,
        outbox: dir("paths.outbox", p.outbox, "outbox")?,
        state: dir("paths.state", p.state, "state")?,
    })
}

fn check_quarantine(q: &raw::RawQuarantine) -> Result<QuarantinePolicy, ConfigError> {
    let d = QuarantinePolicy::default();
    let max_total_bytes = bounded(
        "quarantine.max_total_bytes",
        q.max_total_bytes,
        d.max_total_bytes,
        1024,
        1 << 50,
    )?;
    let max_agency_bytes = bounded(
        "quarantine.max_agency_bytes",
        q.max_agency_bytes,
        d.max_agency_bytes.min(max_total_bytes),
        1024,
        1 << 50,
    )?;
    if max_agency_bytes > max_total_bytes {
        return Err(invalid(
            "quarantine.max_agency_bytes",
            format!(
                "{max_agency_bytes} must not exceed quarantine.max_total_bytes ({max_total_bytes})"
            ),
        ));
    }
    let days = bounded(
        "quarantine.retention_days",
        q.retention_days,
        d.retention.as_secs() / 86_400,
        1,
        3650,
    )?;
    Ok(QuarantinePolicy {
        max_total_bytes,
        max_agency_bytes,
        retention: std::time::Duration::from_secs(days * 86_400),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let raw = parse(text, &env)?;
        check(raw, Path::new("/srv/gw"), None).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_embedded_defaults_relative_to_the_config_folder() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.schemas, Path::new("/srv/gw/schemas"));
        assert_eq!(c.queue_dir(), Path::new("/srv/gw/outbox/integration"));
        assert_eq!(c.limits.xml.max_depth, 256);
        assert!(c.hub_recipients.is_empty());
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.http.max_in_flight, 8 * cores);
        assert_eq!(
            load("[http]\nmax_in_flight = 5\n", &[])
                .unwrap()
                .http
                .max_in_flight,
            5
        );
    }

    #[test]
    fn proxy_protocol_sources_are_addresses_or_networks_named_by_key_when_wrong() {
        assert!(load("", &[]).unwrap().http.proxy_protocol_from.is_empty());
        let c = load(
            "[http]\nproxy_protocol_from = [\"10.0.0.7/24\", \"::1\", \"192.0.2.1\"]\n",
            &[],
        )
        .unwrap();
        let nets: Vec<String> = c
            .http
            .proxy_protocol_from
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/24", "::1/128", "192.0.2.1/32"]);
        let e = load("[http]\nproxy_protocol_from = [\"haproxy\"]\n", &[]).unwrap_err();
        assert!(
            e.contains("http.proxy_protocol_from") && e.contains("\"haproxy\""),
            "{e}"
        );
    }

    #[test]
    fn mail_is_off_by_default_and_checked_by_key_when_on() {
        assert!(load("", &[]).unwrap().mail.is_none());
        let on = "[mail]\nenabled = true\nimap = \"imap.hub.example:993\"\nsmtp = \"smtp.hub.example:587\"\nuser = \"gateway@hub.example\"\n";
        let m = load(on, &[]).unwrap().mail.unwrap();
        assert_eq!(m.imap.security, Security::Tls, "993 is implicit TLS");
        assert_eq!(m.smtp.security, Security::StartTls, "587 is STARTTLS");
        assert_eq!(
            m.from, "gateway@hub.example",
            "answers come from the user's address"
        );
        assert_eq!(m.imap.password.env, "GATEWAY_MAIL_PASSWORD");
        assert_eq!(
            (m.processed_folder.as_str(), m.rejected_folder.as_str()),
            ("Processed", "Rejected")
        );
        let e = load("[mail]\nenabled = true\n", &[]).unwrap_err();
        assert!(e.contains("mail.imap"), "{e}");
        let e = load(&format!("{on}imap_security = \"none\"\n"), &[]).unwrap_err();
        assert!(e.contains("mail.imap_security"), "{e}");
        let e = load(&format!("{on}[mail.senders]\npolice = [\"nobody\"]\n"), &[]).unwrap_err();
        assert!(e.contains("mail.senders.police"), "{e}");
        let ok = load(
            &format!(
                "{on}[mail.senders]\npolice = [\"Clerk@Police.Example\", \"@police.example\"]\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            ok.mail.unwrap().senders["police"],
            ["clerk@police.example", "@police.example"]
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load("[outbox]\nqueu = \"x\"\n", &[]).unwrap_err();
        assert!(e.contains("queu"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file_and_is_checked_by_key_name() {
        let c = load(
            "[outbox]\nqueue = \"a\"\n",
            &[("GATEWAY_OUTBOX__QUEUE", "b")],
        )
        .unwrap();
        assert_eq!(c.queue, "b");
        let c = load("", &[("GATEWAY_LIMITS__MAX_DEPTH", "64")]).unwrap();
        assert_eq!(c.limits.xml.max_depth, 64);
        let e = load("", &[("GATEWAY_LIMITS__MAX_DEPTH", "3")]).unwrap_err();
        assert!(e.starts_with("`limits.max_depth`"), "{e}");
    }

    #[test]
    fn quarantine_bounds_have_defaults_and_are_checked_by_key_name() {
        let q = load("", &[]).unwrap().quarantine;
        assert_eq!(q.max_total_bytes, 16 << 30);
        assert_eq!(q.max_agency_bytes, 4 << 30);
        assert_eq!(q.retention, std::time::Duration::from_secs(30 * 86_400));
        // A small total lowers the default per-agency bound with it.
        let q = load("[quarantine]\nmax_total_bytes = 1048576\n", &[])
            .unwrap()
            .quarantine;
        assert_eq!(q.max_agency_bytes, 1 << 20);
        let e = load(
            "[quarantine]\nmax_total_bytes = 4096\nmax_agency_bytes = 8192\n",
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("`quarantine.max_agency_bytes`"), "{e}");
        let e = load("[quarantine]\nretention_days = 0\n", &[]).unwrap_err();
        assert!(e.starts_with("`quarantine.retention_days`"), "{e}");
        let e = load("[quarantine]\nkeep = 1\n", &[]).unwrap_err();
        assert!(e.contains("keep"), "{e}");
    }

    #[test]
    fn bad_queue_name_and_bad_recipient_are_rejected_by_key() {
        let e = load("[outbox]\nqueue = \"../x\"\n", &[]).unwrap_err();
        assert!(e.starts_with("`outbox.queue`"), "{e}");
        let e = load("[outbox]\nhub_recipients = [\"age1nope\"]\n", &[]).unwrap_err();
        assert!(e.starts_with("`outbox.hub_recipients[0]`"), "{e}");
    }

    #[test]
    fn ledger_and_queue_backends_default_to_the_embedded_ones_and_are_checked_by_key() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.ledger, Ledger::Sqlite);
        assert_eq!(c.queue_backend, QueueBackend::Outbox);
        let c = load(
            "[ledger]\nbackend = \"postgres\"\n[queue]\nbackend = \"rabbitmq\"\nclaim_check_dir = \"claims\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.ledger,
            Ledger::Postgres {
                url_env: "GATEWAY_LEDGER_URL".into(),
                pool_size: 16,
                lease: std::time::Duration::from_secs(10),
            }
        );
        match c.queue_backend {
            QueueBackend::RabbitMq {
                url_env,
                claim_check_bytes,
                claim_check_dir,
                ..
            } => {
                assert_eq!(url_env, "GATEWAY_QUEUE_URL");
                assert_eq!(claim_check_bytes, 16 << 20);
                assert_eq!(claim_check_dir, Path::new("/srv/gw/claims"));
            }
            other => panic!("{other:?}"),
        }
        let e = load("[ledger]\nbackend = \"mysql\"\n", &[]).unwrap_err();
        assert!(e.starts_with("`ledger.backend`"), "{e}");
        let e = load("[queue]\nbackend = \"kafka\"\n", &[]).unwrap_err();
        assert!(e.starts_with("`queue.backend`"), "{e}");
        let e = load(
            "[queue]\nbackend = \"rabbitmq\"\nclaim_check_bytes = 1000000000\n",
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("`queue.claim_check_bytes`"), "{e}");
        let e = load("[ledger]\nbackend = \"postgres\"\nurl_env = \"a b\"\n", &[]).unwrap_err();
        assert!(e.starts_with("`ledger.url_env`"), "{e}");
    }
}
