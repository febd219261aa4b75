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
