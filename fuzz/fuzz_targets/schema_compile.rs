//! Compiles arbitrary bytes as a schema document, confined to a fresh temporary directory.
//!
//! Invariant: `Schema::compile` returns `Ok` or `Err`, never panics (include/import/redefine
//! of anything outside the directory must be refused, not followed).
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory under the system temp dir, removed on drop (no extra dependency needed).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("gateway-fuzz-schema-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = TempDir::new();
    let file = dir.0.join("fuzz.xsd");
    std::fs::write(&file, data).expect("write temp schema");
    let _ = xsd::Schema::compile(&[file], &dir.0);
});
