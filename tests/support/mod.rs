//! A gateway home in a temporary folder (config, dev keys, outbox, state) and the stock
//! tools (`openssl cms`, `age`) to make payloads for it.

#![allow(dead_code)]

pub mod mail;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// The repository's `schemas/`.
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// A sample message of a seed agency.
pub fn sample(agency: &str, name: &str) -> PathBuf {
    schemas_dir().join(agency).join("samples").join(name)
}

/// Runs a stock tool and insists it succeeds.
pub fn tool(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (`.ci/run` installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A self-signed EC P-256 certificate for `subject` (e.g. `/CN=Stranger`), valid for `days`,
/// written to `cert` with its unencrypted key at `key`.
pub fn self_signed(key: &Path, cert: &Path, subject: &str, days: u32) {
    let days = days.to_string();
    tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-days",
            &days,
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
}

/// Runs a shell pipeline and insists it succeeds.
pub fn sh(script: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a shell command and returns its stdout (for diagnostics in assertion messages).
pub fn sh_out(script: &str) -> String {
    let out = Command::new("bash").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One gateway installation in a temporary folder.
pub struct Home {
    pub dir: tempfile::TempDir,
}

/// The result of `gateway check --json`.
pub struct Checked {
    pub code: i32,
    pub json: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

impl Checked {
    /// The single file's result.
    pub fn result(&self) -> &serde_json::Value {
        &self.json["results"][0]
    }

    /// The single file's rejection code, or "" when accepted.
    pub fn code_of_first(&self) -> String {
        self.result()["rejection"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Home {
    /// A new home with `gateway.toml` (plus `extra` TOML) and a development key set.
    pub fn new(extra: &str) -> Home {
        let mut dir = tempfile::tempdir().unwrap();
        // KEEP_HOMES=1 keeps every home (logs, ledger, queue) to look at after a failure.
        dir.disable_cleanup(std::env::var_os("KEEP_HOMES").is_some());
        // Servers of tests running at once cannot share the default metrics port.
        let metrics = if extra.contains("[metrics]") {
            ""
        } else {
            "\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
        };
        let config = format!(
            "[paths]\nschemas = {:?}\n{extra}{metrics}",
            schemas_dir().display().to_string()
        );
        std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
        let home = Home { dir };
        let out = home.gateway(&["keys", "init"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("gateway.toml")
    }

    /// Runs `gateway ARGS --config <home>/gateway.toml`.
    pub fn gateway(&self, args: &[&str]) -> Output {
        Command::cargo_bin("gateway")
            .unwrap()
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env_remove("GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The recipient agencies seal to.
    pub fn recipient(&self) -> String {
        let out = self.gateway(&["recipient"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The development signing key and certificate of a seed agency.
    pub fn signer(&self, agency: &str) -> (PathBuf, PathBuf) {
        let d = self.path().join("keys/dev/agencies");
        (
            d.join(format!("{agency}.key")),
            d.join(format!("{agency}.crt")),
        )
    }

    /// A self-signed certificate `<name>.crt` and key `<name>.key` in the home (see
    /// [`self_signed`]).
    pub fn self_signed(&self, name: &str, subject: &str, days: u32) -> (PathBuf, PathBuf) {
        let (key, cert) = (
            self.file(&format!("{name}.key")),
            self.file(&format!("{name}.crt")),
        );
        self_signed(&key, &cert, subject, days);
        (key, cert)
    }

    /// The queue's metadata of message `id` (`outbox/integration/new/<id>.json`).
    pub fn queue_metadata(&self, id: &str) -> serde_json::Value {
        let path = self
            .path()
            .join("outbox/integration/new")
            .join(format!("{id}.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    /// A scratch file path in the home.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Signs `xml` with `openssl cms` (extra flags e.g. `-stream`) and encrypts it with `age`.
    pub fn seal_stock(
        &self,
        xml: &Path,
        key: &Path,
        cert: &Path,
        cms_flags: &str,
        out: &str,
    ) -> PathBuf {
        let out = self.file(out);
        sh(&format!(
            "openssl cms -sign -binary -nodetach -outform DER -md sha256 {cms_flags} -in '{}' -signer '{}' -inkey '{}' | age -r '{}' > '{}'",
            xml.display(),
            cert.display(),
            key.display(),
            self.recipient(),
            out.display()
        ));
        out
    }

    /// Seals with a seed agency's development key and the stock tools.
    pub fn seal_as(&self, agency: &str, xml: &Path, out: &str) -> PathBuf {
        let (key, cert) = self.signer(agency);
        self.seal_stock(xml, &key, &cert, "", out)
    }

    /// `gateway check --json --agency AGENCY FILES... EXTRA...`
    pub fn check(&self, agency: &str, files: &[&Path], extra: &[&str]) -> Checked {
        let mut args = vec!["check", "--json", "--agency", agency];
        args.extend_from_slice(extra);
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(files.iter().map(String::as_str));
        let out = self.gateway(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        Checked {
            code: out.status.code().unwrap_or(-1),
            json,
            stdout,
            stderr,
        }
    }
}

/// Polls `done` every 50 ms until it holds; fails the test after `limit`, naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names in `dir` (none when it does not exist).
pub fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (up to 30 s) until the log file `log` contains `needle`; returns the log.
fn wait_for_log_in(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the server log {} never said {needle:?}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `gateway serve`: stopped with SIGTERM on drop (and killed if it does not stop).
pub struct Server {
    child: std::process::Child,
    pub port: u16,
    /// The rest of its standard output (the metrics address comes after the HTTPS one).
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    /// Where its log goes, if to a file.
    log: Option<PathBuf>,
}

impl Server {
    /// `http://127.0.0.1:PORT` of the metrics listener (waits up to 10 s for serve to print it).
    pub fn metrics_url(&self, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.stdout.lock().unwrap().clone();
            if let Some(at) = out
                .lines()
                .find_map(|l| l.strip_prefix("metrics on http://"))
                .and_then(|l| l.strip_suffix("/metrics"))
            {
                return format!("http://{at}{path}");
            }
            assert!(
                Instant::now() < deadline,
                "serve printed no metrics address: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The log so far ("" for a server whose log is not kept in a file).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    /// Waits (up to 30 s) until the log contains `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let log = self.log.as_ref().expect("a server started with a log file");
        wait_for_log_in(log, needle)
    }

    /// Sends a signal (`HUP`, `TERM`, `KILL`...) to the server.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Sends SIGTERM and waits (up to 30 s, then fails the test); returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        match self.wait(Duration::from_secs(30)) {
            Some(status) => status.code(),
            None => {
                self.kill();
                panic!("serve did not stop on SIGTERM:\n{}", self.log());
            }
        }
    }

    /// SIGKILL: no handler runs, nothing is flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// The exit status, once the server has exited within `limit`.
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if self.wait(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

impl Home {
    /// Starts `gateway serve` on an ephemeral port (the home's config must say
    /// `listen = "127.0.0.1:0"`, which [`Home::with_server_config`] does).
    pub fn serve(&self) -> Server {
        self.serve_with(Stdio::inherit(), None)
    }

    /// Like [`Home::serve`], with the server's log written to `<home>/serve.log`.
    pub fn serve_logged(&self) -> Server {
        let log = self.log_path();
        self.serve_with(Stdio::from(std::fs::File::create(&log).unwrap()), Some(log))
    }

    /// Like [`Home::serve_logged`] with the log in `<home>/<log>`, run as an operator runs it:
    /// in the home, with the relative path `--config gateway.toml` (the watched folders then
    /// report absolute paths of their own).
    pub fn serve_from_home(&self, log: &str) -> Server {
        let log = self.file(log);
        let mut cmd = Command::cargo_bin("gateway").unwrap();
        cmd.current_dir(self.path())
            .args(["serve", "--config", "gateway.toml"]);
        let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
        self.spawn_server(cmd, stderr, Some(log))
    }

    /// Where [`Home::serve_logged`] writes the log.
    pub fn log_path(&self) -> PathBuf {
        self.path().join("serve.log")
    }

    /// Waits (up to 30 s) until the log of [`Home::serve_logged`] contains `needle`; returns
    /// the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for_log_in(&self.log_path(), needle)
    }

    fn serve_with(&self, stderr: Stdio, log: Option<PathBuf>) -> Server {
        let mut cmd = Command::cargo_bin("gateway").unwrap();
        cmd.args(["serve", "--config"]).arg(self.config());
        self.spawn_server(cmd, stderr, log)
    }

    /// Starts `gateway serve` (logged as [`Home::serve_logged`]) with `env` set and at most
    /// `nofile` open descriptors (`ulimit -n`, soft and hard), when given.
    pub fn serve_limited(&self, nofile: Option<u32>, env: &[(&str, &str)]) -> Server {
        let bin = assert_cmd::cargo::cargo_bin("gateway");
        let mut cmd = Command::new("bash");
        let limit = nofile
            .map(|n| format!("ulimit -n {n} && "))
            .unwrap_or_default();
        cmd.arg("-c")
            .arg(format!("{limit}exec \"$0\" serve --config \"$1\""))
            .arg(bin)
            .arg(self.config());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = self.log_path();
        let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
        self.spawn_server(cmd, stderr, Some(log))
    }

    /// Spawns `cmd` (a `gateway serve`) and reads the HTTPS port from the first line it prints.
    pub fn spawn_server(&self, mut cmd: Command, stderr: Stdio, log: Option<PathBuf>) -> Server {
        use std::io::BufRead;
        let mut child = cmd
            .env_remove("GATEWAY_CONFIG")
            // The tests read the server's info lines.
            .env("GATEWAY_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let log = log.and_then(|l| std::fs::read_to_string(l).ok());
            panic!(
                "serve did not print its address: {line:?}\n{}",
                log.unwrap_or_default()
            );
        };
        let rest = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = rest.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Server {
            child,
            port,
            stdout: rest,
            log,
        }
    }

    /// A home whose server listens on an ephemeral port, with `extra` TOML appended.
    pub fn with_server_config(extra: &str) -> Home {
        Home::new(&format!("[http]\nlisten = \"127.0.0.1:0\"\n{extra}"))
    }

    /// Issues a bearer token for `agency`.
    pub fn token(&self, agency: &str) -> String {
        let out = self.gateway(&["agency", "token", "issue", agency]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Messages in the outbox queue's `new/` (one metadata file each).
    pub fn queued(&self) -> usize {
        std::fs::read_dir(self.path().join("outbox/integration/new"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// A police message with a fresh message id, sealed with the development key to `name`.
    pub fn fresh_police(&self, name: &str) -> PathBuf {
        let out = self.file(name);
        self.seal_fresh(&self.recipient(), &out);
        out
    }

    /// A police message with a fresh message id, sealed with the development key to
    /// `recipient`, to `out`.
    pub fn seal_fresh(&self, recipient: &str, out: &Path) {
        let (key, cert) = self.signer("police");
        seal_fresh_police(&key, &cert, recipient, out);
    }

    /// Police messages with the given message ids, sealed with the development key to
    /// `recipient`: see [`seal_police`].
    pub fn seal_police(&self, recipient: &str, batch: &[(String, PathBuf)]) {
        let (key, cert) = self.signer("police");
        seal_police(&key, &cert, recipient, batch);
    }

    /// Checks with stock `openssl cms -verify` that `sig` (DER) is the receipt key's detached
    /// signature over the file `content`.
    pub fn verify_receipt_signature(&self, sig: &Path, content: &Path) {
        let ca = self.path().join("keys/receipt/receipt.crt");
        tool(
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
                content.to_str().unwrap(),
                "-CAfile",
                ca.to_str().unwrap(),
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        );
    }

    /// The gateway's TLS certificate (trust it with `curl --cacert`).
    pub fn tls_cert(&self) -> PathBuf {
        self.path().join("keys/tls/server.crt")
    }
}

/// What `curl` got.
pub struct Curl {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Curl {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Runs `curl` against the home's server, trusting its TLS certificate.
pub fn curl(home: &Home, args: &[&str]) -> Curl {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let body = dir.path().join("b");
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(home.tls_cert())
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Curl {
        status,
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// `curl -X POST --data-binary @FILE AUTH... URL`.
pub fn post(home: &Home, url: &str, auth: &[&str], file: &Path) -> Curl {
    let data = format!("@{}", file.display());
    let mut args = vec!["-X", "POST", "--data-binary", data.as_str()];
    args.extend_from_slice(auth);
    args.push(url);
    curl(home, &args)
}

/// A 200 KB upload at 20 KB/s (10 s), holding an upload slot meanwhile (retried while the
/// slot is taken); stopped on drop.
pub struct SlowUpload(std::process::Child);

impl Drop for SlowUpload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Home {
    /// Starts a [`SlowUpload`] to `url` with the header `auth`.
    pub fn slow_upload(&self, url: &str, auth: &str) -> SlowUpload {
        let slow_file = self.file("slow.bin");
        std::fs::write(&slow_file, vec![b'x'; 200_000]).unwrap();
        let child = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--limit-rate", "20k", "--cacert"])
            .arg(self.tls_cert())
            // Refused while another upload held the slot: try again (503 is transient).
            .args(["--retry", "20", "--retry-delay", "1"])
            .args(["-H", auth, "--data-binary"])
            .arg(format!("@{}", slow_file.display()))
            .arg(url)
            .spawn()
            .unwrap();
        SlowUpload(child)
    }
}

/// Posts fresh police messages with `auth` until the gateway answers 503 (once a slow upload
/// holds the slot); every answer before that must be 201. Up to 10 s.
pub fn post_until_busy(home: &Home, url: &str, auth: &str) -> Curl {
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        let r = post(
            home,
            url,
            &["-H", auth],
            &home.fresh_police(&format!("b{n}.sealed")),
        );
        if r.status == 503 {
            return r;
        }
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert!(Instant::now() < deadline, "the gateway never answered 503");
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

/// The message id in the police sample `valid-single-incident.xml`.
pub const POLICE_SAMPLE_ID: &str = "3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d0016";

/// Seals a copy of the police sample with a fresh message id, signed with `key`/`cert`, to
/// `recipient`, to `out` (see [`seal_police`]).
pub fn seal_fresh_police(key: &Path, cert: &Path, recipient: &str, out: &Path) {
    let id = uuid::Uuid::now_v7().to_string();
    seal_police(key, cert, recipient, &[(id, out.to_owned())]);
}

/// Seals copies of the police sample, one per (message id, output file), signed with
/// `key`/`cert`, to `recipient`: in process and in one call (a stock-tool pipeline per message
/// would take most of a minute for a thousand). Each output appears whole (renamed in).
pub fn seal_police(key: &Path, cert: &Path, recipient: &str, batch: &[(String, PathBuf)]) {
    let xml = std::fs::read_to_string(sample("police", "valid-single-incident.xml")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = batch
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let input = scratch.path().join(format!("m{i}.xml"));
            std::fs::write(&input, xml.replace(POLICE_SAMPLE_ID, id)).unwrap();
            input
        })
        .collect();
    gateway::cli::seal::run(&gateway::cli::seal::Args {
        key: key.to_owned(),
        cert: cert.to_owned(),
        to: vec![recipient.to_owned()],
        inputs: inputs.clone(),
        output: None,
        out_dir: None,
    })
    .unwrap();
    for (input, (_, out)) in inputs.iter().zip(batch) {
        // `gateway seal` wrote `<input>.sealed`.
        let sealed = input.with_extension("xml.sealed");
        if std::fs::rename(&sealed, out).is_err() {
            // Another file system: copied beside `out`, then renamed in.
            let mut part = std::ffi::OsString::from(".");
            part.push(out.file_name().unwrap());
            part.push(".part");
            let part = out.with_file_name(part);
            std::fs::copy(&sealed, &part).unwrap();
            std::fs::rename(&part, out).unwrap();
        }
    }
}

/// One upload with `reqwest` on a new connection (so a replaced TLS certificate is really
/// used), trusting the certificates in the PEM bundle `ca`, with the bearer `token`. Status 0:
/// no HTTP answer at all (`body["error"]` says why); a body that is not JSON is returned as a
/// JSON string.
pub fn upload(ca: &Path, url: &str, token: &str, file: &Path) -> (u16, serde_json::Value) {
    let mut b = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(30));
    for c in reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap() {
        b = b.add_root_certificate(c);
    }
    let client = b.build().unwrap();
    match client
        .post(url)
        .bearer_auth(token)
        .body(std::fs::read(file).unwrap())
        .send()
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.bytes().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            });
            (status, json)
        }
        Err(e) => (0, serde_json::json!({ "error": format!("{e:?}") })),
    }
}

/// A raw HTTP/1.1-over-TLS connection to the home's server (for tests that control every
/// byte and every pause), with a read timeout.
pub fn raw_tls(
    home: &Home,
    port: u16,
    read_timeout: Duration,
) -> openssl::ssl::SslStream<Uninterrupted> {
    let mut connector =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    connector.set_ca_file(home.tls_cert()).unwrap();
    connector.set_alpn_protos(b"\x08http/1.1").unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(read_timeout)).unwrap();
    connector
        .build()
        .connect("127.0.0.1", Uninterrupted(tcp))
        .unwrap()
}

/// A TCP stream whose reads and writes go on when a signal interrupts them. The test process
/// catches SIGCHLD (assert_cmd's `timeout` installs a handler), so any child that exits can
/// interrupt a read, and a read on a socket with a timeout is never restarted after a handler
/// ran (signal(7)): OpenSSL would take the EINTR for a broken connection.
#[derive(Debug)]
pub struct Uninterrupted(pub std::net::TcpStream);

impl std::io::Read for Uninterrupted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

impl std::io::Write for Uninterrupted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
