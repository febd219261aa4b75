//! `gateway agency`: register agencies and their signing certificates.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::keyring::agencies;

/// `gateway agency ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Register an agency (creates `keys/agencies/<NAME>/`).
    Add {
        /// Short name: a-z, 0-9 and '-'.
        name: String,
        /// Name shown to people (default: NAME).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List registered agencies and how many certificates each has pinned.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Manage an agency's signing certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Manage an agency's bearer tokens for HTTPS uploads.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `gateway agency token ...`
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a bearer token (printed once; only its hash is stored).
    Issue {
        /// The agency.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The agency.
        name: String,
        /// The token id (the part after `gw_`).
        token_id: String,
    },
}

/// `gateway agency cert ...`
#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Pin a signing certificate (PEM) for an agency.
    Add {
        /// The agency.
        name: String,
        /// The certificate file.
        cert: PathBuf,
    },
}

/// Runs `gateway agency`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    let keys = &config.keys;
    match cmd {
        Command::Add { name, display_name } => {
            let made = agencies::add(keys, name, display_name.as_deref().unwrap_or(name))?;
            if made {
                super::audit::admin(
                    config,
                    "agency add",
                    name,
                    json!({ "display_name": display_name }),
                )?;
            }
            println!(
                "{} {name}",
                if made {
                    "registered"
                } else {
                    "already registered:"
                }
            );
            Ok(exit::OK)
        }
        Command::List { json } => {
            let list = agencies::list(keys)?;
            let rows: Vec<_> = list
                .iter()
                .map(|a| {
                    let dir = agencies::agency_dir(keys, &a.name);
                    let count = |sub: &str| {
                        std::fs::read_dir(dir.join(sub))
                            .map(|d| d.flatten().count())
                            .unwrap_or(0)
                    };
                    (a, count("certs"), count("anchors"))
                })
                .collect();
            if *json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(a, c, t)| {
                        json!({"name": a.name, "display_name": a.display_name, "pinned_certificates": c, "trust_anchors": t})
                    })
                    .collect();
                println!("{}", json!({ "agencies": v }));
            } else {
                for (a, c, t) in rows {
                    println!(
                        "{:<16} {:<28} {c} pinned, {t} anchors",
                        a.name, a.display_name
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::Token(TokenCommand::Issue {
            name,
            json: as_json,
        }) => {
            let (id, token) = crate::keyring::tokens::issue(keys, name)?;
            super::audit::admin(
                config,
                "agency token issue",
                name,
                json!({ "token_id": id }),
            )?;
            if *as_json {
                println!("{}", json!({"agency": name, "id": id, "token": token}));
            } else {
                eprintln!("token {id} for {name} (shown once; store it safely):");
                println!("{token}");
            }
            Ok(exit::OK)
        }
        Command::Token(TokenCommand::Revoke { name, token_id }) => {
            if crate::keyring::tokens::revoke(keys, name, token_id)? {
                super::audit::admin(
                    config,
                    "agency token revoke",
                    name,
                    json!({ "token_id": token_id }),
                )?;
                println!("revoked token {token_id} of {name}");
                Ok(exit::OK)
            } else {
                anyhow::bail!("agency {name} has no token {token_id}")
            }
        }
        Command::Cert(CertCommand::Add { name, cert }) => {
            let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let fp = agencies::add_cert(keys, name, &pem)?;
            super::audit::admin(
                config,
                "agency cert add",
                name,
                json!({ "fingerprint_sha256": fp, "file": cert }),
            )?;
            println!("pinned {fp} for {name}");
            Ok(exit::OK)
        }
    }
}
