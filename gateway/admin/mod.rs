//! Admin actions: one implementation, audited, for the command line and the console.
//!
//! `gateway agency ...`, `gateway user ...` and `gateway keys rotate|retire` call these, and so
//! do the console's admin forms: the change to `keys/`, its audit record (chain `admin`, under
//! the name of whoever acted, with the channel they used), and the announcement that makes
//! every instance sharing a ledger reload at once are made in one place.

mod certificates;

use std::path::Path;

use serde_json::{Value, json};

use crate::accounts::{self, AccountError, Credentials, NewUser};
use crate::audit::AuditLog;
use crate::config::Config;
use crate::keyring::identities::{self, IdentityInfo, Rotation};
use crate::keyring::{KeyringError, agencies, tokens};

pub use certificates::{CertAdded, validity_problem};

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Key material could not be read or written.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// An account could not be made or changed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The request itself is wrong (said in a sentence for the person).
    #[error("{0}")]
    Refused(String),
    /// The change was made, but its audit record could not be written.
    #[error("the action was done but could not be audited: {0}")]
    NotAudited(String),
}

/// Who acts, and through what.
#[derive(Debug, Clone)]
pub struct Admin<'a> {
    config: &'a Config,
    actor: String,
    via: &'static str,
}

impl<'a> Admin<'a> {
    /// `actor` acting through `via` (`cli` or `console`).
    pub fn new(config: &'a Config, actor: &str, via: &'static str) -> Admin<'a> {
        Admin {
            config,
            actor: actor.to_owned(),
            via,
        }
    }

    fn keys(&self) -> &Path {
        &self.config.keys
    }

    /// Records the action in the audit log.
    fn audit(&self, action: &str, subject: &str, mut details: Value) -> Result<(), AdminError> {
        details["via"] = json!(self.via);
        let log = AuditLog::open_for(self.config, Some("admin"))
            .map_err(|e| AdminError::NotAudited(e.to_string()))?;
        log.append("admin", &self.actor, action, subject, details)
            .map_err(|e| AdminError::NotAudited(e.to_string()))?;
        Ok(())
    }

    /// Records the change to `keys/` in the audit log and tells the other instances.
    fn record(&self, action: &str, subject: &str, details: Value) -> Result<(), AdminError> {
        self.audit(action, subject, details)?;
        if let Err(e) = crate::store::announce_admin_change(self.config, action) {
            // Not fatal: each instance checks keys/ before every payload and reloads it
            // periodically; the announcement only makes the others reload at once.
            tracing::warn!(error = %e, "the change is made, but the other instances could not be told; they see it at their next look at keys/");
        }
        Ok(())
    }

    /// Registers an agency; false when it was registered already.
    pub fn agency_add(&self, name: &str, display_name: Option<&str>) -> Result<bool, AdminError> {
        let made = agencies::add(self.keys(), name, display_name.unwrap_or(name))?;
        if made {
            self.record("agency add", name, json!({ "display_name": display_name }))?;
        }
        Ok(made)
    }

    /// Issues a bearer token for `agency`: its id and the token (shown once).
    pub fn token_issue(&self, agency: &str) -> Result<(String, String), AdminError> {
        let (id, token) = tokens::issue(self.keys(), agency)?;
        self.record("agency token issue", agency, json!({ "token_id": id }))?;
        Ok((id, token))
    }

    /// Revokes token `id` of `agency`.
    pub fn token_revoke(&self, agency: &str, id: &str) -> Result<(), AdminError> {
        if !tokens::revoke(self.keys(), agency, id)? {
            return Err(AdminError::Refused(format!(
                "agency {agency} has no token {id}"
            )));
        }
        self.record("agency token revoke", agency, json!({ "token_id": id }))
    }

    /// Makes an account; its credentials, shown once.
    pub fn user_add(&self, new: &NewUser<'_>) -> Result<Credentials, AdminError> {
        let made = accounts::add(self.keys(), new)?;
        self.record(
            "user add",
            new.name,
            json!({"agency": new.agency, "role": new.role.as_str(), "totp": made.totp_secret.is_some(), "client_certificate": new.client_certificate}),
        )?;
        Ok(made)
    }

    /// Disables an account; false when it was disabled already.
    pub fn user_disable(&self, name: &str) -> Result<bool, AdminError> {
        let done = accounts::disable(self.keys(), name)?;
        if done {
            self.record("user disable", name, json!({}))?;
        }
        Ok(done)
    }

    /// Gives an account new credentials, shown once.
    pub fn user_reset(&self, name: &str) -> Result<Credentials, AdminError> {
        let made = accounts::reset(self.keys(), name)?;
        self.record(
            "user reset",
            name,
            json!({ "totp": made.totp_secret.is_some() }),
        )?;
        Ok(made)
    }

    /// Makes a new age identity current; the current one opens payloads for `grace` more.
    pub fn keys_rotate(&self, grace: Option<time::Duration>) -> Result<Rotation, AdminError> {
        let grace = grace.unwrap_or(self.config.key_policy.grace);
        let r = identities::rotate(self.keys(), &self.config.key_policy.passphrase, grace)?;
        self.record(
            "keys rotate",
            &r.current.id,
            json!({
                "current": { "id": r.current.id, "recipient": r.current.recipient },
                "previous": r.previous.as_ref().map(|p| json!({
                    "id": p.id, "recipient": p.recipient, "grace_until": p.grace_until,
                })),
            }),
        )?;
        Ok(r)
    }

    /// Stops an identity in grace from opening payloads.
    pub fn keys_retire(&self, id: &str) -> Result<IdentityInfo, AdminError> {
        let done = identities::retire(self.keys(), id)?;
        self.record(
            "keys retire",
            id,
            json!({ "recipient": done.recipient, "retired_at": done.retired_at }),
        )?;
        Ok(done)
    }

    /// Asks `ask.agency` for data (the request waits in the ledger for the agency's agent).
    pub fn request_ask(
        &self,
        store: &dyn crate::store::Store,
        ask: &crate::requests::Ask<'_>,
    ) -> Result<crate::store::RequestRecord, AdminError> {
        let known = agencies::list(self.keys())
            .map(|all| all.iter().any(|a| a.name == ask.agency))
            .unwrap_or(false);
        if !known {
            return Err(AdminError::Refused(format!(
                "{} is not a registered agency (gateway agency list)",
                ask.agency
            )));
        }
        let r = crate::requests::ask(store, ask).map_err(|e| match e {
            crate::requests::RequestError::Invalid(m) => AdminError::Refused(m),
            other => AdminError::Refused(other.to_string()),
        })?;
        self.audit(
            "request ask",
            &r.id,
            json!({ "agency": r.agency, "query": r.query, "params": r.params, "deadline": r.deadline }),
        )?;
        Ok(r)
    }

    /// Records that `keys init` made `made`.
    pub fn keys_initialised(&self, made: &[String]) -> Result<(), AdminError> {
        self.record("keys init", "keys", json!({ "created": made }))
    }
}
