//! Per-agency trust evaluation: may this certificate sign for that agency at that time?
//!
//! An agency trusts signers either by pinning their exact certificate (SHA-256 fingerprint) or
//! through CA anchors. Registration is decided first and independently of time and revocation,
//! so the answer can say *why* a known signer is refused (expired, revoked, wrong agency)
//! instead of a generic "untrusted".
//!
//! Chain building and the validity-window check are OpenSSL's (`X509StoreContext`, time set to
//! `at`). CRLs are matched here rather than in the `X509Store`: the `openssl` crate cannot add a
//! CRL object to a store without FFI. Each CRL is used only for certificates whose issuer name it
//! matches and, on a chain, only if it verifies with the issuer's key from the built chain. A
//! missing or stale CRL does not fail the check (soft-fail): CRLs are registered by an admin,
//! who also has the `revoked` fingerprint list for immediate revocations.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{CrlStatus, X509, X509Crl, X509NameRef, X509Ref, X509StoreContext};

/// OpenSSL's `X509_V_ERR_CERT_NOT_YET_VALID`.
const ERR_CERT_NOT_YET_VALID: i32 = 9;
/// OpenSSL's `X509_V_ERR_CERT_HAS_EXPIRED`.
const ERR_CERT_HAS_EXPIRED: i32 = 10;

/// What one agency trusts.
#[derive(Default)]
pub struct AgencyTrust {
    /// Certificates trusted as-is (matched by SHA-256 fingerprint), typically self-signed.
    pub pinned: Vec<X509>,
    /// CA certificates: any signer chaining to one of them is registered.
    pub anchors: Vec<X509>,
    /// CRLs registered for this agency.
    pub crls: Vec<X509Crl>,
    /// SHA-256 fingerprints revoked by an administrator.
    pub revoked: Vec<[u8; 32]>,
    /// Pinned certificates registered to be used only from a given time (Unix seconds), so
    /// an agency's next certificate can be registered ahead of its switch-over.
    pub activation: Vec<([u8; 32], i64)>,
}

/// Trust configuration of every agency, keyed by agency name.
#[derive(Default)]
pub struct TrustStore {
    agencies: BTreeMap<String, AgencyTrust>,
}

/// A signer accepted for an agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedSigner {
    /// The agency it may sign for.
    pub agency: String,
    /// SHA-256 fingerprint of the signer certificate, lowercase hex.
    pub fingerprint_sha256: String,
    /// Subject as a one-line DN, e.g. `CN=Leaf, O=Agency A`.
    pub subject: String,
    /// End of the signer certificate's validity, as OpenSSL prints it.
    pub not_after: String,
}

/// Why a signer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Not registered for any agency.
    #[error(
        "the signing certificate {subject} (SHA-256 {fingerprint}) is not registered for agency {claimed}: if it is genuine, register it with `gateway agency cert add {claimed} cert.pem`"
    )]
    SignerUnknown {
        /// Agency the sender claims to be.
        claimed: String,
        /// Signer fingerprint, lowercase hex.
        fingerprint: String,
        /// Signer subject.
        subject: String,
    },
    /// A certificate of the chain is past the end of its validity at the checked time.
    #[error(
        "the certificate {subject} expired before {at} (valid from {not_before} to {not_after}): the sender must renew it and sign again"
    )]
    CertificateExpired {
        /// Subject of the offending certificate (the signer or a chain member).
        subject: String,
        /// Its notBefore.
        not_before: String,
        /// Its notAfter.
        not_after: String,
        /// The time checked.
        at: String,
    },
    /// A certificate of the chain is not valid yet at the checked time (its notBefore, or the
    /// start an admin registered for it, is later).
    #[error(
        "the certificate {subject} is not valid yet at {at} (valid from {not_before} to {not_after}): sign with the current certificate until then, and check the signing machine's clock"
    )]
    CertificateNotYetValid {
        /// Subject of the offending certificate (the signer or a chain member).
        subject: String,
        /// Its notBefore (or the registered start).
        not_before: String,
        /// Its notAfter.
        not_after: String,
        /// The time checked.
        at: String,
    },
    /// A certificate of the chain is revoked.
    #[error(
        "the certificate {subject} (SHA-256 {fingerprint}) is revoked ({by}): the sender must use a new certificate"
    )]
    CertificateRevoked {
        /// Subject of the revoked certificate.
        subject: String,
        /// Its fingerprint.
        fingerprint: String,
        /// Who revoked it: an admin or a CRL.
        by: String,
    },
    /// Registered, but for another agency.
    #[error(
        "the signing certificate {subject} is registered for agency {actual}, not for {claimed}: send the file under the right agency"
    )]
    AgencyMismatch {
        /// Agency claimed by the sender.
        claimed: String,
        /// Agency the certificate is registered for.
        actual: String,
        /// Signer subject.
        subject: String,
    },
}

impl TrustError {
    /// Stable user-facing code.
    pub fn code(&self) -> crate::rejection::Code {
        use crate::rejection::Code;
        match self {
            TrustError::SignerUnknown { .. } => Code::SignerUnknown,
            TrustError::CertificateExpired { .. } => Code::CertificateExpired,
            TrustError::CertificateNotYetValid { .. } => Code::CertificateNotYetValid,
            TrustError::CertificateRevoked { .. } => Code::CertificateRevoked,
            TrustError::AgencyMismatch { .. } => Code::AgencyMismatch,
        }
    }
}

/// How the signer is registered for an agency.
enum Registration {
    Pinned,
    /// The chain built by OpenSSL, signer first, anchor last.
    Chain(Vec<X509>),
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (replaces) the trust of `agency`.
    pub fn insert(&mut self, agency: impl Into<String>, trust: AgencyTrust) -> &mut Self {
        self.agencies.insert(agency.into(), trust);
        self
    }

    /// The trust of `agency`, if configured.
    pub fn agency(&self, agency: &str) -> Option<&AgencyTrust> {
        self.agencies.get(agency)
    }

    /// The names of every agency with a trust configuration.
    pub fn agencies(&self) -> impl Iterator<Item = &str> {
        self.agencies.keys().map(String::as_str)
    }

    /// Decides whether `signer` may sign for `claimed_agency` at time `at`.
    ///
    /// `intermediates` are untrusted chain candidates (usually the certificates included in
    /// the signed message).
    pub fn check(
        &self,
        claimed_agency: &str,
        signer: &X509Ref,
        intermediates: &[X509],
        at: SystemTime,
    ) -> Result<TrustedSigner, TrustError> {
        let fingerprint = fingerprint(signer);
        let subject = one_line(signer.subject_name());
        let (trust, reg) = self.registered(
            claimed_agency,
            signer,
            &fingerprint,
            intermediates,
            &subject,
        )?;
        let at_secs = unix_seconds(at);
        check_validity(
            trust,
            &reg,
            signer,
            &fingerprint,
            intermediates,
            at_secs,
            &subject,
        )?;
        check_revocations(trust, &reg, signer)?;
        Ok(TrustedSigner {
            agency: claimed_agency.to_string(),
            fingerprint_sha256: hex::encode(fingerprint),
            subject,
            not_after: signer.not_after().to_string(),
        })
    }

    /// Every agency `signer` is registered for (pinned, or chaining to one of its CAs),
    /// whatever its validity or revocation: the channels that learn the agency from the
    /// signature (mail) ask this first, then [`TrustStore::check`] decides.
    pub fn agencies_of(&self, signer: &X509Ref, intermediates: &[X509]) -> Vec<String> {
        let fp = fingerprint(signer);
        self.agencies
            .iter()
            .filter(|(_, t)| registration(t, signer, &fp, intermediates).is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The agency's trust and how `signer` is registered there; when it is not, whether it is
    /// another agency's (`agency_mismatch`) or nobody's (`signer_unknown`).
    fn registered(
        &self,
        claimed_agency: &str,
        signer: &X509Ref,
        fingerprint: &[u8; 32],
        intermediates: &[X509],
        subject: &str,
    ) -> Result<(&AgencyTrust, Registration), TrustError> {
        if let Some(trust) = self.agencies.get(claimed_agency)
            && let Some(reg) = registration(trust, signer, fingerprint, intermediates)
        {
            return Ok((trust, reg));
        }
        let actual = self.agencies.iter().find(|(name, t)| {
            name.as_str() != claimed_agency
                && registration(t, signer, fingerprint, intermediates).is_some()
        });
        Err(match actual {
            Some((name, _)) => TrustError::AgencyMismatch {
                claimed: claimed_agency.to_string(),
                actual: name.clone(),
                subject: subject.to_owned(),
            },
            None => TrustError::SignerUnknown {
                claimed: claimed_agency.to_string(),
                fingerprint: hex::encode(fingerprint),
                subject: subject.to_owned(),
            },
        })
    }
}

/// The signer (and, for a chain, every certificate in it) is within its validity period at
/// `at_secs`, and past the start an administrator registered for it.
fn check_validity(
    trust: &AgencyTrust,
    reg: &Registration,
    signer: &X509Ref,
    fingerprint: &[u8; 32],
    intermediates: &[X509],
    at_secs: i64,
    subject: &str,
) -> Result<(), TrustError> {
    match reg {
        Registration::Pinned => {
            check_window(signer, at_secs)?;
            if let Some(&(_, from)) = trust.activation.iter().find(|(f, _)| f == fingerprint)
                && at_secs < from
            {
                return Err(TrustError::CertificateNotYetValid {
                    subject: subject.to_owned(),
                    not_before: format!("{} (registered start)", asn1(from)),
                    not_after: signer.not_after().to_string(),
                    at: asn1(at_secs),
                });
            }
        }
        Registration::Chain(chain) => {
            check_chain_window(trust, signer, intermediates, at_secs)?;
            for c in chain {
                check_window(c, at_secs)?;
            }
        }
    }
    Ok(())
}

/// Nothing in the chain is revoked, by an administrator or by a CRL.
fn check_revocations(
    trust: &AgencyTrust,
    reg: &Registration,
    signer: &X509Ref,
) -> Result<(), TrustError> {
    let chain: Vec<&X509Ref> = match reg {
        Registration::Pinned => vec![signer],
        Registration::Chain(c) => c.iter().map(|c| c.as_ref()).collect(),
    };
    for c in &chain {
        let fp = fingerprint_of(c);
        if trust.revoked.contains(&fp) {
            return Err(TrustError::CertificateRevoked {
                subject: one_line(c.subject_name()),
                fingerprint: hex::encode(fp),
                by: "revoked by an administrator".into(),
            });
        }
    }
    check_crls(trust, reg, signer)
}

/// Whether the signer is registered for this agency, ignoring time and revocation.
fn registration(
    trust: &AgencyTrust,
    signer: &X509Ref,
    fp: &[u8; 32],
    intermediates: &[X509],
) -> Option<Registration> {
    if trust.pinned.iter().any(|p| fingerprint_of(p) == *fp) {
        return Some(Registration::Pinned);
    }
    if trust.anchors.is_empty() {
        return None;
    }
    let flags = X509VerifyFlags::NO_CHECK_TIME;
    match verify_chain(trust, signer, intermediates, flags, None) {
        Ok(Ok(chain)) => Some(Registration::Chain(chain)),
        _ => None,
    }
}

/// Runs OpenSSL chain verification. The outer error is an OpenSSL failure, the inner one the
/// verification error code and the offending certificate.
#[allow(clippy::type_complexity)]
fn verify_chain(
    trust: &AgencyTrust,
    signer: &X509Ref,
    intermediates: &[X509],
    flags: X509VerifyFlags,
    at: Option<i64>,
) -> Result<Result<Vec<X509>, (i32, Option<X509>)>, openssl::error::ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    for a in &trust.anchors {
        builder.add_cert(a.clone())?;
    }
    let mut param = X509VerifyParam::new()?;
    param.set_flags(flags)?;
    if let Some(t) = at {
        param.set_time(t);
    }
    // No purpose: the gateway decides what a signer may do, not the EKU.
    builder.set_param(&param)?;
    let store = builder.build();
    let mut untrusted = Stack::new()?;
    for i in intermediates {
        untrusted.push(i.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    ctx.init(&store, signer, &untrusted, |c| {
        if c.verify_cert()? {
            let chain = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            Ok(Ok(chain))
        } else {
            let code = c.error().as_raw();
            Ok(Err((code, c.current_cert().map(|x| x.to_owned()))))
        }
    })
}

fn check_chain_window(
    trust: &AgencyTrust,
    signer: &X509Ref,
    intermediates: &[X509],
    at: i64,
) -> Result<(), TrustError> {
    let result = verify_chain(
        trust,
        signer,
        intermediates,
        X509VerifyFlags::empty(),
        Some(at),
    );
    match result {
        Ok(Err((code, cert))) if code == ERR_CERT_HAS_EXPIRED || code == ERR_CERT_NOT_YET_VALID => {
            let cert = cert.unwrap_or_else(|| signer.to_owned());
            Err(outside_window(&cert, at))
        }
        // Any other outcome cannot come from time alone (the chain verified without time
        // checks); the caller still checks each chain member's window itself.
        _ => Ok(()),
    }
}

fn check_window(cert: &X509Ref, at: i64) -> Result<(), TrustError> {
    let ok = Asn1Time::from_unix(at).is_ok_and(|t| {
        let before: &Asn1TimeRef = cert.not_before();
        let after: &Asn1TimeRef = cert.not_after();
        matches!(before.compare(&t), Ok(o) if o.is_le())
            && matches!(after.compare(&t), Ok(o) if o.is_ge())
    });
    if ok {
        Ok(())
    } else {
        Err(outside_window(cert, at))
    }
}

/// Expired, or not valid yet: which one decides what the sender should do.
fn outside_window(cert: &X509Ref, at: i64) -> TrustError {
    let (subject, not_before, not_after) = (
        one_line(cert.subject_name()),
        cert.not_before().to_string(),
        cert.not_after().to_string(),
    );
    let early = Asn1Time::from_unix(at)
        .is_ok_and(|t| matches!(cert.not_before().compare(&t), Ok(o) if o.is_gt()));
    if early {
        TrustError::CertificateNotYetValid {
            subject,
            not_before,
            not_after,
            at: asn1(at),
        }
    } else {
        TrustError::CertificateExpired {
            subject,
            not_before,
            not_after,
            at: asn1(at),
        }
    }
}

fn asn1(at: i64) -> String {
    Asn1Time::from_unix(at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{at} (Unix time)"))
}

fn check_crls(trust: &AgencyTrust, reg: &Registration, signer: &X509Ref) -> Result<(), TrustError> {
    if trust.crls.is_empty() {
        return Ok(());
    }
    let revoked_by = |cert: &X509Ref, crl: &X509Crl| -> Option<TrustError> {
        let owned = cert.to_owned();
        match crl.get_by_cert(&owned) {
            CrlStatus::Revoked(_) => Some(TrustError::CertificateRevoked {
                subject: one_line(cert.subject_name()),
                fingerprint: hex::encode(fingerprint_of(cert)),
                by: format!("listed in the CRL of {}", one_line(crl.issuer_name())),
            }),
            _ => None,
        }
    };
    match reg {
        Registration::Pinned => {
            for crl in &trust.crls {
                if names_equal(crl.issuer_name(), signer.issuer_name())
                    && let Some(e) = revoked_by(signer, crl)
                {
                    return Err(e);
                }
            }
        }
        Registration::Chain(chain) => {
            // Each certificate is checked against CRLs signed by the next one up the chain.
            for pair in chain.windows(2) {
                let [cert, issuer] = pair else { continue };
                let Ok(issuer_key) = issuer.public_key() else {
                    continue;
                };
                for crl in &trust.crls {
                    if names_equal(crl.issuer_name(), cert.issuer_name())
                        && crl.verify(&issuer_key).unwrap_or(false)
                        && let Some(e) = revoked_by(cert, crl)
                    {
                        return Err(e);
                    }
                }
            }
        }
    }
    Ok(())
}

fn names_equal(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|o| o.is_eq())
}

fn fingerprint_of(cert: &X509Ref) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(d) = cert.digest(MessageDigest::sha256())
        && d.len() == 32
    {
        out.copy_from_slice(&d);
    }
    out
}

fn fingerprint(cert: &X509Ref) -> [u8; 32] {
    fingerprint_of(cert)
}

fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `CN=Leaf, O=Agency A` style rendering, in the certificate's order.
pub fn one_line(name: &X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_string();
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={value}")
        })
        .collect();
    parts.join(", ")
}
