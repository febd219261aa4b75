//! `gateway serve` and the watched folders: files dropped the ways operators drop them each end
//! in exactly one outcome (accepted/ with a receipt that verifies with stock openssl, or
//! rejected/ with its reason), every accepted message is queued exactly once, and the server
//! exits 0 on SIGTERM.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::{Home, Server, names_in, sample, sh, tool, wait_for};

const FAST: &str = "[http]\nlisten = \"127.0.0.1:0\"\n[inbox]\nstable_ms = 200\nrescan_secs = 1\n";

/// Starts `gateway serve` as an operator runs it (see [`Home::serve_from_home`]) and waits
/// until it watches the inbox folders.
fn start(home: &Home) -> Server {
    let server = home.serve_from_home("serve.log");
    server.wait_for_log("watching the inbox folders");
    server
}

/// Dropped files (not our sidecars) in accepted/ and rejected/.
fn outcomes(inbox: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let plain = |dir: &Path, sidecars: &[&str]| -> BTreeSet<String> {
        names_in(dir)
            .into_iter()
            .filter(|n| !sidecars.iter().any(|s| n.ends_with(s)))
            .collect()
    };
    (
        plain(&inbox.join("accepted"), &[".receipt.json", ".receipt.p7s"]),
        plain(&inbox.join("rejected"), &[".error.json", ".error.txt"]),
    )
}

fn verify_receipt(home: &Home, accepted: &Path, name: &str) -> serde_json::Value {
    let json = accepted.join(format!("{name}.receipt.json"));
    let p7s = accepted.join(format!("{name}.receipt.p7s"));
    home.verify_receipt_signature(&p7s, &json);
    serde_json::from_slice(&fs::read(json).unwrap()).unwrap()
}

fn queued_ids(home: &Home) -> BTreeSet<String> {
    names_in(&home.path().join("outbox/integration/new"))
        .into_iter()
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect()
}

#[test]
fn files_dropped_the_ways_operators_do_each_end_in_exactly_one_outcome() {
    let home = Home::new(FAST);
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    let elsewhere = home.file("elsewhere");
    fs::create_dir_all(&inbox).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    // Present before start-up.
    home.seal_fresh(&recipient, &inbox.join("before-start.sealed"));
    let mut server = start(&home);

    let copied = home.file("copied.sealed");
    home.seal_fresh(&recipient, &copied);
    tool("cp", &[copied.to_str().unwrap(), inbox.to_str().unwrap()]);
    // The same bytes again under another name: a resend, answered with the original receipt.
    tool(
        "cp",
        &[
            copied.to_str().unwrap(),
            inbox.join("resent.sealed").to_str().unwrap(),
        ],
    );
    home.seal_fresh(&recipient, &elsewhere.join("moved.sealed"));
    tool(
        "mv",
        &[
            elsewhere.join("moved.sealed").to_str().unwrap(),
            inbox.to_str().unwrap(),
        ],
    );
    home.seal_fresh(&recipient, &elsewhere.join("renamed.sealed"));
    fs::copy(
        elsewhere.join("renamed.sealed"),
        inbox.join(".renamed.sealed.part"),
    )
    .unwrap();
    fs::rename(
        inbox.join(".renamed.sealed.part"),
        inbox.join("renamed.sealed"),
    )
    .unwrap();
    let invalid = home.seal_as(
        "police",
        &sample("police", "invalid-bad-location-postcode.xml"),
        "invalid.sealed",
    );
    fs::copy(&invalid, inbox.join("invalid.sealed")).unwrap();
    std::os::unix::fs::symlink(&copied, inbox.join("link.sealed")).unwrap();
    fs::write(inbox.join("empty.sealed"), b"").unwrap();
    home.seal_fresh(&recipient, &elsewhere.join("hostile"));
    fs::rename(elsewhere.join("hostile"), inbox.join("evil\nname..sealed")).unwrap();
    fs::create_dir(inbox.join("a-folder")).unwrap();
    // A slow writer: pieces with pauses longer than the stability window, closed at the end.
    home.seal_fresh(&recipient, &elsewhere.join("slow.sealed"));
    let bytes = fs::read(elsewhere.join("slow.sealed")).unwrap();
    let mut f = fs::File::create(inbox.join("slow.sealed")).unwrap();
    for piece in bytes.chunks(bytes.len() / 4 + 1) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(f);

    let accepted: BTreeSet<String> = [
        "before-start.sealed",
        "copied.sealed",
        "resent.sealed",
        "moved.sealed",
        "renamed.sealed",
        "evil_name..sealed",
        "slow.sealed",
    ]
    .map(String::from)
    .into();
    let rejected: BTreeSet<String> = ["invalid.sealed", "link.sealed", "empty.sealed"]
        .map(String::from)
        .into();
    wait_for("every file to be settled", Duration::from_secs(30), || {
        let (a, r) = outcomes(&inbox);
        a.len() + r.len() >= accepted.len() + rejected.len()
            && names_in(&inbox.join(".processing")).is_empty()
    });
    let (a, r) = outcomes(&inbox);
    assert_eq!(a, accepted, "{}", server.log());
    assert_eq!(r, rejected, "{}", server.log());
    assert_eq!(
        names_in(&inbox),
        ["a-folder", "accepted", "rejected", ".processing"]
            .map(String::from)
            .into(),
        "nothing left behind but the folders"
    );
    assert!(names_in(&inbox.join(".processing")).is_empty());

    let mut receipt_ids = BTreeSet::new();
    for name in &accepted {
        let receipt = verify_receipt(&home, &inbox.join("accepted"), name);
        assert_eq!(receipt["agency"], "police");
        receipt_ids.insert(receipt["gateway_message_id"].as_str().unwrap().to_owned());
    }
    let copied_receipt = fs::read(inbox.join("accepted/copied.sealed.receipt.json")).unwrap();
    let resent_receipt = fs::read(inbox.join("accepted/resent.sealed.receipt.json")).unwrap();
    assert_eq!(
        copied_receipt, resent_receipt,
        "a resend gets the original receipt"
    );
    assert_eq!(receipt_ids.len(), accepted.len() - 1);
    assert_eq!(queued_ids(&home), receipt_ids, "each message queued once");

    let error = |name: &str| -> (serde_json::Value, String) {
        let dir = inbox.join("rejected");
        (
            serde_json::from_slice(&fs::read(dir.join(format!("{name}.error.json"))).unwrap())
                .unwrap(),
            fs::read_to_string(dir.join(format!("{name}.error.txt"))).unwrap(),
        )
    };
    let (json, txt) = error("invalid.sealed");
    assert_eq!(json["rejection"]["code"], "schema_invalid");
    assert_eq!(json["rejection"]["violations"][0]["line"], 38);
    assert!(txt.contains("rejected schema_invalid"), "{txt}");
    assert!(
        txt.contains("38:5 value_invalid at /IncidentBatch/Incident/LocationPostcode"),
        "{txt}"
    );
    assert!(txt.contains("what to do:"), "{txt}");
    let (json, _) = error("link.sealed");
    assert_eq!(json["rejection"]["code"], "not_a_regular_file");
    assert!(
        fs::symlink_metadata(inbox.join("rejected/link.sealed"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link itself is moved, never followed"
    );
    assert!(copied.exists(), "the link's target is untouched");
    let (json, _) = error("empty.sealed");
    assert_eq!(json["rejection"]["code"], "not_age_encrypted");

    // The same name again: a suffix, never an overwrite.
    tool("cp", &[copied.to_str().unwrap(), inbox.to_str().unwrap()]);
    wait_for("the second copy", Duration::from_secs(30), || {
        inbox.join("accepted/copied-1.sealed.receipt.p7s").exists()
            && inbox.join("accepted/copied-1.sealed").exists()
    });
    assert_eq!(
        fs::read(inbox.join("accepted/copied-1.sealed.receipt.json")).unwrap(),
        copied_receipt
    );
    assert_eq!(
        fs::read(inbox.join("accepted/copied.sealed.receipt.json")).unwrap(),
        copied_receipt
    );
    assert_eq!(queued_ids(&home), receipt_ids);

    assert_eq!(server.stop(), Some(0));
}

#[test]
fn a_thousand_files_dropped_at_once_are_each_forwarded_exactly_once() {
    const N: usize = 1000;
    let home = Home::new(FAST);
    let recipient = home.recipient();
    let stage = home.file("stage");
    fs::create_dir_all(&stage).unwrap();
    let batch: Vec<_> = (0..N)
        .map(|i| {
            let id = uuid::Uuid::now_v7().to_string();
            (id, stage.join(format!("m{i:04}.sealed")))
        })
        .collect();
    home.seal_police(&recipient, &batch);
    let mut server = start(&home);
    let inbox = home.path().join("inbox/police");
    sh(&format!(
        "mv '{}'/*.sealed '{}'/",
        stage.display(),
        inbox.display()
    ));
    wait_for("a thousand files", Duration::from_secs(120), || {
        outcomes(&inbox).0.len() + outcomes(&inbox).1.len() >= N
    });
    let (a, r) = outcomes(&inbox);
    assert!(r.is_empty(), "rejected: {r:?}");
    assert_eq!(a.len(), N);
    assert_eq!(
        names_in(&inbox.join("accepted")).len(),
        3 * N,
        "each with its receipt"
    );
    assert_eq!(queued_ids(&home).len(), N);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn files_left_in_processing_by_a_crash_are_settled_first_and_never_queued_twice() {
    let home = Home::new(FAST);
    let recipient = home.recipient();
    let processing = home.path().join("inbox/police/.processing");
    fs::create_dir_all(&processing).unwrap();
    // Forwarded just before the crash: the file was claimed but never moved out.
    let forwarded = home.file("forwarded.sealed");
    home.seal_fresh(&recipient, &forwarded);
    let c = home.check("police", &[&forwarded], &["--forward"]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let original_id = c.result()["gateway_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::copy(
        &forwarded,
        processing.join(format!("{}.forwarded.sealed", uuid::Uuid::now_v7())),
    )
    .unwrap();
    // Claimed but not yet processed.
    home.seal_fresh(
        &recipient,
        &processing.join(format!("{}.fresh.sealed", uuid::Uuid::now_v7())),
    );

    let mut server = start(&home);
    let inbox = home.path().join("inbox/police");
    // The file appears in accepted/ a moment before it leaves .processing/ (link, then unlink).
    wait_for("the leftovers", Duration::from_secs(30), || {
        outcomes(&inbox).0.len() == 2 && names_in(&processing).is_empty()
    });
    assert!(names_in(&processing).is_empty());
    let receipt = verify_receipt(&home, &inbox.join("accepted"), "forwarded.sealed");
    assert_eq!(receipt["gateway_message_id"], original_id.as_str());
    verify_receipt(&home, &inbox.join("accepted"), "fresh.sealed");
    assert_eq!(
        queued_ids(&home).len(),
        2,
        "the forwarded one is not queued again"
    );
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn scan_once_takes_settled_files_and_deletes_accepted_ones_when_configured() {
    let home = Home::new("[inbox]\nstable_ms = 0\ndelete_accepted = true\n");
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    fs::create_dir_all(&inbox).unwrap();
    home.seal_fresh(&recipient, &inbox.join("one.sealed"));
    fs::write(inbox.join("two.sealed.part"), b"still being written").unwrap();
    let config = gateway::config::Config::load(Some(&home.config())).unwrap();
    let gw = gateway::pipeline::Gateway::load(config, true).unwrap();
    let handled = gateway::sources::folder::scan_once(&gw).unwrap();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert!(matches!(
        handled[0].disposition,
        gateway::sources::folder::Disposition::Accepted { file: None, .. }
    ));
    assert!(!inbox.join("one.sealed").exists());
    assert!(!inbox.join("accepted/one.sealed").exists());
    verify_receipt(&home, &inbox.join("accepted"), "one.sealed");
    assert!(
        inbox.join("two.sealed.part").exists(),
        "temporary names are never taken"
    );
}

#[test]
fn a_file_the_queue_cannot_take_goes_back_to_the_inbox_and_is_retried_never_rejected() {
    let home = Home::new(FAST);
    let recipient = home.recipient();
    let mut server = start(&home);
    // Break the queue: its tmp/ folder becomes a file, so staging fails.
    let tmp = home.path().join("outbox/integration/tmp");
    fs::remove_dir(&tmp).unwrap();
    fs::write(&tmp, b"").unwrap();
    let inbox = home.path().join("inbox/police");
    home.seal_fresh(&recipient, &home.file("later.sealed"));
    fs::rename(home.file("later.sealed"), inbox.join("later.sealed")).unwrap();
    wait_for("a retryable failure", Duration::from_secs(30), || {
        server.log().contains("it will be retried")
    });
    assert!(names_in(&inbox.join("rejected")).is_empty());
    fs::remove_file(&tmp).unwrap();
    fs::create_dir(&tmp).unwrap();
    wait_for("the retry", Duration::from_secs(30), || {
        outcomes(&inbox).0.len() == 1
    });
    verify_receipt(&home, &inbox.join("accepted"), "later.sealed");
    assert!(names_in(&inbox.join("rejected")).is_empty());
    assert_eq!(queued_ids(&home).len(), 1);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn the_polling_watcher_for_network_filesystems_takes_dropped_files_too() {
    // No periodic rescan within the test: only the polling watcher can find the file.
    let home = Home::new(
        "[http]\nlisten = \"127.0.0.1:0\"\n[inbox]\nstable_ms = 200\nrescan_secs = 3600\npoll = true\n",
    );
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    fs::create_dir_all(&inbox).unwrap();
    let mut server = start(&home);
    assert!(server.log().contains("poll=true"), "{}", server.log());
    let elsewhere = home.file("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    home.seal_fresh(&recipient, &elsewhere.join("polled.sealed"));
    fs::rename(elsewhere.join("polled.sealed"), inbox.join("polled.sealed")).unwrap();
    wait_for(
        "the polled file to be accepted",
        Duration::from_secs(30),
        || inbox.join("accepted/polled.sealed").exists(),
    );
    verify_receipt(&home, &inbox.join("accepted"), "polled.sealed");
    assert_eq!(queued_ids(&home).len(), 1);
    assert_eq!(server.stop(), Some(0));
}

/// Gives `agency` its own payload limit in `keys/agencies/<agency>/agency.toml`.
pub(crate) fn set_agency_limit(home: &Home, agency: &str, max: u64) {
    let file = home
        .path()
        .join(format!("keys/agencies/{agency}/agency.toml"));
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str(&format!("max_payload_bytes = {max}\n"));
    fs::write(file, text).unwrap();
}

#[test]
fn a_folder_file_over_the_agencys_own_limit_is_rejected_as_payload_too_large_and_quarantined() {
    let home = Home::new("[inbox]\nstable_ms = 0\n");
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    fs::create_dir_all(&inbox).unwrap();
    home.seal_fresh(&recipient, &inbox.join("big.sealed"));
    let size = fs::metadata(inbox.join("big.sealed")).unwrap().len();
    // Far below the global 4 GiB: only the agency's own limit can refuse it.
    set_agency_limit(&home, "police", size - 1);
    let config = gateway::config::Config::load(Some(&home.config())).unwrap();
    let gw = gateway::pipeline::Gateway::load(config, true).unwrap();
    let handled = gateway::sources::folder::scan_once(&gw).unwrap();
    assert_eq!(handled.len(), 1, "{handled:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(inbox.join("rejected/big.sealed.error.json")).unwrap())
            .unwrap();
    assert_eq!(json["rejection"]["code"], "payload_too_large", "{json}");
    let detail = json["rejection"]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        format!(
            "the payload is {size} bytes; the limit for police is {} bytes",
            size - 1
        )
    );
    let txt = fs::read_to_string(inbox.join("rejected/big.sealed.error.txt")).unwrap();
    assert!(txt.contains("rejected payload_too_large"), "{txt}");
    assert!(inbox.join("rejected/big.sealed").exists());
    assert!(queued_ids(&home).is_empty(), "nothing forwarded");
    let id = json["gateway_message_id"].as_str().unwrap();
    let record: serde_json::Value = serde_json::from_slice(
        &fs::read(
            home.path()
                .join(format!("state/quarantine/police/{id}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["code"], "payload_too_large");
}

/// No periodic rescan within a test: only the watcher can find a new file in time.
const NO_RESCAN: &str =
    "[http]\nlisten = \"127.0.0.1:0\"\n[inbox]\nstable_ms = 200\nrescan_secs = 3600\n";

#[test]
fn files_that_change_only_by_chmod_or_hard_link_are_taken_without_waiting_for_the_rescan() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new(NO_RESCAN);
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    let elsewhere = home.file("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    home.seal_fresh(&recipient, &elsewhere.join("chmodded.sealed"));
    home.seal_fresh(&recipient, &elsewhere.join("linked.sealed"));
    let mut server = start(&home);

    // Written and closed, then its mode set (as `install -m` or `cp` + `chmod` do).
    let bytes = fs::read(elsewhere.join("chmodded.sealed")).unwrap();
    fs::write(inbox.join("chmodded.sealed"), bytes).unwrap();
    fs::set_permissions(
        inbox.join("chmodded.sealed"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    // A second name for a complete file: no write, no close.
    fs::hard_link(elsewhere.join("linked.sealed"), inbox.join("linked.sealed")).unwrap();

    wait_for("both files", Duration::from_secs(15), || {
        outcomes(&inbox).0.len() == 2
    });
    verify_receipt(&home, &inbox.join("accepted"), "chmodded.sealed");
    verify_receipt(&home, &inbox.join("accepted"), "linked.sealed");
    assert!(
        elsewhere.join("linked.sealed").exists(),
        "the other name is left alone"
    );
    assert_eq!(queued_ids(&home).len(), 2);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn a_file_named_dot_dot_sealed_is_taken_as_a_sealed_file_and_logged_under_its_safe_name() {
    let home = Home::new(NO_RESCAN);
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    let elsewhere = home.file("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    home.seal_fresh(&recipient, &elsewhere.join("x"));
    let mut server = start(&home);
    fs::rename(elsewhere.join("x"), inbox.join("..sealed")).unwrap();
    // A writer's hidden temporary name is still never taken.
    fs::write(inbox.join(".x.sealed"), b"being written").unwrap();
    wait_for("..sealed", Duration::from_secs(15), || {
        outcomes(&inbox).0.len() == 1
    });
    verify_receipt(&home, &inbox.join("accepted"), "unnamed.sealed");
    let log = server.log();
    assert!(
        log.contains("the file's outcome is recorded under a safe name")
            && log.contains("original=\"..sealed\"")
            && log.contains("file=unnamed.sealed"),
        "{log}"
    );
    assert!(log.contains("file accepted"), "{log}");
    assert!(inbox.join(".x.sealed").exists());
    assert!(!inbox.join("..sealed").exists());
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn a_name_too_long_to_keep_is_shortened_in_the_stem_and_keeps_its_sealed_suffix() {
    let home = Home::new("[inbox]\nstable_ms = 0\n");
    let recipient = home.recipient();
    let inbox = home.path().join("inbox/police");
    fs::create_dir_all(&inbox).unwrap();
    let long = format!("{}.sealed", "x".repeat(200));
    home.seal_fresh(&recipient, &inbox.join(&long));
    let config = gateway::config::Config::load(Some(&home.config())).unwrap();
    let gw = gateway::pipeline::Gateway::load(config, true).unwrap();
    let handled = gateway::sources::folder::scan_once(&gw).unwrap();
    assert_eq!(handled.len(), 1, "{handled:?}");
    let (accepted, _) = outcomes(&inbox);
    let name = accepted.iter().next().unwrap().clone();
    assert!(name.ends_with("x.sealed"), "{name}");
    assert_eq!(name.len(), 150);
    assert_eq!(handled[0].name, name);
    verify_receipt(&home, &inbox.join("accepted"), &name);
}

#[test]
fn a_claimed_file_whose_outcome_cannot_be_written_is_retried_until_it_is_settled() {
    let home = Home::new(FAST);
    let recipient = home.recipient();
    let mut server = start(&home);
    let inbox = home.path().join("inbox/police");
    // Break accepted/ by removing it while the gateway runs, so the outcome cannot be written
    // (a real failure whoever runs the test: root ignores permissions; a file in its place
    // would itself be taken as a dropped file).
    let accepted = inbox.join("accepted");
    fs::remove_dir(&accepted).unwrap();
    home.seal_fresh(&recipient, &home.file("stuck.sealed"));
    fs::rename(home.file("stuck.sealed"), inbox.join("stuck.sealed")).unwrap();
    wait_for("the outcome to fail", Duration::from_secs(30), || {
        server.log().contains("cannot write the outcome")
    });
    assert_eq!(
        names_in(&inbox.join(".processing")).len(),
        1,
        "claimed, forwarded, not settled"
    );
    assert_eq!(queued_ids(&home).len(), 1);
    // Repaired while the gateway runs: no restart needed.
    fs::create_dir(&accepted).unwrap();
    wait_for("the retry", Duration::from_secs(30), || {
        accepted.join("stuck.sealed").exists() && names_in(&inbox.join(".processing")).is_empty()
    });
    let receipt = verify_receipt(&home, &accepted, "stuck.sealed");
    assert_eq!(
        queued_ids(&home),
        [receipt["gateway_message_id"].as_str().unwrap().to_owned()].into(),
        "queued once; the retry got the original receipt"
    );
    assert!(
        server
            .log()
            .contains("a claimed file will be settled again"),
        "{}",
        server.log()
    );
    assert_eq!(server.stop(), Some(0));
}
