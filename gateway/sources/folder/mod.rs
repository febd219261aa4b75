//! The watched-folder channel: an agency (or an operator on its behalf) drops sealed files
//! into `inbox/<agency>/`; the folder a file is in is what authenticates the agency.
//!
//! ```text
//! inbox/<agency>/<name>                 dropped here
//! inbox/<agency>/.processing/<uuid>.<name>   claimed, being processed
//! inbox/<agency>/accepted/<name>        + <name>.receipt.json, <name>.receipt.p7s
//! inbox/<agency>/rejected/<name>        + <name>.error.json, <name>.error.txt
//! ```
//!
//! - **Complete files only.** Names starting with `.` or ending in `.part`/`.tmp` are never
//!   taken (writers rename them in when done). Otherwise a file becomes a candidate when the
//!   kernel reports it closed after writing or moved in (or a scan finds it), and is taken once
//!   its size and modification time have not changed for `inbox.stable_ms`. A file the watcher
//!   saw being written but not closed is left alone (a create event arrives while the writer is
//!   still busy).
//! - **Claim.** An atomic rename into `.processing/` under a generated name: two watchers can
//!   never both take a file, and nothing the sender chose is used to build a path there.
//! - **Outcome** only after [`Gateway::process_file`] returned: a success is moved to
//!   `accepted/` after the message is durably in the queue; our own failures
//!   (a retryable code: `queue_unavailable`, `internal_error`) go back to the inbox and are
//!   retried with back-off.
//! - **Crash recovery.** Files left in `.processing/` are processed again first; the ledger's
//!   dedupe answers a message that was already forwarded as a duplicate with its original
//!   receipt, so nothing is queued twice.
//! - **Every claim is finished.** A claimed file whose outcome cannot be written (the move out
//!   of `.processing/` or a directory fsync fails) is [`Disposition::Stranded`]: the running
//!   gateway keeps it on a list of its own and hands it to the workers again with back-off
//!   (2 s, doubling, at most 5 minutes) until it is settled, as the crash recovery would. A
//!   claim whose rename took effect but whose fsync failed is processed at once: after a crash
//!   the file is found either in the inbox or in `.processing/`, and both are processed.
//! - **Safety net.** A full scan at start-up, every `inbox.rescan_secs`, and whenever the
//!   watcher reports it lost events.

mod held;
pub(crate) mod names;
pub(crate) mod outcome;
mod scheduler;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

pub use held::HeldFolders;
pub use outcome::{Disposition, Handled};

use crate::keyring::KeyringError;
use crate::message::AgencyName;
use crate::message::Channel;
use crate::pipeline::{Gateway, Outcome};
use crate::rejection::{Code, Rejection};

/// Where accepted files go, inside `inbox/<agency>/`.
pub const ACCEPTED: &str = "accepted";
/// Where rejected files go, inside `inbox/<agency>/`.
pub const REJECTED: &str = "rejected";
/// Where claimed files are while they are processed, inside `inbox/<agency>/`.
pub const PROCESSING: &str = ".processing";

/// Worker threads: the pipeline is CPU-bound per file; two keep a core busy while the other
/// waits on fsync.
const WORKERS: usize = 2;
/// Files handed to the workers and not yet taken; the rest wait in the scheduler.
const QUEUE: usize = 64;

/// Why the folder channel cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// A folder could not be created or read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The agency registry could not be read.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The watcher could not be set up.
    #[error("watching {}: {error}", path.display())]
    Watch {
        /// The folder.
        path: PathBuf,
        /// Why.
        error: notify::Error,
    },
    /// The gateway was loaded as a dry run.
    #[error("the folder channel needs the ledger and queue: load the gateway with forwarding")]
    NoForwarding,
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
}

/// One agency's inbox folder.
#[derive(Debug, Clone)]
pub(crate) struct AgencyDir {
    agency: AgencyName,
    dir: PathBuf,
}

impl AgencyDir {
    fn accepted(&self) -> PathBuf {
        self.dir.join(ACCEPTED)
    }
    fn rejected(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }
    fn processing(&self) -> PathBuf {
        self.dir.join(PROCESSING)
    }
}

/// Creates `inbox/<agency>/{accepted,rejected,.processing}` (0700) for every registered agency.
fn prepare(gateway: &Gateway) -> Result<Vec<AgencyDir>, FolderError> {
    if gateway.forwarding.is_none() {
        return Err(FolderError::NoForwarding);
    }
    let mut dirs = Vec::new();
    for info in crate::keyring::agencies::list(&gateway.config.keys)? {
        let dir = gateway.config.inbox.join(&info.name);
        // The kernel watcher reports absolute paths; ours must compare equal to them.
        let dir = std::path::absolute(&dir).map_err(|error| FolderError::Io {
            path: dir.clone(),
            error,
        })?;
        let agency = match AgencyName::parse(&info.name) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "an agency in the registry has an unusable name; its inbox is not watched");
                continue;
            }
        };
        let d = AgencyDir { dir, agency };
        for sub in [d.accepted(), d.rejected(), d.processing()] {
            crate::fsio::create_private_dir(&sub)
                .map_err(|error| FolderError::Io { path: sub, error })?;
        }
        dirs.push(d);
    }
    Ok(dirs)
}

/// Processes, in the calling thread, everything there is to take now: first the files left in
/// `.processing/` by an interrupted run, then every candidate in every agency's inbox that has
/// not changed for `inbox.stable_ms`. For tests and for one-shot imports; `serve` uses
/// [`FolderSource`].
pub fn scan_once(gateway: &Gateway) -> Result<Vec<Handled>, FolderError> {
    let dirs = prepare(gateway)?;
    let mut done = Vec::new();
    for d in &dirs {
        for (path, name) in leftovers(d)? {
            done.push(handle_claimed(gateway, d, &path, &name));
        }
    }
    let stable = gateway.config.watch.stable;
    for d in &dirs {
        for path in candidates(d)? {
            let settled = std::fs::symlink_metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= stable);
            if settled {
                done.push(handle_inbox_file(gateway, d, &path));
            }
        }
    }
    Ok(done)
}

/// Candidate files directly in an agency's inbox (directories are never candidates).
fn candidates(d: &AgencyDir) -> Result<Vec<PathBuf>, FolderError> {
    let io_err = |error| FolderError::Io {
        path: d.dir.clone(),
        error,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&d.dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(true);
        if !is_dir && names::is_candidate(&entry.file_name()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Files left in `.processing/` by an interrupted run, with their original (sanitised) names.
fn leftovers(d: &AgencyDir) -> Result<Vec<(PathBuf, String)>, FolderError> {
    let dir = d.processing();
    let io_err = |error| FolderError::Io {
        path: dir.clone(),
        error,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let raw = entry.file_name();
        let lossy = raw.to_string_lossy();
        // `<uuid>.<name>`; anything else in there is shown by its own (sanitised) name. The
        // prefix is split off first: sanitising the whole would cut a long name's extension.
        let name = match lossy.split_once('.') {
            Some((id, rest)) if uuid::Uuid::parse_str(id).is_ok() && !rest.is_empty() => {
                names::sanitise(OsStr::new(rest))
            }
            _ => names::sanitise(&raw),
        };
        out.push((entry.path(), name));
    }
    out.sort();
    Ok(out)
}

/// Claims `path` (a file in `d`'s inbox), processes it and writes its outcome.
fn handle_inbox_file(gateway: &Gateway, d: &AgencyDir, path: &Path) -> Handled {
    let raw = path.file_name().unwrap_or(OsStr::new(""));
    let name = names::sanitise(raw);
    if raw != OsStr::new(&name) {
        // The outcome files carry the safe name; this line ties it to the one dropped.
        tracing::info!(agency = %d.agency, original = ?raw, file = %name, "the file's outcome is recorded under a safe name");
    }
    let claimed = d
        .processing()
        .join(format!("{}.{name}", uuid::Uuid::now_v7()));
    match crate::fsio::rename_durable(path, &claimed) {
        Ok(()) => handle_claimed(gateway, d, &claimed, &name),
        // The rename happened, only a directory fsync failed: the file is ours in
        // `.processing/` and is finished now, not left for a restart.
        Err(e) if std::fs::symlink_metadata(&claimed).is_ok() => {
            tracing::warn!(agency = %d.agency, file = %name, error = %e, "the claim could not be made durable; processing the file anyway");
            handle_claimed(gateway, d, &claimed, &name)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Handled {
            agency: d.agency.to_string(),
            name,
            disposition: Disposition::Gone,
        },
        Err(e) => {
            tracing::warn!(agency = %d.agency, file = %name, error = %e, "cannot claim the file; will try again");
            Handled {
                agency: d.agency.to_string(),
                name,
                disposition: Disposition::Gone,
            }
        }
    }
}

/// Processes a claimed file (in `.processing/`) and writes its outcome.
fn handle_claimed(gateway: &Gateway, d: &AgencyDir, claimed: &Path, name: &str) -> Handled {
    let regular = std::fs::symlink_metadata(claimed).map(|m| m.file_type().is_file());
    let outcome = match regular {
        Ok(true) => gateway.process_file(&d.agency, Channel::Folder, claimed),
        // Never followed or opened: a link could point anywhere, a FIFO would block.
        Ok(false) => Outcome::Rejected {
            gateway_message_id: None,
            rejection: Rejection::new(
                Code::NotARegularFile,
                "this is a symbolic link, folder or special file, not a sealed file; it was not opened",
            ),
            quarantined: None,
        },
        Err(e) => {
            tracing::warn!(agency = %d.agency, file = %name, error = %e, "claimed file vanished");
            return Handled {
                agency: d.agency.to_string(),
                name: name.to_owned(),
                disposition: Disposition::Gone,
            };
        }
    };
    let disposition = match outcome::settle(gateway, d, claimed, name, &outcome) {
        Ok(disp) => disp,
        Err(e) => {
            // The pipeline's own record (ledger, queue, quarantine) is complete; only the file
            // could not be moved. It stays in .processing/ and is tried again (`note_stranded`).
            tracing::error!(agency = %d.agency, file = %name, error = %e, "cannot write the outcome; the file stays in .processing/ and is tried again");
            Disposition::Stranded {
                file: claimed.to_path_buf(),
            }
        }
    };
    log(&d.agency, name, &disposition);
    Handled {
        agency: d.agency.to_string(),
        name: name.to_owned(),
        disposition,
    }
}

fn log(agency: &str, name: &str, disposition: &Disposition) {
    match disposition {
        Disposition::Accepted {
            gateway_message_id,
            file,
            ..
        } => {
            tracing::info!(agency, file = %name, id = %gateway_message_id, deleted = file.is_none(), "file accepted")
        }
        Disposition::Rejected { code, .. } => {
            tracing::info!(agency, file = %name, code = %code, "file rejected")
        }
        Disposition::Retry { .. } => {
            tracing::warn!(agency, file = %name, "the queue could not take the file; it will be retried")
        }
        // Logged where the failure is known, with its error.
        Disposition::Stranded { .. } | Disposition::Gone => {}
    }
}

/// The running folder channel: a scheduler thread (watcher events, scans, the stability rule)
/// feeding a small pool of workers through a bounded queue.
pub struct FolderSource {
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// State the scheduler and the workers share.
#[derive(Default)]
struct Shared {
    /// Inbox paths handed to the workers and not finished: never queued twice at once.
    queued: Mutex<HashSet<PathBuf>>,
    /// Back-off for files handed back after a retryable failure: (attempts, not before).
    retry: Mutex<HashMap<PathBuf, (u32, Instant)>>,
    /// Files this process claimed and could not settle, by their path in `.processing/`.
    stranded: Mutex<HashMap<PathBuf, Stranded>>,
}

/// A claimed file waiting to be settled again.
#[derive(Debug, Clone)]
struct Stranded {
    dir: usize,
    name: String,
    attempts: u32,
    not_before: Instant,
}

/// Work for a worker.
enum Job {
    /// A candidate in the inbox, to claim.
    Inbox(usize, PathBuf),
    /// A file left in `.processing/`, with its name.
    Leftover(usize, PathBuf, String),
}

impl FolderSource {
    /// Creates the folders, starts watching every registered agency's inbox and processing
    /// what is there. Setting `shutdown` (or calling [`FolderSource::stop`]) stops it.
    pub fn start(
        gateway: Arc<Gateway>,
        shutdown: Arc<AtomicBool>,
    ) -> Result<FolderSource, FolderError> {
        let dirs = Arc::new(prepare(&gateway)?);
        let (events_tx, events_rx) = mpsc::channel();
        let watcher = scheduler::watch(&gateway.config.watch, &dirs, events_tx)?;
        let mut leftover_jobs = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            for (path, name) in leftovers(d)? {
                leftover_jobs.push(Job::Leftover(i, path, name));
            }
        }
        if !leftover_jobs.is_empty() {
            tracing::info!(
                files = leftover_jobs.len(),
                "files left in .processing/ by an interrupted run are processed again first"
            );
        }
        let shared = Arc::new(Shared::default());
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(QUEUE);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut threads = Vec::new();
        for n in 0..WORKERS {
            let (gateway, dirs, shared, rx, shutdown) = (
                gateway.clone(),
                dirs.clone(),
                shared.clone(),
                jobs_rx.clone(),
                shutdown.clone(),
            );
            let t = std::thread::Builder::new()
                .name(format!("inbox-worker-{n}"))
                .spawn(move || worker(&gateway, &dirs, &shared, &rx, &shutdown))
                .map_err(FolderError::Thread)?;
            threads.push(t);
        }
        let sched = scheduler::Scheduler::new(
            gateway.config.watch.clone(),
            dirs.clone(),
            shared,
            jobs_tx,
            shutdown.clone(),
        );
        let t = std::thread::Builder::new()
            .name("inbox-scheduler".into())
            .spawn(move || sched.run(watcher, events_rx, leftover_jobs))
            .map_err(FolderError::Thread)?;
        threads.push(t);
        tracing::info!(
            agencies = dirs.len(),
            inbox = %gateway.config.inbox.display(),
            poll = gateway.config.watch.poll,
            "watching the inbox folders"
        );
        Ok(FolderSource { shutdown, threads })
    }

    /// Stops watching, lets the files being processed finish, and returns when they have.
    /// Files queued but not yet claimed stay in the inbox for the next start.
    pub fn stop(self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("an inbox thread panicked");
            }
        }
    }
}

fn worker(
    gateway: &Gateway,
    dirs: &[AgencyDir],
    shared: &Shared,
    rx: &Mutex<mpsc::Receiver<Job>>,
    shutdown: &AtomicBool,
) {
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        match job {
            Job::Leftover(i, path, name) => {
                if !shutdown.load(Ordering::SeqCst)
                    && let Some(d) = dirs.get(i)
                {
                    let handled = handle_claimed(gateway, d, &path, &name);
                    note_stranded(shared, i, &path, &handled);
                }
                if let Ok(mut q) = shared.queued.lock() {
                    q.remove(&path);
                }
            }
            Job::Inbox(i, path) => {
                if !shutdown.load(Ordering::SeqCst)
                    && let Some(d) = dirs.get(i)
                {
                    let handled = handle_inbox_file(gateway, d, &path);
                    note_retry(shared, &path, &handled.disposition);
                    if let Disposition::Stranded { file } = &handled.disposition {
                        note_stranded(shared, i, file, &handled);
                    }
                }
                if let Ok(mut q) = shared.queued.lock() {
                    q.remove(&path);
                }
            }
        }
    }
}

/// The wait before attempt `attempts + 1`: 2 s, doubling, at most 5 minutes.
fn back_off(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(9)).min(Duration::from_secs(300))
}

/// Records the back-off of a file handed back to the inbox.
fn note_retry(shared: &Shared, from: &Path, disposition: &Disposition) {
    let Ok(mut retry) = shared.retry.lock() else {
        return;
    };
    let previous = retry.remove(from).map(|(n, _)| n).unwrap_or(0);
    if let Disposition::Retry { file } = disposition {
        let attempts = previous.saturating_add(1);
        retry.insert(
            file.clone(),
            (attempts, Instant::now() + back_off(attempts)),
        );
    }
}

/// Keeps a claimed file that is still in `.processing/` (at `claimed`) on the stranded list
/// with the time of its next attempt, or takes it off once it was settled.
fn note_stranded(shared: &Shared, dir: usize, claimed: &Path, handled: &Handled) {
    let Ok(mut stranded) = shared.stranded.lock() else {
        return;
    };
    let previous = stranded.remove(claimed).map(|s| s.attempts).unwrap_or(0);
    if let Disposition::Stranded { file } = &handled.disposition {
        let attempts = previous.saturating_add(1);
        let delay = back_off(attempts);
        tracing::info!(agency = %handled.agency, file = %handled.name, attempts, retry_in_secs = delay.as_secs(), "a claimed file will be settled again");
        stranded.insert(
            file.clone(),
            Stranded {
                dir,
                name: handled.name.clone(),
                attempts,
                not_before: Instant::now() + delay,
            },
        );
    }
}
