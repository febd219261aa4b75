//! The per-message writes of the PostgreSQL ledger (registering a new message, closing it),
//! committed in groups: the writes that an instance's threads make while its previous group
//! is in flight go out together, in one statement (one round trip, one commit).
//!
//! Why: most of a ledger write's cost in PostgreSQL is per statement, not per row (waking the
//! backend, starting the executor, committing and flushing the WAL): on the 2-core bench
//! machine, registering and closing four messages per statement cost PostgreSQL 97 us of CPU
//! per message, against 226 us one at a time (`bash bench/pg-batching.sh`).
//!
//! A registration alone runs `BEGIN_NEW` (the statement `begin`'s locked path runs too); a
//! closing alone is a group of one, so that what closing writes is said once (`GROUP`). A group
//! that PostgreSQL refuses has committed nothing, and is retried one write at a time, so that
//! one write's error stays its own; a group whose fate is unknown (the connection dropped)
//! fails each of its writes, as a single statement would.

use std::collections::HashSet;

use postgres::types::ToSql;
use time::OffsetDateTime;

use super::{BEGIN_NEW, Conn};
use crate::store::StoreError;

/// One per-message write.
pub(in crate::store) enum Write {
    /// A new message, in progress, unless its dedupe key is taken.
    Begin(NewRow),
    /// An in-progress message closed.
    Finish(Closing),
}

/// The columns of a new message's row.
pub(in crate::store) struct NewRow {
    pub id: crate::message::MessageId,
    pub agency: String,
    pub agency_message_id: Option<String>,
    pub sha256: String,
    pub size: i64,
    pub channel: &'static str,
    pub key: String,
    pub received_at: OffsetDateTime,
    /// Its first steps, as the JSON array `messages.steps` holds.
    pub steps: String,
}

/// How an in-progress message is closed.
pub(in crate::store) struct Closing {
    pub id: String,
    pub outcome: Outcome,
    /// The closing step, as a JSON array of one.
    pub step: String,
}

pub(in crate::store) enum Outcome {
    Forwarded {
        receipt_json: String,
    },
    Rejected {
        code: &'static str,
        detail: String,
        /// Release the dedupe key (a retryable refusal is no verdict on the message).
        release: bool,
    },
}

impl Write {
    fn id(&self) -> &str {
        match self {
            Write::Begin(row) => row.id.as_str(),
            Write::Finish(c) => &c.id,
        }
    }
}

/// Every queued write in one statement: the new rows inserted (a taken key skips its row),
/// then the closings applied to rows still in progress; returns the ids written.
const GROUP: &str = "WITH b AS (
        INSERT INTO messages (id, agency, agency_message_id, sha256, size, channel, status,
            dedupe_key, received_at, updated_at, owner, steps)
        SELECT id, agency, amid, sha, size, channel, 'in_progress', key, at, now(), $1::text,
            steps::jsonb
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                    $8::text[], $9::timestamptz[], $10::text[])
            WITH ORDINALITY AS t(id, agency, amid, sha, size, channel, key, at, steps, n)
        ORDER BY n
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id),
    f AS (
        UPDATE messages m SET
            status = u.status,
            receipt_json = u.receipt,
            rejection_code = u.code,
            rejection_detail = u.detail,
            dedupe_key = CASE WHEN u.release THEN NULL ELSE m.dedupe_key END,
            steps = m.steps || u.step::jsonb,
            updated_at = now(), finished_at = now(), owner = NULL
        FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                    $16::bool[], $17::text[])
            AS u(id, status, receipt, code, detail, release, step)
        WHERE m.id = u.id AND m.status = 'in_progress'
        RETURNING m.id)
    SELECT id FROM b UNION ALL SELECT id FROM f";

/// Runs `writes` for the instance `owner`: for each, whether it was written (false: the key
/// was taken, or the message was not in progress).
pub(super) fn commit(
    conn: &mut Conn,
    owner: &str,
    writes: &[Write],
) -> Vec<Result<bool, StoreError>> {
    if let [write] = writes {
        return vec![alone(conn, owner, write)];
    }
    match group(conn, owner, writes) {
        Ok(done) => writes.iter().map(|w| Ok(done.contains(w.id()))).collect(),
        Err(e) if e.as_db_error().is_some() => {
            tracing::debug!(error = %e, writes = writes.len(), "ledger group refused; writing one at a time");
            writes.iter().map(|w| alone(conn, owner, w)).collect()
        }
        Err(e) => writes
            .iter()
            .map(|_| Err(StoreError::GroupFailed(e.to_string())))
            .collect(),
    }
}

fn group(
    conn: &mut Conn,
    owner: &str,
    writes: &[Write],
) -> Result<HashSet<String>, postgres::Error> {
    let mut new = NewColumns::default();
    let mut closing = ClosingColumns::default();
    for write in writes {
        match write {
            Write::Begin(row) => new.push(row),
            Write::Finish(c) => closing.push(c),
        }
    }
    let statement = conn.prepared(GROUP)?;
    let params: [&(dyn ToSql + Sync); 17] = [
        &owner,
        &new.id,
        &new.agency,
        &new.agency_message_id,
        &new.sha256,
        &new.size,
        &new.channel,
        &new.key,
        &new.received_at,
        &new.steps,
        &closing.id,
        &closing.status,
        &closing.receipt,
        &closing.code,
        &closing.detail,
        &closing.release,
        &closing.step,
    ];
    let rows = conn.query(&statement, &params)?;
    rows.iter().map(|r| r.try_get::<_, String>(0)).collect()
}

/// One write in its own statement.
fn alone(conn: &mut Conn, owner: &str, write: &Write) -> Result<bool, StoreError> {
    match write {
        Write::Begin(row) => {
            let statement = conn.prepared(BEGIN_NEW)?;
            super::insert_new(&mut conn.client, &statement, row, owner)
        }
        Write::Finish(c) => Ok(group(conn, owner, std::slice::from_ref(write))?.contains(&c.id)),
    }
}

/// New rows as the group statement's arrays.
#[derive(Default)]
struct NewColumns<'a> {
    id: Vec<&'a str>,
    agency: Vec<&'a str>,
    agency_message_id: Vec<Option<&'a str>>,
    sha256: Vec<&'a str>,
    size: Vec<i64>,
    channel: Vec<&'a str>,
    key: Vec<&'a str>,
    received_at: Vec<OffsetDateTime>,
    steps: Vec<&'a str>,
}

impl<'a> NewColumns<'a> {
    fn push(&mut self, row: &'a NewRow) {
        self.id.push(row.id.as_str());
        self.agency.push(&row.agency);
        self.agency_message_id
            .push(row.agency_message_id.as_deref());
        self.sha256.push(&row.sha256);
        self.size.push(row.size);
        self.channel.push(row.channel);
        self.key.push(&row.key);
        self.received_at.push(row.received_at);
        self.steps.push(&row.steps);
    }
}

/// Closings as the group statement's arrays.
#[derive(Default)]
struct ClosingColumns<'a> {
    id: Vec<&'a str>,
    status: Vec<&'static str>,
    receipt: Vec<Option<&'a str>>,
    code: Vec<Option<&'a str>>,
    detail: Vec<Option<&'a str>>,
    release: Vec<bool>,
    step: Vec<&'a str>,
}

impl<'a> ClosingColumns<'a> {
    fn push(&mut self, c: &'a Closing) {
        self.id.push(&c.id);
        self.step.push(&c.step);
        match &c.outcome {
            Outcome::Forwarded { receipt_json } => {
                self.status.push("forwarded");
                self.receipt.push(Some(receipt_json));
                self.code.push(None);
                self.detail.push(None);
                self.release.push(false);
            }
            Outcome::Rejected {
                code,
                detail,
                release,
            } => {
                self.status.push("rejected");
                self.receipt.push(None);
                self.code.push(Some(code));
                self.detail.push(Some(detail));
                self.release.push(*release);
            }
        }
    }
}

/// Needs the PostgreSQL of `scripts/test-cluster` (`$GATEWAY_LEDGER_URL`), which runs them.
#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use r2d2::ManageConnection;

    use super::*;
    use crate::message::{Channel, MessageId, Receipt, timestamp};
    use crate::store::postgres::{Manager, PostgresStore, connection_config, new_row, steps_json};
    use crate::store::{Begin, NewMessage, Status, Step, Store};

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    /// A store on a fresh database, and a connection of its own to run groups on.
    fn fresh() -> (PostgresStore, Conn) {
        let base = std::env::var("GATEWAY_LEDGER_URL").expect("run by scripts/test-cluster");
        let root = base.rsplit_once('/').expect("a URL with a database").0;
        let db = format!(
            "unit_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin =
            postgres::Client::connect(&format!("{root}/postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let url = format!("{root}/{db}");
        let store = PostgresStore::open(&url, 2, Duration::from_secs(60)).unwrap();
        let conn = Manager(connection_config(&url, None).unwrap())
            .connect()
            .unwrap();
        (store, conn)
    }

    #[test]
    #[ignore = "needs PostgreSQL: scripts/test-cluster"]
    fn the_console_lists_counts_and_releases_and_sign_ins_are_counted() {
        let (store, _) = fresh();
        crate::store::browse::contract::run(&store);
    }

    #[test]
    #[ignore = "needs PostgreSQL: scripts/test-cluster"]
    fn requests_are_handed_out_once_closed_once_and_timed_out() {
        let (store, _) = fresh();
        crate::store::requests::contract::run(&store);
    }

    fn message(amid: &str, sha: &str) -> NewMessage {
        NewMessage {
            id: MessageId::new(),
            agency: "police".into(),
            agency_message_id: Some(amid.into()),
            sha256: sha.into(),
            size: 10,
            channel: Channel::Https,
            received_at: timestamp::now(),
            history: Vec::new(),
        }
    }

    fn begin(m: &NewMessage) -> Write {
        let key = crate::store::dedupe_key(m, &m.sha256);
        Write::Begin(new_row(m, &m.sha256, &key).unwrap())
    }

    fn close(m: &NewMessage, outcome: Outcome, step: Step) -> Write {
        Write::Finish(Closing {
            id: m.id.to_string(),
            outcome,
            step: steps_json(&[(step, Some("t"), timestamp::now())]).unwrap(),
        })
    }

    fn written(outs: Vec<Result<bool, StoreError>>) -> Vec<bool> {
        outs.into_iter().map(|o| o.unwrap()).collect()
    }

    #[test]
    #[ignore = "needs PostgreSQL (scripts/test-cluster)"]
    fn a_group_registers_and_closes_messages_in_one_statement() {
        let (store, mut conn) = fresh();
        let sha = "ab".repeat(32);
        let earlier = message("E", &sha);
        assert!(matches!(store.begin(&earlier).unwrap(), Begin::New(_)));
        let (one, two) = (message("1", &sha), message("2", &sha));
        let same_key = message("1", &sha);
        let never_begun = message("9", &sha);
        let receipt = Receipt {
            gateway_message_id: earlier.id.clone(),
            agency: "police".into(),
            agency_message_id: Some("E".into()),
            sha256: sha.clone(),
            schema_id: "x".into(),
            forwarded_at: timestamp::now(),
            queue: "q".into(),
        };
        let forwarded = Outcome::Forwarded {
            receipt_json: serde_json::to_string(&receipt).unwrap(),
        };
        let outs = commit(
            &mut conn,
            store.instance(),
            &[
                begin(&one),
                begin(&two),
                begin(&same_key),
                close(&earlier, forwarded, Step::Forwarded),
                close(
                    &never_begun,
                    Outcome::Forwarded {
                        receipt_json: "{}".into(),
                    },
                    Step::Forwarded,
                ),
            ],
        );
        // The second registration of key "1" in the group is skipped, as is closing a
        // message that is not in progress.
        assert_eq!(written(outs), [true, true, false, true, false]);
        let rec = store.get(&one.id).unwrap().unwrap();
        assert_eq!(rec.status, Status::InProgress);
        assert!(store.is_mine(&rec));
        assert!(store.get(&same_key.id).unwrap().is_none());
        let done = store.get(&earlier.id).unwrap().unwrap();
        assert_eq!(done.status, Status::Forwarded);
        assert_eq!(done.receipt().unwrap().unwrap(), receipt);
        let steps: Vec<Step> = store
            .steps(&earlier.id)
            .unwrap()
            .iter()
            .map(|s| s.step)
            .collect();
        assert_eq!(steps, [Step::Received, Step::Forwarded]);

        // Refusals in a group: a retryable one releases the key, a verdict keeps it.
        let refused = |code: crate::rejection::Code| Outcome::Rejected {
            code: code.as_str(),
            detail: "why".into(),
            release: code.retryable(),
        };
        let outs = commit(
            &mut conn,
            store.instance(),
            &[
                close(
                    &one,
                    refused(crate::rejection::Code::SchemaInvalid),
                    Step::Rejected,
                ),
                close(
                    &two,
                    refused(crate::rejection::Code::QueueUnavailable),
                    Step::Rejected,
                ),
            ],
        );
        assert_eq!(written(outs), [true, true]);
        let rec = store.get(&one.id).unwrap().unwrap();
        assert_eq!(
            (
                rec.status,
                rec.rejection_code.as_deref(),
                rec.rejection_detail.as_deref()
            ),
            (Status::Rejected, Some("schema_invalid"), Some("why"))
        );
        assert!(
            matches!(store.begin(&message("1", &sha)).unwrap(), Begin::Duplicate(r) if r.id == one.id)
        );
        assert!(matches!(
            store.begin(&message("2", &sha)).unwrap(),
            Begin::New(_)
        ));
    }

    #[test]
    #[ignore = "needs PostgreSQL (scripts/test-cluster)"]
    fn a_group_postgresql_refuses_is_written_one_write_at_a_time() {
        let (store, mut conn) = fresh();
        let sha = "cd".repeat(32);
        let first = message("A", &sha);
        assert!(matches!(store.begin(&first).unwrap(), Begin::New(_)));
        // Another message under an id already in use: the whole statement is refused.
        let mut clash = message("B", &sha);
        clash.id = first.id.clone();
        let fine = message("C", &sha);
        let outs = commit(&mut conn, store.instance(), &[begin(&clash), begin(&fine)]);
        assert!(
            matches!(&outs[0], Err(StoreError::IdInUse(id)) if *id == first.id),
            "{outs:?}"
        );
        assert!(matches!(outs[1], Ok(true)), "{outs:?}");
        assert_eq!(
            store.get(&fine.id).unwrap().unwrap().status,
            Status::InProgress
        );
    }
}
