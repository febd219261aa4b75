//! The gateway's age identities: one current, older ones in grace until retired.
//!
//! `keys/identities/state.toml` lists them; each secret lives in `keys/identities/<id>.key`
//! (0600), in the format `age-keygen` writes, so the stock `age -d -i` can use it too.

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{KeyringError, files};

/// Where an identity is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Payloads should be sealed to this one.
    Current,
    /// Still opens payloads sealed to it, until retired.
    Grace,
    /// No longer used.
    Retired,
}

/// One entry of `state.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityInfo {
    /// Stable id; also the key file's name.
    pub id: String,
    /// The public `age1...` recipient.
    pub recipient: String,
    /// Current, grace or retired.
    pub status: Status,
    /// RFC 3339 creation time.
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    #[serde(default)]
    identity: Vec<IdentityInfo>,
}

/// The identities that open payloads (current and grace), loaded once.
pub struct Identities {
    /// Metadata of every identity, retired ones included.
    pub info: Vec<IdentityInfo>,
    active: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn state_path(keys: &Path) -> PathBuf {
    keys.join("identities").join("state.toml")
}

fn key_path(keys: &Path, id: &str) -> PathBuf {
    keys.join("identities").join(format!("{id}.key"))
}

fn read_state(keys: &Path) -> Result<StateFile, KeyringError> {
    let path = state_path(keys);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateFile::default()),
        Err(error) => return Err(KeyringError::Io { path, error }),
    };
    toml::from_str(&text).map_err(|e| KeyringError::Invalid {
        path,
        message: e.to_string(),
    })
}

impl Identities {
    /// Loads the current and grace identities from `keys/identities/`.
    pub fn load(keys: &Path) -> Result<Identities, KeyringError> {
        let state = read_state(keys)?;
        if !state.identity.iter().any(|i| i.status == Status::Current) {
            return Err(KeyringError::Missing {
                what: "a current gateway identity".into(),
                path: state_path(keys),
            });
        }
        let mut active = Vec::new();
        for info in state
            .identity
            .iter()
            .filter(|i| i.status != Status::Retired)
        {
            let path = key_path(keys, &info.id);
            let bytes = files::read_private(&path)?;
            let text = String::from_utf8_lossy(&bytes);
            let secret = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                .ok_or_else(|| KeyringError::Invalid {
                    path: path.clone(),
                    message: "no AGE-SECRET-KEY-... line".into(),
                })?;
            let identity: age::x25519::Identity =
                secret.parse().map_err(|e: &str| KeyringError::Invalid {
                    path: path.clone(),
                    message: e.to_owned(),
                })?;
            if identity.to_public().to_string() != info.recipient {
                return Err(KeyringError::Invalid {
                    path,
                    message: format!(
                        "the key does not match the recipient {} recorded in state.toml",
                        info.recipient
                    ),
                });
            }
            active.push(identity);
        }
        Ok(Identities {
            info: state.identity,
            active,
        })
    }

    /// The identities that may open payloads, current first.
    pub fn active(&self) -> &[age::x25519::Identity] {
        &self.active
    }

    /// The recipient agencies should seal to now.
    pub fn current_recipient(&self) -> Option<&str> {
        self.info
            .iter()
            .find(|i| i.status == Status::Current)
            .map(|i| i.recipient.as_str())
    }

    /// Creates the first identity when there is none; returns its info if one was made.
    pub fn init(keys: &Path) -> Result<Option<IdentityInfo>, KeyringError> {
        let mut state = read_state(keys)?;
        if !state.identity.is_empty() {
            return Ok(None);
        }
        let info = create(keys)?;
        state.identity.push(info.clone());
        write_state(keys, &state)?;
        Ok(Some(info))
    }
}

/// Generates a new identity file and returns its (current) info; `state.toml` is the caller's.
fn create(keys: &Path) -> Result<IdentityInfo, KeyringError> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let now = time::OffsetDateTime::now_utc();
    let created = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let id = format!(
        "{}-{}",
        now.format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default(),
        &recipient[recipient.len().saturating_sub(6)..]
    );
    let body = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    files::write_private(&key_path(keys, &id), body.as_bytes())?;
    Ok(IdentityInfo {
        id,
        recipient,
        status: Status::Current,
        created,
    })
}

fn write_state(keys: &Path, state: &StateFile) -> Result<(), KeyringError> {
    let path = state_path(keys);
    let text = toml::to_string_pretty(state).map_err(|e| KeyringError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(keys);
    crate::fsio::write_atomic(dir, "state.toml", text.as_bytes())
        .map(|_| ())
        .map_err(|error| KeyringError::Io { path, error })
}
