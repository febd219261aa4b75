//! `[mail]`: the mail channel. The gateway reads one hub mailbox over IMAP and answers over SMTP
//! submission; both are the hub's existing mail system, never a server of ours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, bounded, env_name, invalid};

/// `[mail]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    /// Read the mailbox (default false).
    pub enabled: Option<bool>,
    /// `host:port` of the IMAP server.
    pub imap: Option<String>,
    /// `tls` (implicit, port 993) or `starttls`.
    pub imap_security: Option<String>,
    /// The mailbox's user name.
    pub user: Option<String>,
    /// File holding the password (first line; 0600).
    pub password_file: Option<String>,
    /// Environment variable holding the password, when no file is named.
    pub password_env: Option<String>,
    /// Folder the agencies' mail arrives in.
    pub folder: Option<String>,
    /// Where mail goes once every attachment was accepted.
    pub processed_folder: Option<String>,
    /// Where every other mail goes.
    pub rejected_folder: Option<String>,
    /// Wait with IMAP IDLE when the server offers it (otherwise poll).
    pub idle: Option<bool>,
    /// Seconds between looks at the folder without IDLE, and the longest IDLE.
    pub poll_secs: Option<u64>,
    /// Extra CA certificate (PEM) trusted for the IMAP and SMTP servers.
    pub ca_file: Option<String>,
    /// Largest mail taken, in bytes (larger mail is refused without being downloaded).
    pub max_mail_bytes: Option<u64>,
    /// `host:port` of the SMTP submission server.
    pub smtp: Option<String>,
    /// `starttls` (port 587) or `tls` (implicit, port 465).
    pub smtp_security: Option<String>,
    /// SMTP user (default: the IMAP user).
    pub smtp_user: Option<String>,
    /// File holding the SMTP password (default: the IMAP password).
    pub smtp_password_file: Option<String>,
    /// Environment variable holding the SMTP password.
    pub smtp_password_env: Option<String>,
    /// The `From:` of answers (default: the user, when it is an address).
    pub from: Option<String>,
    /// Answers one sender address gets per hour at most.
    pub replies_per_hour: Option<u64>,
    /// Addresses (or `@domain`) each agency's mail may come from.
    #[serde(default)]
    pub senders: BTreeMap<String, Vec<String>>,
}

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte.
    Tls,
    /// Plain, then `STARTTLS` (required: the session fails when the server does not offer it).
    StartTls,
}

/// A server to reach.
#[derive(Debug, Clone)]
pub struct Server {
    /// Host name (checked against its certificate).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS or STARTTLS.
    pub security: Security,
    /// User name.
    pub user: String,
    /// Where the password comes from.
    pub password: crate::keyring::Passphrase,
}

/// `[mail]`, checked.
#[derive(Debug, Clone)]
pub struct Mail {
    /// IMAP: where the mail is read.
    pub imap: Server,
    /// SMTP submission: where answers are sent.
    pub smtp: Server,
    /// Folder watched.
    pub folder: String,
    /// Folder for mail whose every attachment was accepted.
    pub processed_folder: String,
    /// Folder for every other mail.
    pub rejected_folder: String,
    /// Use IDLE when offered.
    pub idle: bool,
    /// Poll period and longest IDLE.
    pub poll: Duration,
    /// Extra CA for both servers.
    pub ca_file: Option<PathBuf>,
    /// Largest mail.
    pub max_mail_bytes: u64,
    /// `From:` of answers.
    pub from: String,
    /// Answers per sender per hour.
    pub replies_per_hour: u32,
    /// Agency → addresses (lowercase) or `@domain`s its mail may come from.
    pub senders: BTreeMap<String, Vec<String>>,
}

/// systemd's `LoadCredential=` names for the passwords.
pub const IMAP_CREDENTIAL: &str = "gateway-mail-password";
/// See [`IMAP_CREDENTIAL`].
pub const SMTP_CREDENTIAL: &str = "gateway-smtp-password";

fn host_port(key: &str, v: &str) -> Result<(String, u16), ConfigError> {
    let bad = || {
        invalid(
            key,
            format!("{v:?} must be host:port, e.g. mail.example.org:993"),
        )
    };
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

fn security(key: &str, v: Option<&str>, port: u16, implicit: u16) -> Result<Security, ConfigError> {
    match v {
        Some("tls") => Ok(Security::Tls),
        Some("starttls") => Ok(Security::StartTls),
        None if port == implicit => Ok(Security::Tls),
        None => Ok(Security::StartTls),
        Some(other) => Err(invalid(
            key,
            format!("{other:?}: use \"tls\" or \"starttls\" (plain connections are not offered)"),
        )),
    }
}

fn secret(
    key: &str,
    file: Option<String>,
    env: Option<String>,
    default_env: &str,
    base: &Path,
) -> Result<crate::keyring::Passphrase, ConfigError> {
    let file = match file {
        Some(f) if f.is_empty() => return Err(invalid(key, "must not be empty")),
        Some(f) => Some(base.join(f)),
        None => None,
    };
    Ok(crate::keyring::Passphrase {
        env: env_name(&key.replace("_file", "_env"), env, default_env)?,
        file,
    })
}

fn folder(key: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    let v = v.unwrap_or_else(|| default.to_owned());
    if v.is_empty() || v.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err(invalid(
            key,
            format!(
                "{v:?} must be a mailbox name without quotes, backslashes or control characters"
            ),
        ));
    }
    Ok(v)
}

/// An address as compared: lowercase, and either `local@domain` or `@domain`.
fn sender(agency: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim().to_ascii_lowercase();
    let ok = match v.split_once('@') {
        Some((_, domain)) => !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !ok {
        return Err(invalid(
            &format!("mail.senders.{agency}"),
            format!(
                "{v:?} must be an address (clerk@school.example) or a domain (@school.example)"
            ),
        ));
    }
    Ok(v)
}

/// The IMAP and SMTP servers; the SMTP user and password are the IMAP ones unless given.
fn servers(m: &mut RawMail, base: &Path) -> Result<(Server, Server), ConfigError> {
    let need = |key: &str, v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(key, "is required when mail.enabled = true"))
    };
    let (imap_host, imap_port) = host_port("mail.imap", &need("mail.imap", m.imap.take())?)?;
    let (smtp_host, smtp_port) = host_port("mail.smtp", &need("mail.smtp", m.smtp.take())?)?;
    let user = need("mail.user", m.user.take())?;
    let imap_password = secret(
        "mail.password_file",
        m.password_file.take(),
        m.password_env.take(),
        "GATEWAY_MAIL_PASSWORD",
        base,
    )?;
    let smtp_password = if m.smtp_password_file.is_some() || m.smtp_password_env.is_some() {
        secret(
            "mail.smtp_password_file",
            m.smtp_password_file.take(),
            m.smtp_password_env.take(),
            "GATEWAY_SMTP_PASSWORD",
            base,
        )?
    } else {
        imap_password.clone()
    };
    let imap = Server {
        security: security(
            "mail.imap_security",
            m.imap_security.as_deref(),
            imap_port,
            993,
        )?,
        host: imap_host,
        port: imap_port,
        user: user.clone(),
        password: imap_password,
    };
    let smtp = Server {
        security: security(
            "mail.smtp_security",
            m.smtp_security.as_deref(),
            smtp_port,
            465,
        )?,
        host: smtp_host,
        port: smtp_port,
        user: m.smtp_user.take().unwrap_or(user),
        password: smtp_password,
    };
    Ok((imap, smtp))
}

pub(super) fn check_mail(mut m: RawMail, base: &Path) -> Result<Option<Mail>, ConfigError> {
    if !m.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let (imap, smtp) = servers(&mut m, base)?;
    let user = imap.user.clone();
    let from = match m.from {
        Some(f) => f,
        None if user.contains('@') => user.clone(),
        None => {
            return Err(invalid(
                "mail.from",
                "is required when mail.user is not an address",
            ));
        }
    };
    if from.parse::<lettre::Address>().is_err() {
        return Err(invalid(
            "mail.from",
            format!("{from:?} is not a mail address"),
        ));
    }
    let mut senders = BTreeMap::new();
    for (agency, list) in m.senders {
        let list = list
            .iter()
            .map(|s| sender(&agency, s))
            .collect::<Result<Vec<_>, _>>()?;
        senders.insert(agency, list);
    }
    Ok(Some(Mail {
        imap,
        smtp,
        folder: folder("mail.folder", m.folder, "INBOX")?,
        processed_folder: folder("mail.processed_folder", m.processed_folder, "Processed")?,
        rejected_folder: folder("mail.rejected_folder", m.rejected_folder, "Rejected")?,
        idle: m.idle.unwrap_or(true),
        poll: Duration::from_secs(bounded("mail.poll_secs", m.poll_secs, 60, 1, 3600)?),
        ca_file: m.ca_file.map(|f| base.join(f)),
        max_mail_bytes: bounded(
            "mail.max_mail_bytes",
            m.max_mail_bytes,
            50 << 20,
            1024,
            1 << 30,
        )?,
        from,
        replies_per_hour: u32::try_from(bounded(
            "mail.replies_per_hour",
            m.replies_per_hour,
            20,
            1,
            10_000,
        )?)
        .unwrap_or(20),
        senders,
    }))
}
