//! `gateway check` gives each rejection code of the product contract that applies offline,
//! for payloads made with the stock `age` and `openssl` tools.

use std::path::Path;

use crate::support::{Home, sample, self_signed, sh, tool};

const POLICE_OK: &str = "valid-single-incident.xml";

fn police_sample() -> std::path::PathBuf {
    sample("police", POLICE_OK)
}

fn expect_rejected(home: &Home, agency: &str, file: &Path, code: &str) -> serde_json::Value {
    let c = home.check(agency, &[file], &[]);
    assert_eq!(c.code, 1, "{}\n{}", c.stdout, c.stderr);
    assert_eq!(c.code_of_first(), code, "{}", c.stdout);
    c.result().clone()
}

#[test]
fn payload_sealed_with_stock_openssl_and_age_is_accepted() {
    let home = Home::new("");
    let sealed = home.seal_as("police", &police_sample(), "p.sealed");
    let c = home.check("police", &[&sealed], &[]);
    assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
    let r = c.result();
    assert_eq!(r["outcome"], "accepted");
    assert_eq!(r["schema_id"], "police-IncidentBatch-1");
    assert_eq!(
        r["agency_message_id"],
        "3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d0016"
    );
    let want = tool(
        "openssl",
        &["dgst", "-sha256", "-r", police_sample().to_str().unwrap()],
    );
    let want = String::from_utf8_lossy(&want.stdout);
    assert_eq!(
        r["sha256"].as_str().unwrap(),
        want.split_whitespace().next().unwrap()
    );
}

#[test]
fn ber_streamed_signature_and_armored_age_are_accepted() {
    let home = Home::new("");
    let (key, cert) = home.signer("police");
    let ber = home.seal_stock(&police_sample(), &key, &cert, "-stream", "ber.sealed");
    let armored = home.file("armored.sealed");
    sh(&format!(
        "openssl cms -sign -binary -nodetach -outform DER -md sha512 -in '{}' -signer '{}' -inkey '{}' | age -a -r '{}' > '{}'",
        police_sample().display(),
        cert.display(),
        key.display(),
        home.recipient(),
        armored.display()
    ));
    let c = home.check("police", &[&ber, &armored], &[]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    assert_eq!(c.json["results"][1]["outcome"], "accepted");
}

#[test]
fn payload_sealed_with_gateway_seal_is_accepted() {
    let home = Home::new("");
    let (key, cert) = home.signer("housing");
    let xml = sample("housing", "valid-kinship-carer.xml");
    let out = home.file("h.sealed");
    let recipient = home.recipient();
    let o = home.gateway(&[
        "seal",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--to",
        &recipient,
        xml.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = home.check("housing", &[&out], &[]);
    assert_eq!(c.code, 0, "{}", c.stdout);
}

#[test]
fn plain_file_is_not_age_encrypted() {
    let home = Home::new("");
    expect_rejected(&home, "police", &police_sample(), "not_age_encrypted");
}

#[test]
fn an_age_header_that_never_ends_is_refused_after_64_kib() {
    // One endless stanza line, and endless short stanza lines: the header is read at most
    // 64 KiB far, and each of these is refused at once with the reason (a header line used
    // to be re-parsed from its start for every byte read: hours for a few MB).
    let home = Home::new("");
    let long_line = home.file("long-line.sealed");
    let mut bytes = b"age-encryption.org/v1\n-> X25519 ".to_vec();
    bytes.extend(std::iter::repeat_n(b'A', 4 << 20));
    std::fs::write(&long_line, &bytes).unwrap();
    let many_lines = home.file("many-lines.sealed");
    let mut bytes = b"age-encryption.org/v1\n".to_vec();
    for _ in 0..20_000 {
        bytes.extend_from_slice(b"-> X25519 c29tZXRoaW5n\nc29tZXRoaW5n\n");
    }
    std::fs::write(&many_lines, &bytes).unwrap();
    for file in [&long_line, &many_lines] {
        let r = expect_rejected(&home, "police", file, "not_age_encrypted");
        assert!(
            r["rejection"]["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("no complete age header in its first 64 KiB"),
            "{r}"
        );
    }
}

#[test]
fn payload_for_another_recipient_has_no_matching_key() {
    let home = Home::new("");
    let other = home.file("other.key");
    tool("age-keygen", &["-o", other.to_str().unwrap()]);
    let sealed = home.file("x.sealed");
    sh(&format!(
        "openssl cms -sign -binary -nodetach -outform DER -in '{}' -signer '{}' -inkey '{}' | age -e -i '{}' > '{}'",
        police_sample().display(),
        home.signer("police").1.display(),
        home.signer("police").0.display(),
        other.display(),
        sealed.display()
    ));
    expect_rejected(&home, "police", &sealed, "no_matching_key");
}

#[test]
fn corrupted_or_truncated_ciphertext_fails_to_decrypt() {
    let home = Home::new("");
    let sealed = home.seal_as("police", &police_sample(), "p.sealed");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x01;
    let flipped = home.file("flipped.sealed");
    std::fs::write(&flipped, &bytes).unwrap();
    expect_rejected(&home, "police", &flipped, "decrypt_failed");
    let good = std::fs::read(&sealed).unwrap();
    let truncated = home.file("truncated.sealed");
    std::fs::write(&truncated, &good[..good.len() - 100]).unwrap();
    expect_rejected(&home, "police", &truncated, "decrypt_failed");
}

#[test]
fn encrypted_but_unsigned_xml_is_not_signed() {
    let home = Home::new("");
    let sealed = home.file("u.sealed");
    sh(&format!(
        "age -r '{}' '{}' > '{}'",
        home.recipient(),
        police_sample().display(),
        sealed.display()
    ));
    expect_rejected(&home, "police", &sealed, "not_signed");
}

#[test]
fn content_changed_after_signing_has_an_invalid_signature() {
    let home = Home::new("");
    let (key, cert) = home.signer("police");
    let signed = home.file("s.p7m");
    tool(
        "openssl",
        &[
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-in",
            police_sample().to_str().unwrap(),
            "-signer",
            cert.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
            "-out",
            signed.to_str().unwrap(),
        ],
    );
    // Change one character of the XML inside the signed blob (the surname), keeping it valid.
    let mut der = std::fs::read(&signed).unwrap();
    let at = der
        .windows(8)
        .position(|w| w == b"Examples")
        .expect("sample text in blob");
    der[at] = b'M';
    std::fs::write(&signed, &der).unwrap();
    let sealed = home.file("t.sealed");
    sh(&format!(
        "age -r '{}' '{}' > '{}'",
        home.recipient(),
        signed.display(),
        sealed.display()
    ));
    let r = expect_rejected(&home, "police", &sealed, "signature_invalid");
    assert!(
        r["rejection"]["detail"]
            .as_str()
            .unwrap()
            .contains("digest"),
        "{r}"
    );
}

#[test]
fn signer_not_registered_is_unknown() {
    let home = Home::new("");
    let (key, cert) = home.self_signed("stranger", "/CN=unregistered/O=nowhere", 30);
    let sealed = home.seal_stock(&police_sample(), &key, &cert, "", "s.sealed");
    let r = expect_rejected(&home, "police", &sealed, "signer_unknown");
    assert!(
        r["rejection"]["action"]
            .as_str()
            .unwrap()
            .contains("register")
    );
}

#[test]
fn signer_registered_for_another_agency_is_a_mismatch() {
    let home = Home::new("");
    let sealed = home.seal_as("housing", &police_sample(), "m.sealed");
    expect_rejected(&home, "police", &sealed, "agency_mismatch");
}

/// A CA in `openssl ca` layout that can issue, backdate and revoke.
pub(crate) fn openssl_ca(home: &Home) -> std::path::PathBuf {
    let ca = home.file("ca");
    std::fs::create_dir_all(ca.join("newcerts")).unwrap();
    std::fs::write(ca.join("index.txt"), "").unwrap();
    std::fs::write(ca.join("serial"), "1000\n").unwrap();
    std::fs::write(ca.join("crlnumber"), "1000\n").unwrap();
    std::fs::write(
        ca.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndir = {}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
             serial = $dir/serial\ncrlnumber = $dir/crlnumber\ncertificate = $dir/ca.crt\nprivate_key = $dir/ca.key\n\
             default_md = sha256\ndefault_days = 30\ndefault_crl_days = 30\npolicy = p\ncopy_extensions = none\n\
             [p]\ncommonName = supplied\norganizationName = optional\n",
            ca.display()
        ),
    )
    .unwrap();
    self_signed(
        &ca.join("ca.key"),
        &ca.join("ca.crt"),
        "/CN=Police test CA",
        365,
    );
    ca
}

pub(crate) fn issue(
    ca: &Path,
    name: &str,
    dates: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = |f: &str| ca.join(f).display().to_string();
    tool(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &d(&format!("{name}.key")),
            "-out",
            &d(&format!("{name}.csr")),
        ],
    );
    let mut args = vec![
        "ca".to_owned(),
        "-batch".into(),
        "-config".into(),
        d("ca.cnf"),
        "-in".into(),
        d(&format!("{name}.csr")),
        "-out".into(),
        d(&format!("{name}.crt")),
    ];
    args.extend(dates.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("openssl", &args);
    (
        ca.join(format!("{name}.key")),
        ca.join(format!("{name}.crt")),
    )
}

#[test]
fn chain_to_anchor_is_accepted_but_expired_and_revoked_certificates_are_not() {
    let home = Home::new("");
    let ca = openssl_ca(&home);
    let (good_key, good_crt) = issue(&ca, "good", &[]);
    let (old_key, old_crt) = issue(
        &ca,
        "old",
        &[
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
        ],
    );
    let (bad_key, bad_crt) = issue(&ca, "bad", &[]);
    let d = |f: &str| ca.join(f).display().to_string();
    tool(
        "openssl",
        &["ca", "-config", &d("ca.cnf"), "-revoke", &d("bad.crt")],
    );
    let anchors = home.path().join("keys/agencies/police/anchors");
    std::fs::copy(ca.join("ca.crt"), anchors.join("police-ca.pem")).unwrap();
    let crls = home.path().join("keys/agencies/police/crls");
    tool(
        "openssl",
        &[
            "ca",
            "-config",
            &d("ca.cnf"),
            "-gencrl",
            "-out",
            crls.join("police-ca.pem").to_str().unwrap(),
        ],
    );

    let good = home.seal_stock(&police_sample(), &good_key, &good_crt, "", "good.sealed");
    let c = home.check("police", &[&good], &[]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let old = home.seal_stock(&police_sample(), &old_key, &old_crt, "", "old.sealed");
    expect_rejected(&home, "police", &old, "certificate_expired");
    let bad = home.seal_stock(&police_sample(), &bad_key, &bad_crt, "", "bad.sealed");
    expect_rejected(&home, "police", &bad, "certificate_revoked");
}

fn seal_text(home: &Home, agency: &str, xml: &str, name: &str) -> std::path::PathBuf {
    let path = home.file(&format!("{name}.xml"));
    std::fs::write(&path, xml).unwrap();
    home.seal_as(agency, &path, &format!("{name}.sealed"))
}

#[test]
fn malformed_xml_doctype_and_limits_have_their_own_codes() {
    let home = Home::new("[limits]\nmax_depth = 32\n");
    let bad = seal_text(
        &home,
        "police",
        "<IncidentBatch xmlns='urn:hub:police:IncidentBatch:1'><a></b></IncidentBatch>",
        "bad",
    );
    let r = expect_rejected(&home, "police", &bad, "xml_malformed");
    assert_eq!(r["rejection"]["violations"][0]["line"], 1);
    let dtd = seal_text(
        &home,
        "police",
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
        "dtd",
    );
    expect_rejected(&home, "police", &dtd, "dtd_forbidden");
    let deep = format!(
        "<IncidentBatch xmlns='urn:hub:police:IncidentBatch:1'>{}{}</IncidentBatch>",
        "<a>".repeat(40),
        "</a>".repeat(40)
    );
    let deep = seal_text(&home, "police", &deep, "deep");
    expect_rejected(&home, "police", &deep, "xml_limit_exceeded");
}

#[test]
fn unknown_root_and_forbidden_message_type_are_refused() {
    let home = Home::new("");
    let unknown = seal_text(
        &home,
        "police",
        "<Report xmlns='urn:elsewhere'/>",
        "unknown",
    );
    expect_rejected(&home, "police", &unknown, "schema_unknown_root");
    let housing_doc = sample("housing", "valid-kinship-carer.xml");
    let sealed = home.seal_as("police", &housing_doc, "h.sealed");
    expect_rejected(&home, "police", &sealed, "schema_not_allowed");
}

#[test]
fn schema_violations_are_reported_with_line_column_and_path() {
    let home = Home::new("");
    let xml = std::fs::read_to_string(police_sample()).unwrap();
    let broken = xml.replacen(
        "<c:DateOfBirth>2008-12-01</c:DateOfBirth>",
        "<c:DateOfBirth>2008-13-01</c:DateOfBirth>",
        1,
    );
    assert_ne!(xml, broken, "the sample has the date this test edits");
    let sealed = seal_text(&home, "police", &broken, "invalid");
    let r = expect_rejected(&home, "police", &sealed, "schema_invalid");
    let v = &r["rejection"]["violations"][0];
    assert_eq!(v["code"], "value_invalid");
    assert!(
        v["path"].as_str().unwrap().ends_with("/c:DateOfBirth"),
        "{v}"
    );
    assert!(
        v["line"].as_u64().unwrap() > 1 && v["column"].as_u64().unwrap() > 1,
        "{v}"
    );
    // The human output shows the same location.
    let out = home.gateway(&["check", "--agency", "police", sealed.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{}:{}", v["line"], v["column"])),
        "{text}"
    );
    assert!(text.contains(v["path"].as_str().unwrap()), "{text}");
}

#[test]
fn oversized_payload_is_refused_before_opening() {
    let home = Home::new("[limits]\nmax_payload_bytes = 1024\n");
    let sealed = home.seal_as("police", &police_sample(), "big.sealed");
    assert!(std::fs::metadata(&sealed).unwrap().len() > 1024);
    expect_rejected(&home, "police", &sealed, "payload_too_large");
}

#[test]
fn resend_returns_the_original_outcome_and_reused_message_id_is_a_duplicate() {
    let home = Home::new("");
    let sealed = home.seal_as("police", &police_sample(), "p.sealed");
    let first = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert_eq!(first.result()["outcome"], "forwarded");
    let id = first.result()["gateway_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_dir = home.path().join("outbox/integration/new");
    let queued = || std::fs::read_dir(&new_dir).unwrap().count();
    assert_eq!(queued(), 2, "payload and metadata");

    let again = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert_eq!(again.result()["outcome"], "duplicate");
    assert_eq!(again.result()["gateway_message_id"], id.as_str());
    assert_eq!(queued(), 2, "a resend never makes a second queue entry");

    let xml = std::fs::read_to_string(police_sample()).unwrap();
    let changed = xml.replacen("Niche RMS", "Niche RMS 2", 1);
    let reused = seal_text(&home, "police", &changed, "reused");
    let r = home.check("police", &[&reused], &["--forward"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.code_of_first(), "duplicate");
    assert_eq!(queued(), 2);
}

#[test]
fn a_duplicate_attribute_is_reported_at_the_element_that_has_it() {
    let home = Home::new("");
    let xml = std::fs::read_to_string(police_sample()).unwrap();
    // A child element deep in the document (line 30, column 5), and the root itself.
    let cases = [
        (
            xml.replace(
                r#"<ChildInvolved childRef="C003" role="victim"/>"#,
                r#"<ChildInvolved childRef="C003" role="victim" role="witness"/>"#,
            ),
            "/IncidentBatch/Incident/ChildInvolved",
            (30, 5),
        ),
        (
            xml.replace(
                r#"xmlns:c="urn:hub:common:1">"#,
                r#"xmlns:c="urn:hub:common:1" x="1" x="2">"#,
            ),
            "/IncidentBatch",
            (2, 1),
        ),
    ];
    for (i, (doc, path, (line, column))) in cases.iter().enumerate() {
        let src = home.file(&format!("dup{i}.xml"));
        std::fs::write(&src, doc).unwrap();
        let sealed = home.seal_as("police", &src, &format!("dup{i}.sealed"));
        let r = expect_rejected(&home, "police", &sealed, "xml_malformed");
        let v = &r["rejection"]["violations"][0];
        assert_eq!(v["path"], *path, "{r}");
        assert_eq!(
            (v["line"].as_u64(), v["column"].as_u64()),
            (Some(*line), Some(*column)),
            "{r}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("appears twice"),
            "{r}"
        );
    }
}

/// Signs `xml` with every (key, cert) in `signers` in one SignedData (`openssl cms -sign`
/// with several `-signer`), then encrypts it to the home's recipient.
fn seal_multi(
    home: &Home,
    xml: &Path,
    signers: &[(std::path::PathBuf, std::path::PathBuf)],
    out: &str,
) -> std::path::PathBuf {
    let out = home.file(out);
    let flags: String = signers
        .iter()
        .map(|(key, cert)| format!(" -signer '{}' -inkey '{}'", cert.display(), key.display()))
        .collect();
    sh(&format!(
        "openssl cms -sign -binary -nodetach -outform DER -md sha256 -in '{}'{flags} | age -r '{}' > '{}'",
        xml.display(),
        home.recipient(),
        out.display()
    ));
    out
}

#[test]
fn a_second_signer_registered_to_another_agency_or_to_none_is_rejected() {
    let home = Home::new("");
    let police = home.signer("police");
    let housing = home.signer("housing");
    for (i, signers) in [
        vec![police.clone(), housing.clone()],
        vec![housing.clone(), police.clone()],
    ]
    .iter()
    .enumerate()
    {
        let sealed = seal_multi(&home, &police_sample(), signers, &format!("two{i}.sealed"));
        let r = expect_rejected(&home, "police", &sealed, "agency_mismatch");
        let detail = r["rejection"]["detail"].as_str().unwrap();
        // SignerInfos are a DER SET, sorted by encoding: the position is not the command's.
        assert!(
            detail.starts_with("signer 1 of 2: ") || detail.starts_with("signer 2 of 2: "),
            "{i}: {detail}"
        );
        assert!(detail.contains("registered for agency housing"), "{detail}");
    }
    // A second signer registered for nobody: signer_unknown.
    let (stranger_key, stranger_crt) = home.self_signed("stranger", "/CN=Stranger", 30);
    let sealed = seal_multi(
        &home,
        &police_sample(),
        &[police, (stranger_key, stranger_crt)],
        "stranger.sealed",
    );
    let r = expect_rejected(&home, "police", &sealed, "signer_unknown");
    let detail = r["rejection"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(" of 2: ") && detail.contains("CN=Stranger"),
        "{r}"
    );
}

#[test]
fn two_signers_of_the_agency_are_accepted_and_both_recorded() {
    let home = Home::new("");
    let first = home.signer("police");
    let second = home.self_signed("second", "/CN=Second police signer", 30);
    let out = home.gateway(&[
        "agency",
        "cert",
        "add",
        "police",
        second.1.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sealed = seal_multi(&home, &police_sample(), &[first, second], "both.sealed");
    let c = home.check("police", &[&sealed], &["--forward"]);
    assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
    let r = c.result();
    let signers = r["signers"].as_array().unwrap();
    assert_eq!(signers.len(), 2, "{r}");
    let mut subjects: Vec<&str> = signers
        .iter()
        .map(|s| s["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "CN=Police (development signer), O=police",
            "CN=Second police signer"
        ],
        "{r}"
    );
    let fps: Vec<&str> = signers
        .iter()
        .map(|s| s["fingerprint_sha256"].as_str().unwrap())
        .collect();
    assert_ne!(fps[0], fps[1]);
    // The queue's metadata and the audit trail name both.
    let id = r["gateway_message_id"].as_str().unwrap();
    let meta: serde_json::Value = home.queue_metadata(id);
    assert_eq!(meta["signer_fingerprints_sha256"], serde_json::json!(fps));
    assert_eq!(meta["signer_fingerprint_sha256"], fps[0]);
    let audit = std::fs::read_to_string(home.path().join("state/audit/audit.log")).unwrap();
    let line = audit
        .lines()
        .find(|l| l.contains(id) && l.contains("forwarded"))
        .unwrap();
    assert!(line.contains(fps[0]) && line.contains(fps[1]), "{line}");
}
