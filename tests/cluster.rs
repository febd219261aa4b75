//! Several gateways, one hub: three `gateway serve` instances sharing a PostgreSQL ledger, a
//! RabbitMQ quorum queue, `keys/`, `inbox/` and the claim-check folder, behind HAProxy in TCP
//! mode. Real servers, real uploads, real kills.
//!
//! Run by `bash scripts/test-cluster`, which installs and starts the servers on 127.0.0.1 and
//! sets `CLUSTER_DIR`, `GATEWAY_LEDGER_URL` and `GATEWAY_QUEUE_URL`; a plain `cargo test`
//! leaves these tests out (ignored), as they cannot run without the servers.
//!
//! After each test, every message that got a 201 (or whose file moved to `accepted/`) is
//! consumed from RabbitMQ with the sample consumer (`examples/hub-consumer.rs`): none may be
//! missing, the consumed bytes' SHA-256 must equal the receipt's, and duplicates (allowed:
//! delivery is at-least-once) are counted and printed.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use support::{Home, Server, upload, wait_for};

const INSTANCES: usize = 3;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test-cluster"))
}

fn cluster_dir() -> PathBuf {
    PathBuf::from(env("CLUSTER_DIR"))
}

/// Runs `scripts/cluster-servers ARGS` (restarts, HAProxy).
fn servers(args: &[&str]) {
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster-servers"))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/cluster-servers {args:?} failed");
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Runs one SQL command with `psql` on the database at `url`; it must succeed.
fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-qc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh database and queue name per test, so tests never see each other's messages.
fn fresh_names() -> (String, String) {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}_{n}", std::process::id());
    let db = format!("t_{tag}");
    let base = env("GATEWAY_LEDGER_URL");
    let admin = format!("{}/postgres", base.rsplit_once('/').unwrap().0);
    psql(&admin, &format!("CREATE DATABASE {db}"));
    (
        format!("{}/{db}", base.rsplit_once('/').unwrap().0),
        format!("t-{}", tag.replace('_', "-")),
    )
}

struct Cluster {
    home: Home,
    db_url: String,
    queue: String,
    servers: Mutex<Vec<Option<Server>>>,
    lb_port: u16,
    base_port: u16,
    token: String,
}

impl Cluster {
    /// Three instances behind HAProxy, all ready; `extra` is appended to each configuration
    /// (it continues the `[queue]` section, and may add sections after it).
    fn start(extra: &str) -> Cluster {
        Cluster::start_with(extra, "")
    }

    /// [`Cluster::start`], with `outbox` added to each configuration's `[outbox]` section.
    fn start_with(extra: &str, outbox: &str) -> Cluster {
        let (db_url, queue) = fresh_names();
        let home = Home::new("");
        let token = home.token("police");
        // Fixed ports (HAProxy's configuration names them), below the ephemeral range
        // (32768-60999 on Linux), where an outgoing connection could hold one; a new block
        // per test, so a port still in TIME_WAIT is never reused.
        let base_port = 21_000 + (NEXT.load(Ordering::SeqCst) as u16 % 100) * 10;
        let c = Cluster {
            home,
            db_url,
            queue,
            servers: Mutex::new((0..INSTANCES).map(|_| None).collect()),
            lb_port: base_port,
            base_port,
            token,
        };
        for i in 0..INSTANCES {
            c.write_config(i, extra, outbox);
        }
        for i in 0..INSTANCES {
            c.spawn(i);
        }
        let backends: Vec<String> = (0..INSTANCES)
            .map(|i| format!("{}:{}", c.health_port(i), c.tls_port(i)))
            .collect();
        let mut args = vec![
            "haproxy".to_owned(),
            cluster_dir().display().to_string(),
            c.lb_port.to_string(),
        ];
        args.extend(backends);
        servers(&args.iter().map(String::as_str).collect::<Vec<_>>());
        for i in 0..INSTANCES {
            c.wait_ready(i);
        }
        c
    }

    fn tls_port(&self, i: usize) -> u16 {
        self.base_port + 1 + i as u16
    }

    fn health_port(&self, i: usize) -> u16 {
        self.base_port + 5 + i as u16
    }

    fn config_path(&self, i: usize) -> PathBuf {
        self.home.file(&format!("gateway-{i}.toml"))
    }

    fn write_config(&self, i: usize, extra: &str, outbox: &str) {
        let config = format!(
            "[paths]\nschemas = {schemas:?}\nstate = \"state-{i}\"\n\
             [http]\nlisten = \"127.0.0.1:{tls}\"\nproxy_protocol_from = [\"127.0.0.2\"]\n\
             [metrics]\nlisten = \"127.0.0.1:{health}\"\n\
             [outbox]\nqueue = {queue:?}\n{outbox}\
             [ledger]\nbackend = \"postgres\"\nurl_env = \"TEST_LEDGER_URL\"\nlease_secs = 4\n\
             [inbox]\nstable_ms = 200\nrescan_secs = 2\n\
             [queue]\nbackend = \"rabbitmq\"\nclaim_check_dir = \"claims\"\n{extra}",
            schemas = support::schemas_dir().display().to_string(),
            tls = self.tls_port(i),
            health = self.health_port(i),
            queue = self.queue,
        );
        std::fs::write(self.config_path(i), config).unwrap();
    }

    /// Runs `gateway ARGS` with instance `i`'s configuration and the ledger's URL; admin
    /// commands so run are audited in, and announced through, the shared ledger.
    fn gateway(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("gateway")
            .unwrap()
            .args(args)
            .arg("--config")
            .arg(self.config_path(i))
            .env("TEST_LEDGER_URL", &self.db_url)
            .output()
            .unwrap()
    }

    /// [`Cluster::gateway`], which must succeed.
    fn gateway_ok(&self, i: usize, args: &[&str]) -> std::process::Output {
        let out = self.gateway(i, args);
        assert!(
            out.status.success(),
            "gateway {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.home.file(&format!("serve-{i}.log"))
    }

    fn spawn(&self, i: usize) {
        let mut cmd = Command::cargo_bin("gateway").unwrap();
        cmd.args(["serve", "--config"])
            .arg(self.config_path(i))
            .env("TEST_LEDGER_URL", &self.db_url)
            .env("GATEWAY_QUEUE_URL", env("GATEWAY_QUEUE_URL"))
            .env("TEST_MAIL_PASSWORD", "hub-secret");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let server = self
            .home
            .spawn_server(cmd, Stdio::from(log), Some(self.log_path(i)));
        self.servers.lock().unwrap()[i] = Some(server);
    }

    fn wait_ready(&self, i: usize) {
        let url = format!("http://127.0.0.1:{}/readyz", self.health_port(i));
        wait_for(
            &format!("instance {i} ready"),
            Duration::from_secs(30),
            || reqwest::blocking::get(&url).is_ok_and(|r| r.status().is_success()),
        );
    }

    fn kill(&self, i: usize) {
        let server = self.servers.lock().unwrap()[i].take();
        if let Some(mut s) = server {
            s.kill();
        }
    }

    fn restart(&self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }

    fn lb_url(&self) -> String {
        format!("https://127.0.0.1:{}/v1/messages", self.lb_port)
    }

    fn instance_url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}/v1/messages", self.tls_port(i))
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        (0..INSTANCES)
            .map(|i| format!("--- instance {i}\n{}", tail(&self.log(i), 40)))
            .collect()
    }

    /// Sealed police messages with fresh ids.
    fn sealed(&self, n: usize, prefix: &str) -> Vec<PathBuf> {
        let dir = self.home.file(&format!("sealed-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let batch: Vec<(String, PathBuf)> = (0..n)
            .map(|k| {
                (
                    uuid::Uuid::now_v7().to_string(),
                    dir.join(format!("{prefix}-{k}.sealed")),
                )
            })
            .collect();
        self.home.seal_police(&self.home.recipient(), &batch);
        batch.into_iter().map(|(_, p)| p).collect()
    }

    /// Uploads `file` through `url` until it gets an answer that is not "try again"
    /// (503, 502, no answer) or `limit` passes; returns the last status and body.
    fn deliver(&self, url: &str, file: &Path, limit: Duration) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = upload(&self.home.tls_cert(), url, &self.token, file);
            if !matches!(status, 0 | 502 | 503 | 504) || Instant::now() > deadline {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Consumes everything in the queue (until 5 s pass without a message).
    fn consume(&self) -> Vec<serde_json::Value> {
        self.consume_with(&[])
    }

    /// [`Cluster::consume`] with more arguments for the consumer.
    fn consume_with(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/examples/hub-consumer");
        let out = Command::new(&bin)
            .args(["--queue", &self.queue, "--idle-secs", "5"])
            .args(args)
            .env("GATEWAY_QUEUE_URL", env("GATEWAY_QUEUE_URL"))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (cargo build --example hub-consumer)",
                    bin.display()
                )
            });
        assert!(
            out.status.success(),
            "hub-consumer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Consumes the queue and checks that every acknowledged message (id → sha256) is there
    /// with the right bytes; returns how many duplicates the queue held (the same gateway id
    /// twice, or the same agency message under two ids).
    fn assert_all_consumed(&self, acknowledged: &BTreeMap<String, String>, what: &str) -> usize {
        let consumed = self.consume();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for m in &consumed {
            assert_eq!(m["ok"], true, "{what}: consumer refused {m}");
            let id = m["id"].as_str().unwrap().to_owned();
            if let Some(sha) = acknowledged.get(&id) {
                assert_eq!(
                    m["actual_sha256"].as_str(),
                    Some(sha.as_str()),
                    "{what}: {id}"
                );
            }
            *seen.entry(id).or_default() += 1;
        }
        let missing: Vec<&String> = acknowledged
            .keys()
            .filter(|id| !seen.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{what}: {} acknowledged message(s) missing from the queue: {missing:?}\n{}",
            missing.len(),
            self.logs()
        );
        let duplicates: usize = seen.values().map(|n| n - 1).sum();
        // The hub deduplicates on the agency's message id: a message whose instance died
        // after the broker's confirm is queued again under a new gateway id by the resend.
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for m in &consumed {
            let key = format!("{}/{}", m["agency"], m["agency_message_id"]);
            *copies.entry(key).or_default() += 1;
        }
        let resent: usize = copies.values().map(|n| n - 1).sum();
        println!(
            "{what}: {} acknowledged, {} consumed, {} distinct ids, {duplicates} duplicate id(s), \
             {resent} extra cop(ies) of an agency message under another id",
            acknowledged.len(),
            consumed.len(),
            seen.len()
        );
        duplicates + resent
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let servers: Vec<Option<Server>> =
            std::mem::take(&mut *self.servers.lock().unwrap_or_else(|p| p.into_inner()));
        drop(servers);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn receipt_of(body: &serde_json::Value) -> (String, String) {
    (
        body["gateway_message_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["sha256"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn uploads_through_haproxy_reach_rabbitmq_once_each_with_their_bytes() {
    let c = Cluster::start("");
    let files = c.sealed(30, "lb");
    let mut acknowledged = BTreeMap::new();
    for f in &files {
        let (status, body) = c.deliver(&c.lb_url(), f, Duration::from_secs(30));
        assert_eq!(status, 201, "{body}");
        let (id, sha) = receipt_of(&body);
        assert!(
            body["queue"].as_str().unwrap().starts_with("amqp/"),
            "{body}"
        );
        acknowledged.insert(id, sha);
    }
    // `gateway send` (the agency's own client) through the balancer too.
    let sent = c.sealed(1, "send");
    let out = Command::cargo_bin("gateway")
        .unwrap()
        .args(["send", "--url"])
        .arg(format!("https://127.0.0.1:{}", c.lb_port))
        .arg("--cacert")
        .arg(c.home.tls_cert())
        .arg("--token")
        .arg(&c.token)
        .arg("--json")
        .arg(&sent[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gateway send: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["results"][0]["outcome"], "accepted", "{answer}");
    let (id, sha) = receipt_of(&answer["results"][0]["receipt"]);
    assert!(!id.is_empty(), "gateway send answered {answer}");
    acknowledged.insert(id, sha);
    // Every instance took some of them: the balancer spreads the load.
    for i in 0..INSTANCES {
        assert!(
            c.log(i).contains("forwarded"),
            "instance {i} forwarded nothing\n{}",
            c.logs()
        );
    }
    let dups = c.assert_all_consumed(&acknowledged, "through HAProxy");
    assert_eq!(
        dups, 0,
        "no instance died, so no message may be queued twice"
    );
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn the_same_message_sent_to_two_instances_at_once_is_queued_once() {
    let c = Cluster::start("");
    let files = c.sealed(15, "twice");
    let mut acknowledged = BTreeMap::new();
    for f in &files {
        let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
            let hs: Vec<_> = [0, 1]
                .map(|i| {
                    let c = &c;
                    s.spawn(move || c.deliver(&c.instance_url(i), f, Duration::from_secs(30)))
                })
                .into_iter()
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let statuses: BTreeSet<u16> = answers.iter().map(|a| a.0).collect();
        assert!(
            answers.iter().filter(|a| a.0 == 201).count() == 1
                && answers.iter().all(|a| a.0 == 201 || a.0 == 200),
            "one 201 and one 200 (the original receipt) expected, got {statuses:?}: {answers:?}"
        );
        let ids: BTreeSet<String> = answers.iter().map(|a| receipt_of(&a.1).0).collect();
        assert_eq!(
            ids.len(),
            1,
            "both answers name the same message: {answers:?}"
        );
        let (id, sha) = receipt_of(&answers[0].1);
        acknowledged.insert(id, sha);
    }
    let dups = c.assert_all_consumed(&acknowledged, "same message twice");
    assert_eq!(dups, 0, "a message sent twice at once is queued once");
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn a_payload_above_the_claim_check_size_travels_by_claim_check() {
    let c = Cluster::start("claim_check_bytes = 1024\n");
    let files = c.sealed(3, "claim");
    let mut acknowledged = BTreeMap::new();
    for f in &files {
        let (status, body) = c.deliver(&c.lb_url(), f, Duration::from_secs(30));
        assert_eq!(status, 201, "{body}");
        let (id, sha) = receipt_of(&body);
        let claim = c.home.file(&format!("claims/{id}.xml"));
        assert!(claim.is_file(), "{} was not written", claim.display());
        acknowledged.insert(id, sha);
    }
    let consumed = c.consume();
    assert_eq!(consumed.len(), 3, "{consumed:?}");
    for m in &consumed {
        assert_eq!(m["claim_check"], true, "{m}");
        assert_eq!(m["verified"], true, "{m}");
        let id = m["id"].as_str().unwrap();
        assert_eq!(
            m["actual_sha256"].as_str(),
            acknowledged.get(id).map(String::as_str)
        );
        assert!(
            !c.home.file(&format!("claims/{id}.xml")).exists(),
            "the consumer removes a claim-checked file once it has acknowledged the message"
        );
    }
}

/// Uploads from `threads` clients through the balancer until `stop`; returns every
/// acknowledged id with its SHA-256, and how many uploads never got an answer in time.
fn load(c: &Cluster, threads: usize, stop: &AtomicBool) -> (BTreeMap<String, String>, usize) {
    let acknowledged = Mutex::new(BTreeMap::new());
    let gave_up = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (acknowledged, gave_up) = (&acknowledged, &gave_up);
            s.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    let files = c.sealed(5, &format!("load-{t}-{k}"));
                    k += 1;
                    for f in &files {
                        let (status, body) = c.deliver(&c.lb_url(), f, Duration::from_secs(60));
                        match status {
                            201 | 200 => {
                                let (id, sha) = receipt_of(&body);
                                acknowledged.lock().unwrap().insert(id, sha);
                            }
                            _ => {
                                gave_up.fetch_add(1, Ordering::SeqCst);
                                eprintln!("upload not acknowledged: {status} {body}");
                            }
                        }
                    }
                }
            });
        }
    });
    (acknowledged.into_inner().unwrap(), gave_up.into_inner())
}

/// Kills a random instance at random moments (three rounds) and restarts it; then stops
/// the load.
fn kill_at_random(c: &Cluster, stop: &AtomicBool) {
    for round in 0..3u64 {
        std::thread::sleep(Duration::from_millis(1500 + random(1500) + 500 * round));
        let victim = random(INSTANCES as u64) as usize;
        eprintln!("SIGKILL instance {victim}");
        c.kill(victim);
        std::thread::sleep(Duration::from_millis(random(1000)));
        c.restart(victim);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
}

/// A random number below `n` (the random bits of a UUIDv7).
fn random(n: u64) -> u64 {
    (uuid::Uuid::now_v7().as_u128() as u64) % n.max(1)
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn sigkill_of_instances_under_load_loses_no_acknowledged_message() {
    let c = Cluster::start("");
    let stop = AtomicBool::new(false);
    let (acknowledged, gave_up) = std::thread::scope(|s| {
        let loader = s.spawn(|| load(&c, 3, &stop));
        kill_at_random(&c, &stop);
        loader.join().unwrap()
    });
    assert!(
        acknowledged.len() >= 20,
        "too little got through: {}",
        acknowledged.len()
    );
    assert_eq!(
        gave_up, 0,
        "every upload is answered once an instance is up"
    );
    c.assert_all_consumed(&acknowledged, "SIGKILL under load");
}

impl Cluster {
    /// Drops `n` sealed files into `inbox/police/` (each renamed in whole); returns their names.
    fn drop_files(&self, n: usize, prefix: &str) -> Vec<String> {
        let inbox = self.home.file("inbox/police");
        std::fs::create_dir_all(&inbox).unwrap();
        let batch: Vec<(String, PathBuf)> = (0..n)
            .map(|k| {
                (
                    uuid::Uuid::now_v7().to_string(),
                    inbox.join(format!("{prefix}-{k}.sealed")),
                )
            })
            .collect();
        self.home.seal_police(&self.home.recipient(), &batch);
        batch
            .iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// Waits until every file in `names` is in `accepted/` with its receipt; returns each
    /// receipt's id and SHA-256.
    fn accepted(&self, names: &[String], limit: Duration) -> BTreeMap<String, String> {
        let dir = self.home.file("inbox/police/accepted");
        wait_for("every dropped file accepted", limit, || {
            names
                .iter()
                .all(|n| dir.join(format!("{n}.receipt.json")).is_file())
        });
        let rejected = self.home.file("inbox/police/rejected");
        assert!(
            support::names_in(&rejected).is_empty(),
            "files were rejected: {:?}",
            support::names_in(&rejected)
        );
        names
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(dir.join(format!("{n}.receipt.json"))).unwrap();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let r = if v["receipt"].is_object() {
                    &v["receipt"]
                } else {
                    &v
                };
                receipt_of(r)
            })
            .collect()
    }

    /// The instance that last said it watches the inbox folders (by its log), if any is alive.
    fn inbox_holder(&self) -> Option<usize> {
        let alive = self.servers.lock().unwrap();
        (0..INSTANCES)
            .filter(|i| alive[*i].is_some())
            .filter_map(|i| {
                let log = self.log(i);
                let at = log.rfind("now watches the inbox folders")?;
                let stopped = log[at..].contains("stopping here") || log[at..].contains("stopped");
                (!stopped).then_some(i)
            })
            .next()
    }
}

/// Uploads under load while `disrupt` runs, then checks every acknowledged message.
fn survives(what: &str, disrupt: impl FnOnce(&Cluster)) {
    let c = Cluster::start("");
    let stop = AtomicBool::new(false);
    let names = c.drop_files(20, "during");
    let (mut acknowledged, gave_up) = std::thread::scope(|s| {
        let loader = s.spawn(|| load(&c, 3, &stop));
        std::thread::sleep(Duration::from_secs(2));
        disrupt(&c);
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::SeqCst);
        loader.join().unwrap()
    });
    assert_eq!(
        gave_up, 0,
        "{what}: every upload is answered once the servers are back"
    );
    acknowledged.extend(c.accepted(&names, Duration::from_secs(60)));
    assert!(acknowledged.len() >= 30, "{what}: too little got through");
    c.assert_all_consumed(&acknowledged, what);
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn a_rabbitmq_restart_under_load_loses_no_acknowledged_message() {
    survives("RabbitMQ restart", |_| {
        servers(&["restart-rabbitmq", &cluster_dir().display().to_string()]);
    });
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn a_postgresql_restart_under_load_loses_no_acknowledged_message() {
    survives("PostgreSQL restart", |_| {
        servers(&["restart-postgres", &cluster_dir().display().to_string()]);
    });
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn when_the_inbox_owner_dies_another_instance_finishes_the_folder() {
    let c = Cluster::start("");
    wait_for(
        "an instance watching the inbox",
        Duration::from_secs(10),
        || c.inbox_holder().is_some(),
    );
    let first = c.inbox_holder().unwrap();
    let names = c.drop_files(40, "owner");
    // Let it take some, then kill it mid-folder.
    let accepted = c.home.file("inbox/police/accepted");
    wait_for("some files accepted", Duration::from_secs(30), || {
        support::names_in(&accepted).len() >= 4
    });
    c.kill(first);
    let killed_at = Instant::now();
    wait_for(
        "another instance takes the inbox",
        Duration::from_secs(15),
        || c.inbox_holder().is_some_and(|h| h != first),
    );
    println!(
        "inbox owner {first} killed; instance {} took over after {:?}",
        c.inbox_holder().unwrap(),
        killed_at.elapsed()
    );
    let acknowledged = c.accepted(&names, Duration::from_secs(60));
    let processing = c.home.file("inbox/police/.processing");
    assert!(
        support::names_in(&processing).is_empty(),
        "left in .processing/"
    );
    let dups = c.assert_all_consumed(&acknowledged, "inbox owner killed");
    assert!(
        dups <= 2,
        "at most the files in flight at the kill are queued twice: {dups}"
    );
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn a_certificate_revoked_on_one_instance_is_refused_by_the_others_within_two_seconds() {
    let c = Cluster::start("");
    let files = c.sealed(3, "revoke");
    let (status, body) = c.deliver(&c.instance_url(1), &files[0], Duration::from_secs(10));
    assert_eq!(status, 201, "{body}");
    let acknowledged: BTreeMap<String, String> = [receipt_of(&body)].into_iter().collect();
    let (_, cert) = c.home.signer("police");
    c.gateway_ok(
        0,
        &[
            "agency",
            "cert",
            "revoke",
            "police",
            &cert.display().to_string(),
        ],
    );
    let revoked_at = Instant::now();
    for (i, file) in [(1, &files[1]), (2, &files[2])] {
        loop {
            let (status, body) = upload(&c.home.tls_cert(), &c.instance_url(i), &c.token, file);
            if body["code"] == "certificate_revoked" {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(2),
                "instance {i} still accepts the revoked certificate: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!(
        "revocation honoured by instances 1 and 2 after {:?}",
        revoked_at.elapsed()
    );
    // And every other instance was told through the ledger (PostgreSQL NOTIFY), which is what
    // reaches hosts whose shared keys/ gives no file notifications (NFS).
    for i in 1..INSTANCES {
        wait_for(
            &format!("instance {i} told of the revocation"),
            Duration::from_secs(2),
            || {
                c.log(i).lines().any(|l| {
                    l.contains("admin change announced on the ledger")
                        && l.contains("agency cert revoke")
                })
            },
        );
    }
    let dups = c.assert_all_consumed(&acknowledged, "revocation");
    assert_eq!(dups, 0);
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn a_request_asked_on_one_instance_wakes_the_agents_poll_waiting_on_another() {
    let c = Cluster::start("");
    let poll = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(c.home.tls_cert())
        .args(["-H", &format!("Authorization: Bearer {}", c.token)])
        .arg(format!(
            "https://127.0.0.1:{}/v1/requests/next?wait=30",
            c.tls_port(2)
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = format!("http://127.0.0.1:{}/metrics", c.health_port(2));
    wait_for(
        "the agent's poll waiting on instance 2",
        Duration::from_secs(10),
        || {
            reqwest::blocking::get(&metrics)
                .and_then(|r| r.text())
                .is_ok_and(|t| t.contains("gateway_request_polls 1"))
        },
    );
    // The command line, with instance 0's configuration: another process, another instance.
    let out = c.gateway_ok(0, &["request", "ask", "police", "incidents", "--json"]);
    let asked_at = Instant::now();
    let asked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = poll.wait_with_output().unwrap();
    let took = asked_at.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{body}\n{}", c.logs());
    let taken: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(taken["request_id"], asked["request_id"]);
    assert_eq!(taken["state"], "taken");
    // Without the announcement the poll would find it at its next look, 15 s apart.
    assert!(
        took < Duration::from_secs(10),
        "the poll answered {took:?} after the request was asked: not woken by the announcement"
    );
    println!("the poll on instance 2 answered {took:?} after instance 0's command line asked");
}

/// `gateway audit verify --json` run with instance `i`'s configuration: exit code and verdict.
fn audit_verify(c: &Cluster, i: usize) -> (Option<i32>, serde_json::Value) {
    let out = c.gateway(i, &["audit", "verify", "--json"]);
    let verdict = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), verdict)
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn every_instance_audits_into_one_verifiable_log() {
    let c = Cluster::start("");
    let mut acknowledged = BTreeMap::new();
    for (i, f) in c.sealed(6, "audit").iter().enumerate() {
        let (status, body) = c.deliver(&c.instance_url(i % INSTANCES), f, Duration::from_secs(30));
        assert_eq!(status, 201, "{body}");
        acknowledged.extend([receipt_of(&body)]);
    }
    assert_eq!(c.assert_all_consumed(&acknowledged, "audit"), 0);
    c.gateway_ok(2, &["agency", "token", "issue", "housing"]);
    // Any instance's configuration verifies every chain: three servers' and the admin one.
    let (code, verdict) = audit_verify(&c, 0);
    assert_eq!(code, Some(0), "{verdict}");
    assert_eq!(verdict["verdict"], "intact", "{verdict}");
    assert_eq!(verdict["chains"], 4, "{verdict}");
    assert!(verdict["records"].as_u64().unwrap() >= 7, "{verdict}");
    // An edit in the database is found, and named.
    psql(
        &c.db_url,
        "UPDATE audit_records SET record = replace(record, 'forwarded', 'rejected')
         WHERE (chain, seq) = (SELECT chain, seq FROM audit_records
                               WHERE record LIKE '%forwarded%' LIMIT 1)",
    );
    let (code, verdict) = audit_verify(&c, 1);
    assert_eq!(code, Some(1), "{verdict}");
    assert_eq!(verdict["verdict"], "broken", "{verdict}");
    assert!(
        verdict["why"].as_str().unwrap().contains("changed"),
        "{verdict}"
    );
}

/// A failed sign-in through HAProxy from the loopback address `from` (HAProxy itself connects
/// from 127.0.0.2), with the sign-in page's cookie and token, as a browser would.
fn wrong_sign_in_from(c: &Cluster, from: &str) -> u16 {
    let jar = c.home.file(&format!("cookies-{from}"));
    let jar = jar.to_str().unwrap();
    let url = format!("https://127.0.0.1:{}/sign-in", c.lb_port);
    let page = support::curl(&c.home, &["--interface", from, "-c", jar, &url]);
    assert_eq!(page.status, 200, "the sign-in page from {from}");
    let html = String::from_utf8_lossy(&page.body).into_owned();
    let needle = "name=\"csrf\" value=\"";
    let at = html.find(needle).expect("a csrf field") + needle.len();
    let csrf = format!("csrf={}", &html[at..at + html[at..].find('"').unwrap()]);
    let args = [
        "--interface",
        from,
        "-b",
        jar,
        "-c",
        jar,
        "--data-urlencode",
        &csrf,
    ];
    let mut args = args.to_vec();
    args.extend([
        "--data-urlencode",
        "name=nobody",
        "--data-urlencode",
        "password=x",
        &url,
    ]);
    support::curl(&c.home, &args).status
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn the_client_address_crosses_haproxy_and_nobody_else_may_claim_one() {
    let c = Cluster::start("");
    for from in ["127.0.0.7", "127.0.0.8"] {
        assert_eq!(wrong_sign_in_from(&c, from), 401);
    }
    // The audit records name each person's address, not HAProxy's (127.0.0.2).
    let out = Command::new("psql")
        .args([c.db_url.as_str(), "-Atc"])
        .arg("SELECT record FROM audit_records WHERE record LIKE '%sign in refused%'")
        .output()
        .unwrap();
    let addresses: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            r["details"]["address"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        addresses,
        BTreeSet::from(["127.0.0.7".to_owned(), "127.0.0.8".to_owned()])
    );
    // From the balancer's address, a connection without a PROXY header is dropped before TLS,
    // and the instance says why.
    let direct = format!("https://127.0.0.1:{}/sign-in", c.tls_port(0));
    let bypass = support::curl(&c.home, &["--interface", "127.0.0.2", &direct]);
    assert_eq!(bypass.status, 0, "no HTTP answer without the header");
    wait_for("the drop logged", Duration::from_secs(5), || {
        c.log(0).contains("connection from a load balancer dropped")
    });
    // Any other address still reaches an instance directly, with no header.
    assert_eq!(support::curl(&c.home, &[&direct]).status, 200);
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn while_rabbitmq_is_down_instances_are_not_ready_and_refuse_with_retry_after() {
    let c = Cluster::start("");
    // With the servers up, check-config says so.
    let out = c.gateway_ok(0, &["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok    ledger") && text.contains("ok    queue"),
        "{text}"
    );
    // scripts/cluster-servers sets commit_delay as docs/scale-out.md advises; without it,
    // check-config says what to change.
    assert!(!text.contains("advice"), "{text}");
    let db = c.db_url.rsplit_once('/').unwrap().1;
    psql(
        &c.db_url,
        &format!("ALTER DATABASE {db} SET commit_delay = 0"),
    );
    let out = c.gateway_ok(0, &["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok    ledger") && text.contains("advice: commit_delay is 0"),
        "{text}"
    );
    let files = c.sealed(2, "down");
    let dir = cluster_dir().display().to_string();
    servers(&["stop-rabbitmq", &dir]);
    let readyz = format!("http://127.0.0.1:{}/readyz", c.health_port(0));
    wait_for("instance 0 not ready", Duration::from_secs(10), || {
        reqwest::blocking::get(&readyz).is_ok_and(|r| r.status().as_u16() == 503)
    });
    let why = reqwest::blocking::get(&readyz).unwrap().text().unwrap();
    assert!(why.contains("RabbitMQ"), "/readyz says why: {why}");
    let metrics = format!("http://127.0.0.1:{}/metrics", c.health_port(0));
    let part = |text: &str, part: &str| {
        let line = format!("gateway_part_ready{{part=\"{part}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(str::to_owned)
    };
    let text = reqwest::blocking::get(&metrics).unwrap().text().unwrap();
    assert_eq!(
        (
            part(&text, "queue").as_deref(),
            part(&text, "ledger").as_deref()
        ),
        (Some("0"), Some("1")),
        "/metrics says which part is down: {text}"
    );
    let token = format!("Authorization: Bearer {}", c.token);
    let refused = support::curl(
        &c.home,
        &[
            "--data-binary",
            &format!("@{}", files[0].display()),
            "-H",
            &token,
            &c.instance_url(0),
        ],
    );
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert_eq!(refused.json()["code"], "queue_unavailable");
    assert!(
        refused.header("retry-after").is_some(),
        "{}",
        refused.headers
    );
    servers(&["start-rabbitmq", &dir]);
    for i in 0..INSTANCES {
        c.wait_ready(i);
    }
    let text = reqwest::blocking::get(&metrics).unwrap().text().unwrap();
    assert_eq!(part(&text, "queue").as_deref(), Some("1"), "{text}");
    // The refused message goes through once the broker is back; nothing was kept of it.
    let mut acknowledged = BTreeMap::new();
    for f in &files {
        let (status, body) = c.deliver(&c.lb_url(), f, Duration::from_secs(30));
        assert_eq!(status, 201, "{body}");
        acknowledged.extend([receipt_of(&body)]);
    }
    assert_eq!(c.assert_all_consumed(&acknowledged, "broker outage"), 0);
}

mod ledger_contract {
    //! The PostgreSQL ledger as two instances see it, through the `Store` trait directly.

    use std::time::Duration;

    use gateway::message::{Channel, MessageId, Receipt, timestamp};
    use gateway::rejection::{Code, Located, Rejection};
    use gateway::store::{Begin, NewMessage, PendingStep, PostgresStore, Status, Step, Store};

    use super::psql;

    fn message(agency_message_id: &str, sha256: &str) -> NewMessage {
        NewMessage {
            id: MessageId::new(),
            agency: "police".into(),
            agency_message_id: Some(agency_message_id.into()),
            sha256: sha256.into(),
            size: 1234,
            channel: Channel::Https,
            received_at: timestamp::now(),
            history: vec![PendingStep::now(Step::Validated, Some("schema x"))],
        }
    }

    fn receipt(m: &NewMessage) -> Receipt {
        Receipt {
            gateway_message_id: m.id.clone(),
            agency: m.agency.clone(),
            agency_message_id: m.agency_message_id.clone(),
            sha256: m.sha256.clone(),
            schema_id: "x".into(),
            forwarded_at: timestamp::now(),
            queue: "amqp/t".into(),
        }
    }

    fn steps_of(store: &PostgresStore, id: &MessageId) -> Vec<(Step, Option<String>)> {
        let steps = store.steps(id).unwrap();
        assert!(
            steps.windows(2).all(|w| w[0].at <= w[1].at),
            "steps out of time order: {steps:?}"
        );
        steps.into_iter().map(|s| (s.step, s.detail)).collect()
    }

    /// The schema as version 1 of the migrations left it (steps in a table of their own).
    const SCHEMA_V1: &str = "
        CREATE TABLE gateway_schema (version INTEGER NOT NULL);
        INSERT INTO gateway_schema VALUES (1);
        CREATE TABLE messages (
            id TEXT PRIMARY KEY, agency TEXT NOT NULL, agency_message_id TEXT,
            sha256 TEXT NOT NULL, size BIGINT NOT NULL CHECK (size >= 0), channel TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('in_progress', 'forwarded', 'rejected')),
            dedupe_key TEXT UNIQUE, rejection_code TEXT, rejection_detail TEXT,
            receipt_json TEXT, received_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ, owner TEXT);
        CREATE INDEX messages_in_progress ON messages (owner) WHERE status = 'in_progress';
        CREATE INDEX messages_agency_message ON messages (agency, agency_message_id);
        CREATE INDEX messages_received_at ON messages (received_at);
        CREATE TABLE steps (
            seq BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL REFERENCES messages (id),
            step TEXT NOT NULL, detail TEXT, at TIMESTAMPTZ NOT NULL);
        CREATE INDEX steps_message ON steps (message_id, seq);
        CREATE TABLE instances (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            started_at TIMESTAMPTZ NOT NULL, lease_until TIMESTAMPTZ NOT NULL);
        CREATE TABLE jobs (
            name TEXT PRIMARY KEY, instance TEXT NOT NULL, since TIMESTAMPTZ NOT NULL);";

    #[test]
    #[ignore = "needs the servers of scripts/test-cluster"]
    fn a_version_1_ledger_keeps_its_steps_when_migrated() {
        let (url, _) = super::fresh_names();
        psql(&url, SCHEMA_V1);
        let id = MessageId::new();
        psql(
            &url,
            &format!(
                "INSERT INTO messages (id, agency, sha256, size, channel, status, dedupe_key,
                     received_at, updated_at, owner)
                 VALUES ('{id}', 'police', '{sha}', 1, 'https', 'in_progress', 'k',
                     '2026-12-01T10:00:00Z', now(), 'gone');
                 INSERT INTO steps (message_id, step, detail, at) VALUES
                     ('{id}', 'received', NULL, '2026-12-01T10:00:00Z'),
                     ('{id}', 'opened', 'age1x', '2026-12-01T10:00:00.25Z'),
                     ('{id}', 'validated', 'schema x', '2026-12-01T11:00:01.000001+01:00');",
                sha = "ab".repeat(32)
            ),
        );
        let store = PostgresStore::open(&url, 2, Duration::from_secs(60)).unwrap();
        let steps = store.steps(&id).unwrap();
        let at: Vec<String> = steps.iter().map(|s| timestamp::format(&s.at)).collect();
        assert_eq!(
            at,
            [
                "2026-12-01T10:00:00.000000Z",
                "2026-12-01T10:00:00.250000Z",
                "2026-12-01T10:00:01.000001Z"
            ]
        );
        assert_eq!(
            steps
                .into_iter()
                .map(|s| (s.step, s.detail))
                .collect::<Vec<_>>(),
            [
                (Step::Received, None),
                (Step::Opened, Some("age1x".into())),
                (Step::Validated, Some("schema x".into())),
            ]
        );
        // The migrated record goes on as any other: the settling instance closes it.
        assert!(store.abandon(&id, "owner gone").unwrap());
        assert_eq!(steps_of(&store, &id).len(), 4);
        // The old table is gone; a second start finds nothing to migrate.
        drop(store);
        let again = PostgresStore::open(&url, 2, Duration::from_secs(60)).unwrap();
        assert_eq!(again.steps(&id).unwrap().len(), 4);
        let query = |url: &str| {
            let out = std::process::Command::new("psql")
                .args([
                    url,
                    "-tAc",
                    "SELECT to_regclass('steps') IS NULL, version FROM gateway_schema",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        // At the version a new ledger starts at: every migration ran, the old table is gone.
        let (fresh_url, _) = super::fresh_names();
        drop(PostgresStore::open(&fresh_url, 2, Duration::from_secs(60)).unwrap());
        assert_eq!(query(&url), query(&fresh_url));
        assert!(query(&url).starts_with("t|"), "{}", query(&url));
    }

    #[test]
    #[ignore = "needs the servers of scripts/test-cluster"]
    fn two_writers_of_one_audit_chain_keep_it_intact() {
        use gateway::audit::{AuditLog, Verdict};
        let (url, _) = super::fresh_names();
        // SAFETY: the cluster tests run one at a time (`--test-threads=1`) and nothing else
        // in this process reads the environment meanwhile.
        unsafe { std::env::set_var("TEST_AUDIT_URL", &url) };
        let home =
            super::Home::new("[ledger]\nbackend = \"postgres\"\nurl_env = \"TEST_AUDIT_URL\"\n");
        let config = gateway::config::Config::load(Some(&home.config())).unwrap();
        // Each writer remembers the head it left; the other moves it, so every append after
        // the first finds its remembered head stale and must chain onto the real one.
        let a = AuditLog::open_for(&config, Some("two-writers")).unwrap();
        let b = AuditLog::open_for(&config, Some("two-writers")).unwrap();
        let mut seqs = Vec::new();
        for i in 0..3 {
            for (name, log) in [("a", &a), ("b", &b)] {
                let subject = format!("{name}{i}");
                let rec = log
                    .append("admin", name, "test", &subject, serde_json::json!({}))
                    .unwrap();
                seqs.push(rec.seq);
            }
        }
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        for _ in 0..2 {
            seqs.push(
                a.append("admin", "a", "test", "again", serde_json::json!({}))
                    .unwrap()
                    .seq,
            );
        }
        assert_eq!(seqs[6..], [7, 8]);
        match b.verify().unwrap() {
            // The chain above, and `keys init`'s record in `admin`.
            Verdict::IntactChains { records, chains } => assert_eq!((records, chains), (9, 2)),
            other => panic!("expected intact chains, got {other:?}"),
        }
    }

    #[test]
    #[ignore = "needs the servers of scripts/test-cluster"]
    fn two_instances_share_dedupe_leases_and_jobs() {
        let (url, _) = super::fresh_names();
        // Long leases: the heartbeats (every third of it) never run during the test, so the
        // leases it expires by hand stay expired until it restores them.
        let lease = Duration::from_secs(60);
        let a = PostgresStore::open(&url, 4, lease).unwrap();
        let b = PostgresStore::open(&url, 4, lease).unwrap();
        let sha = "ab".repeat(32);

        // A registers; B, with the same message, is told it is in progress, then gets A's
        // outcome once A finished.
        let m = message("C-1", &sha);
        assert_eq!(a.begin(&m).unwrap(), Begin::New(m.id.clone()));
        let resend = message("C-1", &sha);
        assert!(matches!(b.begin(&resend).unwrap(), Begin::InProgress(r) if r.id == m.id));
        a.finish_forwarded(&m.id, &receipt(&m)).unwrap();
        match b.begin(&resend).unwrap() {
            Begin::Duplicate(r) => {
                assert_eq!(r.id, m.id);
                assert_eq!(r.receipt().unwrap().unwrap().gateway_message_id, m.id);
            }
            other => panic!("expected the original receipt, got {other:?}"),
        }
        // Same agency message id, other content: a conflict, on either instance.
        assert!(matches!(
            b.begin(&message("C-1", &"cd".repeat(32))).unwrap(),
            Begin::Conflict(_)
        ));
        // Steps are kept in order, with their details.
        assert_eq!(
            steps_of(&b, &m.id),
            [
                (Step::Received, None),
                (Step::Validated, Some("schema x".into())),
                (Step::Forwarded, Some("amqp/t".into())),
            ]
        );

        // A record of a live instance is not abandoned; once its lease has run out, it is,
        // and the other instance settles it, releasing the key.
        let n = message("C-2", &sha);
        assert!(matches!(a.begin(&n).unwrap(), Begin::New(_)));
        let rec = b.get(&n.id).unwrap().unwrap();
        assert!(a.is_mine(&rec) && !b.is_mine(&rec));
        assert!(!b.is_abandoned(&rec), "A's lease is alive");
        psql(
            &url,
            &format!(
                "UPDATE instances SET lease_until = now() - interval '1 second' WHERE id = '{}'",
                a.instance()
            ),
        );
        assert!(b.is_abandoned(&rec), "A's lease ran out");
        a.record_step(&n.id, Step::Opened, Some("late")).unwrap();
        assert!(b.abandon(&n.id, "cut off").unwrap());
        assert_eq!(b.get(&n.id).unwrap().unwrap().status, Status::Rejected);
        assert_eq!(
            steps_of(&b, &n.id)[2..],
            [
                (Step::Opened, Some("late".into())),
                (Step::Rejected, Some("interrupted".into())),
            ]
        );
        assert!(matches!(
            b.begin(&message("C-2", &sha)).unwrap(),
            Begin::New(_)
        ));

        // A retryable refusal releases the key; a verdict keeps it.
        let q = message("C-3", &sha);
        assert!(matches!(a.begin(&q).unwrap(), Begin::New(_)));
        a.finish_rejected(&q.id, Code::QueueUnavailable, "queue down")
            .unwrap();
        assert_eq!(
            steps_of(&a, &q.id).last().unwrap(),
            &(Step::Rejected, Some("queue_unavailable".into()))
        );
        // A refusal before registration is recorded with all its steps and violations.
        let r = message("C-4", &sha);
        let mut bad = Rejection::new(Code::SchemaInvalid, "bad");
        bad.violations = vec![Located {
            code: "value_invalid".into(),
            message: "not a postcode".into(),
            line: 4,
            column: 9,
            path: "/IncidentBatch/Incident/LocationPostcode".into(),
        }];
        let rec = a.record_unregistered_rejection(&r, &bad).unwrap();
        assert_eq!(rec.status, Status::Rejected);
        assert_eq!(
            b.violations(&r.id).unwrap().unwrap().violations,
            bad.violations
        );
        assert_eq!(
            steps_of(&b, &r.id),
            [
                (Step::Received, None),
                (Step::Validated, Some("schema x".into())),
                (Step::Rejected, Some("schema_invalid".into())),
            ]
        );
        assert!(matches!(
            b.begin(&message("C-3", &sha)).unwrap(),
            Begin::New(_)
        ));

        // One job, one holder at a time; it moves when the holder's lease runs out. (A's lease
        // is alive again first, as its heartbeat would make it.)
        psql(
            &url,
            &format!(
                "UPDATE instances SET lease_until = now() + interval '1 minute' WHERE id = '{}'",
                a.instance()
            ),
        );
        assert!(a.hold("inbox").unwrap());
        assert!(!b.hold("inbox").unwrap());
        assert!(a.hold("inbox").unwrap(), "the holder keeps it");
        psql(
            &url,
            &format!(
                "UPDATE instances SET lease_until = now() - interval '1 second' WHERE id = '{}'",
                a.instance()
            ),
        );
        assert!(
            b.hold("inbox").unwrap(),
            "taken over once A's lease ran out"
        );
        assert!(!a.hold("inbox").unwrap());
        // A clean stop gives the lease up at once.
        drop(b);
        assert!(
            a.hold("inbox").unwrap(),
            "B stopped: A takes the job without waiting"
        );
    }
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn a_queue_deleted_under_the_gateways_is_declared_again_and_nothing_is_lost() {
    let c = Cluster::start("");
    let files = c.sealed(3, "gone");
    let dir = cluster_dir().display().to_string();
    servers(&["rabbit-cli", &dir, "rabbitmqctl", "delete_queue", &c.queue]);
    // The publication is returned (mandatory, no route): refused as retryable, not lost...
    let (status, body) = upload(&c.home.tls_cert(), &c.instance_url(0), &c.token, &files[0]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "queue_unavailable", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("could not route"),
        "{body}"
    );
    // ...and the instance declares the queue again, so the resend and the others go through.
    let mut acknowledged = BTreeMap::new();
    for f in &files {
        let (status, body) = c.deliver(&c.instance_url(0), f, Duration::from_secs(30));
        assert_eq!(status, 201, "{body}");
        acknowledged.extend([receipt_of(&body)]);
    }
    assert_eq!(c.assert_all_consumed(&acknowledged, "queue deleted"), 0);
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn payloads_reencrypted_to_the_hub_are_decrypted_and_verified_by_the_consumer() {
    // The hub's own identity, made with the stock tool.
    let made = Command::new("age-keygen")
        .output()
        .expect("age-keygen (from the age package)");
    assert!(made.status.success());
    let identity = String::from_utf8(made.stdout).unwrap();
    let recipient = identity
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), &identity).unwrap();
    let c = Cluster::start_with(
        "claim_check_bytes = 4096\n",
        &format!("hub_recipients = [{recipient:?}]\n"),
    );
    let small = c.sealed(2, "enc");
    let mut acknowledged = BTreeMap::new();
    for f in &small {
        let (status, body) = c.deliver(&c.lb_url(), f, Duration::from_secs(30));
        assert_eq!(status, 201, "{body}");
        acknowledged.extend([receipt_of(&body)]);
    }
    let consumed = c.consume_with(&["--identity", &key.path().display().to_string()]);
    assert_eq!(consumed.len(), 2, "{consumed:?}");
    for m in &consumed {
        assert_eq!(m["ok"], true, "{m}");
        assert_eq!(m["decrypted"], true, "{m}");
        let id = m["id"].as_str().unwrap();
        assert_eq!(
            m["actual_sha256"].as_str(),
            acknowledged.get(id).map(String::as_str),
            "the decrypted XML is the one the receipt names"
        );
    }
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn client_certificates_reach_the_gateways_through_haproxy() {
    let c = Cluster::start("");
    let agency_toml = c.home.file("keys/agencies/police/agency.toml");
    let text = std::fs::read_to_string(&agency_toml).unwrap();
    let required = text.replace(
        "require_client_certificate = false",
        "require_client_certificate = true",
    );
    assert!(
        required.contains("require_client_certificate = true"),
        "{text}"
    );
    std::fs::write(&agency_toml, required).unwrap();
    let files = c.sealed(2, "mtls");
    let probes = c.sealed(1, "probe");
    let token = format!("Authorization: Bearer {}", c.token);
    // A probe an instance took before it saw the change is acknowledged like any message.
    let mut acknowledged = BTreeMap::new();
    wait_for(
        "every instance requires the certificate",
        Duration::from_secs(5),
        || {
            (0..INSTANCES).all(|i| {
                let r = support::curl(
                    &c.home,
                    &[
                        "--data-binary",
                        &format!("@{}", probes[0].display()),
                        "-H",
                        &token,
                        &c.instance_url(i),
                    ],
                );
                if r.status == 201 {
                    acknowledged.extend([receipt_of(&r.json())]);
                }
                r.status == 401
            })
        },
    );
    // Through the balancer: TLS passes through, so the gateway sees the agency's certificate.
    let (key, cert) = c.home.signer("police");
    for f in &files {
        let r = support::curl(
            &c.home,
            &[
                "--cert",
                &cert.display().to_string(),
                "--key",
                &key.display().to_string(),
                "--data-binary",
                &format!("@{}", f.display()),
                "-H",
                &token,
                &c.lb_url(),
            ],
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        acknowledged.extend([receipt_of(&r.json())]);
    }
    assert_eq!(
        c.assert_all_consumed(&acknowledged, "client certificates"),
        0
    );
}

impl Cluster {
    /// The instance whose log last says it opened the mailbox, if alive and still reading it.
    fn mail_reader(&self) -> Option<usize> {
        let alive = self.servers.lock().unwrap();
        (0..INSTANCES)
            .filter(|i| alive[*i].is_some())
            .filter_map(|i| {
                let log = self.log(i);
                let at = log.rfind("mailbox open")?;
                let stopped =
                    log[at..].contains("reads the mailbox now") || log[at..].contains("stopped");
                (!stopped).then_some(i)
            })
            .next()
    }
}

#[test]
#[ignore = "needs the servers of scripts/test-cluster"]
fn when_the_mailbox_reader_dies_another_instance_finishes_the_mailbox() {
    use support::mail;
    const N: usize = 20;
    mail::empty_all();
    let c = Cluster::start(&mail::section(""));
    let readers = || {
        (0..INSTANCES)
            .filter(|i| c.log(*i).contains("mailbox open"))
            .count()
    };
    wait_for(
        "an instance reading the mailbox",
        Duration::from_secs(15),
        || c.mail_reader().is_some(),
    );
    assert_eq!(readers(), 1, "one instance at a time reads the mailbox");
    let first = c.mail_reader().unwrap();
    let sealed = c.sealed(N, "mail");
    for (i, f) in sealed.iter().enumerate() {
        mail::send(
            "police",
            &mail::compose("police", &format!("extract {i}"), &[f], &[]),
        );
    }
    wait_for("some mail processed", Duration::from_secs(60), || {
        mail::count("hub", "Processed") >= 3
    });
    c.kill(first);
    let killed_at = Instant::now();
    wait_for(
        "another instance reads the mailbox",
        Duration::from_secs(20),
        || c.mail_reader().is_some_and(|r| r != first),
    );
    println!(
        "mailbox reader {first} killed; instance {} took over after {:?}",
        c.mail_reader().unwrap(),
        killed_at.elapsed()
    );
    wait_for("every mail processed", Duration::from_secs(90), || {
        mail::count("hub", "INBOX") == 0 && mail::count("hub", "Processed") == N
    });
    // Each mail moved to Processed had its attachment acknowledged: all of them must be in
    // RabbitMQ (the answers' receipts name them), at most the one in flight twice.
    let mut acknowledged = BTreeMap::new();
    for raw in mail::answers("police", N) {
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        use mail_parser::MimeHeaders;
        for a in m.attachments() {
            if a.attachment_name()
                .is_some_and(|n| n.ends_with(".receipt.json"))
            {
                let r: serde_json::Value = serde_json::from_slice(a.contents()).unwrap();
                acknowledged.insert(
                    r["gateway_message_id"].as_str().unwrap().to_owned(),
                    r["sha256"].as_str().unwrap().to_owned(),
                );
            }
        }
    }
    assert!(
        acknowledged.len() >= N,
        "an answer with a receipt for every mail: {}",
        acknowledged.len()
    );
    let dups = c.assert_all_consumed(&acknowledged, "mailbox reader killed");
    assert!(
        dups <= 1,
        "at most the attachment in flight at the kill is queued twice: {dups}"
    );
}
