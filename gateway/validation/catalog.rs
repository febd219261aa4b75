//! The schema catalog: `schemas/catalog.toml` maps a root element `{namespace}name` (and a
//! version) to an XSD entry point and the agencies allowed to send it. Every entry is compiled
//! once, when the catalog is loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use xsd::QName;

/// Why the catalog cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// `catalog.toml` is missing or unreadable.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A catalog entry is wrong.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The catalog file.
        path: PathBuf,
        /// What is wrong, naming the entry.
        message: String,
    },
    /// An entry's schema does not compile.
    #[error("schema {id} ({}) cannot be compiled:\n{error}", entry.display())]
    Schema {
        /// Catalog id.
        id: String,
        /// Entry point.
        entry: PathBuf,
        /// The compiler's diagnostics.
        error: xsd::SchemaError,
    },
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    schema: Vec<RawEntry>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    root: String,
    version: String,
    entry: String,
    agencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sensitive: Vec<String>,
}

/// One message type.
#[derive(Debug)]
pub struct Entry {
    /// Stable id, recorded with every forwarded message.
    pub id: String,
    /// The root element.
    pub root: QName,
    /// Version of the message type.
    pub version: String,
    /// XSD entry point.
    pub entry: PathBuf,
    /// Agencies that may send it.
    pub agencies: Vec<String>,
    /// Path from the root to the element holding the agency's message id, if any.
    pub message_id: Option<Vec<QName>>,
    /// Fields whose values violation messages withhold (`sensitive = [...]` in the catalog;
    /// see [`xsd::SensitiveField`] for the forms).
    pub sensitive: Vec<xsd::SensitiveField>,
    /// The compiled schema.
    pub schema: Arc<xsd::Schema>,
}

/// All message types, compiled.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<Entry>,
}

/// Parses `{ns}local` (or `local`, in `default_ns`).
fn parse_qname(s: &str, default_ns: Option<&str>) -> Option<QName> {
    if let Some(rest) = s.strip_prefix('{') {
        let (ns, local) = rest.split_once('}')?;
        if local.is_empty() || ns.is_empty() {
            return None;
        }
        Some(QName::new(Some(ns), local))
    } else if !s.is_empty() && !s.contains(['{', '}', ':', '/']) {
        Some(QName::new(default_ns, s))
    } else {
        None
    }
}

impl Catalog {
    /// Reads `<schemas>/catalog.toml` and compiles every entry (imports confined to `schemas`).
    pub fn load(schemas: &Path) -> Result<Catalog, CatalogError> {
        let path = schemas.join("catalog.toml");
        let text = std::fs::read_to_string(&path).map_err(|error| CatalogError::Read {
            path: path.clone(),
            error,
        })?;
        let invalid = |message: String| CatalogError::Invalid {
            path: path.clone(),
            message,
        };
        let raw: RawCatalog = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut entries: Vec<Entry> = Vec::new();
        for r in raw.schema {
            let root = parse_qname(&r.root, None).ok_or_else(|| {
                invalid(format!(
                    "schema {:?}: root {:?} must be written {{namespace}}localName",
                    r.id, r.root
                ))
            })?;
            if entries.iter().any(|e| e.id == r.id) {
                return Err(invalid(format!("schema id {:?} appears twice", r.id)));
            }
            if entries.iter().any(|e| e.root == root) {
                return Err(invalid(format!(
                    "root {} appears twice (schema {:?}); one root, one schema",
                    r.root, r.id
                )));
            }
            for a in &r.agencies {
                if !crate::message::is_safe_name(a) {
                    return Err(invalid(format!("schema {:?}: bad agency name {a:?}", r.id)));
                }
            }
            let message_id = match &r.message_id {
                None => None,
                Some(p) => {
                    let mut steps = vec![root.clone()];
                    for step in p.split('/') {
                        steps.push(parse_qname(step, root.ns.as_deref()).ok_or_else(|| {
                            invalid(format!(
                                "schema {:?}: message_id step {step:?} must be `local` or `{{namespace}}local`",
                                r.id
                            ))
                        })?);
                    }
                    Some(steps)
                }
            };
            let sensitive = r
                .sensitive
                .iter()
                .map(|f| xsd::SensitiveField::parse(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("schema {:?}: sensitive: {e}", r.id)))?;
            let entry = schemas.join(&r.entry);
            let schema =
                xsd::Schema::compile(std::slice::from_ref(&entry), schemas).map_err(|error| {
                    CatalogError::Schema {
                        id: r.id.clone(),
                        entry: entry.clone(),
                        error,
                    }
                })?;
            for w in schema.warnings() {
                tracing::warn!(schema = %r.id, warning = %w, "schema compiled with a warning");
            }
            entries.push(Entry {
                id: r.id,
                root,
                version: r.version,
                entry,
                agencies: r.agencies,
                message_id,
                sensitive,
                schema: Arc::new(schema),
            });
        }
        Ok(Catalog { entries })
    }

    /// The message type whose root element is `root`.
    pub fn lookup(&self, root: &QName) -> Option<&Entry> {
        self.entries.iter().find(|e| e.root == *root)
    }

    /// Every entry, in catalog order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What `GET /v1/schemas` publishes to `agency`: a `catalog.toml` of the entries it may
    /// send (naming it alone), and every schema document they are compiled from, by path
    /// relative to `schemas` (with `/`). Read afresh from `schemas` so that the text is the
    /// catalog's own.
    pub fn published(
        &self,
        schemas: &Path,
        agency: &str,
    ) -> Result<(String, Vec<(String, PathBuf)>), CatalogError> {
        let path = schemas.join("catalog.toml");
        let invalid = |message: String| CatalogError::Invalid {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|error| CatalogError::Read {
            path: path.clone(),
            error,
        })?;
        let mut raw: RawCatalog = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        raw.schema
            .retain(|e| e.agencies.iter().any(|a| a == agency));
        for e in &mut raw.schema {
            e.agencies = vec![agency.to_owned()];
        }
        let catalog = toml::to_string(&raw).map_err(|e| invalid(e.to_string()))?;
        let base = schemas.canonicalize().map_err(|error| CatalogError::Read {
            path: schemas.to_path_buf(),
            error,
        })?;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.agencies.iter().any(|a| a == agency))
        {
            for doc in e.schema.documents() {
                let Ok(rel) = doc.strip_prefix(&base) else {
                    continue;
                };
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if !files.iter().any(|(r, _)| *r == rel) {
                    files.push((rel, doc.clone()));
                }
            }
        }
        files.sort();
        Ok((catalog, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_sensitive_field_is_refused_naming_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.xsd"),
            r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="A"/></xs:schema>"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("catalog.toml"),
            "[[schema]]\nid = \"a\"\nroot = \"A\"\nversion = \"1\"\nentry = \"a.xsd\"\nagencies = [\"x\"]\nsensitive = [\"c:Postcode\"]\n",
        )
        .unwrap();
        let e = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("schema \"a\": sensitive: \"c:Postcode\""), "{e}");
    }

    #[test]
    fn qnames_parse_with_braces_or_default_namespace() {
        assert_eq!(
            parse_qname("{urn:a}B", None),
            Some(QName::new(Some("urn:a"), "B"))
        );
        assert_eq!(
            parse_qname("B", Some("urn:a")),
            Some(QName::new(Some("urn:a"), "B"))
        );
        assert_eq!(parse_qname("a:B", None), None);
        assert_eq!(parse_qname("{urn:a}", None), None);
    }
}
