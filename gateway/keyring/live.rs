//! The keyring a running gateway uses, swapped whole when `keys/` changes.
//!
//! Each payload takes an `Arc` of the keyring at its start and keeps it to the end, so a
//! reload never changes the keys under a payload in flight. A reload that fails (a broken
//! file dropped into `keys/`) keeps the previous keyring and says why; the next change retries.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::{Keyring, KeyringError, Passphrase, generation_path};

/// Identity of the generation marker's content: any rewrite (atomic rename) changes it.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// A keyring that follows `keys/`.
pub struct LiveKeyring {
    keys: PathBuf,
    passphrase: Passphrase,
    current: RwLock<Arc<Keyring>>,
    seen: Mutex<Stamp>,
    last_error: Mutex<Option<String>>,
    generation: std::sync::atomic::AtomicU64,
}

impl LiveKeyring {
    /// Loads `keys/` (start-up: any error is fatal).
    pub fn load(keys: &Path, passphrase: &Passphrase) -> Result<LiveKeyring, KeyringError> {
        let seen = stamp(&generation_path(keys));
        let ring = Keyring::load_with(keys, passphrase, None)?;
        Ok(LiveKeyring {
            keys: keys.to_path_buf(),
            passphrase: passphrase.clone(),
            current: RwLock::new(Arc::new(ring)),
            seen: Mutex::new(seen),
            last_error: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The keyring for one payload: reloaded first if an admin command changed `keys/`
    /// since the last load, so a revocation applies to the very next payload.
    pub fn get(&self) -> Arc<Keyring> {
        let now = stamp(&generation_path(&self.keys));
        let changed = self.seen.lock().map(|s| *s != now).unwrap_or(false);
        if changed {
            let _ = self.reload();
        }
        self.snapshot()
    }

    /// The keyring as loaded, without looking at `keys/`.
    pub fn snapshot(&self) -> Arc<Keyring> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads `keys/`. On failure the previous keyring stays in use and the error is
    /// returned (and kept for [`LiveKeyring::last_error`]).
    pub fn reload(&self) -> Result<(), KeyringError> {
        // One reload at a time; a payload that finds a reload running waits for its result.
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let marker = stamp(&generation_path(&self.keys));
        let previous = self.snapshot();
        let result = Keyring::load_with(&self.keys, &self.passphrase, Some(&previous));
        *seen = marker;
        match result {
            Ok(ring) => {
                if let Ok(mut c) = self.current.write() {
                    *c = Arc::new(ring);
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::debug!(keys = %self.keys.display(), "keys reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "keys could not be reloaded; still using the previous keys");
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Counts successful reloads: whatever else is derived from `keys/` (tokens, TLS) is
    /// re-read when this moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Why the last reload failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}
