//! Differential test: our reader + verifier + chain check against `openssl cms -verify` on a
//! corpus of good blobs and mutations of them; the accept/reject verdicts must agree.

use std::time::SystemTime;

use super::pki::{Pki, openssl, verify};
use gateway::keyring::trust::{AgencyTrust, TrustStore};

/// Our full verdict, with the precise error so divergences can be classified by cause.
fn ours(store: &TrustStore, blob: &[u8], now: SystemTime) -> Result<(), String> {
    let (_, v) = verify(blob).map_err(|e| format!("{e:?}"))?;
    store
        .check("agency-a", &v.signer, &v.intermediates, now)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    Flip { at: usize, mask: u8 },
    Truncate { len: usize },
    Insert { at: usize, byte: u8 },
}

impl Mutation {
    fn apply(&self, blob: &[u8]) -> Vec<u8> {
        let mut b = blob.to_vec();
        match *self {
            Mutation::None => {}
            Mutation::Flip { at, mask } => b[at] ^= mask,
            Mutation::Truncate { len } => b.truncate(len),
            Mutation::Insert { at, byte } => b.insert(at, byte),
        }
        b
    }
}

/// Deterministic positions spread over the blob, plus pseudo-random ones (fixed seed so a
/// failure reproduces).
fn positions(len: usize, count: usize, seed: &mut u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..count / 2).map(|i| i * len / (count / 2)).collect();
    for _ in 0..count - count / 2 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((*seed >> 33) as usize % len);
    }
    v
}

/// A divergence we accept knowingly; `None` means the verdicts must agree.
fn known_divergence(
    m: &Mutation,
    blob_len: usize,
    ours: &Result<(), String>,
    theirs: bool,
) -> Option<&'static str> {
    let flipped = matches!(m, Mutation::Flip { .. });
    let cause = ours.as_ref().err().map(String::as_str).unwrap_or("");
    let ours = ours.is_ok();
    match m {
        // `openssl cms -verify -inform DER` decodes one object and ignores what follows it; a
        // gateway must not accept unsigned extra bytes travelling with a signed file.
        Mutation::Insert { at, .. } if *at == blob_len && theirs && !ours => {
            Some("openssl ignores bytes after the ContentInfo; we refuse trailing data")
        }
        // openssl 3.0 neither restricts eContentType to id-data nor compares it with the
        // signed contentType attribute (RFC 5652 §11.1 requires it); we refuse both.
        _ if flipped && theirs && cause.starts_with("UnsupportedContentType") => {
            Some("openssl accepts an altered eContentType; we require id-data")
        }
        // The SignerInfo's digestAlgorithm and signatureAlgorithm are not covered by the
        // signature. openssl accepts them corrupted into unknown OIDs (it falls back to the
        // key type and the digests it computed); we refuse algorithms we do not know.
        _ if flipped && theirs && cause.starts_with("UnsupportedAlgorithm") => Some(
            "openssl ignores an unknown digest/signature algorithm OID in the SignerInfo; we refuse it",
        ),
        // Likewise a signatureAlgorithm whose hash no longer matches digestAlgorithm (e.g.
        // ecdsa-with-SHA256 with SHA-384): openssl uses digestAlgorithm, we refuse the mix.
        _ if flipped && theirs && cause.contains("signature algorithm hash differs") => Some(
            "openssl ignores the hash named by the signature algorithm; we require it to match",
        ),
        // Same for parameters: a NULL turned into another type (0x05 -> 0x04) where openssl
        // does not look at the parameters; we require NULL or absent.
        _ if flipped && theirs && cause.contains("parameters") => {
            Some("openssl ignores unused algorithm parameters; we require NULL or absent")
        }
        _ => None,
    }
}

#[test]
fn verdicts_match_openssl_cms_verify() {
    let pki = Pki::get();
    let mut store = TrustStore::new();
    // Same trust as `-CAfile root.pem`: no CRL (openssl cms -verify does not check CRLs by default).
    store.insert(
        "agency-a",
        AgencyTrust {
            anchors: vec![pki.cert("root")],
            ..Default::default()
        },
    );
    let content: Vec<u8> = (0..6000u32)
        .map(|i| b"<x>signed payload</x>\n"[(i % 22) as usize])
        .collect();
    let variants: &[(&str, &[&str])] = &[
        ("rsa", &["-binary", "-nodetach"]),
        ("rsa", &["-binary", "-nodetach", "-stream"]),
        ("rsa", &["-binary", "-nodetach", "-noattr", "-md", "sha512"]),
        (
            "rsa",
            &[
                "-binary",
                "-nodetach",
                "-keyopt",
                "rsa_padding_mode:pss",
                "-keyid",
            ],
        ),
        (
            "rsa",
            &[
                "-binary",
                "-nodetach",
                "-keyopt",
                "rsa_padding_mode:pss",
                "-noattr",
            ],
        ),
        ("ec256", &["-binary", "-nodetach", "-keyid"]),
        ("ec256", &["-binary", "-nodetach", "-stream", "-noattr"]),
        ("ec384", &["-binary", "-nodetach", "-md", "sha384"]),
        (
            "ec384",
            &["-binary", "-nodetach", "-stream", "-md", "sha512", "-keyid"],
        ),
        ("selfsigned", &["-binary", "-nodetach"]),
        ("expired", &["-binary", "-nodetach"]),
    ];
    let mut corpus: Vec<(String, Vec<u8>, Mutation)> = Vec::new();
    let mut seed = 0x5eed_u64;
    for (signer, args) in variants {
        let blob = pki.sign(signer, &content, args);
        let name = format!("{signer} {}", args.join(" "));
        corpus.push((name.clone(), blob.clone(), Mutation::None));
        for at in positions(blob.len(), 16, &mut seed) {
            for mask in [0x01, 0x80] {
                corpus.push((name.clone(), blob.clone(), Mutation::Flip { at, mask }));
            }
        }
        // Every structural byte before the content, and the SignerInfo area (the last ~400
        // bytes: identifiers, algorithms, attributes, signature) more densely.
        let header_and_signer =
            (0..48).chain((blob.len().saturating_sub(420)..blob.len()).step_by(7));
        for at in header_and_signer {
            corpus.push((
                name.clone(),
                blob.clone(),
                Mutation::Flip { at, mask: 0x01 },
            ));
        }
        for len in positions(blob.len(), 4, &mut seed) {
            corpus.push((name.clone(), blob.clone(), Mutation::Truncate { len }));
        }
        for at in positions(blob.len(), 4, &mut seed)
            .into_iter()
            .chain([blob.len()])
        {
            corpus.push((name.clone(), blob.clone(), Mutation::Insert { at, byte: 0 }));
        }
    }

    let dir = tempfile::tempdir_in(pki.dir()).unwrap();
    let root = pki.path("root.pem");
    let now = SystemTime::now();
    let results: Vec<(Result<(), String>, bool)> = std::thread::scope(|s| {
        let chunks: Vec<_> = corpus
            .chunks(corpus.len().div_ceil(2))
            .enumerate()
            .map(|(w, chunk)| {
                let (dir, root, store) = (dir.path(), &root, &store);
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, (_, blob, m))| {
                            let data = m.apply(blob);
                            let file = dir.join(format!("{w}-{i}.der"));
                            std::fs::write(&file, &data).unwrap();
                            let out = openssl(
                                dir,
                                &[
                                    "cms",
                                    "-verify",
                                    "-binary",
                                    "-inform",
                                    "DER",
                                    "-in",
                                    file.to_str().unwrap(),
                                    "-CAfile",
                                    root.to_str().unwrap(),
                                    "-purpose",
                                    "any",
                                    "-out",
                                    "/dev/null",
                                ],
                            );
                            let theirs = out.status.success();
                            let ours = ours(store, &data, now);
                            (ours, theirs)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });

    let (mut both_ok, mut both_bad, mut excluded, mut originals_ok) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    for ((name, blob, m), (verdict, theirs)) in corpus.iter().zip(&results) {
        let ours = &verdict.is_ok();
        if matches!(m, Mutation::None) && *ours {
            originals_ok += 1;
        }
        if ours == theirs {
            if *ours { both_ok += 1 } else { both_bad += 1 }
        } else if let Some(reason) = known_divergence(m, blob.len(), verdict, *theirs) {
            excluded += 1;
            println!("excluded: {name} {m:?}: {reason}");
        } else {
            mismatches.push(format!("{name} {m:?}: ours={verdict:?} openssl={theirs}"));
        }
    }
    println!(
        "differential: {} blobs, accepted by both {both_ok}, rejected by both {both_bad}, \
         known divergences {excluded}, mismatches {}",
        corpus.len(),
        mismatches.len()
    );
    assert!(corpus.len() >= 200);
    // Unmutated blobs of registered, valid signers must be accepted; the expired and the
    // self-signed (not under root A) ones rejected by both.
    assert_eq!(originals_ok, variants.len() - 2, "{mismatches:#?}");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
