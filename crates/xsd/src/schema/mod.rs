//! Compiling XML Schema documents into a [`Schema`].

mod builder;
pub mod components;
mod content;
mod document;
mod loader;
mod restriction;
mod s4s;
mod wildcard;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use components::{Components, TypeId};
pub use content::{Arena, LeafTerm, Model};
pub use loader::{MAX_SCHEMA_DOCUMENT_BYTES, MAX_SCHEMA_TOTAL_BYTES, Resolver};

use components::{Content, TypeDef};

/// What kind of schema problem a [`Diagnostic`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticKind {
    /// The schema breaks a rule of XSD 1.0.
    Invalid,
    /// The schema uses a construct this engine does not implement.
    Unsupported,
    /// A schema document could not be read.
    Io,
    /// Not an error by itself, e.g. an import from a URL, which is never fetched. Listed with
    /// the errors when compilation fails (it often explains them), else in
    /// [`Schema::warnings`].
    Warning,
}

/// One problem found while compiling schemas.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(
        kind: DiagnosticKind,
        file: &str,
        line: u32,
        column: u32,
        message: String,
    ) -> Self {
        Diagnostic {
            kind,
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }

    /// Stable code: `schema_invalid`, `schema_unsupported` or `schema_io`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            DiagnosticKind::Invalid => "schema_invalid",
            DiagnosticKind::Unsupported => "schema_unsupported",
            DiagnosticKind::Io => "schema_io",
            DiagnosticKind::Warning => "schema_warning",
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            write!(f, "{}: {}", self.code(), self.message)
        } else if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.code(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file,
                self.line,
                self.column,
                self.code(),
                self.message
            )
        }
    }
}

/// Schemas that could not be compiled, with every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct SchemaError {
    pub diagnostics: Vec<Diagnostic>,
}

impl SchemaError {
    /// True when only I/O problems prevented compilation (warnings aside).
    pub fn is_io(&self) -> bool {
        let mut errors = self
            .diagnostics
            .iter()
            .filter(|d| d.kind != DiagnosticKind::Warning)
            .peekable();
        errors.peek().is_some() && errors.all(|d| d.kind == DiagnosticKind::Io)
    }
}

/// A compiled, immutable schema: share it between threads and validate many documents.
#[derive(Debug)]
pub struct Schema {
    pub(crate) comps: Components,
    /// Content model per type id (element-only and mixed content).
    pub(crate) models: Vec<Option<Arc<Model>>>,
    /// Automaton states built by earlier validations, for reuse: a state depends only on
    /// the schema, and a small document would otherwise spend most of its time rebuilding
    /// the same few states.
    pub(crate) arenas: std::sync::Mutex<Vec<Arena>>,
    /// Remarks from compiling that did not prevent it (e.g. a URL import, not fetched).
    pub(crate) warnings: Vec<Diagnostic>,
    /// Every schema document read, once each, in the order they were first read.
    pub(crate) documents: Vec<std::path::PathBuf>,
}

impl Schema {
    /// Compiles the schema documents `entries` (and what they include, import and redefine),
    /// reading only files under `root`.
    pub fn compile(entries: &[PathBuf], root: &Path) -> Result<Schema, SchemaError> {
        let resolver = Resolver::new(root).map_err(|e| SchemaError {
            diagnostics: vec![Diagnostic::new(
                DiagnosticKind::Io,
                &root.display().to_string(),
                0,
                0,
                format!("schema directory: {e}"),
            )],
        })?;
        Schema::compile_with(entries, &resolver)
    }

    /// Compiles `entries` reading includes, imports and redefines from any local file, relative
    /// to the document that names them, as other validators do (a bundle's `maindoc/` importing
    /// `../common/`); URLs are still never fetched. For a command-line user's own files; the
    /// server confines schemas with [`Schema::compile`].
    pub fn compile_local(entries: &[PathBuf]) -> Result<Schema, SchemaError> {
        Schema::compile_with(entries, &Resolver::unconfined())
    }

    fn compile_with(entries: &[PathBuf], resolver: &Resolver) -> Result<Schema, SchemaError> {
        let mut diags = Vec::new();
        let mut warnings = Vec::new();
        let docs = loader::load(entries, resolver, &mut diags, &mut warnings);
        // Warnings come first when compilation fails: they often explain the errors.
        let failed = |warnings: Vec<Diagnostic>, diags: Vec<Diagnostic>| SchemaError {
            diagnostics: warnings.into_iter().chain(diags).collect(),
        };
        if !diags.is_empty() && docs.is_empty() {
            return Err(failed(warnings, diags));
        }
        let mut b = builder::Builder::new(&docs);
        b.collect();
        b.build_all();
        let (comps, more) = b.finish();
        diags.extend(more);
        let mut models = Vec::with_capacity(comps.types.len());
        for (id, t) in comps.types.iter().enumerate() {
            let m = match t {
                TypeDef::Complex(ct) => match &ct.content {
                    Content::Elements { particle, .. } => {
                        let m = Model::compile(&comps, particle);
                        if id != components::ANY_TYPE {
                            let name = comps.type_name(id);
                            let (file, line, column) = ct.source.clone().unwrap_or_default();
                            for check in [m.check_edc(&comps), m.check_upa(&comps)] {
                                if let Err(e) = check {
                                    diags.push(Diagnostic::new(
                                        DiagnosticKind::Invalid,
                                        &file,
                                        line,
                                        column,
                                        format!("type {name}: {e}"),
                                    ));
                                }
                            }
                        }
                        Some(Arc::new(m))
                    }
                    _ => None,
                },
                TypeDef::Simple(_) => None,
            };
            models.push(m);
        }
        if !diags.is_empty() {
            return Err(failed(warnings, diags));
        }
        let mut documents: Vec<std::path::PathBuf> = Vec::new();
        for d in &docs {
            let p = std::path::PathBuf::from(&d.ctx.path);
            if !documents.contains(&p) {
                documents.push(p);
            }
        }
        Ok(Schema {
            comps,
            models,
            arenas: std::sync::Mutex::new(Vec::new()),
            warnings,
            documents,
        })
    }

    /// Remarks from compiling that did not prevent it, e.g. an import or include from a URL
    /// (never fetched) whose namespace turned out not to be needed.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Every schema document the schema was compiled from (the entries and all they include,
    /// import or redefine), each once, as read (canonical paths).
    pub fn documents(&self) -> &[std::path::PathBuf] {
        &self.documents
    }

    /// The compiled components (declarations and type definitions).
    pub fn components(&self) -> &Components {
        &self.comps
    }
}
