//! Signing a person in: password (and code), or a client certificate, against the account
//! files and the ledger's count of failures.
//!
//! Every refusal of a password sign-in reads the same ("the name, password or code is wrong")
//! and takes the time of one argon2 verification, whether the name exists or not: the page
//! must not tell an attacker which names are accounts. Only a lock is said as such, since the
//! person must know to wait or ask.

use std::path::Path;

use super::{AccountError, User, password, totp};
use crate::config::Web;
use crate::store::{SignInEvent, Store, StoreError};

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Wrong name, password or code (which one is not said).
    #[error("the name, password or code is wrong")]
    Wrong,
    /// Too many failures: locked until then (Unix seconds).
    #[error("too many failed sign-ins: the account is locked until {until}")]
    Locked {
        /// When the lock ends.
        until: i64,
    },
    /// The right credentials for a disabled account.
    #[error("this account is disabled: ask the hub's administrator")]
    Disabled,
    /// The ledger cannot count sign-ins now: nobody is let in.
    #[error("sign-in is unavailable: {0}")]
    Ledger(#[from] StoreError),
    /// An account file cannot be read.
    #[error("sign-in is unavailable: {0}")]
    Account(#[from] AccountError),
}

/// What a person typed.
pub struct Attempt<'a> {
    /// Account name.
    pub name: &'a str,
    /// Password.
    pub password: &'a str,
    /// The authenticator code, if one was typed.
    pub code: Option<&'a str>,
}

/// Signs a person in with a password (and a code when the account has TOTP) at `now` (Unix
/// seconds).
pub fn with_password(
    keys: &Path,
    store: &dyn Store,
    policy: &Web,
    attempt: &Attempt<'_>,
    now: i64,
) -> Result<User, Refusal> {
    let name = attempt.name.trim();
    if !super::is_valid_name(name) {
        password::verify_nothing(attempt.password);
        return Err(Refusal::Wrong);
    }
    let user = super::get(keys, name)?;
    // Counted per generation of the account: `gateway user reset` starts the count afresh.
    let counted = match &user {
        Some(u) => format!("{name}#{}", u.generation),
        None => name.to_owned(),
    };
    let before = store.sign_in(&counted, SignInEvent::Look)?;
    if let Some(until) = before.locked_until.filter(|u| *u > now) {
        return Err(Refusal::Locked { until });
    }
    let (user, step) = match user {
        None => {
            password::verify_nothing(attempt.password);
            (None, None)
        }
        Some(u) => {
            let password_ok = password::verify(attempt.password, &u.password);
            let step = match &u.totp {
                None => Some(None),
                Some(secret) => attempt
                    .code
                    .and_then(|c| totp::check(secret, c, u64::try_from(now).unwrap_or(0)))
                    .map(|s| Some(i64::try_from(s).unwrap_or(i64::MAX))),
            };
            match (password_ok, step) {
                (true, Some(step)) => (Some(u), step),
                _ => (None, None),
            }
        }
    };
    let Some(user) = user else {
        return Err(failed(store, &counted, policy, now)?);
    };
    if user.disabled {
        return Err(Refusal::Disabled);
    }
    let after = store.sign_in(&counted, SignInEvent::Succeeded { totp_step: step })?;
    if !after.accepted {
        // A code already used: whoever typed it may have watched it being typed.
        return Err(failed(store, &counted, policy, now)?);
    }
    Ok(user)
}

/// Counts a failure; the refusal to give.
fn failed(store: &dyn Store, name: &str, policy: &Web, now: i64) -> Result<Refusal, StoreError> {
    let lock_until = now + policy.lockout_secs;
    let state = store.sign_in(
        name,
        SignInEvent::Failed {
            max_failures: policy.max_failures,
            lock_until,
        },
    )?;
    Ok(match state.locked_until {
        Some(until) if until > now => Refusal::Locked { until },
        _ => Refusal::Wrong,
    })
}

/// Signs a person in with the client certificate of the connection (SHA-256 fingerprint),
/// registered on their account with `gateway user add --client-certificate`.
pub fn with_certificate(keys: &Path, fingerprint: &str) -> Result<User, Refusal> {
    match super::by_certificate(keys, fingerprint)? {
        None => Err(Refusal::Wrong),
        Some(u) if u.disabled => Err(Refusal::Disabled),
        Some(u) => Ok(u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{NewUser, Role};

    fn policy() -> Web {
        Web {
            enabled: true,
            session_idle_secs: 1800,
            session_max_secs: 28_800,
            max_failures: 3,
            lockout_secs: 900,
            sign_ins_per_minute: 10,
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        store: crate::store::SqliteStore,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        crate::keyring::agencies::add(dir.path(), "police", "Police").unwrap();
        let store = crate::store::SqliteStore::open(dir.path().join("ledger.sqlite")).unwrap();
        Fixture { dir, store }
    }

    fn attempt<'a>(name: &'a str, password: &'a str, code: Option<&'a str>) -> Attempt<'a> {
        Attempt {
            name,
            password,
            code,
        }
    }

    #[test]
    fn repeated_failures_lock_the_account_even_for_the_right_password() {
        let f = fixture();
        let keys = f.dir.path();
        let made = crate::accounts::add(
            keys,
            &NewUser {
                name: "clerk",
                agency: Some("police"),
                role: Role::Uploader,
                totp: false,
                client_certificate: None,
            },
        )
        .unwrap();
        let now = 1_800_000_000;
        let ok = attempt("clerk", &made.password, None);
        assert_eq!(
            with_password(keys, &f.store, &policy(), &ok, now)
                .unwrap()
                .name,
            "clerk"
        );
        let bad = attempt("clerk", "guess", None);
        for _ in 0..2 {
            let e = with_password(keys, &f.store, &policy(), &bad, now).unwrap_err();
            assert!(matches!(e, Refusal::Wrong), "{e}");
        }
        let e = with_password(keys, &f.store, &policy(), &bad, now).unwrap_err();
        assert!(
            matches!(e, Refusal::Locked { until } if until == now + 900),
            "{e}"
        );
        let e = with_password(keys, &f.store, &policy(), &ok, now + 60).unwrap_err();
        assert!(matches!(e, Refusal::Locked { .. }), "locked: {e}");
        assert!(with_password(keys, &f.store, &policy(), &ok, now + 901).is_ok());
        for _ in 0..3 {
            let _ = with_password(keys, &f.store, &policy(), &bad, now + 902);
        }
        let fresh = crate::accounts::reset(keys, "clerk").unwrap();
        let ok = attempt("clerk", &fresh.password, None);
        assert!(
            with_password(keys, &f.store, &policy(), &ok, now + 903).is_ok(),
            "a reset lifts the lock"
        );
    }

    #[test]
    fn unknown_names_are_refused_like_wrong_passwords() {
        let f = fixture();
        let e = with_password(
            f.dir.path(),
            &f.store,
            &policy(),
            &attempt("nobody", "x", None),
            1_800_000_000,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), Refusal::Wrong.to_string());
    }

    #[test]
    fn a_totp_account_needs_a_fresh_code_each_time() {
        let f = fixture();
        let keys = f.dir.path();
        let made = crate::accounts::add(
            keys,
            &NewUser {
                name: "op",
                agency: None,
                role: Role::Operator,
                totp: false,
                client_certificate: None,
            },
        )
        .unwrap();
        let secret = made.totp_secret.unwrap();
        let now = 1_800_000_000;
        let code = totp::code_at(&secret, now as u64).unwrap();
        let sign = |code: Option<&str>, at: i64| {
            with_password(
                keys,
                &f.store,
                &policy(),
                &attempt("op", &made.password, code),
                at,
            )
        };
        assert!(matches!(sign(None, now), Err(Refusal::Wrong)), "no code");
        assert!(sign(Some(&code), now).is_ok());
        assert!(
            matches!(sign(Some(&code), now + 1), Err(Refusal::Wrong)),
            "the same code twice"
        );
        let next = totp::code_at(&secret, now as u64 + 30).unwrap();
        assert!(sign(Some(&next), now + 30).is_ok());
    }

    #[test]
    fn a_disabled_account_is_told_so_only_with_the_right_password() {
        let f = fixture();
        let keys = f.dir.path();
        let made = crate::accounts::add(
            keys,
            &NewUser {
                name: "gone",
                agency: Some("police"),
                role: Role::Uploader,
                totp: false,
                client_certificate: None,
            },
        )
        .unwrap();
        crate::accounts::disable(keys, "gone").unwrap();
        let now = 1_800_000_000;
        let e =
            with_password(keys, &f.store, &policy(), &attempt("gone", "x", None), now).unwrap_err();
        assert!(matches!(e, Refusal::Wrong), "{e}");
        let e = with_password(
            keys,
            &f.store,
            &policy(),
            &attempt("gone", &made.password, None),
            now,
        )
        .unwrap_err();
        assert!(matches!(e, Refusal::Disabled), "{e}");
    }
}
