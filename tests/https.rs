//! End to end over real HTTPS: `gateway serve` on 127.0.0.1 with its TLS certificate, driven
//! with `curl` (bearer tokens and client certificates).

use std::path::Path;

use crate::support::{Home, curl, post, sample, tool};

#[test]
fn upload_with_a_token_is_forwarded_with_a_signed_receipt_and_a_resend_gets_the_same_receipt() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let bearer = format!("Authorization: Bearer {token}");
    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let server = home.serve();
    let r = post(
        &home,
        &server.url("/v1/messages"),
        &["-H", &bearer],
        &sealed,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let receipt = r.json();
    let id = receipt["gateway_message_id"].as_str().unwrap().to_owned();
    assert_eq!(receipt["agency"], "police");
    assert_eq!(receipt["schema_id"], "police-IncidentBatch-1");
    assert_eq!(r.header("location").unwrap(), format!("/v1/messages/{id}"));

    // The receipt verifies with stock openssl against the gateway's receipt certificate.
    let dir = tempfile::tempdir().unwrap();
    let (json, sig) = (dir.path().join("r.json"), dir.path().join("r.p7s.b64"));
    std::fs::write(&json, &r.body).unwrap();
    std::fs::write(&sig, r.header("gateway-receipt-signature").unwrap()).unwrap();
    let der = dir.path().join("r.p7s");
    tool(
        "openssl",
        &[
            "base64",
            "-d",
            "-A",
            "-in",
            sig.to_str().unwrap(),
            "-out",
            der.to_str().unwrap(),
        ],
    );
    home.verify_receipt_signature(&der, &json);

    let again = post(
        &home,
        &server.url("/v1/messages"),
        &["-H", &bearer],
        &sealed,
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["gateway_message_id"], id.as_str());

    let status = curl(
        &home,
        &["-H", &bearer, &server.url(&format!("/v1/messages/{id}"))],
    );
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["status"], "forwarded");
    assert!(status.json()["action"].is_null());

    assert_eq!(home.queued(), 1, "exactly the accepted message is queued");

    let m = curl(&home, &[&server.metrics_url("/metrics")]);
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(r#"gateway_messages_total{agency="police",channel="https",outcome="forwarded",code=""} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gateway_messages_total{agency="police",channel="https",outcome="duplicate",code=""} 1"#),
        "{text}"
    );
    assert!(text.contains("gateway_queue_depth 1"), "{text}");
    for part in ["ledger", "queue"] {
        let ready = format!("gateway_part_ready{{part=\"{part}\"}} 1");
        assert!(text.contains(&ready), "{text}");
    }
    assert!(
        text.contains(r#"gateway_key_expiry_days{kind="tls",owner="gateway""#),
        "{text}"
    );
    assert!(text.contains("gateway_processing_seconds_bucket"), "{text}");
}

#[test]
fn client_certificate_identifies_the_agency_and_conflicting_credentials_are_forbidden() {
    let home = Home::with_server_config("");
    let (key, cert) = home.signer("police");
    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let housing = format!("Authorization: Bearer {}", home.token("housing"));
    let server = home.serve();
    let mtls = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let r = post(&home, &server.url("/v1/messages"), &mtls, &sealed);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let mut both = mtls.to_vec();
    both.extend_from_slice(&["-H", &housing]);
    let r = post(&home, &server.url("/v1/messages"), &both, &sealed);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "forbidden");
}

#[test]
fn missing_or_wrong_credentials_are_unauthenticated_and_others_messages_are_not_found() {
    let home = Home::with_server_config("");
    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let police = format!("Authorization: Bearer {}", home.token("police"));
    let housing = format!("Authorization: Bearer {}", home.token("housing"));
    let server = home.serve();
    let r = post(&home, &server.url("/v1/messages"), &[], &sealed);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(r.json()["code"], "unauthenticated");
    let r = post(
        &home,
        &server.url("/v1/messages"),
        &["-H", "Authorization: Bearer gw_00000000_00"],
        &sealed,
    );
    assert_eq!(r.status, 401);
    let ok = post(
        &home,
        &server.url("/v1/messages"),
        &["-H", &police],
        &sealed,
    );
    assert_eq!(ok.status, 201);
    let id = ok.json()["gateway_message_id"].as_str().unwrap().to_owned();
    let peek = curl(
        &home,
        &["-H", &housing, &server.url(&format!("/v1/messages/{id}"))],
    );
    assert_eq!(peek.status, 404, "another agency cannot see the message");
}

/// Posts the police sample with an invalid postcode (sealed) to `url`; expects the schema
/// refusal with its location, and returns the sealed file and the problem.
fn post_invalid_postcode(
    home: &Home,
    url: &str,
    auth: &str,
) -> (std::path::PathBuf, serde_json::Value) {
    let invalid = home.seal_as(
        "police",
        &sample("police", "invalid-bad-location-postcode.xml"),
        "i.sealed",
    );
    let r = post(home, url, &["-H", auth], &invalid);
    assert_eq!(r.status, 422);
    let p = r.json();
    assert_eq!(p["code"], "schema_invalid");
    assert_eq!(
        p["violations"][0]["path"],
        "/IncidentBatch/Incident/LocationPostcode"
    );
    assert!(p["violations"][0]["line"].as_u64().unwrap() > 1);
    (invalid, p)
}

#[test]
fn rejections_carry_their_code_status_and_locations() {
    let home = Home::with_server_config("[limits]\nmax_payload_bytes = 4096\n");
    let police = format!("Authorization: Bearer {}", home.token("police"));
    let server = home.serve();
    let url = server.url("/v1/messages");

    let (invalid, p) = post_invalid_postcode(&home, &url, &police);
    let id = p["gateway_message_id"].as_str().unwrap().to_owned();
    let status = curl(
        &home,
        &["-H", &police, &server.url(&format!("/v1/messages/{id}"))],
    );
    assert_eq!(status.status, 200);
    let s = status.json();
    assert_eq!(
        (s["status"].as_str(), s["rejection_code"].as_str()),
        (Some("rejected"), Some("schema_invalid"))
    );
    // Rejected before its identity was known: the ledger holds the payload's own digest.
    let sent = std::fs::read(&invalid).unwrap();
    assert_eq!(s["sha256"], hex::encode(openssl::sha::sha256(&sent)));
    assert_eq!(s["size"], sent.len() as u64);
    assert!(
        s["action"].as_str().is_some_and(|a| a.len() > 10),
        "a rejected message says what to do: {s}"
    );
    // Asked later, it still says where the XML was wrong, as the refusal did.
    assert_eq!(s["violations"], p["violations"], "{s}");
    assert_eq!(s["truncated"], false);

    let mismatch = home.seal_as(
        "housing",
        &sample("police", "valid-single-incident.xml"),
        "m.sealed",
    );
    let r = post(&home, &url, &["-H", &police], &mismatch);
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "agency_mismatch")
    );

    let big = home.file("big.bin");
    std::fs::write(&big, vec![b'x'; 10_000]).unwrap();
    let r = post(&home, &url, &["-H", &police], &big);
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (413, "payload_too_large")
    );
    // Without a Content-Length the limit is enforced while streaming.
    let r = post(
        &home,
        &url,
        &[
            "-H",
            &police,
            "-H",
            "Transfer-Encoding: chunked",
            "--http1.1",
        ],
        &big,
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (413, "payload_too_large")
    );

    let plain = sample("police", "valid-single-incident.xml");
    let r = post(&home, &url, &["-H", &police], &plain);
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (422, "not_age_encrypted")
    );
    let outbox = home.path().join("outbox/integration/new");
    assert_eq!(
        std::fs::read_dir(outbox).unwrap().count(),
        0,
        "nothing rejected is queued"
    );
}

#[test]
fn saturated_gateway_answers_503_with_retry_after() {
    let home = Home::with_server_config("max_uploads = 1\n");
    let police = format!("Authorization: Bearer {}", home.token("police"));
    let server = home.serve();
    let url = server.url("/v1/messages");
    // A slow upload holds the only upload slot.
    let slow = home.slow_upload(&url, &police);
    let r = crate::support::post_until_busy(&home, &url, &police);
    drop(slow);
    assert_eq!(
        r.json()["code"],
        "busy",
        "not \"could not store the message\""
    );
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
}

#[test]
fn client_that_sends_no_headers_is_disconnected_after_the_header_timeout() {
    use std::io::{Read, Write};
    let home = Home::with_server_config("header_timeout_secs = 1\n");
    let server = home.serve();
    let mut tls = crate::support::raw_tls(&home, server.port, std::time::Duration::from_secs(10));
    tls.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let n = tls.read(&mut buf).unwrap_or(0);
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn recipient_health_and_readiness_are_served() {
    let home = Home::with_server_config("");
    let mut server = home.serve();
    let r = curl(&home, &[&server.url("/v1/recipient")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["current"].as_str().unwrap(), home.recipient());
    assert_eq!(curl(&home, &[&server.url("/healthz")]).status, 200);
    assert_eq!(curl(&home, &[&server.url("/readyz")]).status, 200);
    assert_eq!(server.stop(), Some(0), "SIGTERM stops the server cleanly");
}

#[test]
fn openapi_document_is_served_and_every_documented_path_exists() {
    let home = Home::with_server_config("");
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let server = home.serve();
    let doc = curl(&home, &[&server.url("/openapi.yaml")]);
    assert_eq!(doc.status, 200);
    let text = String::from_utf8(doc.body).unwrap();
    let file =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"))
            .unwrap();
    assert_eq!(text, file);
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  /").and_then(|p| p.strip_suffix(':')))
        .collect();
    assert!(paths.len() >= 7, "{paths:?}");
    for p in paths {
        let mut p = p.replace("{id}", "01a21270-a601-70d5-9d86-df5ba41dadd2");
        if p == "v1/requests/next" {
            p.push_str("?wait=0"); // a long poll otherwise
        }
        let r = curl(&home, &["-H", &token, &server.url(&format!("/{p}"))]);
        // 405: a POST-only path answering GET; 404 problem: an unknown message id.
        let exists = r.status != 404
            || r.header("content-type").as_deref() == Some("application/problem+json");
        assert!(exists, "/{p} is documented but not served ({})", r.status);
    }
    for code in gateway::rejection::Code::ALL.iter().map(|c| c.as_str()) {
        if matches!(code, "io_error" | "not_a_regular_file") {
            continue; // never an HTTP answer
        }
        assert!(
            file.contains(code),
            "{code} is missing from the Problem code enum"
        );
    }
}

#[test]
fn upload_that_stalls_mid_body_is_cut_off_with_408() {
    use std::io::{Read, Write};
    let home = Home::with_server_config("idle_timeout_secs = 1\n");
    let token = home.token("police");
    let server = home.serve();
    let mut tls = crate::support::raw_tls(&home, server.port, std::time::Duration::from_secs(10));
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&[0u8; 1000]).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    let n = match tls.read(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!("no reply after {:?}: {e}", started.elapsed()),
    };
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(
        reply.starts_with("HTTP/1.1 408"),
        "after {:?}: {reply:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A well-formed token that was never issued.
const UNKNOWN_TOKEN: &str = "Authorization: Bearer gw_00000000_00";

#[test]
fn token_issued_while_serving_works_on_the_next_request_without_a_restart() {
    let home = Home::with_server_config("");
    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let server = home.serve();
    let url = server.url("/v1/messages");
    // An unknown token makes the server re-read its tokens (at most once a second): what it
    // holds now is fresh, so only the change `token issue` records in keys/ can make it see
    // the new token at once.
    let r = post(&home, &url, &["-H", UNKNOWN_TOKEN], &sealed);
    assert_eq!(r.status, 401);
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let r = post(&home, &url, &["-H", &token], &sealed);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn revoked_token_is_refused_on_the_next_request_without_a_restart() {
    let home = Home::with_server_config("");
    let sealed = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "p.sealed",
    );
    let out = home.gateway(&["agency", "token", "issue", "police", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bearer = format!("Authorization: Bearer {}", v["token"].as_str().unwrap());
    let other = format!("Authorization: Bearer {}", home.token("police"));
    let server = home.serve();
    let url = server.url("/v1/messages");
    // Accepted: the server now holds the token in its cache.
    let r = post(&home, &url, &["-H", &bearer], &sealed);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // An unknown token makes the server re-read its tokens (at most once a second), so what
    // it holds is fresh for seconds: only the change `token revoke` records in keys/ can make
    // it refuse the token at once.
    let r = post(&home, &url, &["-H", UNKNOWN_TOKEN], &sealed);
    assert_eq!(r.status, 401);
    let out = home.gateway(&[
        "agency",
        "token",
        "revoke",
        "police",
        v["id"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No wait: the very next request is refused.
    let r = post(&home, &url, &["-H", &bearer], &sealed);
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "unauthenticated");
    // Only that token: the agency's other token still works (a resend: the original receipt).
    let r = post(&home, &url, &["-H", &other], &sealed);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    use std::io::{Read, Write};
    let home = Home::with_server_config("idle_timeout_secs = 3\nheader_timeout_secs = 30\n");
    let server = home.serve();
    let mut tls = crate::support::raw_tls(&home, server.port, std::time::Duration::from_secs(15));
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tls.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A pause well within the idle timeout is not idleness: the connection is still served.
    // (A gap the scenario needs, not a wait for an event.)
    std::thread::sleep(std::time::Duration::from_millis(300));
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let n = tls.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then idle: closed by the server after the idle timeout (3 s), well before the header
    // timeout (30 s) or this client's read timeout (15 s).
    let started = std::time::Instant::now();
    let n = tls.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(
        waited < std::time::Duration::from_secs(10),
        "closed after {waited:?}"
    );
}

#[test]
fn check_only_runs_every_check_and_keeps_nothing() {
    let home = Home::with_server_config("");
    let police = format!("Authorization: Bearer {}", home.token("police"));
    let server = home.serve();
    let check = server.url("/v1/messages?check=true");
    let xml = sample("police", "valid-single-incident.xml");
    let sealed = home.seal_as("police", &xml, "v.sealed");
    let quarantine = home.path().join("state/quarantine/police");
    let kept = || std::fs::read_dir(&quarantine).map_or(0, |d| d.count());

    let r = post(&home, &check, &["-H", &police], &sealed);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        (v["outcome"].as_str(), v["check_only"].as_bool()),
        (Some("passed"), Some(true))
    );
    assert_eq!(v["schema_id"], "police-IncidentBatch-1");
    assert_eq!(
        v["sha256"],
        hex::encode(openssl::sha::sha256(&std::fs::read(&xml).unwrap()))
    );
    assert!(
        v.get("gateway_message_id").is_none(),
        "nothing recorded: {v}"
    );
    assert!(r.header("gateway-receipt-signature").is_none());
    assert_eq!(home.queued(), 0, "a check forwards nothing");

    // A refusal is the one a real upload would get, with its violations, and nothing is kept.
    let (_, p) = post_invalid_postcode(&home, &check, &police);
    assert!(p.get("gateway_message_id").is_none(), "{p}");
    assert_eq!(kept(), 0, "a check quarantines nothing");

    // Not recorded either: sent for real, the checked message is new, not a resend.
    let url = server.url("/v1/messages");
    assert_eq!(post(&home, &url, &["-H", &police], &sealed).status, 201);
    assert_eq!(home.queued(), 1);
    // A query that is not check=true|false is refused, never taken for a real upload.
    for bad in ["/v1/messages?check=yes", "/v1/messages?dry_run=true"] {
        let other = home.seal_as(
            "police",
            &sample("police", "valid-weekly-batch.xml"),
            "o.sealed",
        );
        let r = post(&home, &server.url(bad), &["-H", &police], &other);
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (400, Some("malformed_request")),
            "{bad}"
        );
    }
    assert_eq!(home.queued(), 1);
    let audit = std::fs::read_to_string(home.path().join("state/audit/audit.log")).unwrap();
    assert_eq!(
        audit.matches("\"action\":\"checked\"").count(),
        2,
        "{audit}"
    );
}
