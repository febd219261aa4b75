//! The agency side: `gateway send` (retries, idempotent resend, receipts) and
//! `gateway recipient --url`, against a real `gateway serve`.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;

use crate::support::{Home, sample, wait_for};

fn send(
    home: &Home,
    url: &str,
    extra: &[&str],
    files: &[&std::path::Path],
) -> (i32, serde_json::Value) {
    let mut args = vec!["send", "--json", "--url", url, "--cacert"];
    let ca = home.tls_cert();
    args.push(ca.to_str().unwrap());
    args.extend_from_slice(extra);
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(files.iter().map(String::as_str));
    let out = home.gateway(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// A home with a police token, a valid sealed file and a schema-invalid one.
fn police_good_and_bad() -> (Home, String, std::path::PathBuf, std::path::PathBuf) {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "good.sealed",
    );
    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-bad-location-postcode.xml"),
        "bad.sealed",
    );
    (home, token, good, bad)
}

#[test]
fn send_uploads_saves_verifiable_receipts_and_reports_rejections() {
    let (home, token, good, bad) = police_good_and_bad();
    let server = home.serve();
    let base = server.url("");
    let (code, v) = send(
        &home,
        &base,
        &["--token", &token, "--save-receipts"],
        &[&good, &bad],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["results"][0]["outcome"], "accepted");
    assert_eq!(v["results"][0]["status"], 201);
    assert_eq!(v["results"][1]["outcome"], "rejected");
    assert_eq!(v["results"][1]["problem"]["code"], "schema_invalid");
    let receipt = home.file("good.sealed.receipt.json");
    let sig = home.file("good.sealed.receipt.p7s");
    home.verify_receipt_signature(&sig, &receipt);
    let (code, v) = send(&home, &base, &["--token", &token], &[&good]);
    assert_eq!(code, 0);
    assert_eq!(
        v["results"][0]["status"], 200,
        "a resend gets the original receipt"
    );

    let out = home.gateway(&[
        "recipient",
        "--url",
        &base,
        "--cacert",
        home.tls_cert().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        home.recipient()
    );
}

/// A port the test holds from start to end, so that no other process can take it: it closes
/// every connection at once (a gateway that is down, as `gateway send` sees it) until
/// [`Door::open_to`] names a port, then relays each connection to that port. It counts both.
struct Door {
    port: u16,
    /// The port connections are relayed to; 0 while they are closed.
    upstream: Arc<AtomicU16>,
    closed: Arc<AtomicUsize>,
    relayed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Door {
    fn new() -> Door {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let door = Door {
            port: listener.local_addr().unwrap().port(),
            upstream: Arc::default(),
            closed: Arc::default(),
            relayed: Arc::default(),
            stop: Arc::default(),
        };
        let (upstream, closed, relayed, stop) = (
            door.upstream.clone(),
            door.closed.clone(),
            door.relayed.clone(),
            door.stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                match upstream.load(Ordering::SeqCst) {
                    0 => {
                        closed.fetch_add(1, Ordering::SeqCst);
                        drop(client);
                    }
                    port => {
                        relayed.fetch_add(1, Ordering::SeqCst);
                        relay(client, port);
                    }
                }
            }
        });
        door
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// From now on, connections are relayed to `port`.
    fn open_to(&self, port: u16) {
        self.upstream.store(port, Ordering::SeqCst);
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    fn relayed(&self) -> usize {
        self.relayed.load(Ordering::SeqCst)
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies bytes both ways between `client` and `127.0.0.1:port` until each side is done.
fn relay(client: TcpStream, port: u16) {
    let server = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

/// Starts `gateway send --json --retries RETRIES` (its log at info: one line per retry) of
/// `file` to `url`.
fn spawn_send(home: &Home, url: &str, token: &str, retries: u32, file: &Path) -> Child {
    Command::cargo_bin("gateway")
        .unwrap()
        .args(["send", "--json", "--retries", &retries.to_string()])
        .args(["--url", url, "--token", token, "--cacert"])
        .arg(home.tls_cert())
        .arg(file)
        .arg("--config")
        .arg(home.config())
        .env_remove("GATEWAY_CONFIG")
        .env("GATEWAY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The retries `gateway send` logged.
fn retries_logged(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("retrying")).count()
}

#[test]
fn send_retries_until_the_gateway_is_up() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "good.sealed",
    );
    let door = Door::new();
    let sender = spawn_send(&home, &door.url(), &token, 6, &good);
    // The first attempt finds the gateway down; only then does it start.
    wait_for("the first attempt", Duration::from_secs(30), || {
        door.closed() >= 1
    });
    let server = home.serve();
    door.open_to(server.port);
    let out = sender.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "accepted", "{v}");
    assert_eq!(v["results"][0]["status"], 201, "{v}");
    // Each attempt that found the door closed was retried; the last one got through.
    let closed = door.closed();
    assert!(closed >= 1);
    assert_eq!(retries_logged(&stderr), closed, "{stderr}");
    assert!(stderr.contains("attempt=1"), "{stderr}");
    assert_eq!(door.relayed(), 1, "{stderr}");
    assert_eq!(home.queued(), 1);
}

#[test]
fn send_gives_up_with_exit_2_when_the_gateway_stays_down() {
    let home = Home::new("");
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "good.sealed",
    );
    let door = Door::new();
    let out = spawn_send(&home, &door.url(), "gw_x_y", 1, &good)
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "failed", "{v}");
    assert!(
        v["results"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 2 attempts"),
        "{v}"
    );
    // The first attempt and the one retry, and nothing more.
    assert_eq!(retries_logged(&stderr), 1, "{stderr}");
    assert_eq!(door.closed(), 2);
}

#[test]
fn send_check_reports_each_verdict_and_sends_nothing() {
    let (home, token, good, bad) = police_good_and_bad();
    let server = home.serve();
    let base = server.url("");
    let (code, v) = send(
        &home,
        &base,
        &["--token", &token, "--check"],
        &[&good, &bad],
    );
    assert_eq!(
        code, 1,
        "a file that would be rejected fails the check: {v}"
    );
    assert_eq!(v["results"][0]["outcome"], "passed");
    assert_eq!(
        v["results"][0]["checked"]["schema_id"],
        "police-IncidentBatch-1"
    );
    assert_eq!(v["results"][1]["outcome"], "rejected");
    assert_eq!(v["results"][1]["problem"]["code"], "schema_invalid");
    assert_eq!(home.queued(), 0);
    let (code, v) = send(&home, &base, &["--token", &token], &[&good]);
    assert_eq!(
        (code, &v["results"][0]["status"]),
        (0, &serde_json::json!(201)),
        "{v}"
    );
}
