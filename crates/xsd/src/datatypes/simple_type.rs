//! Simple type definitions: derivation (restriction, list, union) and validation.
use super::binary::{parse_base64, parse_hex};
use super::builtin::{BuiltinType, Primitive};
use super::datetime::{DateTimeValue, DtKind};
use super::decimal::Decimal;
use super::duration::DurationValue;
use super::facets::{FacetKind, Facets, RawFacet, WhiteSpace};
use super::float::{parse_double, parse_float};
use super::names::{check_any_uri, is_language, is_name, is_ncname, is_nmtoken, is_xml_char};
use super::value::Value;
use super::{DatatypeError, FacetError, IdKind, NamespaceContext};
use crate::xsdregex::XsdRegex;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const LEXICAL: &str = "cvc-datatype-valid.1.2.1";

#[derive(Clone, Debug)]
pub enum Variety {
    Atomic(Primitive),
    List(Arc<SimpleType>),
    Union(Vec<Arc<SimpleType>>),
    AnySimple,
}

#[derive(Clone, Debug)]
pub struct SimpleType {
    pub name: Option<String>,
    pub variety: Variety,
    pub base: Option<Arc<SimpleType>>,
    pub facets: Facets,
    /// Some only for the built-in types themselves.
    pub builtin: Option<BuiltinType>,
}

fn dt_kind(p: Primitive) -> Option<DtKind> {
    Some(match p {
        Primitive::DateTime => DtKind::DateTime,
        Primitive::Time => DtKind::Time,
        Primitive::Date => DtKind::Date,
        Primitive::GYearMonth => DtKind::GYearMonth,
        Primitive::GYear => DtKind::GYear,
        Primitive::GMonthDay => DtKind::GMonthDay,
        Primitive::GDay => DtKind::GDay,
        Primitive::GMonth => DtKind::GMonth,
        _ => return None,
    })
}

fn collapse(s: &str) -> Cow<'_, str> {
    let needs = s.starts_with([' ', '\t', '\n', '\r'])
        || s.ends_with([' ', '\t', '\n', '\r'])
        || s.contains(['\t', '\n', '\r'])
        || s.contains("  ");
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for part in s.split([' ', '\t', '\n', '\r']).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    Cow::Owned(out)
}

fn apply_ws(ws: WhiteSpace, s: &str) -> Cow<'_, str> {
    match ws {
        WhiteSpace::Preserve => Cow::Borrowed(s),
        WhiteSpace::Replace => {
            if s.contains(['\t', '\n', '\r']) {
                Cow::Owned(s.replace(['\t', '\n', '\r'], " "))
            } else {
                Cow::Borrowed(s)
            }
        }
        WhiteSpace::Collapse => collapse(s),
    }
}

fn type_label(t: &SimpleType) -> String {
    match (&t.builtin, &t.name) {
        (Some(b), _) => format!("xs:{}", b.local_name()),
        (None, Some(n)) => n.clone(),
        (None, None) => match t.nearest_builtin() {
            Some(b) => format!("(anonymous restriction of xs:{})", b.local_name()),
            None => "(anonymous type)".to_string(),
        },
    }
}

fn applicable(variety: &Variety, kind: FacetKind) -> bool {
    use FacetKind as F;
    match variety {
        Variety::AnySimple => false,
        Variety::List(_) => matches!(
            kind,
            F::Length | F::MinLength | F::MaxLength | F::Pattern | F::Enumeration | F::WhiteSpace
        ),
        Variety::Union(_) => matches!(kind, F::Pattern | F::Enumeration),
        Variety::Atomic(p) => match p {
            Primitive::String
            | Primitive::AnyUri
            | Primitive::HexBinary
            | Primitive::Base64Binary
            | Primitive::QName
            | Primitive::Notation => {
                matches!(
                    kind,
                    F::Length
                        | F::MinLength
                        | F::MaxLength
                        | F::Pattern
                        | F::Enumeration
                        | F::WhiteSpace
                )
            }
            Primitive::Boolean => matches!(kind, F::Pattern | F::WhiteSpace),
            Primitive::Decimal => !matches!(kind, F::Length | F::MinLength | F::MaxLength),
            _ => !matches!(
                kind,
                F::Length | F::MinLength | F::MaxLength | F::TotalDigits | F::FractionDigits
            ),
        },
    }
}

fn parse_qname(s: &str, ns: &dyn NamespaceContext) -> Result<(Option<String>, String), String> {
    let (prefix, local) = match s.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", s),
    };
    if !is_ncname(local)
        || (!prefix.is_empty() && !is_ncname(prefix))
        || (s.contains(':') && prefix.is_empty())
    {
        return Err("it is not a QName".into());
    }
    let uri = if prefix.is_empty() {
        ns.lookup("").filter(|u| !u.is_empty()).map(str::to_string)
    } else {
        match ns.lookup(prefix) {
            Some(u) if !u.is_empty() => Some(u.to_string()),
            _ if prefix == "xml" => Some(XML_NS.to_string()),
            _ => return Err(format!("prefix '{prefix}' is not bound to a namespace")),
        }
    };
    Ok((uri, local.to_string()))
}

fn nonneg(f: &RawFacet) -> Result<u64, FacetError> {
    let v = f.value.trim_matches([' ', '\t', '\n', '\r']);
    Decimal::parse_integer(v)
        .and_then(|d| d.to_u64_saturating())
        .ok_or_else(|| {
            FacetError::new(format!(
                "the value '{}' of facet {} is not a valid nonNegativeInteger",
                f.value,
                f.kind.name()
            ))
        })
}

fn gt(a: &Value, b: &Value) -> bool {
    a.partial_cmp_xsd(b) == Some(Ordering::Greater)
}
fn ge(a: &Value, b: &Value) -> bool {
    matches!(
        a.partial_cmp_xsd(b),
        Some(Ordering::Greater | Ordering::Equal)
    )
}

impl SimpleType {
    pub fn primitive(&self) -> Option<Primitive> {
        match self.variety {
            Variety::Atomic(p) => Some(p),
            _ => None,
        }
    }

    fn chain(&self) -> impl Iterator<Item = &SimpleType> {
        std::iter::successors(Some(self), |t| t.base.as_deref())
    }

    /// Nearest built-in type on the base chain (the type itself if built-in).
    pub fn nearest_builtin(&self) -> Option<BuiltinType> {
        self.chain().find_map(|t| t.builtin)
    }

    /// Walks the base chain.
    pub fn is_derived_from_builtin(&self, t: BuiltinType) -> bool {
        self.chain().any(|x| x.builtin == Some(t))
    }

    pub fn id_kind(&self) -> Option<IdKind> {
        match &self.variety {
            Variety::List(item) => match item.id_kind() {
                Some(IdKind::IdRef) => Some(IdKind::IdRefs),
                Some(IdKind::Entity) => Some(IdKind::Entities),
                _ => None,
            },
            Variety::Atomic(Primitive::String) => match self.nearest_builtin() {
                Some(BuiltinType::Id) => Some(IdKind::Id),
                Some(BuiltinType::IdRef) => Some(IdKind::IdRef),
                Some(BuiltinType::Entity) => Some(IdKind::Entity),
                _ => None,
            },
            _ => None,
        }
    }

    fn white_space(&self) -> Option<WhiteSpace> {
        match &self.variety {
            Variety::List(_) => Some(WhiteSpace::Collapse),
            Variety::Union(_) => None,
            Variety::AnySimple => Some(WhiteSpace::Preserve),
            Variety::Atomic(p) => Some(self.facets.white_space.unwrap_or(
                if *p == Primitive::String {
                    WhiteSpace::Preserve
                } else {
                    WhiteSpace::Collapse
                },
            )),
        }
    }

    pub fn normalize<'a>(&self, lexical: &'a str) -> Cow<'a, str> {
        match self.white_space() {
            Some(ws) => apply_ws(ws, lexical),
            None => Cow::Borrowed(lexical),
        }
    }

    fn lexical_err(&self, s: &str, why: &str) -> DatatypeError {
        DatatypeError::new(
            LEXICAL,
            format!(
                "{} is not a valid {} ({})",
                super::quote_value(s),
                type_label(self),
                why
            ),
        )
    }

    /// Maps a normalised literal of an atomic type to its value (no facets checked).
    fn parse_atomic(
        &self,
        p: Primitive,
        s: &str,
        ns: &dyn NamespaceContext,
    ) -> Result<Value, DatatypeError> {
        let err = |why: &str| self.lexical_err(s, why);
        let bt = self.nearest_builtin();
        Ok(match p {
            Primitive::String => {
                if let Some(c) = s.chars().find(|&c| !is_xml_char(c)) {
                    return Err(err(&format!(
                        "character U+{:04X} is not allowed in XML",
                        c as u32
                    )));
                }
                let ok = match bt {
                    Some(BuiltinType::Language) => is_language(s),
                    Some(BuiltinType::Name) => is_name(s),
                    Some(
                        BuiltinType::NCName
                        | BuiltinType::Id
                        | BuiltinType::IdRef
                        | BuiltinType::Entity,
                    ) => is_ncname(s),
                    Some(BuiltinType::NmToken) => is_nmtoken(s),
                    _ => true,
                };
                if !ok {
                    return Err(err(&format!(
                        "not a valid {}",
                        bt.map(|b| b.local_name()).unwrap_or("string")
                    )));
                }
                Value::String(s.to_string())
            }
            Primitive::Boolean => match s {
                "true" | "1" => Value::Boolean(true),
                "false" | "0" => Value::Boolean(false),
                _ => return Err(err("expected true, false, 1 or 0")),
            },
            Primitive::Decimal => {
                let integer = bt.is_some_and(|b| b.derives_from(BuiltinType::Integer));
                let d = if integer {
                    Decimal::parse_integer(s)
                } else {
                    Decimal::parse(s)
                };
                Value::Decimal(d.ok_or_else(|| {
                    err(if integer {
                        "expected an integer"
                    } else {
                        "expected a decimal number"
                    })
                })?)
            }
            Primitive::Float => {
                Value::Float(parse_float(s).ok_or_else(|| err("expected a float"))?)
            }
            Primitive::Double => {
                Value::Double(parse_double(s).ok_or_else(|| err("expected a double"))?)
            }
            Primitive::Duration => Value::Duration(DurationValue::parse(s).map_err(|e| err(&e))?),
            Primitive::HexBinary => Value::HexBinary(parse_hex(s).map_err(|e| err(&e))?),
            Primitive::Base64Binary => Value::Base64Binary(parse_base64(s).map_err(|e| err(&e))?),
            Primitive::AnyUri => {
                if let Some(c) = s.chars().find(|&c| !is_xml_char(c)) {
                    return Err(err(&format!(
                        "character U+{:04X} is not allowed in XML",
                        c as u32
                    )));
                }
                check_any_uri(s).map_err(|e| err(&e))?;
                Value::AnyUri(s.to_string())
            }
            Primitive::QName => {
                let (ns, local) = parse_qname(s, ns).map_err(|e| err(&e))?;
                Value::QName { ns, local }
            }
            Primitive::Notation => {
                let (ns, local) = parse_qname(s, ns).map_err(|e| err(&e))?;
                Value::Notation { ns, local }
            }
            _ => {
                let k = dt_kind(p).ok_or_else(|| err("unsupported primitive"))?;
                Value::DateTime(DateTimeValue::parse(k, s).map_err(|e| err(&e))?)
            }
        })
    }

    /// Validates a literal: whitespace normalisation, lexical space, patterns and facets.
    pub fn validate(
        &self,
        lexical: &str,
        ns: &dyn NamespaceContext,
    ) -> Result<Value, DatatypeError> {
        self.validate_impl(lexical, ns, false).map(|(v, _)| v)
    }

    /// Validates a literal like [`Self::validate`] without building its value where a
    /// cheaper check is exact (strings, booleans and date/time types without value-based
    /// facets): no allocation on the common paths. Errors are those of `validate`.
    pub fn check(&self, lexical: &str, ns: &dyn NamespaceContext) -> Result<(), DatatypeError> {
        if self.check_fast(lexical) {
            return Ok(());
        }
        self.validate(lexical, ns).map(|_| ())
    }

    /// True when `lexical` is certainly valid; false means "not decided here".
    fn check_fast(&self, lexical: &str) -> bool {
        let Variety::Atomic(p) = self.variety else {
            return false;
        };
        let f = &self.facets;
        let norm = self.normalize(lexical);
        let s: &str = &norm;
        let patterns_ok = || {
            f.patterns
                .iter()
                .all(|step| step.is_empty() || step.iter().any(|r| r.is_match(s)))
        };
        match p {
            Primitive::String => {
                if !matches!(
                    self.nearest_builtin(),
                    Some(BuiltinType::String | BuiltinType::NormalizedString | BuiltinType::Token)
                ) {
                    return false;
                }
                if s.bytes().any(|b| !(0x20..0x80).contains(&b))
                    && s.chars().any(|c| !is_xml_char(c))
                {
                    return false;
                }
                if f.length.is_some() || f.min_length.is_some() || f.max_length.is_some() {
                    let n = if s.is_ascii() {
                        s.len() as u64
                    } else {
                        s.chars().count() as u64
                    };
                    if f.length.is_some_and(|l| n != l)
                        || f.min_length.is_some_and(|l| n < l)
                        || f.max_length.is_some_and(|l| n > l)
                    {
                        return false;
                    }
                }
                if let Some(en) = &f.enumeration
                    && !en
                        .iter()
                        .any(|e| matches!(e, Value::String(x) if x.as_str() == s))
                {
                    return false;
                }
                patterns_ok()
            }
            Primitive::Boolean => {
                f.enumeration.is_none()
                    && matches!(s, "true" | "false" | "1" | "0")
                    && patterns_ok()
            }
            _ => {
                let Some(k) = dt_kind(p) else {
                    return false;
                };
                f.enumeration.is_none()
                    && f.max_inclusive.is_none()
                    && f.max_exclusive.is_none()
                    && f.min_inclusive.is_none()
                    && f.min_exclusive.is_none()
                    && DateTimeValue::check(k, s).is_ok()
                    && patterns_ok()
            }
        }
    }

    /// Returns the value and the normalised literal.
    fn validate_impl(
        &self,
        lexical: &str,
        ns: &dyn NamespaceContext,
        skip_bounds: bool,
    ) -> Result<(Value, String), DatatypeError> {
        match &self.variety {
            Variety::AnySimple => {
                if let Some(c) = lexical.chars().find(|&c| !is_xml_char(c)) {
                    return Err(self.lexical_err(
                        lexical,
                        &format!("character U+{:04X} is not allowed in XML", c as u32),
                    ));
                }
                Ok((Value::String(lexical.to_string()), lexical.to_string()))
            }
            Variety::Atomic(p) => {
                let norm = self.normalize(lexical);
                let v = self.parse_atomic(*p, &norm, ns)?;
                self.facets.check_patterns(&norm)?;
                self.facets.check_enumeration(&v, &norm)?;
                self.facets.check_value(&v, skip_bounds)?;
                Ok((v, norm.into_owned()))
            }
            Variety::List(item) => {
                let norm = collapse(lexical);
                let mut items = Vec::new();
                if !norm.is_empty() {
                    for part in norm.split(' ') {
                        let v = item.validate(part, ns).map_err(|e| {
                            DatatypeError::new(e.code, format!("list item: {}", e.message))
                        })?;
                        items.push(v);
                    }
                }
                let v = Value::List(items);
                self.facets.check_patterns(&norm)?;
                self.facets.check_enumeration(&v, &norm)?;
                self.facets.check_value(&v, true)?;
                Ok((v, norm.into_owned()))
            }
            Variety::Union(members) => {
                let mut found = None;
                for m in members {
                    if let Ok(r) = m.validate_impl(lexical, ns, false) {
                        found = Some(r);
                        break;
                    }
                }
                let (v, norm) = found.ok_or_else(|| {
                    self.lexical_err(lexical, "not valid for any member type of the union")
                })?;
                self.facets.check_patterns(&norm)?;
                self.facets.check_enumeration(&v, &norm)?;
                Ok((v, norm))
            }
        }
    }

    /// Derives a list type whose items are of type `item`.
    pub fn list(item: &Arc<SimpleType>, name: Option<String>) -> Result<SimpleType, FacetError> {
        fn contains_list(t: &SimpleType) -> bool {
            match &t.variety {
                Variety::List(_) => true,
                Variety::Union(ms) => ms.iter().any(|m| contains_list(m)),
                _ => false,
            }
        }
        if contains_list(item) {
            return Err(FacetError::new(format!(
                "the item type {} of a list must not be a list or a union containing a list",
                type_label(item)
            )));
        }
        if matches!(item.variety, Variety::AnySimple) {
            return Err(FacetError::new(
                "the item type of a list must not be xs:anySimpleType",
            ));
        }
        let mut facets = Facets {
            white_space: Some(WhiteSpace::Collapse),
            ..Default::default()
        };
        facets.fixed.insert(FacetKind::WhiteSpace);
        Ok(SimpleType {
            name,
            variety: Variety::List(item.clone()),
            base: Some(super::builtin::builtin(BuiltinType::AnySimpleType).clone()),
            facets,
            builtin: None,
        })
    }

    /// Derives a union of the given member types (in order).
    pub fn union(
        members: Vec<Arc<SimpleType>>,
        name: Option<String>,
    ) -> Result<SimpleType, FacetError> {
        if members.is_empty() {
            return Err(FacetError::new("a union needs at least one member type"));
        }
        if members
            .iter()
            .any(|m| matches!(m.variety, Variety::AnySimple))
        {
            return Err(FacetError::new(
                "xs:anySimpleType cannot be a member of a union",
            ));
        }
        Ok(SimpleType {
            name,
            variety: Variety::Union(members),
            base: Some(super::builtin::builtin(BuiltinType::AnySimpleType).clone()),
            facets: Facets::default(),
            builtin: None,
        })
    }

    /// A restriction step (XSD 1.0 Part 2 §4.3 constraints on facets).
    pub fn restrict(
        base: &Arc<SimpleType>,
        name: Option<String>,
        facets: &[RawFacet],
        ns: &dyn NamespaceContext,
    ) -> Result<SimpleType, FacetError> {
        use FacetKind as F;
        let bf = &base.facets;
        let mut nf = bf.clone();
        let blabel = type_label(base);
        let mut seen: Vec<F> = Vec::new();
        let mut new_patterns: Vec<XsdRegex> = Vec::new();
        let mut new_enum: Option<(Vec<Value>, Vec<String>)> = None;
        let (mut s_len, mut s_min, mut s_max) = (None, None, None);
        let (mut s_maxi, mut s_maxe, mut s_mini, mut s_mine) = (None, None, None, None);

        for f in facets {
            if !applicable(&base.variety, f.kind) {
                return Err(FacetError::new(format!(
                    "facet {} is not applicable to the base type {}",
                    f.kind.name(),
                    blabel
                )));
            }
            if f.kind != F::Pattern && f.kind != F::Enumeration {
                if seen.contains(&f.kind) {
                    return Err(FacetError::new(format!(
                        "facet {} is specified more than once",
                        f.kind.name()
                    )));
                }
                seen.push(f.kind);
            }
            let bound_value = |f: &RawFacet| -> Result<Value, FacetError> {
                base.validate_impl(&f.value, ns, true)
                    .map(|(v, _)| v)
                    .map_err(|e| {
                        FacetError::new(format!(
                            "the value '{}' of facet {} is not valid for the base type {}: {}",
                            f.value,
                            f.kind.name(),
                            blabel,
                            e.message
                        ))
                    })
            };
            match f.kind {
                F::Length => s_len = Some(nonneg(f)?),
                F::MinLength => s_min = Some(nonneg(f)?),
                F::MaxLength => s_max = Some(nonneg(f)?),
                F::TotalDigits => {
                    let v = nonneg(f)?;
                    if v == 0 {
                        return Err(FacetError::new(format!(
                            "totalDigits must be a positiveInteger, got '{}'",
                            f.value
                        )));
                    }
                    if let Some(b) = bf.total_digits {
                        if v > b {
                            return Err(FacetError::new(format!(
                                "totalDigits {v} is greater than the base type's totalDigits {b}"
                            )));
                        }
                        if bf.fixed.contains(&F::TotalDigits) && v != b {
                            return Err(FacetError::new(format!(
                                "totalDigits is fixed to {b} in the base type, cannot be {v}"
                            )));
                        }
                    }
                    nf.total_digits = Some(v);
                }
                F::FractionDigits => {
                    let v = nonneg(f)?;
                    if let Some(b) = bf.fraction_digits {
                        if bf.fixed.contains(&F::FractionDigits) && v != b {
                            return Err(FacetError::new(format!(
                                "fractionDigits is fixed to {b} in the base type, cannot be {v}"
                            )));
                        }
                        if v > b {
                            return Err(FacetError::new(format!(
                                "fractionDigits {v} is greater than the base type's fractionDigits {b}"
                            )));
                        }
                    }
                    nf.fraction_digits = Some(v);
                }
                F::WhiteSpace => {
                    let v = match f.value.trim_matches([' ', '\t', '\n', '\r']) {
                        "preserve" => WhiteSpace::Preserve,
                        "replace" => WhiteSpace::Replace,
                        "collapse" => WhiteSpace::Collapse,
                        other => {
                            return Err(FacetError::new(format!(
                                "'{other}' is not a valid whiteSpace value"
                            )));
                        }
                    };
                    let b = base.white_space().unwrap_or(WhiteSpace::Preserve);
                    if v < b {
                        return Err(FacetError::new(format!(
                            "whiteSpace {} would relax the base type's whiteSpace {}",
                            v.name(),
                            b.name()
                        )));
                    }
                    if bf.fixed.contains(&F::WhiteSpace) && v != b {
                        return Err(FacetError::new(format!(
                            "whiteSpace is fixed to {} in the base type, cannot be {}",
                            b.name(),
                            v.name()
                        )));
                    }
                    nf.white_space = Some(v);
                }
                F::Pattern => {
                    let r = XsdRegex::compile(&f.value).map_err(|e| {
                        FacetError::new(format!("invalid pattern facet '{}': {}", f.value, e))
                    })?;
                    new_patterns.push(r);
                }
                F::Enumeration => {
                    let v = base.validate(&f.value, ns).map_err(|e| {
                        FacetError::new(format!(
                            "enumeration value '{}' is not valid for the base type {}: {}",
                            f.value, blabel, e.message
                        ))
                    })?;
                    let e = new_enum.get_or_insert_with(|| (Vec::new(), Vec::new()));
                    e.0.push(v);
                    e.1.push(f.value.clone());
                }
                F::MaxInclusive => s_maxi = Some(bound_value(f)?),
                F::MaxExclusive => s_maxe = Some(bound_value(f)?),
                F::MinInclusive => s_mini = Some(bound_value(f)?),
                F::MinExclusive => s_mine = Some(bound_value(f)?),
            }
        }

        // fixed facets (value facets compared by value)
        let fixed_check =
            |kind: F, new: &Option<Value>, old: &Option<Value>| -> Result<(), FacetError> {
                if let (Some(n), Some(o)) = (new, old)
                    && bf.fixed.contains(&kind)
                    && n != o
                {
                    return Err(FacetError::new(format!(
                        "{} is fixed to {} in the base type, cannot be {}",
                        kind.name(),
                        o,
                        n
                    )));
                }
                Ok(())
            };
        fixed_check(F::MaxInclusive, &s_maxi, &bf.max_inclusive)?;
        fixed_check(F::MaxExclusive, &s_maxe, &bf.max_exclusive)?;
        fixed_check(F::MinInclusive, &s_mini, &bf.min_inclusive)?;
        fixed_check(F::MinExclusive, &s_mine, &bf.min_exclusive)?;
        for (kind, new, old) in [
            (F::Length, s_len, bf.length),
            (F::MinLength, s_min, bf.min_length),
            (F::MaxLength, s_max, bf.max_length),
        ] {
            if let (Some(n), Some(o)) = (new, old)
                && bf.fixed.contains(&kind)
                && n != o
            {
                return Err(FacetError::new(format!(
                    "{} is fixed to {} in the base type, cannot be {}",
                    kind.name(),
                    o,
                    n
                )));
            }
        }

        // length facets
        if s_len.is_some() && (s_min.is_some() || s_max.is_some()) {
            return Err(FacetError::new(
                "length cannot be specified together with minLength or maxLength in the same derivation step",
            ));
        }
        if let Some(l) = s_len {
            if let Some(b) = bf.length
                && l != b
            {
                return Err(FacetError::new(format!(
                    "length {l} differs from the base type's length {b}"
                )));
            }
            nf.length = Some(l);
        }
        if let Some(m) = s_min {
            if let Some(b) = bf.min_length
                && m < b
            {
                return Err(FacetError::new(format!(
                    "minLength {m} is less than the base type's minLength {b}"
                )));
            }
            nf.min_length = Some(m);
        }
        if let Some(m) = s_max {
            if let Some(b) = bf.max_length
                && m > b
            {
                return Err(FacetError::new(format!(
                    "maxLength {m} is greater than the base type's maxLength {b}"
                )));
            }
            nf.max_length = Some(m);
        }
        if let (Some(mi), Some(ma)) = (nf.min_length, nf.max_length)
            && mi > ma
        {
            return Err(FacetError::new(format!(
                "minLength {mi} is greater than maxLength {ma}"
            )));
        }
        if let Some(l) = nf.length {
            if let Some(mi) = nf.min_length
                && mi > l
            {
                return Err(FacetError::new(format!(
                    "minLength {mi} is greater than length {l}"
                )));
            }
            if let Some(ma) = nf.max_length
                && ma < l
            {
                return Err(FacetError::new(format!(
                    "maxLength {ma} is less than length {l}"
                )));
            }
        }

        // digits
        if let (Some(fd), Some(td)) = (nf.fraction_digits, nf.total_digits)
            && fd > td
        {
            return Err(FacetError::new(format!(
                "fractionDigits {fd} is greater than totalDigits {td}"
            )));
        }

        // bounds
        if s_maxi.is_some() && s_maxe.is_some() {
            return Err(FacetError::new(
                "maxInclusive and maxExclusive cannot both be specified in the same derivation step",
            ));
        }
        if s_mini.is_some() && s_mine.is_some() {
            return Err(FacetError::new(
                "minInclusive and minExclusive cannot both be specified in the same derivation step",
            ));
        }
        let err = |a: &str, av: &Value, rel: &str, b: &str, bv: &Value| {
            Err(FacetError::new(format!(
                "{a} {av} must not be {rel} the base type's {b} {bv}"
            )))
        };
        if let Some(x) = &s_maxi {
            if let Some(b) = &bf.max_inclusive
                && gt(x, b)
            {
                return err("maxInclusive", x, "greater than", "maxInclusive", b);
            }
            if let Some(b) = &bf.max_exclusive
                && ge(x, b)
            {
                return err(
                    "maxInclusive",
                    x,
                    "greater than or equal to",
                    "maxExclusive",
                    b,
                );
            }
            if let Some(b) = &bf.min_inclusive
                && gt(b, x)
            {
                return err("maxInclusive", x, "less than", "minInclusive", b);
            }
            if let Some(b) = &bf.min_exclusive
                && ge(b, x)
            {
                return err(
                    "maxInclusive",
                    x,
                    "less than or equal to",
                    "minExclusive",
                    b,
                );
            }
            nf.max_inclusive = Some(x.clone());
            nf.max_exclusive = None;
        }
        if let Some(x) = &s_maxe {
            if let Some(b) = &bf.max_exclusive
                && gt(x, b)
            {
                return err("maxExclusive", x, "greater than", "maxExclusive", b);
            }
            if let Some(b) = &bf.max_inclusive
                && gt(x, b)
            {
                return err("maxExclusive", x, "greater than", "maxInclusive", b);
            }
            if let Some(b) = &bf.min_inclusive
                && ge(b, x)
            {
                return err(
                    "maxExclusive",
                    x,
                    "less than or equal to",
                    "minInclusive",
                    b,
                );
            }
            if let Some(b) = &bf.min_exclusive
                && ge(b, x)
            {
                return err(
                    "maxExclusive",
                    x,
                    "less than or equal to",
                    "minExclusive",
                    b,
                );
            }
            nf.max_exclusive = Some(x.clone());
            nf.max_inclusive = None;
        }
        if let Some(x) = &s_mini {
            if let Some(b) = &bf.min_inclusive
                && gt(b, x)
            {
                return err("minInclusive", x, "less than", "minInclusive", b);
            }
            if let Some(b) = &bf.min_exclusive
                && ge(b, x)
            {
                return err(
                    "minInclusive",
                    x,
                    "less than or equal to",
                    "minExclusive",
                    b,
                );
            }
            if let Some(b) = &bf.max_inclusive
                && gt(x, b)
            {
                return err("minInclusive", x, "greater than", "maxInclusive", b);
            }
            if let Some(b) = &bf.max_exclusive
                && ge(x, b)
            {
                return err(
                    "minInclusive",
                    x,
                    "greater than or equal to",
                    "maxExclusive",
                    b,
                );
            }
            nf.min_inclusive = Some(x.clone());
            nf.min_exclusive = None;
        }
        if let Some(x) = &s_mine {
            if let Some(b) = &bf.min_exclusive
                && gt(b, x)
            {
                return err("minExclusive", x, "less than", "minExclusive", b);
            }
            if let Some(b) = &bf.min_inclusive
                && gt(b, x)
            {
                return err("minExclusive", x, "less than", "minInclusive", b);
            }
            if let Some(b) = &bf.max_inclusive
                && ge(x, b)
            {
                return err(
                    "minExclusive",
                    x,
                    "greater than or equal to",
                    "maxInclusive",
                    b,
                );
            }
            if let Some(b) = &bf.max_exclusive
                && ge(x, b)
            {
                return err(
                    "minExclusive",
                    x,
                    "greater than or equal to",
                    "maxExclusive",
                    b,
                );
            }
            nf.min_exclusive = Some(x.clone());
            nf.min_inclusive = None;
        }
        let cons = |a: &Option<Value>,
                    an: &str,
                    b: &Option<Value>,
                    bn: &str,
                    strict: bool|
         -> Result<(), FacetError> {
            if let (Some(x), Some(y)) = (a, b) {
                let bad = if strict { ge(x, y) } else { gt(x, y) };
                if bad {
                    return Err(FacetError::new(format!(
                        "{an} {x} must be {} {bn} {y}",
                        if strict {
                            "less than"
                        } else {
                            "less than or equal to"
                        }
                    )));
                }
            }
            Ok(())
        };
        cons(
            &nf.min_inclusive,
            "minInclusive",
            &nf.max_inclusive,
            "maxInclusive",
            false,
        )?;
        cons(
            &nf.min_inclusive,
            "minInclusive",
            &nf.max_exclusive,
            "maxExclusive",
            true,
        )?;
        cons(
            &nf.min_exclusive,
            "minExclusive",
            &nf.max_inclusive,
            "maxInclusive",
            true,
        )?;
        cons(
            &nf.min_exclusive,
            "minExclusive",
            &nf.max_exclusive,
            "maxExclusive",
            false,
        )?;

        if !new_patterns.is_empty() {
            nf.patterns.push(new_patterns);
        }
        if let Some((vals, lex)) = new_enum {
            nf.enumeration = Some(vals);
            nf.enumeration_lexical = lex;
        }
        for f in facets {
            if f.fixed && f.kind != F::Pattern && f.kind != F::Enumeration {
                nf.fixed.insert(f.kind);
            }
        }
        Ok(SimpleType {
            name,
            variety: base.variety.clone(),
            base: Some(base.clone()),
            facets: nf,
            builtin: None,
        })
    }
}
