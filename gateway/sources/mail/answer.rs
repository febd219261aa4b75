//! The answer to a mail: one plain-text paragraph per attachment (accepted with its message
//! id, or the code, the sentence, what to do and every violation), the signed receipts
//! attached, sent in the thread over SMTP submission (TLS, authenticated).
//!
//! Loops are impossible by construction: automatic mail is never answered
//! ([`super::letter::Letter::automatic`]), the answer itself is marked `Auto-Submitted:
//! auto-replied` (so that a well-behaved out-of-office stays quiet, and another gateway does not
//! answer it), and each sender gets at most `mail.replies_per_hour` answers.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox as Address, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::letter::Letter;
use crate::config::{Mail, Security};
use crate::pipeline::Outcome;
use crate::receipts::SignedReceipt;

/// What became of one attachment, for the answer.
pub struct Part {
    /// The attachment's name.
    pub name: String,
    /// The pipeline's outcome (or the refusal before it).
    pub outcome: Outcome,
    /// The signed receipt, when accepted.
    pub receipt: Option<SignedReceipt>,
}

/// Why an answer was not sent.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Building the mail failed (an address it cannot use).
    #[error("cannot write the answer: {0}")]
    Build(String),
    /// The SMTP server refused it or could not be reached.
    #[error("SMTP {server}: {error}")]
    Send {
        /// `host:port`.
        server: String,
        /// Why.
        error: String,
        /// The server refused it for good (a 5xx answer): sending again will not help.
        permanent: bool,
    },
    /// No password.
    #[error(transparent)]
    Password(#[from] super::mailbox::MailboxError),
}

/// The body: a paragraph per attachment, or the refusal of the whole mail.
pub fn body(parts: &[Part], whole: Option<&crate::rejection::Rejection>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "This is the hub's gateway answering your mail.\n");
    if let Some(r) = whole {
        let _ = writeln!(t, "Your mail was not processed: {} ({})", r.detail, r.code);
        let _ = writeln!(t, "What to do: {}", r.action);
    }
    for p in parts {
        match &p.outcome {
            Outcome::Forwarded { facts, .. } | Outcome::Accepted { facts } => {
                let _ = writeln!(
                    t,
                    "{}: accepted as gateway message {} ({}); the signed receipt is attached as {}.receipt.json and {}.receipt.p7s.",
                    p.name, facts.gateway_message_id, facts.schema_id, p.name, p.name
                );
            }
            Outcome::Duplicate {
                gateway_message_id,
                original_code: None,
                ..
            } => {
                let _ = writeln!(
                    t,
                    "{}: accepted earlier as gateway message {gateway_message_id} (this is a resend; nothing was queued again); the signed receipt is attached.",
                    p.name
                );
            }
            other => {
                t.push_str(&crate::sources::folder::outcome::error_text(&p.name, other));
            }
        }
        t.push('\n');
    }
    t
}

fn attach(parts: &[Part], text: String) -> MultiPart {
    let mut mixed = MultiPart::mixed().singlepart(SinglePart::plain(text));
    for p in parts {
        if let Some(r) = &p.receipt {
            mixed = mixed
                .singlepart(Attachment::new(format!("{}.receipt.json", p.name)).body(
                    r.json.clone(),
                    ContentType::parse("application/json").unwrap_or(ContentType::TEXT_PLAIN),
                ))
                .singlepart(
                    Attachment::new(format!("{}.receipt.p7s", p.name)).body(
                        r.signature.clone(),
                        ContentType::parse("application/pkcs7-signature")
                            .unwrap_or(ContentType::TEXT_PLAIN),
                    ),
                );
        }
    }
    mixed
}

/// The answer to `letter`, addressed to `to`.
pub fn compose(
    mail: &Mail,
    letter: &Letter,
    to: &str,
    parts: &[Part],
    whole: Option<&crate::rejection::Rejection>,
) -> Result<Message, AnswerError> {
    let build = |e: &dyn std::fmt::Display| AnswerError::Build(e.to_string());
    let from: Address = mail.from.parse().map_err(|e| build(&e))?;
    let to: Address = to.parse().map_err(|e| build(&e))?;
    let subject = if letter.subject.to_ascii_lowercase().starts_with("re:") {
        letter.subject.clone()
    } else if letter.subject.is_empty() {
        "Re: your mail to the hub".to_owned()
    } else {
        format!("Re: {}", letter.subject)
    };
    // The message id's domain is the gateway's address's, not this host's name.
    let domain = mail
        .from
        .rsplit_once('@')
        .map_or("gateway.invalid", |(_, d)| d);
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{}@{domain}>", uuid::Uuid::now_v7())));
    if let Some(id) = &letter.message_id {
        let mut refs: Vec<String> = letter.references.iter().map(|r| format!("<{r}>")).collect();
        refs.push(format!("<{id}>"));
        b = b.in_reply_to(format!("<{id}>")).references(refs.join(" "));
    }
    let mut m = b
        .multipart(attach(parts, body(parts, whole)))
        .map_err(|e| build(&e))?;
    let h = m.headers_mut();
    h.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-replied".to_owned(),
    ));
    // Exchange and Microsoft 365: no out-of-office or read receipt in answer to this.
    h.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
        "All".to_owned(),
    ));
    Ok(m)
}

/// Sends `message` over SMTP submission.
pub fn send(mail: &Mail, message: &Message) -> Result<(), AnswerError> {
    let (transport, label) = transport(mail)?;
    transport
        .send(message)
        .map(drop)
        .map_err(|e| AnswerError::Send {
            server: label,
            permanent: e.is_permanent(),
            error: e.to_string(),
        })
}

/// Connects, starts TLS and logs in to the SMTP server, sending nothing.
pub fn check_smtp(mail: &Mail) -> Result<(), AnswerError> {
    let (transport, label) = transport(mail)?;
    match transport.test_connection() {
        Ok(true) => Ok(()),
        Ok(false) => Err(AnswerError::Send {
            server: label,
            error: "the server did not answer".into(),
            permanent: false,
        }),
        Err(e) => Err(AnswerError::Send {
            server: label,
            permanent: e.is_permanent(),
            error: e.to_string(),
        }),
    }
}

/// The SMTP submission transport `[mail]` describes, and its label.
fn transport(mail: &Mail) -> Result<(SmtpTransport, String), AnswerError> {
    let server = &mail.smtp;
    let label = super::mailbox::label(server);
    let fail = |e: &dyn std::fmt::Display| AnswerError::Send {
        server: label.clone(),
        error: e.to_string(),
        permanent: false,
    };
    let mut tls = TlsParameters::builder(server.host.clone());
    if let Some(ca) = &mail.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| fail(&format!("mail.ca_file {}: {e}", ca.display())))?;
        tls = tls.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| fail(&e))?);
    }
    let tls = tls.build_native().map_err(|e| fail(&e))?;
    let password = super::mailbox::password(server, crate::config::SMTP_CREDENTIAL)?;
    let transport = SmtpTransport::builder_dangerous(server.host.clone())
        .port(server.port)
        .tls(match server.security {
            Security::Tls => Tls::Wrapper(tls),
            Security::StartTls => Tls::Required(tls),
        })
        .credentials(Credentials::new(server.user.clone(), password))
        .timeout(Some(Duration::from_secs(60)))
        .build();
    Ok((transport, label))
}

impl AnswerError {
    /// Whether sending again later cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            AnswerError::Build(_)
                | AnswerError::Send {
                    permanent: true,
                    ..
                }
        )
    }
}

/// At most `per_hour` answers to one address in any hour.
pub struct RateLimit {
    per_hour: usize,
    sent: HashMap<String, VecDeque<Instant>>,
}

impl RateLimit {
    /// A limiter allowing `per_hour` answers per address.
    pub fn new(per_hour: u32) -> Self {
        RateLimit {
            per_hour: per_hour as usize,
            sent: HashMap::new(),
        }
    }

    /// Whether `to` may be answered now; if so, counts the answer.
    pub fn allow(&mut self, to: &str, now: Instant) -> bool {
        let hour = Duration::from_secs(3600);
        self.sent.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= hour)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = self.sent.entry(to.to_owned()).or_default();
        if times.len() >= self.per_hour {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_gets_at_most_the_hourly_number_of_answers() {
        let mut r = RateLimit::new(2);
        let t0 = Instant::now();
        assert!(r.allow("a@x.test", t0));
        assert!(r.allow("a@x.test", t0));
        assert!(!r.allow("a@x.test", t0), "a third answer within the hour");
        assert!(r.allow("b@x.test", t0), "another sender has its own count");
        assert!(r.allow("a@x.test", t0 + Duration::from_secs(3600)));
    }
}
