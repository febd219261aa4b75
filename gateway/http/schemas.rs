//! `GET /v1/schemas`: the schemas an authenticated agency may send, as one signed bundle with
//! a version, so that its tooling (`gateway agent`) validates an extract at the source with the
//! hub's own rules before sealing it.
//!
//! The body is JSON: `agency`, `version` (SHA-256 over the catalog and every file, so it moves
//! when any of them does), `catalog` (a `catalog.toml` of the agency's entries) and `files`
//! (each schema document by its path under `schemas/`, base64). The `Gateway-Signature`
//! header is a detached CMS signature over the exact body by the receipt key, as for
//! `/v1/recipient`.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::auth::authenticate;
use super::problem::ApiError;
use super::{AppState, PeerCertificate};
use crate::rejection::Code;

/// `GET /v1/schemas`
pub async fn get(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
) -> Response {
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let gw = st.gateway.clone();
    let built = tokio::task::spawn_blocking(move || bundle(&gw, &agency)).await;
    let (body, signature) = match built {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot publish the schemas");
            return ApiError::new(
                Code::InternalError,
                format!("the schemas cannot be published: {e}"),
            )
            .into_response();
        }
        Err(e) => return ApiError::new(Code::InternalError, e.to_string()).into_response(),
    };
    super::signed_json(body, Some(signature))
}

/// The bundle for `agency` and its signature.
fn bundle(
    gw: &crate::pipeline::Gateway,
    agency: &str,
) -> anyhow::Result<(Vec<u8>, axum::http::HeaderValue)> {
    let (catalog, files) = gw.catalog.published(&gw.config.schemas, agency)?;
    let mut version = openssl::sha::Sha256::new();
    version.update(catalog.as_bytes());
    let mut encoded = serde_json::Map::new();
    for (rel, path) in &files {
        let bytes = std::fs::read(path)?;
        version.update(rel.as_bytes());
        version.update(&openssl::sha::sha256(&bytes));
        encoded.insert(
            rel.clone(),
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        );
    }
    let body = serde_json::to_vec(&json!({
        "agency": agency,
        "version": hex::encode(version.finish()),
        "catalog": catalog,
        "files": encoded,
    }))?;
    let signature = super::signature_of(gw, &body).map_err(anyhow::Error::msg)?;
    Ok((body, signature))
}
