//! The HTTPS channel: `fn router()` for the API, and `serve()` for TLS, connections and
//! graceful shutdown.
//!
//! `POST /v1/messages` authenticates the agency from the headers alone (bearer token and/or a
//! client certificate registered for it) before a byte of the body is read, takes one of a
//! bounded number of upload slots (`503 busy` + `Retry-After` when none is free), receives the
//! body (a small one whose size is declared, up to [`MEMORY_UPLOAD_MAX`], in memory within a
//! byte budget shared by all uploads; anything else streamed to a file under `state/incoming/`,
//! still encrypted), and hands it to the same pipeline every channel uses, on a blocking
//! thread, once a processing slot is free.

mod auth;
mod linger;
pub mod messages;
pub mod problem;
pub mod proxy;
pub mod requests;
mod schemas;
pub mod tls;
mod upload;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor};
use openssl::x509::X509;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::keyring::tokens::Tokens;
use crate::pipeline::Gateway;
use crate::rejection::Code;

/// The client certificate of the connection, if one was presented, with the intermediate
/// certificates the client sent after it (chain candidates, never trusted by themselves).
#[derive(Clone, Default)]
pub struct PeerCertificate {
    /// The client's own certificate.
    pub cert: Option<X509>,
    /// The rest of the chain the client presented.
    pub chain: Vec<X509>,
}

/// The client's address: the connection's own, or, from a load balancer
/// `http.proxy_protocol_from` names, the one its PROXY header gives.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Uploads of at most this many bytes (declared) are held in memory.
pub const MEMORY_UPLOAD_MAX: u64 = 1 << 20;
/// Memory all in-memory uploads may hold at once, in KiB (64 MiB).
const MEMORY_BUDGET_KIB: usize = 64 * 1024;

/// The tokens as last read, when, and at which keyring generation.
pub struct TokenCache {
    tokens: Tokens,
    read_at: std::time::Instant,
    generation: u64,
}

/// Everything the handlers share.
pub struct AppState {
    /// The pipeline (loaded with forwarding).
    pub gateway: Arc<Gateway>,
    /// Bearer tokens, re-read from `keys/` when an unknown one is presented (at most once a
    /// second) and every 5 seconds, so `gateway agency token issue` and `token revoke` take
    /// effect without a restart.
    pub tokens: std::sync::RwLock<TokenCache>,
    /// Processing slots.
    pub permits: Arc<Semaphore>,
    /// Upload slots, global and per agency: a slow client holds one of these, never a
    /// processing slot.
    pub uploads: upload::UploadSlots,
    /// Where uploads are streamed to before processing.
    pub incoming: PathBuf,
    /// Memory budget (KiB) for small uploads held in memory instead of a file.
    pub memory: Arc<Semaphore>,
    /// The bearer token that opens `/metrics` on the HTTPS port (from the environment variable
    /// `metrics.token_env`); without one, metrics are only on the metrics listener.
    pub metrics_token: Option<String>,
    /// Set once the server is shutting down: long polls answer at once rather than hold the
    /// shutdown up.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// State for `gateway`: loads tokens and agencies from its `keys/`.
    pub fn new(gateway: Arc<Gateway>) -> Result<AppState, crate::keyring::KeyringError> {
        let keys = gateway.config.keys.clone();
        let incoming = gateway.config.state.join("incoming");
        crate::fsio::create_private_dir(&incoming).map_err(|error| {
            crate::keyring::KeyringError::Io {
                path: incoming.clone(),
                error,
            }
        })?;
        // Uploads interrupted by a crash are still encrypted and were never acknowledged:
        // the sender retries, so the leftovers are only clutter.
        if let Ok(entries) = std::fs::read_dir(&incoming) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(AppState {
            permits: Arc::new(Semaphore::new(gateway.config.http.max_in_flight)),
            uploads: upload::UploadSlots::new(
                gateway.config.http.max_uploads,
                gateway.config.http.max_uploads_per_agency,
            ),
            memory: Arc::new(Semaphore::new(MEMORY_BUDGET_KIB)),
            tokens: std::sync::RwLock::new(TokenCache {
                tokens: Tokens::load(&keys)?,
                read_at: std::time::Instant::now(),
                generation: gateway.keyring.generation(),
            }),
            metrics_token: std::env::var(&gateway.config.metrics.token_env)
                .ok()
                .filter(|t| !t.trim().is_empty()),
            gateway,
            incoming,
            stopping: Arc::default(),
        })
    }
}

impl AppState {
    /// The agency a bearer token belongs to.
    pub fn token_agency(&self, token: &str) -> Option<String> {
        // An admin command that changed keys/ (a token revoked) moves the generation: the
        // very next request sees it.
        let _ = self.gateway.keyring.get();
        let generation = self.gateway.keyring.generation();
        if let Ok(t) = self.tokens.read()
            && t.generation == generation
            && t.read_at.elapsed() < std::time::Duration::from_secs(5)
            && let Some(a) = t.tokens.agency_of(token)
        {
            return Some(a.to_owned());
        }
        let mut t = self.tokens.write().ok()?;
        if t.generation == generation && t.read_at.elapsed() < std::time::Duration::from_secs(1) {
            return t.tokens.agency_of(token).map(str::to_owned);
        }
        match Tokens::load(&self.gateway.config.keys) {
            Ok(fresh) => t.tokens = fresh,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the tokens; using the previous ones")
            }
        }
        t.read_at = std::time::Instant::now();
        t.generation = generation;
        t.tokens.agency_of(token).map(str::to_owned)
    }
}

/// The API routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::post))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/recipient", get(recipient))
        .route("/v1/schemas", get(schemas::get))
        .route("/v1/requests/next", get(requests::next))
        .route("/v1/requests/{id}", get(requests::get))
        .route("/v1/requests/{id}/failure", post(requests::failure))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_https))
        .route("/openapi.yaml", get(openapi))
        .with_state(state)
}

/// The metrics listener's routes (plain HTTP, loopback by default): `/metrics` and the probes.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The `Gateway-Signature` of `body`: its detached CMS signature (base64 DER) by the receipt
/// key. What agents check the recipient document, the schema bundle and requests with.
pub(crate) fn signature_of(gw: &Gateway, body: &[u8]) -> Result<axum::http::HeaderValue, String> {
    use base64::Engine;
    let fw = gw
        .forwarding
        .as_ref()
        .ok_or("the gateway is not forwarding: no receipt key")?;
    let sig = fw.receipts.sign_bytes(body).map_err(|e| e.to_string())?;
    axum::http::HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(sig))
        .map_err(|e| e.to_string())
}

/// `body` as JSON, with `signature` as its `Gateway-Signature` when there is one.
pub(crate) fn signed_json(
    body: Vec<u8>,
    signature: Option<axum::http::HeaderValue>,
) -> axum::response::Response {
    let mut resp = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(v) = signature {
        resp.headers_mut().insert("gateway-signature", v);
    }
    resp
}

/// The signed recipient document (see `keyring::recipient_doc`).
async fn recipient(State(st): State<Arc<AppState>>) -> axum::response::Response {
    let ring = st.gateway.keyring.get();
    let doc = crate::keyring::recipient_doc::RecipientDocument::new(
        &ring.identities,
        time::OffsetDateTime::now_utc(),
    );
    let json = doc.to_json();
    // Unsigned when it cannot be signed: agents then refuse it, and say why.
    let signature = signature_of(&st.gateway, &json)
        .map_err(|e| tracing::error!(error = %e, "cannot sign the recipient document"))
        .ok();
    signed_json(json, signature)
}

/// The API's OpenAPI document (`docs/openapi.yaml`, compiled in).
pub const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI,
    )
}

/// `/metrics` on the HTTPS port: agency names, counts by rejection code and certificate
/// fingerprints are not for every client, so only with the metrics token.
async fn metrics_https(
    State(st): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let Some(token) = &st.metrics_token else {
        let mut e = problem::ApiError::new(
            Code::NotFound,
            "metrics are served on the metrics listener (metrics.listen), not on this port",
        );
        e.rejection.action = "read /metrics from the metrics listener (metrics.listen, loopback by default), or set the metrics token (the variable metrics.token_env names) and present it as a bearer token here";
        return e.into_response();
    };
    let presented = auth::bearer_token(&headers).ok().flatten();
    let ok = presented.is_some_and(|p| {
        p.len() == token.len() && openssl::memcmp::eq(p.as_bytes(), token.as_bytes())
    });
    if !ok {
        return problem::ApiError::new(
            Code::Unauthenticated,
            format!(
                "/metrics on this port needs the metrics token (Authorization: Bearer, the value of {})",
                st.gateway.config.metrics.token_env
            ),
        )
        .into_response();
    }
    metrics(State(st)).await.into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let gw = st.gateway.clone();
    let text = tokio::task::spawn_blocking(move || {
        crate::health::refresh_gauges(&gw);
        gw.metrics.render()
    })
    .await
    .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn readyz(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let gw = st.gateway.clone();
    let why = tokio::task::spawn_blocking(move || crate::health::not_ready(&gw))
        .await
        .unwrap_or_else(|e| vec![format!("the readiness check failed: {e}")]);
    if why.is_empty() {
        // Still ready on the previous keys, but an operator should know a reload failed.
        let mut body = match st.gateway.keyring.last_error() {
            Some(e) => json!({"status": "ready", "keys_reload_error": e}),
            None => json!({"status": "ready"}),
        };
        // The mailbox being away stops only the mail channel: HTTPS and the folders still
        // take messages, so the instance stays in its load balancer, and says what is down.
        if let Some(e) = st.gateway.metrics.mail_problem() {
            body["mail_error"] = json!(e);
        }
        (axum::http::StatusCode::OK, Json(body))
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reasons": why})),
        )
    }
}

/// Requests in progress on one connection, and when the last one ended: a connection with
/// none for `idle_timeout` is closed (hyper's HTTP/1 server has no idle keep-alive timeout of
/// its own; its header timeout only starts once a request begins to arrive).
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    since: std::sync::Mutex<std::time::Instant>,
}

impl Activity {
    fn start(&self) {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn end(&self) {
        if let Ok(mut t) = self.since.lock() {
            *t = std::time::Instant::now();
        }
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn idle_for(&self) -> Option<std::time::Duration> {
        if self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return None;
        }
        self.since.lock().ok().map(|t| t.elapsed())
    }
}

/// Connections open now against the cap: past three quarters of it, idle connections and
/// slow handshakes are cut short so the descriptors go to clients that send.
struct Connections {
    slots: Arc<Semaphore>,
    max: usize,
}

impl Connections {
    fn crowded(&self) -> bool {
        self.slots.available_permits() < self.max / 4
    }
}

/// One of the `max_connections` slots, counted in `gateway_connections` while held.
struct OpenConnection {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _counted: crate::metrics::Held,
}

impl OpenConnection {
    fn new(
        slot: tokio::sync::OwnedSemaphorePermit,
        gauge: &prometheus_client::metrics::gauge::Gauge,
    ) -> OpenConnection {
        OpenConnection {
            _slot: slot,
            _counted: crate::metrics::Held::new(gauge),
        }
    }
}

/// How long idle connections and handshakes may take while the server is crowded.
const CROWDED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Failures of `accept()` (typically "Too many open files"): each is followed by a pause that
/// doubles up to a second, so a server out of descriptors does not spin, and they are logged
/// at most once per ten seconds, with how many were not.
struct AcceptErrors {
    pause: std::time::Duration,
    logged: Option<std::time::Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
    const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    fn new() -> AcceptErrors {
        AcceptErrors {
            pause: Self::FIRST_PAUSE,
            logged: None,
            unlogged: 0,
        }
    }

    /// Records a failure; returns how long to pause.
    fn failed(&mut self, e: &std::io::Error, open: usize) -> std::time::Duration {
        let now = std::time::Instant::now();
        if self.logged.is_none_or(|t| now - t >= Self::LOG_EVERY) {
            tracing::warn!(
                error = %e,
                open_connections = open,
                not_logged = self.unlogged,
                "cannot accept connections; backing off (see http.max_connections and the open-file limit)"
            );
            self.logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(Self::MAX_PAUSE);
        pause
    }

    fn succeeded(&mut self) {
        self.pause = Self::FIRST_PAUSE;
    }
}

/// Accepts TLS connections on `listener` for `app` (the API's [`router`], and whatever else
/// shares the listener) until `shutdown` resolves, then waits for the
/// connections in flight to finish. At most `http.max_connections` are open at once; further
/// clients wait in the kernel's listen backlog.
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<tls::LiveAcceptor>,
    state: Arc<AppState>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let http = state.gateway.config.http.clone();
    let gateway = state.gateway.clone();
    warn_if_few_descriptors(&http);
    let connections = Arc::new(Connections {
        slots: Arc::new(Semaphore::new(http.max_connections)),
        max: http.max_connections,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let open = Arc::new(());
    let per_connection = PerConnection {
        app,
        builder: hyper_builder(&http),
        stop: stop_rx,
        open: open.clone(),
        connections: connections.clone(),
        handshake_timeout: http.header_timeout,
        idle_timeout: http.idle_timeout,
        proxy_protocol_from: Arc::new(http.proxy_protocol_from.clone()),
    };
    let mut errors = AcceptErrors::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            s = connections.slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => {
                    errors.succeeded();
                    x
                }
                Err(e) => {
                    gateway.metrics.accept_errors.inc();
                    let busy = connections.max - connections.slots.available_permits();
                    let pause = errors.failed(&e, busy);
                    drop(slot);
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let slot = OpenConnection::new(slot, &gateway.metrics.connections);
        // Each connection keeps the certificate it was accepted with, across reloads.
        let acceptor = acceptor.get();
        tokio::spawn(per_connection.clone().run(acceptor, tcp, peer, slot));
    }
    drop(listener);
    // Its clone of `open` would count as a connection still open.
    drop(per_connection);
    let _ = stop_tx.send(true);
    drain(&open, http.request_timeout).await;
    Ok(())
}

fn warn_if_few_descriptors(http: &crate::config::Http) {
    let limit = crate::fsio::descriptor_limit();
    if http.max_connections as u64 + 256 > limit {
        tracing::warn!(
            max_connections = http.max_connections,
            open_file_limit = limit,
            "http.max_connections leaves fewer than 256 descriptors for files, the ledger and reloads: lower it or raise the open-file limit (LimitNOFILE=)"
        );
    }
}

fn hyper_builder(
    http: &crate::config::Http,
) -> Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(http.idle_timeout));
    Arc::new(builder)
}

/// Waits until every connection task has ended (each holds a clone of `open`), at most
/// `timeout`.
async fn drain(open: &Arc<()>, timeout: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while Arc::strong_count(open) > 1 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("connections still open after the request timeout; closing them");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct PerConnection {
    app: axum::Router,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    stop: tokio::sync::watch::Receiver<bool>,
    open: Arc<()>,
    connections: Arc<Connections>,
    handshake_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
    proxy_protocol_from: Arc<Vec<ipnet::IpNet>>,
}

impl PerConnection {
    /// One connection: the handshake, then HTTP until the client leaves, the connection
    /// idles too long, or the server stops (after the request in progress).
    async fn run(
        mut self,
        acceptor: Arc<SslAcceptor>,
        mut tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        slot: OpenConnection,
    ) {
        let _open = self.open.clone();
        let _slot = slot;
        let started = tokio::time::Instant::now();
        let Some(peer) = self.client_of(&mut tcp, peer).await else {
            return;
        };
        let Some(stream) = handshake(
            &acceptor,
            tcp,
            peer,
            self.handshake_timeout.saturating_sub(started.elapsed()),
            &self.connections,
        )
        .await
        else {
            return;
        };
        let cert = PeerCertificate {
            cert: stream.ssl().peer_certificate(),
            // On the server side OpenSSL's peer chain does not include the leaf.
            chain: stream
                .ssl()
                .peer_cert_chain()
                .map(|s| s.iter().map(|c| c.to_owned()).collect())
                .unwrap_or_default(),
        };
        let activity = Arc::new(Activity {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            since: std::sync::Mutex::new(std::time::Instant::now()),
        });
        let (started, ended) = (activity.clone(), activity.clone());
        let svc = tower::ServiceExt::map_request(
            self.app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                started.start();
                req.extensions_mut().insert(cert.clone());
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        );
        let svc = tower::ServiceExt::map_response(svc, move |resp| {
            ended.end();
            resp
        });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(linger::Lingering::new(stream)), svc);
        tokio::pin!(conn);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        let mut closing = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                _ = self.stop.changed(), if !closing => {
                    // Finish the request in progress, then close.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tick.tick(), if !closing => {
                    let allowed = if self.connections.crowded() {
                        CROWDED_TIMEOUT.min(self.idle_timeout)
                    } else {
                        self.idle_timeout
                    };
                    if activity.idle_for().is_some_and(|d| d >= allowed) {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }

    /// The client's address: `peer`, or the one a load balancer's PROXY header names, read
    /// within the handshake's time (`None`: the connection is dropped, and the log says why).
    /// The header and the TLS handshake share one `http.header_timeout_secs`: the handshake
    /// gets what this leaves.
    async fn client_of(
        &self,
        tcp: &mut tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<SocketAddr> {
        if !proxy::expected_from(&self.proxy_protocol_from, peer.ip()) {
            return Some(peer);
        }
        match tokio::time::timeout(self.handshake_timeout, proxy::read_header(tcp, peer)).await {
            Ok(Ok(client)) => Some(client),
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "connection from a load balancer dropped");
                None
            }
            Err(_) => {
                tracing::warn!(%peer, "connection from a load balancer dropped: no PROXY header within http.header_timeout_secs");
                None
            }
        }
    }
}

/// The TLS handshake, within `timeout`, or within [`CROWDED_TIMEOUT`] while the server is
/// crowded (checked as it waits, so handshakes begun before the crowd came are cut short too).
async fn handshake(
    acceptor: &Arc<SslAcceptor>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    timeout: std::time::Duration,
    connections: &Connections,
) -> Option<tokio_openssl::SslStream<tokio::net::TcpStream>> {
    let ssl = Ssl::new(acceptor.context()).ok()?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).ok()?;
    let started = tokio::time::Instant::now();
    let result = {
        let accept = std::pin::Pin::new(&mut stream).accept();
        tokio::pin!(accept);
        loop {
            let limit = if connections.crowded() {
                CROWDED_TIMEOUT.min(timeout)
            } else {
                timeout
            };
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                break None;
            }
            let step = left.min(std::time::Duration::from_millis(500));
            if let Ok(r) = tokio::time::timeout(step, &mut accept).await {
                break Some(r);
            }
        }
    };
    match result {
        Some(Ok(())) => Some(stream),
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        None => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
