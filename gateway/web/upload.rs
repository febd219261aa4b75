//! The upload page (`GET /`) and what its script posts to (`POST /web/messages`).
//!
//! An upload from the page is an ordinary upload of the person's agency, channel `web`: the
//! same limits, the same pipeline and the same answers as `POST /v1/messages` (a signed
//! receipt, or the problem with every violation), audited under the person's name.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};

use super::Web;
use super::guard::{self, CSRF_HEADER};
use super::pages;
use crate::accounts::Role;
use crate::http::messages::{From, accept, check_only, refuse};
use crate::http::problem::ApiError;
use crate::message::{AgencyName, Channel};
use crate::rejection::Code;

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
    let resp = accept(&web.app, from, check, &headers, body).await;
    who.finish(resp)
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
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let Some(why) = guard::refuse_forgery(headers, uri, token, &who.csrf(web)) {
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
    };
    Ok((who, from, check))
}
