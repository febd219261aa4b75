//! The person's own account (`/account`): who they are, and a new password when they ask.
//!
//! The gateway chooses passwords (five random groups, about 124 bits), so changing one means
//! asking for a new one. The person proves it is them with the current password (and code),
//! checked and counted exactly as a sign-in is: failures lock the account, and attempts per
//! address are limited, so a session left open cannot be used to guess the password. The new
//! password is shown once; the account's other sessions end, this one goes on. The
//! administrator who handed over the first password no longer knows the one in use.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::guard::{self, SignedIn};
use super::pages::{self, AccountView};
use super::{Web, sign_in};
use crate::accounts::Role;
use crate::accounts::session::Session;
use crate::accounts::sign_in::Refusal;
use crate::http::PeerAddr;

const EVERYONE: &[Role] = &[Role::Uploader, Role::Operator, Role::Admin];

/// `GET /account`
pub async fn page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    match guard::page_for(&web, &headers, EVERYONE) {
        Ok(who) => show(&web, who, StatusCode::OK, &AccountView::default()),
        Err(elsewhere) => *elsewhere,
    }
}

/// `POST /account/password`
pub async fn new_password(
    State(web): State<Arc<Web>>,
    Extension(PeerAddr(addr)): Extension<PeerAddr>,
    headers: HeaderMap,
    uri: Uri,
    fields: Result<Form<sign_in::SignInFields>, FormRejection>,
) -> Response {
    let who = match guard::page_for(&web, &headers, EVERYONE) {
        Ok(who) => who,
        Err(elsewhere) => return *elsewhere,
    };
    let Ok(Form(f)) = fields else {
        let why = "the form could not be read: reload the page and try again";
        return refused(&web, who, StatusCode::BAD_REQUEST, why);
    };
    if let Some(why) = guard::refuse_forgery(&headers, &uri, Some(&f.csrf), &who.csrf(&web)) {
        return (StatusCode::FORBIDDEN, pages::refused(&why)).into_response();
    }
    if !web.limiter.allow(addr.ip(), guard::now()) {
        let why = "too many attempts from your address: wait a minute and try again";
        return refused(&web, who, StatusCode::TOO_MANY_REQUESTS, why);
    }
    let name = who.user.name.clone();
    let address = addr.ip().to_string();
    if let Err(refusal) = sign_in::check_password(&web, &name, &f.password, &f.code).await {
        super::audit(
            &web,
            &name,
            "new password refused",
            json!({"why": refusal.to_string(), "address": address}),
        );
        let (status, why) = match refusal {
            // The name is the session's: only the password or the code can be wrong.
            Refusal::Wrong => (
                StatusCode::UNAUTHORIZED,
                "The password or security code is wrong".to_owned(),
            ),
            other => sign_in::refusal_answer(&other, GETTING),
        };
        return refused(&web, who, status, &why);
    }
    let keys = web.app.gateway.config.keys.clone();
    let renewed =
        tokio::task::spawn_blocking(move || crate::accounts::renew_password(&keys, &name))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
    let (user, password) = match renewed {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "a new password could not be given");
            return refused(&web, who, StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
    };
    super::audit(
        &web,
        &user.name,
        "new password",
        json!({"address": address}),
    );
    // The old session is of the account's previous generation now: this one goes on in a new
    // session, which keeps its sign-in time (the longest session still counts from it).
    let session = Session {
        name: user.name.clone(),
        generation: user.generation,
        issued: who.session.issued,
        seen: guard::now(),
    };
    let who = SignedIn::reopened(&web, user, session);
    let view = AccountView {
        new_password: Some(&password),
        ..AccountView::default()
    };
    show(&web, who, StatusCode::OK, &view)
}

/// The action, as [`sign_in::refusal_answer`] names it when it is unavailable.
const GETTING: &str = "getting a new password";
const UNAVAILABLE: &str =
    "getting a new password is unavailable right now: try again in a few minutes";

fn refused(web: &Web, who: SignedIn, status: StatusCode, why: &str) -> Response {
    let view = AccountView {
        error: Some(why),
        ..AccountView::default()
    };
    show(web, who, status, &view)
}

fn show(web: &Web, who: SignedIn, status: StatusCode, view: &AccountView<'_>) -> Response {
    let page = pages::account(&who, web, view);
    who.finish((status, page).into_response())
}
