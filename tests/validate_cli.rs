//! `gateway validate` against the real binary: exit codes, text and JSON reports, hostile input,
//! schema confinement.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn referral_schema() -> PathBuf {
    fixture("referral/referral.xsd")
}

/// `gateway validate` with the given arguments (paths passed as OS strings).
fn validate<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::cargo_bin("gateway").expect("gateway binary");
    cmd.arg("validate")
        .args(args)
        .timeout(Duration::from_secs(60));
    cmd
}

/// One `file:line:column: code at path: message` line of the text report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    line: u64,
    column: u64,
    code: String,
    path: String,
    message: String,
}

/// Parses the violation lines of the text report for `file`.
/// Runs `gateway validate ARGS`, asserts the exit code and returns what it printed.
fn output<I, S>(args: I, code: i32) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    validate(args).assert().code(code).get_output().clone()
}

fn violations(stdout: &str, file: &Path) -> Vec<Line> {
    let prefix = format!("  {}:", file.display());
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (line, rest) = rest.split_once(':').expect("line");
            let (column, rest) = rest.split_once(": ").expect("column");
            let (code, rest) = rest.split_once(" at ").expect("code");
            let (path, message) = rest.split_once(": ").expect("path");
            Line {
                line: line.parse().expect("line number"),
                column: column.parse().expect("column number"),
                code: code.to_owned(),
                path: path.to_owned(),
                message: message.to_owned(),
            }
        })
        .collect()
}

fn check(schema: &Path, doc: &Path, expected_exit: i32) -> (String, Vec<Line>) {
    let out = output(
        ["--schema".as_ref(), schema.as_os_str(), doc.as_os_str()],
        expected_exit,
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let v = violations(&stdout, doc);
    (stdout, v)
}

fn find<'a>(v: &'a [Line], code: &str, path: &str) -> &'a Line {
    v.iter()
        .find(|l| l.code == code && l.path == path)
        .unwrap_or_else(|| panic!("no {code} at {path} in {v:#?}"))
}

// ---------------------------------------------------------------------------------------------
// Valid and invalid documents
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_accepts_a_valid_referral_with_exit_0_and_says_valid() {
    let doc = fixture("referral/valid.xml");
    let (stdout, v) = check(&referral_schema(), &doc, 0);
    assert_eq!(stdout.trim(), format!("{}: valid", doc.display()));
    assert!(v.is_empty());
}

#[test]
fn validate_rejects_an_invalid_referral_with_exit_1_and_one_line_per_violation() {
    let doc = fixture("referral/invalid.xml");
    let (stdout, v) = check(&referral_schema(), &doc, 1);
    assert!(
        stdout.starts_with(&format!("{}: invalid (4 violations)", doc.display())),
        "{stdout}"
    );
    let codes: Vec<_> = v.iter().map(|l| (l.line, l.code.as_str())).collect();
    assert_eq!(
        codes,
        [
            (2, "attribute_undeclared"),
            (14, "attribute_missing"),
            (17, "value_invalid"),
            (23, "element_unexpected"),
        ],
        "{stdout}"
    );
}

#[test]
fn validate_reports_a_wrong_element_name_with_what_was_expected_and_what_was_found() {
    let doc = fixture("referral/invalid.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let l = find(&v, "element_unexpected", "/Referral/Child[3]/Adress");
    assert_eq!((l.line, l.column), (23, 5));
    assert!(
        l.message.contains("expected one of {Address, NhsNumber}"),
        "{}",
        l.message
    );
    assert!(l.message.contains("found <Adress>"), "{}", l.message);
}

#[test]
fn validate_reports_an_impossible_date_of_birth_at_the_element_with_its_value() {
    let doc = fixture("referral/invalid.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let l = find(&v, "value_invalid", "/Referral/Child[2]/DateOfBirth");
    assert_eq!((l.line, l.column), (17, 5));
    assert!(l.message.contains("'2019-02-30'"), "{}", l.message);
    assert!(l.message.contains("xs:date"), "{}", l.message);
}

#[test]
fn validate_reports_a_missing_required_attribute_on_its_element() {
    let doc = fixture("referral/invalid.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let l = find(&v, "attribute_missing", "/Referral/Child[2]");
    assert_eq!((l.line, l.column), (14, 3));
    assert!(l.message.contains("required attribute id"), "{}", l.message);
}

#[test]
fn validate_reports_an_undeclared_attribute_and_lists_the_allowed_ones() {
    let doc = fixture("referral/invalid.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let l = v
        .iter()
        .find(|l| l.code == "attribute_undeclared")
        .expect("attribute_undeclared reported");
    assert_eq!(l.line, 2);
    assert!(l.path.starts_with("/Referral"), "{}", l.path);
    assert!(l.message.contains("channel"), "{}", l.message);
    assert!(
        l.message.contains("reference, source, urgent"),
        "{}",
        l.message
    );
}

#[test]
fn validate_reports_an_undeclared_attribute_at_the_attribute_with_an_at_name_path() {
    let doc = fixture("referral/invalid.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let l = find(&v, "attribute_undeclared", "/Referral/@channel");
    // `channel="phone"` starts at column 85 of line 2.
    assert_eq!((l.line, l.column), (2, 85));
}

#[test]
fn validate_checks_every_file_and_exits_with_the_worst_outcome() {
    let valid = fixture("referral/valid.xml");
    let invalid = fixture("referral/invalid.xml");
    validate([
        "--schema".as_ref(),
        referral_schema().as_os_str(),
        valid.as_os_str(),
        invalid.as_os_str(),
    ])
    .assert()
    .code(1)
    .stdout(predicate::str::contains(format!(
        "{}: valid",
        valid.display()
    )))
    .stdout(predicate::str::contains(format!(
        "{}: invalid",
        invalid.display()
    )));
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_json_output_parses_and_has_validity_and_violation_fields() {
    let valid = fixture("referral/valid.xml");
    let invalid = fixture("referral/invalid.xml");
    let out = output(
        [
            "--json".as_ref(),
            "--schema".as_ref(),
            referral_schema().as_os_str(),
            valid.as_os_str(),
            invalid.as_os_str(),
        ],
        1,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let files = json["files"].as_array().expect("files[]");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[0]["violations"].as_array().map(Vec::len), Some(0));
    assert_eq!(files[1]["valid"], false);
    let violations = files[1]["violations"].as_array().expect("violations[]");
    assert_eq!(violations.len(), 4);
    for v in violations {
        assert!(v["code"].is_string(), "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["line"].as_u64().is_some_and(|n| n > 0), "{v}");
        assert!(v["column"].as_u64().is_some_and(|n| n > 0), "{v}");
        assert!(
            v["path"].as_str().is_some_and(|p| p.starts_with('/')),
            "{v}"
        );
    }
    let date = violations
        .iter()
        .find(|v| v["code"] == "value_invalid")
        .expect("value_invalid");
    assert_eq!(date["path"], "/Referral/Child[2]/DateOfBirth");
    assert_eq!(date["line"], 17);
    assert_eq!(date["column"], 5);
}

#[test]
fn validate_json_for_a_schema_that_cannot_compile_lists_diagnostics_and_exits_3() {
    let out = output(
        [
            "--json".as_ref(),
            "--schema".as_ref(),
            fixture("bad-schemas/undefined-type.xsd").as_os_str(),
        ],
        3,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["schema_valid"], false);
    let d = &json["diagnostics"][0];
    assert_eq!(d["code"], "schema_invalid");
    assert_eq!(d["line"], 6);
    assert!(
        d["message"].as_str().unwrap_or("").contains("PhoneNumber"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------------
// Schema only, schema errors, usage and I/O
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_without_files_compiles_a_valid_schema_and_exits_0() {
    validate(["--schema".as_ref(), referral_schema().as_os_str()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("schema is valid"));
}

#[test]
fn validate_exits_3_for_a_content_model_violating_unique_particle_attribution() {
    validate([
        "--schema".as_ref(),
        fixture("bad-schemas/upa.xsd").as_os_str(),
    ])
    .assert()
    .code(3)
    .stderr(predicate::str::contains("Unique Particle Attribution"))
    .stderr(predicate::str::contains("Phone"));
}

#[test]
fn validate_names_the_schema_file_and_line_of_a_unique_particle_attribution_violation() {
    let schema = fixture("bad-schemas/upa.xsd");
    let out = output(["--schema".as_ref(), schema.as_os_str()], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", schema.display());
    let located = stderr.lines().any(|l| {
        l.trim_start()
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (4..=7).contains(&n))
    });
    assert!(located, "no {prefix}<line 4..7> in stderr:\n{stderr}");
}

#[test]
fn validate_exits_3_for_an_undefined_type_and_names_the_schema_file_and_line() {
    let schema = fixture("bad-schemas/undefined-type.xsd");
    validate(["--schema".as_ref(), schema.as_os_str()])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!("{}:6:", schema.display())))
        .stderr(predicate::str::contains("PhoneNumber"));
}

#[test]
fn validate_exits_2_for_a_missing_input_file() {
    let missing = fixture("referral/no-such-referral.xml");
    validate([
        "--schema".as_ref(),
        referral_schema().as_os_str(),
        missing.as_os_str(),
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("no-such-referral.xml"));
}

#[test]
fn validate_exits_2_for_a_missing_schema_file() {
    let missing = fixture("referral/no-such-schema.xsd");
    validate([
        "--schema".as_ref(),
        missing.as_os_str(),
        fixture("referral/valid.xml").as_os_str(),
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("no-such-schema.xsd"));
}

#[test]
fn validate_exits_2_with_a_usage_message_without_schema() {
    validate([fixture("referral/valid.xml")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--schema"))
        .stderr(predicate::str::contains("Usage"));
}

// ---------------------------------------------------------------------------------------------
// Hostile documents
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_rejects_a_doctype_as_dtd_forbidden() {
    let doc = fixture("hostile/doctype.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(
        (v[0].code.as_str(), v[0].line, v[0].column),
        ("dtd_forbidden", 2, 1)
    );
}

#[test]
fn validate_rejects_a_billion_laughs_document_as_dtd_forbidden_without_expanding_it() {
    let doc = fixture("hostile/billion-laughs.xml");
    let started = Instant::now();
    let (_, v) = check(&referral_schema(), &doc, 1);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!((v[0].code.as_str(), v[0].line), ("dtd_forbidden", 2));
}

#[test]
fn validate_rejects_a_document_nested_10000_deep_as_xml_limit_exceeded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let doc = dir.path().join("deep.xml");
    let mut xml = String::from(
        r#"<Referral xmlns="urn:example:csc:referral:1" reference="REF-000001" source="school">"#,
    );
    let open_len = xml.len() as u64;
    for _ in 1..10_000 {
        xml.push_str("<x>");
    }
    for _ in 1..10_000 {
        xml.push_str("</x>");
    }
    xml.push_str("</Referral>");
    std::fs::write(&doc, xml).expect("write deep.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let limit = v
        .iter()
        .find(|l| l.code == "xml_limit_exceeded")
        .unwrap_or_else(|| panic!("no xml_limit_exceeded in {v:#?}"));
    // The default depth limit is 256: the 257th start tag (the 256th <x>) is refused.
    assert_eq!(limit.line, 1);
    assert_eq!(limit.column, open_len + 255 * 3 + 1);
    assert!(limit.message.contains("256"), "{}", limit.message);
    assert_eq!(v.last(), Some(limit), "reading stops at the limit");
}

#[test]
fn validate_rejects_a_mismatched_end_tag_as_xml_malformed_at_its_position() {
    let doc = fixture("hostile/malformed.xml");
    let (_, v) = check(&referral_schema(), &doc, 1);
    let l = v
        .iter()
        .find(|l| l.code == "xml_malformed")
        .unwrap_or_else(|| panic!("no xml_malformed in {v:#?}"));
    assert_eq!((l.line, l.column), (4, 21));
    assert_eq!(l.path, "/Referral/Referrer");
    assert!(l.message.contains("</Referer>"), "{}", l.message);
    assert_eq!(v.last(), Some(l), "reading stops at the error");
}

// ---------------------------------------------------------------------------------------------
// Schema confinement
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_refuses_an_include_outside_the_schema_root_and_says_so() {
    let schema = fixture("confinement/root/outside.xsd");
    let doc = fixture("confinement/doc.xml");
    // Confined on request: the outside file is never read, compiling stops with exit 3 and
    // names the refused location.
    validate([
        "--schema".as_ref(),
        schema.as_os_str(),
        "--schema-root".as_ref(),
        fixture("confinement/root").as_os_str(),
        doc.as_os_str(),
    ])
    .assert()
    .code(3)
    .stderr(predicate::str::contains("outside the schema directory"));
}

#[test]
fn validate_cannot_use_types_from_an_include_outside_the_schema_root() {
    let schema = fixture("confinement/root/outside-used.xsd");
    validate([
        "--schema".as_ref(),
        schema.as_os_str(),
        "--schema-root".as_ref(),
        fixture("confinement/root").as_os_str(),
    ])
    .assert()
    .code(3)
    .stderr(predicate::str::contains("Secret"));
}

#[test]
fn validate_reads_an_outside_include_when_the_schema_root_allows_it() {
    // Control for the two tests above: the fixture itself is fine, only confinement stops it.
    let schema = fixture("confinement/root/outside-used.xsd");
    validate([
        "--schema".as_ref(),
        schema.as_os_str(),
        "--schema-root".as_ref(),
        fixture("confinement").as_os_str(),
    ])
    .assert()
    .code(0);
}

#[test]
fn validate_reads_local_includes_anywhere_by_default_like_other_validators() {
    // No --schema-root: a sibling folder's schema (a bundle's `../common/`) is read.
    let schema = fixture("confinement/root/outside-used.xsd");
    validate(["--schema".as_ref(), schema.as_os_str()])
        .assert()
        .code(0);
}

/// Issue 12: OASIS UBL as shipped (`maindoc/` importing `../common/`) with no other flag: every
/// example whose root has a main schema validates (one run per main schema, with all its
/// examples), and every mutant is refused.
#[test]
fn validate_takes_ubl_bundles_as_oasis_ships_them() {
    let rw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld");
    for (version, expected) in [("2.1", 56), ("2.4", 76)] {
        let base = rw.join(format!("ubl-{version}"));
        let mut by_schema: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> =
            std::collections::BTreeMap::new();
        for e in std::fs::read_dir(base.join("xml")).unwrap() {
            let file = e.unwrap().path();
            if file.extension().is_none_or(|x| x != "xml") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            let mut reader = xsd::xml::XmlReader::new(&bytes[..], xsd::Limits::default());
            let (ns, local) = loop {
                match reader.next().unwrap() {
                    xsd::xml::Event::Start(tag) => {
                        break (tag.namespace.map(str::to_owned), tag.local.to_owned());
                    }
                    xsd::xml::Event::Eof => panic!("no root in {}", file.display()),
                    _ => {}
                }
            };
            let main = base.join(format!("xsd/maindoc/UBL-{local}-{version}.xsd"));
            let want = format!("urn:oasis:names:specification:ubl:schema:xsd:{local}-2");
            if main.exists() && ns.as_deref() == Some(want.as_str()) {
                by_schema.entry(main).or_default().push(file);
            }
        }
        let count: usize = by_schema.values().map(Vec::len).sum();
        assert_eq!(count, expected, "UBL {version} examples with a main schema");
        for (main, files) in by_schema {
            let mut args = vec!["--schema".as_ref(), main.as_os_str()];
            args.extend(files.iter().map(|f| f.as_os_str()));
            validate(args).assert().code(0);
        }
    }
    let main = rw.join("ubl-2.1/xsd/maindoc/UBL-Invoice-2.1.xsd");
    let mut mutants: Vec<PathBuf> = std::fs::read_dir(rw.join("mutants"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    mutants.sort();
    assert_eq!(mutants.len(), 10);
    for m in mutants {
        validate(["--schema".as_ref(), main.as_os_str(), m.as_os_str()])
            .assert()
            .code(1);
    }
}

#[test]
fn validate_does_not_fetch_an_http_include() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = dir.path().join("http.xsd");
    std::fs::write(
        &schema,
        format!(
            r#"<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:include schemaLocation="http://127.0.0.1:{port}/evil.xsd"/>
  <xs:element name="Doc" type="Secret"/>
</xs:schema>
"#
        ),
    )
    .expect("write schema");
    let out = validate(["--schema".as_ref(), schema.as_os_str()])
        .assert()
        .get_output()
        .clone();
    // Either outcome is safe as long as nothing was fetched: the type comes only from the URL,
    // so the schema cannot compile.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the validator connected to the include URL from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn validate_explains_that_an_http_import_is_not_fetched_before_the_undefined_type_it_causes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = dir.path().join("remote.xsd");
    std::fs::write(
        &schema,
        r#"<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:r="urn:remote">
  <xs:import namespace="urn:remote" schemaLocation="http://schemas.example.invalid/remote.xsd"/>
  <xs:element name="Doc" type="r:Remote"/>
</xs:schema>
"#,
    )
    .expect("write schema");
    let out = validate(["--schema".as_ref(), schema.as_os_str()])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = stderr
        .find("schemaLocation 'http://schemas.example.invalid/remote.xsd' is a URL: remote and file: URLs are never fetched")
        .unwrap_or_else(|| panic!("no warning about the URL: {stderr}"));
    assert!(stderr.contains("schema_warning"), "{stderr}");
    assert!(
        stderr.contains("bundle that schema beside the others"),
        "{stderr}"
    );
    let undefined = stderr
        .find("r:Remote")
        .or_else(|| stderr.find("Remote"))
        .expect("the undefined type");
    assert!(warning < undefined, "the cause comes first: {stderr}");
}

#[test]
fn validate_warns_about_an_unused_file_url_include_and_still_compiles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = dir.path().join("fileurl.xsd");
    std::fs::write(
        &schema,
        r#"<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:include schemaLocation="file:///etc/common.xsd"/>
  <xs:element name="Doc" type="xs:string"/>
</xs:schema>
"#,
    )
    .expect("write schema");
    validate(["--schema".as_ref(), schema.as_os_str()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("schema is valid"))
        .stderr(predicate::str::contains(
            "warning: ",
        ))
        .stderr(predicate::str::contains(
            "schemaLocation 'file:///etc/common.xsd' is a URL: remote and file: URLs are never fetched",
        ));
}

/// A schema with `<Doc>` holding any number of `<Item>`s that take any attributes.
const ITEMS_XSD: &str = r#"<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="Doc">
    <xs:complexType>
      <xs:sequence>
        <xs:any processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"#;

#[test]
fn validate_places_start_tag_errors_at_the_offending_element_not_its_parent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = dir.path().join("items.xsd");
    std::fs::write(&schema, ITEMS_XSD).expect("write schema");
    let many: String = (0..300).map(|i| format!(" a{i}='x'")).collect();
    let long_name = "n".repeat(2000);
    let cases = [
        (
            "duplicate",
            "<Item a='1' a='2'/>".to_owned(),
            "xml_malformed",
            "appears twice",
        ),
        (
            "too-many",
            format!("<Item{many}/>"),
            "xml_limit_exceeded",
            "more than 256 attributes",
        ),
        (
            "long-attribute-name",
            format!("<Item {long_name}='x'/>"),
            "xml_limit_exceeded",
            "name length",
        ),
    ];
    for (name, bad, code, needle) in cases {
        let doc = dir.path().join(format!("{name}.xml"));
        // The bad tag is the second <Item> (line 3, column 3): path /Doc/Item[2].
        std::fs::write(&doc, format!("<Doc>\n  <Item/>\n  {bad}\n</Doc>\n")).expect("write doc");
        let (stdout, v) = check(&schema, &doc, 1);
        assert_eq!(v.len(), 1, "{name}: {stdout}");
        let l = &v[0];
        assert_eq!(l.code, code, "{name}: {stdout}");
        assert!(l.message.contains(needle), "{name}: {}", l.message);
        assert_eq!(l.path, "/Doc/Item[2]", "{name}: {stdout}");
        assert_eq!((l.line, l.column), (3, 3), "{name}: {stdout}");
    }
    // An over-long element name: the path names it, clipped.
    let doc = dir.path().join("long-element-name.xml");
    std::fs::write(&doc, format!("<Doc>\n  <{long_name}/>\n</Doc>\n")).expect("write doc");
    let (stdout, v) = check(&schema, &doc, 1);
    assert_eq!(v.len(), 1, "{stdout}");
    assert_eq!(v[0].code, "xml_limit_exceeded");
    assert!(
        v[0].path.starts_with("/Doc/nnnn") && v[0].path.len() < 200,
        "{}",
        v[0].path
    );
    assert_eq!((v[0].line, v[0].column), (2, 3), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// --max-errors
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_max_errors_caps_the_list_and_says_more_were_not_shown() {
    let doc = fixture("referral/invalid.xml");
    let out = output(
        [
            "--max-errors".as_ref(),
            "2".as_ref(),
            "--schema".as_ref(),
            referral_schema().as_os_str(),
            doc.as_os_str(),
        ],
        1,
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.contains("more not shown"), "{stdout}");
    assert_eq!(violations(&stdout, &doc).len(), 2, "{stdout}");
}

#[test]
fn validate_json_max_errors_marks_the_report_truncated() {
    let doc = fixture("referral/invalid.xml");
    let out = output(
        [
            "--json".as_ref(),
            "--max-errors".as_ref(),
            "2".as_ref(),
            "--schema".as_ref(),
            referral_schema().as_os_str(),
            doc.as_os_str(),
        ],
        1,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["files"][0]["truncated"], true);
    assert_eq!(
        json["files"][0]["violations"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn validate_max_errors_zero_still_rejects_an_invalid_document() {
    let doc = fixture("referral/invalid.xml");
    let out = validate([
        "--max-errors".as_ref(),
        "0".as_ref(),
        "--schema".as_ref(),
        referral_schema().as_os_str(),
        doc.as_os_str(),
    ])
    .assert()
    .get_output()
    .clone();
    // Either refused as a usage error (2) or rejected (1); never accepted.
    assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
}

#[test]
fn validate_reports_a_missing_element_once_and_goes_on_checking_its_siblings() {
    // Child c1 without its FamilyName: one "missing" error, and the siblings after it
    // (DateOfBirth, Address, NhsNumber) are still matched against the content model.
    let valid = std::fs::read_to_string(fixture("referral/valid.xml")).expect("fixture");
    let broken = valid.replacen("    <FamilyName>Jones</FamilyName>\n", "", 1);
    assert_ne!(broken, valid, "the fixture changed shape");
    let dir = tempfile::tempdir().expect("temp dir");
    let doc = dir.path().join("missing-family-name.xml");
    std::fs::write(&doc, broken).expect("write");
    let (_, v) = check(&referral_schema(), &doc, 1);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].code, "element_unexpected");
    assert_eq!(v[0].path, "/Referral/Child/DateOfBirth");
    assert!(
        v[0].message
            .contains("missing <FamilyName> before <DateOfBirth>"),
        "{v:#?}"
    );
}
