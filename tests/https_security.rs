//! The HTTPS channel under attack (issue 11): client certificates an agency requires, floods of
//! connections past the descriptor limit, one agency hogging upload slots, trickled bodies,
//! malformed framing, `/metrics` exposure, full disks. Each against a real `gateway serve`.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Home, curl, post, post_until_busy, sample};

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn detail(r: &crate::support::Curl) -> String {
    r.json()["detail"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_required_client_certificate_must_be_the_agencys_own_current_and_unrevoked() {
    let home = Home::with_server_config("");
    let agency_toml = home.path().join("keys/agencies/police/agency.toml");
    let text = std::fs::read_to_string(&agency_toml).unwrap();
    let text = text.replace(
        "require_client_certificate = false",
        "require_client_certificate = true",
    );
    assert!(text.contains("require_client_certificate = true"), "{text}");
    std::fs::write(&agency_toml, text).unwrap();
    let (any_key, any_crt) = home.self_signed("any", "/CN=anything", 1);
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let (key, cert) = home.signer("police");
    let server = home.serve();
    let url = server.url("/v1/messages");
    let with = |crt: &Path, k: &Path| -> Vec<String> {
        vec![
            "--cert".into(),
            crt.display().to_string(),
            "--key".into(),
            k.display().to_string(),
            "-H".into(),
            token.clone(),
        ]
    };

    let r = post(&home, &url, &["-H", &token], &home.fresh_police("a.sealed"));
    assert_eq!(r.status, 401, "the token alone is not enough");
    assert!(detail(&r).contains("client certificate"), "{}", detail(&r));

    let throwaway = with(&any_crt, &any_key);
    let r = post(
        &home,
        &url,
        &args(&throwaway),
        &home.fresh_police("b.sealed"),
    );
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "forbidden");
    assert!(
        detail(&r).contains("CN=anything") && detail(&r).contains("not registered for police"),
        "the refusal names the rule: {}",
        detail(&r)
    );

    let own = with(&cert, &key);
    let r = post(&home, &url, &args(&own), &home.fresh_police("c.sealed"));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let revoked = home.gateway(&["agency", "cert", "revoke", "police", cert.to_str().unwrap()]);
    assert!(revoked.status.success(), "{revoked:?}");
    let r = post(&home, &url, &args(&own), &home.fresh_police("d.sealed"));
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "forbidden");
    assert!(detail(&r).contains("revoked"), "{}", detail(&r));
}

#[test]
fn authorization_schemes_are_case_insensitive_and_others_are_named() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let server = home.serve();
    let url = server.url("/v1/messages");
    let lower = format!("authorization: bearer {token}");
    let r = post(&home, &url, &["-H", &lower], &home.fresh_police("a.sealed"));
    assert_eq!(r.status, 201, "RFC 9110: the scheme is case-insensitive");
    let r = post(
        &home,
        &url,
        &["-u", "police:secret"],
        &home.fresh_police("b.sealed"),
    );
    assert_eq!(r.status, 401);
    assert!(
        detail(&r).contains("\"Basic\" scheme") && detail(&r).contains("only bearer tokens"),
        "{}",
        detail(&r)
    );
}

/// Sends `head` and `body` on a raw connection, in one write; returns the reply. The server
/// answers a framing error as soon as it sees it and closes without reading the rest, so a
/// request sent in several writes (or larger than the socket's buffers) could meet a broken
/// pipe before the answer is read: keep requests small.
fn raw_reply(home: &Home, port: u16, head: &str, body: &[u8]) -> String {
    let mut tls = crate::support::raw_tls(home, port, Duration::from_secs(15));
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    assert!(request.len() < 16 * 1024, "one TLS record");
    tls.write_all(&request).unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tls.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn malformed_chunked_framing_is_a_400_not_a_timeout() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let server = home.serve();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let reply = raw_reply(&home, server.port, &head, b"zz-not-hex\r\nabc\r\n0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("malformed_request"), "{reply}");

    // More trailer fields than hyper's 100.
    let mut trailer = b"3\r\nabc\r\n0\r\n".to_vec();
    for i in 0..150 {
        trailer.extend_from_slice(format!("X-Trailer-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    trailer.extend_from_slice(b"\r\n");
    let reply = raw_reply(&home, server.port, &head, &trailer);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[test]
fn a_long_body_with_broken_framing_is_answered_not_reset() {
    // The framing breaks at once, and the client goes on sending a megabyte. The server answers
    // as soon as it sees the fault; then it reads and discards what still comes (a lingering
    // close), so the client's writes do not meet a reset and it reads the answer.
    let home = Home::with_server_config("");
    let token = home.token("police");
    let server = home.serve();
    let mut tls = crate::support::raw_tls(&home, server.port, Duration::from_secs(15));
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-hex\r\n"
    );
    tls.write_all(head.as_bytes()).unwrap();
    let junk = vec![b'a'; 64 * 1024];
    for i in 0..16 {
        if let Err(e) = tls.write_all(&junk) {
            panic!("write {i} of the rest of the body failed: {e}");
        }
    }
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("malformed_request"), "{reply}");
}

#[test]
fn one_agency_cannot_hold_every_upload_slot() {
    let home = Home::with_server_config("max_uploads = 4\nmax_uploads_per_agency = 1\n");
    let police = format!("Authorization: Bearer {}", home.token("police"));
    let housing = format!("Authorization: Bearer {}", home.token("housing"));
    let housing_msg = home.seal_as(
        "housing",
        &sample("housing", "valid-kinship-carer.xml"),
        "h.sealed",
    );
    let server = home.serve();
    let url = server.url("/v1/messages");
    let slow = home.slow_upload(&url, &police);
    let r = post_until_busy(&home, &url, &police);
    assert_eq!(r.json()["code"], "busy");
    assert!(detail(&r).contains("share"), "{}", detail(&r));
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    let r = post(&home, &url, &["-H", &housing], &housing_msg);
    drop(slow);
    assert_eq!(
        r.status,
        201,
        "another agency still gets a slot: {}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn a_body_below_the_minimum_rate_is_cut_off_after_the_grace_period() {
    let home = Home::with_server_config(
        "idle_timeout_secs = 60\nupload_grace_secs = 1\nmin_upload_bytes_per_sec = 5000\n",
    );
    let token = home.token("police");
    let server = home.serve();
    let mut tls = crate::support::raw_tls(&home, server.port, Duration::from_millis(200));
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 2000000\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    // 100 bytes every 100 ms: 1,000 bytes/s, never idle, far below the minimum.
    while started.elapsed() < Duration::from_secs(15) {
        if tls.write_all(&[b'x'; 100]).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("too slowly"), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut off after {:?}, not after the idle timeout",
        started.elapsed()
    );
}

#[test]
fn metrics_need_the_token_on_the_https_port_and_are_open_on_the_loopback_listener() {
    let home = Home::with_server_config("");
    let server = home.serve();
    let r = curl(&home, &[&server.url("/metrics")]);
    assert_eq!(r.status, 404, "no token configured: not on the HTTPS port");
    let r = curl(&home, &[&server.metrics_url("/metrics")]);
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("gateway_connections"));
    assert_eq!(curl(&home, &[&server.metrics_url("/readyz")]).status, 200);
    drop(server);

    let home = Home::with_server_config("[metrics]\nlisten = \"\"\n");
    let server = home.serve_limited(None, &[("GATEWAY_METRICS_TOKEN", "s3cret-metrics")]);
    let r = curl(&home, &[&server.url("/metrics")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthenticated");
    let r = curl(
        &home,
        &["-H", "Authorization: Bearer wrong", &server.url("/metrics")],
    );
    assert_eq!(r.status, 401);
    let r = curl(
        &home,
        &[
            "-H",
            "Authorization: Bearer s3cret-metrics",
            &server.url("/metrics"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("gateway_queue_depth"));
}

#[test]
fn low_disk_space_makes_the_gateway_not_ready_and_shows_in_metrics() {
    // More free space than any disk has: every volume counts as low.
    let home = Home::with_server_config("[limits]\nmin_free_disk_bytes = 1125899906842624\n");
    let server = home.serve();
    let r = curl(&home, &[&server.url("/readyz")]);
    assert_eq!(r.status, 503);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        body.contains("min_free_disk_bytes") && body.contains("state"),
        "{body}"
    );
    let m = curl(&home, &[&server.metrics_url("/metrics")]);
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(r#"gateway_disk_low{volume="state"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"gateway_disk_free_bytes{volume="outbox"}"#));
}

/// Opens `n` TCP connections to `port` that never start TLS.
fn idle_connections(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect()
}

#[test]
fn a_flood_of_idle_connections_under_a_low_descriptor_limit_does_not_stop_the_gateway() {
    let home = Home::with_server_config("header_timeout_secs = 30\n");
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let sealed = home.fresh_police("p.sealed");
    // 128 descriptors: the default cap (16 here) leaves the rest for files, the ledger and
    // reloads.
    let server = home.serve_limited(Some(128), &[]);
    // More than the 128 descriptors could hold if every one were accepted.
    let flood = idle_connections(server.port, 150);
    assert!(flood.len() > 128, "{} connections", flood.len());
    let r = post(
        &home,
        &server.url("/v1/messages"),
        &["--max-time", "40", "-H", &token],
        &sealed,
    );
    assert_eq!(
        r.status,
        201,
        "crowded, idle handshakes are cut short and a real client gets through: {}",
        String::from_utf8_lossy(&r.body)
    );
    drop(flood);
    let log = std::fs::read_to_string(home.log_path()).unwrap();
    assert!(
        !log.contains("Too many open files"),
        "the cap kept descriptors for the work:\n{}",
        &log[..log.len().min(4000)]
    );
}

#[test]
fn accept_failures_back_off_with_a_bounded_log_and_the_gateway_recovers() {
    // A cap far above what the descriptor limit allows: accept() itself fails.
    let home = Home::with_server_config("max_connections = 5000\nheader_timeout_secs = 3\n");
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let sealed = home.fresh_police("p.sealed");
    let server = home.serve_limited(Some(128), &[]);
    let flood = idle_connections(server.port, 400);
    let log = home.wait_for_log("cannot accept connections");
    assert!(
        log.contains("max_connections leaves fewer than 256 descriptors"),
        "the misconfiguration is named at start:\n{log}"
    );
    // The failures go on while the flood lasts: watch the log for 3 s of them. (A window the
    // scenario needs, not a wait for an event: while the descriptors are gone, even the
    // metrics listener cannot accept a connection to tell how many failures there were.)
    std::thread::sleep(Duration::from_secs(3));
    drop(flood);
    let log = std::fs::read_to_string(home.log_path()).unwrap();
    let failures = log.matches("cannot accept connections").count();
    assert_eq!(
        failures,
        1,
        "at most one accept-failure line per 10 s: {}",
        &log[..log.len().min(4000)]
    );
    // Once the idle handshakes time out, the gateway serves again by itself.
    let r = post(
        &home,
        &server.url("/v1/messages"),
        &["--max-time", "30", "-H", &token],
        &sealed,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let m = curl(&home, &[&server.metrics_url("/metrics")]);
    let text = String::from_utf8_lossy(&m.body);
    let errors: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("gateway_accept_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    // Several failures, one line: the log was bounded, not the failures few.
    assert!(errors >= 2.0, "{text}");
}

#[test]
fn a_413_reaches_http2_clients_with_its_problem_document() {
    let home = Home::with_server_config("[limits]\nmax_payload_bytes = 4096\n");
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let big = home.file("big.bin");
    std::fs::write(&big, vec![b'x'; 3_000_000]).unwrap();
    let server = home.serve();
    let url = server.url("/v1/messages");
    // Declared too large: refused before the body.
    let r = post(&home, &url, &["--http2", "-H", &token], &big);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "payload_too_large");
    // Not declared (streamed from stdin): refused once the limit is passed.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(home.tls_cert())
        .args(["-H", &token, "-X", "POST", "-T", "-", &url])
        .stdin(std::fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("413"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("payload_too_large"), "{text}");
}
