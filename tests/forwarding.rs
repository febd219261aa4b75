//! `gateway check --forward`: accepted messages land in the outbox queue with their metadata
//! (re-encrypted to the hub when configured); rejected ones are kept in quarantine as received.

use crate::support::{Home, sample, tool};

fn police() -> std::path::PathBuf {
    sample("police", "valid-single-incident.xml")
}

#[test]
fn forwarded_message_is_in_new_with_its_metadata_and_nothing_is_left_in_tmp() {
    let home = Home::new("");
    let sealed = home.seal_as("police", &police(), "p.sealed");
    let c = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let id = c.result()["gateway_message_id"].as_str().unwrap();
    let q = home.path().join("outbox/integration");
    let xml = std::fs::read(q.join("new").join(format!("{id}.xml"))).unwrap();
    assert_eq!(
        xml,
        std::fs::read(police()).unwrap(),
        "the queue holds the XML exactly"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(q.join("new").join(format!("{id}.json"))).unwrap())
            .unwrap();
    assert_eq!(meta["gateway_message_id"], id);
    assert_eq!(meta["agency"], "police");
    assert_eq!(
        meta["agency_message_id"],
        "3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d0016"
    );
    assert_eq!(meta["schema_id"], "police-IncidentBatch-1");
    assert_eq!(meta["channel"], "cli");
    assert_eq!(meta["size"], xml.len() as u64);
    assert_eq!(meta["sha256"], c.result()["sha256"]);
    assert_eq!(
        meta["signer_fingerprint_sha256"],
        c.result()["signer"]["fingerprint_sha256"]
    );
    assert_eq!(std::fs::read_dir(q.join("tmp")).unwrap().count(), 0);
    assert_eq!(c.result()["receipt"]["gateway_message_id"], id);
}

#[test]
fn with_a_hub_recipient_the_queued_xml_is_re_encrypted_and_opens_with_stock_age() {
    let dir = tempfile::tempdir().unwrap();
    let hub_key = dir.path().join("hub.key");
    tool("age-keygen", &["-o", hub_key.to_str().unwrap()]);
    let text = std::fs::read_to_string(&hub_key).unwrap();
    let hub_recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    let home = Home::new(&format!("[outbox]\nhub_recipients = [{hub_recipient:?}]\n"));
    let sealed = home.seal_as("police", &police(), "p.sealed");
    let c = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let id = c.result()["gateway_message_id"].as_str().unwrap();
    let new = home.path().join("outbox/integration/new");
    assert!(
        !new.join(format!("{id}.xml")).exists(),
        "no plaintext in the queue"
    );
    let enc = new.join(format!("{id}.xml.age"));
    let out = tool(
        "age",
        &["-d", "-i", hub_key.to_str().unwrap(), enc.to_str().unwrap()],
    );
    assert_eq!(out.stdout, std::fs::read(police()).unwrap());
}

#[test]
fn rejected_payload_is_kept_in_quarantine_as_received_with_its_reason() {
    let home = Home::new("");
    let sealed = home.seal_as("housing", &police(), "wrong-agency.sealed");
    let c = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(c.code, 1);
    let id = c.result()["gateway_message_id"].as_str().unwrap();
    let dir = home.path().join("state/quarantine/police");
    let reason: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap()).unwrap();
    let kept = std::fs::read(dir.join(reason["sealed_file"].as_str().unwrap())).unwrap();
    assert_eq!(
        kept,
        std::fs::read(&sealed).unwrap(),
        "kept still encrypted, byte for byte"
    );
    assert_eq!(reason["code"], "agency_mismatch");
    assert_eq!(reason["original_name"], "wrong-agency.sealed");
    let new = home.path().join("outbox/integration/new");
    assert_eq!(
        std::fs::read_dir(new).unwrap().count(),
        0,
        "nothing forwarded"
    );
}

#[test]
fn dry_run_check_writes_nothing() {
    let home = Home::new("");
    let sealed = home.seal_as("police", &police(), "p.sealed");
    // `keys init` has already audited itself; the check itself must add nothing.
    let audit_log = home.path().join("state/audit/audit.log");
    let audit_before = std::fs::read(&audit_log).unwrap_or_default();
    let c = home.check("police", &[&sealed], &[]);
    assert_eq!(c.code, 0);
    assert!(!home.path().join("state/ledger.sqlite").exists());
    assert_eq!(std::fs::read(&audit_log).unwrap_or_default(), audit_before);
    assert!(!home.path().join("outbox").exists());
}
