//! Schema documents as small owned trees.
//!
//! Schemas are small and read once, so they are parsed whole with roxmltree and copied into
//! owned nodes: the component builder can then hold references into every document at once
//! without lifetimes tied to the source text. Annotation contents are dropped on the way in.

use std::rc::Rc;

use crate::datatypes::NamespaceContext;
use crate::names::{XML, XS};

/// In-scope namespace bindings of a schema element (`""` = default namespace).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NsScope {
    bindings: Vec<(String, String)>,
}

impl NamespaceContext for NsScope {
    fn lookup(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML);
        }
        self.bindings
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
            .filter(|u| !u.is_empty() || prefix.is_empty())
    }
}

impl NsScope {
    /// The namespace of unprefixed names, if a default namespace is declared.
    pub fn default_ns(&self) -> Option<&str> {
        self.lookup("").filter(|u| !u.is_empty())
    }
}

/// One attribute of a schema element.
#[derive(Debug)]
pub struct Attr {
    pub ns: Option<String>,
    pub local: String,
    pub value: String,
}

/// One element of a schema document.
#[derive(Debug)]
pub struct Node {
    pub ns: Option<String>,
    pub local: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// True when the element holds non-whitespace character data (an error outside annotations).
    pub has_text: bool,
    pub scope: Rc<NsScope>,
    pub line: u32,
    pub column: u32,
}

impl Node {
    /// True for an element in the XML Schema namespace with this local name.
    pub fn is_xs(&self, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(XS)
    }

    /// The value of the unqualified attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == name)
            .map(|a| a.value.as_str())
    }

    /// Child elements in the schema namespace, annotations excluded.
    pub fn xs_children(&self) -> impl Iterator<Item = &Node> {
        self.children
            .iter()
            .filter(|c| c.ns.as_deref() == Some(XS) && c.local != "annotation")
    }

    /// The first schema child named `local`.
    pub fn child(&self, local: &str) -> Option<&Node> {
        self.xs_children().find(|c| c.local == local)
    }
}

/// Errors reading a schema document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{path}:{line}:{column}: not well-formed XML: {message}")]
    Xml {
        path: String,
        line: u32,
        column: u32,
        message: String,
    },
}

/// Parses schema document text into an owned tree.
pub fn parse(path: &str, text: &str) -> Result<Node, DocumentError> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| {
        let pos = e.pos();
        DocumentError::Xml {
            path: path.to_owned(),
            line: pos.row,
            column: pos.col,
            message: e.to_string(),
        }
    })?;
    let root = doc.root_element();
    let lines = LineIndex::new(text);
    Ok(convert(&lines, root, None))
}

/// Byte offsets of line starts: roxmltree's `text_pos_at` rescans from the start of the text
/// on every call, which is quadratic over a large schema.
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex { text, starts }
    }

    fn position(&self, offset: usize) -> (u32, u32) {
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (line as u32 + 1, column as u32 + 1)
    }
}

fn convert(doc: &LineIndex, n: roxmltree::Node, parent_scope: Option<&Rc<NsScope>>) -> Node {
    let bindings: Vec<(String, String)> = n
        .namespaces()
        .map(|ns| (ns.name().unwrap_or("").to_owned(), ns.uri().to_owned()))
        .collect();
    let scope = match parent_scope {
        Some(p) if p.bindings == bindings => Rc::clone(p),
        _ => Rc::new(NsScope { bindings }),
    };
    let (line, column) = doc.position(n.range().start);
    let tag = n.tag_name();
    let is_annotation_body =
        tag.namespace() == Some(XS) && (tag.name() == "appinfo" || tag.name() == "documentation");
    let mut children = Vec::new();
    let mut has_text = false;
    if !is_annotation_body {
        for c in n.children() {
            if c.is_element() && !version_included(c) {
                continue;
            }
            if c.is_element() {
                children.push(convert(doc, c, Some(&scope)));
            } else if c.is_text()
                && c.text()
                    .is_some_and(|t| !t.trim_matches([' ', '\t', '\n', '\r']).is_empty())
            {
                has_text = true;
            }
        }
    }
    Node {
        ns: tag.namespace().map(str::to_owned),
        local: tag.name().to_owned(),
        attrs: n
            .attributes()
            .map(|a| Attr {
                ns: a.namespace().map(str::to_owned),
                local: a.name().to_owned(),
                value: a.value().to_owned(),
            })
            .collect(),
        children,
        has_text,
        scope,
        line,
        column,
    }
}

/// Conditional inclusion (the `vc:` attributes of the versioning namespace): an element marked
/// for other versions of XSD than 1.0 is left out, as XSD 1.1 §4.2.1 describes and 1.0
/// processors may do.
fn version_included(n: roxmltree::Node) -> bool {
    const VC: &str = "http://www.w3.org/2007/XMLSchema-versioning";
    let num = |name: &str| {
        n.attribute((VC, name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    num("minVersion").is_none_or(|min| min <= 1.0) && num("maxVersion").is_none_or(|max| 1.0 < max)
}
