//! `/console/requests`: the hub's requests to agencies (see [`crate::requests`]): the newest
//! ones and where they stand, and a form to ask an agency's agent for a named query. The same
//! checks and audit record as `POST /v1/admin/requests` and `gateway request ask`
//! ([`Admin::request_ask`]), under the person's name with `via: console`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::render::{page, scrolling};
use super::{STAFF, act, blocking};
use crate::admin::{Admin, AdminError};
use crate::keyring::agencies;
use crate::requests::{Ask, DEFAULT_WAIT, parse_params};
use crate::store::{RequestEvent, RequestRecord};
use crate::web::Web;
use crate::web::guard::{self, SignedIn};
use crate::web::pages::error_summary;

/// Requests listed, newest first.
const LISTED: u32 = 200;

/// The form of `POST /console/requests`, as typed (shown again when it is refused).
#[derive(Debug, Default, Deserialize)]
pub struct AskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    query: String,
    /// One `name=value` per line.
    #[serde(default)]
    params: String,
    /// Empty: [`DEFAULT_WAIT`].
    #[serde(default)]
    wait_minutes: String,
}

/// What the page shows besides the list.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    error: Option<String>,
    form: AskForm,
    agency: Option<String>,
}

/// `GET /console/requests[?agency=NAME]`
pub async fn page_get(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = match guard::page_for(&web, &headers, STAFF) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    let shown = Shown {
        agency: q.get("agency").cloned().filter(|a| !a.is_empty()),
        ..Shown::default()
    };
    show(&web, who, shown, StatusCode::OK).await
}

/// `POST /console/requests`: asks an agency; the page again, with what became of it.
pub async fn ask(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<AskForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let who = match act(&web, &headers, &uri, &form.csrf) {
        Ok(who) => who,
        Err(resp) => return *resp,
    };
    let (params, wait) = match parse(&form) {
        Ok(v) => v,
        Err(error) => {
            let shown = Shown {
                error: Some(error),
                form,
                ..Shown::default()
            };
            return show(&web, who, shown, StatusCode::BAD_REQUEST).await;
        }
    };
    let gw = web.app.gateway.clone();
    let person = who.user.name.clone();
    let (agency, query) = (form.agency.trim().to_owned(), form.query.trim().to_owned());
    let made = blocking(move || {
        let Some(fw) = &gw.forwarding else {
            return Ok(Err("the gateway is not forwarding".to_owned()));
        };
        let ask = Ask {
            agency: &agency,
            query: &query,
            params,
            wait,
            by: &person,
        };
        match Admin::new(&gw.config, &person, "console").request_ask(fw.store.as_ref(), &ask) {
            Ok(r) => Ok(Ok(r)),
            Err(AdminError::Refused(why)) => Ok(Err(why)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let (shown, status) = match made {
        Ok(Ok(r)) => (
            Shown {
                notice: Some(format!(
                    "Request {} was asked of {}: its agent collects it when it next asks for work.",
                    r.id, r.agency
                )),
                ..Shown::default()
            },
            StatusCode::OK,
        ),
        Ok(Err(why)) => (
            Shown {
                error: Some(format!("Nothing was asked: {why}")),
                form,
                ..Shown::default()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(resp) => return resp,
    };
    show(&web, who, shown, status).await
}

/// The parameters (`name=value` lines, as the command line's arguments) and the wait of
/// `form`; or what is wrong with them. [`crate::requests::ask`] checks the rest (names,
/// values, the wait's bounds), as for the command line and the API.
fn parse(form: &AskForm) -> Result<(BTreeMap<String, String>, Duration), String> {
    let lines = form.params.lines().map(str::trim).filter(|l| !l.is_empty());
    let params = parse_params(lines).map_err(|e| format!("Parameters: {e}"))?;
    let minutes = form.wait_minutes.trim();
    if minutes.is_empty() {
        return Ok((params, DEFAULT_WAIT));
    }
    match minutes.parse::<u64>() {
        Ok(m) => Ok((params, Duration::from_secs(m.saturating_mul(60)))),
        Err(_) => Err(format!(
            "Wait: {minutes:?} is not a whole number of minutes"
        )),
    }
}

async fn show(web: &Web, who: SignedIn, shown: Shown, status: StatusCode) -> Response {
    let gw = web.app.gateway.clone();
    let agency = shown.agency.clone();
    let read = blocking(move || {
        let names = agencies::list(&gw.config.keys)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|a| (a.name, a.display_name))
            .collect::<Vec<_>>();
        let Some(fw) = &gw.forwarding else {
            return Ok((names, Vec::new()));
        };
        let listed = fw
            .store
            .request(&RequestEvent::List {
                agency,
                limit: LISTED,
                now: crate::requests::now(),
            })
            .map_err(|e| e.to_string())?;
        Ok((names, listed))
    })
    .await;
    let (names, listed) = match read {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let csrf = who.csrf(web);
    let body = render(&csrf, &names, &listed, &shown);
    let html = page(&who, web, "Requests", None, body);
    who.finish((status, html).into_response())
}

fn when(t: i64) -> String {
    crate::requests::time_text(t).unwrap_or_default()
}

fn render(
    csrf: &str,
    agencies: &[(String, String)],
    listed: &[RequestRecord],
    shown: &Shown,
) -> Markup {
    let f = &shown.form;
    let default_wait = DEFAULT_WAIT.as_secs() / 60;
    html! {
        @if let Some(e) = &shown.error { (error_summary(e)) }
        @if let Some(n) = &shown.notice { div.notice role="status" { p { (n) } } }
        h1 { "Requests" }
        p { "Ask an agency for data: its agent runs the command its own configuration names for the query, with these parameters, and answers with an ordinary sealed message, checked like any other." }
        h2 { "Ask an agency" }
        form method="post" action="/console/requests" {
            input type="hidden" name="csrf" value=(csrf);
            div.field {
                label for="agency" { "Agency" }
                select #agency name="agency" {
                    @for (name, display) in agencies {
                        option value=(name) selected[*name == f.agency] { (display) " (" (name) ")" }
                    }
                }
            }
            div.field {
                label for="query" { "Query" }
                p.hint #query-hint { "The name the agency's agent gives it, such as case-updates." }
                input #query type="text" name="query" value=(f.query) required aria-describedby="query-hint";
            }
            div.field {
                label for="params" { "Parameters" }
                p.hint #params-hint { "One name=value per line, such as since=2026-12-01." }
                textarea #params name="params" rows="4" aria-describedby="params-hint" { (f.params) }
            }
            div.field {
                label for="wait" { "Wait for the answer (minutes)" }
                p.hint #wait-hint { (default_wait) " unless you say otherwise; at most 7 days." }
                input #wait .short type="text" name="wait_minutes" inputmode="numeric" value=(f.wait_minutes) aria-describedby="wait-hint";
            }
            button.button type="submit" { "Ask" }
        }
        h2 { "Asked" }
        @if listed.is_empty() { p { "No requests yet." } }
        @else { (table(listed)) }
    }
}

fn table(listed: &[RequestRecord]) -> Markup {
    html! {
        (scrolling("Requests", html! { table.data {
            caption.visually-hidden { "Requests, newest first" }
            thead { tr {
                th scope="col" { "Request" } th scope="col" { "Agency" } th scope="col" { "Query" }
                th scope="col" { "Parameters" } th scope="col" { "State" } th scope="col" { "Asked" }
                th scope="col" { "Answer" }
            } }
            tbody {
                @for r in listed {
                    tr {
                        td.break { code { (r.id) } }
                        td { (r.agency) }
                        td { (r.query) }
                        td.break { @for (k, v) in &r.params { code { (k) "=" (v) } " " } }
                        td { (r.state.as_str()) }
                        td { (r.asked_by) ", " (when(r.asked_at)) }
                        td.break {
                            @if let Some(m) = &r.message_id {
                                a href=(format!("/console/messages/{m}")) { (m) }
                            } @else if let Some(d) = &r.detail {
                                (d)
                            } @else {
                                "due by " (when(r.deadline))
                            }
                        }
                    }
                }
            }
        } }))
    }
}
