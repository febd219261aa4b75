//! Signed receipts: the proof an agency gets that its message is in the queue.
//!
//! A receipt is a JSON document (the [`Receipt`] fields, serialized once) and a detached CMS
//! signature over exactly those bytes, made with the gateway's receipt key
//! (`keys/receipt/receipt.key`, certificate included). Anyone can check one with stock tools:
//! `openssl cms -verify -binary -inform DER -in R.p7s -content R.json -CAfile receipt.crt -purpose any`.

use std::path::Path;

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::keyring::KeyringError;
use crate::message::Receipt;

mod signed_data;

/// Detached, binary (no MIME canonicalisation), and without the S/MIME capabilities
/// attribute: a list of mail ciphers means nothing in a receipt, and adding it was 1% of the
/// server's CPU under `bench/load.sh` (`CMS_add_standard_smimecap` in `perf record -g -p`).
const RECEIPT_CMS_FLAGS: CMSOptions = CMSOptions::BINARY
    .union(CMSOptions::DETACHED)
    .union(CMSOptions::NOSMIMECAP);

/// A receipt and its signature.
#[derive(Debug, Clone)]
pub struct SignedReceipt {
    /// The receipt as signed (UTF-8 JSON).
    pub json: Vec<u8>,
    /// Detached CMS SignedData (DER) over `json`.
    pub signature: Vec<u8>,
}

/// Signs receipts with the gateway's receipt key.
pub struct ReceiptSigner {
    key: PKey<Private>,
    cert: X509,
    /// The fast path for EC keys (see [`signed_data`]); `CMS_sign` otherwise.
    template: Option<signed_data::Template>,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner").finish_non_exhaustive()
    }
}

impl ReceiptSigner {
    /// Loads `keys/receipt/receipt.key` (0600) and `receipt.crt`.
    pub fn load(keys: &Path) -> Result<ReceiptSigner, KeyringError> {
        let dir = keys.join("receipt");
        let key_path = dir.join("receipt.key");
        if !key_path.exists() {
            return Err(KeyringError::Missing {
                what: "receipt-signing key".into(),
                path: key_path,
            });
        }
        let key = crate::keyring::read_private_key(&key_path)?;
        let cert_path = dir.join("receipt.crt");
        let (cert, _) = crate::keyring::read_certificate_chain(&cert_path)?;
        let template =
            signed_data::Template::new(&key, &cert).map_err(|e| KeyringError::Invalid {
                path: cert_path,
                message: format!("cannot prepare receipt signatures: {e}"),
            })?;
        Ok(ReceiptSigner {
            key,
            cert,
            template,
        })
    }

    /// The receipt certificate (PEM), for agencies to verify receipts with.
    pub fn certificate_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap_or_default()
    }

    /// The SHA-256 fingerprint (lowercase hex) of the receipt certificate: the upload page
    /// pins it to check the recipient document it seals to.
    pub fn certificate_sha256(&self) -> String {
        crate::keyring::x509gen::fingerprint(&self.cert).unwrap_or_default()
    }

    /// A detached CMS signature (DER) over `bytes`, checkable with the receipt certificate.
    pub fn sign_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        if let Some(t) = &self.template {
            return t.sign(&self.key, bytes, time::OffsetDateTime::now_utc());
        }
        CmsContentInfo::sign(
            Some(&self.cert),
            Some(&self.key),
            None,
            Some(bytes),
            RECEIPT_CMS_FLAGS,
        )?
        .to_der()
    }

    /// Serializes and signs `receipt`.
    pub fn sign(&self, receipt: &Receipt) -> Result<SignedReceipt, openssl::error::ErrorStack> {
        // serde_json cannot fail on this plain struct; an empty object would still be signed
        // honestly, but never happens.
        let mut json = serde_json::to_vec_pretty(receipt).unwrap_or_default();
        json.push(b'\n');
        Ok(SignedReceipt {
            signature: self.sign_bytes(&json)?,
            json,
        })
    }
}
