//! `gateway keys`: the gateway's own key material.

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::keyring::{self, inventory};

/// `gateway keys ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create whatever is missing of a complete development key set under `keys/`: the
    /// gateway's age identity, receipt-signing and TLS certificates, the eight seed agencies
    /// and a development signing certificate for each (private files 0600). Never overwrites.
    Init {
        /// Only the gateway's own keys (age identity, receipt key, a self-signed TLS
        /// certificate to replace): no seed agencies, no development signers. For a real hub.
        #[arg(long)]
        production: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make a new age identity current. The previous one keeps opening payloads for the
    /// grace period (`[keys] grace_days`, default 30), so agencies can switch at their pace.
    /// A running gateway picks the change up before its next payload.
    Rotate {
        /// Grace period in days for the identity being replaced (default: from the config).
        #[arg(long)]
        grace_days: Option<u32>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Stop an identity in grace from opening payloads, before its grace ends. Payloads
    /// sealed to it are then refused with `no_matching_key`, naming the current recipient.
    Retire {
        /// The identity's id (`gateway keys list`).
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Every key and certificate: identities, TLS, receipt and agency certificates, with
    /// state, fingerprint, dates and days left.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gateway keys`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    match cmd {
        Command::Init { production, json } => init(config, *production, *json),
        Command::Rotate { grace_days, json } => rotate(config, *grace_days, *json),
        Command::Retire { id, json } => retire(config, id, *json),
        Command::List { json } => list(config, *json),
    }
}

/// The admin acting: whoever runs the command.
fn admin(config: &Config) -> crate::admin::Admin<'_> {
    crate::admin::Admin::new(config, &crate::audit::local_user(), "cli")
}

/// `gateway keys init`
fn init(config: &Config, production: bool, json: bool) -> anyhow::Result<u8> {
    let keys = &config.keys;
    let made = if production {
        keyring::init_production(keys, &config.key_policy.passphrase)
    } else {
        keyring::init(keys, &config.key_policy.passphrase)
    };
    let made = made.with_context(|| format!("creating keys in {}", keys.display()))?;
    if !made.is_empty() {
        admin(config).keys_initialised(&made)?;
    }
    if json {
        println!("{}", json!({ "keys": keys, "created": made }));
    } else if made.is_empty() {
        println!("{}: complete, nothing to create", keys.display());
    } else {
        for m in &made {
            println!("created {m}");
        }
    }
    Ok(exit::OK)
}

/// `gateway keys rotate`
fn rotate(config: &Config, grace_days: Option<u32>, json: bool) -> anyhow::Result<u8> {
    let grace = grace_days.map(|d| time::Duration::days(i64::from(d)));
    let r = admin(config)
        .keys_rotate(grace)
        .with_context(|| format!("rotating the identity in {}", config.keys.display()))?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("current  {}  {}", r.current.id, r.current.recipient);
        if let Some(p) = &r.previous {
            println!(
                "grace    {}  {}  until {}",
                p.id,
                p.recipient,
                p.grace_until.as_deref().unwrap_or("?")
            );
        }
        println!(
            "agencies should seal to {} from now on (`gateway recipient --url ...` fetches it)",
            r.current.recipient
        );
    }
    Ok(exit::OK)
}

/// `gateway keys retire`
fn retire(config: &Config, id: &str, json: bool) -> anyhow::Result<u8> {
    let done = admin(config).keys_retire(id)?;
    if json {
        println!("{}", serde_json::to_string(&done)?);
    } else {
        println!(
            "retired  {}  {}: payloads sealed to it are refused from now on",
            done.id, done.recipient
        );
    }
    Ok(exit::OK)
}

/// `gateway keys list`
fn list(config: &Config, json: bool) -> anyhow::Result<u8> {
    let entries = inventory::inventory(&config.keys, time::OffsetDateTime::now_utc());
    if json {
        println!("{}", serde_json::to_string(&json!({ "keys": entries }))?);
        return Ok(exit::OK);
    }
    println!(
        "{:<15} {:<16} {:<14} {:>9}  {:<27} {:<27} ID / SUBJECT",
        "KIND", "OWNER", "STATE", "DAYS LEFT", "FROM", "UNTIL"
    );
    for e in &entries {
        println!(
            "{:<15} {:<16} {:<14} {:>9}  {:<27} {:<27} {} / {}",
            e.kind,
            e.owner,
            e.state,
            e.days_left
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            e.from.as_deref().unwrap_or("-"),
            e.until.as_deref().unwrap_or("-"),
            e.id,
            e.subject
        );
    }
    Ok(exit::OK)
}
