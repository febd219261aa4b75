//! The watched folders when several instances share the ledger: one instance at a time
//! watches them, the one holding the ledger's `inbox` job. It checks every second; when the
//! holder dies, its lease runs out and another instance takes the job, processing first what
//! the dead one left in `.processing/` (the ledger's dedupe answers what it had already
//! forwarded). An instance that loses the job (it could not renew its lease) stops watching.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::FolderSource;
use crate::pipeline::Gateway;

/// The name of the job in the ledger.
const JOB: &str = "inbox";

/// The folder channel of an instance that shares the ledger.
pub struct HeldFolders {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HeldFolders {
    /// Starts asking for the job; watches the folders while this instance holds it.
    pub fn start(gateway: Arc<Gateway>, shutdown: Arc<AtomicBool>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("inbox-holder".into())
            .spawn({
                let stop = stop.clone();
                move || hold(&gateway, &shutdown, &stop)
            })?;
        Ok(HeldFolders {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops watching (finishing the files in progress) and gives the job up.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the inbox holder thread panicked");
        }
    }
}

fn hold(gateway: &Arc<Gateway>, shutdown: &AtomicBool, stop: &AtomicBool) {
    let Some(fw) = &gateway.forwarding else {
        return;
    };
    let mut watching: Option<(FolderSource, Arc<AtomicBool>)> = None;
    let done = || shutdown.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst);
    while !done() {
        let holds = match fw.store.hold(JOB) {
            Ok(h) => h,
            Err(e) => {
                // Unsure is not holding: another instance may have taken it over.
                tracing::warn!(error = %e, "cannot ask the ledger who watches the inbox folders");
                false
            }
        };
        match (holds, watching.is_some()) {
            (true, false) => {
                let flag = Arc::new(AtomicBool::new(false));
                match FolderSource::start(gateway.clone(), flag.clone()) {
                    Ok(source) => {
                        tracing::info!("this instance now watches the inbox folders");
                        watching = Some((source, flag));
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the watched folders"),
                }
            }
            (false, true) => {
                if let Some((source, _)) = watching.take() {
                    tracing::warn!("another instance watches the inbox folders now; stopping here");
                    source.stop();
                }
            }
            _ => {}
        }
        for _ in 0..10 {
            if done() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if let Some((source, flag)) = watching {
        flag.store(true, Ordering::SeqCst);
        source.stop();
    }
}
