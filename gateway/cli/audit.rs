//! `gateway audit verify`, and the audit record every admin command leaves.

use super::exit;
use crate::audit::{AuditLog, Verdict};
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
