//! Background WAL checkpoints for the SQLite ledger.
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, with the
//! connection lock held: every other message waits while it copies pages into the database and
//! fsyncs it (with checkpoints every 8,192 pages, p99 latency under `bench/load-ab.sh` rose from
//! 63-106 ms to 88-97 ms). Here a thread with its own connection runs a passive checkpoint at a
//! fixed interval, which never blocks the writer: WAL writers and a checkpointer use different
//! locks. The writer's automatic checkpoint stays on, at a high threshold, as a backstop should
//! this thread fall behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval` until dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    frames: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`.
    pub(super) fn start(path: &Path, interval: Duration) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let frames = Arc::new(AtomicU64::new(0));
        let counted = frames.clone();
        let path: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || run(&path, interval, &stopped, &counted))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            frames,
        })
    }

    /// WAL frames copied into the database so far, at least (when the WAL starts over between
    /// two checkpoints, up to the previous count of its frames can be missed).
    pub(super) fn checkpointed_frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

fn run(path: &Path, interval: Duration, stopped: &mpsc::Receiver<()>, frames: &AtomicU64) {
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ledger checkpoints run inline: cannot open a second connection");
            return;
        }
    };
    let mut warned = false;
    // The pragma reports frames checkpointed in the current WAL, cumulatively; the WAL starts
    // over once it has been checkpointed whole and a writer comes.
    let mut seen: u64 = 0;
    // Either a stop message or the store being dropped (the sender with it) ends the loop.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        // (busy, frames in the WAL, frames checkpointed); a passive checkpoint never waits.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) {
            Ok((_, _, done)) => {
                let done = u64::try_from(done).unwrap_or(0);
                let copied = if done >= seen { done - seen } else { done };
                seen = done;
                frames.fetch_add(copied, Ordering::Relaxed);
                warned = false;
            }
            Err(e) if !warned => {
                tracing::warn!(error = %e, "ledger checkpoint failed; retrying");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
