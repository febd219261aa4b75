//! Who is signed in, and whether a request may act: session cookies, CSRF tokens, same-origin
//! checks, and the security headers of every page.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Web;
use crate::accounts::session::Session;
use crate::accounts::{Role, User};

/// The session cookie. `__Host-` makes browsers refuse it unless it is `Secure`, has
/// `Path=/` and no `Domain`: no other host of the domain can set or shadow it.
pub const SESSION_COOKIE: &str = "__Host-gw_session";

/// The header the upload script sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Scripts, styles, images and requests from this origin only; no inline script or style,
/// no frames, no plugins; forms post here only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every response of the pages.
pub async fn headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let cached = h.contains_key(header::CACHE_CONTROL);
    let mut set = |name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set("content-security-policy", CSP);
    set("x-content-type-options", "nosniff");
    set("x-frame-options", "DENY");
    // `no-referrer` would make browsers send `Origin: null` with our own forms.
    set("referrer-policy", "same-origin");
    set("cross-origin-opener-policy", "same-origin");
    set("cross-origin-resource-policy", "same-origin");
    set(
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    );
    set(
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if !cached {
        set("cache-control", "no-store");
    }
    resp
}

/// A signed-in person, and the renewed cookie to send back (the idle clock restarts).
pub struct SignedIn {
    /// The account, as its file says now.
    pub user: User,
    /// The session.
    pub session: Session,
    /// `Set-Cookie` for the renewed session, when it was renewed.
    renewed: Option<HeaderValue>,
}

impl SignedIn {
    /// The CSRF token forms and the upload script must send back.
    pub fn csrf(&self, web: &Web) -> String {
        web.key.csrf(&self.session)
    }

    /// Why a script's state-changing request (the CSRF token in `X-CSRF-Token`) is refused,
    /// if it is: see [`refuse_forgery`].
    pub fn forged(&self, web: &Web, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        refuse_forgery(headers, uri, token, &self.csrf(web))
    }

    /// The same person in a new session (after their password changed: the old one is of an
    /// older generation now), whose cookie [`SignedIn::finish`] sends.
    pub fn reopened(web: &Web, user: User, session: Session) -> SignedIn {
        let renewed = session_cookie(web, &session);
        SignedIn {
            user,
            session,
            renewed,
        }
    }

    /// `resp` with the renewed session cookie.
    pub fn finish(self, mut resp: Response) -> Response {
        if let Some(cookie) = self.renewed {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        resp
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The `Set-Cookie` value of a session.
pub fn session_cookie(web: &Web, s: &Session) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        web.key.seal(s)
    ))
    .ok()
}

/// A `Set-Cookie` that removes cookie `name`.
pub fn clear_cookie(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .ok()
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// The person the request's session names, if it is still open and their account still
/// allows it (same generation, not disabled).
pub fn signed_in(web: &Web, headers: &HeaderMap) -> Option<SignedIn> {
    let cfg = &web.app.gateway.config.web;
    let session = web.key.open(cookie(headers, SESSION_COOKIE)?)?;
    let now = now();
    if !session.is_open(now, cfg.session_idle_secs, cfg.session_max_secs) {
        return None;
    }
    let user = match crate::accounts::get(&web.app.gateway.config.keys, &session.name) {
        Ok(Some(u)) => u,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read an account");
            return None;
        }
    };
    if user.disabled || user.generation != session.generation {
        return None;
    }
    // Renewed at most once a minute: a cookie per request would be noise.
    let renewed = (now - session.seen >= 60)
        .then(|| {
            session_cookie(
                web,
                &Session {
                    seen: now,
                    ..session.clone()
                },
            )
        })
        .flatten();
    Some(SignedIn {
        user,
        session,
        renewed,
    })
}

/// A page for people with one of `roles`: the person, or where to send the browser instead
/// (sign-in when nobody is signed in, 403 for the wrong role).
pub fn page_for(web: &Web, headers: &HeaderMap, roles: &[Role]) -> Result<SignedIn, Box<Response>> {
    let Some(who) = signed_in(web, headers) else {
        return Err(Box::new(Redirect::to("/sign-in").into_response()));
    };
    if !roles.contains(&who.user.role) {
        let page = super::pages::forbidden(&who, web);
        return Err(Box::new(
            who.finish((StatusCode::FORBIDDEN, page).into_response()),
        ));
    }
    Ok(who)
}

/// Why a state-changing request is refused, if it is: it must come from a page of this origin
/// (`Sec-Fetch-Site`, `Origin`), and carry `token` matching `expected`.
pub fn refuse_forgery(
    headers: &HeaderMap,
    uri: &Uri,
    token: Option<&str>,
    expected: &str,
) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Some(format!(
            "the request came from another site (Sec-Fetch-Site: {site})"
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // HTTP/2 names the host in the request's authority, HTTP/1.1 in `Host`.
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
        let ours = host.map(|h| format!("https://{h}"));
        if origin.to_str().ok() != ours.as_deref() {
            return Some(format!(
                "the request came from another origin ({})",
                String::from_utf8_lossy(origin.as_bytes())
            ));
        }
    }
    match token {
        Some(t)
            if t.len() == expected.len()
                && openssl::memcmp::eq(t.as_bytes(), expected.as_bytes()) =>
        {
            None
        }
        Some(_) => Some(
            "the form's security token does not match this session: reload the page and try again"
                .into(),
        ),
        None => Some("the form has no security token: reload the page and try again".into()),
    }
}
