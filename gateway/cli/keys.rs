//! `gateway keys`: the gateway's own key material.

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::keyring::{self, Identities};

/// `gateway keys ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create whatever is missing of a complete development key set under `keys/`: the
    /// gateway's age identity, receipt-signing and TLS certificates, the eight seed agencies
    /// and a development signing certificate for each (private files 0600). Never overwrites.
    Init {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the gateway's age identities and their status.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gateway keys`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    match cmd {
        Command::Init { json } => {
            let made = keyring::init(&config.keys)
                .with_context(|| format!("creating keys in {}", config.keys.display()))?;
            if !made.is_empty() {
                super::audit::admin(config, "keys init", "keys", json!({ "created": made }))?;
            }
            if *json {
                println!("{}", json!({ "keys": config.keys, "created": made }));
            } else if made.is_empty() {
                println!("{}: complete, nothing to create", config.keys.display());
            } else {
                for m in &made {
                    println!("created {m}");
                }
            }
            Ok(exit::OK)
        }
        Command::List { json } => {
            let ids = Identities::load(&config.keys)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string(&json!({ "identities": ids.info }))?
                );
            } else {
                for i in &ids.info {
                    println!(
                        "{:<8} {}  {}  created {}",
                        format!("{:?}", i.status).to_lowercase(),
                        i.id,
                        i.recipient,
                        i.created
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}
