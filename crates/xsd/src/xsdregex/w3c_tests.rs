//! Checks against the W3C XSD test suite (msData/regex). Skipped (with a
//! message) when the suite is not present. Location: `$XSDTESTS_DIR` or
//! `/work/shared/xsdtests`.

use super::XsdRegex;
use std::path::{Path, PathBuf};

fn suite_dir() -> Option<PathBuf> {
    let p = std::env::var_os("XSDTESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/xsdtests"
            ))
        });
    if p.join("cases-xsd10.jsonl").is_file() {
        Some(p)
    } else {
        None
    }
}

/// Minimal field extraction from one JSONL line (values are plain strings).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\": ");
    let i = line.find(&pat)? + pat.len();
    let rest = &line[i..];
    let rest = rest.strip_prefix('[').unwrap_or(rest);
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

struct Facet {
    value: String,
    /// restriction base is xs:string and the pattern is its only facet
    simple: bool,
}

fn patterns(schema: &Path) -> Option<Vec<Facet>> {
    let text = std::fs::read_to_string(schema).ok()?;
    let doc = roxmltree::Document::parse(&text).ok()?;
    let mut v = Vec::new();
    for n in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "pattern")
    {
        let Some(val) = n.attribute("value") else {
            continue;
        };
        let simple = n.parent_element().is_some_and(|p| {
            p.tag_name().name() == "restriction"
                && p.attribute("base")
                    .is_some_and(|b| b.ends_with(":string") || b == "string")
                && p.children().filter(|c| c.is_element()).count() == 1
        });
        v.push(Facet {
            value: val.to_string(),
            simple,
        });
    }
    Some(v)
}

/// Instance values: `doc/@value` or the text of every `elem` child.
fn instance_values(inst: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(inst).ok()?;
    let doc = roxmltree::Document::parse(&text).ok()?;
    let root = doc.root_element();
    if let Some(v) = root.attribute("value") {
        return Some(vec![v.to_string()]);
    }
    let elems: Vec<String> = root
        .children()
        .filter(|c| c.is_element())
        .map(|c| match c.attribute("att") {
            Some(a) => a.to_string(),
            None => c.children().filter_map(|t| t.text()).collect::<String>(),
        })
        .collect();
    if elems.is_empty() { None } else { Some(elems) }
}

#[derive(Default, Debug)]
struct Stats {
    valid_schemas: usize,
    valid_patterns_ok: usize,
    valid_patterns_fail: Vec<String>,
    invalid_schemas_single: usize,
    invalid_rejected: usize,
    invalid_accepted: Vec<String>,
    inst_checked: usize,
    inst_ok: usize,
    inst_wrong: Vec<String>,
}

fn run(prefix: &str) -> Option<Stats> {
    let dir = suite_dir()?;
    let cases = std::fs::read_to_string(dir.join("cases-xsd10.jsonl")).ok()?;
    let mut st = Stats::default();
    for line in cases.lines() {
        let (Some(kind), Some(expected), Some(schema)) = (
            field(line, "kind"),
            field(line, "expected"),
            field(line, "schemas"),
        ) else {
            continue;
        };
        if !schema.starts_with(prefix) {
            continue;
        }
        let Some(facets) = patterns(&dir.join(schema)) else {
            continue;
        };
        if kind == "schema" {
            if expected == "valid" {
                st.valid_schemas += 1;
                for f in &facets {
                    match XsdRegex::compile(&f.value) {
                        Ok(_) => st.valid_patterns_ok += 1,
                        Err(e) => st.valid_patterns_fail.push(format!("{schema}: {e}")),
                    }
                }
            } else if expected == "invalid" && facets.len() == 1 {
                st.invalid_schemas_single += 1;
                let Some(f) = facets.first() else { continue };
                match XsdRegex::compile(&f.value) {
                    Err(_) => st.invalid_rejected += 1,
                    Ok(_) => st.invalid_accepted.push(format!("{schema}: {:?}", f.value)),
                }
            }
        } else if kind == "instance" && facets.len() == 1 {
            let Some(f) = facets.first() else { continue };
            if !f.simple {
                continue;
            }
            let Some(inst) = field(line, "instance") else {
                continue;
            };
            let Some(values) = instance_values(&dir.join(inst)) else {
                continue;
            };
            let Ok(re) = XsdRegex::compile(&f.value) else {
                continue;
            };
            st.inst_checked += 1;
            let all = values.iter().all(|v| re.is_match(v));
            if all == (expected == "valid") {
                st.inst_ok += 1;
            } else {
                let bad: Vec<&String> = values
                    .iter()
                    .filter(|v| re.is_match(v) == all)
                    .take(1)
                    .collect();
                st.inst_wrong.push(format!(
                    "{inst} expected {expected}: pattern {:?} values {:?}",
                    f.value,
                    bad.iter()
                        .map(|s| s.chars().take(40).collect::<String>())
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    Some(st)
}

/// Instance cases whose expected outcome we knowingly disagree with.
/// reZ006i: `invalid.c.xml` contains exactly one character that is not an
/// XML 1.0 (2nd ed.) NameChar (U+0346, outside CombiningChar #x0300-#x0345),
/// so `[\c]` must reject it; the suite metadata nevertheless says "valid".
const KNOWN_INSTANCE_DISAGREEMENTS: &[&str] = &["msData/regex/invalid.c.xml"];

fn report(st: &Stats) {
    eprintln!(
        "W3C: valid schemas {}: patterns compiled {}, failed {}",
        st.valid_schemas,
        st.valid_patterns_ok,
        st.valid_patterns_fail.len()
    );
    for f in &st.valid_patterns_fail {
        eprintln!("  VALID-BUT-REJECTED {f}");
    }
    eprintln!(
        "W3C: invalid single-pattern schemas {}: rejected {}, accepted {}",
        st.invalid_schemas_single,
        st.invalid_rejected,
        st.invalid_accepted.len()
    );
    for f in &st.invalid_accepted {
        eprintln!("  INVALID-BUT-ACCEPTED {f}");
    }
    eprintln!(
        "W3C: instances checked {}: agree {}, disagree {}",
        st.inst_checked,
        st.inst_ok,
        st.inst_wrong.len()
    );
    for f in &st.inst_wrong {
        eprintln!("  INSTANCE {f}");
    }
}

#[test]
fn w3c_msdata_regex() {
    let Some(st) = run("msData/regex/") else {
        eprintln!("W3C suite not found; skipping");
        return;
    };
    report(&st);
    assert!(st.valid_schemas > 1000);
    assert!(st.valid_patterns_fail.is_empty());
    assert!(st.invalid_accepted.is_empty());
    assert!(st.inst_checked > 1000);
    for w in &st.inst_wrong {
        assert!(
            KNOWN_INSTANCE_DISAGREEMENTS
                .iter()
                .any(|k| w.starts_with(k)),
            "unexpected instance disagreement: {w}"
        );
    }
}

/// Every pattern facet in every schema of the whole suite that is expected
/// to be valid must compile (other directories: NIST, Sun, Boeing, ...).
#[test]
fn w3c_all_valid_schema_patterns_compile() {
    let Some(st) = run("") else {
        eprintln!("W3C suite not found; skipping");
        return;
    };
    eprintln!("W3C (all dirs):");
    report(&st);
    assert!(st.valid_patterns_fail.is_empty());
}
