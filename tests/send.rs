//! The agency side: `gateway send` (retries, idempotent resend, receipts) and
//! `gateway recipient --url`, against a real `gateway serve`.

use crate::support::{Home, sample};

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

#[test]
fn send_uploads_saves_verifiable_receipts_and_reports_rejections() {
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
    let ca = home.path().join("keys/receipt/receipt.crt");
    crate::support::tool(
        "openssl",
        &[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            sig.to_str().unwrap(),
            "-content",
            receipt.to_str().unwrap(),
            "-CAfile",
            ca.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
    );
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

#[test]
fn send_retries_until_the_gateway_is_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = Home::new(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let token = home.token("police");
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "good.sealed",
    );
    let url = format!("https://127.0.0.1:{port}");
    let ca = home.tls_cert();
    let sender = {
        let config = home.config();
        let (url, ca, good, token) = (url.clone(), ca.clone(), good.clone(), token.clone());
        std::thread::spawn(move || {
            assert_cmd::Command::cargo_bin("gateway")
                .unwrap()
                .args([
                    "send",
                    "--json",
                    "--retries",
                    "6",
                    "--url",
                    &url,
                    "--token",
                    &token,
                    "--cacert",
                ])
                .arg(&ca)
                .arg(&good)
                .arg("--config")
                .arg(config)
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let _server = home.serve();
    let out = sender.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "accepted");
}

#[test]
fn send_gives_up_with_exit_2_when_the_gateway_stays_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = Home::new("");
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "good.sealed",
    );
    let (code, v) = send(
        &home,
        &format!("https://127.0.0.1:{port}"),
        &["--token", "gw_x_y", "--retries", "1"],
        &[&good],
    );
    assert_eq!(code, 2);
    assert_eq!(v["results"][0]["outcome"], "failed");
}
