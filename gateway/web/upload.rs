//! The upload page (`GET /`) and what its script posts to (`POST /web/messages`).
//!
//! An upload from the page is an ordinary upload of the person's agency, channel `web`: the
//! same limits, the same pipeline and the same answers as `POST /v1/messages` (a signed
//! receipt, or the problem with every violation), audited under the person's name.

use std::sync::Arc;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Web;
use super::guard;
use super::pages;
use crate::accounts::Role;
use crate::http::messages::{From, accept, check_only, refuse};
use crate::http::problem::ApiError;
use crate::message::{AgencyName, Channel, MessageId};
use crate::rejection::Code;
use serde_json::json;

/// `GET /`: the upload page for uploaders; operators and admins go to the console.
pub async fn page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let who = match guard::page_for(&web, &headers, &[Role::Uploader]) {
        Ok(who) => who,
        Err(elsewhere) => {
            // Hub staff have no agency to upload for: their page is the console.
            return match guard::signed_in(&web, &headers) {
                Some(w) if w.user.role != Role::Uploader => {
                    w.finish(axum::response::Redirect::to("/console").into_response())
                }
                _ => *elsewhere,
            };
        }
    };
    let page = pages::upload(&who, &web);
    who.finish(page.into_response())
}

/// `POST /web/messages[?check=true]`: the body is a sealed payload; the session names the
/// person and their agency; the CSRF token comes in `X-CSRF-Token`.
pub async fn post(
    State(web): State<Arc<Web>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (who, from, check) = match admit(&web, query.as_deref(), &headers, &uri) {
        Ok(admitted) => admitted,
        Err(e) => return refuse(body.into_data_stream(), e.into_response()).await,
    };
    let agency = from.agency.clone();
    let resp = accept(&web.app, from, check, &headers, body).await;
    let resp = with_excerpts(&web, agency, resp).await;
    who.finish(resp)
}

/// A refusal with violations gets, under each of the first 50, the lines of the document
/// around it (`excerpt`), read back from the quarantined payload: the page cannot read a file
/// that was sealed before it was chosen, and the person is the one who sent it.
async fn with_excerpts(web: &Web, agency: AgencyName, resp: Response) -> Response {
    if resp.status() != StatusCode::UNPROCESSABLE_ENTITY {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 4 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match excerpts(web, agency, &bytes).await {
        Some(richer) => {
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Body::from(richer)
        }
        None => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// The problem `bytes` with excerpts added, when there are lines to show.
async fn excerpts(web: &Web, agency: AgencyName, bytes: &[u8]) -> Option<String> {
    let mut problem = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    let id = MessageId::parse(problem["gateway_message_id"].as_str()?).ok()?;
    let around = |l: u64| l.saturating_sub(2).max(1)..=l + 2;
    let wanted: BTreeSet<u64> = problem["violations"]
        .as_array()?
        .iter()
        .take(50)
        .filter_map(|v| v["line"].as_u64())
        .flat_map(around)
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let gw = web.app.gateway.clone();
    let lines = tokio::task::spawn_blocking(move || read_lines(&gw, &agency, &id, &wanted))
        .await
        .ok()??;
    for v in problem["violations"].as_array_mut()?.iter_mut().take(50) {
        let Some(l) = v["line"].as_u64() else {
            continue;
        };
        let shown: Vec<_> = around(l)
            .filter_map(|n| lines.get(&n).map(|t| json!({"line": n, "text": t})))
            .collect();
        v["excerpt"] = json!(shown);
    }
    Some(problem.to_string())
}

/// The lines `wanted` of the quarantined payload of message `id`, if it is kept.
fn read_lines(
    gw: &crate::pipeline::Gateway,
    agency: &AgencyName,
    id: &MessageId,
    wanted: &BTreeSet<u64>,
) -> Option<BTreeMap<u64, String>> {
    let fw = gw.forwarding.as_ref()?;
    let (_, payload) = fw.quarantine.entry(agency, id).ok()??;
    let file = std::fs::File::open(payload).ok()?;
    let ring = gw.keyring.get();
    let opened = crate::envelope::Envelope::received(agency, std::io::BufReader::new(file))
        .open(&ring.identities)
        .ok()?;
    opened.lines(wanted).ok()
}

/// Whether the page's upload may go on: signed in as an uploader, from this origin, with
/// the session's CSRF token; who sends it, and whether only to check it.
fn admit(
    web: &Web,
    query: Option<&str>,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(guard::SignedIn, From, bool), ApiError> {
    let Some(who) = guard::signed_in(web, headers) else {
        return Err(ApiError::new(
            Code::Unauthenticated,
            "your session has ended: sign in again (nothing was uploaded)",
        ));
    };
    if let Some(why) = who.forged(web, headers, uri) {
        return Err(ApiError::new(Code::Forbidden, why));
    }
    let agency = match (&who.user.role, who.user.agency.as_deref()) {
        (Role::Uploader, Some(a)) => AgencyName::parse(a).ok(),
        _ => None,
    };
    let Some(agency) = agency else {
        return Err(ApiError::new(
            Code::Forbidden,
            "only an uploader's account uploads, for its agency",
        ));
    };
    let check = check_only(query)?;
    let from = From {
        agency,
        channel: Channel::Web,
        person: Some(who.user.name.clone()),
        request: None,
    };
    Ok((who, from, check))
}
