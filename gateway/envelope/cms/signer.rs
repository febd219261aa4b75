//! SignerInfo parsing and signature verification.

use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use openssl::memcmp;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::x509::{X509, X509Name, X509Ref};

use super::ber::{CLASS_CONTEXT, INTEGER, NULL, OCTET_STRING, OID, Parser, SEQUENCE, SET, Tlv};
use super::error::CmsError;
use super::oid::{self, Oid};

/// A digest algorithm accepted for content hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// Human name, e.g. `"SHA-256"`.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha384 => "SHA-384",
            DigestAlgorithm::Sha512 => "SHA-512",
        }
    }

    pub(crate) fn message_digest(self) -> MessageDigest {
        match self {
            DigestAlgorithm::Sha256 => MessageDigest::sha256(),
            DigestAlgorithm::Sha384 => MessageDigest::sha384(),
            DigestAlgorithm::Sha512 => MessageDigest::sha512(),
        }
    }

    fn md(self) -> &'static MdRef {
        match self {
            DigestAlgorithm::Sha256 => Md::sha256(),
            DigestAlgorithm::Sha384 => Md::sha384(),
            DigestAlgorithm::Sha512 => Md::sha512(),
        }
    }

    fn from_oid(what: &'static str, oid: &[u8]) -> Result<Self, CmsError> {
        match oid {
            oid::SHA256 => Ok(DigestAlgorithm::Sha256),
            oid::SHA384 => Ok(DigestAlgorithm::Sha384),
            oid::SHA512 => Ok(DigestAlgorithm::Sha512),
            oid::SHA1 => Err(CmsError::WeakAlgorithm {
                name: "SHA-1".into(),
            }),
            oid::MD5 => Err(CmsError::WeakAlgorithm { name: "MD5".into() }),
            other => Err(CmsError::UnsupportedAlgorithm {
                what,
                oid: oid::dotted(other),
            }),
        }
    }

    /// Parses `AlgorithmIdentifier { OID, NULL or absent }`.
    pub(crate) fn from_algorithm_identifier(t: &Tlv<'_>) -> Result<Self, CmsError> {
        let (oid, params) = algorithm_identifier(t)?;
        let alg = Self::from_oid("digest", oid)?;
        require_null_or_absent(t, params)?;
        Ok(alg)
    }
}

/// Splits an AlgorithmIdentifier into its OID and optional parameters.
fn algorithm_identifier<'a>(t: &Tlv<'a>) -> Result<(&'a [u8], Option<Tlv<'a>>), CmsError> {
    if !t.header.is_universal(true, SEQUENCE) {
        return Err(t.err("expected an AlgorithmIdentifier SEQUENCE"));
    }
    let mut p = t.children();
    let oid = p.expect(false, OID, "algorithm OID")?;
    let params = p.next()?;
    p.finish("algorithm parameters")?;
    Ok((oid.content, params))
}

fn require_null_or_absent(t: &Tlv<'_>, params: Option<Tlv<'_>>) -> Result<(), CmsError> {
    match params {
        None => Ok(()),
        Some(p) if p.header.is_universal(false, NULL) && p.content.is_empty() => Ok(()),
        Some(_) => Err(t.err("algorithm parameters must be NULL or absent")),
    }
}

/// How the SignerInfo names its certificate.
#[derive(Debug, Clone)]
enum SignerId {
    IssuerSerial { issuer: Vec<u8>, serial: Vec<u8> },
    SubjectKeyId(Vec<u8>),
}

/// One parsed SignerInfo; algorithms are interpreted only at verification time so an
/// unsupported signer does not hide a supported one.
#[derive(Debug, Clone)]
pub struct SignerInfo {
    sid: SignerId,
    digest_alg: Vec<u8>,
    digest_params_ok: bool,
    /// The DER of signedAttrs re-tagged as SET OF (0x31), exactly as received otherwise.
    signed_attrs: Option<Vec<u8>>,
    signature_alg: Vec<u8>,
    signature_params: Option<Vec<u8>>,
    signature: Vec<u8>,
    offset: u64,
}

impl SignerInfo {
    pub(crate) fn parse(t: &Tlv<'_>) -> Result<Self, CmsError> {
        if !t.header.is_universal(true, SEQUENCE) {
            return Err(t.err("expected a SignerInfo SEQUENCE"));
        }
        let mut p = t.children();
        // Not interpreted: the sid form is what matters, and RFC 5652 readers must not fail on it.
        p.expect(false, INTEGER, "SignerInfo version")?;
        let sid_t = p.required("signer identifier")?;
        let sid = if sid_t.header.is_universal(true, SEQUENCE) {
            let mut q = sid_t.children();
            let issuer = q.expect(true, SEQUENCE, "issuer Name")?;
            let serial = q.expect(false, INTEGER, "serialNumber")?;
            q.finish("issuerAndSerialNumber")?;
            SignerId::IssuerSerial {
                issuer: issuer.raw.to_vec(),
                serial: serial.content.to_vec(),
            }
        } else if sid_t.header.is(CLASS_CONTEXT, false, 0) {
            SignerId::SubjectKeyId(sid_t.content.to_vec())
        } else {
            return Err(sid_t.err("unknown signer identifier form"));
        };
        let dig = p.required("digestAlgorithm")?;
        let (digest_oid, digest_params) = algorithm_identifier(&dig)?;
        let digest_params_ok = require_null_or_absent(&dig, digest_params).is_ok();
        let signed_attrs = match p.optional(CLASS_CONTEXT, true, 0)? {
            None => None,
            Some(a) => {
                // The signature covers the DER encoding; a BER (indefinite or non-minimal)
                // encoding could not be what was signed, so refuse rather than re-encode.
                if a.header.len.is_none() || !a.header.minimal_len {
                    return Err(a.err("signed attributes are not DER-encoded"));
                }
                let mut der = a.raw.to_vec();
                if let Some(first) = der.first_mut() {
                    *first = 0x31;
                }
                Some(der)
            }
        };
        let sig_t = p.required("signatureAlgorithm")?;
        let (sig_oid, sig_params) = algorithm_identifier(&sig_t)?;
        let signature = p.expect(false, OCTET_STRING, "signature OCTET STRING")?;
        // Unsigned attributes ([1]) carry nothing we rely on (e.g. counter-signatures).
        p.optional(CLASS_CONTEXT, true, 1)?;
        p.finish("SignerInfo")?;
        Ok(SignerInfo {
            sid,
            digest_alg: digest_oid.to_vec(),
            digest_params_ok,
            signed_attrs,
            signature_alg: sig_oid.to_vec(),
            signature_params: sig_params.map(|t| t.raw.to_vec()),
            signature: signature.content.to_vec(),
            offset: t.offset,
        })
    }

    /// Whether the signer identifier names `cert`.
    fn matches(&self, cert: &X509Ref) -> bool {
        match &self.sid {
            SignerId::SubjectKeyId(ski) => cert
                .subject_key_id()
                .is_some_and(|k| memcmp_eq(k.as_slice(), ski)),
            SignerId::IssuerSerial { issuer, serial } => {
                // A negative serial cannot name a certificate we accept.
                if serial.first().is_none_or(|b| b & 0x80 != 0) {
                    return false;
                }
                let Ok(want_serial) = BigNum::from_slice(serial) else {
                    return false;
                };
                let same_serial = cert
                    .serial_number()
                    .to_bn()
                    .is_ok_and(|s| s.ucmp(&want_serial).is_eq());
                let same_issuer = X509Name::from_der(issuer)
                    .is_ok_and(|n| n.try_cmp(cert.issuer_name()).is_ok_and(|o| o.is_eq()));
                same_serial && same_issuer
            }
        }
    }
}

fn memcmp_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && memcmp::eq(a, b)
}

/// Everything parsed after the content: certificates, computed digests and signers.
#[derive(Debug)]
pub struct SignedTrailer {
    content_type: Oid,
    certificates: Vec<X509>,
    digests: Vec<(DigestAlgorithm, Vec<u8>)>,
    signers: Vec<SignerInfo>,
}

/// The outcome of a successful [`SignedTrailer::verify_signature`].
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// The certificate whose key verified the signature.
    pub signer: X509,
    /// The other included certificates: chain candidates, not trusted by themselves.
    pub intermediates: Vec<X509>,
    /// Digest algorithm used by the signer, e.g. `"SHA-256"`.
    pub digest_algorithm: &'static str,
    /// Signature algorithm, e.g. `"RSA-PSS"`.
    pub signature_algorithm: &'static str,
}

/// The signature scheme resolved from signatureAlgorithm, the digest and the key.
enum Scheme {
    RsaPkcs1,
    RsaPss {
        mgf1: DigestAlgorithm,
        salt_len: u32,
    },
    Ecdsa,
    Ed25519,
}

impl Scheme {
    fn name(&self) -> &'static str {
        match self {
            Scheme::RsaPkcs1 => "RSA PKCS#1 v1.5",
            Scheme::RsaPss { .. } => "RSA-PSS",
            Scheme::Ecdsa => "ECDSA",
            Scheme::Ed25519 => "Ed25519",
        }
    }
}

impl SignedTrailer {
    pub(crate) fn new(
        content_type: Oid,
        certificates: Vec<X509>,
        digests: Vec<(DigestAlgorithm, Vec<u8>)>,
        signers: Vec<SignerInfo>,
    ) -> Self {
        SignedTrailer {
            content_type,
            certificates,
            digests,
            signers,
        }
    }

    /// Certificates included in the message, in order.
    pub fn certificates(&self) -> &[X509] {
        &self.certificates
    }

    /// The digests computed over the content, one per announced algorithm.
    pub fn digests(&self) -> &[(DigestAlgorithm, Vec<u8>)] {
        &self.digests
    }

    /// Number of SignerInfos.
    pub fn signer_count(&self) -> usize {
        self.signers.len()
    }

    /// Verifies the first SignerInfo that verifies; if none does, returns the first signer's
    /// error (a message normally has a single signer).
    ///
    /// The signer certificate is found among the included certificates only; whether it is
    /// trusted is the trust store's decision, not this one's.
    pub fn verify_signature(&self) -> Result<VerifiedSignature, CmsError> {
        let mut first_err = None;
        for s in &self.signers {
            match self.verify_one(s) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(CmsError::NoSigners))
    }

    /// Verifies every SignerInfo, in order; fails on the first that does not verify, with its
    /// position (1-based). For the gateway every signer speaks for the message, so each must
    /// verify (and then be trusted): one that cannot be checked cannot be shown to belong to
    /// the sending agency.
    pub fn verify_signatures(&self) -> Result<Vec<VerifiedSignature>, (usize, CmsError)> {
        if self.signers.is_empty() {
            return Err((0, CmsError::NoSigners));
        }
        self.signers
            .iter()
            .enumerate()
            .map(|(i, s)| self.verify_one(s).map_err(|e| (i + 1, e)))
            .collect()
    }

    fn verify_one(&self, s: &SignerInfo) -> Result<VerifiedSignature, CmsError> {
        let digest_alg = DigestAlgorithm::from_oid("digest", &s.digest_alg)?;
        if !s.digest_params_ok {
            return Err(CmsError::malformed(
                s.offset,
                "digest algorithm parameters must be NULL or absent",
            ));
        }
        let digest = self
            .digests
            .iter()
            .find(|(a, _)| *a == digest_alg)
            .map(|(_, d)| d.as_slice())
            .ok_or(CmsError::DigestNotComputed {
                name: digest_alg.name(),
            })?;
        let signer = self
            .certificates
            .iter()
            .find(|c| s.matches(c))
            .ok_or(CmsError::SignerCertificateNotFound)?;
        let key = signer
            .public_key()
            .map_err(|e| CmsError::crypto("reading the signer's public key", e))?;
        let scheme = resolve_scheme(s, digest_alg, &key)?;

        let ok = match &s.signed_attrs {
            Some(attrs) => {
                self.check_attributes(attrs, digest, s.offset)?;
                verify_message(&scheme, digest_alg, &key, attrs, &s.signature)
            }
            None => verify_digest(&scheme, digest_alg, &key, digest, &s.signature),
        };
        if !ok {
            return Err(CmsError::BadSignature {
                algorithm: scheme.name(),
            });
        }
        let intermediates = self
            .certificates
            .iter()
            .filter(|c| !std::ptr::eq(*c, signer))
            .cloned()
            .collect();
        Ok(VerifiedSignature {
            signer: signer.clone(),
            intermediates,
            digest_algorithm: digest_alg.name(),
            signature_algorithm: scheme.name(),
        })
    }

    /// RFC 5652 §5.3/§11: contentType and messageDigest must each be present exactly once,
    /// with a single value, and match.
    fn check_attributes(&self, attrs: &[u8], digest: &[u8], offset: u64) -> Result<(), CmsError> {
        let mut outer = Parser::new(attrs, offset);
        let set = outer.expect(true, SET, "signed attributes")?;
        outer.finish("signed attributes")?;
        let mut items = set.children();
        let mut content_type = None;
        let mut message_digest = None;
        while let Some(a) = items.next()? {
            if !a.header.is_universal(true, SEQUENCE) {
                return Err(a.err("expected an Attribute SEQUENCE"));
            }
            let mut p = a.children();
            let ty = p.expect(false, OID, "attribute type")?;
            let values = p.expect(true, SET, "attribute values")?;
            p.finish("Attribute")?;
            let (slot, name) = match ty.content {
                oid::ATTR_CONTENT_TYPE => (&mut content_type, "contentType"),
                oid::ATTR_MESSAGE_DIGEST => (&mut message_digest, "messageDigest"),
                _ => continue,
            };
            if slot.is_some() {
                return Err(CmsError::BadAttribute {
                    name,
                    problem: "present more than once",
                });
            }
            let mut v = values.children();
            let value = v.next()?.ok_or(CmsError::BadAttribute {
                name,
                problem: "empty",
            })?;
            if !v.is_empty() {
                return Err(CmsError::BadAttribute {
                    name,
                    problem: "multi-valued",
                });
            }
            *slot = Some(value);
        }
        let ct = content_type.ok_or(CmsError::BadAttribute {
            name: "contentType",
            problem: "missing",
        })?;
        if !ct.header.is_universal(false, OID) || ct.content != self.content_type.as_bytes() {
            return Err(CmsError::ContentTypeMismatch);
        }
        let md = message_digest.ok_or(CmsError::BadAttribute {
            name: "messageDigest",
            problem: "missing",
        })?;
        if !md.header.is_universal(false, OCTET_STRING) {
            return Err(CmsError::BadAttribute {
                name: "messageDigest",
                problem: "not an OCTET STRING",
            });
        }
        if !memcmp_eq(md.content, digest) {
            return Err(CmsError::DigestMismatch);
        }
        Ok(())
    }
}

/// The signature scheme a SignerInfo names, checked against its digest algorithm and the
/// signer's key.
fn resolve_scheme(
    s: &SignerInfo,
    digest: DigestAlgorithm,
    key: &PKeyRef<Public>,
) -> Result<Scheme, CmsError> {
    let scheme = scheme_of(s, digest)?;
    check_key_fits(s, &scheme, key)?;
    Ok(scheme)
}

/// The scheme named by `signatureAlgorithm` and its parameters: weak ones refused by name,
/// the hash it names required to be the digest algorithm's.
fn scheme_of(s: &SignerInfo, digest: DigestAlgorithm) -> Result<Scheme, CmsError> {
    let unsupported = |oid: &[u8]| CmsError::UnsupportedAlgorithm {
        what: "signature",
        oid: oid::dotted(oid),
    };
    let params_null_or_absent = match &s.signature_params {
        None => true,
        Some(p) => p.as_slice() == [0x05, 0x00],
    };
    let bad_params = || CmsError::malformed(s.offset, "unexpected signature algorithm parameters");
    let hash_must_match = |h: DigestAlgorithm| {
        if h == digest {
            Ok(())
        } else {
            Err(CmsError::malformed(
                s.offset,
                "signature algorithm hash differs from the digest algorithm",
            ))
        }
    };
    let scheme = match s.signature_alg.as_slice() {
        oid::RSA_ENCRYPTION => {
            params_null_or_absent.then_some(()).ok_or_else(bad_params)?;
            Scheme::RsaPkcs1
        }
        oid::SHA256_WITH_RSA | oid::SHA384_WITH_RSA | oid::SHA512_WITH_RSA => {
            params_null_or_absent.then_some(()).ok_or_else(bad_params)?;
            hash_must_match(hash_named_by(&s.signature_alg))?;
            Scheme::RsaPkcs1
        }
        oid::RSASSA_PSS => {
            let params = s
                .signature_params
                .as_deref()
                .ok_or_else(|| CmsError::WeakAlgorithm {
                    name: "RSA-PSS with default (SHA-1) parameters".into(),
                })?;
            let (hash, mgf1, salt_len) = parse_pss_params(params, s.offset)?;
            hash_must_match(hash)?;
            Scheme::RsaPss { mgf1, salt_len }
        }
        oid::ECDSA_SHA256 | oid::ECDSA_SHA384 | oid::ECDSA_SHA512 => {
            if s.signature_params.is_some() {
                return Err(bad_params());
            }
            hash_must_match(hash_named_by(&s.signature_alg))?;
            Scheme::Ecdsa
        }
        // Some signers put the key's OID here; the digest then comes from digestAlgorithm.
        oid::EC_PUBLIC_KEY => {
            params_null_or_absent.then_some(()).ok_or_else(bad_params)?;
            Scheme::Ecdsa
        }
        oid::ED25519 => {
            if s.signature_params.is_some() {
                return Err(bad_params());
            }
            if s.signed_attrs.is_none() {
                return Err(CmsError::UnsupportedAlgorithm {
                    what: "signature",
                    oid: "Ed25519 without signed attributes".into(),
                });
            }
            Scheme::Ed25519
        }
        oid::SHA1_WITH_RSA | oid::MD5_WITH_RSA | oid::ECDSA_SHA1 => {
            return Err(CmsError::WeakAlgorithm {
                name: oid::dotted(&s.signature_alg),
            });
        }
        other => return Err(unsupported(other)),
    };
    Ok(scheme)
}

/// The hash a `<hash>With<key>` signature algorithm names.
fn hash_named_by(signature_alg: &[u8]) -> DigestAlgorithm {
    match signature_alg {
        oid::SHA256_WITH_RSA | oid::ECDSA_SHA256 => DigestAlgorithm::Sha256,
        oid::SHA384_WITH_RSA | oid::ECDSA_SHA384 => DigestAlgorithm::Sha384,
        _ => DigestAlgorithm::Sha512,
    }
}

/// The key must fit the scheme (checked before the signature, so that a mismatch reads as
/// such, not as a bad signature), on a supported curve, and RSA keys at least 2048 bits.
fn check_key_fits(s: &SignerInfo, scheme: &Scheme, key: &PKeyRef<Public>) -> Result<(), CmsError> {
    let key_ok = match (scheme, key.id()) {
        (Scheme::RsaPkcs1, Id::RSA) => true,
        (Scheme::RsaPss { .. }, Id::RSA | Id::RSA_PSS) => true,
        (Scheme::Ecdsa, Id::EC) => {
            let nid = key.ec_key().ok().and_then(|k| k.group().curve_name());
            if !matches!(nid, Some(Nid::X9_62_PRIME256V1) | Some(Nid::SECP384R1)) {
                return Err(CmsError::UnsupportedAlgorithm {
                    what: "elliptic curve",
                    oid: "other than P-256/P-384".into(),
                });
            }
            true
        }
        (Scheme::Ed25519, Id::ED25519) => true,
        _ => false,
    };
    if !key_ok {
        return Err(CmsError::UnsupportedAlgorithm {
            what: "signature",
            oid: format!(
                "{} with a key of a different type",
                oid::dotted(&s.signature_alg)
            ),
        });
    }
    if matches!(scheme, Scheme::RsaPkcs1 | Scheme::RsaPss { .. }) && key.bits() < 2048 {
        return Err(CmsError::WeakAlgorithm {
            name: format!("RSA-{}", key.bits()),
        });
    }
    Ok(())
}

/// RSASSA-PSS-params (RFC 4055): the SHA-1 defaults are refused, so every field but the
/// trailer must be explicit.
fn parse_pss_params(
    der: &[u8],
    offset: u64,
) -> Result<(DigestAlgorithm, DigestAlgorithm, u32), CmsError> {
    let mut outer = Parser::new(der, offset);
    let seq = outer.expect(true, SEQUENCE, "RSASSA-PSS-params")?;
    outer.finish("RSASSA-PSS-params")?;
    let mut p = seq.children();
    let weak = |what: &str| CmsError::WeakAlgorithm {
        name: format!("RSA-PSS with the default SHA-1 {what}"),
    };
    let hash_t = p
        .optional(CLASS_CONTEXT, true, 0)?
        .ok_or_else(|| weak("hash"))?;
    let mut h = hash_t.children();
    let hash = DigestAlgorithm::from_algorithm_identifier(&h.required("PSS hash")?)?;
    h.finish("PSS hash")?;

    let mgf_t = p
        .optional(CLASS_CONTEXT, true, 1)?
        .ok_or_else(|| weak("mask generation"))?;
    let mut m = mgf_t.children();
    let mgf = m.required("PSS mask generation function")?;
    m.finish("PSS mask generation function")?;
    let (mgf_oid, mgf_params) = algorithm_identifier(&mgf)?;
    if mgf_oid != oid::MGF1 {
        return Err(CmsError::UnsupportedAlgorithm {
            what: "mask generation",
            oid: oid::dotted(mgf_oid),
        });
    }
    let mgf_hash_t = mgf_params.ok_or_else(|| mgf.err("MGF1 without a hash"))?;
    let mgf1 = DigestAlgorithm::from_algorithm_identifier(&mgf_hash_t)?;

    let salt_t = p
        .optional(CLASS_CONTEXT, true, 2)?
        .ok_or_else(|| weak("salt length"))?;
    let mut s = salt_t.children();
    let salt = s.expect(false, INTEGER, "PSS salt length")?;
    s.finish("PSS salt length")?;
    let salt_len = small_uint(salt.content).ok_or_else(|| salt.err("bad PSS salt length"))?;

    if let Some(trailer_t) = p.optional(CLASS_CONTEXT, true, 3)? {
        let mut t = trailer_t.children();
        let tf = t.expect(false, INTEGER, "PSS trailer field")?;
        t.finish("PSS trailer field")?;
        if tf.content != [1] {
            return Err(tf.err("PSS trailer field must be 1"));
        }
    }
    p.finish("RSASSA-PSS-params")?;
    Ok((hash, mgf1, salt_len))
}

/// A non-negative INTEGER below 2^16 (salt lengths are small).
fn small_uint(content: &[u8]) -> Option<u32> {
    match content {
        [b] if b & 0x80 == 0 => Some(u32::from(*b)),
        [0, b] if b & 0x80 != 0 => Some(u32::from(*b)),
        [a, b] if a & 0x80 == 0 && *a != 0 => Some(u32::from(*a) << 8 | u32::from(*b)),
        _ => None,
    }
}

/// Verifies a signature over `message` (the signed attributes); failures of any kind are a
/// rejection, never a panic.
fn verify_message(
    scheme: &Scheme,
    digest: DigestAlgorithm,
    key: &PKeyRef<Public>,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let run = || -> Result<bool, openssl::error::ErrorStack> {
        if let Scheme::Ed25519 = scheme {
            let mut v = Verifier::new_without_digest(key)?;
            return v.verify_oneshot(sig, message);
        }
        let mut v = Verifier::new(digest.message_digest(), key)?;
        if let Scheme::RsaPss { mgf1, salt_len } = scheme {
            v.set_rsa_padding(Padding::PKCS1_PSS)?;
            v.set_rsa_mgf1_md(mgf1.message_digest())?;
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt_len_i32(*salt_len)))?;
        } else if let Scheme::RsaPkcs1 = scheme {
            v.set_rsa_padding(Padding::PKCS1)?;
        }
        v.update(message)?;
        v.verify(sig)
    };
    run().unwrap_or(false)
}

/// Verifies a signature over a precomputed content digest (no signed attributes).
fn verify_digest(
    scheme: &Scheme,
    digest_alg: DigestAlgorithm,
    key: &PKeyRef<Public>,
    digest: &[u8],
    sig: &[u8],
) -> bool {
    let run = || -> Result<bool, openssl::error::ErrorStack> {
        let owned: PKey<Public> = key.to_owned();
        let mut ctx = PkeyCtx::new(&owned)?;
        ctx.verify_init()?;
        ctx.set_signature_md(digest_alg.md())?;
        match scheme {
            Scheme::RsaPss { mgf1, salt_len } => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                ctx.set_rsa_mgf1_md(mgf1.md())?;
                ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt_len_i32(*salt_len)))?;
            }
            Scheme::RsaPkcs1 => ctx.set_rsa_padding(Padding::PKCS1)?,
            Scheme::Ecdsa => {}
            Scheme::Ed25519 => return Ok(false),
        }
        ctx.verify(digest, sig)
    };
    run().unwrap_or(false)
}

fn salt_len_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
