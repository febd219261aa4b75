//! Agencies' signing certificates: pinned (now, or from a switch-over time) and revoked.

use serde_json::json;

use super::{Admin, AdminError};
use crate::keyring::agencies;

/// What pinning a certificate did.
#[derive(Debug, Clone)]
pub struct CertAdded {
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
    /// Why it would verify nothing now, when it was pinned anyway (`force`).
    pub forced_despite: Option<String>,
    /// When it is accepted from (RFC 3339), when scheduled.
    pub from: Option<String>,
}

/// Why a certificate pinned now (to be accepted from `from`, if given) would not verify
/// anything: expired, not valid yet, or expiring before it is accepted.
pub fn validity_problem(
    cert: &openssl::x509::X509Ref,
    now: time::OffsetDateTime,
    from: Option<time::OffsetDateTime>,
) -> Option<String> {
    let at = |t: time::OffsetDateTime| openssl::asn1::Asn1Time::from_unix(t.unix_timestamp()).ok();
    let (not_before, not_after) = (cert.not_before(), cert.not_after());
    let now_asn1 = at(now)?;
    if not_after < now_asn1.as_ref() {
        return Some(format!("the certificate expired on {not_after}"));
    }
    match from {
        // Registered ahead of its switch-over: what matters is the time it is accepted from.
        Some(from) => {
            let from_asn1 = at(from.max(now))?;
            if not_after <= from_asn1.as_ref() {
                Some(format!(
                    "the certificate expires on {not_after}, before it would be accepted (from {})",
                    from_asn1.as_ref()
                ))
            } else if not_before > from_asn1.as_ref() {
                Some(format!(
                    "the certificate is not valid until {not_before}, after it would be accepted (from {}); use --not-before at or after its start",
                    from_asn1.as_ref()
                ))
            } else {
                None
            }
        }
        None if not_before > now_asn1.as_ref() => Some(format!(
            "the certificate is not valid yet (valid from {not_before}); register it with --not-before to accept it from then"
        )),
        None => None,
    }
}

impl Admin<'_> {
    /// Pins the PEM certificate `pem` for `agency` (accepted from `not_before`, if given). A
    /// certificate that would verify nothing (expired, not valid yet) is refused unless
    /// `force`. `shown` names it in the audit record (a file, or "console").
    pub fn cert_add(
        &self,
        agency: &str,
        pem: &[u8],
        not_before: Option<time::OffsetDateTime>,
        force: bool,
        shown: &str,
    ) -> Result<CertAdded, AdminError> {
        // A certificate that cannot be parsed is refused below, by the keyring.
        let problem = openssl::x509::X509::from_pem(pem)
            .ok()
            .and_then(|x| validity_problem(&x, time::OffsetDateTime::now_utc(), not_before));
        if let Some(p) = &problem
            && !force
        {
            return Err(AdminError::Refused(format!(
                "{shown}: {p}; every payload it signs would be refused with certificate_expired. Not pinned: sign with a current certificate, or pin it anyway (--force)"
            )));
        }
        let fingerprint = agencies::add_cert_from(self.keys(), agency, pem, not_before)?;
        let from = not_before.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        self.record(
            "agency cert add",
            agency,
            json!({ "fingerprint_sha256": fingerprint, "file": shown, "not_before": from, "forced_despite": problem }),
        )?;
        Ok(CertAdded {
            fingerprint,
            forced_despite: problem,
            from,
        })
    }

    /// Revokes `agency`'s certificate with this SHA-256 fingerprint; false when it was
    /// revoked already.
    pub fn cert_revoke(&self, agency: &str, fingerprint: &str) -> Result<bool, AdminError> {
        let fresh = agencies::revoke_cert(self.keys(), agency, fingerprint)?;
        let fp = fingerprint.to_ascii_lowercase().replace(':', "");
        if fresh {
            self.record(
                "agency cert revoke",
                agency,
                json!({ "fingerprint_sha256": fp }),
            )?;
        }
        Ok(fresh)
    }
}
