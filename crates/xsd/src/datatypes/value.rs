//! The XSD value spaces with XSD 1.0 equality and partial order.
use super::binary::{encode_base64, encode_hex};
use super::datetime::DateTimeValue;
use super::decimal::Decimal;
use super::duration::DurationValue;
use super::float::{cmp_f32, cmp_f64, key_f32, key_f64};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

#[derive(Clone, Debug)]
pub enum Value {
    /// string and all types derived from it (normalizedString, token, Name, ID, ...)
    String(String),
    AnyUri(String),
    Boolean(bool),
    /// decimal and all integer types (shared value space)
    Decimal(Decimal),
    Float(f32),
    Double(f64),
    Duration(DurationValue),
    /// dateTime, time, date, gYearMonth, gYear, gMonthDay, gDay, gMonth (kind inside)
    DateTime(DateTimeValue),
    HexBinary(Vec<u8>),
    Base64Binary(Vec<u8>),
    QName {
        ns: Option<String>,
        local: String,
    },
    Notation {
        ns: Option<String>,
        local: String,
    },
    List(Vec<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (String(a), String(b)) | (AnyUri(a), AnyUri(b)) => a == b,
            (Boolean(a), Boolean(b)) => a == b,
            (Decimal(a), Decimal(b)) => a == b,
            (Float(a), Float(b)) => key_f32(*a) == key_f32(*b),
            (Double(a), Double(b)) => key_f64(*a) == key_f64(*b),
            (Duration(a), Duration(b)) => a == b,
            (DateTime(a), DateTime(b)) => a == b,
            (HexBinary(a), HexBinary(b)) | (Base64Binary(a), Base64Binary(b)) => a == b,
            (QName { ns: n1, local: l1 }, QName { ns: n2, local: l2 })
            | (Notation { ns: n1, local: l1 }, Notation { ns: n2, local: l2 }) => {
                n1 == n2 && l1 == l2
            }
            (List(a), List(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::String(s) | Value::AnyUri(s) => s.hash(state),
            Value::Boolean(b) => b.hash(state),
            Value::Decimal(d) => d.hash(state),
            Value::Float(f) => key_f32(*f).hash(state),
            Value::Double(f) => key_f64(*f).hash(state),
            Value::Duration(d) => d.hash(state),
            Value::DateTime(d) => d.hash(state),
            Value::HexBinary(b) | Value::Base64Binary(b) => b.hash(state),
            Value::QName { ns, local } | Value::Notation { ns, local } => {
                ns.hash(state);
                local.hash(state);
            }
            Value::List(v) => v.hash(state),
        }
    }
}

impl Value {
    /// XSD partial order. None when incomparable (different value spaces, unordered
    /// types, or indeterminate date/time/duration comparisons).
    pub fn partial_cmp_xsd(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Decimal(a), Decimal(b)) => Some(a.cmp(b)),
            (Float(a), Float(b)) => Some(cmp_f32(*a, *b)),
            (Double(a), Double(b)) => Some(cmp_f64(*a, *b)),
            (Duration(a), Duration(b)) => a.partial_cmp_xsd(b),
            (DateTime(a), DateTime(b)) => a.partial_cmp_xsd(b),
            _ => {
                if self == other {
                    Some(Ordering::Equal)
                } else {
                    None
                }
            }
        }
    }

    /// Length as used by length facets (characters, octets, items); None for types
    /// where length facets do not apply or are always satisfied (QName, NOTATION).
    pub fn facet_length(&self) -> Option<u64> {
        match self {
            Value::String(s) | Value::AnyUri(s) => Some(s.chars().count() as u64),
            Value::HexBinary(b) | Value::Base64Binary(b) => Some(b.len() as u64),
            Value::List(v) => Some(v.len() as u64),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) | Value::AnyUri(s) => f.write_str(s),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Float(x) => fmt_float(f, *x as f64, x.is_infinite(), x.is_nan()),
            Value::Double(x) => fmt_float(f, *x, x.is_infinite(), x.is_nan()),
            Value::Duration(d) => write!(f, "{d}"),
            Value::DateTime(d) => write!(f, "{d}"),
            Value::HexBinary(b) => f.write_str(&encode_hex(b)),
            Value::Base64Binary(b) => f.write_str(&encode_base64(b)),
            Value::QName { ns, local } | Value::Notation { ns, local } => match ns {
                Some(n) => write!(f, "{{{n}}}{local}"),
                None => f.write_str(local),
            },
            Value::List(v) => {
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{x}")?;
                }
                Ok(())
            }
        }
    }
}

fn fmt_float(f: &mut fmt::Formatter<'_>, x: f64, inf: bool, nan: bool) -> fmt::Result {
    if nan {
        f.write_str("NaN")
    } else if inf {
        f.write_str(if x < 0.0 { "-INF" } else { "INF" })
    } else {
        write!(f, "{x:E}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn eq_hash() {
        let a = Value::Decimal(super::super::decimal::Decimal::parse("1.0").unwrap_or_default());
        let b = Value::Decimal(super::super::decimal::Decimal::parse("1").unwrap_or_default());
        assert_eq!(a, b);
        let mut h = HashSet::new();
        h.insert(a);
        assert!(h.contains(&b));
        assert_eq!(Value::Double(f64::NAN), Value::Double(f64::NAN));
        assert_ne!(Value::Double(0.0), Value::Double(-0.0));
        assert_ne!(Value::Float(1.0), Value::Double(1.0));
        assert_ne!(Value::String("a".into()), Value::AnyUri("a".into()));
    }
}
