//! Test PKI generated with the `openssl` CLI: a root CA, an intermediate run as an `openssl ca`
//! (so it can revoke and issue CRLs), leaf certificates of each key type, an expired and a
//! revoked leaf, and a self-signed certificate for pinning.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use gateway::envelope::cms::{CmsError, SignedDataReader, SignedTrailer, VerifiedSignature};
use gateway::keyring::trust::{AgencyTrust, TrustStore, TrustedSigner};
use openssl::x509::{X509, X509Crl};

pub struct Pki {
    dir: tempfile::TempDir,
}

/// Leaves issued by the intermediate, with their `openssl` key-generation arguments.
pub const LEAVES: &[(&str, &[&str])] = &[
    (
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    ),
    (
        "pss",
        &["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"],
    ),
    (
        "ec256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ),
    (
        "ec384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    ),
    (
        "expired",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ),
    (
        "revoked",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ),
];

const CA_CONF: &str = r#"
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
new_certs_dir = newcerts
certificate = inter.pem
private_key = inter.key
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = no
[ policy_any ]
commonName = supplied
organizationName = optional
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#;

pub fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI must be installed")
}

fn ok(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn get() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(Pki::generate)
    }

    fn generate() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ca.cnf"), CA_CONF).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(d.join("crlnumber"), "01\n").unwrap();
        std::fs::create_dir(d.join("newcerts")).unwrap();

        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let root_ext = [
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ];
        for (name, cn) in [("root", "Test Root A"), ("root_b", "Test Root B")] {
            let mut args = vec!["req", "-x509", "-days", "3650", "-keyout"];
            let key = format!("{name}.key");
            let pem = format!("{name}.pem");
            let subj = format!("/CN={cn}/O=Agency");
            args.extend([key.as_str(), "-out", pem.as_str(), "-subj", subj.as_str()]);
            args.extend(ec);
            args.extend(root_ext);
            ok(d, &args);
        }
        // Self-signed end-entity certificate, pinned by fingerprint.
        ok(
            d,
            &[
                "req",
                "-x509",
                "-days",
                "365",
                "-keyout",
                "selfsigned.key",
                "-out",
                "selfsigned.pem",
                "-subj",
                "/CN=Self Signed Sender/O=Agency B",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ],
        );

        ok(
            d,
            &[
                "req",
                "-new",
                "-keyout",
                "inter.key",
                "-out",
                "inter.csr",
                "-subj",
                "/CN=Test Intermediate A/O=Agency",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ],
        );
        ok(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "inter.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-set_serial",
                "2",
                "-days",
                "3650",
                "-extfile",
                "ca.cnf",
                "-extensions",
                "ca_ext",
                "-out",
                "inter.pem",
            ],
        );

        for (name, keygen) in LEAVES {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            let mut args = vec!["genpkey", "-out", key.as_str()];
            args.extend(keygen.iter());
            ok(d, &args);
            let subj = format!("/CN=Leaf {name}/O=Agency A");
            ok(
                d,
                &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj],
            );
            let mut args = vec![
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-extensions",
                "leaf_ext",
                "-notext",
                "-in",
                csr.as_str(),
                "-out",
                pem.as_str(),
            ];
            if *name == "expired" {
                args.extend([
                    "-startdate",
                    "20200101000000Z",
                    "-enddate",
                    "20210101000000Z",
                ]);
            }
            ok(d, &args);
        }
        ok(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-revoke",
                "revoked.pem",
            ],
        );
        ok(
            d,
            &[
                "ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem",
            ],
        );
        // openssl cms -verify wants the whole chain it may need in CAfile or the message.
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cert(&self, name: &str) -> X509 {
        X509::from_pem(&std::fs::read(self.path(&format!("{name}.pem"))).unwrap()).unwrap()
    }

    pub fn crl(&self) -> X509Crl {
        X509Crl::from_pem(&std::fs::read(self.path("crl.pem")).unwrap()).unwrap()
    }

    /// Signs `content` with `signer` (a file stem) and extra `openssl cms -sign` flags.
    pub fn sign(&self, signer: &str, content: &[u8], extra: &[&str]) -> Vec<u8> {
        let tmp = tempfile::tempdir_in(self.dir()).unwrap();
        let input = tmp.path().join("content");
        let output = tmp.path().join("signed.der");
        std::fs::write(&input, content).unwrap();
        let cert = self.path(&format!("{signer}.pem"));
        let key = self.path(&format!("{signer}.key"));
        let mut args: Vec<&str> = vec!["cms", "-sign", "-outform", "DER"];
        args.extend([
            "-in",
            input.to_str().unwrap(),
            "-out",
            output.to_str().unwrap(),
        ]);
        args.extend([
            "-signer",
            cert.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
        ]);
        let inter = self.path("inter.pem");
        if signer != "selfsigned" {
            args.extend(["-certfile", inter.to_str().unwrap()]);
        }
        args.extend(extra);
        ok(self.dir(), &args);
        std::fs::read(&output).unwrap()
    }

    /// The trust store used by most tests: agency-a trusts root A (with the CRL of the
    /// intermediate), agency-b pins the self-signed certificate, agency-c trusts root B.
    pub fn store(&self) -> TrustStore {
        let mut s = TrustStore::new();
        s.insert(
            "agency-a",
            AgencyTrust {
                anchors: vec![self.cert("root")],
                crls: vec![self.crl()],
                ..Default::default()
            },
        );
        s.insert(
            "agency-b",
            AgencyTrust {
                pinned: vec![self.cert("selfsigned")],
                ..Default::default()
            },
        );
        s.insert(
            "agency-c",
            AgencyTrust {
                anchors: vec![self.cert("root_b")],
                ..Default::default()
            },
        );
        s
    }
}

/// Reads the whole content (in small reads, like a consumer would) and the trailer.
pub fn read_all(blob: &[u8]) -> Result<(Vec<u8>, SignedTrailer), CmsError> {
    let mut r = SignedDataReader::new(blob)?;
    let mut content = Vec::new();
    let mut buf = [0u8; 777];
    loop {
        let n = r.read(&mut buf).map_err(CmsError::from_io)?;
        if n == 0 {
            break;
        }
        content.extend_from_slice(&buf[..n]);
    }
    Ok((content, r.finish()?))
}

pub fn verify(blob: &[u8]) -> Result<(Vec<u8>, VerifiedSignature), CmsError> {
    let (content, trailer) = read_all(blob)?;
    Ok((content, trailer.verify_signature()?))
}

/// The full gateway decision: parse, verify, then trust for `agency` now. The error is the
/// user-facing code.
pub fn decide(
    store: &TrustStore,
    agency: &str,
    blob: &[u8],
    at: SystemTime,
) -> Result<(Vec<u8>, TrustedSigner), String> {
    let (content, v) = verify(blob).map_err(|e| e.code().to_string())?;
    let t = store
        .check(agency, &v.signer, &v.intermediates, at)
        .map_err(|e| e.code().to_string())?;
    Ok((content, t))
}
