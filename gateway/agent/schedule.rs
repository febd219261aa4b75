//! Scheduled extracts: a job's command runs when its cron schedule says (local time), writing
//! into the job's folder, whose files are then delivered like any others.
//!
//! The command is run without a shell (the program and its arguments as configured, `{folder}`
//! replaced by the folder), in the folder, with its output logged. A job is due at the first
//! time of its schedule after its last start, which the journal keeps: restarted, the agent
//! does not run an extract twice for one time; down through a time, it runs the missed extract
//! once when it comes back. A job never run before starts from the agent's first start.

use std::process::{Command, Stdio};

use chrono::{DateTime, Local};

use super::config::Job;
use super::journal::Journal;

/// Most of an extract's output kept for the log, in bytes.
const OUTPUT_MAX: usize = 4096;

/// Runs `job`'s extract if one of its times has come since its last start.
pub(super) fn run_if_due(journal: &Journal, job: &Job) -> anyhow::Result<()> {
    let Some((cron, command)) = &job.extract else {
        return Ok(());
    };
    let now = Local::now();
    let Some(last) = journal.last_run(&job.name)? else {
        // First start: count from now.
        journal.ran(&job.name, &now.to_rfc3339(), None)?;
        return Ok(());
    };
    let last = DateTime::parse_from_rfc3339(&last)
        .map(|t| t.with_timezone(&Local))
        .unwrap_or(now);
    let due = cron
        .find_next_occurrence(&last, false)
        .is_ok_and(|next| next <= now);
    if !due {
        return Ok(());
    }
    journal.ran(&job.name, &now.to_rfc3339(), None)?;
    let error = run(job, command).err();
    if let Some(e) = &error {
        tracing::warn!(job = %job.name, error = %e, "the extract failed");
        journal.ran(&job.name, &now.to_rfc3339(), Some(e))?;
    }
    Ok(())
}

/// Runs the command; why it failed, if it did.
fn run(job: &Job, command: &[String]) -> Result<(), String> {
    let folder = job.folder.to_string_lossy();
    let args: Vec<String> = command
        .iter()
        .map(|a| a.replace("{folder}", &folder))
        .collect();
    tracing::info!(job = %job.name, program = %args[0], "running the extract");
    let out = Command::new(&args[0])
        .args(&args[1..])
        .current_dir(&job.folder)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} could not be started: {e}", args[0]))?;
    let said = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(OUTPUT_MAX)]).into_owned();
    if out.status.success() {
        tracing::info!(job = %job.name, output = %said(&out.stdout), "extract finished");
        Ok(())
    } else {
        Err(format!(
            "{} exited with {}: {}",
            args[0],
            out.status,
            said(&out.stderr).trim()
        ))
    }
}
