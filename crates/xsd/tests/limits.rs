//! Table limits never let a document pass unchecked.

use std::path::PathBuf;

fn schema(dir_name: &str, xsd: &str) -> (xsd::Schema, PathBuf) {
    let dir = std::env::temp_dir().join(format!("xsd-limits-{dir_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.xsd");
    std::fs::write(&path, xsd).unwrap();
    (
        xsd::Schema::compile(std::slice::from_ref(&path), &dir).unwrap(),
        dir,
    )
}

#[test]
fn idrefs_beyond_the_table_limit_make_the_document_invalid_instead_of_going_unchecked() {
    let (s, dir) = schema(
        "idref",
        r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="r"><xs:complexType><xs:sequence>
    <xs:element name="a" maxOccurs="unbounded"><xs:complexType>
      <xs:attribute name="id" type="xs:ID"/><xs:attribute name="ref" type="xs:IDREF"/>
    </xs:complexType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"#,
    );
    // The third IDREF does not resolve; with room for only two, it must not be silently dropped.
    let doc = r#"<r><a id="x"/><a ref="x"/><a ref="x"/><a ref="nowhere"/></r>"#;
    let opts = xsd::Options {
        max_table_entries: 2,
        ..Default::default()
    };
    let report = s.validate(doc.as_bytes(), &opts);
    assert!(!report.is_valid(), "{:?}", report.violations);
    assert_eq!(
        report.violations[0].code, "xml_limit_exceeded",
        "{:?}",
        report.violations
    );
    // With room for all of them, the real problem is found.
    let report = s.validate(doc.as_bytes(), &xsd::Options::default());
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    assert_eq!(report.violations[0].code, "idref_unresolved");
    let _ = std::fs::remove_dir_all(dir);
}
