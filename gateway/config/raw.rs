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
}

/// `[outbox]`: the default sink.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    /// Queue name: `outbox/<queue>/`.
    pub queue: Option<String>,
    /// age recipients (`age1...`) the forwarded XML is re-encrypted to; empty = plaintext.
    pub hub_recipients: Option<Vec<String>>,
}
