//! `/v1/admin/...`: the console's facts as JSON, for operators' and admins' own tools. The
//! same session as the console opens it (a `GET` changes nothing, so it needs no CSRF
//! token); anyone else gets `401`, an uploader `403`. Described in `docs/openapi.yaml`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::report;
use super::{Filters, STAFF, query_of};
use crate::http::problem::ApiError;
use crate::message::MessageId;
use crate::rejection::Code;
use crate::web::Web;
use crate::web::guard;

fn staff(web: &Web, headers: &HeaderMap) -> Result<guard::SignedIn, Box<Response>> {
    let Some(who) = guard::signed_in(web, headers) else {
        return Err(Box::new(
            ApiError::new(
                Code::Unauthenticated,
                "sign in to the console first: /v1/admin is for operators and admins",
            )
            .into_response(),
        ));
    };
    if !STAFF.contains(&who.user.role) {
        return Err(Box::new(
            ApiError::new(
                Code::Forbidden,
                format!(
                    "an {} account cannot read /v1/admin",
                    who.user.role.as_str()
                ),
            )
            .into_response(),
        ));
    }
    Ok(who)
}

async fn answer<T: serde::Serialize + Send + 'static>(
    who: guard::SignedIn,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Response {
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let resp = match out {
        Ok(v) => Json(v).into_response(),
        Err(e) => ApiError::new(
            Code::QueueUnavailable,
            format!("the gateway's state cannot be read right now: {e}"),
        )
        .into_response(),
    };
    who.finish(resp)
}

/// `GET /v1/admin/messages`
pub async fn messages(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let f = match filters {
        Ok(Query(f)) => f,
        Err(e) => return ApiError::new(Code::MalformedRequest, e.body_text()).into_response(),
    };
    let q = match query_of(&f, 100) {
        Ok(q) => q,
        Err(e) => return ApiError::new(Code::MalformedRequest, e).into_response(),
    };
    let gw = web.app.gateway.clone();
    answer(who, move || {
        report::messages(&gw, &q).map_err(|e| e.to_string())
    })
    .await
}

/// `GET /v1/admin/messages/{id}`
pub async fn message(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let not_found = ApiError::new(Code::NotFound, format!("no message {id}"));
    let Ok(mid) = MessageId::parse(&id) else {
        return not_found.into_response();
    };
    let gw = web.app.gateway.clone();
    answer_one(who, not_found, move || {
        report::message(&gw, &mid).map_err(|e| e.to_string())
    })
    .await
}

/// Like [`answer`], for one thing that may not exist: `missing` when it does not.
async fn answer_one<T: serde::Serialize + Send + 'static>(
    who: guard::SignedIn,
    missing: ApiError,
    f: impl FnOnce() -> Result<Option<T>, String> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(Some(v))) => who.finish(Json(v).into_response()),
        Ok(Ok(None)) => missing.into_response(),
        Ok(Err(e)) => ApiError::new(Code::QueueUnavailable, e).into_response(),
        Err(e) => ApiError::new(Code::InternalError, e.to_string()).into_response(),
    }
}

/// `GET /v1/admin/overview`: traffic per agency, the queue, keys, the audit chain.
pub async fn overview(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let gw = web.app.gateway.clone();
    answer(who, move || {
        report::overview(&gw, time::OffsetDateTime::now_utc()).map_err(|e| e.to_string())
    })
    .await
}

/// `GET /v1/admin/quarantine`
pub async fn quarantine(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let gw = web.app.gateway.clone();
    answer(who, move || match &gw.forwarding {
        Some(fw) => fw
            .quarantine
            .list()
            .map(|entries| json!({ "entries": entries }))
            .map_err(|e| e.to_string()),
        None => Ok(json!({ "entries": [] })),
    })
    .await
}

/// `GET /v1/admin/requests[?agency=NAME]`: the newest hub requests.
pub async fn requests(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let agency = q.get("agency").cloned().filter(|a| !a.is_empty());
    let gw = web.app.gateway.clone();
    answer(who, move || {
        let Some(fw) = &gw.forwarding else {
            return Ok(json!({ "requests": [] }));
        };
        let all = fw
            .store
            .request(&crate::store::RequestEvent::List {
                agency,
                limit: 200,
                now: crate::requests::now(),
            })
            .map_err(|e| e.to_string())?;
        let v: Vec<_> = all.iter().map(crate::requests::to_json).collect();
        Ok(json!({ "requests": v }))
    })
    .await
}

/// `GET /v1/admin/requests/{id}`
pub async fn request(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let gw = web.app.gateway.clone();
    let missing = ApiError::new(Code::RequestUnknown, format!("no request {id}"));
    answer_one(who, missing, move || match &gw.forwarding {
        Some(fw) => crate::requests::get(fw.store.as_ref(), &id)
            .map(|r| r.as_ref().map(crate::requests::to_json))
            .map_err(|e| e.to_string()),
        None => Ok(None),
    })
    .await
}

/// The body of `POST /v1/admin/requests`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    agency: String,
    query: String,
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
    wait_minutes: Option<u64>,
}

/// `POST /v1/admin/requests`: an operator or admin asks an agency for data (the session's
/// CSRF token in `X-CSRF-Token`); `201` with the request.
pub async fn ask(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Result<Json<AskBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let who = match staff(&web, &headers) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if let Some(why) = who.forged(&web, &headers, &uri) {
        return ApiError::new(Code::Forbidden, why).into_response();
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::new(Code::MalformedRequest, e.body_text()).into_response(),
    };
    let gw = web.app.gateway.clone();
    let person = who.user.name.clone();
    let made = tokio::task::spawn_blocking(move || {
        let Some(fw) = &gw.forwarding else {
            return Err(crate::admin::AdminError::Refused(
                "the gateway is not forwarding".into(),
            ));
        };
        let ask = crate::requests::Ask {
            agency: &body.agency,
            query: &body.query,
            params: body.params,
            wait: body
                .wait_minutes
                .map_or(crate::requests::DEFAULT_WAIT, |m| {
                    std::time::Duration::from_secs(m.saturating_mul(60))
                }),
            by: &person,
        };
        crate::admin::Admin::new(&gw.config, &person, "console")
            .request_ask(fw.store.as_ref(), &ask)
    })
    .await;
    match made {
        Ok(Ok(r)) => who.finish(
            (
                axum::http::StatusCode::CREATED,
                Json(crate::requests::to_json(&r)),
            )
                .into_response(),
        ),
        Ok(Err(crate::admin::AdminError::Refused(why))) => {
            ApiError::new(Code::MalformedRequest, why).into_response()
        }
        Ok(Err(e)) => ApiError::new(Code::QueueUnavailable, e.to_string()).into_response(),
        Err(e) => ApiError::new(Code::InternalError, e.to_string()).into_response(),
    }
}
