//! What happens to a claimed file once the pipeline has spoken: accepted (receipt beside it),
//! rejected (reason beside it) or handed back to the inbox to be retried.
//!
//! Outcome files never overwrite anything: a name already used in `accepted/` or `rejected/`
//! gets a suffix. The first sidecar is created with `create_new`, which reserves the name
//! against our own other workers; the file itself is moved with a hard link (which refuses an
//! existing target) and an unlink, falling back to a checked rename where links are not
//! supported.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::AgencyDir;
use super::names;
use crate::fsio;
use crate::message::Receipt;
use crate::pipeline::{Gateway, Outcome};

/// How many suffixed names are tried before a generated one is used.
const MAX_SUFFIX: u32 = 1000;
/// Violations listed in `<name>.error.txt`; all of them are in `<name>.error.json`.
const TXT_VIOLATIONS: usize = 10;

/// What became of one file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "disposition", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Disposition {
    /// Forwarded (or a resend of a forwarded message); the receipt is beside it.
    Accepted {
        /// The gateway's message id.
        gateway_message_id: String,
        /// Where the file now is (`None`: deleted, per `inbox.delete_accepted`).
        file: Option<PathBuf>,
        /// `<name>.receipt.json`.
        receipt: Option<PathBuf>,
    },
    /// Refused; the reason is beside it.
    Rejected {
        /// The stable code.
        code: String,
        /// Where the file now is.
        file: PathBuf,
    },
    /// Our side failed (a retryable code): back in the inbox, to be tried again.
    Retry {
        /// Where the file now is.
        file: PathBuf,
    },
    /// Claimed, but its outcome could not be written (a full or failing disk, a broken
    /// `accepted/` or `rejected/`): it stays in `.processing/` and the running gateway tries
    /// it again with back-off (the ledger answers the second try as a resend, so nothing is
    /// queued twice).
    Stranded {
        /// Where the file is, in `.processing/`.
        file: PathBuf,
    },
    /// Gone before we could claim it (another process took it, or the writer removed it).
    Gone,
}

/// One file handled by the folder channel.
#[derive(Debug, Clone, Serialize)]
pub struct Handled {
    /// The agency whose folder it was in.
    pub agency: String,
    /// Its name, sanitised.
    pub name: String,
    /// What became of it.
    #[serde(flatten)]
    pub disposition: Disposition,
}

/// Writes the outcome of `claimed` (a file in `.processing/`) and moves it out.
pub(super) fn settle(
    gateway: &Gateway,
    dir: &AgencyDir,
    claimed: &Path,
    name: &str,
    outcome: &Outcome,
) -> io::Result<Disposition> {
    if outcome.is_success() {
        return accept(gateway, dir, claimed, name, outcome);
    }
    if let Outcome::Rejected { rejection, .. } = outcome
        && rejection.retryable()
    {
        // A rename, not link + unlink: the watcher reports a link as a create (a file being
        // written) but a rename as moved-in, which is what lets the retry happen on time.
        let free = write_free(&dir.dir, name, &[], true)?;
        let file = dir.dir.join(free);
        fsio::rename_durable(claimed, &file)?;
        return Ok(Disposition::Retry { file });
    }
    let code = code_of(outcome);
    let mut json = serde_json::to_value(outcome).map_err(io::Error::other)?;
    json["file"] = serde_json::Value::String(name.to_owned());
    let json = serde_json::to_vec_pretty(&json).map_err(io::Error::other)?;
    let txt = error_text(name, outcome);
    let file = move_free(
        claimed,
        &dir.rejected(),
        name,
        &[(".error.json", &json), (".error.txt", txt.as_bytes())],
    )?;
    Ok(Disposition::Rejected { code, file })
}

fn accept(
    gateway: &Gateway,
    dir: &AgencyDir,
    claimed: &Path,
    name: &str,
    outcome: &Outcome,
) -> io::Result<Disposition> {
    let (id, receipt): (String, Option<&Receipt>) = match outcome {
        Outcome::Forwarded { facts, receipt } => (facts.gateway_message_id.clone(), Some(receipt)),
        Outcome::Duplicate {
            gateway_message_id,
            receipt,
            ..
        } => (gateway_message_id.clone(), receipt.as_ref()),
        Outcome::Accepted { facts } => (facts.gateway_message_id.clone(), None),
        Outcome::Rejected { .. } => return Err(io::Error::other("a rejection is not a success")),
    };
    let signed = match (receipt, gateway.forwarding.as_ref()) {
        (Some(r), Some(fw)) => match fw.receipts.sign(r) {
            Ok(s) => Some(s),
            Err(e) => {
                // The message is safely queued; only the proof is missing. Say so, keep going.
                tracing::error!(id = %id, error = %e, "the receipt could not be signed");
                None
            }
        },
        _ => None,
    };
    let sidecars: Vec<(&str, &[u8])> = match &signed {
        Some(s) => vec![
            (".receipt.json", s.json.as_slice()),
            (".receipt.p7s", s.signature.as_slice()),
        ],
        None => Vec::new(),
    };
    let accepted = dir.accepted();
    if gateway.config.watch.delete_accepted {
        let final_name = write_free(&accepted, name, &sidecars, false)?;
        fs::remove_file(claimed)?;
        fsio::sync_dir(&dir.processing())?;
        let receipt = signed.map(|_| accepted.join(format!("{final_name}.receipt.json")));
        return Ok(Disposition::Accepted {
            gateway_message_id: id,
            file: None,
            receipt,
        });
    }
    let file = move_free(claimed, &accepted, name, &sidecars)?;
    let receipt = signed.map(|_| {
        let mut p = file.clone().into_os_string();
        p.push(".receipt.json");
        PathBuf::from(p)
    });
    Ok(Disposition::Accepted {
        gateway_message_id: id,
        file: Some(file),
        receipt,
    })
}

fn code_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rejected { rejection, .. } => rejection.code.as_str().to_owned(),
        Outcome::Duplicate { original_code, .. } => original_code
            .clone()
            .unwrap_or_else(|| "duplicate".to_owned()),
        _ => String::new(),
    }
}

/// Moves `from` into `to_dir` under `name` (suffixed if taken), with `sidecars` (suffix,
/// contents) written first as `<final name><suffix>`. Returns the file's new path.
fn move_free(
    from: &Path,
    to_dir: &Path,
    name: &str,
    sidecars: &[(&str, &[u8])],
) -> io::Result<PathBuf> {
    let final_name = write_free(to_dir, name, sidecars, true)?;
    let to = to_dir.join(&final_name);
    // write_free checked the name was free; a writer racing us for it is refused by the link.
    match move_no_replace(from, &to) {
        Ok(()) => Ok(to),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            for (suffix, _) in sidecars {
                let _ = fs::remove_file(to_dir.join(format!("{final_name}{suffix}")));
            }
            let fallback = format!("{}.{name}", uuid::Uuid::now_v7());
            let fallback = names::sanitise(std::ffi::OsStr::new(&fallback));
            let final_name = write_free(to_dir, &fallback, sidecars, true)?;
            let to = to_dir.join(final_name);
            move_no_replace(from, &to)?;
            Ok(to)
        }
        Err(e) => Err(e),
    }
}

/// Picks the first free `name`/`name-N` in `dir` (with `with_file`, the bare name must be free
/// too) and writes the sidecars under it. Returns the name.
fn write_free(
    dir: &Path,
    name: &str,
    sidecars: &[(&str, &[u8])],
    with_file: bool,
) -> io::Result<String> {
    for n in 0..MAX_SUFFIX {
        let candidate = names::with_suffix(name, n);
        let taken = |p: PathBuf| fs::symlink_metadata(p).is_ok();
        if (with_file && taken(dir.join(&candidate)))
            || sidecars
                .iter()
                .any(|(s, _)| taken(dir.join(format!("{candidate}{s}"))))
        {
            continue;
        }
        let Some(((first_suffix, first), rest)) = sidecars.split_first() else {
            return Ok(candidate);
        };
        // Creating the first sidecar exclusively is what reserves the name.
        let first_path = dir.join(format!("{candidate}{first_suffix}"));
        let mut f = match fsio::create_private(&first_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        f.write_all(first)?;
        f.sync_all()?;
        for (suffix, bytes) in rest {
            fsio::write_atomic(dir, &format!("{candidate}{suffix}"), bytes)?;
        }
        fsio::sync_dir(dir)?;
        return Ok(candidate);
    }
    let generated = uuid::Uuid::now_v7().to_string();
    for (suffix, bytes) in sidecars {
        fsio::write_atomic(dir, &format!("{generated}{suffix}"), bytes)?;
    }
    Ok(generated)
}

/// Moves `from` to `to` durably, failing with `AlreadyExists` rather than replacing `to`.
pub(super) fn move_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => {
            fs::remove_file(from)?;
            if let Some(p) = to.parent() {
                fsio::sync_dir(p)?;
            }
            if let Some(p) = from.parent() {
                fsio::sync_dir(p)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        // No hard links here (some network and FAT filesystems): a checked rename, whose only
        // window is another process creating `to` between the check and the rename.
        Err(_) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fsio::rename_durable(from, to)
        }
    }
}

/// `<name>.error.txt`: the code, what happened, what to do, where.
pub(crate) fn error_text(name: &str, outcome: &Outcome) -> String {
    let mut t = String::new();
    match outcome {
        Outcome::Rejected {
            gateway_message_id,
            rejection,
            ..
        } => {
            let _ = writeln!(t, "{name}: rejected {}", rejection.code);
            let _ = writeln!(t, "{}", rejection.detail);
            let _ = writeln!(t, "what to do: {}", rejection.action);
            for v in rejection.violations.iter().take(TXT_VIOLATIONS) {
                let _ = writeln!(
                    t,
                    "  {}:{} {} at {}: {}",
                    v.line, v.column, v.code, v.path, v.message
                );
            }
            let more = rejection.violations.len().saturating_sub(TXT_VIOLATIONS);
            if more > 0 || rejection.truncated {
                let _ = writeln!(t, "  ... more violations in {name}.error.json");
            }
            if let Some(id) = gateway_message_id {
                let _ = writeln!(t, "gateway message id: {id}");
            }
        }
        Outcome::Duplicate {
            gateway_message_id,
            original_code,
            ..
        } => {
            let code = original_code.as_deref().unwrap_or("duplicate");
            let _ = writeln!(t, "{name}: rejected {code} (resend of a rejected message)");
            let _ = writeln!(
                t,
                "this exact message was sent before as {gateway_message_id} and rejected"
            );
            let action =
                crate::rejection::Code::parse(code).map_or("see the detail", |c| c.action());
            let _ = writeln!(t, "what to do: {action}");
        }
        _ => {}
    }
    t
}
