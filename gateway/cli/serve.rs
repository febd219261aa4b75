//! `gateway serve`: run the channels until SIGINT or SIGTERM. Today that is the watched
//! folders; the HTTPS channel joins here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::exit;
use crate::config::Config;
use crate::keyring::{self, Identities, KeyringError};
use crate::pipeline::Gateway;
use crate::sources::folder::FolderSource;

/// Arguments of `gateway serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs until a signal; exit 0 after a clean shutdown (in-flight files finished).
pub fn run(_args: &Args, config: &Config) -> anyhow::Result<u8> {
    if let Err(KeyringError::Missing { .. }) = Identities::load(&config.keys) {
        // DESIGN §10: a fresh installation starts with development keys, and says so.
        let made = keyring::init(&config.keys)
            .with_context(|| format!("creating keys in {}", config.keys.display()))?;
        for m in &made {
            tracing::warn!(created = %m, "no gateway identity yet: development keys created");
        }
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 1, shutdown.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(signal, shutdown.clone())
            .context("installing signal handlers")?;
    }
    let gateway = Arc::new(Gateway::load(config.clone(), true).context("starting the pipeline")?);
    let folders = if config.watch.enabled {
        Some(
            FolderSource::start(gateway.clone(), shutdown.clone())
                .context("starting the watched folders")?,
        )
    } else {
        tracing::info!("watched folders disabled (inbox.enabled = false)");
        None
    };
    tracing::info!(pid = std::process::id(), "gateway serving");
    while !shutdown.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::info!("shutting down: finishing the files in progress");
    if let Some(f) = folders {
        f.stop();
    }
    tracing::info!("stopped");
    Ok(exit::OK)
}
