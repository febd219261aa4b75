//! The second factor: RFC 6238 time-based codes (SHA-1, 6 digits, 30 s), the kind every
//! authenticator app reads from an `otpauth://` address.
//!
//! A code is accepted in the step it belongs to or the one either side (clock drift), and
//! only once: [`check`] returns the step it matched, and the ledger refuses a step that is not
//! later than the last one accepted for the account ([`crate::store::SignInEvent`]).

use totp_rs::{Builder, Secret, Totp};

use super::AccountError;

/// The issuer an authenticator app shows beside the account name.
const ISSUER: &str = "gateway";

fn totp(secret: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret).ok()?;
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .ok()
}

/// A new random secret (160 bits, base32).
pub fn new_secret() -> Result<String, AccountError> {
    let mut bytes = [0u8; 20];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| AccountError::Crypto(e.to_string()))?;
    Ok(Secret::from(bytes).to_base32())
}

/// The `otpauth://` address of `secret` for `account` (empty if the secret is unusable).
pub fn url(secret: &str, account: &str) -> String {
    totp(secret, account)
        .and_then(|t| t.to_url().ok())
        .unwrap_or_default()
}

/// The step `code` belongs to at `unix_time`, when it is the right code for `secret`.
pub fn check(secret: &str, code: &str, unix_time: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "check")?.check(&code, unix_time)
}

/// The code for `secret` at `unix_time` (for tests and scripted sign-ins).
pub fn code_at(secret: &str, unix_time: u64) -> Option<String> {
    totp(secret, "code").map(|t| t.generate(unix_time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        let secret = new_secret().unwrap();
        let t = 1_800_000_000;
        let code = code_at(&secret, t).unwrap();
        assert_eq!(check(&secret, &code, t), Some(t / 30));
        assert_eq!(check(&secret, &code, t + 30), Some(t / 30), "one step late");
        assert_eq!(check(&secret, &code, t + 90), None, "three steps late");
        assert_eq!(check(&secret, "12345", t), None);
        assert_eq!(check(&secret, "abcdef", t), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(&secret, &spaced, t), Some(t / 30));
    }

    #[test]
    fn the_address_names_the_issuer_and_the_account() {
        let secret = new_secret().unwrap();
        let u = url(&secret, "j.smith");
        assert!(u.starts_with("otpauth://totp/gateway:j.smith?"), "{u}");
        assert!(u.contains(&format!("secret={secret}")), "{u}");
    }
}
