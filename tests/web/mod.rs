//! The pages people use, over real HTTPS with `curl` and a cookie jar, as a browser would:
//! sign-in (lock-out, TOTP, disabled accounts), the upload page's uploads, and the refusal of
//! forged and cross-site requests. (`scripts/test-web` drives the same pages in Chromium.)

use std::path::{Path, PathBuf};

use crate::support::{Curl, Home, Server, curl, sample};

/// A person at a browser: `curl` with a cookie jar kept between requests.
struct Browser<'a> {
    home: &'a Home,
    server: &'a Server,
    jar: PathBuf,
    _dir: tempfile::TempDir,
}

impl<'a> Browser<'a> {
    fn new(home: &'a Home, server: &'a Server) -> Browser<'a> {
        let dir = tempfile::tempdir().unwrap();
        Browser {
            home,
            server,
            jar: dir.path().join("cookies"),
            _dir: dir,
        }
    }

    fn request(&self, args: &[&str]) -> Curl {
        let jar = self.jar.to_str().unwrap();
        let mut all = vec!["-b", jar, "-c", jar];
        all.extend_from_slice(args);
        curl(self.home, &all)
    }

    fn get(&self, path: &str) -> Curl {
        self.request(&[&self.server.url(path)])
    }

    /// Posts a form (`name=value` pairs, URL-encoded by curl).
    fn form(&self, path: &str, fields: &[(&str, &str)]) -> Curl {
        let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = Vec::new();
        for p in &pairs {
            args.extend(["--data-urlencode", p.as_str()]);
        }
        let url = self.server.url(path);
        args.push(&url);
        self.request(&args)
    }

    /// Signs in through the form; the answer to the form.
    fn sign_in(&self, name: &str, password: &str, code: &str) -> Curl {
        let page = self.get("/sign-in");
        assert_eq!(page.status, 200);
        let csrf = field(&page, "csrf");
        self.form(
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("code", code),
            ],
        )
    }

    /// What the upload page's script does: the sealed file, with the page's CSRF token.
    fn upload(&self, file: &Path, query: &str, extra: &[&str]) -> Curl {
        let page = self.get("/");
        assert_eq!(page.status, 200, "{}", text(&page));
        let csrf = meta(&page, "csrf-token");
        let header = format!("X-CSRF-Token: {csrf}");
        let data = format!("@{}", file.display());
        let url = self.server.url(&format!("/web/messages{query}"));
        let mut args = vec!["-X", "POST", "-H", &header, "--data-binary", &data];
        args.extend_from_slice(extra);
        args.push(&url);
        self.request(&args)
    }
}

fn text(c: &Curl) -> String {
    String::from_utf8_lossy(&c.body).into_owned()
}

/// The value of the form field `name` of a page.
fn field(page: &Curl, name: &str) -> String {
    attribute_after(&text(page), &format!("name=\"{name}\" value=\""))
}

/// The content of `<meta name=NAME>`.
fn meta(page: &Curl, name: &str) -> String {
    attribute_after(&text(page), &format!("<meta name=\"{name}\" content=\""))
}

/// The quoted value that follows `prefix` in `html`.
fn attribute_after(html: &str, prefix: &str) -> String {
    let at = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {html}"));
    let rest = &html[at + prefix.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Makes an account; its credentials as `gateway user add --json` prints them.
fn add_user(home: &Home, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["user", "add"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = home.gateway(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn audit_records(home: &Home) -> Vec<serde_json::Value> {
    std::fs::read_to_string(home.path().join("state/audit/audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_clerk_signs_in_and_sends_a_sealed_file_audited_under_their_name() {
    let home = Home::with_server_config("");
    let clerk = add_user(
        &home,
        &["j.smith", "--agency", "police", "--role", "uploader"],
    );
    let password = clerk["password"].as_str().unwrap();
    let server = home.serve();
    let browser = Browser::new(&home, &server);

    assert_eq!(
        browser.get("/").header("location").as_deref(),
        Some("/sign-in")
    );
    let signed = browser.sign_in("j.smith", password, "");
    assert_eq!(signed.status, 303, "{}", text(&signed));
    assert_eq!(signed.header("location").as_deref(), Some("/"));
    let cookie = signed.headers.to_ascii_lowercase();
    assert!(
        cookie.contains("__host-gw_session=")
            && cookie.contains("secure")
            && cookie.contains("httponly")
            && cookie.contains("samesite=strict"),
        "{cookie}"
    );

    let page = browser.get("/");
    assert_eq!(page.status, 200);
    assert!(
        text(&page).contains("You are sending for"),
        "{}",
        text(&page)
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let checked = browser.upload(&sealed, "?check=true", &[]);
    assert_eq!(checked.status, 200, "{}", text(&checked));
    assert_eq!(checked.json()["outcome"], "passed");
    assert_eq!(home.queued(), 0, "a check sends nothing");

    let sent = browser.upload(&sealed, "", &[]);
    assert_eq!(sent.status, 201, "{}", text(&sent));
    let receipt = sent.json();
    assert_eq!(receipt["agency"], "police");
    assert!(sent.header("gateway-receipt-signature").is_some());
    assert_eq!(home.queued(), 1);

    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-unknown-role.xml"),
        "bad.sealed",
    );
    let refused = browser.upload(&bad, "", &[]);
    assert_eq!(refused.status, 422, "{}", text(&refused));
    let problem = refused.json();
    let v = &problem["violations"][0];
    let line = v["line"].as_u64().expect("a line");
    // The lines around it, read back from the payload for the person who sent it.
    let source = std::fs::read_to_string(sample("police", "invalid-unknown-role.xml")).unwrap();
    let wanted = source.lines().nth(line as usize - 1).unwrap();
    let shown = v["excerpt"]
        .as_array()
        .unwrap_or_else(|| panic!("no excerpt: {problem}"))
        .iter()
        .find(|e| e["line"] == line)
        .unwrap_or_else(|| panic!("line {line} not in the excerpt: {problem}"))
        .clone();
    assert_eq!(shown["text"], wanted);
    assert!(v["excerpt"].as_array().unwrap().len() >= 3, "{problem}");

    let records = audit_records(&home);
    let by_clerk: Vec<_> = records
        .iter()
        .filter(|r| r["actor"] == "j.smith")
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for action in ["sign in", "checked", "forwarded", "rejected"] {
        assert!(
            by_clerk.iter().any(|a| a == action),
            "{action} in {by_clerk:?}"
        );
    }
    let forwarded = records
        .iter()
        .find(|r| r["actor"] == "j.smith" && r["action"] == "forwarded")
        .unwrap();
    assert_eq!(forwarded["details"]["channel"], "web");
    assert_eq!(forwarded["details"]["agency"], "police");
}

#[test]
fn forged_and_cross_site_requests_are_refused_and_send_nothing() {
    let home = Home::with_server_config("");
    let clerk = add_user(
        &home,
        &["clerk", "--agency", "police", "--role", "uploader"],
    );
    let server = home.serve();
    let browser = Browser::new(&home, &server);
    let signed = browser.sign_in("clerk", clerk["password"].as_str().unwrap(), "");
    assert_eq!(signed.status, 303, "{}", text(&signed));
    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let data = format!("@{}", sealed.display());
    let url = server.url("/web/messages");
    let no_token = browser.request(&["-X", "POST", "--data-binary", &data, &url]);
    assert_eq!(no_token.status, 403, "{}", text(&no_token));
    assert!(
        text(&no_token).contains("security token"),
        "{}",
        text(&no_token)
    );
    let other_origin = browser.upload(&sealed, "", &["-H", "Origin: https://evil.example"]);
    assert_eq!(other_origin.status, 403, "{}", text(&other_origin));
    assert!(text(&other_origin).contains("another origin"));
    let cross_site = browser.upload(&sealed, "", &["-H", "Sec-Fetch-Site: cross-site"]);
    assert_eq!(cross_site.status, 403, "{}", text(&cross_site));
    assert_eq!(home.queued(), 0);

    // A sign-in form posted without the cookie its page set (another site's form).
    let stranger = Browser::new(&home, &server);
    let forged = stranger.form(
        "/sign-in",
        &[("csrf", "x"), ("name", "clerk"), ("password", "y")],
    );
    assert_eq!(forged.status, 403, "{}", text(&forged));
    // Nobody signed in: the upload endpoint says so.
    let anonymous = stranger.request(&["-X", "POST", "--data-binary", &data, &url]);
    assert_eq!(anonymous.status, 401, "{}", text(&anonymous));
}

#[test]
fn failed_sign_ins_lock_the_account_and_hub_staff_need_their_code() {
    let home = Home::with_server_config("[web]\nmax_failures = 3\n");
    let clerk = add_user(
        &home,
        &["clerk", "--agency", "police", "--role", "uploader"],
    );
    let operator = add_user(&home, &["op", "--role", "operator"]);
    let server = home.serve();
    let browser = Browser::new(&home, &server);

    for _ in 0..2 {
        let wrong = browser.sign_in("clerk", "not-the-password", "");
        assert_eq!(wrong.status, 401, "{}", text(&wrong));
        assert!(text(&wrong).contains("name, password or code is wrong"));
    }
    let third = browser.sign_in("clerk", "not-the-password", "");
    assert_eq!(third.status, 403);
    assert!(text(&third).contains("locked until"), "{}", text(&third));
    let right = browser.sign_in("clerk", clerk["password"].as_str().unwrap(), "");
    assert_eq!(right.status, 403, "locked even for the right password");
    // A reset lifts the lock (and gives a new password).
    let out = home.gateway(&["user", "reset", "clerk", "--json"]);
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let again = browser.sign_in("clerk", fresh["password"].as_str().unwrap(), "");
    assert_eq!(again.status, 303, "{}", text(&again));
    // An uploader cannot open the console.
    assert_eq!(browser.get("/console").status, 403);

    let staff = Browser::new(&home, &server);
    let password = operator["password"].as_str().unwrap();
    let no_code = staff.sign_in("op", password, "");
    assert_eq!(
        no_code.status,
        401,
        "an operator needs a code: {}",
        text(&no_code)
    );
    let secret = operator["totp_secret"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = gateway::accounts::totp::code_at(secret, now).unwrap();
    let signed = staff.sign_in("op", password, &code);
    assert_eq!(signed.status, 303, "{}", text(&signed));
    assert_eq!(signed.header("location").as_deref(), Some("/console"));
    assert_eq!(staff.get("/console").status, 200);
    let replayed = Browser::new(&home, &server).sign_in("op", password, &code);
    assert_eq!(replayed.status, 401, "a code is good once");
}

#[test]
fn a_person_gets_a_new_password_and_their_other_sessions_end() {
    let home = Home::with_server_config("");
    let clerk = add_user(
        &home,
        &["clerk", "--agency", "police", "--role", "uploader"],
    );
    let old = clerk["password"].as_str().unwrap();
    let server = home.serve();
    let here = Browser::new(&home, &server);
    let elsewhere = Browser::new(&home, &server);
    assert_eq!(here.sign_in("clerk", old, "").status, 303);
    assert_eq!(elsewhere.sign_in("clerk", old, "").status, 303);
    let page = here.get("/account");
    assert_eq!(page.status, 200);
    assert!(
        text(&page).contains("Get a new password"),
        "{}",
        text(&page)
    );
    let csrf = field(&page, "csrf");

    // Without the page's token, or with a wrong current password: nothing changes.
    let forged = here.form("/account/password", &[("csrf", "x"), ("password", old)]);
    assert_eq!(forged.status, 403, "{}", text(&forged));
    let wrong = here.form(
        "/account/password",
        &[("csrf", &csrf), ("password", "not-the-password")],
    );
    assert_eq!(wrong.status, 401, "{}", text(&wrong));
    assert_eq!(elsewhere.get("/").status, 200, "nothing changed yet");

    let renewed = here.form("/account/password", &[("csrf", &csrf), ("password", old)]);
    assert_eq!(renewed.status, 200, "{}", text(&renewed));
    let html = text(&renewed);
    let needle = "id=\"new-password\">";
    let at = html.find(needle).expect("the new password shown") + needle.len();
    let new = &html[at..at + html[at..].find('<').unwrap()];
    assert_eq!(new.len(), 29, "five groups of five: {new}");
    assert_ne!(new, old);

    // This session goes on; the other one has ended.
    assert_eq!(here.get("/").status, 200);
    let other = elsewhere.get("/");
    assert_eq!(other.header("location").as_deref(), Some("/sign-in"));
    // Only the new password signs in now.
    let fresh = Browser::new(&home, &server);
    assert_eq!(fresh.sign_in("clerk", old, "").status, 401);
    assert_eq!(fresh.sign_in("clerk", new, "").status, 303);

    let records = audit_records(&home);
    let by = |action: &str| {
        records
            .iter()
            .filter(|r| r["action"] == action && r["actor"] == "clerk")
            .count()
    };
    assert_eq!(by("new password"), 1, "{records:#?}");
    assert_eq!(by("new password refused"), 1, "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "new password" && r["details"]["address"] == "127.0.0.1")
    );
}

#[test]
fn asking_for_a_new_password_counts_as_a_sign_in_and_locks_after_the_failures() {
    let home = Home::with_server_config("[web]\nmax_failures = 2\n");
    let clerk = add_user(
        &home,
        &["clerk", "--agency", "police", "--role", "uploader"],
    );
    let password = clerk["password"].as_str().unwrap();
    let server = home.serve();
    let browser = Browser::new(&home, &server);
    assert_eq!(browser.sign_in("clerk", password, "").status, 303);
    let csrf = field(&browser.get("/account"), "csrf");
    let guess = |p: &str| browser.form("/account/password", &[("csrf", &csrf), ("password", p)]);
    assert_eq!(guess("guess-1").status, 401);
    let locked = guess("guess-2");
    assert_eq!(locked.status, 403, "{}", text(&locked));
    assert!(text(&locked).contains("locked until"), "{}", text(&locked));
    // Locked even for the right password: an open session is no way round the lock.
    assert_eq!(guess(password).status, 403);
}

#[test]
fn disabling_an_account_ends_its_sessions_at_once() {
    let home = Home::with_server_config("");
    let clerk = add_user(
        &home,
        &["clerk", "--agency", "police", "--role", "uploader"],
    );
    let server = home.serve();
    let browser = Browser::new(&home, &server);
    let signed = browser.sign_in("clerk", clerk["password"].as_str().unwrap(), "");
    assert_eq!(signed.status, 303);
    assert_eq!(browser.get("/").status, 200);
    assert!(home.gateway(&["user", "disable", "clerk"]).status.success());
    let after = browser.get("/");
    assert_eq!(after.status, 303);
    assert_eq!(after.header("location").as_deref(), Some("/sign-in"));
    let again = browser.sign_in("clerk", clerk["password"].as_str().unwrap(), "");
    assert_eq!(again.status, 401);
    assert!(text(&again).contains("disabled"), "{}", text(&again));
}

#[test]
fn a_registered_client_certificate_signs_its_person_in() {
    let home = Home::with_server_config("");
    let (key, cert) = home.self_signed("person", "/CN=J Smith (police)", 30);
    add_user(
        &home,
        &[
            "j.smith",
            "--agency",
            "police",
            "--role",
            "uploader",
            "--client-certificate",
            cert.to_str().unwrap(),
        ],
    );
    let listed = home.gateway(&["user", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["users"][0]["name"], "j.smith");
    assert_eq!(listed["users"][0]["role"], "uploader");
    assert!(listed["users"][0]["client_certificate"].is_string());

    let server = home.serve();
    let browser = Browser::new(&home, &server);
    let tls = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let mut args = tls.to_vec();
    let url = server.url("/sign-in");
    args.push(&url);
    let page = browser.request(&args);
    assert!(
        text(&page).contains("Sign in with my certificate"),
        "{}",
        text(&page)
    );
    let csrf = format!("csrf={}", field(&page, "csrf"));
    let url = server.url("/sign-in/certificate");
    let mut args = tls.to_vec();
    args.extend(["--data-urlencode", &csrf, &url]);
    let signed = browser.request(&args);
    assert_eq!(signed.status, 303, "{}", text(&signed));
    assert_eq!(browser.get("/").status, 200);

    // Without the certificate, the button is not offered and the form signs nobody in.
    let stranger = Browser::new(&home, &server);
    let page = stranger.get("/sign-in");
    assert!(!text(&page).contains("Sign in with my certificate"));
    let csrf = field(&page, "csrf");
    let refused = stranger.form("/sign-in/certificate", &[("csrf", &csrf)]);
    assert_eq!(refused.status, 401, "{}", text(&refused));
}

#[test]
fn sign_in_attempts_from_one_address_are_limited_per_minute() {
    let home = Home::with_server_config("[web]\nsign_ins_per_minute = 3\n");
    let server = home.serve();
    let browser = Browser::new(&home, &server);
    for _ in 0..3 {
        assert_eq!(browser.sign_in("nobody", "x", "").status, 401);
    }
    let fourth = browser.sign_in("nobody", "x", "");
    assert_eq!(fourth.status, 429, "{}", text(&fourth));
    assert!(text(&fourth).contains("wait a minute"), "{}", text(&fourth));
}

mod console;
