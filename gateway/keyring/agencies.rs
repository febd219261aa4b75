//! The agency registry: `keys/agencies/<name>/` holds what the gateway trusts for each agency.
//!
//! ```text
//! keys/agencies/<name>/agency.toml        name and display name
//! keys/agencies/<name>/certs/<sha256>.pem pinned signing certificates
//! keys/agencies/<name>/anchors/*.pem      trust anchors (the agency's CA), chains are verified
//! keys/agencies/<name>/crls/*.pem         CRLs published by those CAs
//! keys/agencies/<name>/revoked.txt        fingerprints an admin revoked, one per line
//! ```

use std::path::{Path, PathBuf};

use openssl::x509::{X509, X509Crl};
use serde::{Deserialize, Serialize};

use super::KeyringError;
use super::trust::{AgencyTrust, TrustStore};
use crate::message::is_safe_name;

/// `agency.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyInfo {
    /// Short name: `inbox/<name>/`, `--agency <name>`.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// HTTPS uploads must present a client certificate registered for the agency.
    #[serde(default)]
    pub require_client_certificate: bool,
    /// Largest payload this agency may send, in bytes (default: `[limits] max_payload_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_bytes: Option<u64>,
}

/// The eight seed agencies registered by `gateway keys init`.
pub const SEED: [(&str, &str); 8] = [
    ("acute-hospital", "Acute hospital trust"),
    ("primary-care", "Primary care trust"),
    ("police", "Police"),
    ("education", "Education (school census)"),
    ("social-care", "Children's social care"),
    ("housing", "Housing"),
    ("youth-offending", "Youth offending service"),
    ("careers", "Careers advice service"),
];

/// `keys/agencies/<name>/`.
pub fn agency_dir(keys: &Path, name: &str) -> PathBuf {
    keys.join("agencies").join(name)
}

/// Registers an agency (idempotent: an existing registration is kept as is).
pub fn add(keys: &Path, name: &str, display_name: &str) -> Result<bool, KeyringError> {
    if !is_safe_name(name) {
        return Err(KeyringError::BadName(name.to_owned()));
    }
    let dir = agency_dir(keys, name);
    let file = dir.join("agency.toml");
    if file.exists() {
        return Ok(false);
    }
    let info = AgencyInfo {
        name: name.to_owned(),
        display_name: display_name.to_owned(),
        require_client_certificate: false,
        max_payload_bytes: None,
    };
    let text = toml::to_string_pretty(&info).map_err(|e| KeyringError::Invalid {
        path: file.clone(),
        message: e.to_string(),
    })?;
    for sub in ["certs", "anchors", "crls"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|error| KeyringError::Io {
            path: dir.join(sub),
            error,
        })?;
    }
    crate::fsio::write_atomic(&dir, "agency.toml", text.as_bytes())
        .map_err(|error| KeyringError::Io { path: file, error })?;
    Ok(true)
}

/// Every registered agency, by name.
pub fn list(keys: &Path) -> Result<Vec<AgencyInfo>, KeyringError> {
    let root = keys.join("agencies");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(error) => return Err(KeyringError::Io { path: root, error }),
    };
    for entry in entries {
        let entry = entry.map_err(|error| KeyringError::Io {
            path: root.clone(),
            error,
        })?;
        let file = entry.path().join("agency.toml");
        if !file.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|error| KeyringError::Io {
            path: file.clone(),
            error,
        })?;
        let info: AgencyInfo = toml::from_str(&text).map_err(|e| KeyringError::Invalid {
            path: file.clone(),
            message: e.to_string(),
        })?;
        if entry.file_name().to_str() != Some(info.name.as_str()) {
            return Err(KeyringError::Invalid {
                path: file,
                message: format!("name {:?} does not match its folder", info.name),
            });
        }
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Pins a signing certificate for an agency, usable from `from` (Unix seconds) when given;
/// returns its fingerprint.
pub fn add_cert_from(
    keys: &Path,
    name: &str,
    pem: &[u8],
    from: Option<time::OffsetDateTime>,
) -> Result<String, KeyringError> {
    let fp = add_cert_quiet(keys, name, pem)?;
    let certs = agency_dir(keys, name).join("certs");
    if let Some(from) = from {
        let text = from
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        crate::fsio::write_atomic(
            &certs,
            &format!("{fp}.from"),
            format!("{text}\n").as_bytes(),
        )
        .map_err(|error| KeyringError::Io {
            path: certs.clone(),
            error,
        })?;
    }
    super::changed(keys);
    Ok(fp)
}

/// Pins a signing certificate for an agency; returns its fingerprint.
pub fn add_cert(keys: &Path, name: &str, pem: &[u8]) -> Result<String, KeyringError> {
    add_cert_from(keys, name, pem, None)
}

/// Revokes a certificate of an agency by SHA-256 fingerprint: from the next payload on, it
/// is refused with `certificate_revoked`. Returns false when it was already revoked.
pub fn revoke_cert(keys: &Path, name: &str, fingerprint: &str) -> Result<bool, KeyringError> {
    let dir = agency_dir(keys, name);
    if !dir.join("agency.toml").is_file() {
        return Err(KeyringError::UnknownAgency(name.to_owned()));
    }
    let fp = fingerprint.trim().to_ascii_lowercase().replace(':', "");
    let mut b = [0u8; 32];
    hex::decode_to_slice(&fp, &mut b).map_err(|_| KeyringError::Invalid {
        path: dir.join("revoked.txt"),
        message: format!("{fingerprint:?} is not a SHA-256 fingerprint (64 hex digits)"),
    })?;
    let file = dir.join("revoked.txt");
    let mut text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# SHA-256 fingerprints revoked by an administrator (`gateway agency cert revoke`)\n"
                .to_owned()
        }
        Err(error) => return Err(KeyringError::Io { path: file, error }),
    };
    if text
        .lines()
        .any(|l| l.split_whitespace().next() == Some(fp.as_str()))
    {
        return Ok(false);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let when = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    text.push_str(&format!("{fp} revoked {when}\n"));
    crate::fsio::write_atomic(&dir, "revoked.txt", text.as_bytes())
        .map_err(|error| KeyringError::Io { path: file, error })?;
    super::changed(keys);
    Ok(true)
}

fn add_cert_quiet(keys: &Path, name: &str, pem: &[u8]) -> Result<String, KeyringError> {
    let dir = agency_dir(keys, name);
    if !dir.join("agency.toml").is_file() {
        return Err(KeyringError::UnknownAgency(name.to_owned()));
    }
    let cert = X509::from_pem(pem).map_err(|e| KeyringError::Invalid {
        path: PathBuf::from("(certificate)"),
        message: format!("not a PEM certificate: {e}"),
    })?;
    let fp = super::x509gen::fingerprint(&cert)?;
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(|error| KeyringError::Io {
        path: certs.clone(),
        error,
    })?;
    if certs.join(format!("{fp}.pem")).exists() {
        return Ok(fp);
    }
    let pem = cert.to_pem()?;
    crate::fsio::write_atomic(&certs, &format!("{fp}.pem"), &pem).map_err(|error| {
        KeyringError::Io {
            path: certs.clone(),
            error,
        }
    })?;
    Ok(fp)
}

fn pem_files(dir: &Path) -> Result<Vec<PathBuf>, KeyringError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(error) => {
            return Err(KeyringError::Io {
                path: dir.to_path_buf(),
                error,
            });
        }
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension()
            .is_some_and(|x| x == "pem" || x == "crt" || x == "crl")
            && p.is_file()
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyringError> {
    std::fs::read(path).map_err(|error| KeyringError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn certs_in(dir: &Path) -> Result<Vec<X509>, KeyringError> {
    let mut out = Vec::new();
    for p in pem_files(dir)? {
        out.extend(super::read_certificates(&p)?);
    }
    Ok(out)
}

/// Loads every agency's trust material into a [`TrustStore`].
pub fn trust_store(keys: &Path) -> Result<TrustStore, KeyringError> {
    let mut store = TrustStore::new();
    for info in list(keys)? {
        let dir = agency_dir(keys, &info.name);
        let mut crls = Vec::new();
        for p in pem_files(&dir.join("crls"))? {
            let bytes = read(&p)?;
            let crl = X509Crl::from_pem(&bytes)
                .or_else(|_| X509Crl::from_der(&bytes))
                .map_err(|e| KeyringError::Invalid {
                    path: p.clone(),
                    message: format!("not a CRL: {e}"),
                })?;
            crls.push(crl);
        }
        let mut revoked = Vec::new();
        let rfile = dir.join("revoked.txt");
        if rfile.is_file() {
            let text = String::from_utf8_lossy(&read(&rfile)?).into_owned();
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let fp = line.split_whitespace().next().unwrap_or_default();
                let mut b = [0u8; 32];
                hex::decode_to_slice(fp, &mut b).map_err(|_| KeyringError::Invalid {
                    path: rfile.clone(),
                    message: format!("{fp:?} is not a SHA-256 fingerprint (64 hex digits)"),
                })?;
                revoked.push(b);
            }
        }
        let mut activation = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir.join("certs")) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "from") {
                    continue;
                }
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                let mut fp = [0u8; 32];
                let text = String::from_utf8_lossy(&read(&p)?).trim().to_owned();
                let from = time::OffsetDateTime::parse(
                    &text,
                    &time::format_description::well_known::Rfc3339,
                );
                match (hex::decode_to_slice(stem, &mut fp), from) {
                    (Ok(()), Ok(t)) => activation.push((fp, t.unix_timestamp())),
                    _ => {
                        return Err(KeyringError::Invalid {
                            path: p,
                            message: "expected <sha256>.from holding an RFC 3339 time".into(),
                        });
                    }
                }
            }
        }
        store.insert(
            info.name.clone(),
            AgencyTrust {
                activation,
                pinned: certs_in(&dir.join("certs"))?,
                anchors: certs_in(&dir.join("anchors"))?,
                crls,
                revoked,
            },
        );
    }
    Ok(store)
}
