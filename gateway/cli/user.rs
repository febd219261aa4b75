//! `gateway user`: people's accounts for the upload page and the console.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::accounts::{self, Credentials, NewUser, Role};
use crate::config::Config;

/// `gateway user ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make an account. Its password (and, for operators, admins and `--totp`, the TOTP
    /// secret for an authenticator app) is printed once; only the password's hash is kept.
    Add {
        /// Sign-in name: a-z, 0-9, '.', '-', '_', '@'.
        name: String,
        /// The agency the person uploads for (required for uploaders).
        #[arg(long)]
        agency: Option<String>,
        /// What the person may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Give an uploader a second factor too (operators and admins always have one).
        #[arg(long)]
        totp: bool,
        /// A client certificate (PEM) that signs the person in without a password.
        #[arg(long, value_name = "FILE")]
        client_certificate: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot sign in, and its sessions end at their next request.
    Disable {
        /// The account.
        name: String,
    },
    /// Give an account a new password (and TOTP secret), enable it, lift a lock-out and end
    /// its sessions.
    Reset {
        /// The account.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gateway user`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    match cmd {
        Command::Add {
            name,
            agency,
            role,
            totp,
            client_certificate,
            json: as_json,
        } => {
            let new = NewUser {
                name,
                agency: agency.as_deref(),
                role: *role,
                totp: *totp,
                client_certificate: None,
            };
            add(config, new, client_certificate.as_deref(), *as_json)
        }
        Command::List { json: as_json } => list(config, *as_json),
        Command::Disable { name } => {
            if admin(config).user_disable(name)? {
                println!("disabled {name}; its sessions end at their next request");
            } else {
                println!("{name} was already disabled");
            }
            Ok(exit::OK)
        }
        Command::Reset {
            name,
            json: as_json,
        } => {
            let made = admin(config).user_reset(name)?;
            show(&made, *as_json, "reset");
            Ok(exit::OK)
        }
    }
}

/// The admin acting: whoever runs the command.
fn admin(config: &Config) -> crate::admin::Admin<'_> {
    crate::admin::Admin::new(config, &crate::audit::local_user(), "cli")
}

/// `gateway user add`
fn add(
    config: &Config,
    mut new: NewUser<'_>,
    client_certificate: Option<&std::path::Path>,
    as_json: bool,
) -> anyhow::Result<u8> {
    if let Some(path) = client_certificate {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let cert = openssl::x509::X509::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        new.client_certificate = Some(crate::keyring::x509gen::fingerprint(&cert)?);
    }
    let made = admin(config).user_add(&new)?;
    show(&made, as_json, "made");
    Ok(exit::OK)
}

/// `gateway user list`
fn list(config: &Config, as_json: bool) -> anyhow::Result<u8> {
    let users = accounts::list(&config.keys)?;
    if as_json {
        let rows: Vec<_> = users
            .iter()
            .map(|u| {
                json!({"name": u.name, "agency": u.agency, "role": u.role.as_str(),
                       "totp": u.totp.is_some(), "client_certificate": u.client_certificate,
                       "disabled": u.disabled, "created": u.created})
            })
            .collect();
        println!("{}", json!({ "users": rows }));
        return Ok(exit::OK);
    }
    for u in users {
        println!(
            "{:<24} {:<9} {:<16} {}{}",
            u.name,
            u.role.as_str(),
            u.agency.as_deref().unwrap_or("-"),
            if u.totp.is_some() { "totp" } else { "no totp" },
            if u.disabled { ", DISABLED" } else { "" }
        );
    }
    Ok(exit::OK)
}

/// Prints new credentials: on stdout what a script needs, on stderr the advice.
fn show(made: &Credentials, as_json: bool, what: &str) {
    if as_json {
        println!("{}", json!(made));
        return;
    }
    eprintln!(
        "account {} {what}; give the person these once, by a safe channel:",
        made.name
    );
    println!("password: {}", made.password);
    if let (Some(secret), Some(url)) = (&made.totp_secret, &made.totp_url) {
        println!("totp secret: {secret}");
        println!("totp address: {url}");
    }
}
