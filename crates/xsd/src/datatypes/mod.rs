//! XSD 1.0 simple types: built-in datatypes, value spaces, facets and validation.

pub mod binary;
pub mod builtin;
pub mod datetime;
pub mod decimal;
pub mod duration;
pub mod facets;
pub mod float;
pub mod names;
pub mod simple_type;
pub mod value;

pub use builtin::{BuiltinType, Primitive, builtin};
pub use datetime::{DateTimeValue, DtKind};
pub use decimal::Decimal;
pub use duration::DurationValue;
pub use facets::{FacetKind, Facets, RawFacet, WhiteSpace};
pub use simple_type::{SimpleType, Variety};
pub use value::Value;

/// Most characters of a document's value quoted in a message.
pub const QUOTE_MAX_CHARS: usize = 64;

/// A value from a document as messages quote it: whole when short (`'abc'`), else its first
/// [`QUOTE_MAX_CHARS`] characters and its size (`'abc…' (1048576 bytes)`), so that a huge
/// value does not make a huge report (nor copy much of a document into logs and quarantine).
pub fn quote_value(v: &str) -> String {
    match v.char_indices().nth(QUOTE_MAX_CHARS) {
        None => format!("'{v}'"),
        Some((end, _)) => format!("'{}…' ({} bytes)", v.get(..end).unwrap_or(""), v.len()),
    }
}

/// Like [`quote_value`] without the quotes, for numbers: `150`, or `1234…(N bytes)`.
pub fn clip_value(v: &str) -> String {
    match v.char_indices().nth(QUOTE_MAX_CHARS) {
        None => v.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", v.get(..end).unwrap_or(""), v.len()),
    }
}

/// Resolves namespace prefixes in scope ("" = default namespace; None = unbound).
pub trait NamespaceContext {
    fn lookup(&self, prefix: &str) -> Option<&str>;
}

/// A context with no bindings at all.
pub struct NoNamespaces;
impl NamespaceContext for NoNamespaces {
    fn lookup(&self, _prefix: &str) -> Option<&str> {
        None
    }
}

impl NamespaceContext for std::collections::HashMap<String, String> {
    fn lookup(&self, prefix: &str) -> Option<&str> {
        self.get(prefix).map(|s| s.as_str())
    }
}

/// ID-related kinds so that the validator can track ID/IDREF(S)/ENTITY(IES).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    Id,
    IdRef,
    IdRefs,
    Entity,
    Entities,
}

/// A value is not valid for a simple type. `code` is the XSD validation rule
/// (e.g. "cvc-datatype-valid.1.2.1", "cvc-pattern-valid").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DatatypeError {
    pub code: &'static str,
    pub message: String,
}

impl DatatypeError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        DatatypeError {
            code,
            message: message.into(),
        }
    }
}

/// A facet or derivation step is not allowed (schema component constraint).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FacetError {
    pub message: String,
}

impl FacetError {
    pub fn new(message: impl Into<String>) -> Self {
        FacetError {
            message: message.into(),
        }
    }
}
