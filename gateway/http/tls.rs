//! TLS for the HTTPS channel: TLS 1.2+ with Mozilla's intermediate cipher list, HTTP/2 and
//! HTTP/1.1 by ALPN, and an optional client certificate.
//!
//! The client certificate is requested but not judged by the handshake (any certificate whose
//! key the client proves to hold is let through); after the handshake the agency registry
//! decides whose it is, exactly as for signing certificates: pinned, or chained to the
//! agency's anchors, valid now, not revoked.

use std::path::Path;

use openssl::ssl::{AlpnError, SslAcceptor, SslMethod, SslVerifyMode, select_next_proto};
use openssl::x509::X509;

use crate::keyring::{KeyringError, read_private_key};

/// Builds the acceptor from `keys/tls/server.key` and `server.crt`.
pub fn acceptor(keys: &Path) -> Result<SslAcceptor, KeyringError> {
    let dir = keys.join("tls");
    let key = read_private_key(&dir.join("server.key"))?;
    let cert_path = dir.join("server.crt");
    let pem = std::fs::read(&cert_path).map_err(|error| KeyringError::Io {
        path: cert_path.clone(),
        error,
    })?;
    let chain = X509::stack_from_pem(&pem).map_err(|e| KeyringError::Invalid {
        path: cert_path.clone(),
        message: format!("not a PEM certificate: {e}"),
    })?;
    let mut chain = chain.into_iter();
    let Some(leaf) = chain.next() else {
        return Err(KeyringError::Invalid {
            path: cert_path,
            message: "no certificate".into(),
        });
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_private_key(&key)?;
    b.set_certificate(&leaf)?;
    for c in chain {
        b.add_extra_chain_cert(c)?;
    }
    b.check_private_key()?;
    b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    // Needed for session resumption when client certificates are requested.
    b.set_session_id_context(b"gateway")?;
    b.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    Ok(b.build())
}
