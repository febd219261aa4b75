//! The single error type of the CMS reader and its stable user-facing codes.

use std::io;

/// Why a CMS SignedData stream could not be read or verified.
///
/// Every variant maps to one stable code (see [`CmsError::code`]); the `Display` text is for
/// humans and says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// The underlying reader failed; the error is kept untouched (kind and inner error).
    #[error(transparent)]
    Io(io::Error),

    /// The input is not an attached CMS SignedData at all.
    #[error(
        "the file is not a CMS signed message ({reason}); sign it with `openssl cms -sign -nodetach -binary -outform DER`"
    )]
    NotSigned {
        /// What was found instead.
        reason: String,
    },

    /// The BER/DER structure is broken after the start of the SignedData.
    #[error(
        "the signed message is malformed at byte {offset}: {detail}; the file is damaged or was changed after signing"
    )]
    Malformed {
        /// Absolute byte offset in the input where the problem was seen.
        offset: u64,
        /// What was wrong.
        detail: String,
    },

    /// The input ended before the SignedData was complete.
    #[error(
        "the signed message is truncated at byte {offset}: the file is incomplete, transfer it again"
    )]
    Truncated {
        /// Number of bytes read when the input ended.
        offset: u64,
    },

    /// Bytes follow the end of the ContentInfo.
    #[error(
        "unexpected data after the end of the signed message at byte {offset}: the file was changed after signing"
    )]
    TrailingData {
        /// Offset of the first extra byte.
        offset: u64,
    },

    /// A size or count limit on the buffered (non-content) parts was exceeded.
    #[error("the signed message exceeds the limit on {what} ({limit}); it cannot be accepted")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The limit's value.
        limit: u64,
    },

    /// The encapsulated content is not of type id-data.
    #[error(
        "the signed content type {oid} is not supported: only plain data (id-data) is accepted"
    )]
    UnsupportedContentType {
        /// The dotted OID found.
        oid: String,
    },

    /// An algorithm is not supported.
    #[error(
        "unsupported {what} algorithm {oid}: sign with SHA-256/384/512 and RSA, RSA-PSS, ECDSA P-256/P-384 or Ed25519"
    )]
    UnsupportedAlgorithm {
        /// Which kind of algorithm (digest, signature…).
        what: &'static str,
        /// The dotted OID or a description.
        oid: String,
    },

    /// An algorithm is known but too weak to be trusted.
    #[error(
        "the {name} algorithm is too weak and is refused: sign again with `-md sha256` or stronger"
    )]
    WeakAlgorithm {
        /// Name of the refused algorithm or key.
        name: String,
    },

    /// A signer used a digest algorithm not announced in `digestAlgorithms`, so it was not computed.
    #[error(
        "the signer uses digest {name}, which the message does not announce in its digest algorithms"
    )]
    DigestNotComputed {
        /// Digest name.
        name: &'static str,
    },

    /// The message contains no SignerInfo.
    #[error("the signed message contains no signer")]
    NoSigners,

    /// No included certificate matches the signer identifier.
    #[error(
        "the signer's certificate is not included in the message: sign again without `-nocerts`"
    )]
    SignerCertificateNotFound,

    /// A required signed attribute is missing or ill-formed.
    #[error(
        "the signed attribute {name} is {problem}; the file was not produced by a conforming signer"
    )]
    BadAttribute {
        /// Attribute name.
        name: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// The contentType signed attribute differs from eContentType.
    #[error(
        "the signed content type attribute does not match the content type: the file was changed after signing"
    )]
    ContentTypeMismatch,

    /// The messageDigest signed attribute differs from the digest of the content.
    #[error(
        "the signature does not match the content (digest mismatch): the file was changed after signing"
    )]
    DigestMismatch,

    /// The cryptographic signature check failed.
    #[error(
        "the signature does not match the content: the file was changed after signing, or signed with a different key ({algorithm})"
    )]
    BadSignature {
        /// Signature algorithm that was checked.
        algorithm: &'static str,
    },

    /// A certificate or key inside the message could not be used.
    #[error("{context}: {detail}")]
    Crypto {
        /// What was being done.
        context: &'static str,
        /// The underlying OpenSSL error text.
        detail: String,
    },
}

impl CmsError {
    /// The stable, user-facing code: `not_signed`, `signature_invalid` or `io_error`.
    pub fn code(&self) -> crate::rejection::Code {
        use crate::rejection::Code;
        match self {
            CmsError::Io(_) => Code::IoError,
            CmsError::NotSigned { .. } => Code::NotSigned,
            _ => Code::SignatureInvalid,
        }
    }

    /// Recovers the precise error from an `io::Error` returned by the reader's `Read` impl.
    ///
    /// Errors produced by this crate come back as themselves; anything else (the underlying
    /// reader's own failure) becomes [`CmsError::Io`].
    pub fn from_io(e: io::Error) -> CmsError {
        if e.get_ref().is_some_and(|inner| inner.is::<CmsError>()) {
            match e.into_inner().map(|b| b.downcast::<CmsError>()) {
                Some(Ok(cms)) => return *cms,
                // Unreachable given the `is` check above, but stay total.
                Some(Err(other)) => return CmsError::Io(io::Error::other(other)),
                None => return CmsError::Io(io::Error::other("empty error")),
            }
        }
        CmsError::Io(e)
    }

    /// Converts into an `io::Error` for `Read::read`: an underlying I/O error is passed back
    /// unchanged, everything else is wrapped so [`CmsError::from_io`] can recover it.
    pub fn into_io(self) -> io::Error {
        match self {
            CmsError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }

    pub(crate) fn malformed(offset: u64, detail: impl Into<String>) -> CmsError {
        CmsError::Malformed {
            offset,
            detail: detail.into(),
        }
    }

    pub(crate) fn crypto(context: &'static str, e: openssl::error::ErrorStack) -> CmsError {
        CmsError::Crypto {
            context,
            detail: e.to_string(),
        }
    }
}
