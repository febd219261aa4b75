//! `gateway request`: the hub asks an agency for data, and follows the request.

use anyhow::Context;

use super::exit;
use crate::admin::Admin;
use crate::config::Config;
use crate::requests::{self, Ask};
use crate::store::{RequestEvent, RequestRecord};

/// `gateway request ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Ask an agency's agent for a named query, e.g.
    /// `gateway request ask careers case-updates since=2026-12-01T00:00:00Z`. Prints the
    /// request id; the agent answers with an ordinary message that names it.
    Ask {
        /// The agency asked.
        agency: String,
        /// The query's name, as the agency's agent knows it.
        query: String,
        /// Parameters, `name=value` (the agency's agent checks their types).
        params: Vec<String>,
        /// How long the request waits for its answer before it is timed out.
        #[arg(long, default_value_t = requests::DEFAULT_WAIT.as_secs() / 60, value_name = "MINUTES")]
        wait_minutes: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// One request: where it stands, and the message that answered it.
    Show {
        /// The request id (`rq-...`).
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The newest requests.
    List {
        /// Only this agency's.
        #[arg(long)]
        agency: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn line(r: &RequestRecord) -> String {
    let v = requests::to_json(r);
    let answer = match (&r.message_id, &r.detail) {
        (Some(m), _) => format!(" -> {m}"),
        (None, Some(d)) => format!(": {d}"),
        _ => String::new(),
    };
    format!(
        "{}  {:<9}  {}  {} {}  asked {} by {}{answer}",
        r.id,
        r.state.as_str(),
        r.agency,
        r.query,
        r.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        v["asked_at"].as_str().unwrap_or(""),
        r.asked_by,
    )
}

/// Runs `gateway request`.
pub fn run(cmd: &Command, config: &Config) -> anyhow::Result<u8> {
    let store = crate::store::open(config)
        .map_err(|(path, e)| anyhow::anyhow!("opening the ledger {}: {e}", path.display()))?;
    match cmd {
        Command::Ask {
            agency,
            query,
            params,
            wait_minutes,
            json,
        } => {
            let params = match requests::parse_params(params.iter().map(String::as_str)) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(exit::USAGE);
                }
            };
            let ask = Ask {
                agency,
                query,
                params,
                wait: std::time::Duration::from_secs(wait_minutes.saturating_mul(60)),
                by: &crate::audit::local_user(),
            };
            let r = match Admin::new(config, ask.by, "cli").request_ask(store.as_ref(), &ask) {
                Ok(r) => r,
                Err(crate::admin::AdminError::Refused(why)) => {
                    eprintln!("error: {why}");
                    return Ok(exit::USAGE);
                }
                Err(e) => return Err(e.into()),
            };
            if *json {
                println!("{}", requests::to_json(&r));
            } else {
                println!("{}", r.id);
                eprintln!(
                    "asked {} for {}; follow it with: gateway request show {}",
                    r.agency, r.query, r.id
                );
            }
            Ok(exit::OK)
        }
        Command::Show { id, json } => {
            let Some(r) = requests::get(store.as_ref(), id).context("reading the ledger")? else {
                eprintln!("error: no request {id}");
                return Ok(exit::INVALID);
            };
            if *json {
                println!("{}", requests::to_json(&r));
            } else {
                println!("{}", line(&r));
            }
            Ok(exit::OK)
        }
        Command::List {
            agency,
            limit,
            json,
        } => {
            let all = store
                .request(&RequestEvent::List {
                    agency: agency.clone(),
                    limit: (*limit).min(1000),
                    now: requests::now(),
                })
                .context("reading the ledger")?;
            if *json {
                let v: Vec<_> = all.iter().map(requests::to_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for r in &all {
                    println!("{}", line(r));
                }
            }
            Ok(exit::OK)
        }
    }
}
