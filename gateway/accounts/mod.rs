//! People's accounts for the upload page and the console: `keys/users/<name>.toml`.
//!
//! Accounts are admin state, like tokens: files that `gateway user ...` writes atomically
//! (0600) and every instance reads. Only the argon2id hash of a password is kept
//! ([`password`]); the TOTP secret is kept as is, which is why the files are private. Each
//! account has a `generation` that `disable` and `reset` move on: a session names the
//! generation it was opened at ([`session`]), and a session of an older one is refused, so a
//! disabled person is signed out everywhere at their next request. Failed sign-ins are counted
//! in the ledger ([`crate::store::Store::sign_in`]), where every instance sees them.

pub mod password;
pub mod session;
pub mod sign_in;
pub mod totp;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Agency staff: the upload page, for their own agency.
    Uploader,
    /// Hub staff who watch the console and handle quarantine.
    Operator,
    /// Hub staff who also manage agencies, keys and accounts.
    Admin,
}

impl Role {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Uploader => "uploader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Operators and admins must have a second factor; uploaders may.
    pub fn needs_totp(self) -> bool {
        !matches!(self, Role::Uploader)
    }
}

/// One account (`keys/users/<name>.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Sign-in name: [`is_valid_name`].
    pub name: String,
    /// The agency the person uploads for (required for uploaders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// What the person may do.
    pub role: Role,
    /// argon2id hash of the password (PHC string).
    pub password: String,
    /// TOTP secret (base32), when the account has a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
    /// SHA-256 fingerprint (lowercase hex) of a client certificate that signs this person in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Disabled accounts cannot sign in, and their sessions end.
    #[serde(default)]
    pub disabled: bool,
    /// RFC 3339 time the account was made.
    pub created: String,
    /// Moved on by `disable` and `reset`: sessions of an older generation are refused.
    #[serde(default)]
    pub generation: u32,
}

/// What a new or reset account is given, shown once to the admin who made it.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    /// The account.
    pub name: String,
    /// The password (only its hash is kept).
    pub password: String,
    /// The TOTP secret (base32), if the account has one.
    pub totp_secret: Option<String>,
    /// The `otpauth://` address an authenticator app takes, if the account has TOTP.
    pub totp_url: Option<String>,
}

/// Why an account could not be read, made or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file's content is wrong.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A name that is not usable.
    #[error(
        "{0:?} is not a valid account name: 1-64 characters of a-z, 0-9, '.', '-', '_' and '@', starting with a letter or digit"
    )]
    BadName(String),
    /// The account exists already.
    #[error("account {0:?} exists already: `gateway user reset {0}` gives it a new password")]
    Exists(String),
    /// No such account.
    #[error("there is no account {0:?}: `gateway user list` shows them")]
    Unknown(String),
    /// The agency is not registered.
    #[error("agency {0:?} is not registered: `gateway agency add {0}` first")]
    UnknownAgency(String),
    /// An uploader without an agency.
    #[error("an uploader uploads for one agency: give it with --agency")]
    AgencyRequired,
    /// A second factor was refused for a role that needs it.
    #[error("{0} accounts must have a second factor (TOTP)")]
    TotpRequired(&'static str),
    /// Hashing or randomness failed.
    #[error("cannot make credentials: {0}")]
    Crypto(String),
}

/// 1-64 characters of `a-z 0-9 . - _ @`, starting with a letter or digit: safe as a file
/// name, in a cookie and in the audit log.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_' | b'@')
        })
}

/// `keys/users/`.
pub fn users_dir(keys: &Path) -> PathBuf {
    keys.join("users")
}

fn file(keys: &Path, name: &str) -> PathBuf {
    users_dir(keys).join(format!("{name}.toml"))
}

/// The account `name`, if there is one.
pub fn get(keys: &Path, name: &str) -> Result<Option<User>, AccountError> {
    if !is_valid_name(name) {
        return Ok(None);
    }
    let path = file(keys, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(AccountError::Io { path, error }),
    };
    let user: User = toml::from_str(&text).map_err(|e| AccountError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if user.name != name {
        return Err(AccountError::Invalid {
            path,
            message: format!("the file names account {:?}", user.name),
        });
    }
    Ok(Some(user))
}

/// Every account, by name.
pub fn list(keys: &Path) -> Result<Vec<User>, AccountError> {
    let dir = users_dir(keys);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(AccountError::Io { path: dir, error }),
    };
    let mut users = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".toml")) else {
            continue;
        };
        if let Some(u) = get(keys, stem)? {
            users.push(u);
        }
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

/// The account whose client certificate has this SHA-256 fingerprint.
pub fn by_certificate(keys: &Path, fingerprint: &str) -> Result<Option<User>, AccountError> {
    Ok(list(keys)?.into_iter().find(|u| {
        u.client_certificate
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(fingerprint))
    }))
}

/// What `gateway user add` asks for.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Sign-in name.
    pub name: &'a str,
    /// The agency (uploaders).
    pub agency: Option<&'a str>,
    /// The role.
    pub role: Role,
    /// Give an uploader a second factor too.
    pub totp: bool,
    /// SHA-256 fingerprint of a client certificate that signs the person in.
    pub client_certificate: Option<String>,
}

/// Makes an account; returns its credentials (shown once).
pub fn add(keys: &Path, new: &NewUser<'_>) -> Result<Credentials, AccountError> {
    if !is_valid_name(new.name) {
        return Err(AccountError::BadName(new.name.to_owned()));
    }
    if get(keys, new.name)?.is_some() {
        return Err(AccountError::Exists(new.name.to_owned()));
    }
    match new.agency {
        None if new.role == Role::Uploader => return Err(AccountError::AgencyRequired),
        Some(a)
            if !crate::keyring::agencies::agency_dir(keys, a)
                .join("agency.toml")
                .is_file() =>
        {
            return Err(AccountError::UnknownAgency(a.to_owned()));
        }
        _ => {}
    }
    let password = password::generate()?;
    let totp = (new.totp || new.role.needs_totp())
        .then(totp::new_secret)
        .transpose()?;
    let user = User {
        name: new.name.to_owned(),
        agency: new.agency.map(str::to_owned),
        role: new.role,
        password: password::hash(&password)?,
        totp: totp.clone(),
        client_certificate: new.client_certificate.clone(),
        disabled: false,
        created: crate::message::timestamp::format(&crate::message::timestamp::now()),
        generation: 0,
    };
    write(keys, &user)?;
    Ok(credentials(&user, password))
}

fn credentials(user: &User, password: String) -> Credentials {
    Credentials {
        name: user.name.clone(),
        password,
        totp_url: user.totp.as_deref().map(|s| totp::url(s, &user.name)),
        totp_secret: user.totp.clone(),
    }
}

/// Disables an account and ends its sessions; false when it was disabled already.
pub fn disable(keys: &Path, name: &str) -> Result<bool, AccountError> {
    let mut user = get(keys, name)?.ok_or_else(|| AccountError::Unknown(name.to_owned()))?;
    if user.disabled {
        return Ok(false);
    }
    user.disabled = true;
    user.generation = user.generation.wrapping_add(1);
    write(keys, &user)?;
    Ok(true)
}

/// Gives an account a new password (and a new TOTP secret when it has or needs one), enables
/// it, and ends its sessions.
pub fn reset(keys: &Path, name: &str) -> Result<Credentials, AccountError> {
    let mut user = get(keys, name)?.ok_or_else(|| AccountError::Unknown(name.to_owned()))?;
    let password = fresh_password(&mut user)?;
    if user.totp.is_some() || user.role.needs_totp() {
        user.totp = Some(totp::new_secret()?);
    }
    user.disabled = false;
    write(keys, &user)?;
    Ok(credentials(&user, password))
}

/// A new password for a person who asked for one (signed in, having typed the current one):
/// chosen here like every password, returned to be shown once. The second factor stays; the
/// account's other sessions end (the generation moves on, and with it the failure count).
pub fn renew_password(keys: &Path, name: &str) -> Result<(User, String), AccountError> {
    let mut user = get(keys, name)?.ok_or_else(|| AccountError::Unknown(name.to_owned()))?;
    let password = fresh_password(&mut user)?;
    write(keys, &user)?;
    Ok((user, password))
}

/// Gives `user` a new generated password (its hash kept) and moves its generation on, so that
/// its sessions end; the password, to be shown once.
fn fresh_password(user: &mut User) -> Result<String, AccountError> {
    let password = password::generate()?;
    user.password = password::hash(&password)?;
    user.generation = user.generation.wrapping_add(1);
    Ok(password)
}

fn write(keys: &Path, user: &User) -> Result<(), AccountError> {
    let dir = users_dir(keys);
    let path = file(keys, &user.name);
    crate::fsio::create_private_dir(&dir).map_err(|error| AccountError::Io {
        path: dir.clone(),
        error,
    })?;
    let text = toml::to_string_pretty(user).map_err(|e| AccountError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    crate::fsio::write_atomic(&dir, &format!("{}.toml", user.name), text.as_bytes())
        .map_err(|error| AccountError::Io { path, error })?;
    crate::keyring::changed(keys);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        crate::keyring::agencies::add(dir.path(), "police", "Police").unwrap();
        dir
    }

    fn uploader(name: &str) -> NewUser<'_> {
        NewUser {
            name,
            agency: Some("police"),
            role: Role::Uploader,
            totp: false,
            client_certificate: None,
        }
    }

    #[test]
    fn an_account_keeps_only_the_hash_of_its_password_in_a_private_file() {
        let dir = keys();
        let made = add(dir.path(), &uploader("j.smith")).unwrap();
        let path = dir.path().join("users/j.smith.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&made.password), "{text}");
        assert!(text.contains("$argon2id$"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        let user = get(dir.path(), "j.smith").unwrap().unwrap();
        assert!(password::verify(&made.password, &user.password));
        assert!(!password::verify("wrong", &user.password));
        assert!(
            made.totp_secret.is_none(),
            "uploaders have no TOTP unless asked"
        );
    }

    #[test]
    fn operators_and_admins_always_get_a_second_factor() {
        let dir = keys();
        let made = add(
            dir.path(),
            &NewUser {
                role: Role::Operator,
                agency: None,
                ..uploader("op")
            },
        )
        .unwrap();
        let url = made.totp_url.unwrap();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(get(dir.path(), "op").unwrap().unwrap().totp.is_some());
    }

    #[test]
    fn bad_requests_are_refused_by_name() {
        let dir = keys();
        let refused = |new: NewUser<'_>| add(dir.path(), &new).unwrap_err().to_string();
        assert!(refused(uploader("../x")).contains("not a valid account name"));
        assert!(
            refused(NewUser {
                agency: None,
                ..uploader("a")
            })
            .contains("--agency")
        );
        assert!(
            refused(NewUser {
                agency: Some("nobody"),
                ..uploader("a")
            })
            .contains("not registered")
        );
        add(dir.path(), &uploader("a")).unwrap();
        assert!(refused(uploader("a")).contains("exists already"));
    }

    #[test]
    fn disable_and_reset_move_the_generation_on() {
        let dir = keys();
        let first = add(dir.path(), &uploader("a")).unwrap();
        assert!(disable(dir.path(), "a").unwrap());
        assert!(!disable(dir.path(), "a").unwrap(), "already disabled");
        let u = get(dir.path(), "a").unwrap().unwrap();
        assert!(u.disabled);
        assert_eq!(u.generation, 1);
        let again = reset(dir.path(), "a").unwrap();
        let u = get(dir.path(), "a").unwrap().unwrap();
        assert!(!u.disabled);
        assert_eq!(u.generation, 2);
        assert!(password::verify(&again.password, &u.password));
        assert!(!password::verify(&first.password, &u.password));
        assert!(matches!(
            reset(dir.path(), "nobody"),
            Err(AccountError::Unknown(_))
        ));
    }
}
