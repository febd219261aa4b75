//! The agency's side of hub requests (see [`crate::requests`]): `GET /v1/requests/next` (a
//! long poll: the agent's connection is outbound), `GET /v1/requests/{id}`, `POST
//! /v1/requests/{id}/failure`, and the check of a `Gateway-Request-Id` on an answer.
//!
//! A request handed to an agent is signed like the recipient document (`Gateway-Signature`,
//! by the receipt key): it makes the agent run a command, so the agent runs only what the hub
//! it pinned has asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::authenticate;
use super::problem::ApiError;
use super::{AppState, PeerCertificate};
use crate::message::AgencyName;
use crate::pipeline::Outcome;
use crate::rejection::Code;
use crate::requests::{self, RequestState};
use crate::store::{RequestBell, RequestEvent, RequestRecord};

/// Longest a `next` call waits for a request.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting `next` looks at the ledger when its store has no bell to wait on.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often a waiting `next` checks whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_secs(1);
/// Longest failure report kept, in bytes.
const MAX_DETAIL: usize = 4096;

/// The header an answer names its request with.
pub const REQUEST_HEADER: &str = "gateway-request-id";

fn ledger_down(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "the ledger cannot be used for requests");
    ApiError::new(
        Code::QueueUnavailable,
        "the ledger cannot be used right now: try again shortly",
    )
    .into_response()
}

fn unknown(id: &str, agency: &str) -> ApiError {
    ApiError::new(
        Code::RequestUnknown,
        format!("no request {id} for {agency}"),
    )
}

/// Runs one request event off the async threads.
async fn event(st: &AppState, ev: RequestEvent) -> Result<Vec<RequestRecord>, Response> {
    let gw = st.gateway.clone();
    let run = move || gw.forwarding.as_ref().map(|fw| fw.store.request(&ev));
    match tokio::task::spawn_blocking(run).await {
        Ok(Some(Ok(records))) => Ok(records),
        Ok(None) => Err(
            ApiError::new(Code::QueueUnavailable, "the gateway is not forwarding").into_response(),
        ),
        Ok(Some(Err(e))) => Err(ledger_down(e)),
        Err(e) => Err(ledger_down(e)),
    }
}

/// Records a request's step in the audit log (fsynced, so off the async threads).
async fn audit(
    st: &AppState,
    actor: &str,
    action: &'static str,
    r: &RequestRecord,
    mut details: serde_json::Value,
) {
    details["agency"] = json!(r.agency);
    details["query"] = json!(r.query);
    let (gw, actor, id) = (st.gateway.clone(), actor.to_owned(), r.id.clone());
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(fw) = &gw.forwarding
            && let Err(e) = fw.audit.append("request", &actor, action, &id, details)
        {
            tracing::error!(error = %e, request = %id, "the audit log could not record a request");
        }
    })
    .await;
}

/// The request as JSON, signed by the receipt key (never handed out unsigned: it would be
/// refused, and stay `taken` until its deadline).
fn signed(st: &AppState, r: &RequestRecord) -> Response {
    let body = requests::to_json(r).to_string().into_bytes();
    match super::signature_of(&st.gateway, &body) {
        Ok(signature) => super::signed_json(body, Some(signature)),
        Err(e) => ApiError::new(
            Code::QueueUnavailable,
            format!("the gateway cannot sign requests right now: {e}"),
        )
        .into_response(),
    }
}

/// `wait=N` (seconds, at most 30; default 25).
fn wait_of(query: Option<&str>) -> Result<Duration, ApiError> {
    let mut wait = Duration::from_secs(25);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("wait", v)) => {
                let secs = v.parse::<u64>().map_err(|_| {
                    ApiError::new(
                        Code::MalformedRequest,
                        format!("wait={v}: seconds, 0 to 30"),
                    )
                })?;
                wait = Duration::from_secs(secs).min(MAX_WAIT);
            }
            _ => {
                return Err(ApiError::new(
                    Code::MalformedRequest,
                    format!(
                        "unknown query parameter {pair:?}: /v1/requests/next takes only wait=SECONDS"
                    ),
                ));
            }
        }
    }
    Ok(wait)
}

/// `GET /v1/requests/next[?wait=N]`: the agency's oldest queued request, now taken (`200`,
/// signed), or `204` when none came within the wait.
pub async fn next(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let wait = match wait_of(query.as_deref()) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let until = Instant::now() + wait;
    let _waiting = crate::metrics::Held::new(&st.gateway.metrics.request_polls);
    // Listening before the first look, so a request asked just after it still rings.
    let mut bell = match st
        .gateway
        .forwarding
        .as_ref()
        .and_then(|fw| fw.store.request_bell())
    {
        Some(bell) => bell.listen(&agency),
        None => RequestBell::new(LOOK_EVERY).listen(&agency),
    };
    loop {
        let take = RequestEvent::Take {
            agency: agency.to_string(),
            now: requests::now(),
        };
        match event(&st, take).await {
            Ok(records) => {
                if let Some(r) = records.first() {
                    audit(&st, &agency, "request taken", r, json!({})).await;
                    return signed(&st, r);
                }
            }
            Err(resp) => return resp,
        }
        loop {
            let now = Instant::now();
            if now >= until || st.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return StatusCode::NO_CONTENT.into_response();
            }
            if bell.wait(until.min(now + STOP_CHECK).into()).await {
                break;
            }
        }
    }
}

/// The agency's own request `id`, or the problem.
async fn own(st: &AppState, agency: &AgencyName, id: &str) -> Result<RequestRecord, Response> {
    if id.len() > 64 {
        return Err(unknown(id, agency).into_response());
    }
    let get = RequestEvent::Get {
        id: id.to_owned(),
        now: requests::now(),
    };
    match event(st, get).await?.into_iter().next() {
        Some(r) if r.agency == agency.as_str() => Ok(r),
        _ => Err(unknown(id, agency).into_response()),
    }
}

/// `GET /v1/requests/{id}`: one of the agency's requests, as it stands.
pub async fn get(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match own(&st, &agency, &id).await {
        Ok(r) => Json(requests::to_json(&r)).into_response(),
        Err(resp) => resp,
    }
}

/// `POST /v1/requests/{id}/failure` with `{"detail": "..."}`: the agent could not answer.
pub async fn failure(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .filter(|d| !d.trim().is_empty());
    let Some(mut detail) = detail else {
        return ApiError::new(
            Code::MalformedRequest,
            "send {\"detail\": \"why the request could not be answered\"}",
        )
        .into_response();
    };
    if detail.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
    let r = match own(&st, &agency, &id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if r.state == RequestState::Failed {
        return Json(requests::to_json(&r)).into_response();
    }
    if r.state.is_closed() {
        return closed(&r).into_response();
    }
    let fail = RequestEvent::Failed {
        id: r.id.clone(),
        detail: detail.clone(),
        now: requests::now(),
    };
    match event(&st, fail).await.map(|v| v.into_iter().next()) {
        Ok(Some(r)) if r.state == RequestState::Failed => {
            audit(
                &st,
                &agency,
                "request failed",
                &r,
                json!({ "detail": detail }),
            )
            .await;
            Json(requests::to_json(&r)).into_response()
        }
        Ok(Some(r)) => closed(&r).into_response(),
        Ok(None) => unknown(&id, &agency).into_response(),
        Err(resp) => resp,
    }
}

fn closed(r: &RequestRecord) -> ApiError {
    ApiError::new(
        Code::RequestClosed,
        format!("request {} is {} already", r.id, r.state.as_str()),
    )
}

/// The request an upload answers (header `Gateway-Request-Id`), if it names one, and whether
/// it is still open: refused before the body is read when it is not the agency's, or failed
/// or timed out. An answered request is let through: the resend of its answer gets the
/// original receipt.
pub async fn answering(
    st: &AppState,
    agency: &AgencyName,
    headers: &HeaderMap,
) -> Result<Option<Answering>, Response> {
    let Some(v) = headers.get(REQUEST_HEADER) else {
        return Ok(None);
    };
    let id = v.to_str().unwrap_or_default().trim().to_owned();
    let r = own(st, agency, &id).await?;
    match r.state {
        RequestState::Queued | RequestState::Taken | RequestState::Answered => {
            Ok(Some(Answering {
                open: !r.state.is_closed(),
                id: r.id,
            }))
        }
        RequestState::Failed | RequestState::TimedOut => Err(closed(&r).into_response()),
    }
}

/// The request an upload answers.
#[derive(Debug, Clone)]
pub struct Answering {
    /// Its id.
    pub id: String,
    /// Whether it was open when the upload began (else the upload is a resend).
    pub open: bool,
}

/// Closes the request an upload answered, with its outcome: answered by the message the hub
/// now holds, or failed with the rejection.
pub async fn settle(st: &AppState, agency: &AgencyName, answering: &Answering, outcome: &Outcome) {
    if !answering.open {
        return;
    }
    let id = answering.id.as_str();
    let now = requests::now();
    let (ev, action, details) = match outcome {
        Outcome::Forwarded { receipt, .. }
        | Outcome::Duplicate {
            receipt: Some(receipt),
            ..
        } => (
            RequestEvent::Answered {
                id: id.to_owned(),
                message_id: receipt.gateway_message_id.to_string(),
                now,
            },
            "request answered",
            json!({ "gateway_message_id": receipt.gateway_message_id }),
        ),
        Outcome::Rejected { rejection, .. } => {
            let detail = format!(
                "the answer was rejected ({}): {}",
                rejection.code, rejection.detail
            );
            (
                RequestEvent::Failed {
                    id: id.to_owned(),
                    detail: detail.clone(),
                    now,
                },
                "request failed",
                json!({ "detail": detail }),
            )
        }
        Outcome::Duplicate { .. } | Outcome::Accepted { .. } => return,
    };
    match event(st, ev).await {
        Ok(records) => {
            if let Some(r) = records.first() {
                audit(st, agency, action, r, details).await;
            }
        }
        Err(_) => {
            // Logged by `event`; the message itself is where its outcome says.
        }
    }
}
