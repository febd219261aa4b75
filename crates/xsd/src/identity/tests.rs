use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::*;

// ------------------------------------------------------------ test value type

/// Stand-in for the validator's typed value: decimals compare by value
/// (1.0 == 1), strings never equal decimals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Val {
    Str(String),
    /// decimal scaled by 1000
    Dec(i64),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Str(s) => write!(f, "\"{s}\""),
            Val::Dec(d) if d % 1000 == 0 => write!(f, "{}", d / 1000),
            Val::Dec(d) => write!(f, "{}", *d as f64 / 1000.0),
        }
    }
}

/// `"s:abc"` is a string, anything else parsing as a number is a decimal.
fn typed(s: &str) -> Val {
    if let Some(rest) = s.strip_prefix("s:") {
        return Val::Str(rest.to_string());
    }
    match s.parse::<f64>() {
        Ok(f) => Val::Dec((f * 1000.0).round() as i64),
        Err(_) => Val::Str(s.to_string()),
    }
}

// ------------------------------------------------------------ helpers

const P: &str = "urn:p";

fn resolver(p: &str) -> Option<String> {
    match p {
        "p" => Some(P.to_string()),
        "q" => Some("urn:q".to_string()),
        _ => None,
    }
}

fn def(name: &str, kind: IdcKind, sel: &str, fields: &[&str]) -> Arc<IdcDef> {
    match IdcDef::compile((None, name.to_string()), kind, sel, fields, &resolver) {
        Ok(d) => Arc::new(d),
        Err(e) => panic!("compile failed: {e}"),
    }
}

fn key(name: &str, sel: &str, fields: &[&str]) -> Arc<IdcDef> {
    def(name, IdcKind::Key, sel, fields)
}
fn uniq(name: &str, sel: &str, fields: &[&str]) -> Arc<IdcDef> {
    def(name, IdcKind::Unique, sel, fields)
}
fn keyref(name: &str, refer: &str, sel: &str, fields: &[&str]) -> Arc<IdcDef> {
    def(
        name,
        IdcKind::KeyRef {
            refer: (None, refer.to_string()),
        },
        sel,
        fields,
    )
}

fn split_name(n: &str) -> (Option<&str>, &str) {
    match n.split_once(':') {
        Some(("p", l)) => (Some(P), l),
        Some(("q", l)) => (Some("urn:q"), l),
        _ => (None, n),
    }
}

/// Runs a tiny XML document (elements, attributes in double quotes, text; no
/// comments/entities) through a tracker. Element declarations carrying
/// constraints are looked up by the element's qualified name. An element with
/// child elements has no value; a leaf has its trimmed text as value; an
/// element with `nil="true"` is nil; `complex="true"` marks complex content.
fn run_with(doc: &str, decls: &[(&str, Vec<Arc<IdcDef>>)], limit: usize) -> Vec<IdcError> {
    let decls: HashMap<&str, &Vec<Arc<IdcDef>>> = decls.iter().map(|(n, v)| (*n, v)).collect();
    let mut t: IdcTracker<Val> = IdcTracker::new(limit);
    let mut errs = Vec::new();
    // stack: (has child element, text, nil, complex)
    let mut stack: Vec<(bool, String, bool, bool)> = Vec::new();
    let b = doc.as_bytes();
    let mut i = 0;
    let mut line = 1u64;
    while i < b.len() {
        if b[i] == b'<' {
            let j = i + doc[i..].find('>').expect("unterminated tag");
            let tag = &doc[i + 1..j];
            if let Some(_name) = tag.strip_prefix('/') {
                let (has_child, text, nil, complex) = stack.pop().expect("unbalanced");
                let v = if has_child || complex || nil {
                    None
                } else {
                    Some(typed(text.trim()))
                };
                errs.extend(t.end_element(v, nil));
            } else {
                let self_close = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let mut parts = tag.splitn(2, char::is_whitespace);
                let name = parts.next().unwrap_or("");
                let rest = parts.next().unwrap_or("");
                let mut attrs: Vec<(Option<&str>, &str, Option<Val>)> = Vec::new();
                let mut nil = false;
                let mut complex = false;
                let mut r = rest;
                while let Some(eq) = r.find('=') {
                    let an = r[..eq].trim();
                    let q1 = eq + r[eq..].find('"').expect("quote");
                    let q2 = q1 + 1 + r[q1 + 1..].find('"').expect("quote");
                    let av = &r[q1 + 1..q2];
                    if an == "nil" {
                        nil = av == "true";
                    } else if an == "complex" {
                        complex = av == "true";
                    } else {
                        let (ans, al) = split_name(an);
                        let v = if av == "?" { None } else { Some(typed(av)) };
                        attrs.push((ans, al, v));
                    }
                    r = &r[q2 + 1..];
                }
                if let Some(top) = stack.last_mut() {
                    top.0 = true;
                }
                let (ns, local) = split_name(name);
                let idcs: &[Arc<IdcDef>] = decls.get(name).map_or(&[], |v| v.as_slice());
                errs.extend(t.start_element(ns, local, &attrs, idcs, line, 1));
                if self_close {
                    let v = if complex || nil {
                        None
                    } else {
                        Some(Val::Str(String::new()))
                    };
                    errs.extend(t.end_element(v, nil));
                } else {
                    stack.push((false, String::new(), nil, complex));
                }
            }
            line += doc[i..j].matches('\n').count() as u64;
            i = j + 1;
        } else {
            let j = doc[i..].find('<').map_or(b.len(), |k| i + k);
            line += doc[i..j].matches('\n').count() as u64;
            if let Some(top) = stack.last_mut() {
                top.1.push_str(&doc[i..j]);
            }
            i = j;
        }
    }
    assert!(stack.is_empty());
    assert!(!t.is_active(), "tracker still active at end of document");
    errs
}

fn run(doc: &str, decls: &[(&str, Vec<Arc<IdcDef>>)]) -> Vec<IdcError> {
    run_with(doc, decls, 10_000)
}

fn codes(errs: &[IdcError]) -> Vec<&'static str> {
    errs.iter().map(|e| e.code).collect()
}

// ------------------------------------------------------------ XPath compile

fn compiles_sel(s: &str) -> bool {
    Selector::compile(s, "c", &resolver).is_ok()
}
fn compiles_field(s: &str) -> bool {
    Field::compile(s, "c", &resolver).is_ok()
}

#[test]
fn xpath_valid_selectors() {
    for s in [
        "a/b",
        ".//a",
        "./a|./b",
        ".",
        ".//.",
        "*",
        "p:*",
        "p:a/q:b",
        "child::a",
        "child::p:*",
        "child ::a",
        "child:: a",
        " .//a ",
        ". //.",
        ".// .",
        ".//./p:*",
        ".//*/.",
        ". | .",
        "a.b/c-d/_e",
        "child",
        "attribute",
        "xml:lang",
    ] {
        assert!(compiles_sel(s), "selector {s:?} should compile");
    }
}

#[test]
fn xpath_invalid_selectors() {
    for s in [
        "",
        " ",
        "@id",
        "a/@id",
        "attribute::a",
        "..",
        "a/..",
        "a[1]",
        "/a",
        "//a",
        "/",
        "//",
        ".//",
        "a//b",
        ".//.//a",
        "self::*",
        "descendant::*",
        "descendant-or-self::*",
        "self::node()",
        "child::",
        "| a",
        "a |",
        "a||b",
        "p: *",
        "p :*",
        "p : *",
        "child: :a",
        "u:a",
        "u:*",
        "document('')",
        "a/",
        "./ /.",
        "a b",
        "1",
        ".5",
        "a:",
        "child::.",
        "a::b",
    ] {
        assert!(!compiles_sel(s), "selector {s:?} should be rejected");
    }
}

#[test]
fn xpath_fields() {
    for s in [
        "@id",
        "a/@b",
        "attribute::b",
        "attribute :: p:b",
        "@*",
        "@ *",
        "@p:*",
        ".//@a",
        ".//./@*",
        ".",
        "a",
        ".//a/b/@c",
        "@a | @b",
        ". | .//*",
        "child::a/attribute::b",
    ] {
        assert!(compiles_field(s), "field {s:?} should compile");
    }
    for s in [
        "",
        "@",
        "attribute::",
        "@a/b",
        "@a/@b",
        "@..",
        ".///@*",
        ".//",
        "a[@b]",
        "@u:a",
        "@a b",
        "//@a",
    ] {
        assert!(!compiles_field(s), "field {s:?} should be rejected");
    }
}

#[test]
fn xpath_structure() {
    let s = Selector::compile(".//p:a/./b | .", "c", &resolver).unwrap();
    assert_eq!(
        s.paths,
        vec![
            PathExpr {
                descendant: true,
                steps: vec![
                    NameTest::Name(Some(P.into()), "a".into()),
                    NameTest::Name(None, "b".into())
                ],
                attribute: None
            },
            PathExpr {
                descendant: false,
                steps: vec![],
                attribute: None
            }
        ]
    );
    let f = Field::compile("attribute::q:*", "c", &resolver).unwrap();
    assert_eq!(
        f.paths[0].attribute,
        Some(NameTest::AnyIn(Some("urn:q".into())))
    );
    // unprefixed = no namespace, even with a default namespace around
    let f = Field::compile("a/@b", "c", &|_| Some("urn:default".into())).unwrap();
    assert_eq!(f.paths[0].steps, vec![NameTest::Name(None, "a".into())]);
    assert_eq!(f.paths[0].attribute, Some(NameTest::Name(None, "b".into())));
}

#[test]
fn xpath_errors_name_expression_and_position() {
    let e = IdcDef::compile(
        (None, "k".into()),
        IdcKind::Key,
        "a/u:b",
        &["@x"],
        &resolver,
    )
    .unwrap_err();
    assert_eq!(e.code, "idc_xpath");
    assert!(e.message.contains("\"a/u:b\""), "{}", e.message);
    assert!(e.message.contains("position 3"), "{}", e.message);
    assert!(e.message.contains("'u'"), "{}", e.message);
    let e =
        IdcDef::compile((None, "k".into()), IdcKind::Key, "a", &["b[1]"], &resolver).unwrap_err();
    assert!(
        e.message.contains("position 2") && e.message.contains("field"),
        "{}",
        e.message
    );
    let e = IdcDef::compile((None, "k".into()), IdcKind::Key, "a", &[], &resolver).unwrap_err();
    assert_eq!(e.code, "idc_xpath");
}

// ------------------------------------------------------------ unique / key

#[test]
fn unique_ok_and_duplicate() {
    let d = vec![("r", vec![uniq("u", ".//i", &["@id"])])];
    assert!(run(r#"<r><i id="1"/><i id="2"/><x><i id="3"/></x><i/></r>"#, &d).is_empty());
    let e = run(
        "<r>\n<i id=\"1\"/>\n<i id=\"s:x\"/>\n<x><i id=\"1\"/></x></r>",
        &d,
    );
    assert_eq!(codes(&e), ["idc_duplicate"]);
    assert_eq!(e[0].line, 4);
    assert_eq!(
        e[0].message,
        "duplicate key value (1) for unique 'u' (first at line 2)"
    );
}

#[test]
fn key_missing_field() {
    let d = vec![("r", vec![key("k", "i", &["@id"])])];
    let e = run(r#"<r><i id="1"/><i/></r>"#, &d);
    assert_eq!(codes(&e), ["idc_key_missing"]);
    // attribute present but without typed value
    let e = run(r#"<r><i id="?"/></r>"#, &d);
    assert_eq!(codes(&e), ["idc_key_missing"]);
    // unique tolerates both
    let d = vec![("r", vec![uniq("k", "i", &["@id"])])];
    assert!(run(r#"<r><i/><i/><i id="?"/></r>"#, &d).is_empty());
}

#[test]
fn field_multiple() {
    let d = vec![("r", vec![uniq("u", "i", &["v"])])];
    let e = run("<r><i><v>1</v><v>2</v></i></r>", &d);
    assert_eq!(codes(&e), ["idc_field_multiple"]);
    // union selecting two attributes
    let d = vec![("r", vec![uniq("u", "i", &["@a | @b"])])];
    assert_eq!(
        codes(&run(r#"<r><i a="1" b="2"/></r>"#, &d)),
        ["idc_field_multiple"]
    );
    // union selecting the same node twice is one node
    let d = vec![("r", vec![key("u", "i", &["@a | @*", ". | ."])])];
    assert!(run(r#"<r><i a="1">5</i></r>"#, &d).is_empty());
}

#[test]
fn field_not_simple_and_nil() {
    let d = vec![("r", vec![uniq("u", "i", &["v"])])];
    let e = run(r#"<r><i><v complex="true"/></i></r>"#, &d);
    assert_eq!(codes(&e), ["idc_field_not_simple"]);
    let e = run("<r><i><v><w>1</w></v></i></r>", &d);
    assert_eq!(codes(&e), ["idc_field_not_simple"]);
    // nil: incomplete for unique, error for key
    assert!(run(r#"<r><i><v nil="true"/></i><i><v nil="true"/></i></r>"#, &d).is_empty());
    let d = vec![("r", vec![key("k", "i", &["v"])])];
    assert_eq!(
        codes(&run(r#"<r><i><v nil="true"/></i></r>"#, &d)),
        ["idc_key_missing"]
    );
}

#[test]
fn element_valued_fields() {
    let d = vec![("r", vec![key("k", ".//i", &["v", "."])])];
    // '.' on a target with complex content is not simple
    let e = run("<r><i><v>1</v></i></r>", &d);
    assert_eq!(codes(&e), ["idc_field_not_simple"]);
    let d = vec![("r", vec![key("k", ".//i", &["."])])];
    assert!(run("<r><i>1</i><x><i>2</i></x></r>", &d).is_empty());
    assert_eq!(
        codes(&run("<r><i>1</i><x><i>1.0</i></x></r>", &d)),
        ["idc_duplicate"]
    );
    let d = vec![("r", vec![key("k", ".//i", &["a/b"])])];
    assert!(
        run(
            "<r><i><a><b>1</b></a></i><i><a><b>2</b></a><b>1</b></i></r>",
            &d
        )
        .is_empty()
    );
}

#[test]
fn multi_field_keys() {
    let d = vec![("r", vec![key("k", "i", &["@a", "b"])])];
    assert!(
        run(
            r#"<r><i a="1"><b>1</b></i><i a="1"><b>2</b></i><i a="2"><b>1</b></i></r>"#,
            &d
        )
        .is_empty()
    );
    let e = run(
        r#"<r><i a="1"><b>s:x</b></i><i a="1.0"><b>s:x</b></i></r>"#,
        &d,
    );
    assert_eq!(codes(&e), ["idc_duplicate"]);
    assert_eq!(
        e[0].message,
        "duplicate key value (1, \"x\") for key 'k' (first at line 1)"
    );
}

#[test]
fn values_equal_by_v_eq() {
    let d = vec![("r", vec![uniq("u", "i", &["@v"])])];
    assert_eq!(
        codes(&run(r#"<r><i v="1.0"/><i v="1"/></r>"#, &d)),
        ["idc_duplicate"]
    );
    assert!(run(r#"<r><i v="s:1"/><i v="1"/></r>"#, &d).is_empty());
}

#[test]
fn nested_scopes() {
    // the constraint is declared on a recursive element: one scope per level
    let d = vec![("s", vec![key("k", "i", &["@id"])])];
    let doc = r#"<s><i id="1"/><s><i id="1"/><i id="2"/></s><i id="2"/></s>"#;
    assert!(run(doc, &d).is_empty());
    let doc = r#"<s><i id="1"/><s><i id="1"/><i id="1"/></s></s>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_duplicate"]);
    // descendant selector sees inner targets too
    let d = vec![("s", vec![key("k", ".//i", &["@id"])])];
    let doc = r#"<s><i id="1"/><s><i id="1"/></s></s>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_duplicate"]);
    // target nodes nested in target nodes, several constraints, same element
    let d = vec![(
        "r",
        vec![
            key("k1", ".//i", &["@id"]),
            uniq("u1", ".//i | .//j", &["@n"]),
            key("k2", ".//.", &["@z"]),
        ],
    )];
    let doc = r#"<r z="0"><i id="1" n="1" z="1"><i id="2" z="2"><j n="1" z="3"/></i></i></r>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_duplicate"]);
}

#[test]
fn namespaces_and_wildcards() {
    let d = vec![("r", vec![key("k", "p:*", &["@p:id"])])];
    let doc = r#"<r><p:a p:id="1"/><p:b p:id="2"/><q:c/><c/></r>"#;
    assert!(run(doc, &d).is_empty());
    assert_eq!(
        codes(&run(r#"<r><p:a id="1"/></r>"#, &d)),
        ["idc_key_missing"]
    );
    let d = vec![("r", vec![key("k", "*", &["@*"])])];
    assert!(run(r#"<r><a x="1"/><b y="2"/></r>"#, &d).is_empty());
}

#[test]
fn selector_self_and_descendant_or_self() {
    let d = vec![("r", vec![key("k", ".", &["@id"])])];
    assert!(run(r#"<r id="1"/>"#, &d).is_empty());
    assert_eq!(codes(&run("<r/>", &d)), ["idc_key_missing"]);
    let d = vec![("r", vec![uniq("k", ".//.", &["@id"])])];
    assert_eq!(
        codes(&run(r#"<r id="1"><a><b id="1"/></a></r>"#, &d)),
        ["idc_duplicate"]
    );
}

// ------------------------------------------------------------ keyref

#[test]
fn keyref_same_element() {
    let d = vec![(
        "r",
        vec![
            key("childKey", ".//c", &["@id"]),
            keyref("parentRef", "childKey", ".//p", &["@ref"]),
        ],
    )];
    // reference before and after the key
    assert!(
        run(
            r#"<r><p ref="2"/><c id="1"/><c id="2"/><p ref="1.0"/><p/></r>"#,
            &d
        )
        .is_empty()
    );
    let e = run(r#"<r><c id="1"/><p ref="9"/></r>"#, &d);
    assert_eq!(codes(&e), ["idc_keyref_unmatched"]);
    assert_eq!(
        e[0].message,
        "keyref 'parentRef' value (9) matches no 'childKey' key"
    );
    // keyref to a unique
    let d = vec![(
        "r",
        vec![uniq("u", "c", &["."]), keyref("kr", "u", "p", &["."])],
    )];
    assert!(run("<r><c>1</c><p>1</p></r>", &d).is_empty());
    assert_eq!(
        codes(&run("<r><c>1</c><p>2</p></r>", &d)),
        ["idc_keyref_unmatched"]
    );
}

#[test]
fn keyref_to_key_on_descendant() {
    let d = vec![
        ("r", vec![keyref("kr", "k", ".//p", &["@ref"])]),
        ("t", vec![key("k", "c", &["@id"])]),
    ];
    let doc = r#"<r><p ref="1"/><x><t><c id="1"/></t></x><t><c id="2"/></t><p ref="2"/></r>"#;
    assert!(run(doc, &d).is_empty());
    let doc = r#"<r><x><t><c id="1"/></t></x><p ref="3"/></r>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_keyref_unmatched"]);
    // no binding at all for the referenced key in scope
    assert_eq!(codes(&run(r#"<r><p ref="3"/></r>"#, &d)), ["idc_refer"]);
    // empty table (declaring element present, no targets): unmatched
    assert_eq!(
        codes(&run(r#"<r><t/><p ref="3"/></r>"#, &d)),
        ["idc_keyref_unmatched"]
    );
    // a key on an ancestor is not in scope for a keyref on a descendant
    let d = vec![
        ("r", vec![key("k", ".//c", &["@id"])]),
        ("t", vec![keyref("kr", "k", "p", &["@ref"])]),
    ];
    let doc = r#"<r><c id="1"/><t><p ref="1"/></t></r>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_refer"]);
}

#[test]
fn conflicting_propagation() {
    let d = vec![
        ("r", vec![keyref("kr", "k", ".//p", &["@ref"])]),
        ("t", vec![key("k", "c", &["@id"])]),
    ];
    // two descendants contribute key 1 for different nodes: dropped at r
    let doc = r#"<r><t><c id="1"/></t><t><c id="1"/><c id="2"/></t><p ref="1"/><p ref="2"/></r>"#;
    let e = run(doc, &d);
    assert_eq!(codes(&e), ["idc_keyref_unmatched"]);
    assert!(e[0].message.contains("(1)"));
    // conflict removed at a lower level does not hide a third contribution higher up
    let doc = r#"<r><x><t><c id="1"/></t><t><c id="1"/></t></x><t><c id="1"/></t><p ref="1"/></r>"#;
    assert!(run(doc, &d).is_empty());
    // same node reaching a table twice (key declared on r too, r's selector
    // reaching the same nodes) is not a conflict
    let d = vec![
        (
            "r",
            vec![
                key("k", ".//c", &["@id"]),
                keyref("kr", "k", ".//p", &["@ref"]),
            ],
        ),
        ("t", vec![key("k", "c", &["@id"])]),
    ];
    let doc = r#"<r><t><c id="1"/></t><p ref="1"/></r>"#;
    assert!(run(doc, &d).is_empty());
    // own entry vs different node from a descendant's table: conflicting
    let d = vec![
        (
            "r",
            vec![
                key("k", "c", &["@id"]),
                keyref("kr", "k", ".//p", &["@ref"]),
            ],
        ),
        ("t", vec![key("k", "c", &["@id"])]),
    ];
    let doc = r#"<r><c id="1"/><t><c id="1"/></t><p ref="1"/></r>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_keyref_unmatched"]);
}

#[test]
fn keyref_incomplete_is_ignored_and_multi_field() {
    let d = vec![(
        "r",
        vec![
            key("k", "c", &["@a", "@b"]),
            keyref("kr", "k", "p", &["@a", "@b"]),
        ],
    )];
    let doc = r#"<r><c a="1" b="s:x"/><p a="1"/><p a="1.0" b="s:x"/></r>"#;
    assert!(run(doc, &d).is_empty());
    let doc = r#"<r><c a="1" b="s:x"/><p a="1" b="1"/></r>"#;
    assert_eq!(codes(&run(doc, &d)), ["idc_keyref_unmatched"]);
}

// ------------------------------------------------------------ limits, activity

#[test]
fn limit_exceeded() {
    let d = vec![("r", vec![uniq("u", "i", &["@id"])])];
    let doc = r#"<r><i id="1"/><i id="2"/><i id="3"/><i id="4"/></r>"#;
    let e = run_with(doc, &d, 2);
    assert_eq!(codes(&e), ["idc_limit_exceeded"]);
    assert!(run_with(doc, &d, 4).is_empty());
}

#[test]
fn inactive_is_cheap_and_returns_nothing() {
    let mut t: IdcTracker<Val> = IdcTracker::new(10);
    assert!(!t.is_active());
    let e = t.start_element(None, "a", &[], &[], 1, 1);
    assert!(e.is_empty() && e.capacity() == 0);
    assert!(!t.is_active());
    let e = t.end_element(None, false);
    assert!(e.is_empty() && e.capacity() == 0);
    // unbalanced end is harmless
    assert!(t.end_element(Some(Val::Dec(1)), false).is_empty());
    let k = key("k", "i", &["@id"]);
    t.start_element(None, "r", &[], &[k], 1, 1);
    assert!(t.is_active());
    t.end_element(None, false);
    assert!(!t.is_active());
}

#[test]
fn deep_document_is_fine() {
    let d = vec![(
        "r",
        vec![
            uniq("u", ".//i", &["@id"]),
            keyref("kr", "u", ".//p", &["@r"]),
        ],
    )];
    let mut doc = String::from("<r>");
    for n in 0..3000 {
        doc.push_str(&format!("<i id=\"{n}\"><p r=\"{n}\"/>"));
    }
    for _ in 0..3000 {
        doc.push_str("</i>");
    }
    doc.push_str("</r>");
    assert!(run_with(&doc, &d, 100_000).is_empty());
}

// ------------------------------------------------------------ robustness

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn compile_never_panics(s in "[ ./|@*:a-cpq\\[\\]()u-]{0,24}") {
            let _ = Selector::compile(&s, "c", &resolver);
            let _ = Field::compile(&s, "c", &resolver);
        }

        #[test]
        fn random_events_never_panic(
            ops in proptest::collection::vec((0u8..6, 0u8..4, 0u8..3, 0u8..4), 0..200),
        ) {
            let defs = [
                key("k", ".//a", &["@x"]),
                uniq("u", "a/b | .", &["@y", "."]),
                keyref("kr", "k", ".//b", &["@x"]),
                key("k", "b", &["*"]),
            ];
            let names = ["a", "b", "c"];
            let mut t: IdcTracker<Val> = IdcTracker::new(50);
            let mut depth = 0usize;
            for (op, n, v, c) in ops {
                if op < 3 || depth == 0 {
                    let attrs = [
                        (None, "x", Some(Val::Dec(i64::from(v)))),
                        (None, "y", if v == 0 { None } else { Some(Val::Dec(1)) }),
                    ];
                    let idcs: Vec<Arc<IdcDef>> =
                        defs.iter().take(usize::from(c)).cloned().collect();
                    let _ = t.start_element(None, names[usize::from(n % 3)], &attrs, &idcs, 1, 1);
                    depth += 1;
                } else {
                    let val = if v == 0 { None } else { Some(Val::Dec(i64::from(n))) };
                    let _ = t.end_element(val, v == 2 && n == 0);
                    depth -= 1;
                }
            }
            for _ in 0..depth {
                let _ = t.end_element(None, false);
            }
            prop_assert!(!t.is_active());
        }
    }
}
