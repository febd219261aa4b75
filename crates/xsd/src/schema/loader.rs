//! Loading schema documents: `include`, `import` and `redefine`, resolved only inside one
//! directory (never over the network), with chameleon includes.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::document::{self, Node};
use super::{Diagnostic, DiagnosticKind};

/// Largest schema document read, in bytes. Real schemas are far smaller (the largest
/// published standards' files are a few MB); the bound keeps a wrong path from filling memory.
pub const MAX_SCHEMA_DOCUMENT_BYTES: u64 = 32 << 20;
/// Largest total of all schema documents read for one compilation, in bytes.
pub const MAX_SCHEMA_TOTAL_BYTES: u64 = 256 << 20;

/// Reads one schema document: regular files only, at most `limit` bytes.
///
/// Opened with `O_NONBLOCK` and checked with `fstat` on the open descriptor, so that a FIFO
/// does not block the open and a device such as `/dev/zero` is never read; checking the path
/// first would leave a window for a swap.
fn read_document(path: &Path, limit: u64) -> Result<String, String> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "is {}, not a regular file; schema documents are read from regular files only",
            file_kind(&meta.file_type())
        ));
    }
    if meta.len() > limit {
        return Err(too_large(meta.len(), limit));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        // It grew while being read.
        return Err(too_large(bytes.len() as u64, limit));
    }
    decode(bytes)
}

/// A schema document's text: UTF-8 as it is, UTF-16 (byte order mark) or the encoding its
/// declaration names decoded, as instance documents are (`crate::xml::encoding`).
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    use crate::xml::encoding::{Detected, detect};
    match detect(bytes.get(..bytes.len().min(1024)).unwrap_or(&[]))? {
        Detected::Utf8 => String::from_utf8(bytes).map_err(|e| {
            format!(
                "invalid UTF-8 at byte offset {}: the document is read as UTF-8 (its declaration names no other encoding)",
                e.utf8_error().valid_up_to()
            )
        }),
        Detected::Decode(enc) => {
            let text = enc
                .decode_without_bom_handling_and_without_replacement(&bytes)
                .ok_or_else(|| {
                    format!(
                        "bytes that are not valid {}, the document's encoding",
                        enc.name()
                    )
                })?;
            Ok(text
                .strip_prefix('\u{FEFF}')
                .unwrap_or(&text)
                .to_owned())
        }
    }
}

fn too_large(size: u64, limit: u64) -> String {
    if limit < MAX_SCHEMA_DOCUMENT_BYTES {
        format!(
            "not read: the schema documents together would exceed the limit of {MAX_SCHEMA_TOTAL_BYTES} bytes"
        )
    } else {
        format!("is {size} bytes; a schema document may be at most {limit} bytes")
    }
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Where schema documents may be read from.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// `None`: any local file (as other validators resolve), never the network.
    root: Option<PathBuf>,
}

impl Resolver {
    /// Documents are read only from `root` and below.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Resolver {
            root: Some(root.canonicalize()?),
        })
    }

    /// Documents are read from any local file, relative to the including document.
    pub fn unconfined() -> Self {
        Resolver { root: None }
    }

    /// Resolves `location` relative to the document at `base`; `Err` says why it may not be read.
    pub fn resolve(&self, base: Option<&Path>, location: &str) -> Result<PathBuf, Unresolved> {
        let loc = location.trim();
        if loc.contains("://") || loc.starts_with("file:") || loc.starts_with("urn:") {
            // Never fetched. XSD treats a location as a hint that may fail to resolve, so this
            // is not an error by itself (the namespace may not even be used); it is a warning,
            // listed first when the schema then fails to compile, so that "type ... is not
            // defined" comes with its cause.
            return Err(Unresolved {
                refused: false,
                url: true,
                message: format!(
                    "schemaLocation '{}' is a URL: remote and file: URLs are never fetched, so nothing from it is available; bundle that schema {} and point schemaLocation at its relative path",
                    crate::datatypes::clip_value(loc),
                    match &self.root {
                        Some(root) => format!("under {}", root.display()),
                        None => "beside the others".to_owned(),
                    }
                ),
            });
        }
        let joined = match base.and_then(Path::parent) {
            Some(dir) if !Path::new(loc).is_absolute() => dir.join(loc),
            _ => PathBuf::from(loc),
        };
        let canon = joined.canonicalize().map_err(|e| Unresolved {
            refused: false,
            url: false,
            message: format!("cannot open '{}': {e}", crate::datatypes::clip_value(loc)),
        })?;
        if let Some(root) = &self.root
            && !canon.starts_with(root)
        {
            return Err(Unresolved::refused(format!(
                "'{}' is outside the schema directory {}; it was not read (widen the schema root to allow it)",
                crate::datatypes::clip_value(loc),
                root.display()
            )));
        }
        Ok(canon)
    }
}

/// Why a schema location was not read.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// True when reading was refused by policy (outside the root), not merely missing.
    pub refused: bool,
    /// True when the location is a URL, which is never fetched.
    pub url: bool,
    pub message: String,
}

impl Unresolved {
    fn refused(message: String) -> Self {
        Unresolved {
            refused: true,
            url: false,
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

/// Reads the entry documents and everything they include, import or redefine; problems go to
/// `diags`, remarks that do not make the schema invalid by themselves to `warnings`.
pub fn load(
    entries: &[PathBuf],
    resolver: &Resolver,
    diags: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Doc> {
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
    let mut total_read = 0u64;
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
        if !text_cache.contains_key(&path) {
            let budget =
                MAX_SCHEMA_DOCUMENT_BYTES.min(MAX_SCHEMA_TOTAL_BYTES.saturating_sub(total_read));
            let parsed = match read_document(&path, budget) {
                Ok(text) => {
                    total_read = total_read.saturating_add(text.len() as u64);
                    match document::parse(&display, &text) {
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
                    }
                }
                Err(e) => {
                    diags.push(Diagnostic::new(DiagnosticKind::Io, &display, 0, 0, e));
                    None
                }
            };
            text_cache.insert(path.clone(), parsed);
        }
        let node = text_cache.get(&path).and_then(Option::as_ref);
        let Some(node) = node.cloned() else { continue };
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
        let root = Rc::clone(&node);
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
                    if why.url {
                        warnings.push(Diagnostic::new(
                            DiagnosticKind::Warning,
                            &display,
                            child.line,
                            child.column,
                            why.message,
                        ));
                    } else if why.refused {
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
