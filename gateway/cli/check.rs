//! `gateway check`: open, verify and validate sealed files offline; with `--forward`, also
//! forward them to the queue (ledger, dedupe, quarantine) exactly as a channel would.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::pipeline::{Gateway, Outcome};
use crate::store::Channel;

/// Arguments of `gateway check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agency the files come from (their signer must be registered for it).
    #[arg(long)]
    pub agency: String,
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

/// Runs the subcommand: exit 0 when every file was accepted, 1 when any was rejected.
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
    let mut results = Vec::new();
    for file in &args.files {
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
    Ok(if all_ok { exit::OK } else { exit::INVALID })
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
            println!(
                "{name}: {verb} as {} — schema {}, message {}, {} bytes, signed by {} ({})",
                facts.gateway_message_id,
                facts.schema_id,
                facts.agency_message_id.as_deref().unwrap_or("(no id)"),
                facts.size,
                facts.signer.subject,
                &facts.signer.fingerprint_sha256,
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
