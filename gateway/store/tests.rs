use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::*;
use crate::message::Receipt;
use crate::rejection::{Code, Located, Rejection, Violations};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("ledger.db")).unwrap()
}

/// A clock that moves only when the test moves it.
#[derive(Clone)]
struct TestClock(Arc<Mutex<OffsetDateTime>>);

impl TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// A store (with the default stale-after period) whose time is the returned clock's.
fn open_with_clock(dir: &tempfile::TempDir) -> (SqliteStore, TestClock) {
    let clock = TestClock(Arc::new(Mutex::new(timestamp::now())));
    let read = clock.clone();
    (open(dir).with_clock(move || read.now()), clock)
}

fn message(agency_message_id: Option<&str>, sha256: &str) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        agency: "tax-office".into(),
        agency_message_id: agency_message_id.map(str::to_owned),
        sha256: sha256.into(),
        size: 1234,
        channel: Channel::Https,
        received_at: timestamp::now(),
        history: vec![
            PendingStep::now(Step::Opened, None),
            PendingStep::now(Step::Verified, Some("signer ab12")),
            PendingStep::now(Step::Validated, Some("schema tax-v1")),
        ],
    }
}

fn receipt(id: &MessageId, m: &NewMessage) -> Receipt {
    Receipt {
        gateway_message_id: id.clone(),
        agency: m.agency.clone(),
        agency_message_id: m.agency_message_id.clone(),
        sha256: m.sha256.clone(),
        schema_id: "tax-v1".into(),
        forwarded_at: timestamp::now(),
        queue: "outbox/hub".into(),
    }
}

fn new_id(b: Begin) -> MessageId {
    match b {
        Begin::New(id) => id,
        other => panic!("expected New, got {other:?}"),
    }
}

fn step_names(store: &SqliteStore, id: &MessageId) -> Vec<Step> {
    store
        .steps(id)
        .unwrap()
        .into_iter()
        .map(|s| s.step)
        .collect()
}

fn user_version(conn: &rusqlite::Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn begin_registers_a_new_message_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    assert_eq!(id, m.id);
    let rec = store.get(&id).unwrap().unwrap();
    assert_eq!(rec.status, Status::InProgress);
    assert_eq!(rec.agency, "tax-office");
    assert_eq!(rec.agency_message_id.as_deref(), Some("M-1"));
    assert_eq!(rec.sha256, SHA_A);
    assert_eq!(rec.size, 1234);
    assert_eq!(rec.channel, Channel::Https);
    assert_eq!(rec.received_at, m.received_at);
    assert!(rec.finished_at.is_none());
    assert!(rec.rejection_code.is_none() && rec.receipt_json.is_none());
}

#[test]
fn begin_returns_duplicate_for_identical_resend() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    let original_receipt = receipt(&id, &m);
    store.finish_forwarded(&id, &original_receipt).unwrap();

    let resend = message(Some("M-1"), SHA_A);
    match store.begin(&resend).unwrap() {
        Begin::Duplicate(rec) => {
            assert_eq!(rec.id, id);
            assert_eq!(rec.status, Status::Forwarded);
            assert_eq!(rec.receipt().unwrap().unwrap(), original_receipt);
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    // The resend left no trace: no record under its id.
    assert!(store.get(&resend.id).unwrap().is_none());
}

#[test]
fn begin_accepts_uppercase_hex_as_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = new_id(store.begin(&message(Some("M-1"), SHA_A)).unwrap());
    store
        .finish_rejected(&id, Code::SchemaInvalid, "bad")
        .unwrap();
    let upper = SHA_A.to_ascii_uppercase();
    assert!(matches!(
        store.begin(&message(Some("M-1"), &upper)).unwrap(),
        Begin::Duplicate(_)
    ));
    assert!(matches!(
        store.begin(&message(Some("M-2"), "not-hex")),
        Err(StoreError::InvalidInput(_))
    ));
}

#[test]
fn begin_returns_conflict_for_same_agency_message_id_with_different_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());

    // While the first is in progress …
    match store.begin(&message(Some("M-1"), SHA_B)).unwrap() {
        Begin::Conflict(rec) => assert_eq!(rec.id, id),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // … and after it was forwarded.
    store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
    let other = message(Some("M-1"), SHA_B);
    match store.begin(&other).unwrap() {
        Begin::Conflict(rec) => {
            assert_eq!(rec.id, id);
            assert_eq!(rec.sha256, SHA_A);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The caller logs the conflicting message as an unregistered rejection.
    let rec = store
        .record_unregistered_rejection(
            &other,
            &Rejection::new(Code::Duplicate, "agency message id M-1 reused"),
        )
        .unwrap();
    assert_eq!(rec.status, Status::Rejected);
    assert_eq!(rec.rejection_code.as_deref(), Some("duplicate"));
    // The original keeps its key.
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_A)).unwrap(),
        Begin::Duplicate(r) if r.id == id
    ));
}

#[test]
fn same_content_under_another_agency_or_message_id_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    new_id(store.begin(&message(Some("M-1"), SHA_A)).unwrap());
    new_id(store.begin(&message(Some("M-2"), SHA_A)).unwrap());
    let mut other_agency = message(Some("M-1"), SHA_A);
    other_agency.agency = "customs".into();
    new_id(store.begin(&other_agency).unwrap());
}

#[test]
fn without_agency_message_id_dedupe_is_on_agency_and_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(None, SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    assert!(matches!(
        store.begin(&message(None, SHA_A)).unwrap(),
        Begin::InProgress(r) if r.id == id
    ));
    new_id(store.begin(&message(None, SHA_B)).unwrap());
    store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
    assert!(matches!(
        store.begin(&message(None, SHA_A)).unwrap(),
        Begin::Duplicate(r) if r.id == id
    ));
}

#[test]
fn identical_resend_of_a_rejected_message_returns_the_original_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = new_id(store.begin(&message(Some("M-1"), SHA_A)).unwrap());
    store
        .finish_rejected(&id, Code::SchemaInvalid, "Date is not a date")
        .unwrap();
    match store.begin(&message(Some("M-1"), SHA_A)).unwrap() {
        Begin::Duplicate(rec) => {
            assert_eq!(rec.id, id);
            assert_eq!(rec.status, Status::Rejected);
            assert_eq!(rec.rejection_code.as_deref(), Some("schema_invalid"));
            assert_eq!(rec.rejection_detail.as_deref(), Some("Date is not a date"));
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
}

#[test]
fn corrected_resend_of_a_rejected_message_is_accepted_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = new_id(store.begin(&message(Some("M-1"), SHA_A)).unwrap());
    store
        .finish_rejected(&first, Code::SchemaInvalid, "bad")
        .unwrap();
    let fixed = message(Some("M-1"), SHA_B);
    let second = new_id(store.begin(&fixed).unwrap());
    assert_ne!(first, second);
    // The old record is kept for the audit trail, unchanged.
    let old = store.get(&first).unwrap().unwrap();
    assert_eq!(old.status, Status::Rejected);
    // Now the corrected one holds the key.
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_B)).unwrap(),
        Begin::InProgress(r) if r.id == second
    ));
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_A)).unwrap(),
        Begin::Conflict(r) if r.id == second
    ));
}

#[test]
fn begin_returns_in_progress_while_the_identical_message_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = new_id(store.begin(&message(Some("M-1"), SHA_A)).unwrap());
    match store.begin(&message(Some("M-1"), SHA_A)).unwrap() {
        Begin::InProgress(rec) => assert_eq!(rec.id, id),
        other => panic!("expected InProgress, got {other:?}"),
    }
}

#[test]
fn a_stale_in_progress_record_is_taken_over_by_an_identical_message() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_with_clock(&dir);
    let stale_after = store.stale_after();
    let first = new_id(store.begin(&message(Some("M-1"), SHA_A)).unwrap());
    // Idle for a microsecond (the ledger's precision) less than the period: still in progress.
    clock.advance(stale_after - Duration::from_micros(1));
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_A)).unwrap(),
        Begin::InProgress(r) if r.id == first
    ));
    // Idle for the whole period: stale.
    clock.advance(Duration::from_micros(1));
    let retry = message(Some("M-1"), SHA_A);
    let second = new_id(store.begin(&retry).unwrap());
    assert_eq!(second, retry.id);
    assert_ne!(first, second);

    let old = store.get(&first).unwrap().unwrap();
    assert_eq!(old.status, Status::Rejected);
    assert_eq!(
        old.rejection_code.as_deref(),
        Some(Code::Interrupted.as_str())
    );
    assert!(old.rejection_detail.unwrap().contains(second.as_str()));
    assert!(old.finished_at.is_some());
    assert_eq!(
        store.steps(&first).unwrap().last().unwrap().step,
        Step::Rejected
    );

    // Steps keep a record alive: idle less than the period since its last step, though
    // begun longer ago than that, it is not stale.
    let most = stale_after - Duration::from_secs(1);
    clock.advance(most);
    store.record_step(&second, Step::Forwarded, None).unwrap();
    clock.advance(most);
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_A)).unwrap(),
        Begin::InProgress(r) if r.id == second
    ));
}

#[test]
fn a_group_commit_answers_each_write_and_undoes_only_the_writes_that_fail() {
    use super::sqlite::{Write, Written};
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_with_clock(&dir);
    let stale = new_id(store.begin(&message(Some("K"), SHA_A)).unwrap());
    let other = new_id(store.begin(&message(Some("O"), SHA_B)).unwrap());
    clock.advance(store.stale_after());
    store.record_step(&other, Step::Opened, None).unwrap(); // `other` stays fresh

    let first = message(Some("N-1"), SHA_A);
    // Takes over the stale record (an UPDATE), then fails: its id is already used.
    let mut clash = message(Some("K"), SHA_A);
    clash.id = other.clone();
    let unknown = MessageId::new();
    let outs = store.commit_group_now(vec![
        Write::Begin(first.clone()),
        Write::Begin(clash),
        Write::Forwarded {
            id: unknown.clone(),
            receipt_json: "{}".into(),
            queue: "outbox/hub".into(),
            deferred: false,
        },
        Write::Begin(message(Some("N-1"), SHA_A)),
    ]);
    let mut outs = outs.into_iter();
    let commit = match outs.next().unwrap() {
        Ok((Written::Begun(b), n)) if matches!(&*b, Begin::New(id) if *id == first.id) => n,
        other => panic!("expected the first message to be new, got {other:?}"),
    };
    assert!(matches!(outs.next().unwrap(), Err(StoreError::IdInUse(id)) if id == other));
    assert!(matches!(outs.next().unwrap(), Err(StoreError::NotFound(id)) if id == unknown));
    match outs.next().unwrap() {
        Ok((Written::Begun(b), n)) => {
            let Begin::InProgress(rec) = *b else {
                panic!("expected in progress, got {b:?}")
            };
            assert_eq!(
                rec.id, first.id,
                "the second begin saw the first, same transaction"
            );
            assert_eq!(n, commit, "one commit for the group");
        }
        other => panic!("expected in progress, got {other:?}"),
    }
    assert!(outs.next().is_none());

    // The failed write's takeover was undone; the others were committed.
    let old = store.get(&stale).unwrap().unwrap();
    assert_eq!(old.status, Status::InProgress);
    assert!(
        store
            .steps(&stale)
            .unwrap()
            .iter()
            .all(|s| s.step != Step::Rejected)
    );
    assert_eq!(
        store.get(&first.id).unwrap().unwrap().status,
        Status::InProgress
    );
    assert!(store.get(&unknown).unwrap().is_none());
}

#[test]
fn a_deferred_finish_is_visible_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin_deferred(&m).unwrap());
    store
        .finish_forwarded_deferred(&id, &receipt(&id, &m))
        .unwrap();
    let rec = store.get(&id).unwrap().unwrap();
    assert_eq!(rec.status, Status::Forwarded);
    assert_eq!(rec.receipt().unwrap().unwrap().gateway_message_id, id);
    store.sync().unwrap();
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_A)).unwrap(),
        Begin::Duplicate(r) if r.id == id
    ));
}

/// The status another process would read now.
fn status_seen_by_another_connection(dir: &tempfile::TempDir, id: &MessageId) -> String {
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    conn.query_row(
        "SELECT status FROM messages WHERE id = ?1",
        [id.as_str()],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_deferred_finish_goes_out_with_the_next_write_or_a_flush_or_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m1 = message(Some("M-1"), SHA_A);
    let id1 = new_id(store.begin(&m1).unwrap());
    store
        .finish_forwarded_deferred(&id1, &receipt(&id1, &m1))
        .unwrap();
    assert_eq!(
        status_seen_by_another_connection(&dir, &id1),
        "in_progress",
        "not committed yet"
    );
    // The next message's begin carries it.
    let m2 = message(Some("M-2"), SHA_A);
    let id2 = new_id(store.begin(&m2).unwrap());
    assert_eq!(status_seen_by_another_connection(&dir, &id1), "forwarded");
    // With no further message, a flush.
    store
        .finish_forwarded_deferred(&id2, &receipt(&id2, &m2))
        .unwrap();
    assert_eq!(status_seen_by_another_connection(&dir, &id2), "in_progress");
    store.flush().unwrap();
    assert_eq!(status_seen_by_another_connection(&dir, &id2), "forwarded");
    // Or closing the store.
    let m3 = message(Some("M-3"), SHA_A);
    let id3 = new_id(store.begin(&m3).unwrap());
    store
        .finish_forwarded_deferred(&id3, &receipt(&id3, &m3))
        .unwrap();
    drop(store);
    assert_eq!(status_seen_by_another_connection(&dir, &id3), "forwarded");
    // A wrong receipt is refused at once rather than queued.
    let store = open(&dir);
    let m4 = message(Some("M-4"), SHA_A);
    let id4 = new_id(store.begin(&m4).unwrap());
    assert!(matches!(
        store.finish_forwarded_deferred(&id4, &receipt(&id1, &m4)),
        Err(StoreError::InvalidInput(_))
    ));
}

#[test]
fn concurrent_finishes_are_all_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let messages: Vec<NewMessage> = (0..64)
        .map(|i| message(Some(&format!("M-{i}")), SHA_A))
        .collect();
    for m in &messages {
        new_id(store.begin(m).unwrap());
    }
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = messages
        .chunks(8)
        .map(|chunk| {
            let (store, barrier, chunk) = (store.clone(), barrier.clone(), chunk.to_vec());
            std::thread::spawn(move || {
                barrier.wait();
                for m in &chunk {
                    store.finish_forwarded(&m.id, &receipt(&m.id, m)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for m in &messages {
        let rec = store.get(&m.id).unwrap().unwrap();
        assert_eq!(rec.status, Status::Forwarded);
        assert_eq!(rec.receipt().unwrap().unwrap().gateway_message_id, m.id);
        let steps = store.steps(&m.id).unwrap();
        assert_eq!(steps.last().unwrap().step, Step::Forwarded);
        assert_eq!(
            steps.iter().filter(|s| s.step == Step::Forwarded).count(),
            1
        );
    }
}

#[test]
fn steps_are_recorded_in_order_with_details() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
    store
        .record_step(&id, Step::ReceiptIssued, Some("via https"))
        .unwrap();
    let steps = store.steps(&id).unwrap();
    let names: Vec<_> = steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        names,
        [
            "received",
            "opened",
            "verified",
            "validated",
            "forwarded",
            "receipt_issued"
        ]
    );
    assert_eq!(steps[0].at, m.received_at);
    assert_eq!(steps[2].detail.as_deref(), Some("signer ab12"));
    assert_eq!(steps[4].detail.as_deref(), Some("outbox/hub"));
    assert_eq!(steps[5].detail.as_deref(), Some("via https"));
    assert!(steps.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn record_step_on_an_unknown_message_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let err = store
        .record_step(&MessageId::new(), Step::Opened, None)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(store.steps(&MessageId::new()).unwrap().is_empty());
    assert!(store.get(&MessageId::new()).unwrap().is_none());
}

#[test]
fn status_moves_from_in_progress_to_forwarded_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
    let rec = store.get(&id).unwrap().unwrap();
    assert_eq!(rec.status, Status::Forwarded);
    assert!(rec.finished_at.is_some());
    assert_eq!(rec.receipt().unwrap().unwrap().queue, "outbox/hub");

    let again = store.finish_forwarded(&id, &receipt(&id, &m)).unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::InvalidTransition {
                status: Status::Forwarded,
                ..
            }
        ),
        "{again}"
    );
    let reject = store
        .finish_rejected(&id, Code::SchemaInvalid, "y")
        .unwrap_err();
    assert!(
        matches!(reject, StoreError::InvalidTransition { .. }),
        "{reject}"
    );
    assert_eq!(store.get(&id).unwrap().unwrap().status, Status::Forwarded);
}

#[test]
fn status_moves_from_in_progress_to_rejected_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    store
        .finish_rejected(&id, Code::SignerUnknown, "unknown signer")
        .unwrap();
    let rec = store.get(&id).unwrap().unwrap();
    assert_eq!(rec.status, Status::Rejected);
    assert_eq!(rec.rejection_code.as_deref(), Some("signer_unknown"));
    assert_eq!(rec.rejection_detail.as_deref(), Some("unknown signer"));
    assert!(rec.finished_at.is_some() && rec.receipt_json.is_none());
    assert!(store.finish_forwarded(&id, &receipt(&id, &m)).is_err());
    assert_eq!(
        store.steps(&id).unwrap().last().unwrap().step,
        Step::Rejected
    );
}

#[test]
fn finish_on_unknown_message_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = MessageId::new();
    let m = message(None, SHA_A);
    assert!(matches!(
        store.finish_forwarded(&id, &receipt(&id, &m)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.finish_rejected(&id, Code::SchemaInvalid, "b"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn unregistered_rejections_are_logged_without_taking_part_in_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut m = message(None, SHA_A);
    m.history = vec![PendingStep::now(Step::Opened, Some("decryption failed"))];
    let rec = store
        .record_unregistered_rejection(
            &m,
            &Rejection::new(Code::NoMatchingKey, "no matching identity"),
        )
        .unwrap();
    assert_eq!(rec.id, m.id);
    assert_eq!(rec.status, Status::Rejected);
    assert!(rec.finished_at.is_some());
    assert_eq!(store.violations(&m.id).unwrap(), None, "no place given");
    let steps = step_names(&store, &m.id);
    assert_eq!(steps, [Step::Received, Step::Opened, Step::Rejected]);
    // The same content can still be registered.
    new_id(store.begin(&message(None, SHA_A)).unwrap());
    // Reusing an id is refused.
    assert!(matches!(
        store.record_unregistered_rejection(&m, &Rejection::new(Code::SchemaInvalid, "y")),
        Err(StoreError::IdInUse(_))
    ));
}

/// A schema rejection with two located violations, more of them withheld.
fn schema_rejection() -> Rejection {
    let at = |line, path: &str| Located {
        code: "value_invalid".into(),
        message: format!("line {line} is wrong"),
        line,
        column: 7,
        path: path.into(),
    };
    let mut r = Rejection::new(Code::SchemaInvalid, "2 violations");
    r.violations = vec![
        at(3, "/Batch/Incident[1]/Postcode"),
        at(9, "/Batch/Incident[2]/Date"),
    ];
    r.truncated = true;
    r
}

#[test]
fn a_rejections_violations_are_kept_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(None, SHA_A);
    let rejection = schema_rejection();
    store.record_unregistered_rejection(&m, &rejection).unwrap();
    let kept = store.violations(&m.id).unwrap().unwrap();
    assert_eq!(
        kept,
        Violations {
            violations: rejection.violations.clone(),
            truncated: true
        }
    );
    // Still there once the ledger is opened again, and nothing for an unknown id.
    drop(store);
    let store = open(&dir);
    assert_eq!(store.violations(&m.id).unwrap(), Some(kept));
    assert_eq!(store.violations(&MessageId::new()).unwrap(), None);
}

#[test]
fn begin_with_an_id_already_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    new_id(store.begin(&m).unwrap());
    let mut clash = message(Some("M-2"), SHA_B);
    clash.id = m.id.clone();
    assert!(matches!(store.begin(&clash), Err(StoreError::IdInUse(_))));
    // Nothing half-written: M-2 is still free.
    new_id(store.begin(&message(Some("M-2"), SHA_B)).unwrap());
}

#[test]
fn concurrent_begin_from_8_threads_on_2_connections_yields_exactly_one_new() {
    let dir = tempfile::tempdir().unwrap();
    let stores = [Arc::new(open(&dir)), Arc::new(open(&dir))];
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(8));
        let amid = format!("M-{round}");
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&stores[i % 2]);
                let barrier = Arc::clone(&barrier);
                let amid = amid.clone();
                std::thread::spawn(move || {
                    let m = message(Some(&amid), SHA_A);
                    barrier.wait();
                    store.begin(&m).unwrap()
                })
            })
            .collect();
        let results: Vec<Begin> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results
            .iter()
            .filter_map(|b| match b {
                Begin::New(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for b in &results {
            match b {
                Begin::New(_) => {}
                Begin::InProgress(rec) => assert_eq!(rec.id, winners[0]),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Both connections see the same single record.
        for s in &stores {
            assert_eq!(
                s.get(&winners[0]).unwrap().unwrap().status,
                Status::InProgress
            );
        }
    }
}

#[test]
fn records_and_steps_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let m = message(Some("M-1"), SHA_A);
    let (id, before) = {
        let store = open(&dir);
        let id = new_id(store.begin(&m).unwrap());
        store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
        (id.clone(), store.get(&id).unwrap().unwrap())
    };
    let store = open(&dir);
    assert_eq!(store.get(&id).unwrap().unwrap(), before);
    assert_eq!(store.steps(&id).unwrap().len(), 5);
    assert!(matches!(
        store.begin(&message(Some("M-1"), SHA_A)).unwrap(),
        Begin::Duplicate(r) if r.id == id
    ));
}

#[test]
fn open_sets_wal_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(user_version(&conn), sqlite::MIGRATIONS.len() as i64);
    // The UNIQUE index is in the database itself.
    let unique: i64 = conn
        .query_row(
            "SELECT \"unique\" FROM pragma_index_list('messages') WHERE name = 'messages_dedupe_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unique, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ledger.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A newer schema is refused.
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        SqliteStore::open(dir.path().join("ledger.db")),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn message_ids_are_canonical_uuids_and_round_trip() {
    let id = MessageId::new();
    assert_eq!(MessageId::parse(id.as_str()).unwrap(), id);
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), id);
    for bad in [
        "",
        "../x",
        "0190F0A0-0000-7000-8000-000000000000",
        "not-a-uuid",
    ] {
        assert!(MessageId::parse(bad).is_err(), "{bad:?}");
    }
    assert!(serde_json::from_str::<MessageId>("\"../../etc\"").is_err());
    for s in [
        Step::Received,
        Step::Opened,
        Step::Verified,
        Step::Validated,
        Step::Forwarded,
        Step::ReceiptIssued,
        Step::Rejected,
    ] {
        assert_eq!(s.as_str().parse::<Step>().unwrap(), s);
    }
}

#[test]
fn in_progress_records_name_their_process_and_abandoning_one_releases_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("A-1"), &"ab".repeat(32));
    assert!(matches!(store.begin(&m).unwrap(), Begin::New(_)));
    let open_records = store.in_progress().unwrap();
    assert_eq!(open_records.len(), 1);
    assert!(
        !store.is_abandoned(&open_records[0]),
        "this process is alive"
    );
    assert!(store.abandon(&m.id, "cut off").unwrap());
    assert!(!store.abandon(&m.id, "cut off").unwrap(), "only once");
    assert!(store.in_progress().unwrap().is_empty());
    let rec = store.get(&m.id).unwrap().unwrap();
    assert_eq!(rec.status, Status::Rejected);
    assert_eq!(
        rec.rejection_code.as_deref(),
        Some(Code::Interrupted.as_str())
    );
    // The same message again is new, not a duplicate of the interrupted one.
    let again = NewMessage {
        id: MessageId::new(),
        ..m
    };
    assert!(matches!(store.begin(&again).unwrap(), Begin::New(_)));
}

fn page_size(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_new_ledger_uses_small_pages_and_an_existing_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let m = message(Some("M-1"), SHA_A);
    let id = new_id(store.begin(&m).unwrap());
    store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
    drop(store);
    assert_eq!(page_size(&dir.path().join("ledger.db")), 1024);

    // A ledger created before small pages (4 KiB, already in WAL mode with a table).
    let old = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE unrelated (x INTEGER)")
            .unwrap();
    }
    let store = SqliteStore::open(&old).unwrap();
    let m = message(Some("M-2"), SHA_B);
    let id = new_id(store.begin(&m).unwrap());
    store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
    assert_eq!(store.get(&id).unwrap().unwrap().status, Status::Forwarded);
    drop(store);
    assert_eq!(page_size(&old), 4096);
}

#[test]
fn a_version_2_ledger_keeps_its_steps_in_order_after_the_steps_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let (old_id, steps_before) = {
        // A ledger as version 2 left it, with a message and its steps.
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &super::sqlite::MIGRATIONS[..2] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 2).unwrap();
        let id = MessageId::new();
        tx.execute(
            "INSERT INTO messages (id, agency, sha256, size, channel, status, received_at, updated_at)
             VALUES (?1, 'police', ?2, 1, 'https', 'in_progress', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            rusqlite::params![id.as_str(), SHA_A],
        )
        .unwrap();
        // Gaps in seq, as other messages' steps would leave.
        for (seq, step) in [(3, "received"), (7, "opened"), (12, "verified")] {
            tx.execute(
                "INSERT INTO steps (seq, message_id, step, at) VALUES (?1, ?2, ?3, '2026-01-01T00:00:00Z')",
                rusqlite::params![seq, id.as_str(), step],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        (id, vec![Step::Received, Step::Opened, Step::Verified])
    };
    let store = SqliteStore::open(&path).unwrap();
    let steps = step_names(&store, &old_id);
    assert_eq!(steps, steps_before);
    store.record_step(&old_id, Step::Validated, None).unwrap();
    let steps = step_names(&store, &old_id);
    assert_eq!(
        steps.last(),
        Some(&Step::Validated),
        "a new step comes after the old ones"
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), sqlite::MIGRATIONS.len() as i64);
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'steps'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    let seq: i64 = conn
        .query_row("SELECT max(seq) FROM steps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seq, 13);
}

/// The WAL's header says how many times the WAL has started over from its first frame (its
/// checkpoint sequence number, bytes 12..16, big-endian); its length, how many frames
/// (24-byte header and a 1 KiB page) it has room for.
fn wal_state(wal: &std::path::Path) -> (u32, u64) {
    let bytes = std::fs::read(wal).unwrap();
    let restarts = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
    let room = (bytes.len() as u64).saturating_sub(32) / (24 + 1024);
    (restarts, room)
}

#[test]
fn background_checkpoints_let_the_wal_start_over_so_it_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let wal = dir.path().join("ledger.db-wal");
    let (restarts_at_open, _) = wal_state(&wal);
    // Messages are written until the WAL has started over three times and more frames went
    // through it than the file has room for. The writer's own automatic checkpoint (at 65,536
    // frames) is far off: only the background thread can make that happen. Without it the
    // WAL never starts over and grows with every write.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut written = 0;
    loop {
        let m = message(Some(&format!("M-{written}")), SHA_A);
        let id = new_id(store.begin(&m).unwrap());
        store.finish_forwarded(&id, &receipt(&id, &m)).unwrap();
        written += 1;
        let (restarts, room) = wal_state(&wal);
        let restarts = restarts.wrapping_sub(restarts_at_open);
        let checkpointed = store.checkpointed_frames();
        if restarts >= 3 && checkpointed > room {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after {written} messages the WAL started over {restarts} times, has room for \
             {room} frames and {checkpointed} were checkpointed"
        );
        // Paced, so that a checkpoint (every 500 ms) finds no write in progress, copies the
        // whole WAL and the next write starts it over.
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(store); // stops the thread
}

#[test]
fn a_retryable_rejection_releases_the_key_and_a_final_one_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let sha = "cd".repeat(32);
    // The queue was down when it was to be published: the resend is processed afresh.
    let first = message(Some("R-1"), &sha);
    assert!(matches!(store.begin(&first).unwrap(), Begin::New(_)));
    store
        .finish_rejected(&first.id, Code::QueueUnavailable, "the queue is down")
        .unwrap();
    let resend = message(Some("R-1"), &sha);
    assert_eq!(
        store.begin(&resend).unwrap(),
        Begin::New(resend.id.clone()),
        "a resend after a retryable refusal is new"
    );
    // A verdict on the message itself stays the answer to an identical resend.
    let other = message(Some("R-2"), &sha);
    assert!(matches!(store.begin(&other).unwrap(), Begin::New(_)));
    store
        .finish_rejected(&other.id, Code::SchemaInvalid, "bad")
        .unwrap();
    let again = message(Some("R-2"), &sha);
    assert!(
        matches!(store.begin(&again).unwrap(), Begin::Duplicate(r) if r.id == other.id),
        "an identical resend of a refused message gets the original refusal"
    );
}

#[test]
fn the_console_lists_counts_and_releases_and_sign_ins_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    super::browse::contract::run(&open(&dir));
}

#[test]
fn requests_are_handed_out_once_closed_once_and_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    super::requests::contract::run(&open(&dir));
}
