//! `gateway check-config`: load everything the gateway needs and explain any mistake.

use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::keyring::{Keyring, agencies};
use crate::validation::{Catalog, CatalogError};

/// Arguments of `gateway check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// A check's name and its outcome, a message either way.
type Check = (&'static str, Result<String, String>);

/// Runs every start-up check and prints one line per check.
pub fn run(args: &Args, config: &Config) -> anyhow::Result<u8> {
    let catalog = Catalog::load(&config.schemas);
    let mut checks: Vec<Check> = vec![
        ("schemas", check_schemas(config, &catalog)),
        ("keys", check_keys(config)),
    ];
    if let Ok(c) = &catalog {
        checks.push(("agencies", check_agencies(config, c)));
    }
    if config.queue_backend == crate::config::QueueBackend::Outbox {
        checks.push(("outbox", check_writable(&config.queue_dir())));
    }
    checks.push(("state", check_writable(&config.state)));
    if config.ledger != crate::config::Ledger::Sqlite {
        checks.push(("ledger", check_ledger(config)));
    }
    if config.queue_backend != crate::config::QueueBackend::Outbox {
        checks.push(("queue", check_queue(config)));
    }
    if let Some(mail) = &config.mail {
        checks.push(("mail", crate::sources::mail::check(mail)));
    }
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    if args.json {
        print_json(config, ok, &checks);
    } else {
        print_text(config, &checks);
    }
    Ok(if ok { exit::OK } else { exit::USAGE })
}

fn check_schemas(
    config: &Config,
    catalog: &Result<Catalog, CatalogError>,
) -> Result<String, String> {
    match catalog {
        Ok(c) => Ok(format!(
            "{} message types compiled from {}",
            c.entries().len(),
            config.schemas.display()
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}

fn check_keys(config: &Config) -> Result<String, String> {
    match Keyring::load_with(&config.keys, &config.key_policy.passphrase, None) {
        Ok(k) => Ok(format!(
            "{} active identit{}; seal to {}",
            k.identities.active().len(),
            if k.identities.active().len() == 1 {
                "y"
            } else {
                "ies"
            },
            k.identities.current_recipient().unwrap_or("?")
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Every agency the catalog names is registered.
fn check_agencies(config: &Config, catalog: &Catalog) -> Result<String, String> {
    let registered = agencies::list(&config.keys).unwrap_or_default();
    let missing: Vec<String> = catalog
        .entries()
        .iter()
        .flat_map(|e| e.agencies.iter())
        .filter(|a| !registered.iter().any(|r| &&r.name == a))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(format!("{} registered", registered.len()))
    } else {
        Err(format!(
            "the catalog names agencies that are not registered: {} (`gateway agency add NAME`)",
            missing.join(", ")
        ))
    }
}

/// Connects to the shared ledger (migrating it if needed) and says which it is.
fn check_ledger(config: &Config) -> Result<String, String> {
    let store = crate::store::open(config)
        .map_err(|(what, e)| format!("{}: {e}{}", what.display(), source_chain(&e)))?;
    if let Some(why) = store.not_ready() {
        return Err(why);
    }
    let mut said = String::from("PostgreSQL reachable, schema up to date");
    for advice in store.advice() {
        said.push_str("; advice: ");
        said.push_str(&advice);
    }
    Ok(said)
}

/// Connects to the queue's broker and declares the queue.
fn check_queue(config: &Config) -> Result<String, String> {
    let sink = crate::sinks::open(config)
        .map_err(|(what, e)| format!("{}: {e}{}", what.display(), source_chain(&e)))?;
    if let Some(why) = sink.not_ready() {
        return Err(format!(
            "{why} (is the broker running, and do the URL's host, port, user and password match?)"
        ));
    }
    match sink.depth() {
        Ok(n) => Ok(format!(
            "{} reachable; {n} message(s) waiting",
            sink.queue()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// ": cause: cause..." for an error's sources (a driver's own explanation is in them).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(&format!(": {s}"));
        next = s.source();
    }
    out
}

fn check_writable(dir: &std::path::Path) -> Result<String, String> {
    std::fs::create_dir_all(dir)
        .and_then(|_| tempfile_probe(dir))
        .map(|_| format!("{} is writable", dir.display()))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn print_json(config: &Config, ok: bool, checks: &[Check]) {
    let v: Vec<_> = checks
        .iter()
        .map(|(n, r)| match r {
            Ok(m) => json!({"check": n, "ok": true, "message": m}),
            Err(m) => json!({"check": n, "ok": false, "message": m}),
        })
        .collect();
    println!("{}", json!({"config": config.file, "ok": ok, "checks": v}));
}

fn print_text(config: &Config, checks: &[Check]) {
    let shown = config
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(embedded defaults)".into());
    println!("configuration: {shown}");
    for (n, r) in checks {
        match r {
            Ok(m) => println!("ok    {n:<9} {m}"),
            Err(m) => println!("ERROR {n:<9} {m}"),
        }
    }
}

fn tempfile_probe(dir: &std::path::Path) -> std::io::Result<()> {
    let p = dir.join(format!(".probe-{}", uuid::Uuid::now_v7()));
    std::fs::write(&p, b"")?;
    std::fs::remove_file(p)
}
