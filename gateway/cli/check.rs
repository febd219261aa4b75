//! `gateway check`: open, verify and validate sealed files offline; with `--forward`, also
//! forward them to the queue (ledger, dedupe, quarantine) exactly as a channel would.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::message::Channel;
use crate::pipeline::{Gateway, Outcome};

/// Arguments of `gateway check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agency the files come from (their signer must be registered for it).
    #[arg(long)]
    pub agency: crate::message::AgencyName,
    /// Also forward accepted files to the queue and keep rejected ones in quarantine.
    #[arg(long)]
    pub forward: bool,
    /// Machine-readable output (one JSON object on stdout).
    #[arg(long)]
    pub json: bool,
    /// Sealed files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs the subcommand: exit 0 when every file was accepted, 1 when any was rejected, 2 when
/// any could not be read (missing, a folder, a device, a FIFO...).
pub fn run(args: &Args, config: &Config) -> anyhow::Result<u8> {
    let gateway = Gateway::load(config.clone(), args.forward).context("starting the pipeline")?;
    if !gateway
        .keyring
        .snapshot()
        .trust
        .agencies()
        .any(|a| a == args.agency.as_str())
    {
        anyhow::bail!(
            "agency {:?} is not registered (`gateway agency list`; `gateway agency add NAME`)",
            args.agency
        );
    }
    let mut all_ok = true;
    let mut unreadable = false;
    let mut results = Vec::new();
    for file in &args.files {
        // Said here, before the pipeline, so that a mistyped name or a folder gets its own
        // message and exit code 2 instead of a rejection code meant for senders. The pipeline
        // opens the file again the same safe way, so a swap in between cannot make it block.
        if let Err(e) = crate::fsio::open_regular(file) {
            eprintln!("error: {e}");
            unreadable = true;
            if args.json {
                results.push(json!({ "file": file, "outcome": "error", "error": e.to_string() }));
            }
            continue;
        }
        let outcome = gateway.process_file(&args.agency, Channel::Cli, file);
        all_ok &= outcome.is_success();
        if args.json {
            let mut v = serde_json::to_value(&outcome)?;
            v["file"] = json!(file);
            results.push(v);
        } else {
            print_human(file, &outcome);
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "results": results }))?
        );
    }
    Ok(if unreadable {
        exit::USAGE
    } else if all_ok {
        exit::OK
    } else {
        exit::INVALID
    })
}

fn print_human(file: &std::path::Path, outcome: &Outcome) {
    let name = file.display();
    match outcome {
        Outcome::Accepted { facts } | Outcome::Forwarded { facts, .. } => {
            let verb = if matches!(outcome, Outcome::Forwarded { .. }) {
                "forwarded"
            } else {
                "accepted"
            };
            let signed_by: Vec<String> = facts
                .signers
                .iter()
                .map(|s| format!("{} ({})", s.subject, s.fingerprint_sha256))
                .collect();
            println!(
                "{name}: {verb} as {} — schema {}, message {}, {} bytes, signed by {}",
                facts.gateway_message_id,
                facts.schema_id,
                facts.agency_message_id.as_deref().unwrap_or("(no id)"),
                facts.size,
                signed_by.join(" and "),
            );
        }
        Outcome::Duplicate {
            gateway_message_id,
            original_status,
            original_code,
            ..
        } => {
            println!(
                "{name}: duplicate of {gateway_message_id}, which was {original_status}{}; nothing queued again",
                original_code
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            );
        }
        Outcome::Rejected {
            rejection,
            quarantined,
            ..
        } => {
            println!("{name}: rejected {} — {}", rejection.code, rejection.detail);
            for v in &rejection.violations {
                println!(
                    "  {}:{} {} at {}: {}",
                    v.line, v.column, v.code, v.path, v.message
                );
            }
            if rejection.truncated {
                println!("  (more violations not shown)");
            }
            println!("  what to do: {}", rejection.action);
            if let Some(q) = quarantined {
                println!("  kept in quarantine: {}", q.display());
            }
        }
    }
}
