//! Key material: the gateway's age identities, agency registrations and their trust
//! (pinned certificates, anchors, CRLs), and the development key set.
//!
//! Code lives here; the data lives in the `keys/` folder (see `keys/README.md`).

pub mod agencies;
pub(crate) mod files;
pub mod identities;
pub mod inventory;
mod live;
pub mod recipient_doc;
pub mod tokens;
pub mod trust;
pub mod x509gen;

use std::path::{Path, PathBuf};

pub use identities::{Identities, Passphrase};
pub use live::LiveKeyring;
pub use trust::TrustStore;

/// Why key material could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file's content is wrong.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A private key file may be read by others.
    #[error("{} is readable by others (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key file belongs to another account.
    #[error("{} is owned by uid {owner}, not by the user the gateway runs as (uid {me}): run `chown {me} {}`", path.display(), path.display())]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The gateway's effective uid.
        me: u32,
    },
    /// Something required is not there yet.
    #[error("no {what} in {}: run `gateway keys init`", path.display())]
    Missing {
        /// What.
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// An agency name that is not usable as a folder name.
    #[error("{0:?} is not a valid agency name: 1-63 characters of a-z, 0-9 and '-'")]
    BadName(String),
    /// No such agency is registered.
    #[error("agency {0:?} is not registered: `gateway agency add {0}` first")]
    UnknownAgency(String),
    /// OpenSSL failed while making or reading a key.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// Everything the pipeline needs from `keys/`, loaded once.
pub struct Keyring {
    /// Identities that open payloads.
    pub identities: Identities,
    /// Per-agency trust.
    pub trust: TrustStore,
    /// Registered agencies and their settings (`agency.toml`).
    pub agencies: Vec<agencies::AgencyInfo>,
}

impl Keyring {
    /// Loads identities and the agency registry from `keys`.
    pub fn load(keys: &Path) -> Result<Keyring, KeyringError> {
        Keyring::load_with(keys, &Passphrase::default(), None)
    }

    /// Loads `keys`, reusing the unchanged identity secrets of `previous`.
    pub fn load_with(
        keys: &Path,
        passphrase: &Passphrase,
        previous: Option<&Keyring>,
    ) -> Result<Keyring, KeyringError> {
        Ok(Keyring {
            identities: Identities::load_with(keys, passphrase, previous.map(|p| &p.identities))?,
            trust: agencies::trust_store(keys)?,
            agencies: agencies::list(keys)?,
        })
    }
}

/// The marker every admin command rewrites after changing `keys/`: a running gateway checks
/// it before each payload, so a revocation or rotation applies to the very next one.
pub fn generation_path(keys: &Path) -> PathBuf {
    keys.join(".generation")
}

/// Records that `keys/` changed (best effort: the file watcher and periodic reload are the
/// safety net).
pub fn changed(keys: &Path) {
    let stamp = format!(
        "{}\n",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    if let Err(e) = crate::fsio::write_atomic(keys, ".generation", stamp.as_bytes()) {
        tracing::warn!(error = %e, "cannot record the key change; a running gateway picks it up within its reload period");
    }
}

/// Checks every private file under `keys/` (`*.key`, passphrase files) before serving: the
/// gateway refuses to start, naming the file, when one may be read by others or is owned by
/// another account.
pub fn check_private_files(keys: &Path) -> Result<(), KeyringError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "key") => out.push(p),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(keys, &mut found);
    found.sort();
    for p in found {
        files::check_private(&p)?;
    }
    Ok(())
}

/// Reads a PEM private key file, refusing it when others may read it.
pub fn read_private_key(
    path: &Path,
) -> Result<openssl::pkey::PKey<openssl::pkey::Private>, KeyringError> {
    let pem = files::read_private(path)?;
    openssl::pkey::PKey::private_key_from_pem(&pem).map_err(|e| KeyringError::Invalid {
        path: path.to_path_buf(),
        message: format!("not a PEM private key: {e}"),
    })
}

/// Reads every PEM certificate of a file, in order (none if it holds no PEM block).
pub fn read_certificates(path: &Path) -> Result<Vec<openssl::x509::X509>, KeyringError> {
    let pem = std::fs::read(path).map_err(|error| KeyringError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    openssl::x509::X509::stack_from_pem(&pem).map_err(|e| KeyringError::Invalid {
        path: path.to_path_buf(),
        message: format!("not a PEM certificate: {e}"),
    })
}

/// Reads a certificate file that must hold at least one certificate: the first (the leaf), and
/// the rest of its chain.
pub fn read_certificate_chain(
    path: &Path,
) -> Result<(openssl::x509::X509, Vec<openssl::x509::X509>), KeyringError> {
    let mut chain = read_certificates(path)?;
    if chain.is_empty() {
        return Err(KeyringError::Invalid {
            path: path.to_path_buf(),
            message: "no certificate".into(),
        });
    }
    let leaf = chain.remove(0);
    Ok((leaf, chain))
}

/// The development signing key and certificate of a seed agency (the agency's side: a real
/// hub never holds these), as made by [`init`].
pub fn dev_signer(keys: &Path, agency: &str) -> (PathBuf, PathBuf) {
    let dir = keys.join("dev").join("agencies");
    (
        dir.join(format!("{agency}.key")),
        dir.join(format!("{agency}.crt")),
    )
}

/// Creates whatever is missing of a complete development key set; returns what it made.
/// Existing files are never overwritten, so running it twice is harmless.
pub fn init(keys: &Path, passphrase: &Passphrase) -> Result<Vec<String>, KeyringError> {
    let mut made = init_own(keys, passphrase, "gateway (development)")?;
    made.extend(init_seed_agencies(keys)?);
    Ok(made)
}

/// Creates whatever is missing of the gateway's own keys for production: its age identity,
/// its receipt-signing key and certificate, and a self-signed TLS certificate to replace with
/// the hub's own. No agency is registered and no development signer made.
pub fn init_production(keys: &Path, passphrase: &Passphrase) -> Result<Vec<String>, KeyringError> {
    init_own(keys, passphrase, "gateway")
}

/// The gateway's identity, receipt and TLS keys, certificates issued by `org`.
fn init_own(keys: &Path, passphrase: &Passphrase, org: &str) -> Result<Vec<String>, KeyringError> {
    use x509gen::Purpose;
    let mut made = Vec::new();
    if let Some(info) = Identities::init(keys, passphrase)? {
        made.push(format!("gateway identity {} ({})", info.id, info.recipient));
    }
    let pairs = [
        ("receipt", "receipt", "gateway receipts", Purpose::Receipt),
        ("tls", "server", "localhost", Purpose::TlsServer),
    ];
    for (dir, stem, cn, purpose) in pairs {
        let key_path = keys.join(dir).join(format!("{stem}.key"));
        if key_path.exists() {
            continue;
        }
        let key = x509gen::new_key()?;
        let cert = x509gen::self_signed(&key, cn, org, purpose, 825)?;
        files::write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
        files::write_public(&keys.join(dir).join(format!("{stem}.crt")), &cert.to_pem()?)?;
        made.push(format!(
            "{dir} certificate {}",
            key_path.with_extension("crt").display()
        ));
    }
    Ok(made)
}

/// The eight seed agencies, each with a development signing certificate.
fn init_seed_agencies(keys: &Path) -> Result<Vec<String>, KeyringError> {
    use x509gen::Purpose;
    let mut made = Vec::new();
    for (name, display) in agencies::SEED {
        if agencies::add(keys, name, display)? {
            made.push(format!("agency {name}"));
        }
        let (key_path, cert_path) = dev_signer(keys, name);
        if key_path.exists() {
            continue;
        }
        let key = x509gen::new_key()?;
        let cert = x509gen::self_signed(
            &key,
            &format!("{display} (development signer)"),
            name,
            Purpose::Signing,
            825,
        )?;
        files::write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
        let pem = cert.to_pem()?;
        files::write_public(&cert_path, &pem)?;
        let fp = agencies::add_cert(keys, name, &pem)?;
        made.push(format!("{name} development signing certificate {fp}"));
    }
    Ok(made)
}
