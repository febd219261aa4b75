//! The audit log records every admin command and every message outcome, and
//! `gateway audit verify` notices tampering.

use crate::support::{Home, sample};

fn records(home: &Home) -> Vec<serde_json::Value> {
    std::fs::read_to_string(home.path().join("state/audit/audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn admin_commands_and_message_outcomes_are_audited_and_tampering_is_detected() {
    let home = Home::new("");
    assert!(
        home.gateway(&["agency", "add", "probation"])
            .status
            .success()
    );
    let (_, cert) = home.signer("police");
    assert!(
        home.gateway(&["agency", "cert", "add", "probation", cert.to_str().unwrap()])
            .status
            .success()
    );
    let out = home.gateway(&["agency", "token", "issue", "police", "--json"]);
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = token["id"].as_str().unwrap();
    assert!(
        home.gateway(&["agency", "token", "revoke", "police", id])
            .status
            .success()
    );
    let good = home.seal_as(
        "police",
        &sample("police", "valid-single-incident.xml"),
        "g.sealed",
    );
    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-bad-location-postcode.xml"),
        "b.sealed",
    );
    home.check("police", &[&good, &bad], &["--forward"]);

    let recs = records(&home);
    let actions: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("admin", "keys init"),
            ("admin", "agency add"),
            ("admin", "agency cert add"),
            ("admin", "agency token issue"),
            ("admin", "agency token revoke"),
            ("message", "forwarded"),
            ("message", "rejected"),
        ]
    );
    assert_eq!(
        recs[2]["details"]["fingerprint_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(recs[3]["details"]["token_id"], id);
    assert!(
        !std::fs::read_to_string(home.path().join("state/audit/audit.log"))
            .unwrap()
            .contains(token["token"].as_str().unwrap()),
        "no secret in the log"
    );
    assert_eq!(recs[5]["actor"], "police");
    assert_eq!(recs[6]["details"]["code"], "schema_invalid");

    let out = home.gateway(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["records"].as_u64()),
        (Some("intact"), Some(7))
    );

    let path = home.path().join("state/audit/audit.log");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"probation\"", "\"someone-else\"", 1)).unwrap();
    let out = home.gateway(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("BROKEN at record 2"), "{msg}");
}
