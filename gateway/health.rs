//! Whether the gateway can take messages now: the queue can (for the outbox, its folder
//! exists) and every volume it writes to (`state/`, the outbox, the quarantine) has room.
//! `/readyz` says "not ready" while one is low, so a load balancer moves senders elsewhere
//! *before* writes start failing. Also the gauges `/metrics` shows that are read from outside
//! the process (queue depth, free space, key expiry), refreshed on each scrape off the async
//! threads.

use std::path::PathBuf;

use crate::config::Config;
use crate::metrics::KeyLabels;
use crate::pipeline::Gateway;

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
pub fn not_ready(gw: &Gateway) -> Vec<String> {
    let cfg = &gw.config;
    let mut why = Vec::new();
    if let Some(fw) = &gw.forwarding {
        why.extend(fw.sink.not_ready());
        why.extend(fw.store.not_ready());
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

/// Reads what the gauges show from outside the process: whether the ledger and the queue can
/// take messages, the queue's depth, each volume's free space and every key's days to expiry.
/// Blocking (it asks the ledger and the queue, and reads `keys/`): call it off the async
/// threads.
pub fn refresh_gauges(gw: &Gateway) {
    let cfg = &gw.config;
    for v in volumes(cfg) {
        gw.metrics
            .set_volume(v.name, v.free, v.low(cfg.limits.min_free_disk_bytes));
    }
    if let Some(fw) = &gw.forwarding {
        gw.metrics
            .set_part_ready("ledger", fw.store.not_ready().is_none());
        gw.metrics
            .set_part_ready("queue", fw.sink.not_ready().is_none());
        match fw.sink.depth() {
            Ok(depth) => gw.metrics.set_queue_depth(depth),
            Err(e) => tracing::warn!(error = %e, "cannot count the messages in the queue"),
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let keys = crate::keyring::inventory::inventory(&cfg.keys, now)
        .into_iter()
        .filter(|e| e.still_in_use())
        .filter_map(|e| {
            let days = e.days_left?;
            let labels = KeyLabels {
                kind: e.kind.to_owned(),
                owner: e.owner,
                fingerprint: e.id,
            };
            Some((labels, days))
        });
    gw.metrics.set_key_expiries(keys);
}
