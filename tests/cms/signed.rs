//! End-to-end tests against blobs signed by `openssl cms -sign`.

use std::time::{Duration, SystemTime};

use super::pki::{Pki, decide, read_all, verify};
use gateway::envelope::cms::SignedDataReader;
use gateway::keyring::trust::AgencyTrust;

fn content(n: usize) -> Vec<u8> {
    let mut v = b"<?xml version=\"1.0\"?>\n<message>".to_vec();
    v.extend((0..n).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"</message>\n");
    v
}

const DER: &[&str] = &["-binary", "-nodetach"];
const STREAM: &[&str] = &["-binary", "-nodetach", "-stream"];

fn flags<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn accepted_variants_return_exact_content() {
    let pki = Pki::get();
    let store = pki.store();
    let data = content(20_000);
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("rsa", &["-md", "sha256"], "SHA-256", "RSA PKCS#1 v1.5"),
        ("rsa", &["-md", "sha384"], "SHA-384", "RSA PKCS#1 v1.5"),
        (
            "rsa",
            &["-md", "sha512", "-keyid"],
            "SHA-512",
            "RSA PKCS#1 v1.5",
        ),
        ("rsa", &["-noattr"], "SHA-256", "RSA PKCS#1 v1.5"),
        (
            "rsa",
            &["-keyopt", "rsa_padding_mode:pss"],
            "SHA-256",
            "RSA-PSS",
        ),
        (
            "rsa",
            &[
                "-keyopt",
                "rsa_padding_mode:pss",
                "-noattr",
                "-md",
                "sha384",
            ],
            "SHA-384",
            "RSA-PSS",
        ),
        ("ec256", &[], "SHA-256", "ECDSA"),
        ("ec256", &["-noattr", "-keyid"], "SHA-256", "ECDSA"),
        ("ec384", &["-md", "sha384"], "SHA-384", "ECDSA"),
        ("ec384", &["-md", "sha512", "-noattr"], "SHA-512", "ECDSA"),
    ];
    for (signer, extra, digest, sigalg) in cases {
        // openssl 3.0 cannot combine -stream with -keyopt ("illegal zero content").
        let bases: &[&[&str]] = if extra.contains(&"-keyopt") {
            &[DER]
        } else {
            &[DER, STREAM]
        };
        for base in bases {
            let args = flags(base, extra);
            let blob = pki.sign(signer, &data, &args);
            let (got, v) = verify(&blob).unwrap_or_else(|e| panic!("{signer} {args:?}: {e}"));
            assert_eq!(got, data, "{signer} {args:?}");
            assert_eq!(
                (v.digest_algorithm, v.signature_algorithm),
                (*digest, *sigalg),
                "{args:?}"
            );
            assert_eq!(v.signer, pki.cert(signer));
            let (_, t) = decide(&store, "agency-a", &blob, SystemTime::now())
                .unwrap_or_else(|e| panic!("{signer} {args:?}: {e}"));
            assert_eq!(t.agency, "agency-a");
            assert_eq!(t.subject, format!("CN=Leaf {signer}, O=Agency A"));
            assert_eq!(t.fingerprint_sha256.len(), 64);
        }
    }
}

#[test]
fn stream_output_is_really_indefinite_ber() {
    let pki = Pki::get();
    let blob = pki.sign("ec256", &content(10_000), STREAM);
    assert_eq!(
        &blob[..2],
        &[0x30, 0x80],
        "openssl -stream should write indefinite lengths"
    );
    let (got, _) = verify(&blob).unwrap();
    assert_eq!(got, content(10_000));
}

#[test]
fn empty_and_large_content() {
    let pki = Pki::get();
    // openssl 3.0 cannot write empty content with -stream.
    for (data, bases) in [
        (Vec::new(), &[DER][..]),
        (content(3_000_000), &[DER, STREAM][..]),
    ] {
        for base in bases {
            let blob = pki.sign("ec256", &data, base);
            let (got, _) = verify(&blob).unwrap();
            assert_eq!(got.len(), data.len());
            assert!(got == data);
        }
    }
}

/// Finds `needle` in `hay` (the content is stored in clear inside the blob).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in blob")
}

#[test]
fn tampered_content_is_signature_invalid() {
    let pki = Pki::get();
    let data = content(5_000);
    for extra in [&[][..], &["-noattr"][..]] {
        for base in [DER, STREAM] {
            let mut blob = pki.sign("rsa", &data, &flags(base, extra));
            let at = find(&blob, b"<message>") + 100;
            blob[at] ^= 0x01;
            let (got, trailer) = read_all(&blob).unwrap();
            assert_ne!(got, data);
            let e = trailer.verify_signature().unwrap_err();
            assert_eq!(e.code().as_str(), "signature_invalid", "{e}");
            assert!(e.to_string().contains("changed after signing"), "{e}");
        }
    }
}

#[test]
fn flipped_signature_is_signature_invalid() {
    let pki = Pki::get();
    for signer in ["rsa", "ec256", "ec384"] {
        for extra in [&[][..], &["-noattr"][..]] {
            let mut blob = pki.sign(signer, b"payload", &flags(DER, extra));
            // The signature value is the last OCTET STRING: flip a byte near the end.
            let n = blob.len();
            blob[n - 5] ^= 0x40;
            let e = verify(&blob).unwrap_err();
            assert_eq!(
                e.code().as_str(),
                "signature_invalid",
                "{signer} {extra:?}: {e}"
            );
            assert!(
                matches!(e, gateway::envelope::cms::CmsError::BadSignature { .. }),
                "{e:?}"
            );
        }
    }
}

#[test]
fn plain_xml_and_detached_are_not_signed() {
    let pki = Pki::get();
    let xml = content(100);
    let e = SignedDataReader::new(&xml[..]).unwrap_err();
    assert_eq!(e.code().as_str(), "not_signed");
    let detached = pki.sign("rsa", &xml, &["-binary"]);
    let e = SignedDataReader::new(&detached[..]).unwrap_err();
    assert_eq!(e.code().as_str(), "not_signed", "{e}");
    assert!(e.to_string().contains("detached"));
}

#[test]
fn trust_verdicts() {
    let pki = Pki::get();
    let store = pki.store();
    let now = SystemTime::now();
    let data = content(100);

    let blob = pki.sign("ec256", &data, DER);
    let mut only_c = gateway::keyring::trust::TrustStore::new();
    only_c.insert(
        "agency-c",
        AgencyTrust {
            anchors: vec![pki.cert("root_b")],
            ..Default::default()
        },
    );
    assert_eq!(
        decide(&only_c, "agency-c", &blob, now).unwrap_err(),
        "signer_unknown"
    );
    assert_eq!(
        decide(&only_c, "nope", &blob, now).unwrap_err(),
        "signer_unknown"
    );
    assert_eq!(
        decide(&store, "agency-c", &blob, now).unwrap_err(),
        "agency_mismatch"
    );

    let pinned = pki.sign("selfsigned", &data, DER);
    let (got, t) = decide(&store, "agency-b", &pinned, now).unwrap();
    assert_eq!(got, data);
    assert_eq!(t.subject, "CN=Self Signed Sender, O=Agency B");
    let e = decide(&store, "agency-a", &pinned, now).unwrap_err();
    assert_eq!(e, "agency_mismatch");
    let e = decide(&store, "agency-b", &blob, now).unwrap_err();
    assert_eq!(e, "agency_mismatch");

    let expired = pki.sign("expired", &data, DER);
    assert_eq!(
        decide(&store, "agency-a", &expired, now).unwrap_err(),
        "certificate_expired"
    );
    // The pinned certificate is valid for a year: far in the future it is expired too.
    let later = now + Duration::from_secs(400 * 86_400);
    assert_eq!(
        decide(&store, "agency-b", &pinned, later).unwrap_err(),
        "certificate_expired"
    );
    // Before the chain's certificates existed.
    let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert_eq!(
        decide(&store, "agency-a", &blob, before).unwrap_err(),
        "certificate_not_yet_valid",
        "not yet valid is not \"expired\": renewing would not help"
    );

    let revoked = pki.sign("revoked", &data, DER);
    assert_eq!(
        decide(&store, "agency-a", &revoked, now).unwrap_err(),
        "certificate_revoked"
    );
}

#[test]
fn trust_error_details() {
    let pki = Pki::get();
    let store = pki.store();
    let now = SystemTime::now();
    let leaf = pki.cert("expired");
    let e = store
        .check("agency-a", &leaf, &[pki.cert("inter")], now)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("CN=Leaf expired") && msg.contains("2021"),
        "{msg}"
    );

    let unknown = pki.cert("ec256");
    let mut only_c = gateway::keyring::trust::TrustStore::new();
    only_c.insert(
        "agency-c",
        AgencyTrust {
            anchors: vec![pki.cert("root_b")],
            ..Default::default()
        },
    );
    let e = only_c
        .check("agency-c", &unknown, &[pki.cert("inter")], now)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("gateway agency cert add agency-c cert.pem"),
        "{e}"
    );

    // Without the intermediate, the leaf does not chain: unknown, not a crash.
    let e = store.check("agency-a", &unknown, &[], now).unwrap_err();
    assert_eq!(e.code().as_str(), "signer_unknown");
}

#[test]
fn admin_revocation_and_crl_on_pinned() {
    let pki = Pki::get();
    let now = SystemTime::now();
    let leaf = pki.cert("ec256");
    let fp: [u8; 32] = leaf.digest(openssl::hash::MessageDigest::sha256()).unwrap()[..]
        .try_into()
        .unwrap();
    let mut store = pki.store();
    store.insert(
        "agency-a",
        AgencyTrust {
            anchors: vec![pki.cert("root")],
            revoked: vec![fp],
            ..Default::default()
        },
    );
    let e = store
        .check("agency-a", &leaf, &[pki.cert("inter")], now)
        .unwrap_err();
    assert_eq!(e.code().as_str(), "certificate_revoked");

    // The revoked leaf pinned directly: the registered CRL of its issuer still applies.
    let revoked = pki.cert("revoked");
    store.insert(
        "agency-d",
        AgencyTrust {
            pinned: vec![revoked.clone()],
            crls: vec![pki.crl()],
            ..Default::default()
        },
    );
    assert_eq!(
        store
            .check("agency-d", &revoked, &[], now)
            .unwrap_err()
            .code()
            .as_str(),
        "certificate_revoked"
    );
    store.insert(
        "agency-d",
        AgencyTrust {
            pinned: vec![revoked.clone()],
            ..Default::default()
        },
    );
    assert!(store.check("agency-d", &revoked, &[], now).is_ok());
}

#[test]
fn signer_certificate_missing_is_signature_invalid() {
    let pki = Pki::get();
    let blob = pki.sign("ec256", b"x", &flags(DER, &["-nocerts"]));
    let e = verify(&blob).unwrap_err();
    assert_eq!(e.code().as_str(), "signature_invalid");
    assert!(
        matches!(
            e,
            gateway::envelope::cms::CmsError::SignerCertificateNotFound
        ),
        "{e:?}"
    );
}

/// openssl 3.0 signs with an RSA-PSS *key* but labels the signature rsaEncryption, and its own
/// `cms -verify` rejects the result; we reject it too rather than guess the padding.
#[test]
fn rsa_pss_key_type_mislabelled_by_openssl_is_rejected() {
    let pki = Pki::get();
    for extra in [&[][..], &["-noattr"][..]] {
        let blob = pki.sign("pss", b"x", &flags(DER, extra));
        let e = verify(&blob).unwrap_err();
        assert_eq!(e.code().as_str(), "signature_invalid", "{e}");
    }
}

#[test]
fn sha1_is_refused() {
    let pki = Pki::get();
    let blob = pki.sign("rsa", b"x", &flags(DER, &["-md", "sha1"]));
    let e = verify(&blob).unwrap_err();
    assert_eq!(e.code().as_str(), "signature_invalid");
    assert!(e.to_string().contains("SHA-1"), "{e}");
}

mod chunked {
    use super::*;
    use proptest::prelude::*;
    use std::io::{self, Read};
    use std::sync::OnceLock;

    struct ShortReads<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        i: usize,
    }

    impl Read for ShortReads<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.sizes[self.i % self.sizes.len()]
                .min(buf.len())
                .min(self.data.len());
            self.i += 1;
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn blobs() -> &'static [(Vec<u8>, Vec<u8>)] {
        static B: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
        B.get_or_init(|| {
            let pki = Pki::get();
            let data = content(9_000);
            let good_der = pki.sign("rsa", &data, DER);
            let good_stream = pki.sign("ec256", &data, STREAM);
            let mut bad = good_stream.clone();
            let at = find(&bad, b"<message>") + 50;
            bad[at] ^= 4;
            vec![
                (good_der, data.clone()),
                (good_stream, data),
                (bad, Vec::new()),
            ]
        })
    }

    fn outcome(r: impl Read) -> (Vec<u8>, Result<String, String>) {
        let mut content = Vec::new();
        let res = (|| {
            let mut rd = SignedDataReader::new(r)?;
            rd.read_to_end(&mut content)
                .map_err(gateway::envelope::cms::CmsError::from_io)?;
            let v = rd.finish()?.verify_signature()?;
            Ok::<_, gateway::envelope::cms::CmsError>(v.signature_algorithm.to_string())
        })();
        (content, res.map_err(|e| e.to_string()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn short_reads_give_identical_content_and_verdict(
            which in 0usize..3,
            sizes in proptest::collection::vec(1usize..300, 1..10),
        ) {
            let (blob, _) = &blobs()[which];
            let whole = outcome(&blob[..]);
            let chunked = outcome(ShortReads { data: blob, sizes, i: 0 });
            prop_assert_eq!(&whole, &chunked);
            prop_assert_eq!(whole.1.is_ok(), which != 2);
        }
    }
}
