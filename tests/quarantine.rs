//! The quarantine through the real binaries: a rejected payload resent many times is kept
//! once, the quotas in `gateway.toml` drop the oldest entries first (audited), and `gateway
//! serve` removes entries older than the retention period when it starts.

use std::fs;
use std::path::Path;

use crate::support::{Home, sample};

fn police() -> std::path::PathBuf {
    sample("police", "valid-single-incident.xml")
}

/// (payload files, records) in an agency's quarantine folder.
fn counts(dir: &Path) -> (usize, usize) {
    let names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        names.iter().filter(|n| n.ends_with(".sealed")).count(),
        names.iter().filter(|n| n.ends_with(".json")).count(),
    )
}

/// The audit log's `quarantine dropped` records: (subject, reason).
fn audited_drops(home: &Home) -> Vec<(String, String)> {
    fs::read_to_string(home.path().join("state/audit/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "quarantine dropped")
        .map(|r| {
            (
                r["subject"].as_str().unwrap().to_owned(),
                r["details"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn five_identical_rejected_payloads_are_kept_as_one_payload_file_with_five_records() {
    let home = Home::new("");
    // Signed by another agency: rejected (agency_mismatch) each time it is sent.
    let sealed = home.seal_as("housing", &police(), "wrong-agency.sealed");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let c = home.check("police", &[&sealed], &["--forward"]);
        assert_eq!(c.code, 1, "{}", c.stdout);
        assert_eq!(c.code_of_first(), "agency_mismatch");
        ids.push(
            c.result()["gateway_message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let dir = home.path().join("state/quarantine/police");
    assert_eq!(counts(&dir), (1, 5), "one payload, a record per rejection");
    let original = fs::read(&sealed).unwrap();
    for id in &ids {
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(format!("{id}.json"))).unwrap()).unwrap();
        assert_eq!(record["code"], "agency_mismatch");
        let payload = dir.join(record["sealed_file"].as_str().unwrap());
        assert_eq!(fs::read(payload).unwrap(), original);
    }
}

#[test]
fn over_the_configured_agency_quota_the_oldest_rejections_are_dropped_and_audited() {
    // A sealed sample is a few KB: room for two with their records, not three.
    let probe = Home::new("");
    let size = fs::metadata(probe.seal_as("housing", &police(), "probe.sealed"))
        .unwrap()
        .len();
    let quota = 2 * size + 4000;
    let home = Home::new(&format!("[quarantine]\nmax_agency_bytes = {quota}\n"));
    let mut ids = Vec::new();
    for n in 0..3 {
        // Each seal encrypts afresh: three distinct payloads.
        let sealed = home.seal_as("housing", &police(), &format!("wrong-{n}.sealed"));
        let c = home.check("police", &[&sealed], &["--forward"]);
        assert_eq!(c.code_of_first(), "agency_mismatch");
        ids.push(
            c.result()["gateway_message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let dir = home.path().join("state/quarantine/police");
    assert_eq!(counts(&dir), (2, 2));
    assert!(
        !dir.join(format!("{}.json", ids[0])).exists(),
        "oldest dropped"
    );
    assert!(dir.join(format!("{}.json", ids[1])).exists());
    assert!(dir.join(format!("{}.json", ids[2])).exists());
    assert_eq!(
        audited_drops(&home),
        vec![(ids[0].clone(), "agency_quota".to_owned())]
    );
    let verify = home.gateway(&["audit", "verify"]);
    assert!(verify.status.success(), "the audit chain is intact");
}

#[test]
fn serve_removes_quarantine_entries_older_than_the_retention_period_at_start() {
    let home = Home::with_server_config("[quarantine]\nretention_days = 30\n");
    let mut ids = Vec::new();
    for n in 0..2 {
        let sealed = home.seal_as("housing", &police(), &format!("wrong-{n}.sealed"));
        let c = home.check("police", &[&sealed], &["--forward"]);
        ids.push(
            c.result()["gateway_message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let dir = home.path().join("state/quarantine/police");
    // The first one was quarantined 31 days ago.
    let old = dir.join(format!("{}.json", ids[0]));
    let mut record: serde_json::Value = serde_json::from_slice(&fs::read(&old).unwrap()).unwrap();
    let then = time::OffsetDateTime::now_utc() - time::Duration::days(31);
    record["quarantined_at"] = then
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    fs::write(&old, serde_json::to_vec(&record).unwrap()).unwrap();

    let _server = home.serve_logged();
    let log = home.wait_for_log("quarantine swept");
    assert!(log.contains("expired=1"), "{log}");
    assert!(
        log.contains("quarantine entry dropped") && log.contains("reason=\"retention\"")
            || log.contains("reason=retention"),
        "{log}"
    );
    assert!(!old.exists());
    assert!(dir.join(format!("{}.json", ids[1])).exists());
    assert_eq!(counts(&dir), (1, 1), "the expired payload went with it");
    assert_eq!(
        audited_drops(&home),
        vec![(ids[0].clone(), "retention".to_owned())]
    );
}
