//! Property tests of the envelope through the library API: whatever the content, a payload
//! sealed by a registered signer opens and verifies, and its content reaches the XML stage
//! intact; any single bit flipped in a sealed payload is rejected, never accepted.

use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use gateway::envelope::{Checks, Envelope};
use gateway::keyring::Keyring;
use gateway::validation::Catalog;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::PKey;
use openssl::x509::X509;
use proptest::prelude::*;

struct World {
    _dir: tempfile::TempDir,
    keyring: Keyring,
    catalog: Catalog,
    limits: gateway::config::Limits,
    key: PKey<openssl::pkey::Private>,
    cert: X509,
    recipient: age::x25519::Recipient,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        gateway::keyring::init(&keys, &Default::default()).unwrap();
        let keyring = Keyring::load(&keys).unwrap();
        let recipient = keyring
            .identities
            .current_recipient()
            .unwrap()
            .parse()
            .unwrap();
        let (k, c) = gateway::keyring::dev_signer(&keys, "police");
        let catalog = Catalog::load(&crate::support::schemas_dir()).unwrap();
        let limits = gateway::config::Config::defaults(dir.path()).limits;
        World {
            key: PKey::private_key_from_pem(&std::fs::read(k).unwrap()).unwrap(),
            cert: X509::from_pem(&std::fs::read(c).unwrap()).unwrap(),
            _dir: dir,
            keyring,
            catalog,
            limits,
            recipient,
        }
    })
}

fn seal(content: &[u8]) -> Vec<u8> {
    let w = world();
    let cms = CmsContentInfo::sign(
        Some(&w.cert),
        Some(&w.key),
        None,
        Some(content),
        CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let enc = age::Encryptor::with_recipients(std::iter::once(&w.recipient as _)).unwrap();
    let mut out = Vec::new();
    let mut wr = enc.wrap_output(&mut out).unwrap();
    wr.write_all(&cms).unwrap();
    wr.finish().unwrap();
    out
}

/// Runs the envelope stages; returns the code (or "accepted") and what reached the spool.
fn check(sealed: &[u8]) -> (String, Vec<u8>) {
    let w = world();
    let checks = Checks {
        trust: &w.keyring.trust,
        catalog: &w.catalog,
        limits: &w.limits,
        now: SystemTime::now(),
    };
    let mut spool = Vec::new();
    let verdict = Envelope::received("police", sealed)
        .open(&w.keyring.identities)
        .and_then(|e| e.verify_and_validate(&checks, &mut spool));
    match verdict {
        Ok(_) => ("accepted".into(), spool),
        Err(r) => (r.code.as_str().to_owned(), spool),
    }
}

const XML_CODES: [&str; 6] = [
    "xml_malformed",
    "dtd_forbidden",
    "xml_limit_exceeded",
    "schema_unknown_root",
    "schema_not_allowed",
    "schema_invalid",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_signed_content_passes_the_envelope_and_reaches_the_xml_stage_intact(
        content in proptest::collection::vec(any::<u8>(), 0..20_000)
    ) {
        let (code, spooled) = check(&seal(&content));
        prop_assert!(XML_CODES.contains(&code.as_str()) || code == "accepted", "{code}");
        prop_assert_eq!(spooled, content);
    }

    #[test]
    fn any_single_bit_flip_of_a_sealed_valid_message_is_rejected(at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let xml = std::fs::read(crate::support::sample("police", "valid-single-incident.xml")).unwrap();
        let mut sealed = seal(&xml);
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        let (code, _) = check(&sealed);
        prop_assert_ne!(code, "accepted");
    }
}

#[test]
fn valid_sample_sealed_by_the_library_is_accepted() {
    let xml = std::fs::read(crate::support::sample(
        "police",
        "valid-single-incident.xml",
    ))
    .unwrap();
    let (code, spooled) = check(&seal(&xml));
    assert_eq!(code, "accepted");
    assert_eq!(spooled, xml);
}
