//! Loading schema documents: `include`, `import` and `redefine`, resolved only inside one
//! directory (never over the network), with chameleon includes.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::document::{self, Node};
use super::{Diagnostic, DiagnosticKind};

/// Where schema documents may be read from.
#[derive(Debug, Clone)]
pub struct Resolver {
    root: PathBuf,
}

impl Resolver {
    /// Documents are read only from `root` and below.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Resolver {
            root: root.canonicalize()?,
        })
    }

    /// Resolves `location` relative to the document at `base`; `Err` says why it may not be read.
    pub fn resolve(&self, base: Option<&Path>, location: &str) -> Result<PathBuf, Unresolved> {
        let loc = location.trim();
        if loc.contains("://") || loc.starts_with("file:") || loc.starts_with("urn:") {
            // Never fetched. XSD treats a location as a hint that may fail to resolve, so this
            // is not reported by itself; references into the namespace fail with their own error.
            return Err(Unresolved {
                refused: false,
                message: format!(
                    "'{loc}' is a URL; schemas are only read from files under {}",
                    self.root.display()
                ),
            });
        }
        let joined = match base.and_then(Path::parent) {
            Some(dir) if !Path::new(loc).is_absolute() => dir.join(loc),
            _ => PathBuf::from(loc),
        };
        let canon = joined.canonicalize().map_err(|e| Unresolved {
            refused: false,
            message: format!("cannot open '{loc}': {e}"),
        })?;
        if !canon.starts_with(&self.root) {
            return Err(Unresolved::refused(format!(
                "'{loc}' is outside the schema directory {}; it was not read (widen the schema root to allow it)",
                self.root.display()
            )));
        }
        Ok(canon)
    }
}

/// Why a schema location was not read.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// True when reading was refused by policy (URL, outside the root), not merely missing.
    pub refused: bool,
    pub message: String,
}

impl Unresolved {
    fn refused(message: String) -> Self {
        Unresolved {
            refused: true,
            message,
        }
    }
}

/// Per-document settings that components inherit.
#[derive(Debug, Clone)]
pub struct DocCtx {
    pub path: String,
    pub tns: Option<String>,
    /// Included into another namespace without a targetNamespace of its own.
    pub chameleon: bool,
    pub element_qualified: bool,
    pub attribute_qualified: bool,
}

/// A schema document with its context.
#[derive(Debug)]
pub struct Doc {
    /// Shared by every inclusion of the same file (chameleon includes differ only in `ctx`).
    pub root: Rc<Node>,
    pub ctx: DocCtx,
}

/// How a document was reached.
#[derive(Debug, Clone)]
enum Via {
    Entry,
    /// Included or redefined by a document whose target namespace is given.
    Include(Option<String>),
    /// Imported for this namespace (`None` for an import without `namespace`).
    Import(Option<String>),
}

/// Reads the entry documents and everything they include, import or redefine.
pub fn load(entries: &[PathBuf], resolver: &Resolver, diags: &mut Vec<Diagnostic>) -> Vec<Doc> {
    let mut docs: Vec<Doc> = Vec::new();
    let mut seen: HashMap<(PathBuf, Option<String>), usize> = HashMap::new();
    let mut queue: VecDeque<(PathBuf, Via, String, u32, u32)> = VecDeque::new();
    for e in entries {
        match e.canonicalize() {
            Ok(p) => queue.push_back((p, Via::Entry, String::new(), 0, 0)),
            Err(err) => diags.push(Diagnostic::new(
                DiagnosticKind::Io,
                &e.display().to_string(),
                0,
                0,
                format!("cannot open schema: {err}"),
            )),
        }
    }
    let mut text_cache: HashMap<PathBuf, Option<Rc<Node>>> = HashMap::new();
    while let Some((path, via, from, line, col)) = queue.pop_front() {
        if docs.len() > 10_000 {
            diags.push(Diagnostic::new(
                DiagnosticKind::Invalid,
                &from,
                line,
                col,
                "more than 10,000 schema documents".into(),
            ));
            break;
        }
        let display = path.display().to_string();
        let node = text_cache
            .entry(path.clone())
            .or_insert_with(|| match std::fs::read_to_string(&path) {
                Ok(text) => match document::parse(&display, &text) {
                    Ok(n) => Some(Rc::new(n)),
                    Err(e) => {
                        diags.push(Diagnostic::new(
                            DiagnosticKind::Invalid,
                            &display,
                            0,
                            0,
                            e.to_string(),
                        ));
                        None
                    }
                },
                Err(e) => {
                    diags.push(Diagnostic::new(
                        DiagnosticKind::Io,
                        &display,
                        0,
                        0,
                        format!("cannot read: {e}"),
                    ));
                    None
                }
            });
        let Some(node) = node else { continue };
        if !node.is_xs("schema") {
            diags.push(Diagnostic::new(
                DiagnosticKind::Invalid,
                &display,
                node.line,
                node.column,
                format!("the document element is <{}>, not <xs:schema>", node.local),
            ));
            continue;
        }
        let own_tns = node.attr("targetNamespace").map(str::to_owned);
        if own_tns.as_deref() == Some("") {
            diags.push(Diagnostic::new(
                DiagnosticKind::Invalid,
                &display,
                node.line,
                node.column,
                "targetNamespace may not be empty; omit it for no namespace".into(),
            ));
        }
        let (tns, chameleon) = match &via {
            Via::Entry => (own_tns.clone(), false),
            Via::Include(includer) => match (&own_tns, includer) {
                (None, Some(t)) => (Some(t.clone()), true),
                (o, i) if o == i => (o.clone(), false),
                (o, i) => {
                    diags.push(Diagnostic::new(
                        DiagnosticKind::Invalid,
                        &from,
                        line,
                        col,
                        format!(
                            "included/redefined document {display} has targetNamespace {} but the including schema has {}",
                            show_ns(o),
                            show_ns(i)
                        ),
                    ));
                    continue;
                }
            },
            Via::Import(ns) => {
                if &own_tns != ns {
                    diags.push(Diagnostic::new(
                        DiagnosticKind::Invalid,
                        &from,
                        line,
                        col,
                        format!(
                            "imported document {display} has targetNamespace {} but the import names {}",
                            show_ns(&own_tns),
                            show_ns(ns)
                        ),
                    ));
                    continue;
                }
                (own_tns.clone(), false)
            }
        };
        let key = (path.clone(), tns.clone());
        if seen.contains_key(&key) {
            continue;
        }
        let root = Rc::clone(node);
        let ctx = DocCtx {
            path: display.clone(),
            tns: tns.clone(),
            chameleon,
            element_qualified: root.attr("elementFormDefault") == Some("qualified"),
            attribute_qualified: root.attr("attributeFormDefault") == Some("qualified"),
        };
        for child in root.xs_children() {
            let loc = child.attr("schemaLocation");
            let next_via = match child.local.as_str() {
                "include" | "redefine" => {
                    if loc.is_none() {
                        diags.push(Diagnostic::new(
                            DiagnosticKind::Invalid,
                            &display,
                            child.line,
                            child.column,
                            format!("<xs:{}> needs a schemaLocation", child.local),
                        ));
                        continue;
                    }
                    Via::Include(tns.clone())
                }
                "import" => {
                    let ns = child.attr("namespace").map(str::to_owned);
                    if ns == tns {
                        diags.push(Diagnostic::new(
                            DiagnosticKind::Invalid,
                            &display,
                            child.line,
                            child.column,
                            format!(
                                "a schema may not import its own target namespace {}",
                                show_ns(&tns)
                            ),
                        ));
                        continue;
                    }
                    if ns.as_deref() == Some("") {
                        diags.push(Diagnostic::new(
                            DiagnosticKind::Invalid,
                            &display,
                            child.line,
                            child.column,
                            "import namespace may not be empty".into(),
                        ));
                        continue;
                    }
                    Via::Import(ns)
                }
                _ => continue,
            };
            let Some(loc) = loc else { continue };
            match resolver.resolve(Some(&path), loc) {
                Ok(p) => queue.push_back((p, next_via, display.clone(), child.line, child.column)),
                Err(why) => {
                    // XSD 1.0 §4.2.1/§4.2.3: a location that does not resolve is not itself an error
                    // for include/import/redefine; references into the missing document fail later
                    // with their own message. A path that leaves the schema directory is refused by
                    // policy and reported, as it is most likely a configuration mistake.
                    if why.refused {
                        diags.push(Diagnostic::new(
                            DiagnosticKind::Invalid,
                            &display,
                            child.line,
                            child.column,
                            why.message,
                        ));
                    }
                }
            }
        }
        seen.insert(key, docs.len());
        docs.push(Doc { root, ctx });
    }
    docs
}

fn show_ns(ns: &Option<String>) -> String {
    match ns {
        Some(n) => format!("'{n}'"),
        None => "no namespace".to_owned(),
    }
}
