//! A streaming, memory-safe XML Schema 1.0 validator.
//!
//! Schemas are compiled once into an immutable [`Schema`]; documents are validated in one pass
//! with memory bounded by element depth — except for two tables that grow with the document:
//! the IDs seen (for ID/IDREF) and the key-sequences of active identity constraints, both capped
//! by [`Options::max_table_entries`].
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! let schema = xsd::Schema::compile(&[PathBuf::from("schemas/referral.xsd")], Path::new("schemas"))?;
//! let file = std::io::BufReader::new(std::fs::File::open("referral.xml")?);
//! let report = schema.validate(file, &xsd::Options::default());
//! for v in &report.violations {
//!     eprintln!("{v}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - [`xml`]: the safe streaming XML reader (our own in-place tokeniser): well-formedness, namespaces,
//!   no DTDs, limits on depth, attributes, names, text and size.
//! - [`schema`]: schema documents → components (`include`/`import`/`redefine` confined to one
//!   directory), the constraints on schemas, content models compiled to lazy automata.
//! - [`datatypes`]: the 44 built-in types, facets, and user-derived simple types.
//! - [`xsdregex`]: XSD's regular-expression dialect, translated to the linear-time `regex` crate.
//! - [`identity`]: `xs:unique`, `xs:key`, `xs:keyref` with the XSD XPath subset, streaming.
//! - [`validator`]: the instance validator and its [`Violation`] reports.
#![forbid(unsafe_code)]

pub mod datatypes;
pub mod identity;
pub mod names;
pub mod schema;
pub mod validator;
pub mod xml;
pub mod xsdregex;

pub use names::QName;
pub use schema::{Diagnostic, DiagnosticKind, Schema, SchemaError};
pub use validator::{Options, Report, SensitiveField, Violation};
pub use xml::Limits;
