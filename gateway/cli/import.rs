//! `gateway import --agency NAME DIR`: a folder of sealed files in one go, with a progress bar
//! and a summary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::pipeline::Gateway;
use crate::sources::import;

/// Arguments of `gateway import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agency the files come from.
    #[arg(long)]
    pub agency: crate::message::AgencyName,
    /// The folder to import (read only; searched recursively).
    pub dir: PathBuf,
    /// Where to write the per-file outcomes (default: state/imports/<agency>-<time>/).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Files processed at once.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Machine-readable output (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Runs the import: exit 0 when nothing was rejected, 1 otherwise.
pub fn run(args: &Args, config: &Config) -> anyhow::Result<u8> {
    let gateway = Gateway::load(config.clone(), true).context("starting the pipeline")?;
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
    let (files, special) =
        import::list_files(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?;
    let report = args.report.clone().unwrap_or_else(|| {
        let t = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_default();
        config
            .state
            .join("imports")
            .join(format!("{}-{t}", args.agency))
    });
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let bar = ProgressBar::new(total);
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let n = files.len();
    let results = import::import(
        &gateway,
        &args.agency,
        &args.dir,
        &files,
        &report,
        args.threads,
        &|r| {
            let k = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            bar.inc(r.bytes);
            bar.set_message(format!("{k}/{n} files"));
        },
    )?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let key = match &r.code {
            Some(c) if r.outcome == "rejected" => format!("rejected {c}"),
            _ => r.outcome.clone(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let rejected = results
        .iter()
        .any(|r| r.outcome == "rejected" || r.outcome == "failed");
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "agency": args.agency,
                "files": results,
                "not_regular_files": special,
                "summary": counts,
                "bytes": total,
                "seconds": elapsed,
                "report": report,
            }))?
        );
    } else {
        for r in results
            .iter()
            .filter(|r| r.outcome == "rejected" || r.outcome == "failed")
        {
            println!(
                "{}: {} {}",
                r.file.display(),
                r.outcome,
                r.code.as_deref().unwrap_or_default()
            );
        }
        for p in &special {
            println!("{}: skipped (not a regular file)", p.display());
        }
        println!("{:<40} {:>8}", "outcome", "files");
        for (k, v) in &counts {
            println!("{k:<40} {v:>8}");
        }
        println!(
            "{} files, {:.1} MB in {:.1} s ({:.1} files/s); outcomes in {}",
            results.len(),
            total as f64 / 1e6,
            elapsed,
            results.len() as f64 / elapsed.max(1e-9),
            report.display()
        );
    }
    Ok(if rejected { exit::INVALID } else { exit::OK })
}
