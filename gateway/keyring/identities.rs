//! The gateway's age identities: one current, older ones in grace until retired.
//!
//! `keys/identities/state.toml` lists them; each secret lives in `keys/identities/<id>.key`
//! (0600), in the format `age-keygen` writes, so the stock `age -d -i` can use it too — or,
//! when a passphrase is configured, that same text encrypted with the passphrase (`age -p -a`),
//! so a stolen disk image does not give the key away.
//!
//! Rotation never loses a payload in flight: `rotate` writes the new key file first, then
//! swaps `state.toml` atomically; the previous identity moves to grace with an end date, so
//! payloads sealed to it keep opening until then. Retired keys stay on disk (they no longer
//! open anything) only so a payload sealed to one can be told *which* recipient to use now.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{KeyringError, files};

/// Where an identity is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Payloads should be sealed to this one.
    Current,
    /// Still opens payloads sealed to it, until retired or its grace ends.
    Grace,
    /// No longer opens anything.
    Retired,
}

impl Status {
    /// Lower-case name, as in `state.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Grace => "grace",
            Status::Retired => "retired",
        }
    }
}

/// One entry of `state.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityInfo {
    /// Stable id; also the key file's name.
    pub id: String,
    /// The public `age1...` recipient.
    pub recipient: String,
    /// Current, grace or retired, as recorded (see [`IdentityInfo::status_at`]).
    pub status: Status,
    /// RFC 3339 creation time.
    pub created: String,
    /// RFC 3339 end of the grace period (set when rotated out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
    /// RFC 3339 time it was retired by an admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
}

impl IdentityInfo {
    /// The status at `now`: a grace identity whose grace has ended counts as retired.
    pub fn status_at(&self, now: OffsetDateTime) -> Status {
        match (self.status, self.grace_end()) {
            (Status::Grace, Some(end)) if end <= now => Status::Retired,
            (s, _) => s,
        }
    }

    /// The end of the grace period, if one is recorded and readable.
    pub fn grace_end(&self) -> Option<OffsetDateTime> {
        self.grace_until
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    }

    /// When it stopped opening payloads: retired by an admin, or its grace ended.
    pub fn retired_when(&self, now: OffsetDateTime) -> Option<String> {
        match self.status_at(now) {
            Status::Retired => self.retired_at.clone().or_else(|| self.grace_until.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    #[serde(default)]
    identity: Vec<IdentityInfo>,
}

/// Where the passphrase of protected identity files comes from: a file (systemd credentials
/// style) or an environment variable — never the command line.
#[derive(Debug, Clone, Default)]
pub struct Passphrase {
    /// Environment variable read when no file is configured.
    pub env: String,
    /// File holding the passphrase (its first line); must be 0600 or stricter.
    pub file: Option<PathBuf>,
}

/// systemd's `LoadCredential=gateway-identity-passphrase:...` puts it here.
const CREDENTIAL_NAME: &str = "gateway-identity-passphrase";

impl Passphrase {
    /// The passphrase, if one is configured.
    pub fn read(&self) -> Result<Option<SecretString>, KeyringError> {
        self.read_credential(CREDENTIAL_NAME)
    }

    /// The secret, if one is configured: from the file, else `$CREDENTIALS_DIRECTORY/<name>`
    /// (systemd's `LoadCredential=`), else the environment variable.
    pub fn read_credential(&self, name: &str) -> Result<Option<SecretString>, KeyringError> {
        let from_file = |path: &Path| -> Result<Option<SecretString>, KeyringError> {
            let bytes = files::read_private(path)?;
            let text = String::from_utf8(bytes).map_err(|_| KeyringError::Invalid {
                path: path.to_path_buf(),
                message: "the passphrase file is not UTF-8".into(),
            })?;
            let line = text.lines().next().unwrap_or_default();
            if line.is_empty() {
                return Err(KeyringError::Invalid {
                    path: path.to_path_buf(),
                    message: "the passphrase file is empty".into(),
                });
            }
            Ok(Some(SecretString::from(line.to_owned())))
        };
        if let Some(path) = &self.file {
            return from_file(path);
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join(name);
            if path.is_file() {
                return from_file(&path);
            }
        }
        match std::env::var(&self.env) {
            Ok(v) if !v.is_empty() => Ok(Some(SecretString::from(v))),
            _ => Ok(None),
        }
    }

    /// Where it is looked for, for messages.
    fn describe(&self) -> String {
        match &self.file {
            Some(f) => format!("the file {}", f.display()),
            None => format!(
                "${} (or $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME})",
                self.env
            ),
        }
    }
}

/// A loaded secret and the file state it was read from (to skip re-reading, and re-running
/// scrypt on protected files, when a reload finds the file unchanged).
struct Loaded {
    id: String,
    stamp: Option<(u64, std::time::SystemTime)>,
    identity: age::x25519::Identity,
}

/// The gateway's identities: those that open payloads (current and grace), and the retired
/// ones kept only to explain a `no_matching_key`.
pub struct Identities {
    /// Metadata of every identity, retired ones included, as recorded.
    pub info: Vec<IdentityInfo>,
    loaded: Vec<Loaded>,
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

/// `keys/identities/<id>.key`.
pub fn key_path(keys: &Path, id: &str) -> PathBuf {
    keys.join("identities").join(format!("{id}.key"))
}

fn read_state(keys: &Path) -> Result<StateFile, KeyringError> {
    let path = state_path(keys);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateFile::default()),
        Err(error) => return Err(KeyringError::Io { path, error }),
    };
    let state: StateFile = toml::from_str(&text).map_err(|e| KeyringError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let current = state
        .identity
        .iter()
        .filter(|i| i.status == Status::Current)
        .count();
    if current > 1 {
        return Err(KeyringError::Invalid {
            path,
            message: format!("{current} identities are marked current; exactly one may be"),
        });
    }
    Ok(state)
}

fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Reads one identity file: plain `age-keygen` text, or that text sealed with a passphrase.
fn read_identity(
    path: &Path,
    passphrase: &Passphrase,
) -> Result<age::x25519::Identity, KeyringError> {
    let invalid = |message: String| KeyringError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let bytes = files::read_private(path)?;
    let text = if bytes.starts_with(b"age-encryption.org/")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    {
        let Some(secret) = passphrase.read()? else {
            return Err(invalid(format!(
                "the key is protected by a passphrase: supply it in {}",
                passphrase.describe()
            )));
        };
        let reader = age::armor::ArmoredReader::new(&bytes[..]);
        let decryptor = age::Decryptor::new_buffered(reader)
            .map_err(|e| invalid(format!("cannot open: {e}")))?;
        let scrypt = age::scrypt::Identity::new(secret);
        let mut plain = decryptor
            .decrypt(std::iter::once(&scrypt as &dyn age::Identity))
            .map_err(|e| {
                invalid(format!(
                    "cannot open with the passphrase from {}: {e}",
                    passphrase.describe()
                ))
            })?;
        let mut out = Vec::new();
        plain
            .read_to_end(&mut out)
            .map_err(|e| invalid(format!("cannot open: {e}")))?;
        String::from_utf8_lossy(&out).into_owned()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let secret = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| invalid("no AGE-SECRET-KEY-... line".into()))?;
    secret
        .parse()
        .map_err(|e: &str| invalid(format!("not an age identity: {e}")))
}

impl Identities {
    /// Loads the identities from `keys/identities/` (unprotected files only).
    pub fn load(keys: &Path) -> Result<Identities, KeyringError> {
        Identities::load_with(keys, &Passphrase::default(), None)
    }

    /// The records of `state.toml` only, no secrets (for listing and publishing).
    pub fn records(keys: &Path) -> Result<Identities, KeyringError> {
        Ok(Identities {
            info: read_state(keys)?.identity,
            loaded: Vec::new(),
        })
    }

    /// Loads the identities, reusing the secrets of `previous` whose files did not change.
    /// Current and grace identities must all load; retired ones are loaded when possible.
    pub fn load_with(
        keys: &Path,
        passphrase: &Passphrase,
        previous: Option<&Identities>,
    ) -> Result<Identities, KeyringError> {
        let state = read_state(keys)?;
        if !state.identity.iter().any(|i| i.status == Status::Current) {
            return Err(KeyringError::Missing {
                what: "a current gateway identity".into(),
                path: state_path(keys),
            });
        }
        let now = OffsetDateTime::now_utc();
        let mut loaded = Vec::new();
        for info in &state.identity {
            let path = key_path(keys, &info.id);
            let st = stamp(&path);
            let reused = previous.and_then(|p| {
                p.loaded
                    .iter()
                    .find(|l| l.id == info.id && l.stamp.is_some() && l.stamp == st)
            });
            let identity = match reused {
                Some(l) => l.identity.clone(),
                None => match read_identity(&path, passphrase) {
                    Ok(i) => i,
                    Err(e) if info.status_at(now) == Status::Retired => {
                        tracing::debug!(error = %e, "retired identity not loaded");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            if identity.to_public().to_string() != info.recipient {
                return Err(KeyringError::Invalid {
                    path,
                    message: format!(
                        "the key does not match the recipient {} recorded in state.toml",
                        info.recipient
                    ),
                });
            }
            loaded.push(Loaded {
                id: info.id.clone(),
                stamp: st,
                identity,
            });
        }
        // Current first: it is the one that usually matches.
        loaded.sort_by_key(|l| {
            state
                .identity
                .iter()
                .find(|i| i.id == l.id)
                .map(|i| i.status != Status::Current)
        });
        Ok(Identities {
            info: state.identity,
            loaded,
        })
    }

    fn status_of(&self, id: &str, now: OffsetDateTime) -> Status {
        self.info
            .iter()
            .find(|i| i.id == id)
            .map_or(Status::Retired, |i| i.status_at(now))
    }

    /// The identities that may open payloads at `now`, current first.
    pub fn usable_at(&self, now: OffsetDateTime) -> Vec<&age::x25519::Identity> {
        self.loaded
            .iter()
            .filter(|l| self.status_of(&l.id, now) != Status::Retired)
            .map(|l| &l.identity)
            .collect()
    }

    /// Like [`Identities::usable_at`], with each identity's id.
    pub fn usable_with_ids(&self, now: OffsetDateTime) -> Vec<(&str, &age::x25519::Identity)> {
        self.loaded
            .iter()
            .filter(|l| self.status_of(&l.id, now) != Status::Retired)
            .map(|l| (l.id.as_str(), &l.identity))
            .collect()
    }

    /// Whether identity `id` is in grace at `now`.
    pub fn in_grace(&self, id: &str, now: OffsetDateTime) -> bool {
        self.status_of(id, now) == Status::Grace
    }

    /// The identities that may open payloads now, current first.
    pub fn active(&self) -> Vec<&age::x25519::Identity> {
        self.usable_at(OffsetDateTime::now_utc())
    }

    /// Retired identities whose keys are still on disk: used only to explain a refusal.
    pub fn retired_at(&self, now: OffsetDateTime) -> Vec<(&IdentityInfo, &age::x25519::Identity)> {
        self.loaded
            .iter()
            .filter_map(|l| {
                let info = self.info.iter().find(|i| i.id == l.id)?;
                (info.status_at(now) == Status::Retired).then_some((info, &l.identity))
            })
            .collect()
    }

    /// The recipient agencies should seal to now.
    pub fn current_recipient(&self) -> Option<&str> {
        self.current().map(|i| i.recipient.as_str())
    }

    /// The current identity's record.
    pub fn current(&self) -> Option<&IdentityInfo> {
        self.info.iter().find(|i| i.status == Status::Current)
    }

    /// Identities in grace at `now`.
    pub fn grace_at(&self, now: OffsetDateTime) -> Vec<&IdentityInfo> {
        self.info
            .iter()
            .filter(|i| i.status_at(now) == Status::Grace)
            .collect()
    }

    /// Creates the first identity when there is none; returns its info if one was made.
    pub fn init(
        keys: &Path,
        passphrase: &Passphrase,
    ) -> Result<Option<IdentityInfo>, KeyringError> {
        let mut state = read_state(keys)?;
        if !state.identity.is_empty() {
            return Ok(None);
        }
        let info = create(keys, passphrase)?;
        state.identity.push(info.clone());
        write_state(keys, &state)?;
        Ok(Some(info))
    }
}

/// What `rotate` did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    /// The new current identity.
    pub current: IdentityInfo,
    /// The identity moved to grace, if there was a current one.
    pub previous: Option<IdentityInfo>,
}

/// Makes a new identity current; the current one goes to grace for `grace`.
pub fn rotate(
    keys: &Path,
    passphrase: &Passphrase,
    grace: time::Duration,
) -> Result<Rotation, KeyringError> {
    let mut state = read_state(keys)?;
    // The key file is durable before state.toml names it: a crash in between leaves an
    // unused file, never a state naming a key that is not there.
    let info = create(keys, passphrase)?;
    let now = OffsetDateTime::now_utc();
    let mut previous = None;
    for i in &mut state.identity {
        if i.status == Status::Current {
            i.status = Status::Grace;
            i.grace_until = Some(rfc3339(now + grace));
            previous = Some(i.clone());
        }
    }
    state.identity.push(info.clone());
    write_state(keys, &state)?;
    Ok(Rotation {
        current: info,
        previous,
    })
}

/// Retires an identity in grace: from now on it opens nothing.
pub fn retire(keys: &Path, id: &str) -> Result<IdentityInfo, KeyringError> {
    let mut state = read_state(keys)?;
    let path = state_path(keys);
    let Some(entry) = state.identity.iter_mut().find(|i| i.id == id) else {
        return Err(KeyringError::Invalid {
            path,
            message: format!("no identity {id:?}: `gateway keys list` shows the ids"),
        });
    };
    match entry.status {
        Status::Current => {
            return Err(KeyringError::Invalid {
                path,
                message: format!(
                    "{id} is the current identity: `gateway keys rotate` first, then retire it once agencies seal to the new recipient"
                ),
            });
        }
        Status::Retired => {
            return Err(KeyringError::Invalid {
                path,
                message: format!("{id} is already retired"),
            });
        }
        Status::Grace => {}
    }
    entry.status = Status::Retired;
    entry.retired_at = Some(rfc3339(OffsetDateTime::now_utc()));
    let done = entry.clone();
    write_state(keys, &state)?;
    Ok(done)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Generates a new identity file and returns its (current) info; `state.toml` is the caller's.
fn create(keys: &Path, passphrase: &Passphrase) -> Result<IdentityInfo, KeyringError> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let now = OffsetDateTime::now_utc();
    let created = rfc3339(now);
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
    let path = key_path(keys, &id);
    let bytes = match passphrase.read()? {
        None => body.into_bytes(),
        Some(secret) => {
            let failed = |e: String| KeyringError::Invalid {
                path: path.clone(),
                message: format!("cannot protect the new key with the passphrase: {e}"),
            };
            let enc = age::Encryptor::with_user_passphrase(secret);
            let mut out = Vec::new();
            let armor =
                age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                    .map_err(|e| failed(e.to_string()))?;
            let mut w = enc.wrap_output(armor).map_err(|e| failed(e.to_string()))?;
            w.write_all(body.as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            w.finish()
                .and_then(|a| a.finish())
                .map_err(|e| failed(e.to_string()))?;
            out
        }
    };
    files::write_private(&path, &bytes)?;
    Ok(IdentityInfo {
        id,
        recipient,
        status: Status::Current,
        created,
        grace_until: None,
        retired_at: None,
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
        .map_err(|error| KeyringError::Io { path, error })?;
    super::changed(keys);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_previous_identity_in_grace_then_retire_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path();
        let none = Passphrase::default();
        let first = Identities::init(keys, &none).unwrap().unwrap();
        let r = rotate(keys, &none, time::Duration::days(30)).unwrap();
        assert_eq!(
            r.previous.as_ref().map(|p| p.id.as_str()),
            Some(first.id.as_str())
        );
        let ids = Identities::load(keys).unwrap();
        assert_eq!(ids.current_recipient(), Some(r.current.recipient.as_str()));
        assert_eq!(ids.active().len(), 2);
        assert!(
            retire(keys, &r.current.id).is_err(),
            "the current one cannot be retired"
        );
        retire(keys, &first.id).unwrap();
        let ids = Identities::load(keys).unwrap();
        assert_eq!(ids.active().len(), 1);
        assert_eq!(ids.retired_at(OffsetDateTime::now_utc()).len(), 1);
    }

    #[test]
    fn a_grace_period_that_has_ended_counts_as_retired() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path();
        let none = Passphrase::default();
        Identities::init(keys, &none).unwrap();
        rotate(keys, &none, time::Duration::days(1)).unwrap();
        let ids = Identities::load(keys).unwrap();
        let later = OffsetDateTime::now_utc() + time::Duration::days(2);
        assert_eq!(ids.usable_at(later).len(), 1);
        assert_eq!(ids.grace_at(later).len(), 0);
        assert_eq!(ids.retired_at(later).len(), 1);
    }

    #[test]
    fn a_protected_identity_opens_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path();
        let file = dir.path().join("pass");
        std::fs::write(&file, "correct horse\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pass = Passphrase {
            env: "GATEWAY_TEST_UNSET_PASSPHRASE".into(),
            file: Some(file.clone()),
        };
        let info = Identities::init(keys, &pass).unwrap().unwrap();
        let on_disk = std::fs::read_to_string(key_path(keys, &info.id)).unwrap();
        assert!(
            !on_disk.contains("AGE-SECRET-KEY"),
            "the secret is not on disk in clear"
        );
        let e = Identities::load(keys).unwrap_err().to_string();
        assert!(e.contains("passphrase"), "{e}");
        let ids = Identities::load_with(keys, &pass, None).unwrap();
        assert_eq!(ids.current_recipient(), Some(info.recipient.as_str()));
        std::fs::write(&file, "wrong\n").unwrap();
        let e = Identities::load_with(keys, &pass, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot open with the passphrase"), "{e}");
    }
}
