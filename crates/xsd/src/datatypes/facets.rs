//! Facet representation and instance-side facet checking.
use super::DatatypeError;
use super::value::Value;
use crate::xsdregex::XsdRegex;
use std::cmp::Ordering;
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FacetKind {
    Length,
    MinLength,
    MaxLength,
    Pattern,
    Enumeration,
    WhiteSpace,
    MaxInclusive,
    MaxExclusive,
    MinInclusive,
    MinExclusive,
    TotalDigits,
    FractionDigits,
}

impl FacetKind {
    pub fn name(self) -> &'static str {
        match self {
            FacetKind::Length => "length",
            FacetKind::MinLength => "minLength",
            FacetKind::MaxLength => "maxLength",
            FacetKind::Pattern => "pattern",
            FacetKind::Enumeration => "enumeration",
            FacetKind::WhiteSpace => "whiteSpace",
            FacetKind::MaxInclusive => "maxInclusive",
            FacetKind::MaxExclusive => "maxExclusive",
            FacetKind::MinInclusive => "minInclusive",
            FacetKind::MinExclusive => "minExclusive",
            FacetKind::TotalDigits => "totalDigits",
            FacetKind::FractionDigits => "fractionDigits",
        }
    }
    pub fn from_local_name(s: &str) -> Option<FacetKind> {
        Some(match s {
            "length" => FacetKind::Length,
            "minLength" => FacetKind::MinLength,
            "maxLength" => FacetKind::MaxLength,
            "pattern" => FacetKind::Pattern,
            "enumeration" => FacetKind::Enumeration,
            "whiteSpace" => FacetKind::WhiteSpace,
            "maxInclusive" => FacetKind::MaxInclusive,
            "maxExclusive" => FacetKind::MaxExclusive,
            "minInclusive" => FacetKind::MinInclusive,
            "minExclusive" => FacetKind::MinExclusive,
            "totalDigits" => FacetKind::TotalDigits,
            "fractionDigits" => FacetKind::FractionDigits,
            _ => return None,
        })
    }
}

/// A facet as written in the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFacet {
    pub kind: FacetKind,
    pub value: String,
    pub fixed: bool,
}

impl RawFacet {
    pub fn new(kind: FacetKind, value: impl Into<String>) -> Self {
        RawFacet {
            kind,
            value: value.into(),
            fixed: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WhiteSpace {
    Preserve,
    Replace,
    Collapse,
}

impl WhiteSpace {
    pub fn name(self) -> &'static str {
        match self {
            WhiteSpace::Preserve => "preserve",
            WhiteSpace::Replace => "replace",
            WhiteSpace::Collapse => "collapse",
        }
    }
}

/// Effective facets of a simple type after all derivation steps.
#[derive(Clone, Debug, Default)]
pub struct Facets {
    pub length: Option<u64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    /// Steps are AND-ed; the regexes within one step are OR-ed.
    pub patterns: Vec<Vec<XsdRegex>>,
    pub enumeration: Option<Vec<Value>>,
    /// Lexical forms of the enumeration (for messages), parallel to `enumeration`.
    pub enumeration_lexical: Vec<String>,
    pub white_space: Option<WhiteSpace>,
    pub max_inclusive: Option<Value>,
    pub max_exclusive: Option<Value>,
    pub min_inclusive: Option<Value>,
    pub min_exclusive: Option<Value>,
    pub total_digits: Option<u64>,
    pub fraction_digits: Option<u64>,
    pub fixed: HashSet<FacetKind>,
}

/// Shortens long literals for error messages (bounded output on hostile input).
pub(crate) fn shorten(s: &str) -> String {
    if s.chars().count() > 100 {
        let mut t: String = s.chars().take(100).collect();
        t.push_str("...");
        t
    } else {
        s.to_string()
    }
}

fn quote_list(v: &[String]) -> String {
    let mut s = String::from("{");
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if i >= 20 {
            s.push_str("...");
            break;
        }
        s.push_str(&shorten(x));
    }
    s.push('}');
    s
}

impl Facets {
    /// Checks the pattern facets against the normalised lexical form.
    pub fn check_patterns(&self, normalized: &str) -> Result<(), DatatypeError> {
        for step in &self.patterns {
            if !step.is_empty() && !step.iter().any(|r| r.is_match(normalized)) {
                let pats: Vec<&str> = step.iter().map(|r| r.as_str()).collect();
                return Err(DatatypeError::new(
                    "cvc-pattern-valid",
                    format!(
                        "{} does not match pattern {}",
                        super::quote_value(normalized),
                        shorten(&pats.join(" | "))
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn check_enumeration(&self, value: &Value, normalized: &str) -> Result<(), DatatypeError> {
        if let Some(en) = &self.enumeration
            && !en.iter().any(|e| e == value)
        {
            return Err(DatatypeError::new(
                "cvc-enumeration-valid",
                format!(
                    "{} is not one of the allowed values {}",
                    super::quote_value(normalized),
                    quote_list(&self.enumeration_lexical)
                ),
            ));
        }
        Ok(())
    }

    /// Checks value-based facets (lengths, bounds, digits); `skip_bounds` omits the four bounds.
    pub fn check_value(&self, value: &Value, skip_bounds: bool) -> Result<(), DatatypeError> {
        if let Some(len) = value.facet_length() {
            if let Some(l) = self.length
                && len != l
            {
                return Err(DatatypeError::new(
                    "cvc-length-valid",
                    format!("length {len} is not equal to the required length {l}"),
                ));
            }
            if let Some(l) = self.min_length
                && len < l
            {
                return Err(DatatypeError::new(
                    "cvc-minLength-valid",
                    format!("length {len} is less than minLength {l}"),
                ));
            }
            if let Some(l) = self.max_length
                && len > l
            {
                return Err(DatatypeError::new(
                    "cvc-maxLength-valid",
                    format!("length {len} is greater than maxLength {l}"),
                ));
            }
        }
        if !skip_bounds {
            let ok = |b: &Option<Value>, accept: &[Ordering]| match b {
                None => true,
                Some(b) => value
                    .partial_cmp_xsd(b)
                    .is_some_and(|o| accept.contains(&o)),
            };
            if !ok(&self.max_inclusive, &[Ordering::Less, Ordering::Equal]) {
                return Err(bound_err(
                    "cvc-maxInclusive-valid",
                    value,
                    "greater than maxInclusive",
                    &self.max_inclusive,
                ));
            }
            if !ok(&self.max_exclusive, &[Ordering::Less]) {
                return Err(bound_err(
                    "cvc-maxExclusive-valid",
                    value,
                    "not less than maxExclusive",
                    &self.max_exclusive,
                ));
            }
            if !ok(&self.min_inclusive, &[Ordering::Greater, Ordering::Equal]) {
                return Err(bound_err(
                    "cvc-minInclusive-valid",
                    value,
                    "less than minInclusive",
                    &self.min_inclusive,
                ));
            }
            if !ok(&self.min_exclusive, &[Ordering::Greater]) {
                return Err(bound_err(
                    "cvc-minExclusive-valid",
                    value,
                    "not greater than minExclusive",
                    &self.min_exclusive,
                ));
            }
        }
        if let Value::Decimal(d) = value {
            if let Some(t) = self.total_digits
                && d.total_digits() > t
            {
                return Err(DatatypeError::new(
                    "cvc-totalDigits-valid",
                    format!(
                        "value {} has {} total digits, more than totalDigits {t}",
                        super::clip_value(&d.to_string()),
                        d.total_digits()
                    ),
                ));
            }
            if let Some(fd) = self.fraction_digits
                && d.fraction_digits() > fd
            {
                return Err(DatatypeError::new(
                    "cvc-fractionDigits-valid",
                    format!(
                        "value {} has {} fraction digits, more than fractionDigits {fd}",
                        super::clip_value(&d.to_string()),
                        d.fraction_digits()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn bound_err(code: &'static str, v: &Value, what: &str, b: &Option<Value>) -> DatatypeError {
    let bs = b.as_ref().map(|x| x.to_string()).unwrap_or_default();
    DatatypeError::new(
        code,
        format!(
            "value {} is {what} {}",
            super::clip_value(&v.to_string()),
            shorten(&bs)
        ),
    )
}
