//! `gateway serve`: run the channels — HTTPS upload and the watched inbox folders — until
//! SIGINT or SIGTERM, then finish what is in flight and exit 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::exit;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::keyring::{self, Identities};
use crate::pipeline::Gateway;
use crate::sources::folder::{FolderSource, HeldFolders};

/// How often the quarantine's retention period is applied while serving: entries live at most
/// this much longer than `quarantine.retention_days`.
const QUARANTINE_SWEEP: Duration = Duration::from_secs(3600);

/// Arguments of `gateway serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs until a signal; exit 0 after a clean shutdown (in-flight uploads and files finished).
pub fn run(_args: &Args, config: &Config) -> anyhow::Result<u8> {
    create_keys_if_none(config)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    crate::keyring::check_private_files(&config.keys).context("checking the private key files")?;
    install_signal_handlers(&shutdown)?;
    let gateway = Arc::new(Gateway::load(config.clone(), true).context("starting the pipeline")?);
    // Expired entries go before anything new is kept; then every QUARANTINE_SWEEP.
    gateway.sweep_quarantine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.http.listen))
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let addr = listener.local_addr()?;
    let acceptor = Arc::new(
        http::tls::LiveAcceptor::load(&config.keys).context("loading the TLS certificate")?,
    );
    let mut state = AppState::new(gateway.clone()).context("loading agencies and tokens")?;
    state.stopping = shutdown.clone();
    let state = Arc::new(state);
    let folders = start_folders(config, &gateway, &shutdown)?;
    let mail = crate::sources::mail::MailSource::start(gateway.clone(), shutdown.clone())
        .context("starting the mail channel")?;
    let reloader =
        crate::reload::Reloader::start(gateway.clone(), acceptor.clone(), shutdown.clone())
            .context("starting the key reloader")?;
    let bell = (gateway.forwarding.as_ref()).and_then(|f| f.store.request_bell().cloned());
    let ledger_watch =
        match crate::store::watch_changes(config, reloader.trigger(), bell, shutdown.clone()) {
            None => None,
            Some(watch) => Some(watch.context("listening for changes on the ledger")?),
        };
    let metrics_listener = bind_metrics(&runtime, config)?;
    announce(addr, metrics_listener.as_ref())?;
    let stopped = housekeeping(shutdown.clone(), gateway.clone());
    if let Some(l) = metrics_listener {
        spawn_metrics(&runtime, l, state.clone(), shutdown.clone());
    }
    // The API, and the pages people use on the same listener.
    let app = http::router(state.clone())
        .merge(crate::web::router(state.clone()).context("starting the web pages")?);
    runtime.block_on(http::serve(listener, acceptor, state, app, stopped))?;
    if let Some(m) = mail {
        m.stop();
    }
    finish(folders, reloader, &gateway);
    if let Some(t) = ledger_watch {
        let _ = t.join();
    }
    Ok(exit::OK)
}

fn create_keys_if_none(config: &Config) -> anyhow::Result<()> {
    if Identities::records(&config.keys).is_ok_and(|i| i.info.is_empty()) {
        // DESIGN §10: a fresh installation starts with development keys, and says so.
        let made = keyring::init(&config.keys, &config.key_policy.passphrase)
            .with_context(|| format!("creating keys in {}", config.keys.display()))?;
        tracing::warn!(
            keys = %config.keys.display(),
            created = made.len(),
            "no gateway identity yet: created a development key set (`gateway keys list`)"
        );
        for m in &made {
            tracing::info!(created = %m, "development key");
        }
    }
    Ok(())
}

fn install_signal_handlers(shutdown: &Arc<AtomicBool>) -> anyhow::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 1, shutdown.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(signal, shutdown.clone())
            .context("installing signal handlers")?;
    }
    Ok(())
}

/// The watched folders: this instance's alone, or one instance's at a time when several
/// share the ledger.
enum Folders {
    Alone(FolderSource),
    Held(HeldFolders),
}

impl Folders {
    fn stop(self) {
        match self {
            Folders::Alone(f) => f.stop(),
            Folders::Held(f) => f.stop(),
        }
    }
}

fn start_folders(
    config: &Config,
    gateway: &Arc<Gateway>,
    shutdown: &Arc<AtomicBool>,
) -> anyhow::Result<Option<Folders>> {
    let shared = gateway
        .forwarding
        .as_ref()
        .is_some_and(|fw| fw.store.is_shared());
    if config.watch.enabled && shared {
        Ok(Some(Folders::Held(
            HeldFolders::start(gateway.clone(), shutdown.clone())
                .context("starting the watched folders")?,
        )))
    } else if config.watch.enabled {
        Ok(Some(Folders::Alone(
            FolderSource::start(gateway.clone(), shutdown.clone())
                .context("starting the watched folders")?,
        )))
    } else {
        tracing::info!("watched folders disabled (inbox.enabled = false)");
        Ok(None)
    }
}

fn bind_metrics(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match config.metrics.listen {
        Some(at) => Ok(Some(
            runtime
                .block_on(tokio::net::TcpListener::bind(at))
                .with_context(|| format!("listening for metrics on {at} (metrics.listen)"))?,
        )),
        None => Ok(None),
    }
}

fn announce(
    addr: std::net::SocketAddr,
    metrics_listener: Option<&tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    tracing::info!(%addr, pid = std::process::id(), "gateway serving");
    // Scripts and tests read the address (the port may have been chosen by the system): the
    // first line ends with the HTTPS port; the metrics line, if any, follows it.
    // A reader that stopped reading (closed the pipe) must not stop the server.
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "listening on https://{addr}");
    if let Some(l) = metrics_listener {
        let at = l.local_addr()?;
        tracing::info!(%at, "metrics, /healthz and /readyz over plain HTTP");
        let _ = writeln!(std::io::stdout(), "metrics on http://{at}/metrics");
    }
    Ok(())
}

/// Ends when shutdown is asked for; until then, the periodic work beside the channels.
async fn housekeeping(flag: Arc<AtomicBool>, ledger: Arc<Gateway>) {
    let mut ticks = 0u32;
    let mut next_sweep = tokio::time::Instant::now() + QUARANTINE_SWEEP;
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ticks = ticks.wrapping_add(1);
        // A forwarded message's final ledger state goes out with the next message; when
        // none comes, here (a lock and a check when there is nothing to do). Every 5 s,
        // records whose final write failed are settled from the queue.
        let gateway = ledger.clone();
        let settle = ticks.is_multiple_of(50);
        let _ = tokio::task::spawn_blocking(move || {
            gateway.flush_ledger();
            if settle {
                gateway.settle_stuck();
            }
        })
        .await;
        if tokio::time::Instant::now() >= next_sweep {
            next_sweep += QUARANTINE_SWEEP;
            let gateway = ledger.clone();
            // Not awaited: a large quarantine must not hold up the ledger flushes.
            drop(tokio::task::spawn_blocking(move || {
                gateway.sweep_quarantine()
            }));
        }
    }
}

fn spawn_metrics(
    runtime: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: Arc<AtomicBool>,
) {
    let app = http::metrics_router(state);
    runtime.spawn(async move {
        let stop = async move {
            while !shutdown.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
}

fn finish(folders: Option<Folders>, reloader: crate::reload::Reloader, gateway: &Gateway) {
    tracing::info!("shutting down: finishing the files in progress");
    if let Some(f) = folders {
        f.stop();
    }
    reloader.stop();
    gateway.flush_ledger();
    tracing::info!("stopped");
}
