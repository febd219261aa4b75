//! Values quoted in violation messages: clipped, and withheld for the fields a catalog entry
//! marks `sensitive` (personal data must not reach answers, quarantine or rejected/ records).
//! Security review, issue 11, finding 10.

use crate::support::{Home, sample};

const MIB: usize = 1 << 20;

fn police_with(from: &str, to: &str) -> String {
    let xml = std::fs::read_to_string(sample("police", "valid-single-incident.xml")).unwrap();
    assert!(xml.contains(from), "{from}");
    xml.replace(from, to)
}

#[test]
fn a_one_megabyte_value_gives_a_small_report_that_says_its_size() {
    let home = Home::new("");
    let huge = "x".repeat(MIB);
    let cases = [
        // An attribute with an enumerated type, and element content with a pattern.
        police_with(r#"role="victim""#, &format!(r#"role="{huge}""#)),
        police_with(
            "<OfficerCollarNumber>PC12345</OfficerCollarNumber>",
            &format!("<OfficerCollarNumber>{huge}</OfficerCollarNumber>"),
        ),
    ];
    for (i, xml) in cases.iter().enumerate() {
        let src = home.file(&format!("huge{i}.xml"));
        std::fs::write(&src, xml).unwrap();
        let sealed = home.seal_as("police", &src, &format!("huge{i}.sealed"));
        let c = home.check("police", &[&sealed], &["--forward"]);
        assert_eq!(c.code, 1, "{}", c.stderr);
        assert!(
            c.stdout.len() < 8 * 1024,
            "case {i}: {} bytes of output",
            c.stdout.len()
        );
        let v = &c.result()["rejection"]["violations"][0];
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("'{}…' ({MIB} bytes)", "x".repeat(64))),
            "case {i}: {message}"
        );
        // The quarantine record is as small.
        let id = c.result()["gateway_message_id"].as_str().unwrap();
        let record = home
            .path()
            .join("state/quarantine/police")
            .join(format!("{id}.json"));
        let len = std::fs::metadata(&record).unwrap().len();
        assert!(len < 8 * 1024, "case {i}: quarantine record of {len} bytes");
    }
}

#[test]
fn a_sensitive_field_value_is_withheld_from_the_answer_and_the_quarantine_record() {
    let home = Home::new("");
    let sealed = home.seal_as(
        "police",
        &sample("police", "invalid-bad-location-postcode.xml"),
        "postcode.sealed",
    );
    let c = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(c.code, 1, "{}", c.stderr);
    let v = &c.result()["rejection"]["violations"][0];
    assert_eq!(v["path"], "/IncidentBatch/Incident/LocationPostcode");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("value withheld (sensitive field, 7 bytes)"),
        "{message}"
    );
    assert!(!c.stdout.contains("ex4 7qt"), "{}", c.stdout);
    let id = c.result()["gateway_message_id"].as_str().unwrap();
    let record = std::fs::read_to_string(
        home.path()
            .join("state/quarantine/police")
            .join(format!("{id}.json")),
    )
    .unwrap();
    assert!(
        record.contains("value withheld (sensitive field, 7 bytes)"),
        "{record}"
    );
    assert!(!record.contains("ex4 7qt"), "{record}");
    let audit = std::fs::read_to_string(home.path().join("state/audit/audit.log")).unwrap();
    assert!(!audit.contains("ex4 7qt"));
}

#[test]
fn a_value_of_a_field_not_marked_sensitive_is_still_quoted() {
    let home = Home::new("");
    let sealed = home.seal_as(
        "police",
        &sample("police", "invalid-bad-collar-number.xml"),
        "collar.sealed",
    );
    let c = home.check("police", &[&sealed], &[]);
    assert_eq!(c.code, 1, "{}", c.stderr);
    let v = &c.result()["rejection"]["violations"][0];
    assert!(
        v["message"].as_str().unwrap().contains("'PC-4821'"),
        "{}",
        c.stdout
    );
}
