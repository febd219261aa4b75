//! Streaming reader and verifier for CMS SignedData (RFC 5652) with attached content.
//!
//! # Why a hand-written streaming reader
//!
//! Payloads are decrypted from age on the fly and can be many gigabytes. OpenSSL's
//! `CmsContentInfo::verify` needs the whole structure in memory and cannot tell which
//! certificate signed; `Pkcs7` cannot parse the subjectKeyIdentifier signer identifiers written
//! by `openssl cms -sign -keyid`. So [`SignedDataReader`] walks the BER itself: it parses the
//! header up to the eContent, streams the content octets out through `Read` while hashing them,
//! and only then buffers the (bounded) certificates and signer infos. OpenSSL is used only for
//! the primitives: X.509 parsing, hashes and signature checks on precomputed inputs.
//!
//! # Accepted encodings
//!
//! DER (`openssl cms -sign -binary -nodetach -outform DER`) and BER with indefinite lengths and a
//! chunked, constructed eContent OCTET STRING (`openssl cms -sign -stream`). Nesting, tag and
//! length sizes and the buffered trailer are bounded; nothing on the input path panics.
//!
//! # Errors
//!
//! [`CmsError::code`] gives the stable code: `not_signed` when the input is not an attached
//! SignedData at all, `signature_invalid` for everything wrong after that, `io_error` when the
//! underlying reader failed (its `io::Error` is kept intact).

#![forbid(unsafe_code)]

pub(crate) mod ber;
mod error;
pub(crate) mod oid;
mod reader;
mod signer;

pub use error::CmsError;
pub use oid::Oid;
pub use reader::{
    MAX_CERTIFICATES, MAX_DIGEST_ALGORITHMS, MAX_SIGNERS, MAX_TRAILER_BYTES, SignedDataReader,
};
pub use signer::{DigestAlgorithm, SignedTrailer, SignerInfo, VerifiedSignature};

#[cfg(test)]
mod tests;
