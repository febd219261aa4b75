//! The mail channel against real mail servers: Debian's Dovecot (IMAP, LMTP) and Postfix
//! (submission) on 127.0.0.1, started by `bash scripts/test-mail`, which sets `MAIL_DIR`,
//! `IMAP_PORT`, `SUBMISSION_PORT` and `MAIL_CA`; a plain `cargo test` leaves these tests out
//! (ignored). Mail is sent with `curl` over authenticated submission, as an agency's mail
//! program would, and read back with `curl` over IMAP; the gateway is a real `gateway serve`.
//!
//! The mailboxes are shared: run with `--test-threads=1` (the script does); each test empties
//! them first.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use support::mail::*;
use support::{Home, Server, sample, wait_for};

/// A gateway home reading the hub's mailbox (no watched folders), with `extra` `[mail]` keys.
fn home(extra: &str) -> Home {
    Home::with_server_config(&format!("[inbox]\nenabled = false\n\n{}", section(extra)))
}

fn serve(home: &Home) -> Server {
    home.serve_limited(None, &[("TEST_MAIL_PASSWORD", "hub-secret")])
}

/// A police message with a fresh message id, sealed to the gateway.
fn sealed_police(home: &Home, name: &str) -> PathBuf {
    home.fresh_police(name)
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn an_accepted_attachment_is_answered_in_the_thread_with_a_receipt_that_verifies() {
    empty_all();
    let home = home("");
    let sealed = sealed_police(&home, "extract.age");
    let mail = compose("police", "Weekly extract", &[&sealed], &[]);
    let sent_id = MessageParser::default()
        .parse(&mail)
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned();
    let server = serve(&home);
    send("police", &mail);
    let answers = answers("police", 1);
    let answer = MessageParser::default().parse(&answers[0]).unwrap();
    let in_reply_to = answer.header_raw("In-Reply-To").unwrap_or_default();
    assert_eq!(in_reply_to.trim(), format!("<{sent_id}>"), "in the thread");
    assert_eq!(answer.subject(), Some("Re: Weekly extract"));
    assert_eq!(
        answer.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let text = text_of(&answers[0]);
    assert!(
        text.contains("extract.age: accepted as gateway message"),
        "{text}"
    );
    let dir = home.path();
    let mut receipt_json = None;
    for a in answer.attachments() {
        let name = a.attachment_name().unwrap().to_owned();
        std::fs::write(dir.join(&name), a.contents()).unwrap();
        if name.ends_with(".receipt.json") {
            receipt_json = Some(name);
        }
    }
    let json = receipt_json.expect("the receipt is attached");
    home.verify_receipt_signature(&dir.join("extract.age.receipt.p7s"), &dir.join(&json));
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(&json)).unwrap()).unwrap();
    assert_eq!(receipt["agency"], "police", "the agency is the signer's");
    let meta = home.queue_metadata(receipt["gateway_message_id"].as_str().unwrap());
    assert_eq!(meta["channel"], "mail");
    wait_for(
        "the mail moved to Processed",
        Duration::from_secs(10),
        || count("hub", "Processed") == 1 && count("hub", "INBOX") == 0,
    );
    assert_eq!(home.queued(), 1);
    drop(server);
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn a_schema_invalid_attachment_is_answered_with_every_violation() {
    empty_all();
    let home = home("");
    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-bad-collar-number.xml"),
        "bad.age",
    );
    let _server = serve(&home);
    send("police", &compose("police", "extract", &[&bad], &[]));
    let text = text_of(&answers("police", 1)[0]);
    assert!(text.contains("bad.age: rejected schema_invalid"), "{text}");
    assert!(text.contains("what to do:"), "{text}");
    // Each violation as line:column code at path.
    let violation = text
        .lines()
        .find(|l| l.starts_with("  ") && l.contains(" at /"))
        .unwrap_or_else(|| panic!("no violation line in {text}"));
    let place = violation.trim().split(' ').next().unwrap();
    let (line, column) = place.split_once(':').unwrap();
    assert!(
        line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(),
        "{violation}"
    );
    wait_for(
        "the mail moved to Rejected",
        Duration::from_secs(10),
        || count("hub", "Rejected") == 1,
    );
    assert_eq!(home.queued(), 0);
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn unsigned_unsealed_and_empty_mail_each_get_a_clear_refusal() {
    empty_all();
    let home = home("");
    // Encrypted to the gateway, but not signed.
    let unsigned = home.file("unsigned.age");
    support::sh(&format!(
        "age -r '{}' -o '{}' '{}'",
        home.recipient(),
        unsigned.display(),
        sample("police", "valid-single-incident.xml").display()
    ));
    let csv = home.file("notes.csv");
    std::fs::write(&csv, "a,b\n").unwrap();
    let _server = serve(&home);
    send("police", &compose("police", "unsigned", &[&unsigned], &[]));
    send("police", &compose("police", "unsealed", &[&csv], &[]));
    send("police", &compose("police", "nothing", &[], &[]));
    let texts: Vec<String> = answers("police", 3).iter().map(|m| text_of(m)).collect();
    let one = |needle: &str| {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "no answer says {needle:?}: {texts:#?}"
        )
    };
    one("unsigned.age: rejected not_signed");
    one("no_payload");
    one("what to do:");
    wait_for("all three in Rejected", Duration::from_secs(10), || {
        count("hub", "Rejected") == 3
    });
    assert_eq!(home.queued(), 0);
    // Refused before the pipeline, yet recorded: the audit log has each mail and its verdict.
    let audit = std::fs::read_to_string(home.path().join("state/audit/audit.log")).unwrap();
    let mails: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"mail received\""))
        .collect();
    assert_eq!(mails.len(), 3, "{audit}");
    assert!(mails.iter().any(|l| l.contains("not_signed")), "{audit}");
    assert!(mails.iter().any(|l| l.contains("no_payload")), "{audit}");
    assert!(home.gateway(&["audit", "verify"]).status.success());
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn mail_from_an_address_not_of_the_signing_agency_is_refused() {
    empty_all();
    let home = home("[mail.senders]\npolice = [\"police@agency.test\"]\n");
    let sealed = sealed_police(&home, "police.age");
    let _server = serve(&home);
    // Signed by police, sent from housing's mailbox.
    send("housing", &compose("housing", "forged", &[&sealed], &[]));
    let text = text_of(&answers("housing", 1)[0]);
    assert!(
        text.contains("police.age: rejected agency_mismatch"),
        "{text}"
    );
    assert!(text.contains("housing@agency.test"), "{text}");
    // From its own address, the same payload is accepted.
    send("police", &compose("police", "genuine", &[&sealed], &[]));
    let text = text_of(&answers("police", 1)[0]);
    assert!(text.contains("police.age: accepted"), "{text}");
    assert_eq!(home.queued(), 1);
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn two_attachments_in_one_mail_get_two_receipts() {
    empty_all();
    let home = home("");
    let a = sealed_police(&home, "a.age");
    let b = sealed_police(&home, "b.age");
    let _server = serve(&home);
    send("police", &compose("police", "two", &[&a, &b], &[]));
    let raw = &answers("police", 1)[0];
    let text = text_of(raw);
    assert!(
        text.contains("a.age: accepted") && text.contains("b.age: accepted"),
        "{text}"
    );
    let m = MessageParser::default().parse(raw).unwrap();
    let names: Vec<String> = m
        .attachments()
        .filter_map(|a| a.attachment_name().map(str::to_owned))
        .collect();
    for n in [
        "a.age.receipt.json",
        "a.age.receipt.p7s",
        "b.age.receipt.json",
        "b.age.receipt.p7s",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert_eq!(home.queued(), 2);
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn auto_replies_bounces_and_bulk_mail_are_never_answered() {
    empty_all();
    let home = home("");
    let server = serve(&home);
    send(
        "police",
        &compose(
            "police",
            "Out of office",
            &[],
            &[("Auto-Submitted", "auto-replied")],
        ),
    );
    send(
        "police",
        &compose("police", "Newsletter", &[], &[("Precedence", "bulk")]),
    );
    send(
        "police",
        &compose("police", "List", &[], &[("List-Id", "<news.agency.test>")]),
    );
    wait_for("the three mails handled", Duration::from_secs(60), || {
        count("hub", "Rejected") == 3
    });
    // Counted once moved (a moment after the folder shows it), answered or not.
    wait_for(
        "three unanswered mails counted",
        Duration::from_secs(10),
        || mails_counted(&server, "rejected", false) == 3,
    );
    assert_eq!(mails_counted(&server, "rejected", true), 0);
    // A marker mail that is answered: the channel answers in turn, so nothing came before it.
    send("police", &compose("police", "marker", &[], &[]));
    let answers = answers("police", 1);
    assert_eq!(count("police", "INBOX"), 1, "only the marker is answered");
    assert!(text_of(&answers[0]).contains("no_payload"));
}

/// `n` mails from police, each with one fresh sealed message attached.
fn sealed_mails(home: &Home, n: usize) -> Vec<Vec<u8>> {
    let batch: Vec<(String, PathBuf)> = (0..n)
        .map(|i| {
            (
                uuid::Uuid::now_v7().to_string(),
                home.file(&format!("m{i}.age")),
            )
        })
        .collect();
    home.seal_police(&home.recipient(), &batch);
    batch
        .iter()
        .enumerate()
        .map(|(i, (_, f))| compose("police", &format!("extract {i}"), &[f], &[]))
        .collect()
}

/// `gateway_mails_total{folder, answered}` as `server` counts it: the gateway's own word on
/// which mail it answered.
fn mails_counted(server: &Server, folder: &str, answered: bool) -> u64 {
    let metrics = support::sh_out(&format!("curl -s {}", server.metrics_url("/metrics")));
    let series = format!("gateway_mails_total{{folder=\"{folder}\",answered=\"{answered}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Sends `n` mails from police, one fresh sealed message each, and waits until the hub's
/// INBOX holds them.
fn fill(home: &Home, n: usize) {
    for m in sealed_mails(home, n) {
        send("police", &m);
    }
    wait_for(
        &format!("{n} mails in the hub's INBOX"),
        Duration::from_secs(60),
        || count("hub", "INBOX") == n,
    );
}

/// Every queued message's agency message id, once per queue entry.
fn queued_ids(home: &Home) -> Vec<String> {
    let dir = home.path().join("outbox/integration/new");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                    v["agency_message_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_each_once(home: &Home, n: usize) {
    let ids = queued_ids(home);
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), n, "every attachment queued");
    assert_eq!(ids.len(), n, "nothing queued twice");
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn killed_mid_mailbox_and_restarted_every_attachment_is_queued_exactly_once() {
    empty_all();
    let home = home("");
    const N: usize = 24;
    fill(&home, N);
    // Each round: once the gateway has moved at least one more mail, SIGKILL it a moment
    // later (0-300 ms), wherever it is: reading, in the pipeline, answering, moving.
    let mut kills_mid_mailbox = 0;
    for round in 0..3u64 {
        let before = count("hub", "Processed");
        let mut server = serve(&home);
        wait_for(
            "the gateway to move a mail",
            Duration::from_secs(60),
            || count("hub", "Processed") > before || count("hub", "INBOX") == 0,
        );
        std::thread::sleep(Duration::from_millis((round * 137 + 50) % 300));
        server.kill();
        let left = count("hub", "INBOX");
        if left == 0 {
            break;
        }
        kills_mid_mailbox += 1;
    }
    assert!(
        kills_mid_mailbox > 0,
        "no kill happened with mail left to do"
    );
    let kills = kills_mid_mailbox;
    let _server = serve(&home);
    wait_for("the INBOX emptied", Duration::from_secs(120), || {
        count("hub", "INBOX") == 0
    });
    assert_eq!(count("hub", "Processed"), N, "every mail processed");
    assert_each_once(&home, N);
    let answered = answers("police", N).len();
    eprintln!(
        "{kills} kill(s); {N} mails; {answered} answers (a kill between answer and move answers twice)"
    );
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn the_imap_server_restarted_under_load_loses_nothing_and_readyz_says_so() {
    empty_all();
    let home = home("");
    const N: usize = 30;
    let mails = sealed_mails(&home, N);
    let server = serve(&home);
    // Mail keeps coming, about ten a second, while the IMAP server goes away and comes back.
    let sender = std::thread::spawn(move || {
        for m in &mails {
            send_patiently("police", m);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    wait_for("a few mails processed", Duration::from_secs(60), || {
        count("hub", "Processed") >= 3
    });
    let dir = env("MAIL_DIR");
    script(&["imap-stop", &dir]);
    let readyz = || support::sh_out(&format!("curl -s {}", server.metrics_url("/readyz")));
    wait_for(
        "/readyz to name the mailbox",
        Duration::from_secs(30),
        || readyz().contains("mail_error"),
    );
    let metrics = support::sh_out(&format!("curl -s {}", server.metrics_url("/metrics")));
    assert!(
        metrics.contains("gateway_part_ready{part=\"mail\"} 0"),
        "{metrics}"
    );
    assert!(
        readyz().contains("\"status\":\"ready\""),
        "HTTPS and the folders still work"
    );
    // The outage itself: 2 s more of mail arriving with nobody to deliver it to.
    std::thread::sleep(Duration::from_secs(2));
    script(&["imap-start", &dir]);
    sender.join().unwrap();
    wait_for(
        "every mail processed after the restart",
        Duration::from_secs(120),
        || count("hub", "Processed") == N && count("hub", "INBOX") == 0,
    );
    assert!(
        !readyz().contains("mail_error"),
        "connected again: {}",
        readyz()
    );
    assert_each_once(&home, N);
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn check_config_logs_in_to_both_servers_makes_missing_folders_and_names_a_wrong_password() {
    let home = home("processed_folder = \"Checked\"\n");
    // Its exit status and everything it printed.
    let check = |password: &str| {
        let out = Command::new(assert_cmd::cargo::cargo_bin("gateway"))
            .args(["check-config", "--config"])
            .arg(home.config())
            .env("TEST_MAIL_PASSWORD", password)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = check("hub-secret");
    assert!(ok, "{text}");
    assert!(
        text.contains("IMAP 127.0.0.1:") && text.contains("accept the credentials"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&imap("hub", "", Some("LIST \"\" \"*\"")).unwrap())
            .contains("Checked"),
        "the processed folder was made"
    );
    let (ok, text) = check("wrong");
    assert!(!ok, "{text}");
    assert!(
        text.contains("IMAP") && text.to_lowercase().contains("auth"),
        "{text}"
    );
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn oversize_mail_is_refused_unread_and_a_sender_gets_at_most_the_hourly_answers() {
    empty_all();
    // Polling instead of IDLE, too.
    let home = home("max_mail_bytes = 4096\nreplies_per_hour = 2\nidle = false\n");
    let big = home.file("big.age");
    std::fs::write(&big, vec![b'x'; 8192]).unwrap();
    let server = serve(&home);
    send("police", &compose("police", "big", &[&big], &[]));
    send("police", &compose("police", "second", &[], &[]));
    send("police", &compose("police", "third", &[], &[]));
    wait_for("the three mails handled", Duration::from_secs(60), || {
        count("hub", "Rejected") == 3
    });
    let texts: Vec<String> = answers("police", 2).iter().map(|m| text_of(m)).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("payload_too_large") && t.contains("mail.max_mail_bytes")),
        "{texts:#?}"
    );
    wait_for("the three mails counted", Duration::from_secs(10), || {
        mails_counted(&server, "rejected", false) + mails_counted(&server, "rejected", true) == 3
    });
    assert_eq!(
        mails_counted(&server, "rejected", false),
        1,
        "the third answer within the hour is not sent"
    );
    assert_eq!(mails_counted(&server, "rejected", true), 2);
    assert_eq!(count("police", "INBOX"), 2);
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn an_answer_the_smtp_server_cannot_take_is_sent_when_it_is_back() {
    empty_all();
    let home = home("");
    let sealed = sealed_police(&home, "later.age");
    send(
        "police",
        &compose("police", "while smtp is down", &[&sealed], &[]),
    );
    wait_for(
        "the mail in the hub's INBOX",
        Duration::from_secs(30),
        || count("hub", "INBOX") == 1,
    );
    let dir = env("MAIL_DIR");
    script(&["smtp-stop", &dir]);
    let _server = serve(&home);
    home.wait_for_log("the answer could not be sent");
    assert_eq!(home.queued(), 1, "the attachment is queued meanwhile");
    assert_eq!(
        count("hub", "INBOX"),
        1,
        "the mail stays until its answer is sent"
    );
    script(&["smtp-start", &dir]);
    let text = text_of(&answers("police", 1)[0]);
    assert!(
        text.contains("later.age: accepted as gateway message"),
        "the first verdict, not a resend: {text}"
    );
    wait_for("the mail moved", Duration::from_secs(30), || {
        count("hub", "INBOX") == 0 && count("hub", "Processed") == 1
    });
    assert_eq!(home.queued(), 1);
}

/// The hub's INBOX files in Dovecot's maildir (`$MAIL_DIR/mail/hub/{new,cur}`).
fn hub_inbox_files() -> Vec<PathBuf> {
    let base = PathBuf::from(env("MAIL_DIR")).join("mail/hub");
    ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(base.join(d)).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .collect()
}

#[test]
#[ignore = "needs the servers of scripts/test-mail"]
fn a_mail_the_server_cannot_hand_over_is_set_aside_and_the_mail_behind_it_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    empty_all();
    let home = home("");
    let mails = sealed_mails(&home, 2);
    send("police", &mails[0]);
    wait_for("the first mail delivered", Duration::from_secs(60), || {
        count("hub", "INBOX") == 1
    });
    // Its file unreadable to Dovecot (which runs as nobody): every FETCH of it, body or
    // header, is answered NO, as for a mail the server's storage has damaged.
    let files = hub_inbox_files();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o000)).unwrap();
    send("police", &mails[1]);
    wait_for("the second mail delivered", Duration::from_secs(60), || {
        count("hub", "INBOX") == 2
    });
    let server = serve(&home);
    // The mail behind it is handled and answered.
    let text = text_of(&answers("police", 1)[0]);
    assert!(text.contains("m1.age: accepted"), "{text}");
    wait_for(
        "the unreadable mail in Rejected, the other in Processed",
        Duration::from_secs(60),
        || {
            count("hub", "INBOX") == 0
                && count("hub", "Rejected") == 1
                && count("hub", "Processed") == 1
        },
    );
    wait_for(
        "the unreadable mail counted, unanswered",
        Duration::from_secs(10),
        || mails_counted(&server, "rejected", false) == 1,
    );
    assert_eq!(
        count("police", "INBOX"),
        1,
        "no answer to a mail never read"
    );
    assert_eq!(home.queued(), 1);
    let audit = std::fs::read_to_string(home.path().join("state/audit/audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"mail received\"") && l.contains("mail_malformed")),
        "{audit}"
    );
}
