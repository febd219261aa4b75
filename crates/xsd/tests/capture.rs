//! Callers can read header fields (a message id) and the root name from the validation pass.

use xsd::QName;

const XSD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    targetNamespace="urn:t" xmlns="urn:t" elementFormDefault="qualified">
  <xs:element name="Msg"><xs:complexType><xs:sequence>
    <xs:element name="Header"><xs:complexType><xs:sequence>
      <xs:element name="Id" type="xs:string"/>
    </xs:sequence></xs:complexType></xs:element>
    <xs:element name="Id" type="xs:string" minOccurs="0"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"#;

fn compile(name: &str) -> xsd::Schema {
    let dir = tempfile_dir(name);
    let path = dir.join("s.xsd");
    std::fs::write(&path, XSD).unwrap();
    xsd::Schema::compile(std::slice::from_ref(&path), &dir).unwrap()
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xsd-capture-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn opts() -> xsd::Options {
    let q = |l: &str| QName::new(Some("urn:t"), l);
    xsd::Options {
        capture: vec![
            vec![q("Msg"), q("Header"), q("Id")],
            vec![q("Msg"), q("Nope")],
        ],
        ..Default::default()
    }
}

#[test]
fn capture_returns_the_text_at_the_exact_path_and_the_root_name() {
    let doc = r#"<m:Msg xmlns:m="urn:t"><m:Header><m:Id> abc-1 </m:Id></m:Header><m:Id>other</m:Id></m:Msg>"#;
    let r = compile("exact").validate(doc.as_bytes(), &opts());
    assert!(r.is_valid(), "{:?}", r.violations);
    assert_eq!(r.root, Some(QName::new(Some("urn:t"), "Msg")));
    assert_eq!(r.captured, vec![Some("abc-1".to_owned()), None]);
}

#[test]
fn capture_ignores_same_local_name_in_another_namespace() {
    let doc = r#"<Msg xmlns="urn:t"><Header><Id xmlns="urn:other">x</Id></Header></Msg>"#;
    let r = compile("other-ns").validate(doc.as_bytes(), &opts());
    assert!(!r.is_valid());
    assert_eq!(r.captured, vec![None, None]);
}
