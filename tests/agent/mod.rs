//! `gateway agent` against a real `gateway serve`: an export folder delivered, receipts kept
//! and checked, refusals explained, a resend answered with the original receipt.

use crate::support::{Home, sample, tool};

mod requests;

pub(crate) struct Agency {
    dir: tempfile::TempDir,
}

impl Agency {
    /// An agency's machine: `agent.toml`, a token file and an empty export folder.
    pub(crate) fn new(home: &Home, server: &crate::support::Server) -> Agency {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("exports")).unwrap();
        std::fs::write(dir.path().join("token"), home.token("police")).unwrap();
        let (key, cert) = home.signer("police");
        let toml = format!(
            "[hub]\nurl = {:?}\nca = {:?}\nreceipt_certificate = {:?}\ntoken_file = \"token\"\n\
             [signing]\nkey = {:?}\ncertificate = {:?}\n\
             [[job]]\nname = \"nightly\"\nfolder = \"exports\"\nstable_secs = 0\n",
            server.url(""),
            home.tls_cert(),
            home.path().join("keys/receipt/receipt.crt"),
            key,
            cert,
        );
        std::fs::write(dir.path().join("agent.toml"), toml).unwrap();
        Agency { dir }
    }

    pub(crate) fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn agent(&self, home: &Home, args: &[&str]) -> std::process::Output {
        let config = self.path("agent.toml");
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        all.extend(["--agent-config", config.to_str().unwrap()]);
        home.gateway(&all)
    }
}

#[test]
fn the_agent_delivers_an_export_folder_keeps_checked_receipts_and_explains_refusals() {
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let exports = agency.path("exports");
    for name in ["valid-single-incident.xml", "invalid-unknown-role.xml"] {
        std::fs::copy(sample("police", name), exports.join(name)).unwrap();
    }
    std::fs::write(exports.join("half-written.xml.part"), "<Incident").unwrap();

    let out = agency.agent(&home, &["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 sent, 1 failed, 0 pending"), "{stdout}");
    assert_eq!(home.queued(), 1);

    // Sent, with the receipt beside it, which stock openssl verifies.
    let sent = exports.join("sent/valid-single-incident.xml");
    assert!(sent.exists());
    let json = exports.join("sent/valid-single-incident.xml.receipt.json");
    let p7s = exports.join("sent/valid-single-incident.xml.receipt.p7s");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(receipt["agency"], "police");
    home.verify_receipt_signature(&p7s, &json);

    // Refused, with the problem and what to do.
    let failed = exports.join("failed/invalid-unknown-role.xml");
    assert!(failed.exists());
    let problem: serde_json::Value = serde_json::from_slice(
        &std::fs::read(exports.join("failed/invalid-unknown-role.xml.problem.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(problem["code"], "schema_invalid");
    // Caught at the source, with the hub's published schemas: the hub never saw it.
    assert!(
        problem["found_by"]
            .as_str()
            .unwrap_or_default()
            .contains("the agent"),
        "{problem}"
    );
    let quarantined = std::fs::read_dir(home.path().join("state/quarantine/police"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(quarantined, 0, "nothing refused reached the hub");
    let text =
        std::fs::read_to_string(exports.join("failed/invalid-unknown-role.xml.error.txt")).unwrap();
    assert!(
        text.contains("bystander") && text.contains("What to do"),
        "{text}"
    );
    assert!(
        exports.join("half-written.xml.part").exists(),
        "temporary names are left alone"
    );

    // The same extract again: the hub answers with the original receipt, nothing is queued twice.
    std::fs::copy(
        sample("police", "valid-single-incident.xml"),
        exports.join("valid-single-incident.xml"),
    )
    .unwrap();
    let out = agency.agent(&home, &["run", "--once"]);
    assert!(out.status.success());
    assert_eq!(
        home.queued(),
        1,
        "delivered once as far as the hub is concerned"
    );
    let again: serde_json::Value = serde_json::from_slice(
        &std::fs::read(exports.join("sent/valid-single-incident.xml-1.receipt.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(again["gateway_message_id"], receipt["gateway_message_id"]);

    let status = agency.agent(&home, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (
            status["sent"].as_u64(),
            status["failed"].as_u64(),
            status["pending"].as_u64()
        ),
        (Some(2), Some(1), Some(0))
    );
}

#[test]
fn a_hub_that_cannot_be_reached_leaves_the_file_pending_with_the_reason_then_delivers_it() {
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    // Point the agent at a port nobody listens on.
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    let dead = toml.replace(&server.url(""), "https://127.0.0.1:9");
    std::fs::write(agency.path("agent.toml"), dead).unwrap();
    std::fs::copy(
        sample("police", "valid-single-incident.xml"),
        agency.path("exports/x.xml"),
    )
    .unwrap();
    let out = agency.agent(&home, &["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "something is left pending");
    assert!(
        agency.path("exports/x.xml").exists(),
        "the file stays where it was"
    );
    let status = agency.agent(&home, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("pending 1") && text.contains("last error"),
        "{text}"
    );

    // The hub comes back (on another port, as a test server does): the file is delivered.
    drop(server);
    let back = home.serve();
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    let alive = toml.replace("https://127.0.0.1:9", &back.url(""));
    std::fs::write(agency.path("agent.toml"), alive).unwrap();
    let out = agency.agent(&home, &["run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(agency.path("exports/sent/x.xml.receipt.json").exists());
    assert_eq!(home.queued(), 1);
}

#[test]
fn an_agent_killed_at_any_moment_delivers_every_file_exactly_once() {
    use assert_cmd::cargo::CommandCargoExt;
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let xml = std::fs::read_to_string(sample("police", "valid-single-incident.xml")).unwrap();
    let files = 40;
    for i in 0..files {
        let id = uuid::Uuid::now_v7().to_string();
        let doc = xml.replace("3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d0016", &id);
        std::fs::write(agency.path(&format!("exports/m{i:02}.xml")), doc).unwrap();
    }
    let config = agency.path("agent.toml");
    // A small deterministic generator: the kills land at different moments each round.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    for _ in 0..30 {
        let left = std::fs::read_dir(agency.path("exports"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
            .count();
        if left == 0 {
            break;
        }
        let mut child = std::process::Command::cargo_bin("gateway")
            .unwrap()
            .args(["agent", "run", "--every-secs", "1", "--agent-config"])
            .arg(&config)
            .env("GATEWAY_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(std::time::Duration::from_millis(20 + (seed >> 33) % 150));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    // Whatever the kills left pending is finished by a last, calm run.
    let out = agency.agent(&home, &["run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(kills >= 2, "the agent was killed {kills} time(s)");
    eprintln!("agent crash test: {files} files, the agent killed {kills} times");

    let sent = agency.path("exports/sent");
    let delivered: Vec<String> = std::fs::read_dir(&sent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    assert_eq!(
        delivered.len(),
        files,
        "every file filed once: {delivered:?}"
    );
    let mut ids = std::collections::BTreeSet::new();
    for name in &delivered {
        let receipt = sent.join(format!("{name}.receipt.json"));
        let r: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&receipt).unwrap_or_else(|_| panic!("no receipt beside {name}")),
        )
        .unwrap();
        ids.insert(r["gateway_message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), files, "one message per file");
    assert_eq!(home.queued(), files, "the hub queued each file once");
}

#[test]
fn a_file_of_another_type_than_its_job_produces_is_kept_back_at_the_source() {
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    let only = |types: &str| {
        std::fs::write(
            agency.path("agent.toml"),
            format!("{toml}message_types = [{types:?}]\n"),
        )
        .unwrap();
    };
    only("police-Other-1");
    std::fs::copy(
        sample("police", "valid-single-incident.xml"),
        agency.path("exports/a.xml"),
    )
    .unwrap();
    let out = agency.agent(&home, &["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 sent, 1 failed, 0 pending"), "{stdout}");
    let problem: serde_json::Value = serde_json::from_slice(
        &std::fs::read(agency.path("exports/failed/a.xml.problem.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(problem["code"], "schema_not_allowed");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("police-IncidentBatch-1") && detail.contains("the job nightly"),
        "{detail}"
    );
    assert_eq!(home.queued(), 0, "kept back at the source");

    only("police-IncidentBatch-1");
    std::fs::copy(
        sample("police", "valid-single-incident.xml"),
        agency.path("exports/b.xml"),
    )
    .unwrap();
    let out = agency.agent(&home, &["run", "--once"]);
    assert!(out.status.success());
    assert!(agency.path("exports/sent/b.xml.receipt.json").exists());
    assert_eq!(home.queued(), 1);
}

#[test]
fn an_encrypted_signing_key_opens_with_its_passphrase_from_a_file_or_the_environment() {
    use assert_cmd::cargo::CommandCargoExt;
    use std::os::unix::fs::PermissionsExt;
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let (key, _) = home.signer("police");
    let encrypted = agency.path("signing.enc.pem");
    tool(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            key.to_str().unwrap(),
            "-out",
            encrypted.to_str().unwrap(),
            "-passout",
            "pass:correct horse",
        ],
    );
    let pass = agency.path("signing.pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    let plain = format!("key = {key:?}");
    assert!(toml.contains(&plain));
    let with_file = toml.replace(
        &plain,
        &format!("key = {encrypted:?}\npassphrase_file = \"signing.pass\""),
    );
    std::fs::write(agency.path("agent.toml"), &with_file).unwrap();
    std::fs::copy(
        sample("police", "valid-single-incident.xml"),
        agency.path("exports/a.xml"),
    )
    .unwrap();
    let out = agency.agent(&home, &["run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(agency.path("exports/sent/a.xml.receipt.json").exists());

    // A wrong passphrase is named as such, before anything is taken.
    std::fs::write(&pass, "wrong\n").unwrap();
    let out = agency.agent(&home, &["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot be opened with the passphrase"),
        "{err}"
    );

    // From the environment instead.
    let with_env = toml.replace(
        &plain,
        &format!("key = {encrypted:?}\npassphrase_env = \"AGENCY_KEY_PASS\""),
    );
    std::fs::write(agency.path("agent.toml"), with_env).unwrap();
    std::fs::copy(
        sample("police", "valid-weekly-batch.xml"),
        agency.path("exports/b.xml"),
    )
    .unwrap();
    let out = std::process::Command::cargo_bin("gateway")
        .unwrap()
        .args(["agent", "run", "--once", "--agent-config"])
        .arg(agency.path("agent.toml"))
        .env("AGENCY_KEY_PASS", "correct horse")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(agency.path("exports/sent/b.xml.receipt.json").exists());
    assert_eq!(home.queued(), 2);
}

/// Puts `key` and `cert` in `keys/tls/` (each renamed in, the key 0600).
fn install_tls(home: &Home, key: &std::path::Path, cert: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir = home.path().join("keys/tls");
    for (from, name) in [(key, "server.key"), (cert, "server.crt")] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

#[test]
fn a_hub_tls_certificate_replaced_within_the_pinned_ca_needs_nothing_of_the_agent() {
    let home = Home::with_server_config("");
    let ca = home.path().join("hub-ca");
    std::fs::create_dir(&ca).unwrap();
    // A CA, and two server certificates it issued for the hub.
    crate::support::sh(&format!(
        "cd {ca:?} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout ca.key -out ca.crt -days 30 -subj '/CN=Hub CA' 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ext && \
         for n in 1 2; do \
           openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout s$n.key \
             -out s$n.csr -subj /CN=localhost 2>/dev/null && \
           openssl x509 -req -in s$n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
             -extfile ext -out s$n.crt 2>/dev/null; \
         done"
    ));
    install_tls(&home, &ca.join("s1.key"), &ca.join("s1.crt"));
    let server = home.serve_logged();
    let agency = Agency::new(&home, &server);
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    let pinned_ca = toml.replace(
        &format!("ca = {:?}", home.tls_cert()),
        &format!("ca = {:?}", ca.join("ca.crt")),
    );
    assert_ne!(pinned_ca, toml);
    std::fs::write(agency.path("agent.toml"), pinned_ca).unwrap();
    let deliver = |sample_name: &str| {
        std::fs::copy(
            sample("police", sample_name),
            agency.path(&format!("exports/{sample_name}")),
        )
        .unwrap();
        let out = agency.agent(&home, &["run", "--once"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            agency
                .path(&format!("exports/sent/{sample_name}.receipt.json"))
                .exists()
        );
    };
    deliver("valid-single-incident.xml");

    // The hub replaces its certificate with another from the same CA; the agent is not told.
    install_tls(&home, &ca.join("s2.key"), &ca.join("s2.crt"));
    server.signal("HUP");
    home.wait_for_log("tls_replaced=true");
    let served = crate::support::sh_out(&format!(
        "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        server.url("").trim_start_matches("https://")
    ));
    let s2 = crate::support::sh_out(&format!(
        "openssl x509 -in {:?} -noout -fingerprint -sha256",
        ca.join("s2.crt")
    ));
    assert_eq!(served, s2, "the new certificate is served");
    deliver("valid-weekly-batch.xml");
    assert_eq!(home.queued(), 2);
}

#[test]
fn after_the_hub_rotates_its_key_the_agent_fetches_the_new_recipient_and_reseals() {
    use assert_cmd::cargo::CommandCargoExt;
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let mut agent = std::process::Command::cargo_bin("gateway")
        .unwrap()
        .args(["agent", "run", "--every-secs", "1", "--agent-config"])
        .arg(agency.path("agent.toml"))
        .env("GATEWAY_LOG", "error")
        .spawn()
        .unwrap();
    let sent = |name: &str| agency.path(&format!("exports/sent/{name}"));
    let wait = |name: &str| {
        crate::support::wait_for(name, std::time::Duration::from_secs(20), || {
            sent(name).exists()
        })
    };
    std::fs::copy(
        sample("police", "valid-single-incident.xml"),
        agency.path("exports/first.xml"),
    )
    .unwrap();
    wait("first.xml");
    // The hub rotates and retires the key the agent sealed the first file to.
    let out = home.gateway(&["keys", "rotate", "--json"]);
    let rotation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let old = rotation["previous"]["id"].as_str().unwrap();
    assert!(home.gateway(&["keys", "retire", old]).status.success());
    std::fs::copy(
        sample("police", "valid-weekly-batch.xml"),
        agency.path("exports/second.xml"),
    )
    .unwrap();
    wait("second.xml");
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert_eq!(home.queued(), 2);
    assert!(
        !agency.path("exports/failed").exists(),
        "no delivery failed across the rotation"
    );
}

#[test]
fn a_scheduled_extract_runs_without_a_shell_and_its_output_is_delivered() {
    use assert_cmd::cargo::CommandCargoExt;
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let sample_file = sample("police", "valid-single-incident.xml");
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    // Every two seconds: copy the extract in (the agent runs `cp`, no shell), and a job whose
    // command fails.
    let toml = format!(
        "{toml}schedule = \"*/2 * * * * *\"\ncommand = [\"cp\", {:?}, \"{{folder}}/extract.xml\"]\n\
         [[job]]\nname = \"broken\"\nfolder = \"broken\"\nschedule = \"*/2 * * * * *\"\ncommand = [\"false\"]\n",
        sample_file
    );
    std::fs::create_dir(agency.path("broken")).unwrap();
    std::fs::write(agency.path("agent.toml"), toml).unwrap();
    let mut agent = std::process::Command::cargo_bin("gateway")
        .unwrap()
        .args(["agent", "run", "--every-secs", "1", "--agent-config"])
        .arg(agency.path("agent.toml"))
        .env("GATEWAY_LOG", "error")
        .spawn()
        .unwrap();
    crate::support::wait_for(
        "the extract delivered",
        std::time::Duration::from_secs(30),
        || {
            agency
                .path("exports/sent/extract.xml.receipt.json")
                .exists()
        },
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert_eq!(home.queued(), 1);
    let status = agency.agent(&home, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("extract of broken: false exited with"),
        "{text}"
    );
}

#[test]
fn agent_configuration_mistakes_are_named_by_key() {
    let home = Home::new("");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[hub]\nurl = \"http://x\"\nreceipt_certificate = \"r\"\ntoken_env = \"HOME\"\n[signing]\nkey = \"k\"\ncertificate = \"c\"\n[[job]]\nname = \"a\"\nfolder = \"f\"\n",
            "hub.url",
        ),
        (
            "[hub]\nurl = \"https://x\"\nreceipt_certificate = \"r\"\n[signing]\nkey = \"k\"\ncertificate = \"c\"\n[[job]]\nname = \"a\"\nfolder = \"f\"\n",
            "needs a token",
        ),
        (
            "[hub]\nurl = \"https://x\"\nreceipt_certificate = \"r\"\ntoken_env = \"HOME\"\n[signing]\nkey = \"k\"\ncertificate = \"c\"\n[[job]]\nname = \"a\"\nfolder = \"f\"\nschedule = \"every day\"\ncommand = [\"x\"]\n",
            "job[0].schedule",
        ),
        (
            "[hub]\nurl = \"https://x\"\nreceipt_certificate = \"r\"\ntoken_env = \"HOME\"\nsurprise = 1\n",
            "unknown field",
        ),
        (
            "[hub]\nurl = \"https://x\"\nreceipt_certificate = \"r\"\ntoken_env = \"HOME\"\n[signing]\nkey = \"k\"\ncertificate = \"c\"\n[[query]]\nname = \"q\"\ncommand = [\"x\", \"{sinse}\"]\n[query.params]\nsince = { type = \"datetime\" }\n",
            "query[0].command: {sinse} names no parameter",
        ),
        (
            "[hub]\nurl = \"https://x\"\nreceipt_certificate = \"r\"\ntoken_env = \"HOME\"\n[signing]\nkey = \"k\"\ncertificate = \"c\"\n[[query]]\nname = \"q\"\ncommand = [\"x\"]\n[query.params]\nsince = { type = \"timestamp\" }\n",
            "query[0].params.since.type",
        ),
        (
            "[hub]\nurl = \"https://x\"\nreceipt_certificate = \"r\"\ntoken_env = \"HOME\"\n[signing]\nkey = \"k\"\ncertificate = \"c\"\n[[job]]\nname = \"a\"\nfolder = \"f\"\n[metrics]\nlisten = \"0.0.0.0:9465\"\n",
            "metrics.listen: 0.0.0.0:9465 is not a loopback address",
        ),
    ];
    for (toml, needle) in cases {
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, toml).unwrap();
        let out = home.gateway(&["agent", "status", "--agent-config", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{needle} in {err}");
    }
}

#[test]
fn the_hub_publishes_each_agency_its_schemas_signed_with_a_version() {
    let home = Home::with_server_config("");
    let token = home.token("police");
    let server = home.serve();
    let auth = format!("Authorization: Bearer {token}");
    let got = crate::support::curl(&home, &["-H", &auth, &server.url("/v1/schemas")]);
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let bundle = got.json();
    assert_eq!(bundle["agency"], "police");
    assert_eq!(bundle["version"].as_str().unwrap().len(), 64);
    let catalog = bundle["catalog"].as_str().unwrap();
    assert!(catalog.contains("police-IncidentBatch-1"), "{catalog}");
    assert!(
        !catalog.contains("housing"),
        "only the agency's own entries: {catalog}"
    );
    let files = bundle["files"].as_object().unwrap();
    assert!(
        files.keys().any(|k| k.starts_with("police/")),
        "{:?}",
        files.keys()
    );
    assert!(
        files.keys().any(|k| k.starts_with("common/")),
        "imports come too: {:?}",
        files.keys()
    );
    // Signed by the receipt key, over the exact body.
    let dir = tempfile::tempdir().unwrap();
    let (body, sig) = (dir.path().join("b.json"), dir.path().join("s.p7s"));
    std::fs::write(&body, &got.body).unwrap();
    let der = base64_decode(&got.header("gateway-signature").unwrap());
    std::fs::write(&sig, der).unwrap();
    home.verify_receipt_signature(&sig, &body);
    // The same schemas, the same version; no token, no schemas.
    let again = crate::support::curl(&home, &["-H", &auth, &server.url("/v1/schemas")]).json();
    assert_eq!(again["version"], bundle["version"]);
    assert_eq!(
        crate::support::curl(&home, &[&server.url("/v1/schemas")]).status,
        401
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}
