//! Issue 11 #6: when the ledger cannot record a forwarded message (a full `state/`), the sender
//! is not told it succeeded, and the record is settled from the queue without a restart: the
//! resend is answered with the receipt, and the message is queued once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gateway::message::Receipt;
use gateway::message::{Channel, MessageId};
use gateway::pipeline::{Gateway, Outcome};
use gateway::rejection::{Code, Rejection, Violations};
use gateway::store::{
    Begin, HourCount, MessageQuery, MessageRecord, NewMessage, RequestEvent, RequestRecord,
    SignInEvent, SignInState, Status, Step, StepRecord, Store, StoreError,
};

use crate::support::Home;

/// The real ledger, whose final writes fail while `full` is set (as on a full disk).
struct FullDisk {
    inner: Box<dyn Store>,
    full: Arc<AtomicBool>,
}

impl FullDisk {
    fn check(&self) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device",
            )))
        } else {
            Ok(())
        }
    }
}

impl Store for FullDisk {
    fn begin(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        self.inner.begin(m)
    }
    fn begin_deferred(&self, m: &NewMessage) -> Result<Begin, StoreError> {
        self.inner.begin_deferred(m)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }
    fn record_unregistered_rejection(
        &self,
        m: &NewMessage,
        rejection: &Rejection,
    ) -> Result<MessageRecord, StoreError> {
        self.inner.record_unregistered_rejection(m, rejection)
    }
    fn record_step(&self, id: &MessageId, step: Step, d: Option<&str>) -> Result<(), StoreError> {
        self.inner.record_step(id, step, d)
    }
    fn finish_forwarded(&self, id: &MessageId, receipt: &Receipt) -> Result<(), StoreError> {
        self.check()?;
        self.inner.finish_forwarded(id, receipt)
    }
    fn finish_forwarded_deferred(
        &self,
        id: &MessageId,
        receipt: &Receipt,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.finish_forwarded_deferred(id, receipt)
    }
    fn finish_rejected(&self, id: &MessageId, code: Code, detail: &str) -> Result<(), StoreError> {
        self.inner.finish_rejected(id, code, detail)
    }
    fn get(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        self.inner.get(id)
    }
    fn violations(&self, id: &MessageId) -> Result<Option<Violations>, StoreError> {
        self.inner.violations(id)
    }
    fn steps(&self, id: &MessageId) -> Result<Vec<StepRecord>, StoreError> {
        self.inner.steps(id)
    }
    fn in_progress(&self) -> Result<Vec<MessageRecord>, StoreError> {
        self.inner.in_progress()
    }
    fn abandon(&self, id: &MessageId, detail: &str) -> Result<bool, StoreError> {
        self.inner.abandon(id, detail)
    }
    fn is_abandoned(&self, rec: &MessageRecord) -> bool {
        self.inner.is_abandoned(rec)
    }
    fn is_mine(&self, rec: &MessageRecord) -> bool {
        self.inner.is_mine(rec)
    }
    fn sign_in(&self, name: &str, event: SignInEvent) -> Result<SignInState, StoreError> {
        self.inner.sign_in(name, event)
    }
    fn list(&self, q: &MessageQuery) -> Result<Vec<MessageRecord>, StoreError> {
        self.inner.list(q)
    }
    fn hours(&self, since: time::OffsetDateTime) -> Result<Vec<HourCount>, StoreError> {
        self.inner.hours(since)
    }
    fn release(&self, id: &MessageId) -> Result<bool, StoreError> {
        self.inner.release(id)
    }
    fn request(&self, event: &RequestEvent) -> Result<Vec<RequestRecord>, StoreError> {
        self.inner.request(event)
    }
}

/// A gateway whose ledger can be made "full", and the switch.
fn gateway(home: &Home) -> (Gateway, Arc<AtomicBool>) {
    let config = gateway::config::Config::load(Some(&home.config())).unwrap();
    let mut gw = Gateway::load(config, true).unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let fw = gw.forwarding.as_mut().unwrap();
    let real = std::mem::replace(
        &mut fw.store,
        Box::new(gateway::store::SqliteStore::open(home.file("scratch.sqlite")).unwrap()),
    );
    fw.store = Box::new(FullDisk {
        inner: real,
        full: full.clone(),
    });
    (gw, full)
}

#[test]
fn a_forwarded_message_the_ledger_cannot_record_is_not_a_success_and_its_resend_gets_the_receipt() {
    let home = Home::new("");
    let (gw, full) = gateway(&home);
    let sealed = home.fresh_police("a.sealed");
    full.store(true, Ordering::SeqCst);
    let first = gw.process_file(&police(), Channel::Cli, &sealed);
    let Outcome::Rejected {
        rejection,
        gateway_message_id: Some(id),
        ..
    } = &first
    else {
        panic!("no success the ledger cannot back: {first:?}");
    };
    assert_eq!(rejection.code, Code::QueueUnavailable);
    assert!(
        rejection.detail.contains("reached the queue"),
        "{rejection:?}"
    );
    assert_eq!(home.queued(), 1, "the hub has it");

    // The disk has room again: the resend is answered from the queue, without a restart.
    full.store(false, Ordering::SeqCst);
    let again = gw.process_file(&police(), Channel::Cli, &sealed);
    match &again {
        Outcome::Duplicate {
            gateway_message_id,
            receipt: Some(receipt),
            ..
        } => {
            assert_eq!(gateway_message_id, id);
            assert_eq!(receipt.gateway_message_id.as_str(), id);
        }
        other => panic!("the resend must get the receipt: {other:?}"),
    }
    assert!(again.is_success());
    assert_eq!(home.queued(), 1, "queued once");
}

#[test]
fn the_periodic_sweep_settles_a_record_whose_final_write_failed() {
    let home = Home::new("");
    let (gw, full) = gateway(&home);
    let sealed = home.fresh_police("b.sealed");
    full.store(true, Ordering::SeqCst);
    let first = gw.process_file(&police(), Channel::Cli, &sealed);
    let Outcome::Rejected {
        gateway_message_id: Some(id),
        ..
    } = &first
    else {
        panic!("{first:?}");
    };
    let id: MessageId = id.parse().unwrap();
    let fw = gw.forwarding.as_ref().unwrap();
    assert_eq!(
        fw.store.get(&id).unwrap().unwrap().status,
        Status::InProgress
    );
    assert_eq!(gw.settle_stuck(), 0, "cannot settle while the disk is full");
    full.store(false, Ordering::SeqCst);
    assert_eq!(gw.settle_stuck(), 1);
    let record = fw.store.get(&id).unwrap().unwrap();
    assert_eq!(record.status, Status::Forwarded);
    assert!(record.receipt().unwrap().is_some());
}

fn police() -> gateway::message::AgencyName {
    gateway::message::AgencyName::parse("police").unwrap()
}
