//! `gateway recipient`: the age recipient agencies should seal to now.

use serde_json::json;

use super::exit;
use crate::config::Config;
use crate::keyring::Identities;
use crate::keyring::identities::Status;

/// Arguments of `gateway recipient`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output: the current recipient and those still in grace.
    #[arg(long)]
    pub json: bool,
    /// Ask a running gateway (`GET <URL>/v1/recipient`) instead of the local keys.
    #[arg(long)]
    pub url: Option<String>,
    /// CA certificate to trust for the gateway's TLS certificate (with --url).
    #[arg(long, requires = "url")]
    pub cacert: Option<std::path::PathBuf>,
}

/// `gateway recipient --url`: fetches the recipient from a gateway (no local configuration).
pub fn run_remote(args: &Args, url: &str) -> anyhow::Result<u8> {
    let client = super::send::client(args.cacert.as_deref(), None, None)?;
    let url = format!("{}/v1/recipient", url.trim_end_matches('/'));
    let resp = client.get(&url).send()?.error_for_status()?;
    let v: serde_json::Value = resp.json()?;
    let current = v["current"].as_str().unwrap_or_default();
    if current.parse::<age::x25519::Recipient>().is_err() {
        anyhow::bail!("{url} did not return an age recipient: {v}");
    }
    if args.json {
        println!("{v}");
    } else {
        println!("{current}");
    }
    Ok(exit::OK)
}

/// Prints the current recipient (plain: just the `age1...` line, for scripts).
pub fn run(args: &Args, config: &Config) -> anyhow::Result<u8> {
    let ids = Identities::load(&config.keys)?;
    let current = ids.current_recipient().unwrap_or_default();
    if args.json {
        let grace: Vec<&str> = ids
            .info
            .iter()
            .filter(|i| i.status == Status::Grace)
            .map(|i| i.recipient.as_str())
            .collect();
        println!("{}", json!({ "current": current, "grace": grace }));
    } else {
        println!("{current}");
    }
    Ok(exit::OK)
}
