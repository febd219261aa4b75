//! `gateway import`: a folder of sealed files, same outcomes as the other channels, a report
//! folder, and a second run that skips what was accepted.

use std::path::Path;

use crate::support::{Home, sample};

fn police_with_id(home: &Home, n: u32) -> std::path::PathBuf {
    let xml = std::fs::read_to_string(sample("police", "valid-single-incident.xml")).unwrap();
    let id = format!("3f6c2a1e-8b4d-4c2f-9a7e-{n:012x}");
    let xml = xml.replacen("3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d0016", &id, 1);
    let path = home.file(&format!("m{n}.xml"));
    std::fs::write(&path, xml).unwrap();
    path
}

/// `gateway import --json --agency police DISC --report REPORT`, which must exit 1 (some
/// files rejected); its JSON output.
fn import_with_rejections(home: &Home, disc: &Path, report: &Path) -> serde_json::Value {
    let out = home.gateway(&[
        "import",
        "--json",
        "--agency",
        "police",
        disc.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
#[test]
fn import_processes_a_folder_reports_each_file_and_skips_accepted_ones_on_a_second_run() {
    let home = Home::new("");
    let disc = home.file("disc");
    std::fs::create_dir_all(disc.join("week2")).unwrap();
    for n in 1..=3 {
        let xml = police_with_id(&home, n);
        let sealed = home.seal_as("police", &xml, &format!("s{n}.sealed"));
        std::fs::rename(sealed, disc.join(format!("{n}.sealed"))).unwrap();
    }
    let xml = police_with_id(&home, 4);
    std::fs::rename(
        home.seal_as("police", &xml, "s4.sealed"),
        disc.join("week2/4.sealed"),
    )
    .unwrap();
    let bad = home.seal_as(
        "police",
        &sample("police", "invalid-bad-location-postcode.xml"),
        "bad.sealed",
    );
    std::fs::rename(bad, disc.join("bad.sealed")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", disc.join("link.sealed")).unwrap();

    let report = home.file("report");
    let v = import_with_rejections(&home, &disc, &report);
    assert_eq!(v["summary"]["accepted"], 4, "{v}");
    assert_eq!(v["summary"]["rejected schema_invalid"], 1, "{v}");
    assert_eq!(v["not_regular_files"].as_array().unwrap().len(), 1);
    let listing = crate::support::sh_out(&format!("find '{}' -type f | sort", report.display()));
    assert!(
        report
            .join("accepted/week2_4.sealed.receipt.json")
            .is_file(),
        "{listing}"
    );
    assert!(report.join("accepted/1.sealed.receipt.p7s").is_file());
    assert!(report.join("rejected/bad.sealed.error.txt").is_file());
    assert_eq!(home.queued(), 4);

    let again = home.gateway(&[
        "import",
        "--json",
        "--agency",
        "police",
        disc.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["summary"]["skipped"], 4, "{v}");
    assert_eq!(home.queued(), 4, "nothing queued twice");
    // Human output: a summary table.
    let human = home.gateway(&["import", "--agency", "police", disc.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("skipped") && text.contains("files/s"),
        "{text}"
    );
}

#[test]
fn import_rejects_a_file_over_the_agencys_own_limit_as_payload_too_large() {
    let home = Home::new("");
    let disc = home.file("disc");
    std::fs::create_dir_all(&disc).unwrap();
    let small = police_with_id(&home, 1);
    let sealed = home.seal_as("police", &small, "s1.sealed");
    let size = std::fs::metadata(&sealed).unwrap().len();
    std::fs::rename(sealed, disc.join("fits.sealed")).unwrap();
    // The same document padded with a comment: larger once sealed.
    let xml = std::fs::read_to_string(police_with_id(&home, 2)).unwrap();
    let padded = home.file("padded.xml");
    std::fs::write(&padded, format!("{xml}<!-- {} -->\n", "x".repeat(4096))).unwrap();
    std::fs::rename(
        home.seal_as("police", &padded, "s2.sealed"),
        disc.join("big.sealed"),
    )
    .unwrap();
    crate::folders::set_agency_limit(&home, "police", size + 1024);

    let report = home.file("report");
    let v = import_with_rejections(&home, &disc, &report);
    assert_eq!(v["summary"]["accepted"], 1, "{v}");
    assert_eq!(v["summary"]["rejected payload_too_large"], 1, "{v}");
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(report.join("rejected/big.sealed.error.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["rejection"]["code"], "payload_too_large");
    assert!(
        json["rejection"]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("the limit for police is {} bytes", size + 1024)),
        "{json}"
    );
}
