//! The receipt signature, encoded directly: a detached CMS SignedData (RFC 5652) with one
//! signer, its certificate, and the three signed attributes OpenSSL's `CMS_sign` puts in a
//! detached binary signature (content type, signing time, message digest).
//!
//! Why not `CMS_sign`: it rebuilds per signature what never changes (a copy of the certificate,
//! the issuer and serial, provider look-ups for the default digest), which made signing a
//! receipt 7% of the server's CPU under `bench/load.sh`, three times the ECDSA signature itself
//! (`perf record --call-graph=dwarf -p`, see docs/benchmarks.md). Here the unchanging parts are
//! encoded once, and each receipt costs a SHA-256, one signature and a few hundred bytes of
//! DER. The output has the same structure as `CMS_sign`'s (checked by a test against OpenSSL's
//! own parse and by `openssl cms -verify` in the integration tests). Only EC keys take this
//! path (`ecdsa-with-SHA256`); other key types go through `CMS_sign`.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509Ref;
use time::OffsetDateTime;

use crate::envelope::cms::ber::tlv;
use crate::envelope::cms::oid::{
    ATTR_CONTENT_TYPE, ATTR_MESSAGE_DIGEST, ATTR_SIGNING_TIME, ECDSA_SHA256, ID_DATA, SHA256,
    SIGNED_DATA,
};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]`, constructed: explicit content, implicit certificate set and signed attributes.
const CONTEXT_0: u8 = 0xA0;

/// The parts of every signature that depend only on the key and certificate, encoded once.
pub(super) struct Template {
    /// The certificate, DER.
    certificate: Vec<u8>,
    /// `IssuerAndSerialNumber` of the certificate.
    signer_id: Vec<u8>,
}

impl Template {
    /// The template for `key` and `cert`, or `None` when this key type is not handled here.
    pub(super) fn new(key: &PKey<Private>, cert: &X509Ref) -> Result<Option<Template>, ErrorStack> {
        if key.id() != Id::EC {
            return Ok(None);
        }
        let serial = cert.serial_number().to_bn()?;
        if serial.is_negative() {
            return Ok(None);
        }
        let mut serial_octets = serial.to_vec();
        // INTEGER is two's complement: a leading 0 keeps a positive number positive.
        if serial_octets.first().is_none_or(|b| b & 0x80 != 0) {
            serial_octets.insert(0, 0);
        }
        let signer_id = tlv(
            SEQUENCE,
            &[cert.issuer_name().to_der()?, tlv(INTEGER, &serial_octets)].concat(),
        );
        Ok(Some(Template {
            certificate: cert.to_der()?,
            signer_id,
        }))
    }

    /// A detached SignedData over `content`, signed by `key` at `now`.
    pub(super) fn sign(
        &self,
        key: &PKey<Private>,
        content: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, ErrorStack> {
        let sha256 = tlv(SEQUENCE, &tlv(OID, SHA256));
        // DER orders a SET OF by encoding; these three are in that order whatever their values
        // (their lengths differ, and the time's length is fixed for a given time type).
        let attributes = [
            attribute(ATTR_CONTENT_TYPE, &tlv(OID, ID_DATA)),
            attribute(ATTR_SIGNING_TIME, &signing_time(now)),
            attribute(
                ATTR_MESSAGE_DIGEST,
                &tlv(OCTET_STRING, &openssl::sha::sha256(content)),
            ),
        ]
        .concat();
        // The signature covers the attributes encoded as a SET (RFC 5652 §5.4).
        let mut signer = Signer::new(MessageDigest::sha256(), key)?;
        let signature = signer.sign_oneshot_to_vec(&tlv(SET, &attributes))?;
        let signer_info = tlv(
            SEQUENCE,
            &[
                tlv(INTEGER, &[1]),
                self.signer_id.clone(),
                sha256.clone(),
                tlv(CONTEXT_0, &attributes),
                tlv(SEQUENCE, &tlv(OID, ECDSA_SHA256)),
                tlv(OCTET_STRING, &signature),
            ]
            .concat(),
        );
        let signed_data = tlv(
            SEQUENCE,
            &[
                tlv(INTEGER, &[1]),
                tlv(SET, &sha256),
                tlv(SEQUENCE, &tlv(OID, ID_DATA)),
                tlv(CONTEXT_0, &self.certificate),
                tlv(SET, &signer_info),
            ]
            .concat(),
        );
        Ok(tlv(
            SEQUENCE,
            &[tlv(OID, SIGNED_DATA), tlv(CONTEXT_0, &signed_data)].concat(),
        ))
    }
}

/// `SEQUENCE { type, SET { value } }`.
fn attribute(oid: &[u8], value: &[u8]) -> Vec<u8> {
    tlv(SEQUENCE, &[tlv(OID, oid), tlv(SET, value)].concat())
}

/// UTCTime from 1950 to 2049, GeneralizedTime otherwise (RFC 5652 §11.3), to the second, UTC.
fn signing_time(now: OffsetDateTime) -> Vec<u8> {
    let t = now.to_offset(time::UtcOffset::UTC);
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if (1950..2050).contains(&t.year()) {
        tlv(UTC_TIME, format!("{:02}{rest}", t.year() % 100).as_bytes())
    } else {
        tlv(
            GENERALIZED_TIME,
            format!("{:04}{rest}", t.year()).as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::cms::{CMSOptions, CmsContentInfo};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509, X509Name};

    fn key_and_cert(curve: Nid, serial: &[u8]) -> (PKey<Private>, X509) {
        let key =
            PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(curve).unwrap()).unwrap())
                .unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "gateway receipts").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = openssl::bn::BigNum::from_slice(serial).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (key, b.build())
    }

    fn verify(der: &[u8], cert: &X509, content: &[u8]) -> Result<(), ErrorStack> {
        let mut cms = CmsContentInfo::from_der(der)?;
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(cert.clone()).unwrap();
        let store = store.build();
        let certs = Stack::new().unwrap();
        cms.verify(
            Some(&certs),
            Some(&store),
            Some(content),
            None,
            CMSOptions::BINARY | CMSOptions::NO_SIGNER_CERT_VERIFY,
        )
    }

    #[test]
    fn openssl_verifies_the_signature_and_rejects_other_content() {
        // A serial with its high bit set needs the leading zero; P-384 signs with SHA-256 too.
        for (curve, serial) in [
            (Nid::X9_62_PRIME256V1, &[0x01, 0x02][..]),
            (Nid::SECP384R1, &[0x80, 0x00, 0x01][..]),
        ] {
            let (key, cert) = key_and_cert(curve, serial);
            let t = Template::new(&key, &cert).unwrap().unwrap();
            let content = b"{\"gateway_message_id\":\"m1\"}\n";
            let der = t.sign(&key, content, OffsetDateTime::now_utc()).unwrap();
            verify(&der, &cert, content).unwrap();
            assert!(verify(&der, &cert, b"{\"gateway_message_id\":\"m2\"}\n").is_err());
        }
    }

    #[test]
    fn the_encoding_is_cms_signs_apart_from_time_and_signature() {
        let (key, cert) = key_and_cert(Nid::X9_62_PRIME256V1, &[0x42]);
        let content = b"receipt";
        let flags = CMSOptions::BINARY | CMSOptions::DETACHED | CMSOptions::NOSMIMECAP;
        let template = Template::new(&key, &cert).unwrap().unwrap();
        // ECDSA signatures vary in length (70-72 bytes usually, less when a value starts with a
        // zero byte): keep signatures of ours by length, then sign with cms_sign until one has a
        // length we hold. Every other byte must be equal once time and signature are blanked.
        let mut ours = std::collections::HashMap::new();
        for _ in 0..64 {
            let der = template
                .sign(&key, content, OffsetDateTime::now_utc())
                .unwrap();
            ours.insert(der.len(), der);
        }
        let (ours, theirs) = (0..64)
            .map(|_| {
                CmsContentInfo::sign(Some(&cert), Some(&key), None, Some(content), flags)
                    .unwrap()
                    .to_der()
                    .unwrap()
            })
            .find_map(|theirs| Some((ours.get(&theirs.len())?.clone(), theirs)))
            .unwrap();
        let blank = |der: &[u8]| {
            let mut der = der.to_vec();
            let find = |der: &[u8], needle: &[u8]| {
                der.windows(needle.len())
                    .rposition(|w| w == needle)
                    .unwrap()
            };
            let time = find(&der, &tlv(OID, ATTR_SIGNING_TIME)) + 11 + 2 + 2;
            der[time..time + 13].fill(0);
            let sig = find(&der, &tlv(OID, ECDSA_SHA256)) + 10 + 2;
            der[sig..].fill(0);
            der
        };
        assert_eq!(blank(&ours), blank(&theirs));
    }

    #[test]
    fn signing_time_switches_to_generalized_time_in_2050() {
        let at = |y| {
            OffsetDateTime::from_unix_timestamp(0)
                .unwrap()
                .replace_year(y)
                .unwrap()
        };
        assert_eq!(signing_time(at(2049)), tlv(UTC_TIME, b"490101000000Z"));
        assert_eq!(
            signing_time(at(2050)),
            tlv(GENERALIZED_TIME, b"20500101000000Z")
        );
        assert_eq!(signing_time(at(1950)), tlv(UTC_TIME, b"500101000000Z"));
    }

    #[test]
    fn long_lengths_use_the_fewest_octets() {
        assert_eq!(tlv(OCTET_STRING, &[7; 0x7F])[..2], [0x04, 0x7F]);
        assert_eq!(tlv(OCTET_STRING, &[7; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(
            tlv(OCTET_STRING, &[7; 0x1234])[..4],
            [0x04, 0x82, 0x12, 0x34]
        );
    }

    #[test]
    fn other_key_types_are_left_to_cms_sign() {
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let (_, cert) = key_and_cert(Nid::X9_62_PRIME256V1, &[1]);
        assert!(Template::new(&rsa, &cert).unwrap().is_none());
    }
}
