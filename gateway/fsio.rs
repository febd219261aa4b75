//! Durable file helpers: "write, fsync, rename, fsync the directory".
//!
//! Every file that another party (the hub, an operator) may pick up is first
//! written under a temporary name in the *same* directory, flushed to disk with
//! `fsync`, then renamed to its final name, and finally the directory itself is
//! fsynced so the rename survives a power loss. Temporary names are derived from
//! a fresh UUID, never from user input, and are created with `create_new` so an
//! existing file is never clobbered or followed through a symlink.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Prefix of temporary files created by [`write_atomic`] and [`write_atomic_from`].
pub const TEMP_PREFIX: &str = ".tmp-";

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
///
/// On non-unix platforms directories cannot be opened for syncing; this is then a no-op.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Group commit for one directory: callers that changed entries (renames) call
/// [`DirSync::changed`] and then [`DirSync::sync_upto`] with the number it gave; one fsync of
/// the directory covers every change made before it, so concurrent callers share fsyncs
/// instead of each waiting for its own. Each still returns only once its change is durable.
#[derive(Debug)]
pub struct DirSync {
    dir: std::path::PathBuf,
    changes: std::sync::atomic::AtomicU64,
    synced: std::sync::Mutex<u64>,
}

impl DirSync {
    /// A syncer for `dir`.
    pub fn new(dir: &Path) -> DirSync {
        DirSync {
            dir: dir.to_path_buf(),
            changes: std::sync::atomic::AtomicU64::new(0),
            synced: std::sync::Mutex::new(0),
        }
    }

    /// Counts a change just made in the directory; returns its number.
    pub fn changed(&self) -> u64 {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Returns once change `n` (and every change before it) is durable.
    pub fn sync_upto(&self, n: u64) -> io::Result<()> {
        let mut synced = self
            .synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *synced >= n {
            return Ok(());
        }
        let target = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        sync_dir(&self.dir)?;
        *synced = target;
        Ok(())
    }
}

/// Creates a new file for writing with mode `0600` on unix.
///
/// Fails with [`io::ErrorKind::AlreadyExists`] if anything (including a dangling
/// symlink) exists at `path`.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates `path` (and missing parents) as directories with mode `0700` on unix.
///
/// Existing directories are left as they are (their permissions are not changed),
/// so an operator may deliberately widen them, e.g. for a hub running as another user.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Renames `from` to `to` and fsyncs the parent directories of both.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    let to_parent = parent_dir(to);
    sync_dir(to_parent)?;
    let from_parent = parent_dir(from);
    if from_parent != to_parent {
        sync_dir(from_parent)?;
    }
    Ok(())
}

/// Atomically and durably writes `bytes` to `dir/final_name`.
///
/// Returns the final path. See [`write_atomic_from`] for the details.
pub fn write_atomic(dir: &Path, final_name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    write_atomic_from(dir, final_name, bytes).map(|(path, _)| path)
}

/// Atomically and durably streams `reader` into `dir/final_name`.
///
/// The data goes to a fresh `0600` temporary file in `dir` (named
/// `.tmp-<uuid>`), which is fsynced, renamed over `final_name`, after which `dir`
/// is fsynced. On any error the temporary file is removed. `final_name` must be a
/// plain file name (no separators, not `.` or `..`). Returns the final path and the
/// number of bytes written.
pub fn write_atomic_from(
    dir: &Path,
    final_name: &str,
    mut reader: impl Read,
) -> io::Result<(PathBuf, u64)> {
    check_file_name(final_name)?;
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::now_v7()));
    let result = (|| {
        let mut file = create_private(&tmp)?;
        let n = io::copy(&mut reader, &mut file)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        let target = dir.join(final_name);
        fs::rename(&tmp, &target)?;
        sync_dir(dir)?;
        Ok((target, n))
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist (creation failed) or may
        // already have been renamed (only the directory sync failed).
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Why a file named on the command line (or handed to the pipeline) was not opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Nothing at that path.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A directory: name the files in it instead.
    #[error("{}: is a directory, not a file; name the files in it", path.display())]
    Directory {
        /// The path as given.
        path: PathBuf,
    },
    /// A device, FIFO or socket: reading one could block or never end.
    #[error("{}: is {kind}, not a regular file; only regular files are read", path.display())]
    NotRegular {
        /// The path as given.
        path: PathBuf,
        /// What it is, e.g. "a FIFO (named pipe)".
        kind: &'static str,
    },
    /// Any other failure (permissions...).
    #[error("{}: cannot open: {error}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
}

impl InputError {
    /// True when the path exists but is not a regular file.
    pub fn is_not_regular(&self) -> bool {
        matches!(
            self,
            InputError::Directory { .. } | InputError::NotRegular { .. }
        )
    }
}

/// Opens `path` for reading only if it is a regular file; returns it with its size.
///
/// The file is opened with `O_NONBLOCK` and then checked with `fstat` on the open descriptor:
/// opening a FIFO without it blocks until a writer appears, and checking the path before
/// opening it would leave a window in which it could be swapped for a FIFO or a device
/// (`/dev/zero` never ends). `O_NONBLOCK` has no effect on reads of regular files.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(error) => {
            return Err(match error.kind() {
                io::ErrorKind::NotFound => InputError::NotFound {
                    path: path.to_owned(),
                },
                // A socket cannot be opened at all (ENXIO): say what it is.
                _ => match fs::metadata(path) {
                    Ok(m) if !m.is_file() => not_regular(path, &m.file_type()),
                    _ => InputError::Io {
                        path: path.to_owned(),
                        error,
                    },
                },
            });
        }
    };
    let meta = file.metadata().map_err(|error| InputError::Io {
        path: path.to_owned(),
        error,
    })?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    Ok((file, meta.len()))
}

fn not_regular(path: &Path, t: &fs::FileType) -> InputError {
    if t.is_dir() {
        return InputError::Directory {
            path: path.to_owned(),
        };
    }
    #[cfg(unix)]
    let kind = {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        }
    };
    #[cfg(not(unix))]
    let kind = "a special file";
    InputError::NotRegular {
        path: path.to_owned(),
        kind,
    }
}

/// Rejects anything but a plain, non-empty file name.
pub fn check_file_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name().is_some_and(|n| n == name);
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a plain file name: {name:?}"),
        ))
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), at most 2^20 (also when unlimited).
pub fn descriptor_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
        .min(1 << 20)
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime and systemd services do):
/// the soft 1,024 of many shells is far below what a server with many connections needs.
/// Returns the limit in force afterwards.
pub fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    descriptor_limit()
}

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A reader that hashes (SHA-256) and counts what is read through it, so that a payload read
/// for another purpose need not be read again to learn its digest.
pub struct Hashing<R> {
    inner: R,
    sha: openssl::sha::Sha256,
    size: u64,
}

impl<R: Read> Hashing<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            sha: openssl::sha::Sha256::new(),
            size: 0,
        }
    }

    /// Reads the rest to the end, then gives the lowercase hex SHA-256 and the size of all of it.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        // Large reads: a payload or an imported file may be gigabytes.
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((hex::encode(self.sha.finish()), self.size))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashing_covers_what_the_reader_took_and_the_rest() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut hashing = super::Hashing::new(&data[..]);
        let mut first = [0u8; 1000];
        std::io::Read::read_exact(&mut hashing, &mut first).unwrap();
        let (sha, size) = hashing.finish().unwrap();
        assert_eq!(sha, hex::encode(openssl::sha::sha256(&data)));
        assert_eq!(size, data.len() as u64);
    }

    use super::*;

    #[test]
    fn write_atomic_creates_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_atomic(dir.path(), "a.json", b"{}").unwrap();
        assert_eq!(path, dir.path().join("a.json"));
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn write_atomic_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a", b"one").unwrap();
        write_atomic(dir.path(), "a", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"two");
    }

    #[test]
    fn write_atomic_refuses_names_with_path_components() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "/etc/passwd"] {
            let err = write_atomic(dir.path(), bad, b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_and_directories_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x/y");
        create_private_dir(&sub).unwrap();
        let mode = fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let path = write_atomic(&sub, "f", b"x").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = create_private(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[cfg(unix)]
    #[test]
    fn open_regular_refuses_directories_devices_and_fifos_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("is a FIFO (named pipe)"), "{e}");
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("is a character device"), "{e}");
        let e = open_regular(dir.path()).unwrap_err();
        assert!(matches!(e, InputError::Directory { .. }), "{e}");
        let e = open_regular(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().ends_with("missing: no such file"), "{e}");
        fs::write(dir.path().join("f"), b"abc").unwrap();
        let (_, size) = open_regular(&dir.path().join("f")).unwrap();
        assert_eq!(size, 3);
    }

    #[test]
    fn rename_durable_moves_between_directories() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        create_private_dir(&a).unwrap();
        create_private_dir(&b).unwrap();
        fs::write(a.join("f"), b"x").unwrap();
        rename_durable(&a.join("f"), &b.join("g")).unwrap();
        assert!(!a.join("f").exists());
        assert_eq!(fs::read(b.join("g")).unwrap(), b"x");
    }
}
