//! `gateway agent`: deliver an agency's extracts unattended (see `crate::agent`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::exit;
use crate::agent::Agent;
use crate::agent::config::AgentConfig;

/// `gateway agent ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Watch the export folders and deliver what lands in them, and answer the hub's
    /// requests, until SIGINT or SIGTERM.
    Run {
        /// The agent's configuration.
        #[arg(long, value_name = "FILE", default_value = "agent.toml")]
        agent_config: PathBuf,
        /// Deliver what is there now and answer the requests waiting, then exit (0 when
        /// nothing is left pending).
        #[arg(long)]
        once: bool,
        /// Seconds between two looks at the folders.
        #[arg(long, default_value_t = 5)]
        every_secs: u64,
    },
    /// Files pending, sent and failed, and the last error.
    Status {
        /// The agent's configuration.
        #[arg(long, value_name = "FILE", default_value = "agent.toml")]
        agent_config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gateway agent`.
pub fn run(cmd: &Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Run {
            agent_config,
            once,
            every_secs,
        } => {
            let mut agent = Agent::new(AgentConfig::load(agent_config)?)?;
            if *once {
                agent.round()?;
                agent.answer_waiting_requests(100)?;
                let s = agent.status()?;
                println!(
                    "{} sent, {} failed, {} pending",
                    s.sent, s.failed, s.pending
                );
                return Ok(if s.pending == 0 {
                    exit::OK
                } else {
                    exit::INVALID
                });
            }
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone())?;
            }
            if let Some(at) = agent.serve_metrics()? {
                tracing::info!(%at, "metrics at http://{at}/metrics");
            }
            tracing::info!("agent running");
            agent.run(std::time::Duration::from_secs(*every_secs), &stop)?;
            Ok(exit::OK)
        }
        Command::Status { agent_config, json } => {
            let agent = Agent::new(AgentConfig::load(agent_config)?)?;
            let s = agent.status()?;
            if *json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "pending {}\nsent    {}\nfailed  {}",
                    s.pending, s.sent, s.failed
                );
                if s.requests_open + s.requests_answered + s.requests_failed > 0 {
                    println!(
                        "requests: {} being answered, {} answered, {} failed",
                        s.requests_open, s.requests_answered, s.requests_failed
                    );
                }
                if let Some(e) = &s.last_error {
                    println!("last error: {e}");
                }
            }
            Ok(exit::OK)
        }
    }
}
