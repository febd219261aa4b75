//! `agent.toml`: the hub, the agency's credentials and signing key, and the jobs. Relative
//! paths are relative to the file's folder; mistakes are reported by key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why `agent.toml` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Not TOML, or a key that does not exist.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value that cannot be used.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `hub.url`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    hub: RawHub,
    signing: RawSigning,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "job")]
    jobs: Vec<RawJob>,
    #[serde(default, rename = "query")]
    queries: Vec<RawQuery>,
    metrics: Option<RawMetrics>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    name: String,
    command: Vec<String>,
    timeout_secs: Option<u64>,
    max_output_mb: Option<u64>,
    #[serde(default)]
    message_types: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, RawParam>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type")]
    kind: String,
    required: Option<bool>,
    max_len: Option<usize>,
    min: Option<i64>,
    max: Option<i64>,
    values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHub {
    url: String,
    ca: Option<String>,
    receipt_certificate: String,
    token_file: Option<String>,
    token_env: Option<String>,
    client_certificate: Option<String>,
    client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    key: String,
    certificate: String,
    passphrase_file: Option<String>,
    passphrase_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: String,
    folder: String,
    stable_secs: Option<u64>,
    schedule: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    message_types: Vec<String>,
}

/// The hub and how to reach it.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Base URL, e.g. `https://hub.example:8443`.
    pub url: String,
    /// CA certificates to trust for the hub's TLS certificate (default: the system's).
    pub ca: Option<PathBuf>,
    /// The hub's receipt certificate, pinned: receipts and the recipient document must be
    /// signed by it.
    pub receipt_certificate: PathBuf,
    /// The bearer token, read from a file or the environment (never the file itself).
    pub token: Option<String>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// One export folder to deliver from.
#[derive(Debug, Clone)]
pub struct Job {
    /// Name (in the journal and the logs).
    pub name: String,
    /// The folder the extract lands in; `sent/` and `failed/` are made inside it.
    pub folder: PathBuf,
    /// How long a file must stay unchanged before it is taken.
    pub stable: std::time::Duration,
    /// An extract command to run on a schedule (cron syntax, local time), writing into the
    /// folder: the program and its arguments, `{folder}` standing for the folder. Run without
    /// a shell.
    pub extract: Option<(croner::Cron, Vec<String>)>,
    /// The message types (schema ids) its files may be; any the hub accepts when empty.
    pub message_types: Vec<String>,
}

/// What a query parameter may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamKind {
    /// Letters, digits and `. _ : @ + -`, at most `max_len` characters (default 64).
    Text {
        /// Longest value.
        max_len: usize,
    },
    /// A whole number, within the bounds given.
    Integer {
        /// Smallest value.
        min: Option<i64>,
        /// Largest value.
        max: Option<i64>,
    },
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A time with its offset, RFC 3339 (`2026-12-01T00:00:00Z`).
    DateTime,
    /// `true` or `false`.
    Boolean,
    /// One of the values listed.
    Choice(Vec<String>),
}

/// A query parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// What it may be.
    pub kind: ParamKind,
    /// Whether a request must give it.
    pub required: bool,
}

/// A query the hub may ask: the command that answers it (run without a shell, its standard
/// output the answer), and its parameters.
#[derive(Debug, Clone)]
pub struct Query {
    /// The name the hub asks for.
    pub name: String,
    /// The program and its arguments; `{param}` stands for a parameter's value and
    /// `{request_id}` for the request's id.
    pub command: Vec<String>,
    /// Longest the command may run.
    pub timeout: std::time::Duration,
    /// Largest answer, in bytes.
    pub max_output: u64,
    /// Its parameters, by name; a request with any other is refused.
    pub params: BTreeMap<String, Param>,
    /// The message types (schema ids) its answer may be; any the hub accepts when empty.
    pub message_types: Vec<String>,
}

/// `agent.toml`, checked.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The hub.
    pub hub: Hub,
    /// The agency's signing key (PEM).
    pub signing_key: PathBuf,
    /// The agency's signing certificate (PEM).
    pub signing_certificate: PathBuf,
    /// Where the signing key's passphrase comes from, when the key is encrypted (a file, 0600,
    /// or an environment variable; never this file).
    pub signing_passphrase: crate::keyring::Passphrase,
    /// The journal and sealed files in flight (default: `agent-state/` beside the file).
    pub state: PathBuf,
    /// The export folders.
    pub jobs: Vec<Job>,
    /// The queries the hub may ask (none: the agent does not ask the hub for requests).
    pub queries: Vec<Query>,
    /// Where `/metrics` is served (a loopback address), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
}

fn invalid(key: &str, message: impl Into<String>) -> AgentConfigError {
    AgentConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl AgentConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, AgentConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| AgentConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let raw: Raw = toml::from_str(&text).map_err(|e| AgentConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let at = |p: &str| base.join(p);
        let url = raw.hub.url.trim_end_matches('/').to_owned();
        if !url.starts_with("https://") {
            return Err(invalid(
                "hub.url",
                format!("{url:?} is not an https:// URL"),
            ));
        }
        let token = token_of(&raw.hub, base)?;
        let client_identity = match (&raw.hub.client_certificate, &raw.hub.client_key) {
            (Some(c), Some(k)) => Some((at(c), at(k))),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "hub.client_certificate",
                    "give client_certificate and client_key together",
                ));
            }
        };
        if token.is_none() && client_identity.is_none() {
            return Err(invalid(
                "hub.token_file",
                "the agent needs a token (token_file or token_env) or a client certificate",
            ));
        }
        let mut jobs = Vec::new();
        for (i, j) in raw.jobs.into_iter().enumerate() {
            if !crate::message::is_safe_name(&j.name) {
                return Err(invalid(
                    &format!("job[{i}].name"),
                    format!("{:?}: 1-63 characters of a-z, 0-9 and '-'", j.name),
                ));
            }
            let extract = extract_of(i, j.schedule.as_deref(), j.command)?;
            jobs.push(Job {
                name: j.name,
                folder: at(&j.folder),
                stable: std::time::Duration::from_secs(j.stable_secs.unwrap_or(2)),
                extract,
                message_types: j.message_types,
            });
        }
        let queries = queries_of(raw.queries)?;
        let metrics = match raw.metrics {
            None => None,
            Some(m) => Some(loopback(&m.listen)?),
        };
        if jobs.is_empty() && queries.is_empty() {
            return Err(invalid(
                "job",
                "no [[job]] and no [[query]]: name at least one export folder or query",
            ));
        }
        Ok(AgentConfig {
            hub: Hub {
                url,
                ca: raw.hub.ca.as_deref().map(at),
                receipt_certificate: at(&raw.hub.receipt_certificate),
                token,
                client_identity,
            },
            signing_key: at(&raw.signing.key),
            signing_certificate: at(&raw.signing.certificate),
            signing_passphrase: passphrase_of(&raw.signing, base)?,
            state: at(raw.state.as_deref().unwrap_or("agent-state")),
            jobs,
            queries,
            metrics,
        })
    }
}

/// The bearer token, from `token_file` (relative to `base`) or `token_env`.
fn token_of(hub: &RawHub, base: &Path) -> Result<Option<String>, AgentConfigError> {
    Ok(match (&hub.token_file, &hub.token_env) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "hub.token_file",
                "give token_file or token_env, not both",
            ));
        }
        (Some(f), None) => Some(
            std::fs::read_to_string(base.join(f))
                .map_err(|e| invalid("hub.token_file", format!("{f}: {e}")))?
                .trim()
                .to_owned(),
        ),
        (None, Some(v)) => Some(
            std::env::var(v)
                .map_err(|_| invalid("hub.token_env", format!("the variable {v} is not set")))?,
        ),
        (None, None) => None,
    })
}

/// A job's schedule and command, both or neither.
fn extract_of(
    i: usize,
    schedule: Option<&str>,
    command: Option<Vec<String>>,
) -> Result<Option<(croner::Cron, Vec<String>)>, AgentConfigError> {
    use std::str::FromStr;
    match (schedule, command) {
        (None, None) => Ok(None),
        (Some(s), Some(c)) => {
            let cron = croner::Cron::from_str(s).map_err(|e| {
                invalid(
                    &format!("job[{i}].schedule"),
                    format!("{s:?} is not a cron schedule such as \"0 2 * * *\": {e}"),
                )
            })?;
            if c.is_empty() || c[0].trim().is_empty() {
                return Err(invalid(
                    &format!("job[{i}].command"),
                    "name the program, then its arguments",
                ));
            }
            Ok(Some((cron, c)))
        }
        _ => Err(invalid(
            &format!("job[{i}].schedule"),
            "a scheduled extract needs both schedule and command",
        )),
    }
}

/// Every `[[query]]`, checked, each name once.
fn queries_of(raw: Vec<RawQuery>) -> Result<Vec<Query>, AgentConfigError> {
    let mut queries: Vec<Query> = Vec::new();
    for (i, q) in raw.into_iter().enumerate() {
        let q = query_of(i, q)?;
        if queries.iter().any(|other| other.name == q.name) {
            return Err(invalid(
                &format!("query[{i}].name"),
                format!("{} is named twice", q.name),
            ));
        }
        queries.push(q);
    }
    Ok(queries)
}

/// What a parameter declared under `pkey` may be.
fn param_kind(pkey: &str, p: RawParam) -> Result<ParamKind, AgentConfigError> {
    Ok(match p.kind.as_str() {
        "text" => {
            let max_len = p.max_len.unwrap_or(64);
            if max_len == 0 || max_len > crate::requests::MAX_VALUE_BYTES {
                return Err(invalid(
                    &format!("{pkey}.max_len"),
                    format!("between 1 and {}", crate::requests::MAX_VALUE_BYTES),
                ));
            }
            ParamKind::Text { max_len }
        }
        "integer" => ParamKind::Integer {
            min: p.min,
            max: p.max,
        },
        "date" => ParamKind::Date,
        "datetime" => ParamKind::DateTime,
        "boolean" => ParamKind::Boolean,
        "choice" => match p.values {
            Some(v) if !v.is_empty() => ParamKind::Choice(v),
            _ => {
                return Err(invalid(
                    &format!("{pkey}.values"),
                    "a choice lists its values, e.g. values = [\"north\", \"south\"]",
                ));
            }
        },
        other => {
            return Err(invalid(
                &format!("{pkey}.type"),
                format!("{other:?}: one of text, integer, date, datetime, boolean, choice"),
            ));
        }
    })
}

/// A `[[query]]`, checked: its name, its command's placeholders, its parameters' types.
fn query_of(i: usize, q: RawQuery) -> Result<Query, AgentConfigError> {
    let key = |k: &str| format!("query[{i}].{k}");
    if !crate::message::is_safe_name(&q.name) {
        return Err(invalid(
            &key("name"),
            format!("{:?}: 1-63 characters of a-z, 0-9 and '-'", q.name),
        ));
    }
    if q.command.is_empty() || q.command[0].trim().is_empty() {
        return Err(invalid(
            &key("command"),
            "name the program, then its arguments",
        ));
    }
    let mut params = BTreeMap::new();
    for (name, p) in q.params {
        let pkey = key(&format!("params.{name}"));
        if !crate::requests::is_param_name(&name) {
            return Err(invalid(
                &pkey,
                "a parameter name is a lowercase letter, then up to 31 of a-z, 0-9 and '_'",
            ));
        }
        let required = p.required.unwrap_or(true);
        let kind = param_kind(&pkey, p)?;
        params.insert(name, Param { kind, required });
    }
    for arg in &q.command {
        for placeholder in placeholders(arg) {
            if placeholder != "request_id" && !params.contains_key(placeholder) {
                return Err(invalid(
                    &key("command"),
                    format!("{{{placeholder}}} names no parameter of the query"),
                ));
            }
        }
    }
    Ok(Query {
        name: q.name,
        command: q.command,
        timeout: std::time::Duration::from_secs(q.timeout_secs.unwrap_or(600).max(1)),
        max_output: q.max_output_mb.unwrap_or(1024).max(1) << 20,
        params,
        message_types: q.message_types,
    })
}

/// A piece of a command's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text as it stands.
    Text(&'a str),
    /// A `{name}` placeholder: the name.
    Placeholder(&'a str),
}

/// An argument in pieces: text, and `{name}` placeholders (a `{` without its `}` is text).
pub fn pieces(arg: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        out.push(Piece::Placeholder(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The `{name}` placeholders in an argument.
pub fn placeholders(arg: &str) -> Vec<&str> {
    pieces(arg)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// `metrics.listen`: an address on the loopback interface (the agent opens no port to the
/// network).
fn loopback(listen: &str) -> Result<std::net::SocketAddr, AgentConfigError> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        invalid(
            "metrics.listen",
            format!("{listen:?} is not an address such as \"127.0.0.1:9465\""),
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(invalid(
            "metrics.listen",
            format!("{addr} is not a loopback address: the agent opens no port to the network"),
        ));
    }
    Ok(addr)
}

/// `signing.passphrase_file` or `signing.passphrase_env`, one at most.
fn passphrase_of(
    signing: &RawSigning,
    base: &Path,
) -> Result<crate::keyring::Passphrase, AgentConfigError> {
    match (&signing.passphrase_file, &signing.passphrase_env) {
        (Some(_), Some(_)) => Err(invalid(
            "signing.passphrase_file",
            "give passphrase_file or passphrase_env, not both",
        )),
        (Some(f), None) => Ok(crate::keyring::Passphrase {
            env: String::new(),
            file: Some(base.join(f)),
        }),
        (None, Some(v)) => Ok(crate::keyring::Passphrase {
            env: v.clone(),
            file: None,
        }),
        (None, None) => Ok(crate::keyring::Passphrase {
            env: String::new(),
            file: None,
        }),
    }
}
