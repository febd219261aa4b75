//! Who is calling: the agency named by the bearer token and/or the client certificate, decided
//! from the headers and the TLS session alone, before a byte of the body is read.
//!
//! A client certificate counts only if the agency registry accepts it by the same rules as a
//! signing certificate (pinned, or chained to one of the agency's anchors; valid now; not
//! revoked). An agency whose `agency.toml` says `require_client_certificate = true` must present
//! such a certificate *for that agency* on every request, whatever its token says.

use std::time::SystemTime;

use axum::http::{HeaderMap, header};

use super::problem::ApiError;
use super::{AppState, PeerCertificate};
use crate::keyring::trust::{TrustError, TrustStore};
use crate::message::AgencyName;
use crate::rejection::Code;

/// The agency a request speaks for.
pub fn authenticate(
    st: &AppState,
    peer: &PeerCertificate,
    headers: &HeaderMap,
) -> Result<AgencyName, ApiError> {
    let by_token = match bearer_token(headers)? {
        None => None,
        Some(token) => Some(st.token_agency(token).ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                "the bearer token is not valid (unknown, mistyped or revoked)",
            )
        })?),
    };
    let ring = st.gateway.keyring.get();
    let now = SystemTime::now();
    let by_cert = match &peer.cert {
        None => None,
        Some(cert) => {
            let found = ring
                .trust
                .agencies()
                .find(|a| ring.trust.check(a, cert, &peer.chain, now).is_ok())
                .map(str::to_owned);
            if found.is_none() && by_token.is_none() {
                return Err(ApiError::new(
                    Code::Unauthenticated,
                    "the client certificate is not registered for any agency (or is expired or revoked)",
                ));
            }
            found
        }
    };
    let agency = match (by_token, by_cert) {
        (Some(t), Some(c)) if t != c => {
            return Err(ApiError::new(
                Code::Forbidden,
                format!("the token is {t}'s but the client certificate is {c}'s"),
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(ApiError::new(
                Code::Unauthenticated,
                "present a bearer token (Authorization: Bearer gw_...) or a registered client certificate",
            ));
        }
    };
    let required = ring
        .agencies
        .iter()
        .any(|a| a.name == agency && a.require_client_certificate);
    if required {
        require_certificate(&ring.trust, &agency, peer, now)?;
    }
    // Registered names are valid ones; a hand-edited registry is caught here, not downstream.
    AgencyName::parse(&agency).map_err(|e| ApiError::new(Code::InternalError, e.to_string()))
}

/// The token of an `Authorization: Bearer` header; `None` without the header. The scheme is
/// case-insensitive (RFC 9110 §11.1); any other scheme is refused by name.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            Code::Unauthenticated,
            "the Authorization header is not printable ASCII: send `Authorization: Bearer gw_...`",
        )
    })?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::new(
            Code::Unauthenticated,
            format!(
                "the Authorization header uses the {scheme:?} scheme; the gateway accepts only bearer tokens (Authorization: Bearer gw_...)"
            ),
        ));
    }
    Ok(Some(rest.trim()))
}

/// The agency requires a client certificate: the one presented must be registered for it,
/// valid now and not revoked.
fn require_certificate(
    trust: &TrustStore,
    agency: &str,
    peer: &PeerCertificate,
    now: SystemTime,
) -> Result<(), ApiError> {
    let Some(cert) = &peer.cert else {
        return Err(ApiError::new(
            Code::Unauthenticated,
            format!(
                "agency {agency} must present its registered client certificate on every request"
            ),
        ));
    };
    match trust.check(agency, cert, &peer.chain, now) {
        Ok(_) => Ok(()),
        Err(e) => Err(ApiError::new(Code::Forbidden, refusal(agency, &e))),
    }
}

/// Which rule the client certificate broke, in a sentence for the caller.
fn refusal(agency: &str, e: &TrustError) -> String {
    let rule = match e {
        TrustError::SignerUnknown {
            subject,
            fingerprint,
            ..
        } => format!(
            "the client certificate {subject} (SHA-256 {fingerprint}) is not registered for {agency} (neither pinned nor issued by one of its anchors): connect with the certificate the hub registered, or ask the hub to register this one"
        ),
        TrustError::AgencyMismatch {
            actual, subject, ..
        } => format!(
            "the client certificate {subject} is registered for agency {actual}, not for {agency}: connect with {agency}'s own certificate"
        ),
        TrustError::CertificateExpired {
            subject,
            not_before,
            not_after,
            ..
        } => format!(
            "the client certificate {subject} has expired (valid from {not_before} to {not_after}): renew it and register the new one"
        ),
        TrustError::CertificateNotYetValid {
            subject,
            not_before,
            ..
        } => format!(
            "the client certificate {subject} is not valid yet (from {not_before}): use the current certificate until then"
        ),
        TrustError::CertificateRevoked { subject, by, .. } => format!(
            "the client certificate {subject} is revoked ({by}): connect with a certificate that is still valid"
        ),
    };
    format!("agency {agency} requires its registered client certificate: {rule}")
}
