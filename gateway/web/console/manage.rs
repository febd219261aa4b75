//! `/console/admin`: what admins change (agencies, certificates, tokens, people's accounts,
//! the gateway's keys), through [`crate::admin::Admin`], the implementation the command line
//! uses too, audited under the admin's name with `via: console`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::render::{page, scrolling};
use crate::accounts::{Credentials, NewUser, Role};
use crate::admin::{Admin, AdminError};
use crate::keyring::{agencies, identities, inventory, tokens};
use crate::web::Web;
use crate::web::guard::{self, SignedIn};
use crate::web::pages::error_summary;

const ADMINS: &[Role] = &[Role::Admin];

/// What an action gave that is shown once (a token, a password).
#[derive(Default)]
pub struct Shown {
    notice: Option<String>,
    error: Option<String>,
    secret: Vec<(String, String)>,
}

/// `GET /console/admin`
pub async fn page_get(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let who = match guard::page_for(&web, &headers, ADMINS) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    show(&web, who, Shown::default(), StatusCode::OK).await
}

async fn show(web: &Web, who: SignedIn, shown: Shown, status: StatusCode) -> Response {
    let keys = web.app.gateway.config.keys.clone();
    let state = tokio::task::spawn_blocking(move || State_::read(&keys)).await;
    let state = match state {
        Ok(s) => s,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let body = render(&who, web, &state, &shown);
    let html = page(&who, web, "Admin", None, body);
    who.finish((status, html).into_response())
}

/// `keys/` as the page shows it.
struct State_ {
    agencies: Vec<agencies::AgencyInfo>,
    certs: Vec<inventory::KeyEntry>,
    tokens: Vec<(String, tokens::TokenRecord)>,
    users: Vec<crate::accounts::User>,
    identities: Vec<identities::IdentityInfo>,
}

impl State_ {
    fn read(keys: &std::path::Path) -> State_ {
        let agencies = agencies::list(keys).unwrap_or_default();
        let tokens = agencies
            .iter()
            .flat_map(|a| {
                tokens::records(keys, &a.name)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (a.name.clone(), t))
            })
            .collect();
        State_ {
            certs: inventory::inventory(keys, OffsetDateTime::now_utc())
                .into_iter()
                .filter(|e| e.kind == "agency-signing")
                .collect(),
            users: crate::accounts::list(keys).unwrap_or_default(),
            identities: identities::Identities::records(keys)
                .map(|i| i.info)
                .unwrap_or_default(),
            tokens,
            agencies,
        }
    }
}

fn hidden(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

fn agency_select(id: &str, agencies: &[agencies::AgencyInfo], required: bool) -> Markup {
    html! {
        select id=(id) name="agency" required[required] {
            @if !required { option value="" { "None (hub staff)" } }
            @for a in agencies { option value=(a.name) { (a.display_name) " (" (a.name) ")" } }
        }
    }
}

/// A one-button form posting `action` with `fields`.
fn button(csrf: &str, action: &str, fields: &[(&str, &str)], label: &str, what: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/console/admin/{action}")) {
            (hidden(csrf))
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button.link-action type="submit" { (label) span.visually-hidden { " " (what) } }
        }
    }
}

fn render(who: &SignedIn, web: &Web, s: &State_, shown: &Shown) -> Markup {
    let csrf = who.csrf(web);
    html! {
        @if let Some(e) = &shown.error { (error_summary(e)) }
        @if let Some(n) = &shown.notice { div.notice role="status" { p { (n) } } }
        @if !shown.secret.is_empty() {
            div.notice.secret role="status" {
                p { strong { "Shown once: give these to their owner by a safe channel." } }
                dl.facts { @for (k, v) in &shown.secret { dt { (k) } dd.break { code { (v) } } } }
            }
        }
        h1 { "Admin" }
        (agencies_section(&csrf, s))
        (certificates_section(&csrf, s))
        (tokens_section(&csrf, s))
        (users_section(&csrf, s))
        (keys_section(&csrf, s))
    }
}

fn agencies_section(csrf: &str, s: &State_) -> Markup {
    html! {
        h2 #agencies { "Agencies" }
        (scrolling("Agencies", html! { table.data { thead { tr { th scope="col" { "Name" } th scope="col" { "Shown as" } } }
            tbody { @for a in &s.agencies { tr { td { (a.name) } td { (a.display_name) } } } } } }))
        form method="post" action="/console/admin/agency-add" {
            (hidden(csrf))
            div.field { label for="agency-name" { "New agency's short name" }
                p.hint #agency-name-hint { "a-z, 0-9 and '-', e.g. probation" }
                input #agency-name type="text" name="name" required aria-describedby="agency-name-hint"; }
            div.field { label for="agency-display" { "Name shown to people" }
                input #agency-display type="text" name="display_name"; }
            button.button.secondary type="submit" { "Register the agency" }
        }
    }
}

fn certificates_section(csrf: &str, s: &State_) -> Markup {
    html! {
        h2 #certificates { "Signing certificates" }
        (scrolling("Signing certificates", html! { table.data {
            thead { tr { th scope="col" { "Agency" } th scope="col" { "Subject" } th scope="col" { "State" }
                th scope="col" .num { "Days left" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for c in &s.certs { tr {
                td { (c.owner) } td.break { (c.subject) } td { (c.state) }
                td.num { (c.days_left.map_or_else(|| "–".into(), |d| d.to_string())) }
                td { @if c.state != "revoked" { (button(csrf, "cert-revoke", &[("agency", &c.owner), ("fingerprint", &c.id)], "Revoke", &c.subject)) } }
            } } }
        } }))
        form method="post" action="/console/admin/cert-add" {
            (hidden(csrf))
            div.field { label for="cert-agency" { "Agency" } (agency_select("cert-agency", &s.agencies, true)) }
            div.field { label for="cert-pem" { "Certificate (PEM)" }
                textarea #cert-pem name="pem" rows="6" required placeholder="-----BEGIN CERTIFICATE-----" {} }
            div.field { label for="cert-from" { "Accept it from (optional)" }
                p.hint #cert-from-hint { "An RFC 3339 time, e.g. 2027-01-31T00:00:00Z, to register the next certificate ahead of its switch-over" }
                input #cert-from type="text" name="not_before" aria-describedby="cert-from-hint"; }
            div.field.checkbox { input #cert-force type="checkbox" name="force" value="on";
                label for="cert-force" { "Pin it even if it is expired or not valid yet" } }
            button.button.secondary type="submit" { "Pin the certificate" }
        }
    }
}

fn tokens_section(csrf: &str, s: &State_) -> Markup {
    html! {
        h2 #tokens { "Bearer tokens" }
        (scrolling("Bearer tokens", html! { table.data {
            thead { tr { th scope="col" { "Agency" } th scope="col" { "Id" } th scope="col" { "Issued" }
                th scope="col" { "State" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for (agency, t) in &s.tokens { tr {
                td { (agency) } td { code { (t.id) } } td { (t.created) }
                td { (if t.revoked { "revoked" } else { "valid" }) }
                td { @if !t.revoked { (button(csrf, "token-revoke", &[("agency", agency), ("id", &t.id)], "Revoke", &t.id)) } }
            } } }
        } }))
        form method="post" action="/console/admin/token-issue" {
            (hidden(csrf))
            div.field { label for="token-agency" { "Agency" } (agency_select("token-agency", &s.agencies, true)) }
            button.button.secondary type="submit" { "Issue a token" }
        }
    }
}

fn users_section(csrf: &str, s: &State_) -> Markup {
    html! {
        h2 #users { "People" }
        (scrolling("People", html! { table.data {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Agency" }
                th scope="col" { "Second factor" } th scope="col" { "State" } th scope="col" { span.visually-hidden { "Actions" } } } }
            tbody { @for u in &s.users { tr {
                td { (u.name) } td { (u.role.as_str()) } td { (u.agency.as_deref().unwrap_or("–")) }
                td { (if u.totp.is_some() { "TOTP" } else { "none" }) }
                td { (if u.disabled { "disabled" } else { "active" }) }
                td {
                    @if !u.disabled { (button(csrf, "user-disable", &[("name", &u.name)], "Disable", &u.name)) " " }
                    (button(csrf, "user-reset", &[("name", &u.name)], "Reset", &u.name))
                }
            } } }
        } }))
        form method="post" action="/console/admin/user-add" {
            (hidden(csrf))
            div.field { label for="user-name" { "Account name" } input #user-name type="text" name="name" required; }
            div.field { label for="user-role" { "Role" }
                select #user-role name="role" { option value="uploader" { "uploader" } option value="operator" { "operator" } option value="admin" { "admin" } } }
            div.field { label for="user-agency" { "Agency (uploaders)" } (agency_select("user-agency", &s.agencies, false)) }
            div.field.checkbox { input #user-totp type="checkbox" name="totp" value="on";
                label for="user-totp" { "Give an uploader a second factor too" } }
            button.button.secondary type="submit" { "Make the account" }
        }
    }
}

fn keys_section(csrf: &str, s: &State_) -> Markup {
    let now = OffsetDateTime::now_utc();
    html! {
        h2 #keys { "The gateway's age keys" }
        (scrolling("The gateway's age keys", html! { table.data {
            thead { tr { th scope="col" { "Id" } th scope="col" { "Recipient" } th scope="col" { "State" }
                th scope="col" { "Grace until" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for i in &s.identities { tr {
                td { code { (i.id) } } td.break { (i.recipient) } td { (i.status_at(now).as_str()) }
                td { (i.grace_until.as_deref().unwrap_or("–")) }
                td { @if i.status_at(now) == identities::Status::Grace { (button(csrf, "keys-retire", &[("id", &i.id)], "Retire", &i.id)) } }
            } } }
        } }))
        form method="post" action="/console/admin/keys-rotate" {
            (hidden(csrf))
            div.field { label for="grace-days" { "Days the current key keeps opening payloads" }
                input #grace-days .short type="text" inputmode="numeric" name="grace_days" placeholder="30"; }
            button.button.warning type="submit" { "Rotate: make a new key current" }
        }
    }
}

/// `POST /console/admin/{action}`
pub async fn act(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    uri: Uri,
    Path(action): Path<String>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Form(form) = form.unwrap_or_else(|_| Form(HashMap::new()));
    let token = form.get("csrf").map(String::as_str).unwrap_or_default();
    let who = match guard::page_for(&web, &headers, ADMINS) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    if let Some(why) = guard::refuse_forgery(&headers, &uri, Some(token), &who.csrf(&web)) {
        return (StatusCode::FORBIDDEN, crate::web::pages::refused(&why)).into_response();
    }
    let gw = web.app.gateway.clone();
    let person = who.user.name.clone();
    let done = tokio::task::spawn_blocking(move || {
        let admin = Admin::new(&gw.config, &person, "console");
        run(&admin, &action, &form)
    })
    .await;
    let (shown, status) = match done {
        Ok(Ok(shown)) => (shown, StatusCode::OK),
        Ok(Err(e)) => (
            Shown {
                error: Some(e.to_string()),
                ..Shown::default()
            },
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => (
            Shown {
                error: Some(e.to_string()),
                ..Shown::default()
            },
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    };
    show(&web, who, shown, status).await
}

fn credentials(c: &Credentials) -> Vec<(String, String)> {
    let mut out = vec![
        ("Account".into(), c.name.clone()),
        ("Password".into(), c.password.clone()),
    ];
    if let (Some(secret), Some(url)) = (&c.totp_secret, &c.totp_url) {
        out.push(("TOTP secret".into(), secret.clone()));
        out.push(("TOTP address".into(), url.clone()));
    }
    out
}

/// One admin action from the form's fields.
fn run(admin: &Admin<'_>, action: &str, f: &HashMap<String, String>) -> Result<Shown, AdminError> {
    match action.split('-').next() {
        Some("agency" | "cert" | "token") => registry(admin, action, f),
        _ => people_and_keys(admin, action, f),
    }
}

fn need<'f>(f: &'f HashMap<String, String>, k: &str) -> Result<&'f str, AdminError> {
    field(f, k).ok_or_else(|| AdminError::Refused(format!("the form has no {k}")))
}

fn field<'f>(f: &'f HashMap<String, String>, k: &str) -> Option<&'f str> {
    f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn notice(n: String) -> Shown {
    Shown {
        notice: Some(n),
        ..Shown::default()
    }
}

/// Agencies, their certificates and tokens.
fn registry(
    admin: &Admin<'_>,
    action: &str,
    f: &HashMap<String, String>,
) -> Result<Shown, AdminError> {
    Ok(match action {
        "agency-add" => {
            let name = need(f, "name")?;
            let made = admin.agency_add(name, field(f, "display_name"))?;
            notice(if made {
                format!("Registered agency {name}.")
            } else {
                format!("{name} was registered already.")
            })
        }
        "cert-add" => {
            let agency = need(f, "agency")?;
            let from = field(f, "not_before")
                .map(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            AdminError::Refused(format!(
                                "{t:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z"
                            ))
                        })
                })
                .transpose()?;
            let added = admin.cert_add(
                agency,
                need(f, "pem")?.as_bytes(),
                from,
                field(f, "force").is_some(),
                "console",
            )?;
            notice(format!("Pinned {} for {agency}.", added.fingerprint))
        }
        "cert-revoke" => {
            let (agency, fp) = (need(f, "agency")?, need(f, "fingerprint")?);
            admin.cert_revoke(agency, fp)?;
            notice(format!(
                "Revoked {fp} for {agency}: anything it signs is refused from now on."
            ))
        }
        "token-issue" => {
            let agency = need(f, "agency")?;
            let (id, token) = admin.token_issue(agency)?;
            Shown {
                notice: Some(format!("Issued token {id} for {agency}.")),
                secret: vec![("Token".into(), token)],
                ..Shown::default()
            }
        }
        "token-revoke" => {
            let (agency, id) = (need(f, "agency")?, need(f, "id")?);
            admin.token_revoke(agency, id)?;
            notice(format!("Revoked token {id} of {agency}."))
        }
        other => {
            return Err(AdminError::Refused(format!(
                "there is no admin action {other:?}"
            )));
        }
    })
}

/// People's accounts and the gateway's keys.
fn people_and_keys(
    admin: &Admin<'_>,
    action: &str,
    f: &HashMap<String, String>,
) -> Result<Shown, AdminError> {
    Ok(match action {
        "user-add" => {
            let role = match need(f, "role")? {
                "uploader" => Role::Uploader,
                "operator" => Role::Operator,
                "admin" => Role::Admin,
                other => return Err(AdminError::Refused(format!("{other:?} is not a role"))),
            };
            let made = admin.user_add(&NewUser {
                name: need(f, "name")?,
                agency: field(f, "agency"),
                role,
                totp: field(f, "totp").is_some(),
                client_certificate: None,
            })?;
            Shown {
                notice: Some(format!("Made account {}.", made.name)),
                secret: credentials(&made),
                ..Shown::default()
            }
        }
        "user-disable" => {
            let name = need(f, "name")?;
            admin.user_disable(name)?;
            notice(format!(
                "Disabled {name}; their sessions end at their next request."
            ))
        }
        "user-reset" => {
            let made = admin.user_reset(need(f, "name")?)?;
            Shown {
                notice: Some(format!("Reset {}.", made.name)),
                secret: credentials(&made),
                ..Shown::default()
            }
        }
        "keys-rotate" => {
            let grace = field(f, "grace_days")
                .map(|d| {
                    d.parse::<u16>()
                        .map_err(|_| AdminError::Refused(format!("{d:?} is not a number of days")))
                })
                .transpose()?
                .map(|d| time::Duration::days(i64::from(d)));
            let r = admin.keys_rotate(grace)?;
            notice(format!(
                "{} is current: agencies should seal to {} from now on.",
                r.current.id, r.current.recipient
            ))
        }
        "keys-retire" => {
            let done = admin.keys_retire(need(f, "id")?)?;
            notice(format!(
                "Retired {}: payloads sealed to it are refused from now on.",
                done.id
            ))
        }
        other => {
            return Err(AdminError::Refused(format!(
                "there is no admin action {other:?}"
            )));
        }
    })
}
