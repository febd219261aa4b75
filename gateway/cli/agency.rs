//! `gateway agency`: register agencies and their signing certificates.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::admin::{Admin, AdminError};
use crate::audit::local_user;
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
    /// Pin a signing certificate (PEM) for an agency. Several may be pinned at once: old
    /// and new are both accepted while their validity windows overlap.
    Add {
        /// The agency.
        name: String,
        /// The certificate file.
        cert: PathBuf,
        /// Accept it only from this time (RFC 3339, e.g. 2027-01-31T00:00:00Z), to register
        /// the next certificate ahead of the switch-over.
        #[arg(long, value_parser = parse_time)]
        not_before: Option<time::OffsetDateTime>,
        /// Pin it even if it is expired or not valid yet (with a warning): without this, such a
        /// certificate is refused, as every payload it signs would be.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a certificate of an agency: from the next payload on (a running gateway too),
    /// anything it signed is refused with `certificate_revoked`.
    Revoke {
        /// The agency.
        name: String,
        /// SHA-256 fingerprint (`gateway keys list`), or the certificate file.
        cert: String,
    },
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z: {e}"))
}

/// Runs `gateway agency`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    match cmd {
        Command::Add { name, display_name } => add(config, name, display_name.as_deref()),
        Command::List { json } => list(config, *json),
        Command::Token(TokenCommand::Issue {
            name,
            json: as_json,
        }) => issue_token(config, name, *as_json),
        Command::Token(TokenCommand::Revoke { name, token_id }) => {
            revoke_token(config, name, token_id)
        }
        Command::Cert(CertCommand::Add {
            name,
            cert,
            not_before,
            force,
        }) => add_cert(config, name, cert, *not_before, *force),
        Command::Cert(CertCommand::Revoke { name, cert }) => revoke_cert(config, name, cert),
    }
}

/// The admin acting: whoever runs the command.
fn admin(config: &Config) -> Admin<'_> {
    Admin::new(config, &local_user(), "cli")
}

/// `gateway agency add`
fn add(config: &Config, name: &str, display_name: Option<&str>) -> anyhow::Result<u8> {
    let made = admin(config).agency_add(name, display_name)?;
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

/// `gateway agency list`
fn list(config: &Config, json: bool) -> anyhow::Result<u8> {
    let keys = &config.keys;
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
    if json {
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

/// `gateway agency token issue`
fn issue_token(config: &Config, name: &str, as_json: bool) -> anyhow::Result<u8> {
    let (id, token) = admin(config).token_issue(name)?;
    if as_json {
        println!("{}", json!({"agency": name, "id": id, "token": token}));
    } else {
        eprintln!("token {id} for {name} (shown once; store it safely):");
        println!("{token}");
    }
    Ok(exit::OK)
}

/// `gateway agency token revoke`
fn revoke_token(config: &Config, name: &str, token_id: &str) -> anyhow::Result<u8> {
    admin(config).token_revoke(name, token_id)?;
    println!("revoked token {token_id} of {name}");
    Ok(exit::OK)
}

/// `gateway agency cert add`
fn add_cert(
    config: &Config,
    name: &str,
    cert: &Path,
    not_before: Option<time::OffsetDateTime>,
    force: bool,
) -> anyhow::Result<u8> {
    let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let shown = cert.display().to_string();
    let added = match admin(config).cert_add(name, &pem, not_before, force, &shown) {
        Ok(added) => added,
        Err(AdminError::Refused(why)) => {
            eprintln!("error: {why}");
            return Ok(exit::INVALID);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(problem) = &added.forced_despite {
        eprintln!(
            "warning: {shown}: {problem}; pinned anyway (--force): payloads it signs are refused with certificate_expired while it is outside its validity window"
        );
    }
    let fp = &added.fingerprint;
    match &added.from {
        Some(f) => println!("pinned {fp} for {name}, accepted from {f}"),
        None => println!("pinned {fp} for {name}"),
    }
    Ok(exit::OK)
}

/// `gateway agency cert revoke`
fn revoke_cert(config: &Config, name: &str, cert: &str) -> anyhow::Result<u8> {
    let path = Path::new(cert);
    let fp = if path.is_file() {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let x = openssl::x509::X509::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        crate::keyring::x509gen::fingerprint(&x)?
    } else {
        cert.to_owned()
    };
    let fresh = admin(config).cert_revoke(name, &fp)?;
    let fp = fp.to_ascii_lowercase().replace(':', "");
    if fresh {
        println!("revoked {fp} for {name}");
    } else {
        println!("{fp} was already revoked for {name}");
    }
    Ok(exit::OK)
}
