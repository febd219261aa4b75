//! Reloading `keys/` while serving: on a change under `keys/` (notify), on SIGHUP, and
//! periodically (grace periods end, a notification can be missed). Each reload re-reads the
//! identities and agency trust (tokens follow them) and the TLS certificate; whatever fails
//! to load keeps its previous good state and the error is logged with the file's name.
//! It also warns, once per threshold, about keys and certificates that expire within 30, 7
//! or 1 day(s).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::Watcher;

use crate::http::tls::LiveAcceptor;
use crate::pipeline::Gateway;

/// Why a reload ran.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Change,
    Hangup,
    Period,
}

/// The reload thread; stops with the shutdown flag.
pub struct Reloader {
    thread: Option<JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
    changes: mpsc::Sender<()>,
}

impl Reloader {
    /// Starts watching `keys/` for `gateway` and `tls`.
    pub fn start(
        gateway: Arc<Gateway>,
        tls: Arc<LiveAcceptor>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Reloader> {
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())?;
        let (tx, rx) = mpsc::channel::<()>();
        let keys = gateway.config.keys.clone();
        let changes = tx.clone();
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            if e.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| {
            w.watch(&keys, notify::RecursiveMode::Recursive)?;
            Ok(w)
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, keys = %gateway.config.keys.display(),
                    "cannot watch keys/ for changes; reloading on SIGHUP and periodically only");
                None
            }
        };
        let thread = std::thread::Builder::new()
            .name("key-reload".into())
            .spawn(move || run(&gateway, &tls, &shutdown, &hangup, &rx))?;
        Ok(Reloader {
            thread: Some(thread),
            _watcher: watcher,
            changes,
        })
    }

    /// Something that reloads `keys/` now when called (an admin change announced by another
    /// instance).
    pub fn trigger(&self) -> Box<dyn Fn(&str) + Send> {
        let tx = self.changes.clone();
        Box::new(move |what| {
            tracing::info!(
                change = what,
                "admin change announced on the ledger; reloading keys/"
            );
            let _ = tx.send(());
        })
    }

    /// Waits for the thread (after the shutdown flag is set).
    pub fn stop(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    gateway: &Gateway,
    tls: &LiveAcceptor,
    shutdown: &AtomicBool,
    hangup: &AtomicBool,
    changes: &mpsc::Receiver<()>,
) {
    let period = gateway.config.key_policy.reload;
    let mut warned = BTreeMap::new();
    warn_expiring(gateway, &mut warned);
    let mut next_periodic = Instant::now() + period;
    while !shutdown.load(Ordering::SeqCst) {
        let trigger = match changes.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => {
                // Let a burst settle (a key and its certificate written one after the other).
                std::thread::sleep(Duration::from_millis(300));
                while changes.try_recv().is_ok() {}
                Some(Trigger::Change)
            }
            Err(_) if hangup.swap(false, Ordering::SeqCst) => Some(Trigger::Hangup),
            Err(_) if Instant::now() >= next_periodic => Some(Trigger::Period),
            Err(_) => None,
        };
        let Some(trigger) = trigger else { continue };
        next_periodic = Instant::now() + period;
        reload(gateway, tls, trigger);
        warn_expiring(gateway, &mut warned);
    }
}

fn reload(gateway: &Gateway, tls: &LiveAcceptor, trigger: Trigger) {
    let keys = gateway.keyring.reload();
    let cert = tls.reload();
    let quiet = matches!(trigger, Trigger::Period);
    match (&keys, &cert) {
        (Ok(()), Ok(changed)) if !quiet => {
            tracing::info!(?trigger, tls_replaced = changed, "keys reloaded")
        }
        _ => {}
    }
    if let Err(e) = &cert {
        tracing::error!(error = %e, "the TLS certificate could not be reloaded; still serving the previous one");
    }
    // A keyring error is logged by the keyring itself, with the file.
    gateway.metrics.record_reload(keys.is_ok() && cert.is_ok());
}

/// Logs a warning for each key or certificate that crossed a threshold (30, 7, 1 days, and
/// expiry) since the last check; each crossing is logged once per run.
fn warn_expiring(gateway: &Gateway, warned: &mut BTreeMap<String, i64>) {
    use crate::keyring::inventory::{inventory, warning_threshold};
    for e in inventory(&gateway.config.keys, time::OffsetDateTime::now_utc()) {
        let Some(days) = e.days_left.filter(|_| e.still_in_use()) else {
            continue;
        };
        let Some(threshold) = warning_threshold(days) else {
            continue;
        };
        let key = format!("{}/{}/{}", e.kind, e.owner, e.id);
        if warned.get(&key) == Some(&threshold) {
            continue;
        }
        warned.insert(key, threshold);
        if threshold == 0 {
            tracing::warn!(kind = e.kind, owner = %e.owner, id = %e.id, subject = %e.subject,
                until = e.until.as_deref().unwrap_or("?"), "a key or certificate has expired");
        } else {
            tracing::warn!(kind = e.kind, owner = %e.owner, id = %e.id, subject = %e.subject,
                until = e.until.as_deref().unwrap_or("?"), days_left = days,
                "a key or certificate expires within {threshold} day(s)");
        }
    }
}
