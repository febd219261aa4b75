//! The console (`/console/...`), for operators and admins: the overview (traffic per agency,
//! the queue, keys and certificates, the audit chain), the messages (filters, paging, live
//! updates by server-sent events), one message (steps, receipt, violations), and the
//! quarantine (re-run after a fix, or discard with a reason), and the hub's requests to
//! agencies (ask one, see where they stand). Every action is audited under the person's name.
//! `/v1/admin/...` serves the same facts as JSON ([`api`]).

pub mod api;
mod manage;
mod render;
pub mod report;
mod requests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::Web;
use super::guard::{self, SignedIn};
use crate::accounts::Role;
use crate::message::{AgencyName, Channel, MessageId, timestamp};
use crate::pipeline::{Outcome, Payload};
use crate::store::{MessageQuery, Status};
pub use manage::{act as admin_act, page_get as admin_page};
pub use render::Filters;
pub use requests::{ask as requests_ask, page_get as requests_page};

/// Who may open the console.
pub const STAFF: &[Role] = &[Role::Operator, Role::Admin];

/// Runs `f` off the async threads (ledger and file reads); a failure becomes a 503 page.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(&e)),
        Err(e) => Err(unavailable(&e.to_string())),
    }
}

fn unavailable(why: &str) -> Response {
    tracing::error!(error = why, "the console cannot read the gateway's state");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        super::pages::refused(&format!(
            "the console cannot read the gateway's state: {why}"
        )),
    )
        .into_response()
}

/// `GET /console`
pub async fn overview(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let who = match guard::page_for(&web, &headers, STAFF) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    let gw = web.app.gateway.clone();
    let o = match blocking(move || {
        report::overview(&gw, time::OffsetDateTime::now_utc()).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let page = render::overview(&who, &web, &o);
    who.finish(page.into_response())
}

/// A day (`2026-12-01`, from midnight UTC) or an RFC 3339 time.
fn parse_when(key: &str, s: &str) -> Result<time::OffsetDateTime, String> {
    let s = s.trim();
    if s.len() == 10 {
        return timestamp::parse(&format!("{s}T00:00:00Z"))
            .map_err(|_| format!("{key}: {s:?} is not a date such as 2026-12-01"));
    }
    timestamp::parse(s).map_err(|_| {
        format!("{key}: {s:?} is not a date (2026-12-01) or a time (2026-12-01T09:30:00Z)")
    })
}

/// The ledger query `f` asks for; or what is wrong with it.
pub fn query_of(f: &Filters, limit: u32) -> Result<MessageQuery, String> {
    let some = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let channel = some(&f.channel).map(|c| c.parse::<Channel>()).transpose()?;
    let status = some(&f.status)
        .map(|s| {
            s.parse::<Status>()
                .map_err(|_| format!("outcome: {s:?} is not forwarded, rejected or in_progress"))
        })
        .transpose()?;
    let after = some(&f.after)
        .map(|c| report::parse_cursor(&c).ok_or_else(|| "the page cursor is not valid".to_owned()))
        .transpose()?;
    Ok(MessageQuery {
        agency: some(&f.agency),
        channel,
        schema_id: some(&f.schema),
        status,
        from: some(&f.from).map(|s| parse_when("from", &s)).transpose()?,
        to: some(&f.to).map(|s| parse_when("to", &s)).transpose()?,
        after,
        limit,
    })
}

/// Rows per page.
const PAGE: u32 = 50;

/// `GET /console/messages`
pub async fn messages(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let who = match guard::page_for(&web, &headers, STAFF) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    let f = filters.map(|Query(f)| f).unwrap_or_default();
    let (q, error) = match query_of(&f, PAGE) {
        Ok(q) => (q, None),
        Err(e) => (
            MessageQuery {
                limit: PAGE,
                ..MessageQuery::default()
            },
            Some(e),
        ),
    };
    let gw = web.app.gateway.clone();
    let p = match blocking(move || report::messages(&gw, &q).map_err(|e| e.to_string())).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = render::messages(&who, &web, &f, error.as_deref(), &p);
    who.finish((status, page).into_response())
}

/// `GET /console/messages/{id}`
pub async fn message(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match guard::page_for(&web, &headers, STAFF) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    show_message(&web, who, &id, None).await
}

async fn show_message(web: &Web, who: SignedIn, id: &str, notice: Option<&str>) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            super::pages::refused(&format!("there is no message {id}")),
        )
            .into_response()
    };
    let Ok(mid) = MessageId::parse(id) else {
        return who.finish(not_found());
    };
    let gw = web.app.gateway.clone();
    let d = match blocking(move || report::message(&gw, &mid).map_err(|e| e.to_string())).await {
        Ok(Some(d)) => d,
        Ok(None) => return who.finish(not_found()),
        Err(resp) => return resp,
    };
    let page = render::message(&who, web, &d, notice);
    who.finish(page.into_response())
}

/// `GET /console/events`: the newest messages (as the same filters select them) whenever
/// they change, polled from the ledger every second, so every instance's messages appear.
pub async fn events(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if guard::page_for(&web, &headers, STAFF).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let f = filters.map(|Query(f)| f).unwrap_or_default();
    let Ok(q) = query_of(&f, PAGE) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let state = (web, headers, q, String::new());
    let stream = futures_util::stream::unfold(state, |(web, headers, q, last)| async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            // A session that ended (signed out elsewhere, disabled) ends the stream.
            guard::page_for(&web, &headers, STAFF).ok()?;
            let gw = web.app.gateway.clone();
            let q2 = q.clone();
            let rows = blocking(move || report::messages(&gw, &q2).map_err(|e| e.to_string()))
                .await
                .ok()?
                .messages;
            let now = serde_json::to_string(&rows).unwrap_or_default();
            if now != last {
                let event = Event::default().event("messages").data(now.clone());
                return Some((
                    Ok::<_, std::convert::Infallible>(event),
                    (web, headers, q, now),
                ));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /console/quarantine`
pub async fn quarantine(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let who = match guard::page_for(&web, &headers, STAFF) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    show_quarantine(&web, who, None).await
}

async fn show_quarantine(web: &Web, who: SignedIn, notice: Option<&str>) -> Response {
    let gw = web.app.gateway.clone();
    let entries = match blocking(move || match &gw.forwarding {
        Some(fw) => fw.quarantine.list().map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    })
    .await
    {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let page = render::quarantine(&who, web, &entries, notice);
    who.finish(page.into_response())
}

/// A console form: its token and, for a discard, the reason.
#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// A console action's checks: staff signed in, from this origin, with the session's token.
fn act(web: &Web, headers: &HeaderMap, uri: &Uri, token: &str) -> Result<SignedIn, Box<Response>> {
    let who = guard::page_for(web, headers, STAFF)?;
    if let Some(why) = guard::refuse_forgery(headers, uri, Some(token), &who.csrf(web)) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, super::pages::refused(&why)).into_response(),
        ));
    }
    Ok(who)
}

/// `POST /console/quarantine/{agency}/{id}/discard`
pub async fn discard(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    uri: Uri,
    Path((agency, id)): Path<(String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Form(form) = form.unwrap_or(Form(ActionForm {
        csrf: String::new(),
        reason: String::new(),
    }));
    let who = match act(&web, &headers, &uri, &form.csrf) {
        Ok(who) => who,
        Err(resp) => return *resp,
    };
    let reason = form.reason.trim().chars().take(500).collect::<String>();
    if reason.is_empty() {
        return show_quarantine(
            &web,
            who,
            Some("Give a reason to discard an entry: nothing was discarded."),
        )
        .await;
    }
    let Ok(mid) = MessageId::parse(&id) else {
        return show_quarantine(&web, who, Some("There is no such quarantine entry.")).await;
    };
    let gw = web.app.gateway.clone();
    let person = who.user.name.clone();
    let done = blocking(move || {
        let Some(fw) = &gw.forwarding else {
            return Ok(false);
        };
        fw.quarantine
            .take_out(
                &agency,
                &mid,
                &person,
                "quarantine discard",
                json!({ "reason": reason }),
            )
            .map_err(|e| e.to_string())
    })
    .await;
    let notice = match done {
        Ok(true) => format!("Message {id} was discarded from the quarantine."),
        Ok(false) => "There is no such quarantine entry (it may have been handled already).".into(),
        Err(resp) => return resp,
    };
    show_quarantine(&web, who, Some(&notice)).await
}

/// `POST /console/quarantine/{agency}/{id}/rerun`: the kept payload goes through the
/// pipeline again (its rejected record gives up its dedupe key first); accepted, the entry
/// leaves the quarantine; refused again, a new entry says why.
pub async fn rerun(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    uri: Uri,
    Path((agency, id)): Path<(String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let who = match act(&web, &headers, &uri, &token) {
        Ok(who) => who,
        Err(resp) => return *resp,
    };
    let (Ok(mid), Ok(agency)) = (MessageId::parse(&id), AgencyName::parse(&agency)) else {
        return show_quarantine(&web, who, Some("There is no such quarantine entry.")).await;
    };
    let gw = web.app.gateway.clone();
    let person = who.user.name.clone();
    let outcome = blocking(move || rerun_entry(&gw, &agency, &mid, &person)).await;
    match outcome {
        Ok(Some(new_id)) => {
            let to = format!("/console/messages/{new_id}");
            who.finish(Redirect::to(&to).into_response())
        }
        Ok(None) => {
            show_quarantine(
                &web,
                who,
                Some("There is no such quarantine entry (it may have been handled already)."),
            )
            .await
        }
        Err(resp) => resp,
    }
}

/// Re-runs one quarantine entry as `person`; the ledger id of the new attempt.
fn rerun_entry(
    gw: &crate::pipeline::Gateway,
    agency: &AgencyName,
    id: &MessageId,
    person: &str,
) -> Result<Option<String>, String> {
    let Some(fw) = &gw.forwarding else {
        return Ok(None);
    };
    let Some((_, payload)) = fw.quarantine.entry(agency, id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let channel = fw
        .store
        .get(id)
        .ok()
        .flatten()
        .map_or(Channel::Folder, |r| r.channel);
    fw.store.release(id).map_err(|e| e.to_string())?;
    let outcome = gw.process_by(agency, channel, Payload::File(&payload), Some(person), None);
    let (new_id, verdict) = match &outcome {
        Outcome::Forwarded { facts, .. } | Outcome::Accepted { facts } => {
            (facts.gateway_message_id.clone(), "forwarded".to_owned())
        }
        Outcome::Duplicate {
            gateway_message_id, ..
        } => (
            gateway_message_id.clone(),
            "a duplicate of a forwarded message".to_owned(),
        ),
        Outcome::Rejected {
            rejection,
            gateway_message_id,
            ..
        } => (
            gateway_message_id.clone().unwrap_or_else(|| id.to_string()),
            format!("refused again ({})", rejection.code),
        ),
    };
    let details = json!({ "new_message": new_id, "verdict": verdict });
    fw.quarantine
        .take_out(agency, id, person, "quarantine re-run", details)
        .map_err(|e| e.to_string())?;
    Ok(Some(new_id))
}
