//! Every sample message of the eight seed agencies, sealed with `gateway seal` by its agency's
//! development key, gets the expected verdict from `gateway check`: `valid-*` accepted with
//! the agency's schema, `invalid-*` rejected as `schema_invalid` with located violations.

use std::path::PathBuf;

use crate::support::{Home, schemas_dir};

#[test]
fn every_sealed_agency_sample_gets_its_expected_verdict_through_the_pipeline() {
    let home = Home::new("");
    let recipient = home.recipient();
    let mut agencies: Vec<String> = std::fs::read_dir(schemas_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("samples").is_dir())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    agencies.sort();
    assert_eq!(agencies.len(), 8);
    let mut total = 0;
    for agency in &agencies {
        let (key, cert) = home.signer(agency);
        let mut samples: Vec<PathBuf> =
            std::fs::read_dir(schemas_dir().join(agency).join("samples"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "xml"))
                .collect();
        samples.sort();
        let mut sealed = Vec::new();
        for s in &samples {
            let out = home.file(&format!(
                "{agency}-{}.sealed",
                s.file_stem().unwrap().to_str().unwrap()
            ));
            let o = home.gateway(&[
                "seal",
                "--key",
                key.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
                "--to",
                &recipient,
                s.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            sealed.push(out);
        }
        let refs: Vec<&std::path::Path> = sealed.iter().map(PathBuf::as_path).collect();
        let c = home.check(agency, &refs, &[]);
        let results = c.json["results"].as_array().unwrap();
        assert_eq!(results.len(), samples.len());
        for (sample, r) in samples.iter().zip(results) {
            let name = sample.file_name().unwrap().to_str().unwrap();
            if name.starts_with("valid-") {
                assert_eq!(r["outcome"], "accepted", "{agency}/{name}: {r}");
                assert!(
                    r["schema_id"]
                        .as_str()
                        .unwrap()
                        .starts_with(agency.as_str())
                );
            } else {
                assert_eq!(r["outcome"], "rejected", "{agency}/{name}: {r}");
                assert_eq!(
                    r["rejection"]["code"], "schema_invalid",
                    "{agency}/{name}: {r}"
                );
                let v = &r["rejection"]["violations"][0];
                assert!(
                    v["line"].as_u64().unwrap() >= 1
                        && v["path"].as_str().unwrap().starts_with('/'),
                    "{r}"
                );
            }
            total += 1;
        }
        let any_invalid = samples
            .iter()
            .any(|s| s.to_str().unwrap().contains("invalid-"));
        assert_eq!(c.code, if any_invalid { 1 } else { 0 });
    }
    assert!(total >= 8 * 8, "{total} samples");
}
