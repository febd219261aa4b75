//! The console and `/v1/admin` over real HTTPS, as operators use them.

use super::{Browser, add_user, audit_records, text};
use crate::support::{Home, post, sample};

/// Signs an operator in (with the TOTP code of now); the browser.
fn operator<'a>(home: &'a Home, server: &'a crate::support::Server) -> Browser<'a> {
    let op = add_user(home, &["op", "--role", "operator"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = gateway::accounts::totp::code_at(op["totp_secret"].as_str().unwrap(), now).unwrap();
    let browser = Browser::new(home, server);
    let signed = browser.sign_in("op", op["password"].as_str().unwrap(), &code);
    assert_eq!(signed.status, 303, "{}", text(&signed));
    browser
}

#[test]
fn operators_see_messages_filtered_and_in_detail_and_others_do_not() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let server = home.serve();
    let bearer = format!("Authorization: Bearer {token}");
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "g.sealed",
    );
    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-unknown-role.xml"),
        "b.sealed",
    );
    let sent = post(&home, &server.url("/v1/messages"), &["-H", &bearer], &good);
    assert_eq!(sent.status, 201);
    let id = sent.json()["gateway_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = post(&home, &server.url("/v1/messages"), &["-H", &bearer], &bad);
    assert_eq!(refused.status, 422);
    let refusal = refused.json();
    let bad_id = refusal["gateway_message_id"].as_str().unwrap().to_owned();
    let bad_path = refusal["violations"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();

    let op = operator(&home, &server);
    let overview = op.get("/console");
    assert_eq!(overview.status, 200, "{}", text(&overview));
    let html = text(&overview);
    assert!(
        html.contains("<svg") && html.contains("2 messages from Police"),
        "{html}"
    );
    assert!(
        html.contains("intact:"),
        "the audit chain is verified: {html}"
    );

    let list = op.get("/console/messages?agency=police");
    assert_eq!(list.status, 200);
    assert!(text(&list).contains(&id));
    let none = op.get("/console/messages?agency=housing");
    assert!(!text(&none).contains(&id));
    let rejected = op.get("/v1/admin/messages?status=rejected");
    assert_eq!(rejected.status, 200, "{}", text(&rejected));
    let rows = rejected.json()["messages"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["rejection_code"], "schema_invalid");
    let bad_date = op.get("/console/messages?from=yesterday");
    assert_eq!(bad_date.status, 400);
    assert!(
        text(&bad_date).contains("is not a date"),
        "{}",
        text(&bad_date)
    );

    let detail = op.get(&format!("/v1/admin/messages/{id}"));
    assert_eq!(detail.status, 200);
    let detail = detail.json();
    assert_eq!(detail["record"]["status"], "forwarded");
    assert!(detail["steps"].as_array().unwrap().len() >= 3);
    let page = op.get(&format!("/console/messages/{id}"));
    assert!(text(&page).contains("Receipt"), "{}", text(&page));
    // A refusal shows where the XML was wrong, as the agency was told, from the ledger.
    let detail = op.get(&format!("/v1/admin/messages/{bad_id}")).json();
    assert_eq!(
        detail["violations"]["violations"], refusal["violations"],
        "{detail}"
    );
    let page = text(&op.get(&format!("/console/messages/{bad_id}")));
    assert!(
        page.contains("problem(s) in the document") && page.contains(&bad_path),
        "{page}"
    );

    // An uploader and a stranger are kept out.
    let clerk = add_user(
        &home,
        &["clerk", "--agency", "police", "--role", "uploader"],
    );
    let uploader = Browser::new(&home, &server);
    uploader.sign_in("clerk", clerk["password"].as_str().unwrap(), "");
    assert_eq!(uploader.get("/v1/admin/messages").status, 403);
    assert_eq!(uploader.get("/console/messages").status, 403);
    assert_eq!(
        Browser::new(&home, &server)
            .get("/v1/admin/messages")
            .status,
        401
    );
}

#[test]
fn a_quarantined_message_is_rerun_after_its_certificate_is_added_and_another_is_discarded() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let server = home.serve();
    let bearer = format!("Authorization: Bearer {token}");
    // Signed with a certificate the hub has not registered yet.
    let (key, cert) = home.self_signed("new-signer", "/CN=Police new signer", 30);
    let sealed = home.file("new.sealed");
    crate::support::seal_fresh_police(&key, &cert, &home.recipient(), &sealed);
    let refused = post(
        &home,
        &server.url("/v1/messages"),
        &["-H", &bearer],
        &sealed,
    );
    assert_eq!(refused.status, 403, "{}", text(&refused));
    assert_eq!(refused.json()["code"], "signer_unknown");
    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-unknown-role.xml"),
        "b.sealed",
    );
    assert_eq!(
        post(&home, &server.url("/v1/messages"), &["-H", &bearer], &bad).status,
        422
    );

    let op = operator(&home, &server);
    let q = op.get("/v1/admin/quarantine");
    let entries = q.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let entry = |code: &str| {
        entries
            .iter()
            .find(|e| e["code"] == code)
            .unwrap_or_else(|| panic!("no {code} in {entries:?}"))
            .clone()
    };
    let unknown = entry("signer_unknown");
    let invalid = entry("schema_invalid");

    // The fix: the certificate is registered. Then the re-run goes through.
    let out = home.gateway(&["agency", "cert", "add", "police", cert.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = op.get("/console/quarantine");
    let csrf = super::field(&page, "csrf");
    let id = unknown["gateway_message_id"].as_str().unwrap();
    let before = home.queued();
    let rerun = op.form(
        &format!("/console/quarantine/police/{id}/rerun"),
        &[("csrf", &csrf)],
    );
    assert_eq!(rerun.status, 303, "{}", text(&rerun));
    let new_page = rerun.header("location").unwrap();
    assert!(new_page.starts_with("/console/messages/"), "{new_page}");
    assert_eq!(
        home.queued(),
        before + 1,
        "the re-run message is in the queue"
    );
    let new_id = new_page.rsplit('/').next().unwrap();
    let detail = op.get(&format!("/v1/admin/messages/{new_id}")).json();
    assert_eq!(detail["record"]["status"], "forwarded");

    // A discard needs a reason, and the token.
    let bad_id = invalid["gateway_message_id"].as_str().unwrap();
    let url = format!("/console/quarantine/police/{bad_id}/discard");
    let forged = op.form(&url, &[("csrf", "nope"), ("reason", "x")]);
    assert_eq!(forged.status, 403);
    let no_reason = op.form(&url, &[("csrf", &csrf), ("reason", " ")]);
    assert!(
        text(&no_reason).contains("Give a reason"),
        "{}",
        text(&no_reason)
    );
    let discarded = op.form(
        &url,
        &[("csrf", &csrf), ("reason", "test extract, not real data")],
    );
    assert_eq!(discarded.status, 200);
    assert!(
        text(&discarded).contains("was discarded"),
        "{}",
        text(&discarded)
    );
    let left = op.get("/v1/admin/quarantine").json();
    assert_eq!(left["entries"].as_array().unwrap().len(), 0, "{left}");

    let records = audit_records(&home);
    let by_op: Vec<_> = records
        .iter()
        .filter(|r| r["actor"] == "op")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["details"].clone(),
            )
        })
        .collect();
    let rerun = by_op
        .iter()
        .find(|(a, _)| a == "quarantine re-run")
        .unwrap();
    assert_eq!(rerun.1["verdict"], "forwarded");
    let discard = by_op
        .iter()
        .find(|(a, _)| a == "quarantine discard")
        .unwrap();
    assert_eq!(discard.1["reason"], "test extract, not real data");
    assert!(
        by_op.iter().any(|(a, _)| a == "forwarded"),
        "the re-run message is the operator's"
    );
}

/// Signs an admin in; the browser.
fn admin<'a>(home: &'a Home, server: &'a crate::support::Server) -> Browser<'a> {
    let made = add_user(home, &["root", "--role", "admin"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code =
        gateway::accounts::totp::code_at(made["totp_secret"].as_str().unwrap(), now).unwrap();
    let browser = Browser::new(home, server);
    let signed = browser.sign_in("root", made["password"].as_str().unwrap(), &code);
    assert_eq!(signed.status, 303, "{}", text(&signed));
    browser
}

#[test]
fn admins_issue_and_revoke_tokens_add_people_and_revoke_certificates_from_the_console() {
    let home = Home::with_server_config("");
    let server = home.serve();
    let root = admin(&home, &server);
    let page = root.get("/console/admin");
    assert_eq!(page.status, 200, "{}", text(&page));
    let csrf = super::field(&page, "csrf");

    // A token issued here is shown once and opens the API.
    let issued = root.form(
        "/console/admin/token-issue",
        &[("csrf", &csrf), ("agency", "police")],
    );
    assert_eq!(issued.status, 200, "{}", text(&issued));
    let html = text(&issued);
    let at = html.find("gw_").expect("the token is shown");
    let token: String = html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let sealed = home.fresh_police("p.sealed");
    let bearer = format!("Authorization: Bearer {token}");
    let sent = post(
        &home,
        &server.url("/v1/messages"),
        &["-H", &bearer],
        &sealed,
    );
    assert_eq!(sent.status, 201, "{}", text(&sent));

    // Revoked here, it is refused at once.
    let id = token.split('_').nth(1).unwrap().to_owned();
    let revoked = root.form(
        "/console/admin/token-revoke",
        &[("csrf", &csrf), ("agency", "police"), ("id", &id)],
    );
    assert!(
        text(&revoked).contains("Revoked token"),
        "{}",
        text(&revoked)
    );
    let again = home.fresh_police("q.sealed");
    assert_eq!(
        post(&home, &server.url("/v1/messages"), &["-H", &bearer], &again).status,
        401
    );

    // A person made here can sign in with what was shown.
    let made = root.form(
        "/console/admin/user-add",
        &[
            ("csrf", &csrf),
            ("name", "clerk"),
            ("role", "uploader"),
            ("agency", "police"),
        ],
    );
    assert_eq!(made.status, 200, "{}", text(&made));
    let html = text(&made);
    let at = html
        .find("Password</dt><dd class=\"break\"><code>")
        .expect("the password is shown");
    let password: String = html[at + 37..].chars().take(29).collect();
    let clerk = Browser::new(&home, &server);
    assert_eq!(clerk.sign_in("clerk", &password, "").status, 303);
    assert_eq!(
        clerk.get("/console/admin").status,
        403,
        "uploaders are not admins"
    );

    // Mistakes are said, nothing is done.
    let wrong = root.form(
        "/console/admin/cert-add",
        &[
            ("csrf", &csrf),
            ("agency", "police"),
            ("pem", "not a certificate"),
        ],
    );
    assert_eq!(wrong.status, 400);
    assert!(
        text(&wrong).contains("There is a problem"),
        "{}",
        text(&wrong)
    );

    // The police development certificate, revoked here, refuses what it signs.
    let (_, cert) = home.signer("police");
    let pem = std::fs::read(&cert).unwrap();
    let fp = {
        let x = openssl::x509::X509::from_pem(&pem).unwrap();
        hex::encode(x.digest(openssl::hash::MessageDigest::sha256()).unwrap())
    };
    let out = root.form(
        "/console/admin/cert-revoke",
        &[("csrf", &csrf), ("agency", "police"), ("fingerprint", &fp)],
    );
    assert!(text(&out).contains("Revoked"), "{}", text(&out));

    let records = audit_records(&home);
    let by_root: Vec<_> = records
        .iter()
        .filter(|r| r["actor"] == "root" && r["details"]["via"] == "console")
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "agency token issue",
        "agency token revoke",
        "user add",
        "agency cert revoke",
    ] {
        assert!(
            by_root.iter().any(|a| a == action),
            "{action} in {by_root:?}"
        );
    }

    // Forged: refused.
    let forged = root.form(
        "/console/admin/token-issue",
        &[("csrf", "x"), ("agency", "police")],
    );
    assert_eq!(forged.status, 403);
}

#[test]
fn operators_ask_an_agency_from_the_requests_page_and_see_where_it_stands() {
    let home = Home::with_server_config("");
    let server = home.serve();
    let op = operator(&home, &server);
    let page = op.get("/console/requests");
    assert_eq!(page.status, 200, "{}", text(&page));
    assert!(text(&page).contains("No requests yet."), "{}", text(&page));
    let csrf = super::field(&page, "csrf");

    // A line that is not name=value: nothing is asked, and the form keeps what was typed.
    let refused = op.form(
        "/console/requests",
        &[
            ("csrf", &csrf),
            ("agency", "police"),
            ("query", "incidents"),
            ("params", "since 2026-12-01"),
        ],
    );
    assert_eq!(refused.status, 400, "{}", text(&refused));
    let html = text(&refused);
    assert!(
        html.contains("Parameters: &quot;since 2026-12-01&quot; is not name=value"),
        "the line is named: {html}"
    );
    assert!(html.contains("since 2026-12-01</textarea>"), "{html}");
    // An agency the hub does not know, the same.
    let unknown = op.form(
        "/console/requests",
        &[
            ("csrf", &csrf),
            ("agency", "nobody"),
            ("query", "incidents"),
        ],
    );
    assert_eq!(unknown.status, 422, "{}", text(&unknown));
    assert!(
        text(&unknown).contains("not a registered agency"),
        "{}",
        text(&unknown)
    );
    // Without the session's token, refused as forged.
    let forged = op.form(
        "/console/requests",
        &[("csrf", "x"), ("agency", "police"), ("query", "incidents")],
    );
    assert_eq!(forged.status, 403, "{}", text(&forged));

    let asked = op.form(
        "/console/requests",
        &[
            ("csrf", &csrf),
            ("agency", "police"),
            ("query", "incidents"),
            ("params", "since=2026-12-01\n\n  area=north \n"),
            ("wait_minutes", "30"),
        ],
    );
    assert_eq!(asked.status, 200, "{}", text(&asked));
    let listed = op.get("/v1/admin/requests").json();
    let all = listed["requests"].as_array().unwrap();
    assert_eq!(all.len(), 1, "only the accepted ask was recorded: {listed}");
    let r = &all[0];
    assert_eq!(
        (&r["agency"], &r["query"], &r["state"], &r["asked_by"]),
        (
            &"police".into(),
            &"incidents".into(),
            &"queued".into(),
            &"op".into()
        )
    );
    assert_eq!(
        r["params"],
        serde_json::json!({"since": "2026-12-01", "area": "north"})
    );
    let at = |k: &str| gateway::message::timestamp::parse(r[k].as_str().unwrap()).unwrap();
    assert_eq!(
        (at("deadline") - at("asked_at")).whole_seconds(),
        30 * 60,
        "{r}"
    );
    let id = r["request_id"].as_str().unwrap();
    let html = text(&asked);
    assert!(
        html.contains(&format!("Request {id} was asked of police")),
        "{html}"
    );
    assert!(
        html.contains("since=2026-12-01"),
        "the list shows it: {html}"
    );
    assert!(
        audit_records(&home)
            .iter()
            .any(|a| a["action"] == "request ask" && a["actor"] == "op" && a["subject"] == id),
        "audited under the operator's name"
    );
}
