//! The hub asks, the agent answers: `gateway request ask` on the hub, a real agent long-polling
//! a real `gateway serve`, the mapped command run without a shell, the answer queued with the
//! request's id; hostile parameters refused by the agent with nothing run.

use std::time::Duration;

use super::Agency;
use crate::support::{Home, post, sample, sh_out, wait_for};

/// The agent's `[[query]]`: a script that logs its arguments and prints a police incident;
/// and its `/metrics` on `metrics` (a loopback port).
fn with_query(agency: &Agency, metrics: u16) -> std::path::PathBuf {
    let log = agency.path("ran.log");
    let script = agency.path("incidents.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> {:?}\nexec cat {:?}\n",
            log,
            sample("police", "valid-single-incident.xml")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let toml = std::fs::read_to_string(agency.path("agent.toml")).unwrap();
    let toml = format!(
        "{toml}[[query]]\nname = \"incidents\"\ncommand = [{script:?}, \"--since={{since}}\", \"{{request_id}}\"]\n\
         timeout_secs = 30\n[query.params]\nsince = {{ type = \"datetime\" }}\n\
         limit = {{ type = \"integer\", min = 1, max = 100, required = false }}\n\
         area = {{ type = \"text\", max_len = 16, required = false }}\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n"
    );
    std::fs::write(agency.path("agent.toml"), toml).unwrap();
    log
}

/// The agent process, stopped however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ask(home: &Home, agency: &str, query: &str, params: &[&str]) -> String {
    let mut args = vec!["request", "ask", agency, query];
    args.extend_from_slice(params);
    args.push("--json");
    let out = home.gateway(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "queued");
    v["request_id"].as_str().unwrap().to_owned()
}

fn show(home: &Home, id: &str) -> serde_json::Value {
    let out = home.gateway(&["request", "show", id, "--json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn settled(home: &Home, id: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_for(
        &format!("request {id} closed"),
        Duration::from_secs(30),
        || {
            last = show(home, id);
            last["state"] == "answered" || last["state"] == "failed"
        },
    );
    last
}

#[test]
fn a_request_is_answered_end_to_end_and_hostile_parameters_run_nothing() {
    use assert_cmd::cargo::CommandCargoExt;
    let home = Home::with_server_config("");
    let server = home.serve();
    let agency = Agency::new(&home, &server);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = with_query(&agency, metrics);
    let agent = Running(
        std::process::Command::cargo_bin("gateway")
            .unwrap()
            .args(["agent", "run", "--every-secs", "1", "--agent-config"])
            .arg(agency.path("agent.toml"))
            .current_dir(agency.path(""))
            .env("GATEWAY_LOG", "error")
            .spawn()
            .unwrap(),
    );

    // Answered: the command ran with the typed parameter, its output is queued naming the
    // request, and the hub's ledger links the two.
    let id = ask(
        &home,
        "police",
        "incidents",
        &["since=2026-12-01T00:00:00Z"],
    );
    let r = settled(&home, &id);
    assert_eq!(r["state"], "answered", "{r}");
    let message = r["gateway_message_id"].as_str().unwrap();
    assert_eq!(home.queued(), 1);
    assert_eq!(home.queue_metadata(message)["request_id"], id.as_str());
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran, format!("--since=2026-12-01T00:00:00Z {id}\n"));
    // The hub closes the request when it queues the answer; the agent files the receipt once
    // it has read the hub's reply, a moment later.
    let receipt = agency.path(&format!("agent-state/requests/sent/{id}.xml.receipt.json"));
    wait_for(
        "the answer's receipt kept by the agent",
        Duration::from_secs(10),
        || receipt.exists(),
    );
    // The agency sees its request through the API too.
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let api = crate::support::curl(
        &home,
        &["-H", &token, &server.url(&format!("/v1/requests/{id}"))],
    );
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["state"], "answered");

    // Hostile or mistyped: refused by the agent, each problem named, nothing run.
    let pwned = agency.path("pwned");
    let hostile = [
        (
            vec![format!("since=$(touch {})", pwned.display())],
            "since:",
        ),
        (
            vec![
                "since=2026-12-01T00:00:00Z".into(),
                "limit=1; reboot".into(),
            ],
            "limit:",
        ),
        (
            vec![
                "since=2026-12-01T00:00:00Z".into(),
                format!("area={}", "a".repeat(40)),
            ],
            "at most 16",
        ),
        (
            vec!["since=2026-12-01T00:00:00Z".into(), "area=x`id`".into()],
            "not allowed",
        ),
        (
            vec!["since=2026-12-01T00:00:00Z".into(), "limit=100000".into()],
            "outside",
        ),
        (vec!["since=yesterday".into()], "not an RFC 3339 time"),
        (
            vec!["since=2026-12-01T00:00:00Z".into(), "path=/etc".into()],
            "no such parameter",
        ),
    ];
    for (params, why) in &hostile {
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let id = ask(&home, "police", "incidents", &params);
        let r = settled(&home, &id);
        assert_eq!(r["state"], "failed", "{params:?}: {r}");
        let detail = r["detail"].as_str().unwrap();
        assert!(
            detail.contains(why) && detail.contains("nothing was run"),
            "{params:?}: {detail}"
        );
    }
    let unknown = ask(&home, "police", "everything", &[]);
    let r = settled(&home, &unknown);
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("answers no query named \"everything\""),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "the command ran for the good request only"
    );
    assert!(!pwned.exists());
    assert_eq!(home.queued(), 1);
    // The agent's own metrics, on loopback, read off its journal.
    let scrape = sh_out(&format!("curl -sf http://127.0.0.1:{metrics}/metrics"));
    for line in [
        "gateway_agent_requests{state=\"answered\"} 1",
        &format!(
            "gateway_agent_requests{{state=\"failed\"}} {}",
            hostile.len() + 1
        ),
        "gateway_agent_files{state=\"pending\"} 0",
    ] {
        assert!(scrape.contains(line), "{line} in {scrape}");
    }
    assert!(
        scrape.contains("gateway_agent_last_round_timestamp_seconds"),
        "{scrape}"
    );
    drop(agent);

    // An answer to a closed or unknown request is refused before its body is read.
    let sealed = home.fresh_police("late.sealed");
    let url = server.url("/v1/messages");
    let closed = format!("Gateway-Request-Id: {unknown}");
    let late = post(&home, &url, &["-H", &token, "-H", &closed], &sealed);
    assert_eq!(late.status, 409);
    assert_eq!(late.json()["code"], "request_closed");
    let bogus = post(
        &home,
        &url,
        &["-H", &token, "-H", "Gateway-Request-Id: rq-nothing"],
        &sealed,
    );
    assert_eq!(bogus.status, 404);
    assert_eq!(bogus.json()["code"], "request_unknown");
    assert_eq!(home.queued(), 1);

    // Each step is in the audit log under who did it.
    let audit = std::fs::read_to_string(home.path().join("state/audit/audit.log")).unwrap();
    for action in [
        "request ask",
        "request taken",
        "request answered",
        "request failed",
    ] {
        assert!(audit.contains(action), "{action} is not audited");
    }
    let status = agency.agent(&home, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (
            status["requests_answered"].as_u64(),
            status["requests_failed"].as_u64()
        ),
        (Some(1), Some(hostile.len() as u64 + 1))
    );
}

#[test]
fn a_request_is_asked_only_of_a_registered_agency_in_a_shape_agents_read() {
    let home = Home::new("");
    for (args, why) in [
        (
            vec!["request", "ask", "nobody", "incidents"],
            "not a registered agency",
        ),
        (vec!["request", "ask", "police", "Incidents"], "query name"),
        (
            vec!["request", "ask", "police", "incidents", "since"],
            "name=value",
        ),
        (
            vec![
                "request",
                "ask",
                "police",
                "incidents",
                "--wait-minutes",
                "0",
            ],
            "waits between",
        ),
    ] {
        let out = home.gateway(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let list = home.gateway(&["request", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
}

#[test]
fn a_long_poll_in_progress_does_not_hold_up_the_hubs_shutdown() {
    let home = Home::with_server_config("");
    let mut server = home.serve();
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let poll = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(home.tls_cert())
        .args(["-H", &token, &server.url("/v1/requests/next?wait=30")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = server.metrics_url("/metrics");
    wait_for(
        "the poll waiting at the hub",
        Duration::from_secs(10),
        || sh_out(&format!("curl -sf {metrics}")).contains("gateway_request_polls 1"),
    );
    let asked = std::time::Instant::now();
    assert_eq!(server.stop(), Some(0));
    let took = asked.elapsed();
    let out = poll.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
    assert!(
        took < Duration::from_secs(10),
        "the shutdown waited {took:?} for a 30 s poll"
    );
}
