//! TLS for the HTTPS channel: TLS 1.2+ with Mozilla's intermediate cipher list, HTTP/2 and
//! HTTP/1.1 by ALPN, and an optional client certificate.
//!
//! The client certificate is requested but not judged by the handshake (any certificate whose
//! key the client proves to hold is let through); after the handshake the agency registry
//! decides whose it is, exactly as for signing certificates: pinned, or chained to the
//! agency's anchors, valid now, not revoked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openssl::ssl::{AlpnError, SslAcceptor, SslMethod, SslVerifyMode, select_next_proto};

use crate::keyring::{KeyringError, read_certificate_chain, read_private_key};

/// Builds the acceptor from `keys/tls/server.key` and `server.crt`.
pub fn acceptor(keys: &Path) -> Result<SslAcceptor, KeyringError> {
    let dir = keys.join("tls");
    let key = read_private_key(&dir.join("server.key"))?;
    let (leaf, chain) = read_certificate_chain(&dir.join("server.crt"))?;
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

/// The acceptor in use, replaced when `keys/tls/` changes. Connections keep the acceptor they
/// were accepted with; a bad new certificate or key leaves the previous one in use.
pub struct LiveAcceptor {
    keys: PathBuf,
    current: RwLock<Arc<SslAcceptor>>,
    loaded: Mutex<Vec<u8>>,
}

/// What the acceptor was built from, to skip rebuilding when nothing changed.
fn tls_files(keys: &Path) -> Vec<u8> {
    let dir = keys.join("tls");
    let mut v = std::fs::read(dir.join("server.crt")).unwrap_or_default();
    v.extend(std::fs::read(dir.join("server.key")).unwrap_or_default());
    openssl::sha::sha256(&v).to_vec()
}

impl LiveAcceptor {
    /// Loads `keys/tls/` (start-up: errors are fatal).
    pub fn load(keys: &Path) -> Result<LiveAcceptor, KeyringError> {
        let stamp = tls_files(keys);
        Ok(LiveAcceptor {
            current: RwLock::new(Arc::new(acceptor(keys)?)),
            keys: keys.to_path_buf(),
            loaded: Mutex::new(stamp),
        })
    }

    /// The acceptor for a new connection.
    pub fn get(&self) -> Arc<SslAcceptor> {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Rebuilds the acceptor if the files changed; `Ok(true)` when a new one is in use.
    pub fn reload(&self) -> Result<bool, KeyringError> {
        let mut loaded = match self.loaded.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let stamp = tls_files(&self.keys);
        if *loaded == stamp {
            return Ok(false);
        }
        let fresh = acceptor(&self.keys)?;
        if let Ok(mut c) = self.current.write() {
            *c = Arc::new(fresh);
        }
        *loaded = stamp;
        Ok(true)
    }
}
