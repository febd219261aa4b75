//! Signing in and out: `GET/POST /sign-in`, `POST /sign-in/certificate`, `POST /sign-out`.
//!
//! The sign-in form has no session yet, so its CSRF token is a random value set both in a
//! short-lived cookie and in the form (double submit), on top of the same-origin checks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::Web;
use super::guard::{self, SESSION_COOKIE};
use super::pages;
use crate::accounts::session::Session;
use crate::accounts::sign_in::{Attempt, Refusal};
use crate::accounts::{Role, User};
use crate::http::{PeerAddr, PeerCertificate};

/// The sign-in form's double-submit cookie.
const SIGN_IN_COOKIE: &str = "__Host-gw_signin";

/// Sign-in attempts per client address, per minute, on this instance.
pub struct Limiter {
    per_minute: u32,
    seen: std::sync::Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl Limiter {
    /// A limiter allowing `per_minute` attempts per address per minute.
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `ip`; false when it is one too many.
    pub(super) fn allow(&self, ip: IpAddr, now: i64) -> bool {
        let minute = now / 60;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 4096 {
            // Bounded memory: forget the addresses of past minutes.
            seen.retain(|_, (m, _)| *m == minute);
        }
        let entry = seen.entry(ip).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_minute
    }
}

/// Where a person goes after signing in.
fn home_of(user: &User) -> &'static str {
    match user.role {
        Role::Uploader => "/",
        Role::Operator | Role::Admin => "/console",
    }
}

/// A fresh form token and the cookie that carries it.
fn form_token() -> (String, Option<HeaderValue>) {
    let mut bytes = [0u8; 16];
    // Without randomness the token is empty, and the form is refused: never a guessable one.
    let token = match openssl::rand::rand_bytes(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => String::new(),
    };
    let cookie = HeaderValue::from_str(&format!(
        "{SIGN_IN_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600"
    ))
    .ok();
    (token, cookie)
}

/// Why a sign-in form is refused, if it is: from elsewhere, or without the token its cookie
/// carries.
fn forged_form(headers: &HeaderMap, uri: &Uri, token: &str) -> Option<String> {
    match guard::cookie(headers, SIGN_IN_COOKIE) {
        None | Some("") => Some(
            "the sign-in form expired or cookies are off: reload the page and try again".into(),
        ),
        Some(expected) => guard::refuse_forgery(headers, uri, Some(token), expected),
    }
}

/// The sign-in page, with `error` shown above the form.
fn form(status: StatusCode, error: Option<&str>, name: &str, peer: &PeerCertificate) -> Response {
    let (token, cookie) = form_token();
    let page = pages::sign_in(&pages::SignInForm {
        error,
        name,
        csrf: &token,
        certificate: peer.cert.is_some(),
    });
    let mut resp = (status, page).into_response();
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `GET /sign-in`
pub async fn page(
    State(web): State<Arc<Web>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
) -> Response {
    if let Some(who) = guard::signed_in(&web, &headers) {
        let to = home_of(&who.user);
        return who.finish(Redirect::to(to).into_response());
    }
    form(StatusCode::OK, None, "", &peer)
}

/// The sign-in form as posted (and the account page's, which has no name).
#[derive(Deserialize)]
pub struct SignInFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) code: String,
    #[serde(default)]
    pub(super) csrf: String,
}

/// `POST /sign-in`
pub async fn submit(
    State(web): State<Arc<Web>>,
    Extension(peer): Extension<PeerCertificate>,
    Extension(PeerAddr(addr)): Extension<PeerAddr>,
    headers: HeaderMap,
    uri: Uri,
    fields: Result<Form<SignInFields>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = fields else {
        let why = "the form could not be read: reload the page and try again";
        return form(StatusCode::BAD_REQUEST, Some(why), "", &peer);
    };
    if !web.limiter.allow(addr.ip(), guard::now()) {
        let why = "too many sign-in attempts from your address: wait a minute and try again";
        return form(StatusCode::TOO_MANY_REQUESTS, Some(why), &f.name, &peer);
    }
    if let Some(why) = forged_form(&headers, &uri, &f.csrf) {
        return form(StatusCode::FORBIDDEN, Some(&why), &f.name, &peer);
    }
    let result = check_password(&web, &f.name, &f.password, &f.code).await;
    finish_sign_in(&web, result, "password", &f.name, &peer, addr)
}

/// Runs the password check (counted, as every sign-in is) off the async threads, at most two
/// at once.
pub(super) async fn check_password(
    web: &Arc<Web>,
    name: &str,
    password: &str,
    code: &str,
) -> Result<User, Refusal> {
    let Ok(_permit) = web.checks.acquire().await else {
        return Err(Refusal::Wrong);
    };
    let gw = web.app.gateway.clone();
    let (name, password, code) = (name.to_owned(), password.to_owned(), code.to_owned());
    let checked = tokio::task::spawn_blocking(move || {
        let Some(fw) = &gw.forwarding else {
            return Err(Refusal::Disabled);
        };
        let attempt = Attempt {
            name: &name,
            password: &password,
            code: (!code.trim().is_empty()).then_some(code.as_str()),
        };
        crate::accounts::sign_in::with_password(
            &gw.config.keys,
            fw.store.as_ref(),
            &gw.config.web,
            &attempt,
            guard::now(),
        )
    })
    .await;
    checked.unwrap_or(Err(Refusal::Wrong))
}

/// Opens the session, or shows the form again with the refusal; audits either way.
fn finish_sign_in(
    web: &Web,
    result: Result<User, Refusal>,
    method: &str,
    name: &str,
    peer: &PeerCertificate,
    addr: std::net::SocketAddr,
) -> Response {
    let user = match result {
        Ok(user) => user,
        Err(refusal) => {
            let shown_name = name.chars().take(64).collect::<String>();
            super::audit(
                web,
                &shown_name,
                "sign in refused",
                json!({"method": method, "why": refusal.to_string(), "address": addr.ip().to_string()}),
            );
            let (status, why) = refusal_answer(&refusal, "sign-in");
            return form(status, Some(&why), name, peer);
        }
    };
    let now = guard::now();
    let session = Session {
        name: user.name.clone(),
        generation: user.generation,
        issued: now,
        seen: now,
    };
    super::audit(
        web,
        &user.name,
        "sign in",
        json!({"method": method, "role": user.role.as_str(), "address": addr.ip().to_string()}),
    );
    let mut resp = Redirect::to(home_of(&user)).into_response();
    let h = resp.headers_mut();
    if let Some(c) = guard::session_cookie(web, &session) {
        h.append(header::SET_COOKIE, c);
    }
    if let Some(c) = guard::clear_cookie(SIGN_IN_COOKIE) {
        h.append(header::SET_COOKIE, c);
    }
    resp
}

/// The status and sentence for a refused password check; `what` names the action for when the
/// ledger or an account file cannot be read (logged here).
pub(super) fn refusal_answer(refusal: &Refusal, what: &str) -> (StatusCode, String) {
    match refusal {
        Refusal::Locked { until } => (StatusCode::FORBIDDEN, locked(*until)),
        Refusal::Ledger(_) | Refusal::Account(_) => {
            tracing::error!(error = %refusal, "{what} failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{what} is unavailable right now: try again in a few minutes"),
            )
        }
        other => (StatusCode::UNAUTHORIZED, capitalised(&other.to_string())),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn locked(until: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(until)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[hour]:[minute] UTC on [day] [month repr:long]"
            ))
            .ok()
        })
        .unwrap_or_default();
    format!(
        "Too many failed sign-ins: this account is locked until {at}. Ask the hub's administrator to reset it if you cannot wait."
    )
}

/// The form of the certificate sign-in (a button, and the form token).
#[derive(Deserialize)]
pub struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /sign-in/certificate`: the connection's client certificate, registered on an account.
pub async fn certificate(
    State(web): State<Arc<Web>>,
    Extension(peer): Extension<PeerCertificate>,
    Extension(PeerAddr(addr)): Extension<PeerAddr>,
    headers: HeaderMap,
    uri: Uri,
    fields: Result<Form<TokenOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = fields.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(why) = forged_form(&headers, &uri, &token) {
        return form(StatusCode::FORBIDDEN, Some(&why), "", &peer);
    }
    if !web.limiter.allow(addr.ip(), guard::now()) {
        let why = "too many sign-in attempts from your address: wait a minute and try again";
        return form(StatusCode::TOO_MANY_REQUESTS, Some(why), "", &peer);
    }
    let result = match &peer.cert {
        None => Err(Refusal::Wrong),
        Some(cert) if !currently_valid(cert) => Err(Refusal::Wrong),
        Some(cert) => match crate::keyring::x509gen::fingerprint(cert) {
            Ok(fp) => crate::accounts::sign_in::with_certificate(&web.app.gateway.config.keys, &fp),
            Err(_) => Err(Refusal::Wrong),
        },
    };
    finish_sign_in(&web, result, "certificate", "", &peer, addr)
}

/// Whether a certificate is within its validity window now.
fn currently_valid(cert: &openssl::x509::X509) -> bool {
    let Ok(now) = openssl::asn1::Asn1Time::days_from_now(0) else {
        return false;
    };
    cert.not_before() <= now.as_ref() && cert.not_after() >= now.as_ref()
}

/// `POST /sign-out`
pub async fn sign_out(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    uri: Uri,
    fields: Result<Form<TokenOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = fields.map(|Form(f)| f.csrf).unwrap_or_default();
    let mut resp = Redirect::to("/sign-in").into_response();
    if let Some(who) = guard::signed_in(&web, &headers) {
        if let Some(why) = guard::refuse_forgery(&headers, &uri, Some(&token), &who.csrf(&web)) {
            return (StatusCode::FORBIDDEN, pages::refused(&why)).into_response();
        }
        super::audit(&web, &who.user.name, "sign out", json!({}));
    }
    if let Some(c) = guard::clear_cookie(SESSION_COOKIE) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}
