//! Real-world schemas: OASIS UBL 2.1 and 2.4 (`../shared/realworld`). Every official example
//! whose root has a main schema must validate, and every mutant of the 2.1 invoice must be
//! rejected with the right code at the right place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn realworld() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realworld")
}

fn root_name(path: &Path) -> (Option<String>, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let r = doc.root_element().tag_name();
    (r.namespace().map(str::to_owned), r.name().to_owned())
}

fn check_examples(version: &str, expected_count: usize) {
    let base = realworld().join(format!("ubl-{version}"));
    let xsd_root = base.join("xsd");
    let mut cache: HashMap<PathBuf, xsd::Schema> = HashMap::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(base.join("xml"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
    {
        let (ns, local) = root_name(file);
        let main = xsd_root
            .join("maindoc")
            .join(format!("UBL-{local}-{version}.xsd"));
        if !main.exists()
            || ns.as_deref()
                != Some(&format!(
                    "urn:oasis:names:specification:ubl:schema:xsd:{local}-2"
                ))
        {
            continue;
        }
        let schema = cache.entry(main.clone()).or_insert_with(|| {
            // No root: resolved as `gateway validate` does by default (maindoc/ imports
            // ../common/).
            xsd::Schema::compile_local(std::slice::from_ref(&main))
                .unwrap_or_else(|e| panic!("{}: {e}", main.display()))
        });
        let report = schema.validate(
            std::io::BufReader::new(std::fs::File::open(file).unwrap()),
            &xsd::Options::default(),
        );
        checked += 1;
        if !report.is_valid() {
            failures.push(format!("{}: {}", file.display(), report.violations[0]));
        }
    }
    assert!(
        failures.is_empty(),
        "UBL {version} examples rejected:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        checked, expected_count,
        "number of UBL {version} examples with a main schema"
    );
}

#[test]
fn every_ubl_21_example_validates() {
    check_examples("2.1", 56);
}

#[test]
fn every_ubl_24_example_validates() {
    check_examples("2.4", 76);
}

#[test]
fn every_ubl_invoice_mutant_is_rejected_with_a_precise_error() {
    let rw = realworld();
    let xsd_root = rw.join("ubl-2.1/xsd");
    let schema =
        xsd::Schema::compile(&[xsd_root.join("maindoc/UBL-Invoice-2.1.xsd")], &xsd_root).unwrap();
    // mutant -> (code, a fragment the path must contain)
    let expected: &[(&str, &str, &str)] = &[
        (
            "Invoice-bad-date.xml",
            "value_invalid",
            "/Invoice/cbc:IssueDate",
        ),
        ("Invoice-bad-decimal.xml", "value_invalid", "Amount"),
        (
            "Invoice-duplicate-singleton.xml",
            "element_unexpected",
            "/Invoice/",
        ),
        (
            "Invoice-missing-required-attr.xml",
            "attribute_missing",
            "/Invoice/",
        ),
        (
            "Invoice-missing-required-element.xml",
            "element_",
            "/Invoice",
        ),
        (
            "Invoice-text-in-element-only.xml",
            "text_not_allowed",
            "/Invoice",
        ),
        (
            "Invoice-undeclared-attribute.xml",
            "attribute_undeclared",
            "/Invoice",
        ),
        (
            "Invoice-unknown-element.xml",
            "element_unexpected",
            "/Invoice/",
        ),
        ("Invoice-wrong-order.xml", "element_unexpected", "/Invoice/"),
        (
            "Invoice-wrong-root-namespace.xml",
            "element_undeclared",
            "/Invoice",
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(rw.join("mutants")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let (_, code, path_part) = expected
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("unexpected mutant {name}"));
        let report = schema.validate(
            std::io::BufReader::new(std::fs::File::open(&path).unwrap()),
            &xsd::Options::default(),
        );
        assert!(!report.is_valid(), "{name} was accepted");
        let v = &report.violations[0];
        println!("{name}: {v}");
        assert!(
            v.code.starts_with(code),
            "{name}: expected code {code}, got {v}"
        );
        assert!(
            v.path.contains(path_part),
            "{name}: expected path containing {path_part}, got {v}"
        );
        assert!(v.line > 0 && v.column > 0, "{name}: no position in {v}");
        seen += 1;
    }
    assert_eq!(seen, expected.len());
}
