//! Self-signed certificates for the development key set (`gateway keys init`).

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An agency's CMS signing certificate.
    Signing,
    /// The gateway's receipt-signing certificate.
    Receipt,
    /// The gateway's TLS server certificate (localhost, 127.0.0.1).
    TlsServer,
}

/// A fresh EC P-256 key.
pub fn new_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// A self-signed certificate for `key`, valid from now for `days`.
pub fn self_signed(
    key: &PKey<Private>,
    common_name: &str,
    organization: &str,
    purpose: Purpose,
    days: u32,
) -> Result<X509, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, organization)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(days)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    match purpose {
        Purpose::Signing | Purpose::Receipt => {
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .non_repudiation()
                    .build()?,
            )?;
            b.append_extension(ExtendedKeyUsage::new().email_protection().build()?)?;
        }
        Purpose::TlsServer => {
            b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .ip("::1")
                .build(&b.x509v3_context(None, None))?;
            b.append_extension(san)?;
        }
    }
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

/// Lowercase hex SHA-256 of the certificate's DER: how certificates are named and pinned.
pub fn fingerprint(cert: &openssl::x509::X509Ref) -> Result<String, ErrorStack> {
    Ok(hex::encode(cert.digest(MessageDigest::sha256())?))
}
