//! Bearer tokens per agency: `keys/agencies/<name>/tokens.toml` keeps only their SHA-256.
//!
//! A token reads `gw_<id>_<secret>`: the id finds the record without scanning, the secret is
//! 32 random bytes (hex). Only the hash of the whole token is stored; it is compared in
//! constant time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::KeyringError;
use super::agencies::{agency_dir, list};

/// One issued token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Public id (in the token itself).
    pub id: String,
    /// SHA-256 (hex) of the whole token.
    pub sha256: String,
    /// RFC 3339 time of issue.
    pub created: String,
    /// Revoked tokens are refused.
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenRecord>,
}

fn file(keys: &Path, agency: &str) -> PathBuf {
    agency_dir(keys, agency).join("tokens.toml")
}

fn read(keys: &Path, agency: &str) -> Result<TokenFile, KeyringError> {
    let path = file(keys, agency);
    match std::fs::read_to_string(&path) {
        Ok(t) => toml::from_str(&t).map_err(|e| KeyringError::Invalid {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(error) => Err(KeyringError::Io { path, error }),
    }
}

/// The tokens issued to `agency`, revoked ones too (hashes only).
pub fn records(keys: &Path, agency: &str) -> Result<Vec<TokenRecord>, KeyringError> {
    Ok(read(keys, agency)?.token)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(openssl::sha::sha256(s.as_bytes()))
}

/// Issues a new token for `agency`; returns (id, token). The token is shown once.
pub fn issue(keys: &Path, agency: &str) -> Result<(String, String), KeyringError> {
    if !agency_dir(keys, agency).join("agency.toml").is_file() {
        return Err(KeyringError::UnknownAgency(agency.to_owned()));
    }
    let mut rand = [0u8; 36];
    openssl::rand::rand_bytes(&mut rand)?;
    let (id_bytes, secret) = rand.split_at(4);
    let id = hex::encode(id_bytes);
    let token = format!("gw_{id}_{}", hex::encode(secret));
    let mut f = read(keys, agency)?;
    f.token.push(TokenRecord {
        id: id.clone(),
        sha256: sha256_hex(&token),
        created: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        revoked: false,
    });
    write(keys, agency, &f)?;
    Ok((id, token))
}

/// Revokes token `id` of `agency`; false when there is no such token.
pub fn revoke(keys: &Path, agency: &str, id: &str) -> Result<bool, KeyringError> {
    let mut f = read(keys, agency)?;
    let Some(t) = f.token.iter_mut().find(|t| t.id == id) else {
        return Ok(false);
    };
    t.revoked = true;
    write(keys, agency, &f)?;
    Ok(true)
}

fn write(keys: &Path, agency: &str, f: &TokenFile) -> Result<(), KeyringError> {
    let path = file(keys, agency);
    let text = toml::to_string_pretty(f).map_err(|e| KeyringError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let dir = agency_dir(keys, agency);
    crate::fsio::write_atomic(&dir, "tokens.toml", text.as_bytes())
        .map_err(|error| KeyringError::Io { path, error })?;
    super::changed(keys);
    Ok(())
}

/// Every agency's live tokens, by id, for the HTTPS channel.
#[derive(Debug, Default)]
pub struct Tokens {
    by_id: HashMap<String, (String, [u8; 32])>,
}

impl Tokens {
    /// Loads the tokens of every registered agency.
    pub fn load(keys: &Path) -> Result<Tokens, KeyringError> {
        let mut by_id = HashMap::new();
        for a in list(keys)? {
            for t in read(keys, &a.name)?.token {
                if t.revoked {
                    continue;
                }
                let mut h = [0u8; 32];
                if hex::decode_to_slice(&t.sha256, &mut h).is_err() {
                    return Err(KeyringError::Invalid {
                        path: file(keys, &a.name),
                        message: format!("token {}: sha256 is not 64 hex digits", t.id),
                    });
                }
                by_id.insert(t.id, (a.name.clone(), h));
            }
        }
        Ok(Tokens { by_id })
    }

    /// The agency a presented token belongs to, if it is valid.
    pub fn agency_of(&self, presented: &str) -> Option<&str> {
        let rest = presented.strip_prefix("gw_")?;
        let (id, _) = rest.split_once('_')?;
        let (agency, want) = self.by_id.get(id)?;
        let got = openssl::sha::sha256(presented.as_bytes());
        openssl::memcmp::eq(&got, want).then_some(agency.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_authenticates_its_agency_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path();
        crate::keyring::agencies::add(keys, "police", "Police").unwrap();
        let (id, token) = issue(keys, "police").unwrap();
        let t = Tokens::load(keys).unwrap();
        assert_eq!(t.agency_of(&token), Some("police"));
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push('x');
        assert_eq!(t.agency_of(&wrong), None);
        assert_eq!(t.agency_of("gw_nope_x"), None);
        assert!(revoke(keys, "police", &id).unwrap());
        assert_eq!(Tokens::load(keys).unwrap().agency_of(&token), None);
        let stored = std::fs::read_to_string(keys.join("agencies/police/tokens.toml")).unwrap();
        assert!(
            !stored.contains(token.split('_').nth(2).unwrap()),
            "only the hash is stored"
        );
    }
}
