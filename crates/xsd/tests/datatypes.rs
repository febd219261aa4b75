use proptest::prelude::*;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use xsd::datatypes::*;

fn ns() -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("p".to_string(), "urn:p".to_string());
    m.insert("".to_string(), "urn:default".to_string());
    m
}

fn b(t: BuiltinType) -> &'static Arc<SimpleType> {
    builtin(t)
}

fn ok(t: BuiltinType, s: &str) -> Value {
    b(t).validate(s, &ns())
        .unwrap_or_else(|e| panic!("{s:?} should be valid {}: {e}", t.local_name()))
}

fn bad(t: BuiltinType, s: &str) -> DatatypeError {
    match b(t).validate(s, &ns()) {
        Ok(v) => panic!("{s:?} should be invalid {}, got {v:?}", t.local_name()),
        Err(e) => e,
    }
}

fn restrict(base: BuiltinType, facets: &[(FacetKind, &str)]) -> Result<SimpleType, FacetError> {
    let raw: Vec<RawFacet> = facets.iter().map(|(k, v)| RawFacet::new(*k, *v)).collect();
    SimpleType::restrict(b(base), None, &raw, &ns())
}

#[test]
fn integers() {
    use BuiltinType::*;
    ok(Byte, "-128");
    ok(Byte, " +127 ");
    bad(Byte, "128");
    bad(Byte, "1.0");
    ok(Long, "9223372036854775807");
    bad(Long, "9223372036854775808");
    ok(UnsignedLong, "18446744073709551615");
    bad(UnsignedLong, "18446744073709551616");
    bad(UnsignedLong, "-1");
    ok(UnsignedLong, "-0");
    bad(PositiveInteger, "0");
    ok(NegativeInteger, "-1");
    bad(NonPositiveInteger, "1");
    ok(
        Integer,
        "123456789012345678901234567890123456789012345678901234567890",
    );
    assert_eq!(ok(Int, "1"), ok(Decimal, "1.0"));
    assert!(b(Byte).is_derived_from_builtin(Decimal));
}

#[test]
fn decimal_facets() {
    let t = restrict(
        BuiltinType::Decimal,
        &[
            (FacetKind::TotalDigits, "3"),
            (FacetKind::FractionDigits, "1"),
        ],
    )
    .unwrap();
    assert!(t.validate("12.3", &ns()).is_ok());
    assert!(t.validate("0012.30", &ns()).is_ok());
    assert!(t.validate("123.4", &ns()).is_err());
    assert!(t.validate("1.23", &ns()).is_err());
    let t = restrict(BuiltinType::Decimal, &[(FacetKind::MaxInclusive, "100")]).unwrap();
    let e = t.validate("150", &ns()).unwrap_err();
    assert_eq!(e.message, "value 150 is greater than maxInclusive 100");
    let t = restrict(
        BuiltinType::Decimal,
        &[
            (FacetKind::Enumeration, "1.0"),
            (FacetKind::Enumeration, "2"),
        ],
    )
    .unwrap();
    assert!(t.validate("1", &ns()).is_ok());
    assert!(t.validate("3", &ns()).is_err());
}

#[test]
fn messages() {
    let e = bad(BuiltinType::Date, "2024-13-01");
    assert_eq!(
        e.to_string(),
        "'2024-13-01' is not a valid xs:date (month 13 is out of range)"
    );
    let t = restrict(BuiltinType::String, &[(FacetKind::Pattern, "[0-9]{10}")]).unwrap();
    assert_eq!(
        t.validate("abc", &ns()).unwrap_err().message,
        "'abc' does not match pattern [0-9]{10}"
    );
    let t = restrict(
        BuiltinType::String,
        &[
            (FacetKind::Enumeration, "a"),
            (FacetKind::Enumeration, "b"),
            (FacetKind::Enumeration, "c"),
        ],
    )
    .unwrap();
    assert_eq!(
        t.validate("x", &ns()).unwrap_err().message,
        "'x' is not one of the allowed values {a, b, c}"
    );
}

#[test]
fn floats() {
    use BuiltinType::*;
    ok(Float, "1e10");
    ok(Double, "-INF");
    bad(Double, "+INF");
    bad(Float, "Infinity");
    assert_eq!(ok(Float, "NaN"), ok(Float, "NaN"));
    assert_ne!(ok(Float, "1"), ok(Double, "1"));
    let t = restrict(Float, &[(FacetKind::MaxInclusive, "1.1")]).unwrap();
    // 1.1000000001 rounds to the same f32 as 1.1
    assert!(t.validate("1.1000000001", &ns()).is_ok());
    assert!(t.validate("1.2", &ns()).is_err());
}

#[test]
fn strings_and_names() {
    use BuiltinType::*;
    assert_eq!(ok(Token, "  a \n b  "), Value::String("a b".into()));
    assert_eq!(ok(NormalizedString, "a\tb"), Value::String("a b".into()));
    assert_eq!(b(Token).normalize("  a  b "), "a b");
    bad(String, "a\u{1}b");
    ok(Language, "en-GB");
    bad(Language, "englishlanguage");
    bad(Language, "en_GB");
    ok(NCName, "_a.b-c");
    bad(NCName, "a:b");
    ok(Name, "a:b");
    bad(Id, "1abc");
    ok(NmTokens, " a  b ");
    bad(NmTokens, "   ");
    bad(IdRefs, "");
    assert_eq!(
        ok(IdRefs, "a b"),
        Value::List(vec![Value::String("a".into()), Value::String("b".into())])
    );
    assert_eq!(b(Id).id_kind(), Some(IdKind::Id));
    assert_eq!(b(IdRefs).id_kind(), Some(IdKind::IdRefs));
    assert_eq!(b(Entities).id_kind(), Some(IdKind::Entities));
    let my = SimpleType::list(b(IdRef), None).unwrap();
    assert_eq!(my.id_kind(), Some(IdKind::IdRefs));
    ok(AnyUri, "http://example.com/a b#frag");
    bad(AnyUri, "a#b#c");
    ok(Boolean, "1");
    bad(Boolean, "TRUE");
}

#[test]
fn qnames() {
    use BuiltinType::*;
    assert_eq!(
        ok(QName, "p:x"),
        Value::QName {
            ns: Some("urn:p".into()),
            local: "x".into()
        }
    );
    assert_eq!(
        ok(QName, "x"),
        Value::QName {
            ns: Some("urn:default".into()),
            local: "x".into()
        }
    );
    bad(QName, "q:x");
    bad(QName, ":x");
    // length facets always satisfied on QName
    let t = restrict(QName, &[(FacetKind::Length, "1")]).unwrap();
    assert!(t.validate("p:abc", &ns()).is_ok());
    let t = restrict(QName, &[(FacetKind::Enumeration, "p:a")]).unwrap();
    assert!(t.validate("p:a", &ns()).is_ok());
    assert!(t.validate("a", &ns()).is_err());
}

#[test]
fn binary() {
    use BuiltinType::*;
    assert_eq!(ok(HexBinary, "0FA0"), Value::HexBinary(vec![15, 160]));
    bad(HexBinary, "0FA");
    assert_eq!(
        ok(Base64Binary, " YW Jj "),
        Value::Base64Binary(b"abc".to_vec())
    );
    bad(Base64Binary, "YR==");
    let t = restrict(Base64Binary, &[(FacetKind::Length, "3")]).unwrap();
    assert!(t.validate("YWJj", &ns()).is_ok());
    assert!(t.validate("YWI=", &ns()).is_err());
    assert_ne!(ok(HexBinary, "61"), ok(Base64Binary, "YQ=="));
}

#[test]
fn dates_and_durations() {
    use BuiltinType::*;
    ok(DateTime, "2024-02-29T24:00:00Z");
    bad(DateTime, "0000-01-01T00:00:00");
    bad(Date, "2023-02-29");
    ok(GMonthDay, "--02-29");
    bad(Time, "24:00:01");
    assert_eq!(
        ok(DateTime, "2024-01-01T00:00:00Z"),
        ok(DateTime, "2023-12-31T19:00:00-05:00")
    );
    assert_ne!(
        ok(DateTime, "2024-01-01T00:00:00Z"),
        ok(DateTime, "2024-01-01T00:00:00")
    );
    assert_ne!(ok(Date, "2024-01-01"), ok(GYearMonth, "2024-01"));
    let a = ok(DateTime, "2000-01-15T00:00:00Z");
    let c = ok(DateTime, "2000-01-15T12:00:00");
    assert_eq!(a.partial_cmp_xsd(&c), None);
    assert_eq!(
        ok(Duration, "P1Y").partial_cmp_xsd(&ok(Duration, "P365D")),
        None
    );
    assert_eq!(
        ok(Duration, "P1Y").partial_cmp_xsd(&ok(Duration, "P367D")),
        Some(Ordering::Less)
    );
    bad(Duration, "PT");
    bad(Duration, "P");
    let t = restrict(Date, &[(FacetKind::MinInclusive, "2000-01-01Z")]).unwrap();
    assert!(t.validate("2000-01-02Z", &ns()).is_ok());
    assert!(t.validate("1999-12-31Z", &ns()).is_err());
    // indeterminate comparison fails the facet
    assert!(t.validate("2000-01-01", &ns()).is_err());
}

#[test]
fn facet_derivation_errors() {
    use BuiltinType::*;
    use FacetKind as F;
    assert!(restrict(Boolean, &[(F::Length, "1")]).is_err());
    assert!(restrict(Decimal, &[(F::Length, "1")]).is_err());
    assert!(restrict(String, &[(F::TotalDigits, "1")]).is_err());
    assert!(restrict(String, &[(F::MinLength, "5"), (F::MaxLength, "4")]).is_err());
    assert!(restrict(String, &[(F::Length, "5"), (F::MaxLength, "6")]).is_err());
    assert!(restrict(String, &[(F::MinLength, "x")]).is_err());
    assert!(restrict(Decimal, &[(F::MinInclusive, "1"), (F::MinExclusive, "0")]).is_err());
    assert!(restrict(Decimal, &[(F::MinInclusive, "5"), (F::MaxInclusive, "4")]).is_err());
    assert!(restrict(Decimal, &[(F::MinExclusive, "5"), (F::MaxExclusive, "4")]).is_err());
    assert!(restrict(Byte, &[(F::MaxInclusive, "200")]).is_err());
    assert!(restrict(Byte, &[(F::MaxInclusive, "1.5")]).is_err());
    assert!(restrict(Integer, &[(F::FractionDigits, "1")]).is_err());
    assert!(restrict(Integer, &[(F::FractionDigits, "0")]).is_ok());
    assert!(restrict(Decimal, &[(F::TotalDigits, "2"), (F::FractionDigits, "3")]).is_err());
    assert!(restrict(Token, &[(F::WhiteSpace, "preserve")]).is_err());
    assert!(restrict(Decimal, &[(F::WhiteSpace, "replace")]).is_err());
    assert!(restrict(Byte, &[(F::Enumeration, "1000")]).is_err());
    assert!(restrict(Decimal, &[(F::Pattern, "(")]).is_err());
    assert!(restrict(Decimal, &[(F::TotalDigits, "0")]).is_err());
    // tightening across steps
    let t1 =
        Arc::new(restrict(Decimal, &[(F::MaxExclusive, "10"), (F::TotalDigits, "5")]).unwrap());
    let r = |f: &[(FacetKind, &str)]| {
        let raw: Vec<RawFacet> = f.iter().map(|(k, v)| RawFacet::new(*k, *v)).collect();
        SimpleType::restrict(&t1, None, &raw, &ns())
    };
    assert!(r(&[(F::MaxExclusive, "10")]).is_ok());
    assert!(r(&[(F::MaxInclusive, "10")]).is_err());
    assert!(r(&[(F::MaxInclusive, "9.99")]).is_ok());
    assert!(r(&[(F::TotalDigits, "6")]).is_err());
    assert!(r(&[(F::MinInclusive, "10")]).is_err());
    // fixed
    let fixed = Arc::new(
        SimpleType::restrict(
            b(String),
            None,
            &[RawFacet {
                kind: F::MaxLength,
                value: "5".into(),
                fixed: true,
            }],
            &ns(),
        )
        .unwrap(),
    );
    assert!(
        SimpleType::restrict(&fixed, None, &[RawFacet::new(F::MaxLength, "4")], &ns()).is_err()
    );
    assert!(SimpleType::restrict(&fixed, None, &[RawFacet::new(F::MaxLength, "5")], &ns()).is_ok());
    // list of list not allowed
    assert!(SimpleType::list(b(NmTokens), None).is_err());
    let u = Arc::new(SimpleType::union(vec![b(Int).clone(), b(NmTokens).clone()], None).unwrap());
    assert!(SimpleType::list(&u, None).is_err());
}

#[test]
fn lists_and_unions() {
    use BuiltinType::*;
    use FacetKind as F;
    let l = Arc::new(SimpleType::list(b(Int), None).unwrap());
    assert_eq!(
        l.validate(" 1  2 3 ", &ns()).unwrap(),
        Value::List(vec![ok(Int, "1"), ok(Int, "2"), ok(Int, "3")])
    );
    assert!(l.validate("1 x", &ns()).is_err());
    let l3 = SimpleType::restrict(&l, None, &[RawFacet::new(F::Length, "3")], &ns()).unwrap();
    assert!(l3.validate("1 2 3", &ns()).is_ok());
    assert!(l3.validate("1 2", &ns()).is_err());
    let u = Arc::new(SimpleType::union(vec![b(Int).clone(), b(Date).clone()], None).unwrap());
    assert_eq!(u.validate("5", &ns()).unwrap(), ok(Int, "5"));
    assert!(u.validate("2024-01-01", &ns()).is_ok());
    assert!(u.validate("x", &ns()).is_err());
    let ue = SimpleType::restrict(&u, None, &[RawFacet::new(F::Enumeration, "5.0")], &ns());
    assert!(ue.is_err()); // 5.0 is not an int nor a date
    let ue = SimpleType::restrict(
        &u,
        None,
        &[
            RawFacet::new(F::Enumeration, "5"),
            RawFacet::new(F::Enumeration, "2024-01-01"),
        ],
        &ns(),
    )
    .unwrap();
    assert!(ue.validate(" 05 ", &ns()).is_ok());
    assert!(ue.validate("6", &ns()).is_err());
    assert!(SimpleType::restrict(&u, None, &[RawFacet::new(F::MaxInclusive, "5")], &ns()).is_err());
}

fn all_types() -> Vec<Arc<SimpleType>> {
    BuiltinType::ALL
        .iter()
        .map(|t| builtin(*t).clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn never_panics_any_string(s in any::<String>()) {
        for t in all_types() {
            let _ = t.validate(&s, &ns());
        }
    }
    #[test]
    fn never_panics_shaped(s in "[-+0-9.:TZPYMDHS eE=A-Za-z/]{0,40}") {
        for t in all_types() {
            if let Ok(v) = t.validate(&s, &ns()) {
                // Eq is reflexive and hashing is consistent
                prop_assert_eq!(&v, &v.clone());
                let _ = v.partial_cmp_xsd(&v);
            }
        }
    }
    #[test]
    fn restrict_never_panics(k in 0usize..12, v in "[-+0-9.a-z:TZ]{0,12}", base in 0usize..45) {
        let kinds = [FacetKind::Length, FacetKind::MinLength, FacetKind::MaxLength, FacetKind::Pattern, FacetKind::Enumeration,
            FacetKind::WhiteSpace, FacetKind::MaxInclusive, FacetKind::MaxExclusive, FacetKind::MinInclusive, FacetKind::MinExclusive,
            FacetKind::TotalDigits, FacetKind::FractionDigits];
        let t = all_types().get(base).cloned();
        if let (Some(t), Some(kind)) = (t, kinds.get(k))
            && let Ok(d) = SimpleType::restrict(&t, None, &[RawFacet::new(*kind, v.clone())], &ns()) {
                let _ = d.validate(&v, &ns());
            }
    }
    #[test]
    fn decimal_order_matches_i64(a in any::<i64>(), b in any::<i64>()) {
        let va = ok(BuiltinType::Long, &a.to_string());
        let vb = ok(BuiltinType::Long, &b.to_string());
        prop_assert_eq!(va.partial_cmp_xsd(&vb), Some(a.cmp(&b)));
    }
}

#[test]
fn long_inputs_are_linear() {
    let s = "1".repeat(200_000);
    assert!(builtin(BuiltinType::Decimal).validate(&s, &ns()).is_ok());
    assert!(builtin(BuiltinType::Long).validate(&s, &ns()).is_err());
    let d = format!("P{}DT0.{}1S", "9".repeat(50_000), "0".repeat(50_000));
    assert!(builtin(BuiltinType::Duration).validate(&d, &ns()).is_ok());
    let dt = format!("2024-01-01T00:00:00.{}", "5".repeat(100_000));
    assert!(builtin(BuiltinType::DateTime).validate(&dt, &ns()).is_ok());
}
