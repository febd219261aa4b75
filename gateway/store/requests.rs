//! The hub's requests to agencies (table `requests`), in SQL both SQLite and PostgreSQL run.
//!
//! A request is `queued` when an operator asks, `taken` when the agency's agent collects it,
//! and ends `answered` (by a message, named here), `failed` (the agent's reason, or the
//! answer's rejection) or `timed_out` (its deadline passed first). Every change is one
//! conditional statement, so two instances (or an agent and an expiring deadline) racing on
//! one request cannot both win: a request is handed out once and closed once.

use super::{RequestEvent, RequestRecord, RequestState, StoreError};

/// The table, for both ledgers' migrations.
pub(super) const TABLE: &str = "CREATE TABLE requests (
        id          TEXT PRIMARY KEY NOT NULL,
        agency      TEXT NOT NULL,
        query       TEXT NOT NULL,
        params      TEXT NOT NULL,
        state       TEXT NOT NULL,
        asked_by    TEXT NOT NULL,
        asked_at    BIGINT NOT NULL,
        deadline    BIGINT NOT NULL,
        taken_at    BIGINT,
        finished_at BIGINT,
        message_id  TEXT,
        detail      TEXT
    );
    CREATE INDEX requests_waiting ON requests (agency, state, asked_at);";

const COLUMNS: &str = "id, agency, query, params, state, asked_by, asked_at, deadline, taken_at, \
     finished_at, message_id, detail";

const ASK: &str = "INSERT INTO requests (id, agency, query, params, state, asked_by, asked_at, \
     deadline) VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7)";

/// Requests whose deadline passed unanswered end `timed_out` (run before every read).
const EXPIRE: &str = "UPDATE requests SET state = 'timed_out', finished_at = deadline
    WHERE state IN ('queued', 'taken') AND deadline <= $1";

/// The oldest queued request of an agency, taken. The outer `state = 'queued'` is checked
/// again on the row itself: of two instances that picked the same row, one updates nothing.
const TAKE: &str = "UPDATE requests SET state = 'taken', taken_at = $2
    WHERE state = 'queued' AND id = (
        SELECT id FROM requests WHERE agency = $1 AND state = 'queued'
        ORDER BY asked_at, id LIMIT 1)
    RETURNING id";

/// Closes a request still open; a request closed already is left as it is.
const CLOSE: &str = "UPDATE requests SET state = $2, finished_at = $3, message_id = $4,
        detail = $5
    WHERE id = $1 AND state IN ('queued', 'taken')";

fn select_one() -> String {
    format!("SELECT {COLUMNS} FROM requests WHERE id = $1")
}

fn select_list() -> String {
    format!(
        "SELECT {COLUMNS} FROM requests WHERE ($1 = '' OR agency = $1)
         ORDER BY asked_at DESC, id DESC LIMIT $2"
    )
}

/// One row, as read by either backend.
type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn record(row: Row) -> Result<RequestRecord, StoreError> {
    let (id, agency, query, params, state, asked_by, asked_at, deadline, taken, finished, m, d) =
        row;
    let state: RequestState = state
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("request {id}: {e}")))?;
    let params = serde_json::from_str(&params)
        .map_err(|e| StoreError::Corrupt(format!("request {id}: parameters: {e}")))?;
    Ok(RequestRecord {
        id,
        agency,
        query,
        params,
        state,
        asked_by,
        asked_at,
        deadline,
        taken_at: taken,
        finished_at: finished,
        message_id: m,
        detail: d,
    })
}

/// SQLite numbers its parameters `?1`, PostgreSQL `$1`.
fn sqlite_text(sql: &str) -> String {
    sql.replace('$', "?")
}

/// What a close writes.
struct Close<'a> {
    id: &'a str,
    state: RequestState,
    now: i64,
    message: Option<&'a str>,
    detail: Option<&'a str>,
}

fn close_values(event: &RequestEvent) -> Option<Close<'_>> {
    match event {
        RequestEvent::Answered {
            id,
            message_id,
            now,
        } => Some(Close {
            id,
            state: RequestState::Answered,
            now: *now,
            message: Some(message_id),
            detail: None,
        }),
        RequestEvent::Failed { id, detail, now } => Some(Close {
            id,
            state: RequestState::Failed,
            now: *now,
            message: None,
            detail: Some(detail),
        }),
        _ => None,
    }
}

/// One event on a SQLite ledger: the requests it concerns, as they are afterwards.
pub(super) fn sqlite(
    conn: &rusqlite::Connection,
    event: &RequestEvent,
) -> Result<Vec<RequestRecord>, StoreError> {
    use rusqlite::OptionalExtension;
    let read = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
        ))
    };
    let one = |id: &str| -> Result<Vec<RequestRecord>, StoreError> {
        let row = conn
            .prepare_cached(&sqlite_text(&select_one()))?
            .query_row([id], read)
            .optional()?;
        row.map(record).into_iter().collect()
    };
    let expire = |now: i64| conn.prepare_cached(&sqlite_text(EXPIRE))?.execute([now]);
    match event {
        RequestEvent::Ask(r) => {
            let params = serde_json::to_string(&r.params)?;
            conn.prepare_cached(&sqlite_text(ASK))?
                .execute(rusqlite::params![
                    r.id, r.agency, r.query, params, r.asked_by, r.asked_at, r.deadline
                ])?;
            one(&r.id)
        }
        RequestEvent::Take { agency, now } => {
            expire(*now)?;
            let taken: Option<String> = conn
                .prepare_cached(&sqlite_text(TAKE))?
                .query_row(rusqlite::params![agency, now], |r| r.get(0))
                .optional()?;
            match taken {
                Some(id) => one(&id),
                None => Ok(Vec::new()),
            }
        }
        RequestEvent::Get { id, now } => {
            expire(*now)?;
            one(id)
        }
        RequestEvent::List { agency, limit, now } => {
            expire(*now)?;
            let mut stmt = conn.prepare_cached(&sqlite_text(&select_list()))?;
            let rows = stmt.query_map(
                rusqlite::params![agency.as_deref().unwrap_or(""), i64::from(*limit)],
                read,
            )?;
            rows.map(|r| record(r?)).collect()
        }
        RequestEvent::Answered { .. } | RequestEvent::Failed { .. } => {
            let Some(Close {
                id,
                state,
                now,
                message,
                detail,
            }) = close_values(event)
            else {
                return Ok(Vec::new());
            };
            expire(now)?;
            conn.prepare_cached(&sqlite_text(CLOSE))?
                .execute(rusqlite::params![id, state.as_str(), now, message, detail])?;
            one(id)
        }
    }
}

/// One event on a PostgreSQL ledger: the requests it concerns, as they are afterwards.
pub(super) fn postgres(
    client: &mut impl postgres::GenericClient,
    event: &RequestEvent,
) -> Result<Vec<RequestRecord>, StoreError> {
    fn read(r: &postgres::Row) -> Result<Row, postgres::Error> {
        Ok((
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
            r.try_get(7)?,
            r.try_get(8)?,
            r.try_get(9)?,
            r.try_get(10)?,
            r.try_get(11)?,
        ))
    }
    fn one(
        client: &mut impl postgres::GenericClient,
        id: &str,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let row = client.query_opt(&select_one(), &[&id])?;
        row.map(|r| record(read(&r)?)).into_iter().collect()
    }
    match event {
        RequestEvent::Ask(r) => {
            let params = serde_json::to_string(&r.params)?;
            client.execute(
                ASK,
                &[
                    &r.id,
                    &r.agency,
                    &r.query,
                    &params,
                    &r.asked_by,
                    &r.asked_at,
                    &r.deadline,
                ],
            )?;
            // After the insert's commit, so a listener woken by it finds the request.
            client.execute(
                "SELECT pg_notify($1, $2)",
                &[&super::postgres::REQUESTS_CHANNEL, &r.agency],
            )?;
            one(client, &r.id)
        }
        RequestEvent::Take { agency, now } => {
            client.execute(EXPIRE, &[now])?;
            let taken = client.query_opt(TAKE, &[agency, now])?;
            match taken {
                Some(row) => {
                    let id: String = row.try_get(0)?;
                    one(client, &id)
                }
                None => Ok(Vec::new()),
            }
        }
        RequestEvent::Get { id, now } => {
            client.execute(EXPIRE, &[now])?;
            one(client, id)
        }
        RequestEvent::List { agency, limit, now } => {
            client.execute(EXPIRE, &[now])?;
            let agency = agency.as_deref().unwrap_or("");
            let rows = client.query(&select_list(), &[&agency, &i64::from(*limit)])?;
            rows.iter().map(|r| record(read(r)?)).collect()
        }
        RequestEvent::Answered { .. } | RequestEvent::Failed { .. } => {
            let Some(Close {
                id,
                state,
                now,
                message,
                detail,
            }) = close_values(event)
            else {
                return Ok(Vec::new());
            };
            client.execute(EXPIRE, &[&now])?;
            client.execute(CLOSE, &[&id, &state.as_str(), &now, &message, &detail])?;
            one(client, id)
        }
    }
}

/// What every ledger must do with requests (run on SQLite by the unit tests, on PostgreSQL
/// by `scripts/test-cluster`).
#[cfg(test)]
pub(crate) mod contract {
    use crate::store::{RequestEvent, RequestRecord, RequestState, Store};

    fn asked(id: &str, agency: &str, at: i64, deadline: i64) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            agency: agency.into(),
            query: "case-updates".into(),
            params: [("since".to_owned(), "2026-12-01T00:00:00Z".to_owned())].into(),
            state: RequestState::Queued,
            asked_by: "olive".into(),
            asked_at: at,
            deadline,
            taken_at: None,
            finished_at: None,
            message_id: None,
            detail: None,
        }
    }

    fn one(store: &dyn Store, ev: RequestEvent) -> Option<RequestRecord> {
        store.request(&ev).unwrap().into_iter().next()
    }

    fn take(store: &dyn Store, agency: &str, now: i64) -> Option<RequestRecord> {
        one(
            store,
            RequestEvent::Take {
                agency: agency.into(),
                now,
            },
        )
    }

    pub(crate) fn run(store: &dyn Store) {
        let t = 1_800_000_000;
        let bell = store
            .request_bell()
            .expect("a ledger's store rings for requests");
        let (mut careers, mut school) = (bell.listen("careers"), bell.listen("school"));
        for (id, agency, at) in [
            ("rq-a", "careers", t),
            ("rq-b", "careers", t + 1),
            ("rq-c", "police", t),
        ] {
            let r = one(store, RequestEvent::Ask(asked(id, agency, at, at + 60))).unwrap();
            assert_eq!(r.state, RequestState::Queued);
            assert_eq!(r.params["since"], "2026-12-01T00:00:00Z");
        }
        assert!(careers.rung(), "asking rings the agency's bell");
        assert!(!school.rung(), "and no other agency's");
        // Oldest first, each handed out once, only to its agency.
        let a = take(store, "careers", t + 2).unwrap();
        assert_eq!(
            (a.id.as_str(), a.state, a.taken_at),
            ("rq-a", RequestState::Taken, Some(t + 2))
        );
        assert_eq!(take(store, "careers", t + 2).unwrap().id, "rq-b");
        assert_eq!(take(store, "careers", t + 2), None);
        // Answered once: a later failure report changes nothing.
        let done = one(
            store,
            RequestEvent::Answered {
                id: "rq-a".into(),
                message_id: "m-1".into(),
                now: t + 3,
            },
        )
        .unwrap();
        assert_eq!(
            (done.state, done.message_id.as_deref(), done.finished_at),
            (RequestState::Answered, Some("m-1"), Some(t + 3))
        );
        let still = one(
            store,
            RequestEvent::Failed {
                id: "rq-a".into(),
                detail: "late".into(),
                now: t + 4,
            },
        )
        .unwrap();
        assert_eq!((still.state, still.detail), (RequestState::Answered, None));
        let failed = one(
            store,
            RequestEvent::Failed {
                id: "rq-b".into(),
                detail: "since: missing".into(),
                now: t + 4,
            },
        )
        .unwrap();
        assert_eq!(
            (failed.state, failed.detail.as_deref()),
            (RequestState::Failed, Some("since: missing"))
        );
        // Unanswered past its deadline: timed out, and no longer handed out.
        let late = one(
            store,
            RequestEvent::Get {
                id: "rq-c".into(),
                now: t + 61,
            },
        )
        .unwrap();
        assert_eq!(
            (late.state, late.finished_at),
            (RequestState::TimedOut, Some(t + 60))
        );
        assert_eq!(take(store, "police", t + 61), None);
        let answered_late = one(
            store,
            RequestEvent::Answered {
                id: "rq-c".into(),
                message_id: "m-2".into(),
                now: t + 62,
            },
        )
        .unwrap();
        assert_eq!(answered_late.state, RequestState::TimedOut);
        // Listed newest first, per agency or all.
        let careers = store
            .request(&RequestEvent::List {
                agency: Some("careers".into()),
                limit: 10,
                now: t + 62,
            })
            .unwrap();
        assert_eq!(
            careers.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["rq-b", "rq-a"]
        );
        let all = store
            .request(&RequestEvent::List {
                agency: None,
                limit: 2,
                now: t + 62,
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            one(
                store,
                RequestEvent::Get {
                    id: "rq-none".into(),
                    now: t
                }
            ),
            None
        );
    }
}
