//! What a sender is told when a payload is refused: a stable code, a sentence that says what
//! to do, and for XML problems every location (line, column, XML path).

use serde::Serialize;

/// One located problem in the XML.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
    /// One of the stable codes of the product contract (`signature_invalid`...).
    pub code: &'static str,
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
    pub fn new(code: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            code,
            detail: detail.into(),
            action: action(code),
            violations: Vec::new(),
            truncated: false,
        }
    }

    /// Whether the sender may simply try again later (our side failed, not the payload).
    pub fn retryable(&self) -> bool {
        matches!(self.code, "queue_unavailable" | "busy")
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// The advice that goes with each code.
pub fn action(code: &str) -> &'static str {
    match code {
        "payload_too_large" => {
            "split the extract into smaller messages, or ask the hub to raise this agency's size limit"
        }
        "not_age_encrypted" => {
            "encrypt the signed file with age to the gateway's recipient (`gateway recipient`), e.g. `age -r age1... signed.p7m > file.sealed`"
        }
        "no_matching_key" => {
            "the file was encrypted to a recipient the gateway does not hold (an old or wrong key): fetch the current recipient and seal again"
        }
        "decrypt_failed" => "the encrypted file is damaged or truncated: seal and send it again",
        "not_signed" => {
            "sign the XML as CMS SignedData with the content attached (`openssl cms -sign -binary -nodetach -outform DER ...`) before encrypting"
        }
        "signature_invalid" => {
            "the signature does not match the content: the file changed after signing or the signature is malformed; sign the final XML again"
        }
        "signer_unknown" => {
            "the signing certificate is not registered for any agency: ask the hub to register it (`gateway agency cert add`)"
        }
        "certificate_expired" => {
            "the signing certificate is outside its validity period: sign with a current certificate"
        }
        "certificate_not_yet_valid" => {
            "the signing certificate is not valid yet (its start is in the future, or the hub registered it to start later): sign with the current certificate until then, and check the signing machine's clock"
        }
        "certificate_revoked" => {
            "the signing certificate has been revoked: sign with a certificate that is still valid"
        }
        "agency_mismatch" => {
            "the payload is signed with another agency's certificate: sign with your own agency's certificate or send it through that agency's channel"
        }
        "xml_malformed" => {
            "the document is not well-formed XML: fix it at the line and column given"
        }
        "dtd_forbidden" => "remove the DOCTYPE declaration: DTDs and entities are not accepted",
        "xml_limit_exceeded" => {
            "the document exceeds an XML safety limit (depth, attributes, sizes): simplify the structure or split the message"
        }
        "schema_unknown_root" => {
            "no schema in the catalog has this root element: check the namespace and element name, or ask the hub to register the schema"
        }
        "schema_not_allowed" => {
            "this agency may not send this message type: check the root element, or ask the hub to allow it"
        }
        "schema_invalid" => {
            "the document does not match its schema: fix each violation at the line, column and path given"
        }
        "duplicate" => {
            "this message id was already used for different content: give the new message a new id"
        }
        "not_a_regular_file" => {
            "drop the sealed file itself into the folder, not a link to it or a folder"
        }
        "queue_unavailable" => {
            "the gateway could not store the message; nothing was kept: send it again later"
        }
        "busy" => {
            "the gateway (or this agency's share of it) is receiving as many uploads as it may; nothing was kept: send again after the Retry-After seconds"
        }
        "unauthenticated" => {
            "authenticate with your agency's bearer token or its registered client certificate"
        }
        "forbidden" => "use one agency's credentials only, and only for that agency's messages",
        "not_found" => "check the message id; only the agency that sent a message can see it",
        "request_timeout" => "send the payload again on a faster or steadier connection",
        "malformed_request" => {
            "the request is not valid HTTP (a malformed chunk size, oversized trailers...): fix the client or its proxy; sending the same request again will fail the same way"
        }
        "interrupted" => "processing was interrupted by a restart: send the message again",
        _ => "see the detail",
    }
}

/// Every stable code a sender can see.
pub const CODES: [&str; 28] = [
    "not_a_regular_file",
    "payload_too_large",
    "not_age_encrypted",
    "no_matching_key",
    "decrypt_failed",
    "not_signed",
    "signature_invalid",
    "signer_unknown",
    "certificate_expired",
    "certificate_not_yet_valid",
    "certificate_revoked",
    "agency_mismatch",
    "xml_malformed",
    "dtd_forbidden",
    "xml_limit_exceeded",
    "schema_unknown_root",
    "schema_not_allowed",
    "schema_invalid",
    "duplicate",
    "unauthenticated",
    "forbidden",
    "queue_unavailable",
    "busy",
    "not_found",
    "request_timeout",
    "malformed_request",
    "interrupted",
    "io_error",
];

/// The static form of a code read back from the ledger (unknown codes become `queue_unavailable`).
pub fn stable_code(code: &str) -> &'static str {
    CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("queue_unavailable")
}
