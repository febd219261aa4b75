//! The hub asks, the agent answers: requests collected by long-polling the hub (outbound
//! only), checked against the agency's own `[[query]]` allow-list, answered by running the
//! mapped command without a shell and sending its standard output as an ordinary sealed
//! message that names the request.
//!
//! Nothing runs for a query the configuration does not name, for a parameter it does not
//! declare, or for a value of the wrong type or length: the hub is told why instead. The
//! journal keeps each request's step (taken, ready, failing, answered, failed), so a request
//! is answered after a crash too: a command cut off runs again; a written answer is sent
//! again, and the hub answers the resend with the original receipt.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::{Param, ParamKind, Piece, Query, pieces};
use super::hub::{self, Answer};
use super::journal::{RequestEntry, RequestStep};
use super::{Agent, file_away_plain};

/// Most of a failed command's standard error kept for the hub and the journal, in bytes.
const STDERR_MAX: u64 = 2048;

/// Why `value` is not a `param`, if it is not.
fn value_problem(name: &str, param: &Param, value: &str) -> Option<String> {
    let bad = |what: &str| Some(format!("{name}: {what}"));
    match &param.kind {
        ParamKind::Text { max_len } => {
            if value.chars().count() > *max_len {
                return bad(&format!(
                    "{} characters; at most {max_len}",
                    value.chars().count()
                ));
            }
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@+-".contains(c);
            if let Some(c) = value.chars().find(|c| !allowed(*c)) {
                return bad(&format!(
                    "{c:?} is not allowed (letters, digits and . _ : @ + - only)"
                ));
            }
            if value.is_empty() {
                return bad("empty");
            }
            None
        }
        ParamKind::Integer { min, max } => match value.parse::<i64>() {
            Err(_) => bad(&format!("{value:?} is not a whole number")),
            Ok(n) if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) => bad(&format!(
                "{n} is outside {}..{}",
                min.map_or(String::new(), |m| m.to_string()),
                max.map_or(String::new(), |m| m.to_string())
            )),
            Ok(_) => None,
        },
        ParamKind::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .is_err()
            .then(|| format!("{name}: {value:?} is not a date (YYYY-MM-DD)")),
        ParamKind::DateTime => chrono::DateTime::parse_from_rfc3339(value)
            .is_err()
            .then(|| format!("{name}: {value:?} is not an RFC 3339 time (2026-12-01T00:00:00Z)")),
        ParamKind::Boolean => (!matches!(value, "true" | "false"))
            .then(|| format!("{name}: {value:?} is not true or false")),
        ParamKind::Choice(values) => (!values.iter().any(|v| v == value))
            .then(|| format!("{name}: {value:?} is not one of {}", values.join(", "))),
    }
}

/// Why a request for `query` with `params` must not run, if it must not.
pub fn refusal(query: &Query, params: &BTreeMap<String, String>) -> Option<String> {
    let mut problems = Vec::new();
    for name in params.keys() {
        if !query.params.contains_key(name) {
            problems.push(format!(
                "{name}: the query {} takes no such parameter",
                query.name
            ));
        }
    }
    for (name, param) in &query.params {
        match params.get(name) {
            None if param.required => problems.push(format!("{name}: missing")),
            None => {}
            Some(value) => problems.extend(value_problem(name, param, value)),
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "refused by the agency's agent, nothing was run: {}",
            problems.join("; ")
        )
    })
}

/// The command line for a checked request: each `{param}` replaced by its value (a missing
/// optional one by nothing), `{request_id}` by the id, in one pass (a value is never read
/// for placeholders). Each argument stays one argument.
fn command_line(query: &Query, id: &str, params: &BTreeMap<String, String>) -> Vec<String> {
    let value = |name: &str| -> Option<&str> {
        if name == "request_id" {
            return Some(id);
        }
        query
            .params
            .contains_key(name)
            .then(|| params.get(name).map_or("", String::as_str))
    };
    query
        .command
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            for piece in pieces(arg) {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Placeholder(name) => match value(name) {
                        Some(v) => out.push_str(v),
                        // Not a parameter (the configuration check refuses these): as written.
                        None => out.push_str(&format!("{{{name}}}")),
                    },
                }
            }
            out
        })
        .collect()
}

/// Runs the query's command, its standard output going to `out`; why it failed, if it did.
fn run(
    query: &Query,
    id: &str,
    params: &BTreeMap<String, String>,
    dir: &Path,
    out: &Path,
) -> Result<(), String> {
    let args = command_line(query, id, params);
    let stdout = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let err_path = out.with_extension("stderr");
    let stderr =
        std::fs::File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .env("GATEWAY_REQUEST_ID", id)
        .env("GATEWAY_QUERY", &query.name);
    for (name, value) in params {
        cmd.env(
            format!("GATEWAY_PARAM_{}", name.to_ascii_uppercase()),
            value,
        );
    }
    tracing::info!(request = %id, query = %query.name, program = %args[0], "running the query");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{} could not be started: {e}", args[0]))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for {}: {e}", args[0])),
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let why = if started.elapsed() > query.timeout {
            Some(format!(
                "{} did not finish within {} s",
                args[0],
                query.timeout.as_secs()
            ))
        } else if size(out) > query.max_output || size(&err_path) > query.max_output {
            Some(format!(
                "{} wrote more than {} bytes",
                args[0], query.max_output
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&err_path);
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    if let Ok(f) = std::fs::File::open(&err_path) {
        let _ = f.take(STDERR_MAX).read_to_string(&mut said);
    }
    let _ = std::fs::remove_file(&err_path);
    if !status.success() {
        return Err(format!("{} exited with {status}: {}", args[0], said.trim()));
    }
    let written = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    if written == 0 {
        return Err(format!("{} wrote no answer", args[0]));
    }
    std::fs::File::open(out)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

/// Files a refused answer in `dir/failed/` with its problem; why, for the hub.
fn kept_back(
    answer: &Path,
    dir: &Path,
    what: &str,
    problem: &serde_json::Value,
) -> anyhow::Result<Result<String, String>> {
    file_away_plain(
        answer,
        &dir.join("failed"),
        &[(".problem.json", problem.to_string().as_bytes())],
    )?;
    Ok(Err(format!(
        "{what}: {}",
        super::problem_text(problem).trim()
    )))
}

impl Agent {
    fn requests_dir(&self) -> PathBuf {
        self.config.state.join("requests")
    }

    /// Waits up to `wait` for the hub's next request and answers it; false when none came.
    pub(super) fn poll_request(&mut self, wait: Duration) -> anyhow::Result<bool> {
        let Some(r) = hub::next_request(
            &self.client,
            &self.config.hub.url,
            self.config.hub.token.as_deref(),
            &self.config.hub.receipt_certificate,
            wait,
        )?
        else {
            return Ok(false);
        };
        let params = serde_json::to_string(&r.params)?;
        self.journal
            .request_taken(&r.request_id, &r.query, &params)?;
        tracing::info!(request = %r.request_id, query = %r.query, "the hub asks");
        let open = self.journal.requests_open()?;
        if let Some(entry) = open.into_iter().find(|e| e.id == r.request_id) {
            self.work_on(&entry)?;
        }
        Ok(true)
    }

    /// Carries on with every request not finished (after a crash, or a hub that was down).
    pub(super) fn resume_requests(&mut self) -> anyhow::Result<()> {
        for entry in self.journal.requests_open()? {
            if let Err(e) = self.work_on(&entry) {
                tracing::warn!(request = %entry.id, error = %format!("{e:#}"), "request not answered yet; trying again");
            }
        }
        Ok(())
    }

    /// Takes one request as far as it goes: refused, failed, or answered.
    fn work_on(&mut self, entry: &RequestEntry) -> anyhow::Result<()> {
        let dir = self.requests_dir();
        crate::fsio::create_private_dir(&dir)?;
        let answer = dir.join(format!("{}.xml", entry.id));
        let mut step = entry.step;
        let mut detail = entry.detail.clone();
        let query = self
            .config
            .queries
            .iter()
            .find(|q| q.name == entry.query)
            .cloned();
        if step == RequestStep::Taken {
            let params: BTreeMap<String, String> =
                serde_json::from_str(&entry.params).unwrap_or_default();
            let why = match &query {
                None => Some(format!(
                    "refused by the agency's agent, nothing was run: it answers no query named {:?}",
                    entry.query
                )),
                Some(query) => refusal(query, &params)
                    .or_else(|| run(query, &entry.id, &params, &dir, &answer).err()),
            };
            match why {
                Some(why) => {
                    tracing::warn!(request = %entry.id, query = %entry.query, reason = %why, "request not answered");
                    let _ = std::fs::remove_file(&answer);
                    self.journal
                        .request_step(&entry.id, RequestStep::Failing, Some(&why), None)?;
                    (step, detail) = (RequestStep::Failing, Some(why));
                }
                None => {
                    self.journal
                        .request_step(&entry.id, RequestStep::Ready, None, None)?;
                    step = RequestStep::Ready;
                }
            }
        }
        if step == RequestStep::Ready {
            let types = query.as_ref().map_or(&[][..], |q| &q.message_types[..]);
            match self.deliver_answer(&entry.id, &entry.query, types, &answer)? {
                Ok(message_id) => {
                    self.journal.request_step(
                        &entry.id,
                        RequestStep::Answered,
                        None,
                        Some(&message_id),
                    )?;
                    tracing::info!(request = %entry.id, message = %message_id, "request answered");
                    return Ok(());
                }
                Err(why) => {
                    self.journal
                        .request_step(&entry.id, RequestStep::Failing, Some(&why), None)?;
                    (step, detail) = (RequestStep::Failing, Some(why));
                }
            }
        }
        if step == RequestStep::Failing {
            let why = detail.unwrap_or_else(|| "the agent could not answer".to_owned());
            hub::report_failure(
                &self.client,
                &self.config.hub.url,
                self.config.hub.token.as_deref(),
                &entry.id,
                &why,
            )?;
            self.journal
                .request_step(&entry.id, RequestStep::Failed, None, None)?;
        }
        Ok(())
    }

    /// Checks, seals and sends the answer; the hub's message id, or why it was refused
    /// (`Err` of the outer result: try again later).
    fn deliver_answer(
        &mut self,
        id: &str,
        query: &str,
        types: &[String],
        answer: &Path,
    ) -> anyhow::Result<Result<String, String>> {
        let dir = self.requests_dir();
        if !answer.exists() {
            // Filed already: the agent stopped between the move and the journal.
            let sent = dir.join("sent").join(format!("{id}.xml.receipt.json"));
            if let Ok(bytes) = std::fs::read(&sent) {
                let receipt: serde_json::Value = serde_json::from_slice(&bytes)?;
                if let Some(m) = receipt["gateway_message_id"].as_str() {
                    return Ok(Ok(m.to_owned()));
                }
            }
            return Ok(Err("the answer was lost before it was sent".to_owned()));
        }
        self.refresh_schemas();
        let producer = format!("the query {query}");
        if let Some(problem) = self.check_locally(answer, &producer, types)? {
            return kept_back(
                answer,
                &dir,
                "the agent's own check refused the answer, so it was not sent",
                &problem,
            );
        }
        match self.seal_send_and_reseal(id, answer, Some(id))? {
            Answer::Accepted {
                receipt, signature, ..
            } => {
                let (der, message) = self.checked_receipt(&receipt, signature.as_deref())?;
                file_away_plain(
                    answer,
                    &dir.join("sent"),
                    &[(".receipt.json", &receipt), (".receipt.p7s", &der)],
                )?;
                Ok(Ok(message))
            }
            Answer::Refused(problem) => {
                kept_back(answer, &dir, "the hub refused the answer", &problem)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Query {
        let p = |kind| Param {
            kind,
            required: true,
        };
        Query {
            name: "case-updates".into(),
            command: vec!["extract".into(), "--since={since}".into(), "{limit}".into()],
            timeout: Duration::from_secs(5),
            max_output: 1 << 20,
            message_types: Vec::new(),
            params: BTreeMap::from([
                ("since".to_owned(), p(ParamKind::DateTime)),
                (
                    "limit".to_owned(),
                    Param {
                        kind: ParamKind::Integer {
                            min: Some(1),
                            max: Some(500),
                        },
                        required: false,
                    },
                ),
                (
                    "area".to_owned(),
                    p(ParamKind::Choice(vec!["north".into(), "south".into()])),
                ),
                (
                    "ref".to_owned(),
                    Param {
                        kind: ParamKind::Text { max_len: 8 },
                        required: false,
                    },
                ),
                (
                    "day".to_owned(),
                    Param {
                        kind: ParamKind::Date,
                        required: false,
                    },
                ),
                (
                    "full".to_owned(),
                    Param {
                        kind: ParamKind::Boolean,
                        required: false,
                    },
                ),
            ]),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_request_of_the_declared_types_passes() {
        let ok = params(&[
            ("since", "2026-12-01T00:00:00Z"),
            ("area", "north"),
            ("limit", "50"),
            ("ref", "AB-12.3"),
            ("day", "2026-02-28"),
            ("full", "true"),
        ]);
        assert_eq!(refusal(&query(), &ok), None);
        assert_eq!(
            command_line(&query(), "rq-1", &ok),
            ["extract", "--since=2026-12-01T00:00:00Z", "50"]
        );
        // One pass: a value that looks like a placeholder stays as it is.
        let mut q = query();
        q.command = vec![
            "x".into(),
            "{area}{limit}{request_id}".into(),
            "{other}".into(),
        ];
        q.params.insert(
            "area".into(),
            Param {
                kind: ParamKind::Choice(vec!["{limit}".into()]),
                required: true,
            },
        );
        let tricky = params(&[("area", "{limit}"), ("limit", "7")]);
        assert_eq!(
            command_line(&q, "rq-2", &tricky),
            ["x", "{limit}7rq-2", "{other}"]
        );
    }

    #[test]
    fn hostile_or_mistyped_parameters_are_refused_each_named() {
        for (pairs, expect) in [
            (
                vec![("since", "$(touch /tmp/x)"), ("area", "north")],
                "since:",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north; rm -rf /"),
                ],
                "area:",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("limit", "5000"),
                ],
                "outside",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("limit", "1e3"),
                ],
                "whole number",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("ref", "a`b`"),
                ],
                "not allowed",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("ref", "ABCDEFGHIJ"),
                ],
                "at most 8",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("day", "2026-02-30"),
                ],
                "not a date",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("full", "yes"),
                ],
                "true or false",
            ),
            (
                vec![
                    ("since", "2026-12-01T00:00:00Z"),
                    ("area", "north"),
                    ("path", "x"),
                ],
                "no such parameter",
            ),
            (vec![("area", "north")], "since: missing"),
        ] {
            let why = refusal(&query(), &params(&pairs)).expect("refused");
            assert!(why.contains(expect), "{pairs:?}: {why}");
            assert!(why.contains("nothing was run"), "{why}");
        }
    }

    #[test]
    fn a_command_that_fails_or_overruns_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.xml");
        let mut q = query();
        q.params.clear();
        q.command = vec!["sh".into(), "-c".into(), "echo broken >&2; exit 3".into()];
        let e = run(&q, "rq-1", &BTreeMap::new(), dir.path(), &out).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("broken"), "{e}");
        q.command = vec!["sleep".into(), "10".into()];
        q.timeout = Duration::from_millis(200);
        let e = run(&q, "rq-1", &BTreeMap::new(), dir.path(), &out).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        q.command = vec!["true".into()];
        q.timeout = Duration::from_secs(5);
        let e = run(&q, "rq-1", &BTreeMap::new(), dir.path(), &out).unwrap_err();
        assert!(e.contains("wrote no answer"), "{e}");
        q.command = vec!["printenv".into(), "GATEWAY_REQUEST_ID".into()];
        run(&q, "rq-7", &BTreeMap::new(), dir.path(), &out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "rq-7");
    }
}
