//! Sensitive fields: violation messages withhold their values; other values are clipped.

use xsd::SensitiveField;

const XSD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    targetNamespace="urn:t" xmlns="urn:t" xmlns:t="urn:t" elementFormDefault="qualified">
  <xs:simpleType name="Code"><xs:restriction base="xs:string">
    <xs:pattern value="[A-Z]{2}"/>
  </xs:restriction></xs:simpleType>
  <xs:complexType name="PersonType"><xs:sequence>
    <xs:element name="Name" type="t:Code"/>
    <xs:element name="Note" type="t:Code"/>
  </xs:sequence><xs:attribute name="ref" type="t:Code"/></xs:complexType>
  <xs:element name="Msg"><xs:complexType><xs:sequence>
    <xs:element name="Person" type="t:PersonType" maxOccurs="unbounded"/>
    <xs:element name="Other" type="t:PersonType" minOccurs="0"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"#;

const DOC: &str = r#"<Msg xmlns="urn:t">
  <Person ref="secret-ref"><Name>secret-name</Name><Note>plain-note</Note></Person>
  <Other ref="other-ref"><Name>other-name</Name><Note>other-note</Note></Other>
</Msg>"#;

/// Compiles [`XSD`] from a folder of its own (tests run in parallel).
fn schema() -> xsd::Schema {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("xsd-sensitive-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.xsd");
    std::fs::write(&path, XSD).unwrap();
    let schema = xsd::Schema::compile(std::slice::from_ref(&path), &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    schema
}

fn messages(fields: &[&str]) -> Vec<(String, String)> {
    let schema = schema();
    let opts = xsd::Options {
        sensitive: fields
            .iter()
            .map(|f| SensitiveField::parse(f).unwrap())
            .collect(),
        ..Default::default()
    };
    schema
        .validate(DOC.as_bytes(), &opts)
        .violations
        .into_iter()
        .map(|v| (v.path, v.message))
        .collect()
}

/// Which of the document's values appear in the messages.
fn quoted(fields: &[&str]) -> Vec<&'static str> {
    let all = messages(fields);
    assert_eq!(all.len(), 6, "{all:#?}");
    [
        "secret-ref",
        "secret-name",
        "plain-note",
        "other-ref",
        "other-name",
        "other-note",
    ]
    .into_iter()
    .filter(|v| all.iter().any(|(_, m)| m.contains(v)))
    .collect()
}

#[test]
fn without_sensitive_fields_every_value_is_quoted() {
    assert_eq!(quoted(&[]).len(), 6);
}

#[test]
fn a_bare_name_withholds_elements_and_attributes_of_that_name_anywhere_ignoring_case() {
    assert_eq!(quoted(&["name", "REF"]), ["plain-note", "other-note"],);
    let all = messages(&["Name"]);
    let (_, m) = all.iter().find(|(p, _)| p == "/Msg/Person/Name").unwrap();
    assert!(
        m.contains("value withheld (sensitive field, 11 bytes)") && m.contains("cvc-pattern-valid"),
        "{m}"
    );
}

#[test]
fn an_attribute_form_withholds_only_attributes() {
    assert_eq!(
        quoted(&["@Name", "@ref"]),
        ["secret-name", "plain-note", "other-name", "other-note"],
    );
}

#[test]
fn a_path_withholds_that_element_only_and_everything_inside_it() {
    // The whole Person record (its attribute and children), not Other.
    assert_eq!(
        quoted(&["/Msg/Person"]),
        ["other-ref", "other-name", "other-note"],
    );
    assert_eq!(
        quoted(&["/Msg/Other/Name", "/Msg/Other/@ref"]),
        ["secret-ref", "secret-name", "plain-note", "other-note"],
    );
}

#[test]
fn malformed_forms_are_refused_with_the_accepted_ones() {
    for bad in [
        "",
        "c:Name",
        "{urn:t}Name",
        "/",
        "/Msg//Name",
        "/Msg/@",
        "a b",
        "/Msg/@a/b",
    ] {
        let e = SensitiveField::parse(bad).unwrap_err();
        assert!(e.contains("/Root/Child/@name"), "{bad:?}: {e}");
    }
}

#[test]
fn a_huge_value_is_quoted_clipped_with_its_size() {
    let schema = schema();
    let huge = "é".repeat(100_000);
    let doc = DOC.replace("secret-ref", &huge);
    let report = schema.validate(doc.as_bytes(), &xsd::Options::default());
    let v = &report.violations[0];
    assert_eq!(v.path, "/Msg/Person/@ref");
    assert!(
        v.message
            .contains(&format!("'{}…' (200000 bytes)", "é".repeat(64))),
        "{}",
        v.message
    );
    assert!(v.message.len() < 400, "{}", v.message.len());
}
