//! `gateway audit verify`, and the audit record every admin command leaves.

use serde_json::Value;

use super::exit;
use crate::audit::{AuditLog, Verdict, local_user};
use crate::config::Config;

/// `gateway audit ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the whole hash chain (every rotated file too); exit 0 intact, 1 broken.
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gateway audit`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    match cmd {
        Command::Verify { json: as_json } => {
            let log = AuditLog::open_for(config, Some("admin"))?;
            let verdict = log.verify()?;
            if *as_json {
                println!("{}", serde_json::to_string(&verdict)?);
            } else {
                match &verdict {
                    Verdict::Intact {
                        records,
                        files,
                        last_hash,
                    } => println!(
                        "intact: {records} records in {files} file(s); last hash {last_hash}"
                    ),
                    Verdict::IntactChains { records, chains } => println!(
                        "intact: {records} records in {chains} chain(s) of the shared audit log"
                    ),
                    Verdict::Broken { at, seq, why } => {
                        println!("BROKEN at record {seq} ({at}): {why}")
                    }
                }
            }
            Ok(match verdict {
                Verdict::Intact { .. } | Verdict::IntactChains { .. } => exit::OK,
                Verdict::Broken { .. } => exit::INVALID,
            })
        }
    }
}

/// Records an admin action (by the local user) in the audit log.
pub fn admin(config: &Config, action: &str, subject: &str, details: Value) -> anyhow::Result<()> {
    let log = AuditLog::open_for(config, Some("admin"))?;
    log.append("admin", &local_user(), action, subject, details)
        .map_err(|e| anyhow::anyhow!("the action was done but could not be audited: {e}"))?;
    if let Err(e) = crate::store::announce_admin_change(config, action) {
        // Not fatal: each instance checks keys/ before every payload and reloads it
        // periodically; the announcement only makes the others reload at once.
        tracing::warn!(error = %e, "the change is made, but the other instances could not be told; they see it at their next look at keys/");
    }
    Ok(())
}
