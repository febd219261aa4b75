//! Mail to and from the servers of `scripts/mail-servers` (Dovecot and Postfix on 127.0.0.1),
//! with `curl`: what the mail channel's tests (tests/mail.rs, and the cluster's) send and read.
//! `scripts/test-mail` and `scripts/test-cluster` set `MAIL_DIR`, `IMAP_PORT`,
//! `SUBMISSION_PORT` and `MAIL_CA`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, MultiPart, SinglePart};
use mail_parser::MessageParser;

use super::wait_for;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test-mail"))
}

pub fn script(args: &[&str]) {
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mail-servers"))
        .args(args)
        // Not the test's own output: a daemon started here would hold the pipe that the
        // runner's `tee` waits on.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/mail-servers {args:?}");
}

pub fn password(user: &str) -> String {
    format!("{user}-secret")
}

/// `curl` over IMAP (STARTTLS required) as `user`, on `path` (a folder, or a folder and
/// `;MAILINDEX=n`), with an optional command; the output, or `None` when curl failed.
pub fn imap(user: &str, path: &str, command: Option<&str>) -> Option<Vec<u8>> {
    let mut c = Command::new("curl");
    c.args(["-sS", "--ssl-reqd", "--cacert", &env("MAIL_CA"), "--user"])
        .arg(format!("{user}:{}", password(user)))
        .arg("--url")
        .arg(format!("imap://127.0.0.1:{}/{path}", env("IMAP_PORT")));
    if let Some(cmd) = command {
        c.args(["-X", cmd]);
    }
    let out = c.output().unwrap();
    out.status.success().then_some(out.stdout)
}

/// Mails in `user`'s `folder`.
pub fn count(user: &str, folder: &str) -> usize {
    let out = imap(user, "", Some(&format!("STATUS {folder} (MESSAGES)"))).unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    text.split("MESSAGES ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every mail in `user`'s `folder`, as sent.
pub fn mails(user: &str, folder: &str) -> Vec<Vec<u8>> {
    (1..=count(user, folder))
        .filter_map(|i| imap(user, &format!("{folder};MAILINDEX={i}"), None))
        .collect()
}

pub fn empty(user: &str, folder: &str) {
    if count(user, folder) > 0 {
        imap(user, folder, Some("STORE 1:* +FLAGS.SILENT (\\Deleted)"));
        imap(user, folder, Some("EXPUNGE"));
    }
    assert_eq!(
        count(user, folder),
        0,
        "{user}'s {folder} could not be emptied"
    );
}

pub fn empty_all() {
    for f in ["INBOX", "Processed", "Rejected"] {
        empty("hub", f);
    }
    empty("police", "INBOX");
    empty("housing", "INBOX");
}

/// A mail from `user`@agency.test to the hub, with `files` attached and `headers` added.
pub fn compose(
    user: &str,
    subject: &str,
    files: &[&Path],
    headers: &[(&'static str, &str)],
) -> Vec<u8> {
    let mut parts =
        MultiPart::mixed().singlepart(SinglePart::plain("Our extract is attached.".to_owned()));
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        parts = parts.singlepart(Attachment::new(name).body(
            std::fs::read(f).unwrap(),
            ContentType::parse("application/octet-stream").unwrap(),
        ));
    }
    let mut m = lettre::Message::builder()
        .from(format!("{user}@agency.test").parse().unwrap())
        .to("hub@hub.test".parse().unwrap())
        .subject(subject)
        .message_id(Some(format!("<{}@agency.test>", uuid::Uuid::now_v7())))
        .multipart(parts)
        .unwrap();
    for (name, value) in headers {
        m.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str(name),
            (*value).to_owned(),
        ));
    }
    m.formatted()
}

/// Submits the mail in `file` as `user` (STARTTLS, authenticated) with `curl`; the error, if
/// refused.
pub fn submit(user: &str, file: &Path) -> Result<(), String> {
    let out = Command::new("curl")
        .args(["-sS", "--ssl-reqd", "--cacert", &env("MAIL_CA"), "--user"])
        .arg(format!("{user}:{}", password(user)))
        .arg("--url")
        .arg(format!("smtp://127.0.0.1:{}", env("SUBMISSION_PORT")))
        .args(["--mail-from", &format!("{user}@agency.test")])
        .args(["--mail-rcpt", "hub@hub.test", "-T"])
        .arg(file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Sends `mail` as `user` over submission.
pub fn send(user: &str, mail: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), mail).unwrap();
    submit(user, file.path()).unwrap();
}

/// Sends `mail` as `user`, again and again for up to a minute while submission refuses it (as
/// a mail program would: Postfix asks Dovecot to authenticate, and Dovecot may be down).
pub fn send_patiently(user: &str, mail: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), mail).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let Err(e) = submit(user, file.path()) else {
            return;
        };
        assert!(
            std::time::Instant::now() < deadline,
            "submission refused mail for a minute: {e}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits for `n` answers in `user`'s INBOX and returns them, parsed on demand.
pub fn answers(user: &str, n: usize) -> Vec<Vec<u8>> {
    wait_for(
        &format!("{n} answer(s) in {user}'s mailbox"),
        Duration::from_secs(60),
        || count(user, "INBOX") >= n,
    );
    mails(user, "INBOX")
}

pub fn text_of(raw: &[u8]) -> String {
    let m = MessageParser::default().parse(raw).unwrap();
    m.body_text(0).unwrap_or_default().into_owned()
}

/// The `[mail]` section of a gateway reading the hub's mailbox (password in
/// `$TEST_MAIL_PASSWORD`), with `extra` keys.
pub fn section(extra: &str) -> String {
    format!(
        r#"[mail]
enabled = true
imap = "127.0.0.1:{imap}"
imap_security = "starttls"
user = "hub"
password_env = "TEST_MAIL_PASSWORD"
ca_file = "{ca}"
poll_secs = 2
smtp = "127.0.0.1:{submission}"
from = "hub@hub.test"
{extra}
"#,
        imap = env("IMAP_PORT"),
        submission = env("SUBMISSION_PORT"),
        ca = env("MAIL_CA"),
    )
}
