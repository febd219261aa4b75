//! The W3C XML Schema 1.0 conformance runner, with a ratchet.
//!
//! Runs every decided XSD 1.0 case of `../shared/xsdtests/cases-xsd10.jsonl` in process, prints
//! pass rates by family and by kind, and the number of invalid instances wrongly accepted. The
//! ids of passing cases are kept in `tests/w3c-baseline.txt`: the test fails if a case in the
//! baseline stops passing. After an improvement, refresh the baseline with
//!
//! ```text
//! XSD_UPDATE_BASELINE=1 cargo test -p xsd --release --test w3c -- --nocapture
//! ```
//!
//! `XSD_W3C_FILTER=substring` runs only the cases whose id contains the substring and prints
//! each failure (use it to work on one area).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    family: String,
    kind: String,
    schemas: Vec<String>,
    instance: Option<String>,
    expected: String,
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/xsdtests")
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/w3c-baseline.txt")
}

#[derive(Default, Clone, Copy)]
struct Tally {
    pass: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.pass += usize::from(ok);
    }
    fn pct(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.pass as f64 / self.total as f64
        }
    }
}

enum Outcome {
    Pass,
    Fail(String),
}

fn run_case(
    case: &Case,
    dir: &Path,
    cache: &mut HashMap<Vec<String>, Result<Arc<xsd::Schema>, String>>,
) -> Outcome {
    let compiled = cache
        .entry(case.schemas.clone())
        .or_insert_with(|| {
            let entries: Vec<PathBuf> = case.schemas.iter().map(|s| dir.join(s)).collect();
            xsd::Schema::compile(&entries, dir)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone();
    match (case.kind.as_str(), &compiled, case.expected.as_str()) {
        ("schema", Ok(_), "valid") | ("schema", Err(_), "invalid") => Outcome::Pass,
        ("schema", Ok(_), _) => Outcome::Fail("schema accepted".into()),
        (_, Err(e), _) => Outcome::Fail(format!("schema rejected: {}", first_line(e))),
        (_, Ok(schema), expected) => {
            let Some(inst) = &case.instance else {
                return Outcome::Fail("no instance".into());
            };
            let file = match std::fs::File::open(dir.join(inst)) {
                Ok(f) => f,
                Err(e) => return Outcome::Fail(format!("cannot open instance: {e}")),
            };
            let report = schema.validate(std::io::BufReader::new(file), &xsd::Options::default());
            match (report.is_valid(), expected) {
                (true, "valid") | (false, "invalid") => Outcome::Pass,
                (true, _) => Outcome::Fail("invalid instance accepted".into()),
                (false, _) => {
                    Outcome::Fail(format!("valid instance rejected: {}", report.violations[0]))
                }
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[test]
fn w3c_xsd10_conformance_does_not_regress() {
    let dir = suite_dir();
    let list = dir.join("cases-xsd10.jsonl");
    let text = std::fs::read_to_string(&list).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); the W3C suite must be at ../shared/xsdtests",
            list.display()
        )
    });
    let filter = std::env::var("XSD_W3C_FILTER").ok();
    let cases: Vec<Case> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("cases-xsd10.jsonl line"))
        .filter(|c: &Case| filter.as_deref().is_none_or(|f| c.id.contains(f)))
        .collect();

    // A watchdog: a case that runs for a minute is a bug (unbounded work); name it and stop.
    let current = Arc::new(Mutex::new(String::new()));
    let progress = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    {
        let (current, progress, finished) = (current.clone(), progress.clone(), finished.clone());
        std::thread::spawn(move || {
            let mut last = usize::MAX;
            let mut since = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let p = progress.load(Ordering::Relaxed);
                if p != last {
                    last = p;
                    since = Instant::now();
                } else if since.elapsed() > Duration::from_secs(60) {
                    eprintln!(
                        "case {} has run for over 60 s: unbounded work",
                        current.lock().map(|c| c.clone()).unwrap_or_default()
                    );
                    std::process::abort();
                }
            }
        });
    }

    let started = Instant::now();
    let mut cache = HashMap::new();
    let mut by_family: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut all = Tally::default();
    let mut passing: BTreeSet<String> = BTreeSet::new();
    let mut invalid_accepted = 0;
    let mut panics = 0;
    let mut failures: Vec<(String, String)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if let Ok(mut c) = current.lock() {
            c.clone_from(&case.id);
        }
        progress.store(i, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_case(case, &dir, &mut cache)
        }))
        .unwrap_or_else(|_| {
            panics += 1;
            Outcome::Fail("PANIC".into())
        });
        if cache.len() > 2000 {
            cache.clear();
        }
        let ok = matches!(outcome, Outcome::Pass);
        if let Outcome::Fail(why) = outcome {
            if why == "invalid instance accepted" {
                invalid_accepted += 1;
            }
            failures.push((case.id.clone(), why));
        } else {
            passing.insert(case.id.clone());
        }
        all.add(ok);
        by_family.entry(case.family.clone()).or_default().add(ok);
        by_kind
            .entry(format!("{} {}", case.expected, case.kind))
            .or_default()
            .add(ok);
    }
    finished.store(true, Ordering::Relaxed);

    println!(
        "W3C XSD 1.0 decided cases: {}/{} passed ({:.2}%) in {:.1?}",
        all.pass,
        all.total,
        all.pct(),
        started.elapsed()
    );
    println!("invalid instances accepted: {invalid_accepted}; panics: {panics}");
    for (k, t) in &by_family {
        println!(
            "  family {k:<12} {:>6}/{:<6} {:6.2}%",
            t.pass,
            t.total,
            t.pct()
        );
    }
    for (k, t) in &by_kind {
        println!(
            "  kind   {k:<18} {:>6}/{:<6} {:6.2}%",
            t.pass,
            t.total,
            t.pct()
        );
    }
    if filter.is_some() || std::env::var_os("XSD_W3C_SHOW").is_some() {
        for (id, why) in &failures {
            println!("FAIL {id}: {why}");
        }
    }

    let baseline_file = baseline_path();
    if std::env::var_os("XSD_UPDATE_BASELINE").is_some() {
        assert!(
            filter.is_none(),
            "refresh the baseline on the whole suite, without XSD_W3C_FILTER"
        );
        let mut f = std::fs::File::create(&baseline_file).expect("write baseline");
        for id in &passing {
            writeln!(f, "{id}").expect("write baseline");
        }
        println!(
            "baseline updated: {} passing cases in {}",
            passing.len(),
            baseline_file.display()
        );
        return;
    }
    let baseline: BTreeSet<String> = std::fs::read_to_string(&baseline_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .filter(|id| filter.as_deref().is_none_or(|f| id.contains(f)))
        .collect();
    let regressions: Vec<&(String, String)> = failures
        .iter()
        .filter(|(id, _)| baseline.contains(id))
        .collect();
    let gained = passing.iter().filter(|id| !baseline.contains(*id)).count();
    if gained > 0 {
        println!(
            "{gained} cases pass that are not in the baseline; refresh it with XSD_UPDATE_BASELINE=1 (see the top of tests/w3c.rs)"
        );
    }
    assert!(panics == 0, "{panics} cases panicked");
    assert!(
        regressions.is_empty(),
        "{} cases that passed before now fail:\n{}\n(if a change of expectation is intended, refresh with XSD_UPDATE_BASELINE=1 cargo test -p xsd --release --test w3c)",
        regressions.len(),
        regressions
            .iter()
            .take(50)
            .map(|(id, why)| format!("  {id}: {why}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
