//! Key material: the gateway's age identities, agency registrations and their trust
//! (pinned certificates, anchors, CRLs), and the development key set.
//!
//! Code lives here; the data lives in the `keys/` folder (see `keys/README.md`).

pub mod agencies;
mod files;
pub mod identities;
pub mod tokens;
pub mod trust;
pub mod x509gen;

use std::path::{Path, PathBuf};

pub use identities::Identities;
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
}

impl Keyring {
    /// Loads identities and the agency registry from `keys`.
    pub fn load(keys: &Path) -> Result<Keyring, KeyringError> {
        Ok(Keyring {
            identities: Identities::load(keys)?,
            trust: agencies::trust_store(keys)?,
        })
    }
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
pub fn init(keys: &Path) -> Result<Vec<String>, KeyringError> {
    use x509gen::Purpose;
    let mut made = Vec::new();
    if let Some(info) = Identities::init(keys)? {
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
        let cert = x509gen::self_signed(&key, cn, "gateway (development)", purpose, 825)?;
        files::write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
        files::write_public(&keys.join(dir).join(format!("{stem}.crt")), &cert.to_pem()?)?;
        made.push(format!(
            "{dir} certificate {}",
            key_path.with_extension("crt").display()
        ));
    }
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
