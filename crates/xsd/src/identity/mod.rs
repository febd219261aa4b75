//! Identity constraints (`xs:unique`, `xs:key`, `xs:keyref`) of XML Schema 1.0,
//! evaluated in one streaming pass over the document.
//!
//! * [`IdcDef::compile`] compiles the restricted XPath of XSD 1.0 §3.11.6.
//! * [`IdcTracker`] receives start/end element events from the validator and
//!   reports violations of §3.11.4 (Identity-constraint Satisfied), using the
//!   node tables of §3.11.5 (including upward propagation and conflict removal).

mod tracker;
mod xpath;

use std::fmt;

pub use self::tracker::IdcTracker;
pub use self::xpath::{Field, NameTest, PathExpr, Selector};

/// (namespace URI, local name); `None` means "no namespace".
pub type Name = (Option<String>, String);

/// The category of an identity constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdcKind {
    Unique,
    Key,
    /// `refer` is the name of the referenced key or unique constraint.
    KeyRef {
        refer: Name,
    },
}

impl IdcKind {
    pub(crate) fn word(&self) -> &'static str {
        match self {
            IdcKind::Unique => "unique",
            IdcKind::Key => "key",
            IdcKind::KeyRef { .. } => "keyref",
        }
    }
}

/// A compiled identity-constraint definition.
#[derive(Debug, Clone)]
pub struct IdcDef {
    pub name: Name,
    pub kind: IdcKind,
    pub selector: Selector,
    pub fields: Vec<Field>,
}

impl IdcDef {
    /// Compile the selector and field expressions (XPath subset of XSD 1.0
    /// §3.11.6). Unprefixed name tests mean "no namespace"; prefixes are
    /// resolved with `resolve` (`None` = unbound prefix, an error). The `xml`
    /// prefix is always bound.
    pub fn compile(
        name: Name,
        kind: IdcKind,
        selector: &str,
        fields: &[&str],
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<IdcDef, IdcError> {
        let label = name.1.clone();
        let selector = Selector::compile(selector, &label, resolve)?;
        if fields.is_empty() {
            return Err(IdcError::new(
                "idc_xpath",
                format!("identity constraint '{label}' has no field (at least one is required)"),
                0,
                0,
            ));
        }
        let mut compiled = Vec::with_capacity(fields.len());
        for f in fields {
            compiled.push(Field::compile(f, &label, resolve)?);
        }
        Ok(IdcDef {
            name,
            kind,
            selector,
            fields: compiled,
        })
    }
}

/// A violation of an identity constraint, a compile error or a resource limit.
///
/// Codes: `idc_duplicate`, `idc_key_missing`, `idc_field_multiple`,
/// `idc_field_not_simple`, `idc_keyref_unmatched`, `idc_limit_exceeded`,
/// `idc_xpath`, `idc_refer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct IdcError {
    pub code: &'static str,
    pub message: String,
    pub line: u64,
    pub column: u64,
}

impl IdcError {
    pub(crate) fn new(code: &'static str, message: String, line: u64, column: u64) -> Self {
        IdcError {
            code,
            message,
            line,
            column,
        }
    }
}

/// Formats a key-sequence as `(v1, v2, ...)` using the values' `Display`.
pub(crate) struct KeySeqDisplay<'a, V>(pub &'a [V]);

impl<V: fmt::Display> fmt::Display for KeySeqDisplay<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests;
