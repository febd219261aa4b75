//! `gateway agent`: the agency's side, unattended. It watches export folders, seals each
//! complete file with the agency's key to the hub's current recipient (fetched from the hub and
//! checked against the pinned receipt certificate), sends it with retries, checks the receipt's
//! signature, and moves the file to `sent/` with its receipt or to `failed/` with the hub's
//! problem and what to do. A journal makes it crash-safe: killed at any moment and restarted,
//! it sends each file until the hub has it, and the hub's dedupe answers a resend with the
//! original receipt, so nothing is delivered twice and nothing is skipped.

pub mod config;
pub mod hub;
pub mod journal;
pub mod metrics;
mod requests;
mod schedule;
pub mod schemas;
pub mod seal;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::json;

use config::{AgentConfig, Job};
use hub::{Answer, Upload};
use journal::{Journal, State};

/// Names a file in an export folder must not have to be taken: hidden files, and the
/// temporary names exporters write under before renaming.
fn is_candidate(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with('~')
        || name.ends_with(".receipt.json")
        || name.ends_with(".receipt.p7s"))
}

/// The complete files of `job`'s folder: regular, not temporary, unchanged for `job.stable`.
fn complete_files(job: &Job) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&job.folder) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            let quiet = now.duration_since(modified).unwrap_or_default() >= job.stable;
            (is_candidate(&name) && quiet).then_some(name)
        })
        .collect();
    out.sort();
    out
}

/// A running agent.
pub struct Agent {
    config: AgentConfig,
    journal: Journal,
    client: reqwest::blocking::Client,
    key: openssl::pkey::PKey<openssl::pkey::Private>,
    cert: openssl::x509::X509,
    recipient: Option<String>,
    schemas: Option<schemas::Local>,
    last_round: metrics::LastRound,
}

/// Where `name` goes in `dir` (made if missing): `dir/name`, or `dir/name-N` when taken.
fn free_name(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    crate::fsio::create_private_dir(dir)?;
    let mut to = dir.join(name);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{name}-{n}"));
        n += 1;
    }
    Ok(to)
}

/// Writes `bytes` beside `file` as `<file><suffix>`, durably.
fn write_beside(file: &Path, suffix: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = format!(
        "{}{suffix}",
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    crate::fsio::write_atomic(dir, &name, bytes).map(|_| ())
}

/// Files `source` in `dir` with what goes beside it: those first, then the name it goes to
/// in the journal, then the file, so a file is never in `sent/` or `failed/` without them, and
/// a run killed after the move knows where it went.
fn file_away(
    journal: &Journal,
    id: i64,
    source: &Path,
    dir: &Path,
    beside: &[(&str, &[u8])],
) -> anyhow::Result<PathBuf> {
    file_away_then(source, dir, beside, |to| {
        Ok(journal.filing(id, &to.to_string_lossy())?)
    })
}

/// Files `source` in `dir` with what goes beside it, those first.
fn file_away_plain(source: &Path, dir: &Path, beside: &[(&str, &[u8])]) -> anyhow::Result<PathBuf> {
    file_away_then(source, dir, beside, |_| Ok(()))
}

fn file_away_then(
    source: &Path,
    dir: &Path,
    beside: &[(&str, &[u8])],
    before_move: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let name = source
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let to = free_name(dir, &name)?;
    for (suffix, bytes) in beside {
        write_beside(&to, suffix, bytes)?;
    }
    before_move(&to)?;
    crate::fsio::rename_durable(source, &to)?;
    Ok(to)
}

/// A problem document as text: the code and detail, each violation, and what to do.
fn problem_text(problem: &serde_json::Value) -> String {
    let mut text = format!(
        "{}: {}\n",
        problem["code"].as_str().unwrap_or("refused"),
        problem["detail"].as_str().unwrap_or("")
    );
    for v in problem["violations"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  {}:{} {}: {}\n",
            v["line"],
            v["column"],
            v["path"].as_str().unwrap_or(""),
            v["message"].as_str().unwrap_or("")
        ));
    }
    if let Some(a) = problem["action"].as_str() {
        text.push_str(&format!("What to do: {a}\n"));
    }
    text
}

impl Agent {
    /// Loads the keys and opens the journal.
    pub fn new(config: AgentConfig) -> anyhow::Result<Agent> {
        let journal = Journal::open(&config.state)
            .with_context(|| format!("opening the journal in {}", config.state.display()))?;
        let (cert_file, key_file) = match &config.hub.client_identity {
            Some((c, k)) => (Some(c.as_path()), Some(k.as_path())),
            None => (None, None),
        };
        let client = hub::client(config.hub.ca.as_deref(), cert_file, key_file)?;
        let key = std::fs::read(&config.signing_key)
            .with_context(|| format!("reading {}", config.signing_key.display()))?;
        let key = match config
            .signing_passphrase
            .read()
            .context("the signing key's passphrase")?
        {
            Some(pass) => {
                use age::secrecy::ExposeSecret;
                openssl::pkey::PKey::private_key_from_pem_passphrase(
                    &key,
                    pass.expose_secret().as_bytes(),
                )
                .with_context(|| {
                    format!(
                        "{} cannot be opened with the passphrase of signing.passphrase_file or signing.passphrase_env",
                        config.signing_key.display()
                    )
                })?
            }
            None => openssl::pkey::PKey::private_key_from_pem(&key).with_context(|| {
                format!(
                    "{} is not a PEM private key (an encrypted key needs signing.passphrase_file or signing.passphrase_env)",
                    config.signing_key.display()
                )
            })?,
        };
        let cert = std::fs::read(&config.signing_certificate)
            .with_context(|| format!("reading {}", config.signing_certificate.display()))?;
        let cert = openssl::x509::X509::from_pem(&cert).with_context(|| {
            format!(
                "{} is not a PEM certificate",
                config.signing_certificate.display()
            )
        })?;
        Ok(Agent {
            config,
            journal,
            client,
            key,
            cert,
            recipient: None,
            schemas: None,
            last_round: metrics::LastRound::default(),
        })
    }

    /// Serves `/metrics` where the configuration says, if it says; the address.
    pub fn serve_metrics(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        self.config
            .metrics
            .map(|at| metrics::serve(at, self.config.state.clone(), self.last_round.clone()))
            .transpose()
    }

    /// The journal's counts.
    pub fn status(&self) -> anyhow::Result<journal::Status> {
        Ok(self.journal.status()?)
    }

    /// One round: takes the complete files of every job, then works through every pending
    /// file. Returns how many files were finished (sent or failed).
    pub fn round(&mut self) -> anyhow::Result<usize> {
        for job in &self.config.jobs {
            schedule::run_if_due(&self.journal, job)?;
        }
        for job in &self.config.jobs {
            for name in complete_files(job) {
                if !self.journal.is_pending(&job.name, &name)? {
                    self.journal.take(&job.name, &name)?;
                }
            }
        }
        self.refresh_schemas();
        if !self.config.queries.is_empty() {
            self.resume_requests()?;
        }
        let mut finished = 0;
        for entry in self.journal.pending()? {
            match self.deliver(&entry) {
                Ok(true) => finished += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(job = %entry.job, file = %entry.name, error = %format!("{e:#}"), "not delivered yet; trying again next round");
                    self.journal.retry_later(entry.id, &format!("{e:#}"))?;
                }
            }
        }
        self.last_round.now();
        Ok(finished)
    }

    fn job(&self, name: &str) -> Option<&Job> {
        self.config.jobs.iter().find(|j| j.name == name)
    }

    /// The hub's recipient, fetched (and checked) once, again after `no_matching_key`.
    fn recipient(&mut self, fresh: bool) -> anyhow::Result<String> {
        if fresh || self.recipient.is_none() {
            let r = hub::recipient(
                &self.client,
                &self.config.hub.url,
                &self.config.hub.receipt_certificate,
            )?;
            self.recipient = Some(r);
        }
        self.recipient.clone().context("no recipient")
    }

    /// Seals and sends one pending file; true when it is finished.
    fn deliver(&mut self, entry: &journal::Entry) -> anyhow::Result<bool> {
        let Some(job) = self.job(&entry.job).cloned() else {
            return Ok(false);
        };
        let source = job.folder.join(&entry.name);
        if !source.exists() {
            // Filed already (the agent stopped between the move and the journal), or taken
            // away by someone else.
            let filed = self.journal.filed_as(entry.id)?.map(PathBuf::from);
            let (state, why) = match filed.filter(|to| to.exists()) {
                Some(to) if to.parent() == Some(&job.folder.join("sent")) => (State::Sent, None),
                Some(_) => (State::Failed, None),
                None => (
                    State::Failed,
                    Some("the file was removed from the folder before it was delivered"),
                ),
            };
            self.journal.finish(entry.id, state, None, why)?;
            return Ok(true);
        }
        let producer = format!("the job {}", job.name);
        if let Some(problem) = self.check_locally(&source, &producer, &job.message_types)? {
            return self.failed(entry, &job, &source, &problem);
        }
        let answer = self.seal_send_and_reseal(&entry.id.to_string(), &source, None)?;
        match answer {
            Answer::Accepted {
                receipt, signature, ..
            } => self.sent(entry, &job, &source, &receipt, signature.as_deref()),
            Answer::Refused(problem) => self.failed(entry, &job, &source, &problem),
        }
    }

    /// Fetches the hub's schemas when it is time; without them the hub still checks
    /// everything, so a failure is only logged.
    fn refresh_schemas(&mut self) {
        if self.schemas.as_ref().is_some_and(|s| !s.stale()) {
            return;
        }
        let fetched = hub::schemas(
            &self.client,
            &self.config.hub.url,
            self.config.hub.token.as_deref(),
            &self.config.hub.receipt_certificate,
        )
        .and_then(|bundle| schemas::install(&self.config.state, &bundle));
        match fetched {
            Ok(local) => {
                if self
                    .schemas
                    .as_ref()
                    .is_none_or(|s| s.version != local.version)
                {
                    tracing::info!(version = %local.version, "the hub's schemas are in use");
                }
                self.schemas = Some(local);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot fetch the hub's schemas; files are checked by the hub alone");
            }
        }
    }

    /// The problem the hub would report for `source`, found here before sealing.
    /// `producer` names the job or query, `types` the message types it may produce (any the
    /// hub accepts when empty).
    fn check_locally(
        &self,
        source: &Path,
        producer: &str,
        types: &[String],
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let Some(local) = &self.schemas else {
            return Ok(None);
        };
        let file =
            std::fs::File::open(source).with_context(|| format!("reading {}", source.display()))?;
        let limits = crate::config::Config::defaults(Path::new(".")).limits;
        let found_by = format!(
            "the agent, before sending, with the hub's schemas (version {})",
            local.version
        );
        match crate::envelope::check_plain(&local.agency, file, &local.catalog, &limits) {
            Ok(schema) if types.is_empty() || types.contains(&schema) => Ok(None),
            Ok(schema) => Ok(Some(json!({
                "code": "schema_not_allowed",
                "detail": format!(
                    "this file is a {schema}; {producer} produces {} only",
                    types.join(", ")
                ),
                "action": "check the extract: it is valid, but not of the type this job or query sends (message_types in agent.toml)",
                "found_by": found_by,
            }))),
            Err(r) => Ok(Some(json!({
                "code": r.code,
                "detail": r.detail,
                "action": r.action,
                "violations": r.violations,
                "found_by": found_by,
            }))),
        }
    }

    fn seal_and_send(
        &mut self,
        tag: &str,
        source: &Path,
        fresh_recipient: bool,
        request: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let recipient: age::x25519::Recipient = self
            .recipient(fresh_recipient)?
            .parse()
            .map_err(|e| anyhow::anyhow!("the hub's recipient: {e}"))?;
        let sealed = self.config.state.join(format!("outgoing-{tag}.sealed"));
        let recipients: Vec<Box<dyn age::Recipient + Send>> = vec![Box::new(recipient)];
        seal::seal_file(source, &sealed, &self.cert, &self.key, &recipients)?;
        let url = format!("{}/v1/messages", self.config.hub.url);
        let up = Upload {
            client: &self.client,
            url: &url,
            token: self.config.hub.token.as_deref(),
            retries: 3,
            request,
        };
        let answer = hub::send(&up, &sealed);
        let _ = std::fs::remove_file(&sealed);
        answer
    }

    /// Seals and sends `source`; after a `no_matching_key` (the hub rotated its key since the
    /// recipient was fetched), fetches the recipient and reseals once.
    fn seal_send_and_reseal(
        &mut self,
        tag: &str,
        source: &Path,
        request: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let answer = self.seal_and_send(tag, source, false, request)?;
        if matches!(&answer, Answer::Refused(p) if p["code"] == "no_matching_key") {
            return self.seal_and_send(tag, source, true, request);
        }
        Ok(answer)
    }

    /// The hub's receipt checked against the pinned receipt certificate: its signature (DER)
    /// and the message it names.
    fn checked_receipt(
        &self,
        receipt: &[u8],
        signature: Option<&str>,
    ) -> anyhow::Result<(Vec<u8>, String)> {
        let signature = signature.context("the hub's receipt is not signed: not trusted")?;
        hub::verify_detached(receipt, signature, &self.config.hub.receipt_certificate)
            .context("the hub's receipt does not verify against the pinned receipt certificate")?;
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, signature)?;
        let id = serde_json::from_slice::<serde_json::Value>(receipt)?["gateway_message_id"]
            .as_str()
            .map(str::to_owned)
            .context("the receipt names no message")?;
        Ok((der, id))
    }

    fn sent(
        &self,
        entry: &journal::Entry,
        job: &Job,
        source: &Path,
        receipt: &[u8],
        signature: Option<&str>,
    ) -> anyhow::Result<bool> {
        let (der, id) = self.checked_receipt(receipt, signature)?;
        file_away(
            &self.journal,
            entry.id,
            source,
            &job.folder.join("sent"),
            &[(".receipt.json", receipt), (".receipt.p7s", &der)],
        )?;
        self.journal
            .finish(entry.id, State::Sent, Some(&id), None)?;
        tracing::info!(job = %job.name, file = %entry.name, message = ?id, "delivered");
        Ok(true)
    }

    fn failed(
        &self,
        entry: &journal::Entry,
        job: &Job,
        source: &Path,
        problem: &serde_json::Value,
    ) -> anyhow::Result<bool> {
        let text = problem_text(problem);
        let json = problem.to_string();
        file_away(
            &self.journal,
            entry.id,
            source,
            &job.folder.join("failed"),
            &[
                (".problem.json", json.as_bytes()),
                (".error.txt", text.as_bytes()),
            ],
        )?;
        let code = problem["code"].as_str().unwrap_or("refused");
        self.journal.finish(
            entry.id,
            State::Failed,
            problem["gateway_message_id"].as_str(),
            Some(code),
        )?;
        tracing::warn!(job = %job.name, file = %entry.name, code, "refused by the hub");
        Ok(true)
    }

    /// Runs rounds every `every` until `stop` is set; in between, with queries configured,
    /// waits on the hub for its requests (a long poll) and answers each at once.
    pub fn run(
        &mut self,
        every: Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = self.round() {
                tracing::error!(error = %format!("{e:#}"), "agent round failed");
            }
            let next_round = std::time::Instant::now() + every;
            while !stop.load(Ordering::SeqCst) {
                let left = next_round.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                if self.config.queries.is_empty() {
                    std::thread::sleep(left.min(Duration::from_secs(1)));
                    continue;
                }
                if let Err(e) = self.poll_request(left.max(Duration::from_secs(1))) {
                    tracing::warn!(error = %format!("{e:#}"), "cannot ask the hub for requests");
                    std::thread::sleep(left.min(Duration::from_secs(5)));
                }
            }
        }
        Ok(())
    }

    /// Answers the requests waiting at the hub now (at most `max`); how many there were.
    pub fn answer_waiting_requests(&mut self, max: usize) -> anyhow::Result<usize> {
        let mut n = 0;
        while n < max && !self.config.queries.is_empty() && self.poll_request(Duration::ZERO)? {
            n += 1;
        }
        Ok(n)
    }

    /// What `gateway agent status` prints.
    pub fn status_json(&self) -> anyhow::Result<serde_json::Value> {
        let s = self.status()?;
        Ok(json!(s))
    }
}
