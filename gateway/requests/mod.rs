//! The hub asks, the agency's agent answers ("real-time querying" with outbound connections
//! only): an operator asks an agency for a named query with parameters; the agency's agent
//! collects it (`GET /v1/requests/next`, a long poll), runs the command its own configuration
//! maps to that name, and answers with an ordinary sealed message that names the request
//! (header `Gateway-Request-Id`), or reports why it could not (`POST
//! /v1/requests/{id}/failure`).
//!
//! The hub checks only the shape of a request (names, lengths, no control characters): what a
//! parameter may be is the agency's decision, in its agent's configuration, where it is
//! checked again before anything runs. The requests live in the ledger ([`RequestRecord`]),
//! so every instance sharing it hands each one out once.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::{RequestEvent, RequestRecord, Store, StoreError};

pub use crate::store::RequestState;

/// Most parameters in one request.
pub const MAX_PARAMS: usize = 32;
/// Longest parameter value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Longest a request may wait for its answer.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// How long a request waits for its answer unless the operator says otherwise.
pub const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why a request cannot be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request is malformed (said in a sentence for the operator).
    #[error("{0}")]
    Invalid(String),
    /// The ledger could not record it.
    #[error("the ledger: {0}")]
    Store(#[from] StoreError),
}

/// A request an operator makes.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// The agency asked.
    pub agency: &'a str,
    /// The query's name.
    pub query: &'a str,
    /// Its parameters.
    pub params: BTreeMap<String, String>,
    /// How long to wait for the answer.
    pub wait: std::time::Duration,
    /// Who asks.
    pub by: &'a str,
}

/// A parameter name: a lowercase letter, then up to 31 of lowercase letters, digits and `_`
/// (so it is also an environment variable's name, upper-cased).
pub fn is_param_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Parses `name=value` pairs (the command line's arguments, the console's lines).
pub fn parse_params<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, RequestError> {
    let mut params = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(RequestError::Invalid(format!(
                "{pair:?} is not name=value (for example since=2026-12-01T00:00:00Z)"
            )));
        };
        if params.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(RequestError::Invalid(format!(
                "the parameter {name} is given twice"
            )));
        }
    }
    Ok(params)
}

impl Ask<'_> {
    /// Whether the request has the shape every agent can read.
    pub fn check(&self) -> Result<(), RequestError> {
        let bad = |m: String| Err(RequestError::Invalid(m));
        if !crate::message::is_safe_name(self.query) {
            return bad(format!(
                "the query name {:?} is 1-63 characters of a-z, 0-9 and '-'",
                self.query
            ));
        }
        if self.params.len() > MAX_PARAMS {
            return bad(format!(
                "{} parameters; at most {MAX_PARAMS}",
                self.params.len()
            ));
        }
        for (name, value) in &self.params {
            if !is_param_name(name) {
                return bad(format!(
                    "the parameter name {name:?} is a lowercase letter, then up to 31 of a-z, 0-9 and '_'"
                ));
            }
            if value.len() > MAX_VALUE_BYTES {
                return bad(format!(
                    "the value of {name} is {} bytes; at most {MAX_VALUE_BYTES}",
                    value.len()
                ));
            }
            if value.chars().any(char::is_control) {
                return bad(format!("the value of {name} holds a control character"));
            }
        }
        if self.wait.is_zero() || self.wait > MAX_WAIT {
            return bad(format!(
                "a request waits between 1 second and {} days for its answer",
                MAX_WAIT.as_secs() / 86400
            ));
        }
        Ok(())
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Records a checked request in the ledger, `queued`.
pub fn ask(store: &dyn Store, ask: &Ask<'_>) -> Result<RequestRecord, RequestError> {
    ask.check()?;
    let now = now();
    let wait = i64::try_from(ask.wait.as_secs()).unwrap_or(i64::MAX);
    let record = RequestRecord {
        id: format!("rq-{}", uuid::Uuid::now_v7()),
        agency: ask.agency.to_owned(),
        query: ask.query.to_owned(),
        params: ask.params.clone(),
        state: RequestState::Queued,
        asked_by: ask.by.to_owned(),
        asked_at: now,
        deadline: now.saturating_add(wait),
        taken_at: None,
        finished_at: None,
        message_id: None,
        detail: None,
    };
    store
        .request(&RequestEvent::Ask(record))?
        .into_iter()
        .next()
        .ok_or_else(|| RequestError::Store(StoreError::Corrupt("a new request vanished".into())))
}

/// One request, as it stands now.
pub fn get(store: &dyn Store, id: &str) -> Result<Option<RequestRecord>, StoreError> {
    Ok(store
        .request(&RequestEvent::Get {
            id: id.to_owned(),
            now: now(),
        })?
        .into_iter()
        .next())
}

/// A request's time (Unix seconds, as the ledger keeps it) in RFC 3339, as the API and the
/// console show it; `None` out of range.
pub fn time_text(t: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .map(|t| crate::message::timestamp::format(&t))
}

fn rfc3339(t: i64) -> Value {
    json!(time_text(t))
}

/// A request as the API shows it (times in RFC 3339).
pub fn to_json(r: &RequestRecord) -> Value {
    json!({
        "request_id": r.id,
        "agency": r.agency,
        "query": r.query,
        "params": r.params,
        "state": r.state.as_str(),
        "asked_by": r.asked_by,
        "asked_at": rfc3339(r.asked_at),
        "deadline": rfc3339(r.deadline),
        "taken_at": r.taken_at.map_or(Value::Null, rfc3339),
        "finished_at": r.finished_at.map_or(Value::Null, rfc3339),
        "gateway_message_id": r.message_id,
        "detail": r.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(params: &[(&str, &str)]) -> Ask<'static> {
        Ask {
            agency: "careers",
            query: "case-updates",
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            wait: DEFAULT_WAIT,
            by: "olive",
        }
    }

    #[test]
    fn a_request_has_a_shape_every_agent_can_read() {
        assert!(ask(&[("since", "2026-12-01T00:00:00Z")]).check().is_ok());
        // The hub leaves the meaning of values to the agent: metacharacters pass here.
        assert!(ask(&[("name", "$(rm -rf /)")]).check().is_ok());
        for (params, why) in [
            (vec![("Since", "x")], "parameter name"),
            (vec![("since", "a\nb")], "control character"),
            (vec![("note", &*"x".repeat(1025))], "1025 bytes"),
        ] {
            let e = ask(&params).check().unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let mut bad = ask(&[]);
        bad.query = "Case Updates";
        assert!(bad.check().unwrap_err().to_string().contains("query name"));
        bad = ask(&[]);
        bad.wait = MAX_WAIT * 2;
        assert!(bad.check().is_err());
    }

    #[test]
    fn parameters_are_name_value_pairs_given_once() {
        let p = parse_params(["since=2026-12-01", "area=north=east"]).unwrap();
        assert_eq!(p["area"], "north=east");
        assert!(parse_params(["since"]).is_err());
        assert!(parse_params(["a=1", "a=2"]).is_err());
    }
}
