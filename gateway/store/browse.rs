//! Reading the ledger for people: the console's list of messages (filters, newest first,
//! paged by the last row seen rather than by an offset, so a page costs the same however deep)
//! and its per-agency counts by hour; and the release of a rejected message's dedupe key
//! when an operator re-runs it.

use time::OffsetDateTime;

use super::{MessageRecord, Status, StoreError};
use crate::message::{Channel, MessageId, timestamp};

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only this agency's.
    pub agency: Option<String>,
    /// Only those that came this way.
    pub channel: Option<Channel>,
    /// Only those forwarded as this schema (the receipt's `schema_id`).
    pub schema_id: Option<String>,
    /// Only those with this status.
    pub status: Option<Status>,
    /// Received at or after.
    pub from: Option<OffsetDateTime>,
    /// Received before.
    pub to: Option<OffsetDateTime>,
    /// The last row of the previous page: only rows after it (older, or as old with a
    /// smaller id).
    pub after: Option<(OffsetDateTime, MessageId)>,
    /// Most rows returned (at most 500).
    pub limit: u32,
}

/// Messages of one agency in one status received in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// The agency.
    pub agency: String,
    /// The hour, `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    /// The status.
    pub status: Status,
    /// How many.
    pub count: u64,
    /// The latest arrival among them.
    pub last: OffsetDateTime,
}

fn limit(q: &MessageQuery) -> i64 {
    i64::from(q.limit.clamp(1, 500))
}

const SQLITE_LIST: &str = "SELECT {cols} FROM messages
    WHERE (?1 IS NULL OR agency = ?1)
      AND (?2 IS NULL OR channel = ?2)
      AND (?3 IS NULL OR json_extract(receipt_json, '$.schema_id') = ?3)
      AND (?4 IS NULL OR status = ?4)
      AND (?5 IS NULL OR received_at >= ?5)
      AND (?6 IS NULL OR received_at < ?6)
      AND (?7 IS NULL OR received_at < ?7 OR (received_at = ?7 AND id < ?8))
    ORDER BY received_at DESC, id DESC
    LIMIT ?9";

const POSTGRES_LIST: &str = "SELECT {cols} FROM messages
    WHERE ($1::text IS NULL OR agency = $1::text)
      AND ($2::text IS NULL OR channel = $2::text)
      AND ($3::text IS NULL OR (receipt_json::jsonb ->> 'schema_id') = $3::text)
      AND ($4::text IS NULL OR status = $4::text)
      AND ($5::timestamptz IS NULL OR received_at >= $5::timestamptz)
      AND ($6::timestamptz IS NULL OR received_at < $6::timestamptz)
      AND ($7::timestamptz IS NULL OR received_at < $7::timestamptz
           OR (received_at = $7::timestamptz AND id < $8::text))
    ORDER BY received_at DESC, id DESC
    LIMIT $9";

const SQLITE_HOURS: &str = "SELECT agency, substr(received_at, 1, 13), status, count(*),
        max(received_at)
    FROM messages WHERE received_at >= ?1 GROUP BY 1, 2, 3";

const POSTGRES_HOURS: &str = "SELECT agency,
        to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24'), status, count(*),
        max(received_at)
    FROM messages WHERE received_at >= $1 GROUP BY 1, 2, 3";

const SQLITE_RELEASE: &str =
    "UPDATE messages SET dedupe_key = NULL WHERE id = ?1 AND status = 'rejected'";
const POSTGRES_RELEASE: &str =
    "UPDATE messages SET dedupe_key = NULL WHERE id = $1 AND status = 'rejected'";

/// The list on a SQLite ledger (timestamps are sortable text there).
pub(super) fn sqlite_list(
    conn: &rusqlite::Connection,
    q: &MessageQuery,
) -> Result<Vec<MessageRecord>, StoreError> {
    let ts = |t: &Option<OffsetDateTime>| t.as_ref().map(timestamp::format);
    let sql = SQLITE_LIST.replace("{cols}", super::sqlite::RECORD_COLUMNS);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        rusqlite::params![
            q.agency,
            q.channel.map(Channel::as_str),
            q.schema_id,
            q.status.map(Status::as_str),
            ts(&q.from),
            ts(&q.to),
            q.after.as_ref().map(|(t, _)| timestamp::format(t)),
            q.after.as_ref().map(|(_, id)| id.as_str().to_owned()),
            limit(q),
        ],
        super::sqlite::record_from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The list on a PostgreSQL ledger.
pub(super) fn postgres_list(
    client: &mut impl postgres::GenericClient,
    q: &MessageQuery,
) -> Result<Vec<MessageRecord>, StoreError> {
    let sql = POSTGRES_LIST.replace("{cols}", super::postgres::RECORD_COLUMNS);
    let after_id = q.after.as_ref().map(|(_, id)| id.as_str().to_owned());
    let rows = client.query(
        &sql,
        &[
            &q.agency,
            &q.channel.map(Channel::as_str),
            &q.schema_id,
            &q.status.map(Status::as_str),
            &q.from,
            &q.to,
            &q.after.as_ref().map(|(t, _)| *t),
            &after_id,
            &limit(q),
        ],
    )?;
    rows.iter().map(super::postgres::record).collect()
}

fn hour_count(
    agency: String,
    hour: String,
    status: &str,
    count: i64,
    last: OffsetDateTime,
) -> Result<HourCount, StoreError> {
    Ok(HourCount {
        agency,
        hour,
        status: status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("status: {e}")))?,
        count: u64::try_from(count).unwrap_or(0),
        last,
    })
}

/// Counts by agency, hour and status since `since`, on a SQLite ledger.
pub(super) fn sqlite_hours(
    conn: &rusqlite::Connection,
    since: OffsetDateTime,
) -> Result<Vec<HourCount>, StoreError> {
    let mut stmt = conn.prepare_cached(SQLITE_HOURS)?;
    let rows = stmt.query_map([timestamp::format(&since)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (agency, hour, status, count, last) = row?;
        let last = timestamp::parse(&last).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        out.push(hour_count(agency, hour, &status, count, last)?);
    }
    Ok(out)
}

/// Counts by agency, hour and status since `since`, on a PostgreSQL ledger.
pub(super) fn postgres_hours(
    client: &mut impl postgres::GenericClient,
    since: OffsetDateTime,
) -> Result<Vec<HourCount>, StoreError> {
    client
        .query(POSTGRES_HOURS, &[&since])?
        .iter()
        .map(|r| {
            let status: String = r.try_get(2)?;
            hour_count(
                r.try_get(0)?,
                r.try_get(1)?,
                &status,
                r.try_get(3)?,
                r.try_get(4)?,
            )
        })
        .collect()
}

/// Releases a rejected message's dedupe key on a SQLite ledger; whether it was rejected.
pub(super) fn sqlite_release(
    conn: &rusqlite::Connection,
    id: &MessageId,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(SQLITE_RELEASE)?
        .execute([id.as_str()])?
        > 0)
}

/// Releases a rejected message's dedupe key on a PostgreSQL ledger.
pub(super) fn postgres_release(
    client: &mut impl postgres::GenericClient,
    id: &MessageId,
) -> Result<bool, StoreError> {
    Ok(client.execute(POSTGRES_RELEASE, &[&id.as_str()])? > 0)
}

/// What every ledger must do for the console and for sign-ins, run against SQLite by the unit
/// tests and against PostgreSQL by `scripts/test-cluster`.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;
    use crate::message::Receipt;
    use crate::rejection::Code;
    use crate::store::{Begin, NewMessage, SignInEvent, Store};

    fn message(agency: &str, channel: Channel, n: u32) -> NewMessage {
        NewMessage {
            id: MessageId::new(),
            agency: agency.into(),
            agency_message_id: Some(format!("m-{n}")),
            sha256: format!("{n:064x}"),
            size: 100,
            channel,
            received_at: timestamp::now(),
            history: Vec::new(),
        }
    }

    fn registered(store: &dyn Store, m: &NewMessage) -> MessageId {
        match store.begin(m).unwrap() {
            Begin::New(id) => id,
            other => panic!("not new: {other:?}"),
        }
    }

    fn forward(store: &dyn Store, m: &NewMessage, schema: &str) {
        let id = registered(store, m);
        let receipt = Receipt {
            gateway_message_id: id.clone(),
            agency: m.agency.clone(),
            agency_message_id: m.agency_message_id.clone(),
            sha256: m.sha256.clone(),
            schema_id: schema.into(),
            forwarded_at: timestamp::now(),
            queue: "q".into(),
        };
        store.finish_forwarded(&id, &receipt).unwrap();
    }

    /// Lists, filters, pages, counts, releases and counts sign-ins on `store` (empty).
    pub(crate) fn run(store: &dyn Store) {
        let (bad, bad_id, all) = lists(store);
        releases(store, bad, &bad_id, &all);
        counts_sign_ins(store);
    }

    fn lists(store: &dyn Store) -> (NewMessage, MessageId, Vec<MessageRecord>) {
        for n in 0..5 {
            forward(store, &message("police", Channel::Https, n), "police-1");
        }
        forward(store, &message("housing", Channel::Folder, 10), "housing-1");
        let bad = message("police", Channel::Web, 20);
        let bad_id = registered(store, &bad);
        store
            .finish_rejected(&bad_id, Code::SchemaInvalid, "1 violation")
            .unwrap();

        let all = store
            .list(&MessageQuery {
                limit: 100,
                ..MessageQuery::default()
            })
            .unwrap();
        assert_eq!(all.len(), 7);
        assert!(
            all.windows(2)
                .all(|w| (w[0].received_at, &w[0].id) >= (w[1].received_at, &w[1].id)),
            "newest first"
        );
        let q = |q: MessageQuery| store.list(&MessageQuery { limit: 100, ..q }).unwrap().len();
        assert_eq!(
            q(MessageQuery {
                agency: Some("housing".into()),
                ..MessageQuery::default()
            }),
            1
        );
        assert_eq!(
            q(MessageQuery {
                channel: Some(Channel::Web),
                ..MessageQuery::default()
            }),
            1
        );
        assert_eq!(
            q(MessageQuery {
                schema_id: Some("police-1".into()),
                ..MessageQuery::default()
            }),
            5
        );
        assert_eq!(
            q(MessageQuery {
                status: Some(Status::Rejected),
                ..MessageQuery::default()
            }),
            1
        );
        let future = timestamp::now() + time::Duration::hours(1);
        assert_eq!(
            q(MessageQuery {
                from: Some(future),
                ..MessageQuery::default()
            }),
            0
        );
        assert_eq!(
            q(MessageQuery {
                to: Some(future),
                ..MessageQuery::default()
            }),
            7
        );

        pages(store, &all);
        counts(store);
        (bad, bad_id, all)
    }

    fn pages(store: &dyn Store, all: &[MessageRecord]) {
        // Pages of three, each after the last row of the one before: every row once.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list(&MessageQuery {
                    limit: 3,
                    after: after.clone(),
                    ..MessageQuery::default()
                })
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| (r.received_at, r.id.clone()));
            seen.extend(page.into_iter().map(|r| r.id));
        }
        assert_eq!(seen, all.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    }

    fn counts(store: &dyn Store) {
        let hours = store
            .hours(timestamp::now() - time::Duration::days(7))
            .unwrap();
        let count = |agency: &str, status: Status| -> u64 {
            hours
                .iter()
                .filter(|h| h.agency == agency && h.status == status)
                .map(|h| h.count)
                .sum()
        };
        assert_eq!(count("police", Status::Forwarded), 5);
        assert_eq!(count("police", Status::Rejected), 1);
        assert_eq!(count("housing", Status::Forwarded), 1);
        assert!(
            hours
                .iter()
                .all(|h| h.hour.len() == 13 && h.hour.as_bytes()[10] == b'T')
        );
    }

    fn releases(store: &dyn Store, bad: NewMessage, bad_id: &MessageId, all: &[MessageRecord]) {
        // A rejected message's resend is its duplicate until an operator releases it.
        let again = NewMessage {
            id: MessageId::new(),
            ..bad.clone()
        };
        assert!(matches!(store.begin(&again).unwrap(), Begin::Duplicate(_)));
        assert!(store.release(bad_id).unwrap());
        assert!(
            !store.release(&all[all.len() - 1].id).unwrap(),
            "a forwarded one is not released"
        );
        let third = NewMessage {
            id: MessageId::new(),
            ..bad
        };
        assert!(matches!(store.begin(&third).unwrap(), Begin::New(_)));
    }

    fn counts_sign_ins(store: &dyn Store) {
        // Sign-ins: failures count up to a lock; a code's step is accepted once.
        let failed = SignInEvent::Failed {
            max_failures: 2,
            lock_until: 2_000,
        };
        assert_eq!(store.sign_in("a#0", SignInEvent::Look).unwrap().failures, 0);
        assert_eq!(store.sign_in("a#0", failed).unwrap().failures, 1);
        let locked = store.sign_in("a#0", failed).unwrap();
        assert_eq!(locked.locked_until, Some(2_000));
        let code = SignInEvent::Succeeded { totp_step: Some(7) };
        assert!(store.sign_in("a#0", code).unwrap().accepted);
        assert!(
            !store.sign_in("a#0", code).unwrap().accepted,
            "step 7 twice"
        );
        let open = store.sign_in("a#0", SignInEvent::Look).unwrap();
        assert_eq!((open.failures, open.locked_until), (0, None));
        assert!(
            store
                .sign_in("b#0", SignInEvent::Succeeded { totp_step: None })
                .unwrap()
                .accepted
        );
    }
}
