//! Validation: the schema catalog, root-element dispatch, and the XSD engine adapter.

pub mod catalog;
pub mod root;

pub use catalog::{Catalog, CatalogError, Entry};
