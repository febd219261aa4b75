//! Sessions: a signed cookie, no server-side table, so any instance honours any session.
//!
//! The cookie reads `name|generation|issued|seen|mac`, where `mac` is HMAC-SHA256 (base64url)
//! of the rest under `keys/web/session.key`. A session ends when it has been idle too long
//! (`seen` is renewed as the person works), when it is too old whatever its use (`issued`), or
//! when the account's generation moves on (`gateway user disable`/`reset`). The CSRF token of a
//! session is another HMAC of its name and issue time, so forms need no state either.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::keyring::KeyringError;

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account.
    pub name: String,
    /// The account's generation when the session began.
    pub generation: u32,
    /// When the person signed in (Unix seconds).
    pub issued: i64,
    /// When the session was last renewed (Unix seconds).
    pub seen: i64,
}

impl Session {
    /// Whether the session is still open at `now`.
    pub fn is_open(&self, now: i64, idle_secs: i64, max_secs: i64) -> bool {
        now >= self.issued
            && now - self.seen < idle_secs
            && now - self.issued < max_secs
            && self.seen >= self.issued
    }
}

/// The key that signs sessions and CSRF tokens: `keys/web/session.key`.
pub struct SessionKey {
    key: PKey<openssl::pkey::Private>,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey")
    }
}

/// `keys/web/session.key`.
pub fn key_path(keys: &Path) -> PathBuf {
    keys.join("web").join("session.key")
}

impl SessionKey {
    /// Reads the key, making one when there is none. Instances behind one load balancer must
    /// share it (it lives in `keys/` with the other private keys).
    pub fn load_or_create(keys: &Path) -> Result<SessionKey, KeyringError> {
        let path = key_path(keys);
        if !path.exists() {
            let mut bytes = [0u8; 32];
            openssl::rand::rand_bytes(&mut bytes)?;
            match crate::keyring::files::write_private(&path, hex::encode(bytes).as_bytes()) {
                Ok(()) => {}
                // Another instance made it first: use theirs.
                Err(KeyringError::Io { error, .. })
                    if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let text = crate::keyring::files::read_private(&path)?;
        let bytes = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| hex::decode(t.trim()).ok())
            .filter(|b| b.len() >= 32)
            .ok_or_else(|| KeyringError::Invalid {
                path: path.clone(),
                message: "not a session key (64 or more hex digits)".into(),
            })?;
        Ok(SessionKey {
            key: PKey::hmac(&bytes)?,
        })
    }

    fn mac(&self, data: &str) -> String {
        let mac = Signer::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut s| {
                s.update(data.as_bytes())?;
                s.sign_to_vec()
            })
            .unwrap_or_default();
        B64.encode(mac)
    }

    /// The cookie value of `s`.
    pub fn seal(&self, s: &Session) -> String {
        let body = format!("{}|{}|{}|{}", s.name, s.generation, s.issued, s.seen);
        let mac = self.mac(&body);
        format!("{body}|{mac}")
    }

    /// The session a cookie value carries, if this key signed it.
    pub fn open(&self, cookie: &str) -> Option<Session> {
        let (body, mac) = cookie.rsplit_once('|')?;
        let want = self.mac(body);
        if want.len() != mac.len() || !openssl::memcmp::eq(want.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut parts = body.split('|');
        let name = parts.next()?.to_owned();
        let generation = parts.next()?.parse().ok()?;
        let issued = parts.next()?.parse().ok()?;
        let seen = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !super::is_valid_name(&name) {
            return None;
        }
        Some(Session {
            name,
            generation,
            issued,
            seen,
        })
    }

    /// The CSRF token of session `s` (the same for the whole session).
    pub fn csrf(&self, s: &Session) -> String {
        self.mac(&format!("csrf|{}|{}", s.name, s.issued))
    }

    /// Whether `token` is the CSRF token of `s`.
    pub fn csrf_ok(&self, s: &Session, token: &str) -> bool {
        let want = self.csrf(s);
        want.len() == token.len() && openssl::memcmp::eq(want.as_bytes(), token.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            name: "j.smith".into(),
            generation: 3,
            issued: 1_000,
            seen: 1_100,
        }
    }

    #[test]
    fn a_sealed_session_opens_and_a_tampered_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = SessionKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal(&session());
        assert_eq!(key.open(&sealed), Some(session()));
        let forged = sealed.replacen("|3|", "|4|", 1);
        assert_eq!(key.open(&forged), None);
        assert_eq!(key.open("j.smith|3|1000|1100"), None);
        assert_eq!(key.open(""), None);
        let other = tempfile::tempdir().unwrap();
        let stranger = SessionKey::load_or_create(other.path()).unwrap();
        assert_eq!(stranger.open(&sealed), None, "another key's session");
        // The same file gives the same key.
        let again = SessionKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed), Some(session()));
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let s = session();
        assert!(s.is_open(1_200, 1_800, 28_800));
        assert!(!s.is_open(1_100 + 1_800, 1_800, 28_800), "idle");
        assert!(!s.is_open(1_000 + 28_800, 1_000_000, 28_800), "too old");
        assert!(!s.is_open(999, 1_800, 28_800), "from the future");
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let key = SessionKey::load_or_create(dir.path()).unwrap();
        let s = session();
        let token = key.csrf(&s);
        assert!(key.csrf_ok(&s, &token));
        let later = Session {
            issued: 2_000,
            seen: 2_000,
            ..s.clone()
        };
        assert!(!key.csrf_ok(&later, &token));
        assert!(!key.csrf_ok(&s, ""));
    }
}
