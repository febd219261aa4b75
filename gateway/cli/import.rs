//! `gateway import --agency NAME DIR`: a folder of sealed files in one go, with a progress bar
//! and a summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::message::AgencyName;
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
    /// Where to write the per-file outcomes (default: `state/imports/<agency>-<time>/`).
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
    ensure_registered(&gateway, &args.agency)?;
    let (files, special) =
        import::list_files(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?;
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| default_report(config, &args.agency));
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let bar = progress_bar(total, args.json);
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
    let summary = Summary {
        agency: &args.agency,
        seconds: started.elapsed().as_secs_f64(),
        counts: tally(&results),
        results: &results,
        special: &special,
        bytes: total,
        report: &report,
    };
    let rejected = results
        .iter()
        .any(|r| r.outcome == "rejected" || r.outcome == "failed");
    if args.json {
        print_json(&summary)?;
    } else {
        print_text(&summary);
    }
    Ok(if rejected { exit::INVALID } else { exit::OK })
}

fn ensure_registered(gateway: &Gateway, agency: &AgencyName) -> anyhow::Result<()> {
    if !gateway
        .keyring
        .snapshot()
        .trust
        .agencies()
        .any(|a| a == agency.as_str())
    {
        anyhow::bail!(
            "agency {:?} is not registered (`gateway agency list`; `gateway agency add NAME`)",
            agency
        );
    }
    Ok(())
}

/// `state/imports/<agency>-<time>/`
fn default_report(config: &Config, agency: &AgencyName) -> PathBuf {
    let t = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    config.state.join("imports").join(format!("{agency}-{t}"))
}

fn progress_bar(total: u64, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Files per outcome, rejections per code.
fn tally(results: &[import::Imported]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in results {
        let key = match &r.code {
            Some(c) if r.outcome == "rejected" => format!("rejected {c}"),
            _ => r.outcome.clone(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// What an import did, for its closing report.
struct Summary<'a> {
    agency: &'a AgencyName,
    results: &'a [import::Imported],
    special: &'a [PathBuf],
    counts: BTreeMap<String, usize>,
    bytes: u64,
    seconds: f64,
    report: &'a Path,
}

fn print_json(s: &Summary) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "agency": s.agency,
            "files": s.results,
            "not_regular_files": s.special,
            "summary": s.counts,
            "bytes": s.bytes,
            "seconds": s.seconds,
            "report": s.report,
        }))?
    );
    Ok(())
}

fn print_text(s: &Summary) {
    for r in s
        .results
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
    for p in s.special {
        println!("{}: skipped (not a regular file)", p.display());
    }
    println!("{:<40} {:>8}", "outcome", "files");
    for (k, v) in &s.counts {
        println!("{k:<40} {v:>8}");
    }
    println!(
        "{} files, {:.1} MB in {:.1} s ({:.1} files/s); outcomes in {}",
        s.results.len(),
        s.bytes as f64 / 1e6,
        s.seconds,
        s.results.len() as f64 / s.seconds.max(1e-9),
        s.report.display()
    );
}
