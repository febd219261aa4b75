//! Whether the gateway can take messages now: the queue exists and every volume it writes to
//! (`state/`, the outbox, the quarantine) has room. `/readyz` says "not ready" while one is
//! low, so a load balancer moves senders elsewhere *before* writes start failing.

use std::path::PathBuf;

use crate::config::Config;

/// One volume the gateway writes to.
#[derive(Debug)]
pub struct Volume {
    /// `state`, `outbox` or `quarantine`.
    pub name: &'static str,
    /// The folder on it.
    pub path: PathBuf,
    /// Bytes free for the gateway, if the filesystem could be asked.
    pub free: Option<u64>,
}

impl Volume {
    /// Below the configured minimum (an unreadable volume counts as low).
    pub fn low(&self, min_free: u64) -> bool {
        self.free.is_none_or(|f| f < min_free)
    }
}

/// The volumes the gateway writes to, with their free space now.
pub fn volumes(cfg: &Config) -> Vec<Volume> {
    [
        ("state", cfg.state.clone()),
        ("outbox", cfg.queue_dir()),
        ("quarantine", cfg.quarantine_dir()),
    ]
    .into_iter()
    .map(|(name, path)| Volume {
        name,
        free: nearest_existing(&path).and_then(|p| crate::fsio::free_bytes(&p).ok()),
        path,
    })
    .collect()
}

/// The folder itself or its closest existing ancestor (the quarantine is created on first use).
fn nearest_existing(path: &std::path::Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.is_dir()).map(PathBuf::from)
}

/// Why the gateway is not ready, in a sentence per cause; empty when it is.
pub fn not_ready(cfg: &Config) -> Vec<String> {
    let mut why = Vec::new();
    let queue = cfg.queue_dir().join("new");
    if !std::fs::metadata(&queue).is_ok_and(|m| m.is_dir()) {
        why.push(format!("the queue folder {} is missing", queue.display()));
    }
    let min = cfg.limits.min_free_disk_bytes;
    for v in volumes(cfg) {
        if v.low(min) {
            why.push(match v.free {
                Some(free) => format!(
                    "{} ({}) has {free} bytes free, below limits.min_free_disk_bytes = {min}",
                    v.name,
                    v.path.display()
                ),
                None => format!(
                    "{} ({}): cannot read its free space",
                    v.name,
                    v.path.display()
                ),
            });
        }
    }
    why
}
