//! The agent's `/metrics` (Prometheus text), on a loopback address only (`[metrics] listen` in
//! `agent.toml`): the agent opens no port to the network. Each scrape reads the journal (on a
//! connection of its own), so the figures are those of the files and requests on disk,
//! whatever the agent is doing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::journal::Journal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// When the last round ended (Unix seconds), for `gateway_agent_last_round_timestamp_seconds`.
#[derive(Debug, Clone, Default)]
pub struct LastRound(Arc<AtomicI64>);

impl LastRound {
    /// A round ended now.
    pub fn now(&self) {
        self.0.store(
            time::OffsetDateTime::now_utc().unix_timestamp(),
            Ordering::Relaxed,
        );
    }
}

/// One gauge per state.
fn by_state(counts: [(&'static str, u64); 3]) -> Family<StateLabel, Gauge> {
    let family = Family::<StateLabel, Gauge>::default();
    for (state, n) in counts {
        family
            .get_or_create(&StateLabel { state })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    family
}

/// The text of one scrape.
fn render(journal: &Mutex<Journal>, last: &LastRound) -> anyhow::Result<String> {
    let s = journal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .status()?;
    let mut registry = Registry::default();
    registry.register(
        "gateway_agent_files",
        "Files of the export folders, by where they are",
        by_state([
            ("pending", s.pending),
            ("sent", s.sent),
            ("failed", s.failed),
        ]),
    );
    registry.register(
        "gateway_agent_requests",
        "The hub's requests, by where they are",
        by_state([
            ("open", s.requests_open),
            ("answered", s.requests_answered),
            ("failed", s.requests_failed),
        ]),
    );
    let round = Gauge::<i64>::default();
    round.set(last.0.load(Ordering::Relaxed));
    registry.register(
        "gateway_agent_last_round_timestamp_seconds",
        "When the agent last finished a round (Unix seconds)",
        round,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Serves `/metrics` on `listen` from a thread of its own; the address it listens on.
pub fn serve(listen: SocketAddr, state: PathBuf, last: LastRound) -> anyhow::Result<SocketAddr> {
    // A connection of its own, opened once: scrapes read it while the agent writes its own.
    let journal = Arc::new(Mutex::new(Journal::open(&state)?));
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("metrics on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("agent-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let (journal, last) = (journal.clone(), last.clone());
                        async move {
                            let text =
                                tokio::task::spawn_blocking(move || render(&journal, &last)).await;
                            match text {
                                Ok(Ok(text)) => (
                                    axum::http::StatusCode::OK,
                                    [(
                                        axum::http::header::CONTENT_TYPE,
                                        "text/plain; version=0.0.4",
                                    )],
                                    text,
                                ),
                                Ok(Err(e)) => (
                                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                    [(axum::http::header::CONTENT_TYPE, "text/plain")],
                                    format!("the journal cannot be read: {e:#}\n"),
                                ),
                                Err(e) => (
                                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                                    [(axum::http::header::CONTENT_TYPE, "text/plain")],
                                    format!("{e}\n"),
                                ),
                            }
                        }
                    }),
                );
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "the agent's metrics listener stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "the agent's metrics listener"),
                }
            });
        })?;
    Ok(addr)
}
