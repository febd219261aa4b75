//! What the console shows, gathered once for both faces of it: the HTML pages and the admin
//! read API (`/v1/admin/...`) serialise the same structures.

use serde::Serialize;
use time::OffsetDateTime;

use crate::keyring::inventory::KeyEntry;
use crate::message::{Channel, MessageId, timestamp};
use crate::pipeline::Gateway;
use crate::quarantine::QuarantineRecord;
use crate::rejection::Violations;
use crate::store::{MessageQuery, MessageRecord, Status, StepRecord, StoreError};

/// Hours of history the per-agency charts cover (seven days).
pub const CHART_HOURS: usize = 7 * 24;

/// One agency's traffic.
#[derive(Debug, Clone, Serialize)]
pub struct AgencyRow {
    /// Short name.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// When its latest message arrived (within the last seven days).
    pub last_message: Option<String>,
    /// Messages received since midnight UTC.
    pub today: u64,
    /// Messages received over the last seven days.
    pub week: u64,
    /// Of those, rejected.
    pub rejected_week: u64,
    /// Messages per hour over the last seven days, oldest first ([`CHART_HOURS`] of them).
    pub per_hour: Vec<u64>,
}

impl AgencyRow {
    /// Rejected over received, over seven days (none without messages).
    pub fn rejection_rate(&self) -> Option<f64> {
        (self.week > 0).then(|| self.rejected_week as f64 / self.week as f64)
    }
}

/// `YYYY-MM-DDTHH` of `t` (UTC), as the ledger groups hours.
fn hour_of(t: OffsetDateTime) -> String {
    timestamp::format(&t)[..13].to_owned()
}

/// Every registered agency's traffic (and any agency the ledger names that is not registered
/// any more), at `now`.
pub fn agencies(gw: &Gateway, now: OffsetDateTime) -> Result<Vec<AgencyRow>, StoreError> {
    let Some(fw) = &gw.forwarding else {
        return Ok(Vec::new());
    };
    let first_hour = now - time::Duration::hours(CHART_HOURS as i64 - 1);
    let since = first_hour
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(first_hour);
    let hours: Vec<String> = (0..CHART_HOURS)
        .map(|h| hour_of(since + time::Duration::hours(h as i64)))
        .collect();
    let today = &timestamp::format(&now)[..10];
    let mut rows: Vec<AgencyRow> = gw
        .keyring
        .snapshot()
        .agencies
        .iter()
        .map(|a| AgencyRow {
            name: a.name.clone(),
            display_name: a.display_name.clone(),
            last_message: None,
            today: 0,
            week: 0,
            rejected_week: 0,
            per_hour: vec![0; CHART_HOURS],
        })
        .collect();
    let mut last: std::collections::HashMap<String, OffsetDateTime> = Default::default();
    for c in fw.store.hours(since)? {
        let i = match rows.iter().position(|r| r.name == c.agency) {
            Some(i) => i,
            None => {
                rows.push(AgencyRow {
                    name: c.agency.clone(),
                    display_name: format!("{} (not registered)", c.agency),
                    last_message: None,
                    today: 0,
                    week: 0,
                    rejected_week: 0,
                    per_hour: vec![0; CHART_HOURS],
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.week += c.count;
        if c.status == Status::Rejected {
            row.rejected_week += c.count;
        }
        if c.hour.starts_with(today) {
            row.today += c.count;
        }
        if let Ok(h) = hours.binary_search(&c.hour) {
            row.per_hour[h] += c.count;
        }
        let seen = last.entry(c.agency).or_insert(c.last);
        *seen = (*seen).max(c.last);
    }
    for row in &mut rows {
        row.last_message = last.get(&row.name).map(timestamp::format);
    }
    Ok(rows)
}

/// A message as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    /// The gateway's id.
    pub id: MessageId,
    /// The agency.
    pub agency: String,
    /// The agency's own id.
    pub agency_message_id: Option<String>,
    /// How it came.
    pub channel: Channel,
    /// Where it is.
    pub status: Status,
    /// The schema it was forwarded as.
    pub schema_id: Option<String>,
    /// Why it was rejected.
    pub rejection_code: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// When it arrived.
    pub received_at: String,
}

impl From<&MessageRecord> for MessageRow {
    fn from(r: &MessageRecord) -> MessageRow {
        MessageRow {
            id: r.id.clone(),
            agency: r.agency.clone(),
            agency_message_id: r.agency_message_id.clone(),
            channel: r.channel,
            status: r.status,
            schema_id: r.receipt().ok().flatten().map(|rc| rc.schema_id),
            rejection_code: r.rejection_code.clone(),
            size: r.size,
            received_at: timestamp::format(&r.received_at),
        }
    }
}

/// A page of messages; `next` continues after its last row.
#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    /// The rows, newest first.
    pub messages: Vec<MessageRow>,
    /// The cursor of the next (older) page, if there may be one.
    pub next: Option<String>,
}

/// The cursor after `r`: its arrival time and id.
pub fn cursor_of(r: &MessageRecord) -> String {
    format!("{}_{}", timestamp::format(&r.received_at), r.id)
}

/// The position a cursor names.
pub fn parse_cursor(s: &str) -> Option<(OffsetDateTime, MessageId)> {
    let (at, id) = s.split_once('_')?;
    Some((timestamp::parse(at).ok()?, MessageId::parse(id).ok()?))
}

/// One page of the messages `q` selects.
pub fn messages(gw: &Gateway, q: &MessageQuery) -> Result<MessagePage, StoreError> {
    let Some(fw) = &gw.forwarding else {
        return Ok(MessagePage {
            messages: Vec::new(),
            next: None,
        });
    };
    let records = fw.store.list(q)?;
    let next = (records.len() as u32 >= q.limit)
        .then(|| records.last().map(cursor_of))
        .flatten();
    Ok(MessagePage {
        messages: records.iter().map(MessageRow::from).collect(),
        next,
    })
}

/// Everything known of one message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDetail {
    /// The ledger's record.
    pub record: MessageRecord,
    /// Its steps, oldest first.
    pub steps: Vec<StepRecord>,
    /// What the sender should do, for a rejection.
    pub action: Option<&'static str>,
    /// Where its XML was wrong, for a refusal that said so (from the ledger, so on any
    /// instance and after the quarantine let it go).
    pub violations: Option<Violations>,
    /// The quarantine's record of it, with the violations, while it is kept there.
    pub quarantine: Option<QuarantineRecord>,
}

/// The message `id`, if the ledger has it.
pub fn message(gw: &Gateway, id: &MessageId) -> Result<Option<MessageDetail>, StoreError> {
    let Some(fw) = &gw.forwarding else {
        return Ok(None);
    };
    let Some(record) = fw.store.get(id)? else {
        return Ok(None);
    };
    let steps = fw.store.steps(id)?;
    let action = record
        .rejection_code
        .as_deref()
        .and_then(crate::rejection::Code::parse)
        .map(crate::rejection::Code::action);
    let violations = match record.status {
        Status::Rejected => fw.store.violations(id)?,
        _ => None,
    };
    let quarantine = fw
        .quarantine
        .entry(&record.agency, id)
        .ok()
        .flatten()
        .map(|(r, _)| r);
    Ok(Some(MessageDetail {
        record,
        steps,
        action,
        violations,
        quarantine,
    }))
}

/// The keys and certificates still in use, soonest expiry first.
pub fn keys(gw: &Gateway, now: OffsetDateTime) -> Vec<KeyEntry> {
    let mut keys: Vec<KeyEntry> = crate::keyring::inventory::inventory(&gw.config.keys, now)
        .into_iter()
        .filter(KeyEntry::still_in_use)
        .collect();
    keys.sort_by_key(|k| k.days_left.unwrap_or(i64::MAX));
    keys
}

/// The state of the gateway as the console's front page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Per agency.
    pub agencies: Vec<AgencyRow>,
    /// Messages waiting in the hub's queue, if it can be asked.
    pub queue_depth: Option<u64>,
    /// Keys and certificates in use.
    pub keys: Vec<KeyEntry>,
    /// `gateway audit verify`'s verdict, in a sentence, and whether the chain is intact.
    pub audit: (bool, String),
}

/// The front page's facts at `now`; the audit chain is verified (it reads the whole log).
pub fn overview(gw: &Gateway, now: OffsetDateTime) -> Result<Overview, StoreError> {
    let audit = match gw.forwarding.as_ref().map(|fw| fw.audit.verify()) {
        None => (false, "not forwarding: no audit log".to_owned()),
        Some(Ok(crate::audit::Verdict::Intact { records, .. }))
        | Some(Ok(crate::audit::Verdict::IntactChains { records, .. })) => {
            (true, format!("intact: {records} records verified"))
        }
        Some(Ok(crate::audit::Verdict::Broken { at, seq, why })) => {
            (false, format!("BROKEN at record {seq} ({at}): {why}"))
        }
        Some(Err(e)) => (false, format!("cannot be verified: {e}")),
    };
    Ok(Overview {
        agencies: agencies(gw, now)?,
        queue_depth: gw.forwarding.as_ref().and_then(|fw| fw.sink.depth().ok()),
        keys: keys(gw, now),
        audit,
    })
}
