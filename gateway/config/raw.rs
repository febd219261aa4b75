//! The TOML file as written, before any check: every field optional, unknown keys refused.

use serde::Deserialize;

/// `gateway.toml` as parsed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[paths]`
    #[serde(default)]
    pub paths: RawPaths,
    /// `[limits]`
    #[serde(default)]
    pub limits: RawLimits,
    /// `[outbox]`
    #[serde(default)]
    pub outbox: RawOutbox,
    /// `[http]`
    #[serde(default)]
    pub http: RawHttp,
    /// `[inbox]`
    #[serde(default)]
    pub inbox: RawInbox,
    /// `[keys]`
    #[serde(default)]
    pub keys: RawKeys,
    /// `[metrics]`
    #[serde(default)]
    pub metrics: RawMetrics,
    /// `[quarantine]`
    #[serde(default)]
    pub quarantine: RawQuarantine,
    /// `[ledger]`
    #[serde(default)]
    pub ledger: RawLedger,
    /// `[queue]`
    #[serde(default)]
    pub queue: RawQueue,
    /// `[web]`
    #[serde(default)]
    pub web: super::web::RawWeb,
    /// `[mail]`
    #[serde(default)]
    pub mail: super::mail::RawMail,
}

/// `[ledger]`: where the message ledger lives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    /// `sqlite` (embedded, `state/ledger.sqlite`) or `postgres` (shared by several instances).
    pub backend: Option<String>,
    /// Environment variable holding the PostgreSQL URL (it carries a password).
    pub url_env: Option<String>,
    /// Connections to PostgreSQL kept by this instance.
    pub pool_size: Option<u64>,
    /// Seconds an instance's lease on its in-progress messages lasts without renewal.
    pub lease_secs: Option<u64>,
}

/// `[queue]`: which integration queue the hub reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// `outbox` (the folder `outbox/<queue>/`) or `rabbitmq` (a quorum queue named `<queue>`).
    pub backend: Option<String>,
    /// Environment variable holding the AMQP URL (it carries a password).
    pub url_env: Option<String>,
    /// Payloads larger than this travel by claim check (bytes).
    pub claim_check_bytes: Option<u64>,
    /// Where claim-checked payloads are written: a folder on a volume the hub can read.
    pub claim_check_dir: Option<String>,
    /// Seconds to wait for the broker's confirm of one publication.
    pub confirm_timeout_secs: Option<u64>,
}

/// `[quarantine]`: how much of the rejected payloads is kept, and for how long.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuarantine {
    /// Bytes kept for all agencies together (payloads and their records).
    pub max_total_bytes: Option<u64>,
    /// Bytes kept for one agency.
    pub max_agency_bytes: Option<u64>,
    /// Days an entry is kept.
    pub retention_days: Option<u64>,
}

/// `[keys]`: rotation and secrets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Days a rotated-out identity still opens payloads.
    pub grace_days: Option<u64>,
    /// Environment variable holding the passphrase of protected identities.
    pub passphrase_env: Option<String>,
    /// File holding that passphrase (systemd credentials style).
    pub passphrase_file: Option<String>,
    /// Seconds between periodic reloads of `keys/` (a safety net behind notifications).
    pub reload_secs: Option<u64>,
}

/// `[http]`: the HTTPS channel.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Listen address, e.g. `127.0.0.1:8443`.
    pub listen: Option<String>,
    /// Payloads processed at once (others wait for a slot).
    pub max_in_flight: Option<u64>,
    /// Uploads being received at once; beyond that, `503` with `Retry-After`.
    pub max_uploads: Option<u64>,
    /// Seconds a client may take to send the request headers.
    pub header_timeout_secs: Option<u64>,
    /// Seconds a whole upload may take.
    pub request_timeout_secs: Option<u64>,
    /// Seconds an idle keep-alive connection is kept.
    pub idle_timeout_secs: Option<u64>,
    /// Uploads one agency may have in progress at once (its share of `max_uploads`).
    pub max_uploads_per_agency: Option<u64>,
    /// Seconds an upload may take before the minimum rate applies.
    pub upload_grace_secs: Option<u64>,
    /// Minimum average upload rate after the grace period (bytes per second; 0 = none).
    pub min_upload_bytes_per_sec: Option<u64>,
    /// Connections open at once (default: from the descriptor limit).
    pub max_connections: Option<u64>,
    /// Load balancers (addresses or networks) whose connections start with a PROXY header
    /// naming the client (HAProxy's `send-proxy-v2`).
    pub proxy_protocol_from: Option<Vec<String>>,
}

/// `[metrics]`: where `/metrics` is served.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Plain-HTTP listener for `/metrics`, `/healthz`, `/readyz`; empty: none.
    pub listen: Option<String>,
    /// Environment variable whose token also opens `/metrics` on the HTTPS port.
    pub token_env: Option<String>,
}

/// `[inbox]`: the watched folders.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInbox {
    /// Watch `inbox/<agency>/` folders.
    pub enabled: Option<bool>,
    /// Delete accepted files instead of moving them to `accepted/`.
    pub delete_accepted: Option<bool>,
    /// A file closed after writing is taken once unchanged for this long (milliseconds).
    pub stable_ms: Option<u64>,
    /// Full rescan period, a safety net behind the notifications (seconds).
    pub rescan_secs: Option<u64>,
    /// Poll instead of using kernel notifications (network filesystems).
    pub poll: Option<bool>,
}

/// `[paths]`: folders and files, relative to the configuration file's folder.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    /// Schemas and `catalog.toml`.
    pub schemas: Option<String>,
    /// Key material (`keys/`).
    pub keys: Option<String>,
    /// Watched folders.
    pub inbox: Option<String>,
    /// The folder queue.
    pub outbox: Option<String>,
    /// Ledger, quarantine and spool.
    pub state: Option<String>,
}

/// `[limits]`: bounds applied to every payload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest sealed payload accepted, in bytes.
    pub max_payload_bytes: Option<u64>,
    /// Deepest element nesting.
    pub max_depth: Option<u64>,
    /// Most attributes on one element.
    pub max_attributes: Option<u64>,
    /// Longest text node, in bytes.
    pub max_text_bytes: Option<u64>,
    /// Most schema violations reported for one message.
    pub max_errors: Option<u64>,
    /// Free space below which `state/`, the outbox and the quarantine are "low" (bytes).
    pub min_free_disk_bytes: Option<u64>,
}

/// `[outbox]`: the default sink.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    /// Queue name: `outbox/<queue>/`.
    pub queue: Option<String>,
    /// age recipients (`age1...`) the forwarded XML is re-encrypted to; empty = plaintext.
    pub hub_recipients: Option<Vec<String>>,
    /// Forward the XML transcoded to UTF-8 (default false: the bytes as signed).
    pub transcode_to_utf8: Option<bool>,
}
