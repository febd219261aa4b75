//! The envelope: a sealed payload moving through its stages, as type-states.
//!
//! `Envelope<Received>` → [`Envelope::open`] (age) → `Envelope<Opened>` →
//! [`Envelope::verify_and_validate`] → `Envelope<Validated>`. Skipping a stage does not compile.
//!
//! Verification and validation are one stage in the types because they are one pass over the
//! bytes: the CMS reader hands the signed content to a tap (SHA-256, spool) and on to the XSD
//! engine while the digests for the signature accumulate; the signature and the signer's
//! certificate can only be checked once the SignerInfo, which follows the content, has been
//! read. Memory stays bounded whatever the payload size. The precedence of verdicts follows
//! trust: a decryption or signature failure is reported before any XML finding, since the XML
//! of an unauthenticated payload means nothing.

pub mod cms;
pub mod decrypt;
mod excerpt;
mod tap;

use std::io::{self, BufReader, Read, Write};
use std::time::SystemTime;

use crate::keyring::trust::TrustedSigner;
use crate::keyring::{Identities, TrustStore};
use crate::rejection::Code;
use crate::rejection::{Located, Rejection};
use crate::validation::Catalog;
use crate::validation::root::{PeekError, peek_root};

/// A payload as received: sealed bytes from an authenticated channel.
pub struct Received<R> {
    input: R,
}

/// Decrypted (stream not yet fully authenticated).
pub struct Opened<R: Read> {
    plaintext: decrypt::Plaintext<R>,
    identity: String,
}

/// Signature, certificate and schema all passed; the content is in the spool.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Who signed it: every signer, in the order of the SignerInfos (never empty), each
    /// trusted for the sending agency.
    pub signers: Vec<TrustedSigner>,
    /// Catalog id of the schema it is valid against.
    pub schema_id: String,
    /// The root element, `{namespace}local`.
    pub root: String,
    /// The agency's own message id, from the document.
    pub agency_message_id: Option<String>,
    /// SHA-256 (hex) of the XML.
    pub sha256: String,
    /// Size of the XML in bytes.
    pub size: u64,
    /// The XML's encoding as read (`UTF-8`, `UTF-16LE`, `windows-1252`...): the bytes are
    /// forwarded as signed, in this encoding.
    pub encoding: String,
}

impl Validated {
    /// Every signer's certificate fingerprint (SHA-256, lowercase hex), in signing order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.signers
            .iter()
            .map(|s| s.fingerprint_sha256.clone())
            .collect()
    }
}

/// A payload at stage `S`, from `agency` (as authenticated by its channel).
#[derive(Debug)]
pub struct Envelope<S> {
    /// The agency the channel authenticated.
    pub agency: String,
    /// What this stage knows.
    pub state: S,
}

/// What verification and validation need.
pub struct Checks<'a> {
    /// Per-agency trust.
    pub trust: &'a TrustStore,
    /// Schemas by root element.
    pub catalog: &'a Catalog,
    /// Payload bounds.
    pub limits: &'a crate::config::Limits,
    /// The time certificates are checked at.
    pub now: SystemTime,
}

impl<R: Read> Envelope<Received<R>> {
    /// A payload received from `agency`.
    pub fn received(agency: &str, input: R) -> Self {
        Envelope {
            agency: agency.to_owned(),
            state: Received { input },
        }
    }

    /// Decrypts with one of the gateway's active identities.
    pub fn open(self, identities: &Identities) -> Result<Envelope<Opened<R>>, Rejection> {
        let (plaintext, identity) = decrypt::decrypt(self.state.input, identities)?;
        Ok(Envelope {
            agency: self.agency,
            state: Opened {
                plaintext,
                identity,
            },
        })
    }
}

/// An I/O failure of the content stream, as the sender should hear of it.
fn stream_failure(e: io::Error) -> Rejection {
    match cms::CmsError::from_io(e) {
        // Anything below the CMS layer is the age stream: a chunk failed to authenticate, or
        // the file ended early.
        cms::CmsError::Io(e) => Rejection::new(
            Code::DecryptFailed,
            format!("the encrypted stream is damaged or truncated ({e})"),
        ),
        c => cms_rejection(&c),
    }
}

fn cms_rejection(e: &cms::CmsError) -> Rejection {
    Rejection::new(e.code(), e.to_string())
}

/// A CMS reader's failure: a read error of the stream beneath, or the CMS structure's own.
fn cms_failure(e: cms::CmsError) -> Rejection {
    match e {
        cms::CmsError::Io(e) => stream_failure(e),
        e => cms_rejection(&e),
    }
}

fn xml_rejection(e: &xsd::xml::XmlError) -> Rejection {
    let mut r = Rejection::new(Code::from(e.kind), e.message.clone());
    // Before the root opened: a problem in the root's start tag is placed at the root.
    let (line, column, path) = match &e.element {
        Some(el) => (el.line, el.column, format!("/{}", el.name)),
        None => (e.line, e.column, "/".to_owned()),
    };
    r.violations.push(Located {
        code: e.kind.code().to_owned(),
        message: e.message.clone(),
        line,
        column,
        path,
    });
    r
}

/// The verdict on a validation report, `None` when valid.
fn report_rejection(report: &xsd::Report, schema_id: &str) -> Option<Rejection> {
    if report.is_valid() {
        return None;
    }
    // Well-formedness and safety findings stop the reader: they name the problem better than
    // `schema_invalid` does.
    let code = report
        .violations
        .iter()
        .filter_map(|v| Code::parse(v.code))
        .find(|c| {
            matches!(
                c,
                Code::XmlMalformed | Code::DtdForbidden | Code::XmlLimitExceeded
            )
        })
        .unwrap_or(Code::SchemaInvalid);
    let n = report.violations.len();
    let mut r = Rejection::new(
        code,
        format!(
            "{n}{} violation{} of schema {schema_id}",
            if report.truncated { "+" } else { "" },
            if n == 1 { "" } else { "s" }
        ),
    );
    r.truncated = report.truncated;
    r.violations = report
        .violations
        .iter()
        .map(|v| Located {
            code: v.code.to_owned(),
            message: v.message.clone(),
            line: v.line,
            column: v.column,
            path: v.path.clone(),
        })
        .collect();
    Some(r)
}

impl<R: Read + Send> Envelope<Opened<R>> {
    /// The id of the gateway identity that opened it.
    pub fn opened_with(&self) -> &str {
        &self.state.identity
    }

    /// Verifies the signature and the signer, and validates the XML, in one pass; the content
    /// is copied into `spool` as it goes (discard the spool unless this returns `Ok`).
    pub fn verify_and_validate(
        self,
        checks: &Checks<'_>,
        spool: &mut (dyn Write + Send),
    ) -> Result<Envelope<Validated>, Rejection> {
        let agency = self.agency;
        let mut signed = cms::SignedDataReader::new(self.state.plaintext).map_err(cms_failure)?;
        let (tx, chunks) = tap::ChunkReader::channel();
        // Most messages are small: when the whole content fits in the first read, hash,
        // spool and validate it on this thread; a thread per message costs more than the
        // message. Larger content streams through the producer thread.
        let mut first = Vec::new();
        if let Err(e) = (&mut signed)
            .take(tap::INLINE as u64 + 1)
            .read_to_end(&mut first)
        {
            return Err(stream_failure(e));
        }
        let (content, produced) = if first.len() <= tap::INLINE {
            let produced = tap::produce(io::Cursor::new(first), spool, tx);
            (validate_content(&agency, chunks, checks), Ok(produced))
        } else {
            std::thread::scope(|scope| {
                let rest = io::Cursor::new(first).chain(&mut signed);
                let producer = scope.spawn(|| tap::produce(rest, spool, tx));
                let content = validate_content(&agency, chunks, checks);
                (content, producer.join())
            })
        };
        let produced = match produced {
            Ok(p) => p,
            Err(_) => {
                return Err(Rejection::new(
                    Code::InternalError,
                    "internal error while reading the payload",
                ));
            }
        };
        if let Some(e) = produced.read_error {
            return Err(stream_failure(e));
        }
        if let Some(e) = produced.spool_error {
            return Err(Rejection::new(
                Code::QueueUnavailable,
                format!("the gateway could not stage the message: {e}"),
            ));
        }
        let (sha256, size) = (produced.sha256, produced.size);
        let trailer = signed.finish().map_err(cms_failure)?;
        let signers = verify_signers(&trailer, checks, &agency)?;
        let (schema_id, root, report) = content?;
        if let Some(r) = report_rejection(&report, &schema_id) {
            return Err(r);
        }
        Ok(Envelope {
            agency,
            state: Validated {
                signers,
                schema_id,
                root,
                agency_message_id: report.captured.into_iter().next().flatten(),
                sha256,
                size,
                encoding: report.encoding.to_owned(),
            },
        })
    }
}

impl<R: Read> Envelope<Opened<R>> {
    /// The agencies the signers' certificates are registered for, after checking every
    /// signature; the content is read and dropped. For a channel that learns the agency from
    /// the signature (mail): the payload then goes through the pipeline as that agency's, where
    /// the signer is checked in full (validity, revocation) and the XML validated.
    pub fn signing_agencies(self, trust: &TrustStore) -> Result<Vec<String>, Rejection> {
        let mut signed = cms::SignedDataReader::new(self.state.plaintext).map_err(cms_failure)?;
        io::copy(&mut signed, &mut io::sink()).map_err(stream_failure)?;
        let trailer = signed.finish().map_err(cms_failure)?;
        let sigs = trailer
            .verify_signatures()
            .map_err(|(_, e)| Rejection::new(e.code(), e.to_string()))?;
        let mut agencies: Vec<String> = Vec::new();
        for sig in &sigs {
            let of = trust.agencies_of(&sig.signer, &sig.intermediates);
            if of.is_empty() {
                let subject = crate::keyring::trust::one_line(sig.signer.subject_name());
                return Err(Rejection::new(
                    Code::SignerUnknown,
                    format!(
                        "the signing certificate ({subject}) is not registered for any agency: sign with the certificate the hub registered for you"
                    ),
                ));
            }
            for a in of {
                if !agencies.contains(&a) {
                    agencies.push(a);
                }
            }
        }
        Ok(agencies)
    }
}

/// Verifies every signature and checks every signer against the agency's trust: a message
/// signed by several must not be accepted on the strength of one of them, with the others
/// belonging to another agency (or to nobody), nor recorded under the first alone.
fn verify_signers(
    trailer: &cms::SignedTrailer,
    checks: &Checks<'_>,
    agency: &str,
) -> Result<Vec<TrustedSigner>, Rejection> {
    let n = trailer.signer_count();
    // Which signer is at fault, when there are several.
    let which = |i: usize, detail: String| {
        if n > 1 {
            format!("signer {i} of {n}: {detail}")
        } else {
            detail
        }
    };
    let sigs = trailer
        .verify_signatures()
        .map_err(|(i, e)| Rejection::new(e.code(), which(i, e.to_string())))?;
    sigs.iter()
        .enumerate()
        .map(|(i, sig)| {
            checks
                .trust
                .check(agency, &sig.signer, &sig.intermediates, checks.now)
                .map_err(|e| Rejection::new(e.code(), which(i + 1, e.to_string())))
        })
        .collect()
}

/// Checks a plain (unsealed) XML document as the pipeline would after opening it: the schema
/// `agency` may send for its root, and every violation, in the same words. The agent runs it
/// before sealing, against the schemas the hub published, to catch a bad extract at the source.
/// The schema id it is valid against.
pub fn check_plain<R: Read>(
    agency: &str,
    input: R,
    catalog: &Catalog,
    limits: &crate::config::Limits,
) -> Result<String, Rejection> {
    let input = BufReader::with_capacity(64 * 1024, input);
    let (schema_id, _, report) = validate_plain(agency, input, catalog, limits)?;
    match report_rejection(&report, &schema_id) {
        Some(r) => Err(r),
        None => Ok(schema_id),
    }
}

/// Finds the root, picks the schema the agency may send, and validates.
fn validate_content<R: Read>(
    agency: &str,
    mut chunks: R,
    checks: &Checks<'_>,
) -> Result<(String, String, xsd::Report), Rejection> {
    validate_plain(agency, &mut chunks, checks.catalog, checks.limits)
}

/// Finds the root of the XML `input`, picks the schema `agency` may send from `catalog`, and
/// validates within `limits`: the schema id, the root, and the report.
fn validate_plain<R: Read>(
    agency: &str,
    mut chunks: R,
    catalog: &Catalog,
    limits: &crate::config::Limits,
) -> Result<(String, String, xsd::Report), Rejection> {
    let (root, prefix) = match peek_root(&mut chunks, &limits.xml) {
        Ok(r) => r,
        Err(PeekError::Xml(e)) => return Err(xml_rejection(&e)),
        // The tap kept the cause; the caller reports it.
        Err(PeekError::Io(e)) => return Err(Rejection::new(Code::DecryptFailed, e.to_string())),
    };
    let Some(entry) = catalog.lookup(&root) else {
        return Err(Rejection::new(
            Code::SchemaUnknownRoot,
            format!("no schema in the catalog has the root element {root}"),
        ));
    };
    if !entry.agencies.iter().any(|a| a == agency) {
        return Err(Rejection::new(
            Code::SchemaNotAllowed,
            format!(
                "agency {agency} may not send {root} (schema {}; allowed: {})",
                entry.id,
                entry.agencies.join(", ")
            ),
        ));
    }
    let opts = xsd::Options {
        limits: limits.xml.clone(),
        max_errors: limits.max_errors,
        capture: entry.message_id.clone().into_iter().collect(),
        sensitive: entry.sensitive.clone(),
        ..xsd::Options::default()
    };
    let input = BufReader::with_capacity(64 * 1024, io::Cursor::new(prefix).chain(chunks));
    let report = entry.schema.validate(input, &opts);
    Ok((entry.id.clone(), root.to_string(), report))
}
