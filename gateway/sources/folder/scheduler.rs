//! Deciding when a file is complete: watcher events and scans make candidates; a candidate is
//! handed to the workers once it has stood unchanged (size and modification time) for
//! `inbox.stable_ms`, is not being written, and is not waiting out a retry back-off.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use super::{AgencyDir, FolderError, Job, Shared, candidates, names};
use crate::config::Inbox;

type Events = mpsc::Receiver<notify::Result<Event>>;

/// Starts the kernel watcher (or the polling one) on every agency's inbox, not recursively:
/// our own `accepted/`, `rejected/` and `.processing/` are of no interest.
pub(super) fn watch(
    config: &Inbox,
    dirs: &[AgencyDir],
    tx: mpsc::Sender<notify::Result<Event>>,
) -> Result<Box<dyn Watcher + Send>, FolderError> {
    let mut watcher: Box<dyn Watcher + Send> = if config.poll {
        let poll = notify::Config::default().with_poll_interval(
            config
                .stable
                .clamp(Duration::from_millis(100), Duration::from_secs(2)),
        );
        Box::new(
            notify::PollWatcher::new(tx, poll).map_err(|error| FolderError::Watch {
                path: PathBuf::new(),
                error,
            })?,
        )
    } else {
        Box::new(
            notify::recommended_watcher(tx).map_err(|error| FolderError::Watch {
                path: PathBuf::new(),
                error,
            })?,
        )
    };
    for d in dirs {
        watcher
            .watch(&d.dir, RecursiveMode::NonRecursive)
            .map_err(|error| FolderError::Watch {
                path: d.dir.clone(),
                error,
            })?;
    }
    Ok(watcher)
}

/// Whether `path` is a regular file with more than one name (just made by `link`).
fn is_hard_link(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.nlink() > 1)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// A file that may be taken once it is complete.
struct Pending {
    dir: usize,
    /// The watcher saw it being written and not yet closed.
    writing: bool,
    last_event: Instant,
    /// Size, modification time and whether it is a link, at the last look.
    seen: Option<(u64, Option<SystemTime>, bool)>,
    /// Since when `seen` has not changed.
    since: Instant,
}

pub(super) struct Scheduler {
    config: Inbox,
    dirs: Arc<Vec<AgencyDir>>,
    shared: Arc<Shared>,
    jobs: mpsc::SyncSender<Job>,
    shutdown: Arc<AtomicBool>,
    pending: HashMap<PathBuf, Pending>,
    rescan: bool,
}

impl Scheduler {
    pub(super) fn new(
        config: Inbox,
        dirs: Arc<Vec<AgencyDir>>,
        shared: Arc<Shared>,
        jobs: mpsc::SyncSender<Job>,
        shutdown: Arc<AtomicBool>,
    ) -> Scheduler {
        Scheduler {
            config,
            dirs,
            shared,
            jobs,
            shutdown,
            pending: HashMap::new(),
            rescan: true,
        }
    }

    /// Runs until shutdown; dropping the job sender on return lets the workers finish.
    pub(super) fn run(
        mut self,
        watcher: Box<dyn Watcher + Send>,
        events: Events,
        leftovers: Vec<Job>,
    ) {
        for job in leftovers {
            if self.shutdown.load(Ordering::SeqCst) || self.jobs.send(job).is_err() {
                return;
            }
        }
        let tick =
            (self.config.stable / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut next_scan = Instant::now();
        let mut watching = true;
        while !self.shutdown.load(Ordering::SeqCst) {
            if watching {
                match events.recv_timeout(tick) {
                    Ok(ev) => self.event(ev),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        tracing::error!(
                            "the folder watcher stopped; only the periodic scans remain"
                        );
                        watching = false;
                    }
                }
                // Bounded, so a storm of events cannot starve the hand-off below.
                for _ in 0..50_000 {
                    match events.try_recv() {
                        Ok(ev) => self.event(ev),
                        Err(_) => break,
                    }
                }
            } else {
                std::thread::sleep(tick);
            }
            let now = Instant::now();
            if self.rescan || now >= next_scan {
                self.rescan = false;
                self.scan();
                next_scan = now + self.config.rescan;
            }
            self.hand_off();
        }
        drop(watcher);
    }

    fn event(&mut self, ev: notify::Result<Event>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "folder watcher error; rescanning");
                self.rescan = true;
                return;
            }
        };
        if ev.need_rescan() {
            tracing::info!("the folder watcher lost events; rescanning");
            self.rescan = true;
        }
        let poll = self.config.poll;
        match ev.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &ev.paths {
                    self.candidate(p, false);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for p in &ev.paths {
                    self.pending.remove(p);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let Some(p) = ev.paths.first() {
                    self.pending.remove(p);
                }
                if let Some(p) = ev.paths.last() {
                    self.candidate(p, false);
                }
            }
            EventKind::Modify(ModifyKind::Name(_)) => {
                for p in &ev.paths {
                    self.candidate(p, false);
                }
            }
            // A chmod, chown, touch or a new hard link says nothing about the contents being
            // written: a file waiting for its close stays so, any other becomes a candidate
            // now (`cp` then `chmod` must not wait for the rescan).
            EventKind::Modify(ModifyKind::Metadata(_)) => {
                for p in &ev.paths {
                    let writing = self.pending.get(p).is_some_and(|p| p.writing);
                    self.candidate(p, writing);
                }
            }
            // A hard link (`ln elsewhere/x inbox/`) is reported as a create, but its contents
            // are complete and no close follows: with more than one link the name is a link,
            // and stability alone decides.
            EventKind::Create(_) => {
                for p in &ev.paths {
                    self.candidate(p, !poll && !is_hard_link(p));
                }
            }
            // Without kernel notifications there is no close event: stability alone decides.
            EventKind::Modify(_) => {
                for p in &ev.paths {
                    self.candidate(p, !poll);
                }
            }
            _ => {}
        }
    }

    fn dir_of(&self, path: &Path) -> Option<usize> {
        let parent = path.parent()?;
        self.dirs.iter().position(|d| d.dir == parent)
    }

    fn candidate(&mut self, path: &Path, writing: bool) {
        let Some(name) = path.file_name() else { return };
        if !names::is_candidate(name) {
            return;
        }
        let Some(dir) = self.dir_of(path) else { return };
        let now = Instant::now();
        let p = self.pending.entry(path.to_path_buf()).or_insert(Pending {
            dir,
            writing,
            last_event: now,
            seen: None,
            since: now,
        });
        p.writing = writing;
        p.last_event = now;
        p.since = now;
    }

    fn scan(&mut self) {
        let now = Instant::now();
        for (i, d) in self.dirs.iter().enumerate() {
            let found = match candidates(d) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(agency = %d.agency, error = %e, "cannot scan the inbox");
                    continue;
                }
            };
            for path in found {
                self.pending.entry(path).or_insert(Pending {
                    dir: i,
                    writing: false,
                    last_event: now,
                    seen: None,
                    since: now,
                });
            }
        }
    }

    /// Hands claimed files whose outcome could not be written back to the workers once their
    /// back-off has passed: a claimed file is never left for a restart.
    fn hand_off_stranded(&mut self) {
        let now = Instant::now();
        let due: Vec<(PathBuf, usize, String)> = match self.shared.stranded.lock() {
            Ok(s) => s
                .iter()
                .filter(|(_, s)| s.not_before <= now)
                .map(|(p, s)| (p.clone(), s.dir, s.name.clone()))
                .collect(),
            Err(_) => return,
        };
        for (path, dir, name) in due {
            {
                let Ok(mut queued) = self.shared.queued.lock() else {
                    return;
                };
                if !queued.insert(path.clone()) {
                    continue;
                }
            }
            if self
                .jobs
                .try_send(Job::Leftover(dir, path.clone(), name))
                .is_err()
            {
                if let Ok(mut queued) = self.shared.queued.lock() {
                    queued.remove(&path);
                }
                return;
            }
        }
    }

    /// Hands every complete candidate to the workers, as far as the queue has room.
    fn hand_off(&mut self) {
        self.hand_off_stranded();
        let now = Instant::now();
        // A file whose close we never saw (lost events) is taken after this long of quiet.
        let writing_timeout = self.config.rescan.max(self.config.stable * 10);
        let stable = self.config.stable;
        let mut ready = Vec::new();
        let mut gone = Vec::new();
        for (path, p) in self.pending.iter_mut() {
            if p.writing && now.duration_since(p.last_event) < writing_timeout {
                continue;
            }
            let meta = match fs::symlink_metadata(path) {
                Ok(m) => m,
                Err(_) => {
                    gone.push(path.clone());
                    continue;
                }
            };
            if meta.is_dir() {
                gone.push(path.clone());
                continue;
            }
            let seen = Some((
                meta.len(),
                meta.modified().ok(),
                meta.file_type().is_symlink(),
            ));
            if p.seen != seen {
                p.seen = seen;
                p.since = now;
                continue;
            }
            if now.duration_since(p.since) >= stable {
                ready.push((path.clone(), p.dir));
            }
        }
        for path in gone {
            self.pending.remove(&path);
        }
        ready.sort();
        let Ok(retry) = self.shared.retry.lock().map(|r| r.clone()) else {
            return;
        };
        for (path, dir) in ready {
            if retry.get(&path).is_some_and(|(_, at)| *at > now) {
                continue;
            }
            {
                let Ok(mut queued) = self.shared.queued.lock() else {
                    return;
                };
                // Still being processed under this name: look again next tick.
                if !queued.insert(path.clone()) {
                    continue;
                }
            }
            match self.jobs.try_send(Job::Inbox(dir, path.clone())) {
                Ok(()) => {
                    self.pending.remove(&path);
                }
                Err(_) => {
                    if let Ok(mut queued) = self.shared.queued.lock() {
                        queued.remove(&path);
                    }
                    return;
                }
            }
        }
    }
}
