//! Key files on disk: private files are created 0600 and refused when others can read them.

use std::io::Write;
use std::path::Path;

use super::KeyringError;

/// Writes a new private file (0600) durably; never overwrites.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    write_new(path, bytes, 0o600)
}

/// Writes a new public file (0644) durably; never overwrites.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    write_new(path, bytes, 0o644)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyringError> {
    let io = |error| KeyringError::Io {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    if let Some(dir) = path.parent() {
        crate::fsio::sync_dir(dir).map_err(io)?;
    }
    Ok(())
}

/// Reads a private key file, refusing it when group or others may read or write it.
pub fn read_private(path: &Path) -> Result<Vec<u8>, KeyringError> {
    let io = |error| KeyringError::Io {
        path: path.to_path_buf(),
        error,
    };
    check_private(path)?;
    std::fs::read(path).map_err(io)
}

/// A private file must be 0600 (or stricter) and owned by the user the gateway runs as: a
/// key another account owns could be swapped by that account.
pub fn check_private(path: &Path) -> Result<(), KeyringError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).map_err(|error| KeyringError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyringError::Permissions {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(KeyringError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    Ok(())
}
