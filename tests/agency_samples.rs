//! The seed agencies' sample messages (`schemas/<agency>/samples/`) keep their verdicts:
//! every `valid-*.xml` validates against its agency's schema and every `invalid-*.xml` does not.

use std::path::{Path, PathBuf};

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn every_agency_sample_gets_its_expected_verdict() {
    let root = schemas_dir();
    let mut agencies = 0;
    let mut checked = 0;
    let mut wrong = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("samples").is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let entry: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xsd"))
            .collect();
        assert_eq!(
            entry.len(),
            1,
            "{} must hold exactly one entry schema",
            dir.display()
        );
        let schema = xsd::Schema::compile(&entry, &root)
            .unwrap_or_else(|e| panic!("{}: {e}", entry[0].display()));
        agencies += 1;
        let (mut valid, mut invalid) = (0, 0);
        for sample in std::fs::read_dir(dir.join("samples"))
            .unwrap()
            .map(|e| e.unwrap().path())
        {
            let name = sample.file_name().unwrap().to_string_lossy().into_owned();
            let expect_valid = name.starts_with("valid-");
            assert!(
                expect_valid || name.starts_with("invalid-"),
                "sample {name} must be named valid-* or invalid-*"
            );
            let report = schema.validate(
                std::io::BufReader::new(std::fs::File::open(&sample).unwrap()),
                &xsd::Options::default(),
            );
            if report.is_valid() != expect_valid {
                wrong.push(format!(
                    "{}: {:?}",
                    sample.display(),
                    report.violations.first()
                ));
            }
            if expect_valid {
                valid += 1
            } else {
                invalid += 1
            }
            checked += 1;
        }
        assert!(
            valid >= 3 && invalid >= 5,
            "{}: needs at least 3 valid and 5 invalid samples, has {valid} and {invalid}",
            dir.display()
        );
    }
    assert!(
        wrong.is_empty(),
        "samples with the wrong verdict:\n{}",
        wrong.join("\n")
    );
    assert_eq!(agencies, 8, "the eight seed agencies");
    println!("{checked} samples of {agencies} agencies checked");
}
