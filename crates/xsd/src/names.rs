//! Expanded names and the namespaces the engine knows by heart.

use std::fmt;

/// The XML Schema namespace.
pub const XS: &str = "http://www.w3.org/2001/XMLSchema";
/// The XML Schema instance namespace (`xsi:type`, `xsi:nil`...).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The namespace bound to the `xml` prefix.
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// A `{namespace}local` name. Schema compilation is not hot, so owned strings keep it simple.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    /// Namespace URI; `None` for names in no namespace.
    pub ns: Option<String>,
    /// Local part.
    pub local: String,
}

impl QName {
    /// A name in namespace `ns` (or none).
    pub fn new(ns: Option<&str>, local: &str) -> Self {
        QName {
            ns: ns.map(str::to_owned),
            local: local.to_owned(),
        }
    }

    /// A name in the XML Schema namespace.
    pub fn xs(local: &str) -> Self {
        QName::new(Some(XS), local)
    }

    /// True when this is `{ns}local`.
    pub fn is(&self, ns: Option<&str>, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == ns
    }
}

impl fmt::Display for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ns {
            Some(ns) => write!(f, "{{{ns}}}{}", self.local),
            None => f.write_str(&self.local),
        }
    }
}

impl fmt::Debug for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
