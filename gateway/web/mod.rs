//! The pages people use, on the HTTPS listener beside the API: the upload page (`/`) for
//! agency staff, sign-in, the person's own account (`/account`), and the console
//! (`/console`) for operators and admins.
//!
//! Pages are rendered on the server ([`pages`]); the only script is the upload page's
//! (`/assets/upload.js`, with the sealing bundle built from npm packages, see `web/README.md`),
//! and every asset is compiled into the binary: no third-party host is ever asked for
//! anything. Every response carries a strict Content-Security-Policy with no inline script.
//! A form (or the upload script) is only honoured from this origin ([`guard`]): the session
//! cookie is `SameSite=Strict`, each form carries the session's CSRF token, and a request
//! whose `Origin` or `Sec-Fetch-Site` says it came from elsewhere is refused.

mod account;
mod assets;
mod console;
pub mod guard;
pub mod pages;
mod sign_in;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::accounts::session::SessionKey;
use crate::http::AppState;
use crate::keyring::KeyringError;

/// What the pages share.
pub struct Web {
    /// The API's state (the pipeline, upload slots, limits).
    pub app: Arc<AppState>,
    /// Signs sessions and CSRF tokens.
    pub key: SessionKey,
    /// Sign-in attempts per client address.
    pub limiter: sign_in::Limiter,
    /// Password checks running at once (argon2 is meant to be costly; an attacker must not
    /// be able to spend every core on it).
    pub checks: tokio::sync::Semaphore,
}

/// The pages' routes; none when `[web] enabled = false`.
pub fn router(app: Arc<AppState>) -> Result<Router, KeyringError> {
    let config = &app.gateway.config;
    if !config.web.enabled {
        return Ok(Router::new());
    }
    let key = SessionKey::load_or_create(&config.keys)?;
    let web = Arc::new(Web {
        limiter: sign_in::Limiter::new(config.web.sign_ins_per_minute),
        checks: tokio::sync::Semaphore::new(2),
        key,
        app,
    });
    Ok(Router::new()
        .route("/", get(upload::page))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-in/certificate", post(sign_in::certificate))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/account", get(account::page))
        .route("/account/password", post(account::new_password))
        .route("/web/messages", post(upload::post))
        .route("/console", get(console::overview))
        .route("/console/messages", get(console::messages))
        .route("/console/messages/{id}", get(console::message))
        .route("/console/events", get(console::events))
        .route("/console/quarantine", get(console::quarantine))
        .route(
            "/console/quarantine/{agency}/{id}/rerun",
            post(console::rerun),
        )
        .route(
            "/console/quarantine/{agency}/{id}/discard",
            post(console::discard),
        )
        .route(
            "/console/requests",
            get(console::requests_page).post(console::requests_ask),
        )
        .route("/console/admin", get(console::admin_page))
        .route("/console/admin/{action}", post(console::admin_act))
        .route("/v1/admin/overview", get(console::api::overview))
        .route("/v1/admin/messages", get(console::api::messages))
        .route("/v1/admin/messages/{id}", get(console::api::message))
        .route("/v1/admin/quarantine", get(console::api::quarantine))
        .route(
            "/v1/admin/requests",
            get(console::api::requests).post(console::api::ask),
        )
        .route("/v1/admin/requests/{id}", get(console::api::request))
        .route("/assets/{name}", get(assets::get))
        .layer(axum::middleware::map_response(guard::headers))
        .with_state(web))
}

/// Records what a person did in the audit log (kind `web`, under their name).
fn audit(web: &Web, person: &str, action: &str, details: serde_json::Value) {
    let Some(fw) = &web.app.gateway.forwarding else {
        return;
    };
    // Appending may wait for a disk or the database: not on an async thread's time.
    let appended =
        tokio::task::block_in_place(|| fw.audit.append("web", person, action, person, details));
    if let Err(e) = appended {
        tracing::error!(error = %e, action, "the audit log could not record a web action");
    }
}
