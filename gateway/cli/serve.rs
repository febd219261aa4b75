//! `gateway serve`: run the gateway's channels until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use super::exit;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::keyring::{self, Identities, KeyringError};
use crate::pipeline::Gateway;

/// Arguments of `gateway serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the gateway.
pub fn run(_args: &Args, config: &Config) -> anyhow::Result<u8> {
    // DESIGN §10: a fresh checkout runs on embedded defaults, dev keys made on first start.
    if let Err(KeyringError::Missing { .. }) = Identities::load(&config.keys) {
        let made = keyring::init(&config.keys).context("creating the development key set")?;
        tracing::warn!(keys = %config.keys.display(), created = made.len(), "no keys: created a development key set");
    }
    let gateway = Arc::new(Gateway::load(config.clone(), true).context("starting the pipeline")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("listening on {}", config.http.listen))?;
        let addr = listener.local_addr()?;
        let acceptor = http::tls::acceptor(&config.keys).context("loading the TLS certificate")?;
        let state = Arc::new(AppState::new(gateway).context("loading agencies and tokens")?);
        tracing::info!(%addr, "HTTPS listening");
        // Scripts and tests read the address (the port may have been chosen by the system).
        println!("listening on https://{addr}");
        http::serve(listener, acceptor, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
