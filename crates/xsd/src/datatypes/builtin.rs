//! Built-in datatypes: names, primitives and the singleton type definitions.
use super::decimal::Decimal;
use super::facets::{FacetKind, WhiteSpace};
use super::simple_type::{SimpleType, Variety};
use super::value::Value;
use std::sync::{Arc, OnceLock};

macro_rules! builtins {
    ($($v:ident = $n:literal),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum BuiltinType { $($v),* }
        impl BuiltinType {
            pub const ALL: &'static [BuiltinType] = &[$(BuiltinType::$v),*];
            pub fn from_local_name(s: &str) -> Option<Self> {
                match s { $($n => Some(BuiltinType::$v),)* _ => None }
            }
            pub fn local_name(self) -> &'static str {
                match self { $(BuiltinType::$v => $n),* }
            }
        }
    };
}

builtins! {
    AnySimpleType = "anySimpleType", String = "string", NormalizedString = "normalizedString",
    Token = "token", Language = "language", Name = "Name", NCName = "NCName", Id = "ID",
    IdRef = "IDREF", IdRefs = "IDREFS", Entity = "ENTITY", Entities = "ENTITIES",
    NmToken = "NMTOKEN", NmTokens = "NMTOKENS", QName = "QName", Notation = "NOTATION",
    AnyUri = "anyURI", Boolean = "boolean", Decimal = "decimal", Integer = "integer",
    NonPositiveInteger = "nonPositiveInteger", NegativeInteger = "negativeInteger",
    Long = "long", Int = "int", Short = "short", Byte = "byte",
    NonNegativeInteger = "nonNegativeInteger", UnsignedLong = "unsignedLong",
    UnsignedInt = "unsignedInt", UnsignedShort = "unsignedShort", UnsignedByte = "unsignedByte",
    PositiveInteger = "positiveInteger", Float = "float", Double = "double",
    Duration = "duration", DateTime = "dateTime", Time = "time", Date = "date",
    GYearMonth = "gYearMonth", GYear = "gYear", GMonthDay = "gMonthDay", GDay = "gDay",
    GMonth = "gMonth", HexBinary = "hexBinary", Base64Binary = "base64Binary",
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Primitive {
    String,
    Boolean,
    Decimal,
    Float,
    Double,
    Duration,
    DateTime,
    Time,
    Date,
    GYearMonth,
    GYear,
    GMonthDay,
    GDay,
    GMonth,
    HexBinary,
    Base64Binary,
    AnyUri,
    QName,
    Notation,
}

impl Primitive {
    pub fn builtin(self) -> BuiltinType {
        match self {
            Primitive::String => BuiltinType::String,
            Primitive::Boolean => BuiltinType::Boolean,
            Primitive::Decimal => BuiltinType::Decimal,
            Primitive::Float => BuiltinType::Float,
            Primitive::Double => BuiltinType::Double,
            Primitive::Duration => BuiltinType::Duration,
            Primitive::DateTime => BuiltinType::DateTime,
            Primitive::Time => BuiltinType::Time,
            Primitive::Date => BuiltinType::Date,
            Primitive::GYearMonth => BuiltinType::GYearMonth,
            Primitive::GYear => BuiltinType::GYear,
            Primitive::GMonthDay => BuiltinType::GMonthDay,
            Primitive::GDay => BuiltinType::GDay,
            Primitive::GMonth => BuiltinType::GMonth,
            Primitive::HexBinary => BuiltinType::HexBinary,
            Primitive::Base64Binary => BuiltinType::Base64Binary,
            Primitive::AnyUri => BuiltinType::AnyUri,
            Primitive::QName => BuiltinType::QName,
            Primitive::Notation => BuiltinType::Notation,
        }
    }
}

impl BuiltinType {
    /// The base type in the built-in hierarchy (None for anySimpleType).
    pub fn base(self) -> Option<BuiltinType> {
        use BuiltinType as B;
        Some(match self {
            B::AnySimpleType => return None,
            B::NormalizedString => B::String,
            B::Token => B::NormalizedString,
            B::Language | B::Name | B::NmToken => B::Token,
            B::NCName => B::Name,
            B::Id | B::IdRef | B::Entity => B::NCName,
            B::Integer => B::Decimal,
            B::NonPositiveInteger | B::Long | B::NonNegativeInteger => B::Integer,
            B::NegativeInteger => B::NonPositiveInteger,
            B::Int => B::Long,
            B::Short => B::Int,
            B::Byte => B::Short,
            B::UnsignedLong | B::PositiveInteger => B::NonNegativeInteger,
            B::UnsignedInt => B::UnsignedLong,
            B::UnsignedShort => B::UnsignedInt,
            B::UnsignedByte => B::UnsignedShort,
            _ => B::AnySimpleType,
        })
    }

    /// True if `self` is `other` or derived from it in the built-in hierarchy.
    pub fn derives_from(self, other: BuiltinType) -> bool {
        let mut t = Some(self);
        while let Some(x) = t {
            if x == other {
                return true;
            }
            t = x.base();
        }
        false
    }

    /// Item type of the built-in list types.
    pub fn list_item(self) -> Option<BuiltinType> {
        match self {
            BuiltinType::IdRefs => Some(BuiltinType::IdRef),
            BuiltinType::Entities => Some(BuiltinType::Entity),
            BuiltinType::NmTokens => Some(BuiltinType::NmToken),
            _ => None,
        }
    }

    pub fn primitive(self) -> Option<Primitive> {
        use BuiltinType as B;
        if self.list_item().is_some() || self == B::AnySimpleType {
            return None;
        }
        if self.derives_from(B::String) {
            return Some(Primitive::String);
        }
        if self.derives_from(B::Decimal) {
            return Some(Primitive::Decimal);
        }
        Some(match self {
            B::QName => Primitive::QName,
            B::Notation => Primitive::Notation,
            B::AnyUri => Primitive::AnyUri,
            B::Boolean => Primitive::Boolean,
            B::Float => Primitive::Float,
            B::Double => Primitive::Double,
            B::Duration => Primitive::Duration,
            B::DateTime => Primitive::DateTime,
            B::Time => Primitive::Time,
            B::Date => Primitive::Date,
            B::GYearMonth => Primitive::GYearMonth,
            B::GYear => Primitive::GYear,
            B::GMonthDay => Primitive::GMonthDay,
            B::GDay => Primitive::GDay,
            B::GMonth => Primitive::GMonth,
            B::HexBinary => Primitive::HexBinary,
            B::Base64Binary => Primitive::Base64Binary,
            _ => return None,
        })
    }
}

const N: usize = 45;
const _: () = assert!(BuiltinType::ALL.len() == N);
#[allow(clippy::declare_interior_mutable_const)]
const CELL: OnceLock<Arc<SimpleType>> = OnceLock::new();
static CELLS: [OnceLock<Arc<SimpleType>>; N] = [CELL; N];

fn dec(v: i128) -> Value {
    Value::Decimal(Decimal::from_i128(v))
}

fn make(t: BuiltinType) -> SimpleType {
    use BuiltinType as B;
    let base = t.base().map(|b| builtin(b).clone());
    let mut facets = base.as_ref().map(|b| b.facets.clone()).unwrap_or_default();
    let variety = if let Some(item) = t.list_item() {
        facets.min_length = Some(1);
        facets.white_space = Some(WhiteSpace::Collapse);
        facets.fixed.insert(FacetKind::WhiteSpace);
        Variety::List(builtin(item).clone())
    } else if let Some(p) = t.primitive() {
        Variety::Atomic(p)
    } else {
        Variety::AnySimple
    };
    match t {
        B::AnySimpleType => {}
        B::String => facets.white_space = Some(WhiteSpace::Preserve),
        B::NormalizedString => facets.white_space = Some(WhiteSpace::Replace),
        B::Token => facets.white_space = Some(WhiteSpace::Collapse),
        B::Integer => {
            facets.fraction_digits = Some(0);
            facets.fixed.insert(FacetKind::FractionDigits);
        }
        B::NonPositiveInteger => facets.max_inclusive = Some(dec(0)),
        B::NegativeInteger => facets.max_inclusive = Some(dec(-1)),
        B::Long => {
            facets.min_inclusive = Some(dec(i64::MIN as i128));
            facets.max_inclusive = Some(dec(i64::MAX as i128));
        }
        B::Int => {
            facets.min_inclusive = Some(dec(i32::MIN as i128));
            facets.max_inclusive = Some(dec(i32::MAX as i128));
        }
        B::Short => {
            facets.min_inclusive = Some(dec(i16::MIN as i128));
            facets.max_inclusive = Some(dec(i16::MAX as i128));
        }
        B::Byte => {
            facets.min_inclusive = Some(dec(i8::MIN as i128));
            facets.max_inclusive = Some(dec(i8::MAX as i128));
        }
        B::NonNegativeInteger => facets.min_inclusive = Some(dec(0)),
        B::PositiveInteger => facets.min_inclusive = Some(dec(1)),
        B::UnsignedLong => facets.max_inclusive = Some(dec(u64::MAX as i128)),
        B::UnsignedInt => facets.max_inclusive = Some(dec(u32::MAX as i128)),
        B::UnsignedShort => facets.max_inclusive = Some(dec(u16::MAX as i128)),
        B::UnsignedByte => facets.max_inclusive = Some(dec(u8::MAX as i128)),
        _ => {
            if t.base() == Some(B::AnySimpleType)
                && t.primitive().is_some_and(|p| p != Primitive::String)
            {
                facets.white_space = Some(WhiteSpace::Collapse);
                facets.fixed.insert(FacetKind::WhiteSpace);
            }
        }
    }
    SimpleType {
        name: Some(t.local_name().to_string()),
        variety,
        base,
        facets,
        builtin: Some(t),
    }
}

/// The singleton definition of a built-in type.
pub fn builtin(t: BuiltinType) -> &'static Arc<SimpleType> {
    // fieldless enum: discriminants are 0..N (checked at compile time above)
    let cell = CELLS.get(t as usize).unwrap_or(&CELLS[0]);
    cell.get_or_init(|| Arc::new(make(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn chain() {
        assert_eq!(BuiltinType::ALL.len(), N);
        let b = builtin(BuiltinType::Byte);
        let names: Vec<_> = std::iter::successors(Some(b.clone()), |t| t.base.clone())
            .map(|t| t.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "byte",
                "short",
                "int",
                "long",
                "integer",
                "decimal",
                "anySimpleType"
            ]
        );
        assert!(Arc::ptr_eq(
            builtin(BuiltinType::Int),
            builtin(BuiltinType::Int)
        ));
        for &t in BuiltinType::ALL {
            assert_eq!(BuiltinType::from_local_name(t.local_name()), Some(t));
        }
    }
}
