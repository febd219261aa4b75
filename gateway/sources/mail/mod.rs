//! The mail channel: agencies mail sealed files to the hub's mailbox; the gateway reads it over
//! IMAP and answers over SMTP submission (`[mail]`, docs/channels.md).
//!
//! - **Who sent it** is decided by the signature: the agency whose registered certificate
//!   signed the attachment, never the `From:` header, which only says where the answer goes.
//!   `mail.senders` can in addition require that an agency's mail come from its addresses.
//! - **Each sealed attachment** (an age file, whatever its name) goes through the pipeline as
//!   that agency's, channel `mail`, with the ledger's dedupe.
//! - **Nothing lost, nothing twice.** A mail is moved to `Processed` (every attachment
//!   accepted) or `Rejected` only after every attachment was handled durably and the answer
//!   was sent. Killed at any moment, the gateway finds the mail still in the folder and runs
//!   it again: what was queued is answered from the ledger as a resend, so nothing is queued
//!   twice. A crash between the answer and the move sends the answer a second time.
//! - **The server going away**: reconnect with back-off (1 s doubling to 60 s); meanwhile
//!   `/readyz` names the mailbox and `gateway_part_ready{part="mail"}` is 0. HTTPS and the
//!   folders keep working: the instance stays ready for them.
//! - **A mail the server cannot hand over** (it answers NO or BAD, hangs up, or sends what
//!   the IMAP parser cannot read, each time) would hold up the mail behind it. After
//!   three such failures it is set aside in `Rejected` unread, audited and, if
//!   its header can still be read, answered `mail_malformed`; one that cannot even be moved is
//!   left alone until the gateway restarts, and the rest of the folder goes on.
//! - **Several instances on one ledger**: one at a time reads the mailbox, under the ledger's
//!   lease `mail` (renewed every 2 s); when it dies, another takes over within the lease.

mod answer;
mod handle;
mod letter;
mod mailbox;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use mailbox::MailboxError;

/// Logs in to the IMAP server (making the folders handled mail goes to, if missing) and
/// greets the SMTP server with the credentials configured: what `gateway check-config` says
/// of `[mail]`.
pub fn check(mail: &Mail) -> Result<String, String> {
    let mb = Mailbox::open(mail).map_err(|e| format!("IMAP: {e}"))?;
    mb.close();
    answer::check_smtp(mail).map_err(|e| e.to_string())?;
    Ok(format!(
        "IMAP {} (folder {}) and SMTP {} accept the credentials",
        mailbox::label(&mail.imap),
        mail.folder,
        mailbox::label(&mail.smtp)
    ))
}

use crate::config::Mail;
use crate::pipeline::Gateway;
use crate::rejection::{Code, Rejection};
use answer::RateLimit;
use mailbox::Mailbox;

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How soon a mail left in the folder for a retry is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// The ledger lease that lets one instance at a time read the mailbox, when several share a
/// ledger (as `inbox` does for the watched folders).
const JOB: &str = "mail";
/// With a shared ledger, the longest wait between two renewals of that lease.
const RENEW: Duration = Duration::from_secs(2);
/// A mail the server failed to hand over (or move) this many times is set aside; after as many
/// failures again (it cannot even be moved) it is left alone.
const SET_ASIDE_AFTER: u32 = 3;

/// The running mail channel.
pub struct MailSource {
    stop: Arc<AtomicBool>,
    /// Held while a mail is being handled: stopping waits for it, not for an IDLE.
    busy: Arc<Mutex<()>>,
    thread: JoinHandle<()>,
}

impl MailSource {
    /// Starts reading the mailbox `[mail]` names, if any.
    pub fn start(
        gateway: Arc<Gateway>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Option<MailSource>> {
        let Some(mail) = gateway.config.mail.clone() else {
            return Ok(None);
        };
        gateway.metrics.set_mail_problem(Some(format!(
            "{}: not connected yet",
            mailbox::label(&mail.imap)
        )));
        let busy = Arc::new(Mutex::new(()));
        let channel = Channel {
            gateway,
            mail,
            stop: shutdown.clone(),
            busy: busy.clone(),
            limit: RateLimit::new(1),
            unsent: HashMap::new(),
            troubles: HashMap::new(),
            stuck: HashSet::new(),
            uid_validity: None,
        };
        let thread = std::thread::Builder::new()
            .name("mail".into())
            .spawn(move || channel.run())?;
        Ok(Some(MailSource {
            stop: shutdown,
            busy,
            thread,
        }))
    }

    /// Stops: waits for the mail in hand, if any; a wait for new mail is simply left.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _held = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}

/// An answer that could not be sent yet, kept for the mail's next turn (the pipeline would
/// see the attachments again as resends and lose their first verdict's detail).
struct Unsent {
    message: lettre::Message,
    to: String,
    accepted: bool,
}

struct Channel {
    gateway: Arc<Gateway>,
    mail: Mail,
    stop: Arc<AtomicBool>,
    busy: Arc<Mutex<()>>,
    limit: RateLimit,
    /// By UID.
    unsent: HashMap<u32, Unsent>,
    /// By UID: mail whose turn failed at the mail server (not the connection), and why.
    troubles: HashMap<u32, Trouble>,
    /// Mail that could neither be read nor moved: left in the folder, skipped.
    stuck: HashSet<u32>,
    /// The folder's UIDVALIDITY when `unsent`, `troubles` and `stuck` were filled.
    uid_validity: Option<u32>,
}

/// The failures of one mail's turns at the mail server.
#[derive(Default)]
struct Trouble {
    times: u32,
    last: String,
    /// Setting it aside tried to read its header: not again (that may be what fails).
    header_tried: bool,
}

/// What became of one mail's turn.
enum Turn {
    /// Moved out of the folder.
    Done,
    /// Left in the folder, to be tried again soon.
    Again,
    /// Left in the folder for good (it can be neither read nor moved).
    Skipped,
}

impl Channel {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// With several instances on one ledger, whether this one holds the mailbox's lease (taking
    /// or renewing it); alone, always.
    fn holds_mailbox(&self) -> bool {
        match &self.gateway.forwarding {
            Some(fw) if fw.store.is_shared() => fw.store.hold(JOB).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot ask the ledger who reads the mailbox");
                false
            }),
            _ => true,
        }
    }

    fn shared(&self) -> bool {
        self.gateway
            .forwarding
            .as_ref()
            .is_some_and(|fw| fw.store.is_shared())
    }

    fn run(mut self) {
        self.limit = RateLimit::new(self.mail.replies_per_hour);
        let mut backoff = Duration::from_secs(1);
        while !self.stopping() {
            if !self.holds_mailbox() {
                // Another instance reads it: not a fault here.
                self.gateway.metrics.set_mail_problem(None);
                self.sleep(Duration::from_secs(1));
                continue;
            }
            let failure = match Mailbox::open(&self.mail) {
                Ok(mut mb) => {
                    if mb.uid_validity != self.uid_validity {
                        // The UIDs now name other mail: answers kept by UID are dropped (their
                        // mail, found again, is run again and answered from the ledger).
                        self.unsent.clear();
                        self.troubles.clear();
                        self.stuck.clear();
                        self.uid_validity = mb.uid_validity;
                    }
                    tracing::info!(server = %mailbox::label(&self.mail.imap), folder = %self.mail.folder, "mailbox open");
                    self.gateway.metrics.set_mail_problem(None);
                    backoff = Duration::from_secs(1);
                    let r = self.session(&mut mb);
                    mb.close();
                    match r {
                        // Stopping, or another instance took the mailbox over.
                        Ok(()) => continue,
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            tracing::warn!(error = %failure, retry_in_secs = backoff.as_secs(), "the mailbox cannot be read");
            self.gateway
                .metrics
                .set_mail_problem(Some(failure.to_string()));
            self.sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stopping() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Handles the folder, waits for more, again, until stopped (`Ok`) or the session fails.
    fn session(&mut self, mb: &mut Mailbox) -> Result<(), MailboxError> {
        loop {
            if self.shared() && !self.holds_mailbox() {
                tracing::warn!("another instance reads the mailbox now; stopping here");
                return Ok(());
            }
            let mut again = false;
            for uid in mb.uids()? {
                if self.stopping() {
                    return Ok(());
                }
                let busy = self.busy.clone();
                let _held = busy.lock().unwrap_or_else(|p| p.into_inner());
                match self.one(mb, uid) {
                    Ok(Turn::Done) => {
                        self.troubles.remove(&uid);
                    }
                    Ok(Turn::Again) => again = true,
                    Ok(Turn::Skipped) => {}
                    Err(e) => {
                        if e.is_the_mails() {
                            let t = self.troubles.entry(uid).or_default();
                            t.times += 1;
                            t.last = e.to_string();
                        }
                        return Err(e);
                    }
                }
            }
            if self.stopping() {
                return Ok(());
            }
            let stop = self.stop.clone();
            let (idle, mut longest) = if again {
                (false, RETRY)
            } else {
                (self.mail.idle, self.mail.poll)
            };
            if self.shared() {
                longest = longest.min(RENEW);
            }
            mb.wait(idle, longest, &|| stop.load(Ordering::SeqCst))?;
        }
    }

    /// One mail: read, run, answer, move.
    fn one(&mut self, mb: &mut Mailbox, uid: u32) -> Result<Turn, MailboxError> {
        if let Some(unsent) = self.unsent.remove(&uid) {
            return self.finish(mb, uid, unsent);
        }
        if self.stuck.contains(&uid) {
            return Ok(Turn::Skipped);
        }
        if self
            .troubles
            .get(&uid)
            .is_some_and(|t| t.times >= SET_ASIDE_AFTER)
        {
            return self.set_aside(mb, uid);
        }
        let Some(size) = mb.size(uid)? else {
            return Ok(Turn::Done);
        };
        let max = self.mail.max_mail_bytes;
        let (letter, verdict) = if size > max {
            let head = mb.fetch_header(uid)?.unwrap_or_default();
            let too_large = Rejection::new(
                Code::PayloadTooLarge,
                format!("the mail is {size} bytes; the limit is {max} bytes (mail.max_mail_bytes)"),
            );
            (letter::read(&head), handle::Verdict::refused(too_large))
        } else {
            let Some(raw) = mb.fetch(uid)? else {
                return Ok(Turn::Done);
            };
            match letter::read(&raw) {
                Some(l) => {
                    let v = handle::letter(&self.gateway, &self.mail, &l);
                    (Some(l), v)
                }
                None => (
                    None,
                    handle::Verdict::refused(Rejection::new(
                        Code::MailMalformed,
                        "the mail has no readable header",
                    )),
                ),
            }
        };
        if verdict.retry {
            tracing::warn!(
                uid,
                "a mail's attachment met a retryable failure: left in the folder, tried again shortly"
            );
            return Ok(Turn::Again);
        }
        self.conclude(mb, uid, letter, &verdict)
    }

    /// Records the verdict, answers it if the mail may be answered, and moves the mail.
    fn conclude(
        &mut self,
        mb: &mut Mailbox,
        uid: u32,
        letter: Option<Letter>,
        verdict: &handle::Verdict,
    ) -> Result<Turn, MailboxError> {
        let accepted = verdict.accepted();
        record_verdict(&self.gateway, letter.as_ref(), verdict);
        let Some(letter) = letter else {
            return self.moved(mb, uid, accepted, false);
        };
        match self.answerable(&letter) {
            Some(to) => match answer::compose(
                &self.mail,
                &letter,
                &to,
                &verdict.parts,
                verdict.whole.as_ref(),
            ) {
                Ok(message) => self.finish(
                    mb,
                    uid,
                    Unsent {
                        message,
                        to,
                        accepted,
                    },
                ),
                Err(e) => {
                    tracing::error!(error = %e, "the mail was handled but cannot be answered");
                    self.moved(mb, uid, accepted, false)
                }
            },
            None => self.moved(mb, uid, accepted, false),
        }
    }

    /// A mail whose turns failed [`SET_ASIDE_AFTER`] times at the server goes to `Rejected`
    /// unread, answered `mail_malformed` if its header can be read; one that cannot be moved
    /// either is skipped from then on.
    fn set_aside(&mut self, mb: &mut Mailbox, uid: u32) -> Result<Turn, MailboxError> {
        let Some(t) = self.troubles.get_mut(&uid) else {
            return Ok(Turn::Again);
        };
        if t.times >= 2 * SET_ASIDE_AFTER {
            tracing::error!(uid, error = %t.last, "a mail can be neither read nor moved: left in the folder and skipped until the gateway restarts; move or delete it by hand");
            self.stuck.insert(uid);
            return Ok(Turn::Skipped);
        }
        tracing::error!(uid, times = t.times, error = %t.last, "the mail server failed to hand over a mail: it is set aside, unread");
        let why = Rejection::new(
            Code::MailMalformed,
            format!(
                "the mail server failed {} times to hand this mail over ({}); it was set aside in {} unread",
                t.times, t.last, self.mail.rejected_folder
            ),
        );
        // Marked first: if reading the header is what breaks the session, the next turn
        // moves the mail without it.
        let header = if t.header_tried {
            None
        } else {
            t.header_tried = true;
            mb.fetch_header(uid)?
        };
        let letter = header.and_then(|h| letter::read(&h));
        self.conclude(mb, uid, letter, &handle::Verdict::refused(why))
    }

    /// Where the answer goes, or `None` when the mail must not be answered (and why, logged).
    fn answerable(&mut self, letter: &Letter) -> Option<String> {
        let Some(to) = letter.from.clone() else {
            tracing::warn!("not answered: the mail has no From address");
            return None;
        };
        if let Some(why) = letter.automatic {
            tracing::info!(from = %to, "not answered: {why}");
            return None;
        }
        if to.eq_ignore_ascii_case(&self.mail.from) {
            tracing::warn!(from = %to, "not answered: the mail comes from the gateway's own address");
            return None;
        }
        if !self.limit.allow(&to, Instant::now()) {
            tracing::warn!(from = %to, per_hour = self.mail.replies_per_hour, "not answered: this sender had mail.replies_per_hour answers in the last hour");
            return None;
        }
        Some(to)
    }

    /// Sends the answer, then moves the mail; an answer the SMTP server could not take for
    /// now is kept, and the mail stays for its next turn.
    fn finish(&mut self, mb: &mut Mailbox, uid: u32, unsent: Unsent) -> Result<Turn, MailboxError> {
        match answer::send(&self.mail, &unsent.message) {
            Ok(()) => {
                tracing::info!(to = %unsent.to, "answered");
                self.moved(mb, uid, unsent.accepted, true)
            }
            Err(e) if e.is_permanent() => {
                tracing::error!(error = %e, to = %unsent.to, "the SMTP server refused the answer for good: the mail is moved unanswered");
                self.moved(mb, uid, unsent.accepted, false)
            }
            Err(e) => {
                tracing::warn!(error = %e, to = %unsent.to, "the answer could not be sent: tried again shortly");
                self.unsent.insert(uid, unsent);
                Ok(Turn::Again)
            }
        }
    }

    fn moved(
        &self,
        mb: &mut Mailbox,
        uid: u32,
        accepted: bool,
        answered: bool,
    ) -> Result<Turn, MailboxError> {
        let (folder, label) = if accepted {
            (&self.mail.processed_folder, "processed")
        } else {
            (&self.mail.rejected_folder, "rejected")
        };
        mb.move_to(uid, folder)?;
        self.gateway.metrics.record_mail(label, answered);
        Ok(Turn::Done)
    }
}

use letter::Letter;

/// Logs what became of a mail and its attachments, and appends it to the audit log (each
/// attachment that reached the pipeline has its own record there too): the refusals made
/// before the pipeline — unsealed, unknown signer, wrong sender — are recorded only here.
fn record_verdict(gateway: &Gateway, letter: Option<&Letter>, verdict: &handle::Verdict) {
    let from = letter.and_then(|l| l.from.as_deref()).unwrap_or("(none)");
    if let Some(r) = &verdict.whole {
        tracing::info!(from, code = %r.code, detail = %r.detail, "mail refused");
    }
    let attachments: Vec<serde_json::Value> = verdict
        .parts
        .iter()
        .map(|p| {
            let code = match &p.outcome {
                crate::pipeline::Outcome::Rejected { rejection, .. } => rejection.code.as_str(),
                crate::pipeline::Outcome::Duplicate {
                    original_code: Some(code),
                    ..
                } => code.as_str(),
                _ => "accepted",
            };
            let id = p.outcome.gateway_message_id();
            tracing::info!(from, attachment = %p.name, code, "mail attachment handled");
            serde_json::json!({"name": p.name, "code": code, "gateway_message_id": id})
        })
        .collect();
    let Some(fw) = &gateway.forwarding else {
        return;
    };
    let details = serde_json::json!({
        "from": from,
        "subject": letter.map(|l| l.subject.as_str()),
        "refused": verdict.whole.as_ref().map(|r| r.code.as_str()),
        "attachments": attachments,
    });
    let subject = letter
        .and_then(|l| l.message_id.as_deref())
        .unwrap_or("(no message id)");
    if let Err(e) = fw
        .audit
        .append("mail", from, "mail received", subject, details)
    {
        tracing::error!(error = %e, "the audit log could not record a mail");
    }
}
