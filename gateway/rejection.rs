//! What a sender is told when a payload is refused: a stable code, a sentence that says what
//! to do, and for XML problems every location (line, column, XML path).

use serde::{Deserialize, Serialize};

/// One located problem in the XML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Located {
    /// Stable code, e.g. `value_invalid`.
    pub code: String,
    /// What was expected and what was found.
    pub message: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// XML path, e.g. `/Referral/Child[2]/DateOfBirth`.
    pub path: String,
}

/// A refused payload.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejection {
    /// Which stable code of the product contract.
    pub code: Code,
    /// What happened, specifically.
    pub detail: String,
    /// What the sender should do about it.
    pub action: &'static str,
    /// Where, for XML problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Located>,
    /// More violations exist than are listed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Rejection {
    /// A rejection with no location.
    pub fn new(code: Code, detail: impl Into<String>) -> Rejection {
        Rejection {
            code,
            detail: detail.into(),
            action: code.action(),
            violations: Vec::new(),
            truncated: false,
        }
    }

    /// Whether the sender may simply try again later (our side failed, not the payload).
    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }

    /// Where the XML is wrong, as the ledger keeps it; `None` when no place was given.
    pub fn located(&self) -> Option<Violations> {
        (!self.violations.is_empty()).then(|| Violations {
            violations: self.violations.clone(),
            truncated: self.truncated,
        })
    }
}

/// The located problems of a rejection, as the ledger keeps them for a later status query
/// (`Store::violations`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Violations {
    /// Where, with what.
    pub violations: Vec<Located>,
    /// More violations exist than are listed.
    #[serde(default)]
    pub truncated: bool,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// Declares [`Code`] from one table, so that a code's string, HTTP status, retryability and
/// advice cannot drift apart: adding a code is adding a row.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => ($name:literal, $status:literal, $retry:literal, $action:literal), )*) => {
        /// A stable code of the product contract: what a sender sees in every refusal.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as senders see it, e.g. `schema_invalid`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The code named `s`, if there is one.
            pub fn parse(s: &str) -> Option<Code> {
                match s { $($name => Some(Code::$variant),)* _ => None }
            }

            /// The HTTP status that goes with it on the HTTPS channel.
            pub fn http_status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// Whether the sender may simply try again later: our side failed, not the payload,
            /// and nothing was kept.
            pub fn retryable(self) -> bool {
                match self { $(Code::$variant => $retry,)* }
            }

            /// What the sender should do about it.
            pub fn action(self) -> &'static str {
                match self { $(Code::$variant => $action,)* }
            }
        }
    };
}

codes! {
    /// A folder entry that is a link, a folder or a device, not a file.
    NotARegularFile => ("not_a_regular_file", 422, false,
        "drop the sealed file itself into the folder, not a link to it or a folder"),
    /// Larger than the agency's or the gateway's limit.
    PayloadTooLarge => ("payload_too_large", 413, false,
        "split the extract into smaller messages, or ask the hub to raise this agency's size limit"),
    /// Not an age file.
    NotAgeEncrypted => ("not_age_encrypted", 422, false,
        "encrypt the signed file with age to the gateway's recipient (`gateway recipient`), e.g. `age -r age1... signed.p7m > file.sealed`"),
    /// Sealed to a recipient the gateway does not hold.
    NoMatchingKey => ("no_matching_key", 422, false,
        "the file was encrypted to a recipient the gateway does not hold (an old or wrong key): fetch the current recipient and seal again"),
    /// The age stream is damaged or truncated.
    DecryptFailed => ("decrypt_failed", 422, false,
        "the encrypted file is damaged or truncated: seal and send it again"),
    /// Not CMS SignedData with the content attached.
    NotSigned => ("not_signed", 422, false,
        "sign the XML as CMS SignedData with the content attached (`openssl cms -sign -binary -nodetach -outform DER ...`) before encrypting"),
    /// The signature does not match the content.
    SignatureInvalid => ("signature_invalid", 422, false,
        "the signature does not match the content: the file changed after signing or the signature is malformed; sign the final XML again"),
    /// The signer is not registered.
    SignerUnknown => ("signer_unknown", 403, false,
        "the signing certificate is not registered for any agency: ask the hub to register it (`gateway agency cert add`)"),
    /// The signing certificate has expired.
    CertificateExpired => ("certificate_expired", 403, false,
        "the signing certificate is outside its validity period: sign with a current certificate"),
    /// The signing certificate is not valid yet.
    CertificateNotYetValid => ("certificate_not_yet_valid", 403, false,
        "the signing certificate is not valid yet (its start is in the future, or the hub registered it to start later): sign with the current certificate until then, and check the signing machine's clock"),
    /// The signing certificate is revoked.
    CertificateRevoked => ("certificate_revoked", 403, false,
        "the signing certificate has been revoked: sign with a certificate that is still valid"),
    /// Signed by another agency.
    AgencyMismatch => ("agency_mismatch", 403, false,
        "the payload is signed with another agency's certificate: sign with your own agency's certificate or send it through that agency's channel"),
    /// Not well-formed XML.
    XmlMalformed => ("xml_malformed", 422, false,
        "the document is not well-formed XML: fix it at the line and column given"),
    /// A DOCTYPE.
    DtdForbidden => ("dtd_forbidden", 422, false,
        "remove the DOCTYPE declaration: DTDs and entities are not accepted"),
    /// Beyond an XML safety limit.
    XmlLimitExceeded => ("xml_limit_exceeded", 422, false,
        "the document exceeds an XML safety limit (depth, attributes, sizes): simplify the structure or split the message"),
    /// No schema has this root.
    SchemaUnknownRoot => ("schema_unknown_root", 422, false,
        "no schema in the catalog has this root element: check the namespace and element name, or ask the hub to register the schema"),
    /// The agency may not send this message type.
    SchemaNotAllowed => ("schema_not_allowed", 403, false,
        "this agency may not send this message type: check the root element, or ask the hub to allow it"),
    /// Violates its schema.
    SchemaInvalid => ("schema_invalid", 422, false,
        "the document does not match its schema: fix each violation at the line, column and path given"),
    /// An agency message id reused for other content.
    Duplicate => ("duplicate", 409, false,
        "this message id was already used for different content: give the new message a new id"),
    /// No usable credentials.
    Unauthenticated => ("unauthenticated", 401, false,
        "authenticate with your agency's bearer token or its registered client certificate"),
    /// Credentials that do not allow this.
    Forbidden => ("forbidden", 403, false,
        "use one agency's credentials only, and only for that agency's messages"),
    /// The queue or the ledger could not take the message (retryable).
    QueueUnavailable => ("queue_unavailable", 503, true,
        "the gateway could not store the message; nothing was kept: send it again later"),
    /// Every upload slot (or the agency's share) is taken (retryable).
    Busy => ("busy", 503, true,
        "the gateway (or this agency's share of it) is receiving as many uploads as it may; nothing was kept: send again after the Retry-After seconds"),
    /// The gateway itself failed (a bug, such as a panicked worker); retryable, nothing kept.
    InternalError => ("internal_error", 500, true,
        "the gateway failed while handling the message and kept nothing; send it again later, and tell the hub's operators if it keeps failing"),
    /// No such message for this agency.
    NotFound => ("not_found", 404, false,
        "check the message id; only the agency that sent a message can see it"),
    /// The upload was too slow or stalled.
    RequestTimeout => ("request_timeout", 408, false,
        "send the payload again on a faster or steadier connection"),
    /// Not valid HTTP.
    MalformedRequest => ("malformed_request", 400, false,
        "the request is not valid HTTP (a malformed chunk size, oversized trailers...): fix the client or its proxy; sending the same request again will fail the same way"),
    /// A restart cut processing off.
    Interrupted => ("interrupted", 422, false,
        "processing was interrupted by a restart: send the message again"),
    /// A `Gateway-Request-Id` or request path that names no request of this agency.
    RequestUnknown => ("request_unknown", 404, false,
        "check the request id: an agency sees and answers only the requests made to it"),
    /// An answer or failure report for a request that failed or timed out already.
    RequestClosed => ("request_closed", 409, false,
        "the request was closed before this arrived (it failed or timed out): nothing was kept; the hub's operators can ask again"),
    /// A mail with no sealed attachment.
    NoPayload => ("no_payload", 422, false,
        "attach the sealed file (made with `gateway seal`) to the mail: the mail's text and unsealed attachments are not read"),
    /// A mail that cannot be read as a mail.
    MailMalformed => ("mail_malformed", 422, false,
        "the mail could not be read (its structure is broken): send it again from an ordinary mail program with the sealed file attached"),
    /// The payload could not be read to its end.
    IoError => ("io_error", 422, false,
        "the payload could not be read to its end (a truncated upload, or a read failure on the way in): send it again; if it fails the same way, seal it again"),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<xsd::xml::XmlErrorKind> for Code {
    fn from(kind: xsd::xml::XmlErrorKind) -> Code {
        use xsd::xml::XmlErrorKind as K;
        match kind {
            K::Malformed => Code::XmlMalformed,
            K::DoctypeForbidden => Code::DtdForbidden,
            K::LimitExceeded => Code::XmlLimitExceeded,
            K::Io => Code::IoError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn every_code_parses_back_from_its_string_and_retryable_ones_are_5xx() {
        for &c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert_eq!(c.retryable(), c.http_status() >= 500, "{c}");
            assert!(!c.action().is_empty());
        }
        assert_eq!(Code::parse("no_such_code"), None);
    }
}
