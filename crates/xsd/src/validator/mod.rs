//! Streaming instance validation: one pass over the document, memory bounded by element depth
//! (plus the ID and identity-constraint tables, see the crate docs).

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::BufRead;
use std::sync::Arc;

use crate::datatypes::{IdKind, NamespaceContext, Primitive, SimpleType, Value, quote_value};
use crate::identity::IdcTracker;
use crate::names::QName;
use crate::schema::components::*;
use crate::schema::{Arena, LeafTerm, Schema};
use crate::xml::{Event, Limits, XmlReader};

mod attributes;
mod start;

/// Validation settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// XML safety limits (depth, attributes, sizes, DOCTYPE).
    pub limits: Limits,
    /// Stop collecting violations after this many (the report says it was truncated).
    pub max_errors: usize,
    /// Bound on the ID/IDREF and identity-constraint tables (entries).
    pub max_table_entries: usize,
    /// Element paths from the root (e.g. `Referral`, `Header`, `MessageId`) whose text the
    /// report hands back, first occurrence only, so callers read a header field without a
    /// second parse.
    pub capture: Vec<Vec<QName>>,
    /// Fields whose values violation messages never quote (personal data): they say
    /// "value withheld (sensitive field, N bytes)" instead. Other values are quoted clipped
    /// (see [`crate::datatypes::quote_value`]).
    pub sensitive: Vec<SensitiveField>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            max_errors: 100,
            max_table_entries: 1_000_000,
            capture: Vec::new(),
            sensitive: Vec::new(),
        }
    }
}

/// A field whose values must not appear in violation messages.
///
/// Written as:
/// - `Name`: every element *and* attribute whose local name is `Name`, anywhere;
/// - `@name`: every attribute whose local name is `name`, on any element;
/// - `/Root/Child/Name`: the element at that path of local names from the root;
/// - `/Root/Child/@name`: that attribute of the element at that path.
///
/// Names are local names (prefixes and namespaces are not compared) matched without regard to
/// ASCII case: a mistake in either then withholds more, never less. Everything inside a
/// sensitive element (its descendants' content and attributes) is withheld too, so `Person`
/// covers a whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SensitiveField {
    /// Elements and attributes with this local name.
    Named(String),
    /// Attributes with this local name.
    Attribute(String),
    /// The element at this path from the root, or (with `attribute`) its attribute.
    Path {
        elements: Vec<String>,
        attribute: Option<String>,
    },
}

impl SensitiveField {
    /// Parses the forms above; the error says what is wrong with `s`.
    pub fn parse(s: &str) -> Result<SensitiveField, String> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && !n.contains([':', '{', '}', '/', '@', '[', ']'])
                && !n.chars().any(char::is_whitespace)
        };
        let bad = |why: &str| {
            Err(format!(
                "{s:?} {why}; write `Name`, `@name`, `/Root/Child/Name` or `/Root/Child/@name` with local names"
            ))
        };
        if let Some(path) = s.strip_prefix('/') {
            let mut steps: Vec<&str> = path.split('/').collect();
            let attribute = match steps.last().and_then(|l| l.strip_prefix('@')) {
                Some(a) => {
                    steps.pop();
                    Some(a)
                }
                None => None,
            };
            if steps.is_empty() || !steps.iter().all(|n| name_ok(n)) {
                return bad("is not a path of element names");
            }
            if attribute.is_some_and(|a| !name_ok(a)) {
                return bad("does not end in a valid attribute name");
            }
            Ok(SensitiveField::Path {
                elements: steps.into_iter().map(str::to_owned).collect(),
                attribute: attribute.map(str::to_owned),
            })
        } else if let Some(a) = s.strip_prefix('@') {
            if name_ok(a) {
                Ok(SensitiveField::Attribute(a.to_owned()))
            } else {
                bad("is not a valid attribute name")
            }
        } else if name_ok(s) {
            Ok(SensitiveField::Named(s.to_owned()))
        } else {
            bad("is not a valid name")
        }
    }
}

impl fmt::Display for SensitiveField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SensitiveField::Named(n) => f.write_str(n),
            SensitiveField::Attribute(a) => write!(f, "@{a}"),
            SensitiveField::Path {
                elements,
                attribute,
            } => {
                for e in elements {
                    write!(f, "/{e}")?;
                }
                match attribute {
                    Some(a) => write!(f, "/@{a}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// What a violation message says instead of a sensitive value.
fn withheld(v: &str) -> String {
    format!("value withheld (sensitive field, {} bytes)", v.len())
}

/// The local part of a display name `prefix:local`.
fn local_of(display: &str) -> &str {
    display.rsplit(':').next().unwrap_or(display)
}

/// One way in which the document is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable code, e.g. `element_unexpected`, `value_invalid`, `xml_malformed`.
    pub code: &'static str,
    /// What was expected and what was found.
    pub message: String,
    pub line: u64,
    pub column: u64,
    /// XML path of the element, e.g. `/Referral/Child[2]/DateOfBirth` (attributes end in `/@name`).
    pub path: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} at {}: {}",
            self.line, self.column, self.code, self.path, self.message
        )
    }
}

/// The outcome of validating one document.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// More violations were found than `max_errors`.
    pub truncated: bool,
    /// Bytes read.
    pub bytes: u64,
    /// The root element's name, once its start tag was read.
    pub root: Option<QName>,
    /// Text of the first element at each of [`Options::capture`]'s paths (at most
    /// [`CAPTURE_MAX`] characters, trimmed), in the same order.
    pub captured: Vec<Option<String>>,
    /// The document's encoding as read (`UTF-8`, `UTF-16LE`, `windows-1252`...; the
    /// `encoding_rs` name, empty when nothing was read).
    pub encoding: &'static str,
}

/// Longest captured text kept (characters).
pub const CAPTURE_MAX: usize = 256;

impl Report {
    /// True when the document is valid.
    pub fn is_valid(&self) -> bool {
        // A truncated report (even one capped at zero violations) found something.
        self.violations.is_empty() && !self.truncated
    }
}

/// A typed value as identity constraints compare it (value equality, printed lexically).
#[derive(Debug, Clone)]
pub struct KeyValue {
    value: Value,
    lexical: String,
}

impl PartialEq for KeyValue {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl Eq for KeyValue {}
impl Hash for KeyValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}
impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Already as messages show it: quoted and clipped, or withheld.
        f.write_str(&self.lexical)
    }
}

/// Distinct child names whose positions are counted per element, for `[n]` in paths.
const MAX_TRACKED_CHILD_NAMES: usize = 1024;

/// Automaton states kept before the arena is compacted to the live ones.
const ARENA_COMPACT_AT: usize = 50_000;
/// Arenas larger than this are not kept for the next document, so the pool holds at most
/// `ARENA_POOL_MAX` x `ARENA_KEEP_MAX` states per schema even after hostile documents (big
/// `maxOccurs` counters make a state per repetition); ordinary documents use far fewer.
const ARENA_KEEP_MAX: usize = 1_024;
/// At most this many arenas are kept, one per thread validating at the same time (more
/// threads than this build their states afresh).
const ARENA_POOL_MAX: usize = 16;

/// What governs a child element: a declaration, or a wildcard's processing mode.
enum Gov {
    Decl(ElemId),
    Lax,
    Skip,
    Strict,
}

/// How an open element is being processed.
enum Mode {
    /// Validated against a type.
    Typed {
        elem: Option<ElemId>,
        type_id: TypeId,
        state: Option<u32>,
        nil: bool,
    },
    /// Inside a skip wildcard: only well-formedness.
    Skip,
    /// No declaration under a lax wildcard: children are assessed laxly.
    Lax,
}

struct Frame {
    name: Arc<str>,
    index: u32,
    mode: Mode,
    /// Counts of children by name, for `[n]` in paths.
    children: Vec<(Arc<str>, u32)>,
    text: String,
    has_children: bool,
    line: u64,
    column: u64,
    /// Its values (and everything inside it) are withheld from messages.
    sensitive: bool,
}

struct Ns<'a, R: BufRead>(&'a XmlReader<R>);
impl<R: BufRead> NamespaceContext for Ns<'_, R> {
    fn lookup(&self, prefix: &str) -> Option<&str> {
        self.0.lookup_namespace(prefix)
    }
}

struct Run<'s> {
    schema: &'s Schema,
    opts: &'s Options,
    report: Report,
    stack: Vec<Frame>,
    root_children: Vec<(Arc<str>, u32)>,
    arena: Arena,
    ids: HashSet<String>,
    /// IDREF, line, column, path, and whether its value is withheld from messages.
    idrefs: Vec<(String, u64, u64, String, bool)>,
    idc: IdcTracker<KeyValue>,
    /// Popped frames kept for reuse: no allocation per element once warm.
    spare: Vec<Frame>,
    /// Element display names, shared by frames.
    names: rustc_hash::FxHashSet<Arc<str>>,
    cur_name: QName,
    display: String,
    /// The attribute being checked, so violations point at it (`/@name` in the path).
    cur_attr: String,
    cur_attr_on: bool,
    /// Whether any element declaration carries identity constraints.
    has_idcs: bool,
    done: bool,
    /// Per capture path: how many of its leading steps match the open elements.
    cap_match: Vec<usize>,
}

fn set_opt(dst: &mut Option<String>, src: Option<&str>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => {
            d.clear();
            d.push_str(s);
        }
        (None, Some(s)) => *dst = Some(s.to_owned()),
        (_, None) => *dst = None,
    }
}

fn set_str(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

impl Schema {
    /// Validates one document read from `input`.
    pub fn validate<R: BufRead>(&self, input: R, opts: &Options) -> Report {
        let mut reader = XmlReader::new(input, opts.limits.clone());
        let mut run = Run {
            schema: self,
            opts,
            report: Report::default(),
            stack: Vec::new(),
            root_children: Vec::new(),
            arena: self.take_arena(),
            ids: HashSet::new(),
            idrefs: Vec::new(),
            idc: IdcTracker::new(opts.max_table_entries),
            spare: Vec::new(),
            names: rustc_hash::FxHashSet::default(),
            cur_name: QName::default(),
            display: String::new(),
            cur_attr: String::new(),
            cur_attr_on: false,
            has_idcs: self.comps.elements.iter().any(|e| !e.idcs.is_empty()),
            done: false,
            cap_match: vec![0; opts.capture.len()],
        };
        run.report.captured = vec![None; opts.capture.len()];
        loop {
            if run.done {
                break;
            }
            let ev = match reader.advance() {
                Ok(()) => reader.current(),
                Err(e) => {
                    // A problem in a start tag belongs to that element, which was never
                    // opened: place it there, not at the parent.
                    let (line, column, path) = match &e.element {
                        Some(el) => (el.line, el.column, run.unopened_child_path(&el.name)),
                        None => (e.line, e.column, run.path()),
                    };
                    run.report.violations.push(Violation {
                        code: e.kind.code(),
                        message: e.message.clone(),
                        line,
                        column,
                        path,
                    });
                    break;
                }
            };
            match ev {
                Event::Start(tag) => {
                    set_opt(&mut run.cur_name.ns, tag.namespace);
                    set_str(&mut run.cur_name.local, tag.local);
                    run.display.clear();
                    if let Some(p) = tag.prefix {
                        run.display.push_str(p);
                        run.display.push(':');
                    }
                    run.display.push_str(tag.local);
                    let (l, c) = (tag.line, tag.column);
                    let display = run.intern_display();
                    let name = std::mem::take(&mut run.cur_name);
                    run.start(&reader, &name, display, l, c, tag.attributes);
                    run.cur_name = name;
                }
                Event::Text(t) => {
                    let (l, c) = reader.position();
                    run.text(t, l, c);
                }
                Event::End => {
                    let end_at = reader.position();
                    run.end(&reader, end_at);
                }
                Event::Eof => break,
            }
        }
        let arena = std::mem::take(&mut run.arena);
        let mut report = run.finish();
        report.encoding = reader.encoding();
        self.keep_arena(arena);
        report
    }

    fn take_arena(&self) -> Arena {
        let mut pool = self.arenas.lock().unwrap_or_else(|e| e.into_inner());
        pool.pop().unwrap_or_default()
    }

    fn keep_arena(&self, arena: Arena) {
        if arena.len() <= ARENA_KEEP_MAX {
            let mut pool = self.arenas.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < ARENA_POOL_MAX {
                pool.push(arena);
            }
        }
    }
}

impl<'s> Run<'s> {
    /// The shared name for `self.display`; the table is capped so hostile documents with
    /// endless distinct names cannot grow it without bound.
    fn intern_display(&mut self) -> Arc<str> {
        // Siblings repeat names: the parent's short list of child names usually has it.
        let siblings = self
            .stack
            .last()
            .map_or(&self.root_children, |f| &f.children);
        if let Some((a, _)) = siblings.iter().find(|(n, _)| **n == *self.display) {
            return a.clone();
        }
        if let Some(a) = self.names.get(self.display.as_str()) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(self.display.as_str());
        if self.names.len() < 10_000 {
            self.names.insert(a.clone());
        }
        a
    }

    fn path(&self) -> String {
        let mut p = String::new();
        for f in &self.stack {
            p.push('/');
            p.push_str(&f.name);
            if f.index > 1 {
                p.push_str(&format!("[{}]", f.index));
            }
        }
        if p.is_empty() {
            p.push('/');
        }
        if self.cur_attr_on {
            if !p.ends_with('/') {
                p.push('/');
            }
            p.push('@');
            p.push_str(&self.cur_attr);
        }
        p
    }

    /// Whether an element named `display`, about to be pushed as a child of the innermost open
    /// element, is sensitive (itself, or inside a sensitive element).
    fn element_is_sensitive(&self, display: &str) -> bool {
        let fields = &self.opts.sensitive;
        if fields.is_empty() {
            return false;
        }
        if self.stack.last().is_some_and(|f| f.sensitive) {
            return true;
        }
        let local = local_of(display);
        fields.iter().any(|f| match f {
            SensitiveField::Named(n) => n.eq_ignore_ascii_case(local),
            SensitiveField::Attribute(_) => false,
            SensitiveField::Path {
                elements,
                attribute: None,
            } => self.path_is(elements, Some(local)),
            SensitiveField::Path { .. } => false,
        })
    }

    /// Whether attribute `local` of the innermost open element is sensitive.
    fn attribute_is_sensitive(&self, local: &str) -> bool {
        let fields = &self.opts.sensitive;
        if fields.is_empty() {
            return false;
        }
        if self.stack.last().is_some_and(|f| f.sensitive) {
            return true;
        }
        fields.iter().any(|f| match f {
            SensitiveField::Named(n) | SensitiveField::Attribute(n) => {
                n.eq_ignore_ascii_case(local)
            }
            SensitiveField::Path {
                elements,
                attribute: Some(a),
            } => a.eq_ignore_ascii_case(local) && self.path_is(elements, None),
            SensitiveField::Path { .. } => false,
        })
    }

    /// Whether the open elements (then `next`, if given) are exactly `elements`.
    fn path_is(&self, elements: &[String], next: Option<&str>) -> bool {
        let open = self.stack.iter().map(|f| local_of(&f.name));
        let names: Vec<&str> = open.chain(next).collect();
        names.len() == elements.len()
            && names
                .iter()
                .zip(elements)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// How a message shows a value of the innermost open element (or, with `attribute`, of
    /// that attribute of it).
    fn shown(&self, value: &str, attribute: Option<&str>) -> String {
        let sensitive = match attribute {
            Some(a) => self.attribute_is_sensitive(a),
            None => self.stack.last().is_some_and(|f| f.sensitive),
        };
        if sensitive {
            withheld(value)
        } else {
            quote_value(value)
        }
    }

    /// The path a child named `display` of the innermost open element would get.
    fn unopened_child_path(&self, display: &str) -> String {
        let siblings = self
            .stack
            .last()
            .map_or(&self.root_children, |f| &f.children);
        let index = siblings
            .iter()
            .find(|(n, _)| **n == *display)
            .map_or(1, |(_, c)| c + 1);
        let mut p = self.path();
        if !p.ends_with('/') {
            p.push('/');
        }
        p.push_str(display);
        if index > 1 {
            p.push_str(&format!("[{index}]"));
        }
        p
    }

    fn error(&mut self, code: &'static str, line: u64, column: u64, message: String) {
        let path = self.path();
        self.error_at(code, line, column, path, message);
    }

    fn error_at(
        &mut self,
        code: &'static str,
        line: u64,
        column: u64,
        path: String,
        message: String,
    ) {
        if self.report.violations.len() >= self.opts.max_errors {
            self.report.truncated = true;
            self.done = true;
            return;
        }
        self.report.violations.push(Violation {
            code,
            message,
            line,
            column,
            path,
        });
    }

    fn comps(&self) -> &'s Components {
        &self.schema.comps
    }

    /// Validates a value, tracks IDs and IDREFs, checks NOTATION names.
    #[allow(clippy::too_many_arguments)]
    fn check_value<N: NamespaceContext>(
        &mut self,
        st: &Arc<SimpleType>,
        lexical: &str,
        ns: &N,
        line: u64,
        column: u64,
        what: &dyn Fn() -> String,
        code: &'static str,
        want: bool,
        sensitive: bool,
    ) -> Option<KeyValue> {
        // The datatype's message quotes the value; a sensitive one gets only the rule broken.
        let invalid = |e: &crate::datatypes::DatatypeError| {
            if sensitive {
                format!("{}: {} ({})", what(), withheld(lexical), e.code)
            } else {
                format!("{}: {e}", what())
            }
        };
        let shown = |v: &str| {
            if sensitive {
                withheld(v)
            } else {
                quote_value(v)
            }
        };
        // Without ID/IDREF/NOTATION bookkeeping and when nobody needs the value, a check
        // that builds no value will do.
        if !want && st.id_kind().is_none() && st.primitive() != Some(Primitive::Notation) {
            if let Err(e) = st.check(lexical, ns) {
                self.error(code, line, column, invalid(&e));
            }
            return None;
        }
        match st.validate(lexical, ns) {
            Ok(value) => {
                if let Some(kind) = st.id_kind() {
                    let norm = st.normalize(lexical).into_owned();
                    self.track_id(kind, norm, line, column, sensitive);
                }
                if st.primitive() == Some(Primitive::Notation)
                    && let Value::QName { ns, local } = &value
                {
                    let q = QName {
                        ns: ns.clone(),
                        local: local.clone(),
                    };
                    if !self.comps().notations.contains(&q) {
                        self.error(
                            code,
                            line,
                            column,
                            format!("{}: {} is not a declared notation", what(), shown(lexical)),
                        );
                    }
                }
                // The lexical form is kept only for identity-constraint messages.
                let lexical = if self.has_idcs {
                    shown(lexical.trim())
                } else {
                    String::new()
                };
                Some(KeyValue { value, lexical })
            }
            Err(e) => {
                self.error(code, line, column, invalid(&e));
                None
            }
        }
    }

    /// An ID must be unique in the document; IDREFs are kept to be resolved at the end. Both
    /// tables are capped, and a value past the cap is reported, never silently dropped.
    #[inline(always)]
    fn track_id(&mut self, kind: IdKind, norm: String, line: u64, column: u64, sensitive: bool) {
        match kind {
            IdKind::Id => {
                if self.ids.len() >= self.opts.max_table_entries {
                    self.error(
                        "xml_limit_exceeded",
                        line,
                        column,
                        format!("more than {} IDs", self.opts.max_table_entries),
                    );
                } else if !self.ids.insert(norm.clone()) {
                    let shown = if sensitive {
                        withheld(&norm)
                    } else {
                        quote_value(&norm)
                    };
                    self.error(
                        "id_duplicate",
                        line,
                        column,
                        format!("ID {shown} is used twice in the document"),
                    );
                }
            }
            IdKind::IdRef | IdKind::IdRefs => {
                for r in norm.split_ascii_whitespace() {
                    if self.idrefs.len() < self.opts.max_table_entries {
                        self.idrefs
                            .push((r.to_owned(), line, column, self.path(), sensitive));
                    } else {
                        // An IDREF that is not kept cannot be checked: say so rather
                        // than let the document pass unchecked.
                        let max = self.opts.max_table_entries;
                        self.error(
                            "xml_limit_exceeded",
                            line,
                            column,
                            format!("more than {max} IDREF values"),
                        );
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, t: &str, line: u64, column: u64) {
        let Some(f) = self.stack.last_mut() else {
            return;
        };
        match &f.mode {
            Mode::Typed {
                type_id, nil, elem, ..
            } => {
                let (type_id, nil, elem) = (*type_id, *nil, *elem);
                let ws = t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
                if nil {
                    if !t.is_empty() && !ws {
                        self.error(
                            "nil_content",
                            line,
                            column,
                            "an element with xsi:nil=\"true\" must be empty".into(),
                        );
                    }
                    return;
                }
                let comps = self.comps();
                let keep = match comps.types.get(type_id) {
                    Some(TypeDef::Simple(_)) => true,
                    Some(TypeDef::Complex(ct)) => {
                        match &ct.content {
                            Content::Simple(_) => true,
                            Content::Elements { mixed: true, .. } => {
                                elem.is_some_and(|e| comps.elements[e].constraint.is_some())
                            }
                            Content::Elements { mixed: false, .. } | Content::Empty => {
                                if !ws {
                                    let shown = self.shown(t.trim(), None);
                                    let what = if matches!(ct.content, Content::Empty) {
                                        "empty"
                                    } else {
                                        "element-only"
                                    };
                                    self.error("text_not_allowed", line, column, format!("text {shown} is not allowed: type {} has {what} content", comps.type_name(type_id)));
                                }
                                false
                            }
                        }
                    }
                    None => false,
                };
                if keep && let Some(f) = self.stack.last_mut() {
                    if f.text.len() + t.len() > self.opts.limits.max_text_len {
                        self.error(
                            "xml_limit_exceeded",
                            line,
                            column,
                            format!(
                                "text content exceeds {} bytes",
                                self.opts.limits.max_text_len
                            ),
                        );
                        return;
                    }
                    f.text.push_str(t);
                }
            }
            Mode::Skip | Mode::Lax => {}
        }
    }

    /// An end tag: capture paths take the element's text; a typed element's content is
    /// checked (model complete, value valid, fixed value kept); identity constraints see the
    /// value; the frame is popped and kept for reuse. `end_at`: position of the end tag,
    /// where missing content is reported.
    fn end<R: BufRead>(&mut self, reader: &XmlReader<R>, end_at: (u64, u64)) {
        if self.stack.is_empty() {
            return;
        }
        self.record_captures();
        // Filled in place: the typed value is large, and each function it is returned
        // through copies it (measured).
        let mut value: Option<KeyValue> = None;
        let is_nil = self.end_typed(reader, end_at, &mut value);
        if self.idc.is_active() {
            let errs = self.idc.end_element(value, is_nil);
            for e in errs {
                self.error(e.code, e.line, e.column, e.message.clone());
            }
        }
        if let Some(f) = self.stack.pop() {
            self.spare.push(f);
        }
    }

    /// Capture paths that end at this element take its text (the first occurrence only).
    #[inline(always)]
    fn record_captures(&mut self) {
        let Some(f) = self.stack.last() else { return };
        let depth = self.stack.len();
        for ((m, path), got) in self
            .cap_match
            .iter_mut()
            .zip(&self.opts.capture)
            .zip(self.report.captured.iter_mut())
        {
            if *m == depth {
                if depth == path.len() && got.is_none() {
                    *got = Some(f.text.trim().chars().take(CAPTURE_MAX).collect());
                }
                *m = depth - 1;
            }
        }
    }

    /// The content checks of a typed element that is not nil; its typed value goes to
    /// `value` when identity constraints or a fixed value need it. Returns whether the
    /// element is nil.
    #[inline(always)]
    fn end_typed<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        end_at: (u64, u64),
        value: &mut Option<KeyValue>,
    ) -> bool {
        let Some(f) = self.stack.last() else {
            return false;
        };
        let Mode::Typed {
            elem,
            type_id,
            state,
            nil,
        } = f.mode
        else {
            return false;
        };
        let (line, column) = (f.line, f.column);
        let comps = self.comps();
        let display = f.name.clone();
        let has_children = f.has_children;
        let text = self
            .stack
            .last_mut()
            .map(|f| std::mem::take(&mut f.text))
            .unwrap_or_default();
        let decl = elem.map(|e| &comps.elements[e]);
        if !nil {
            self.check_model_complete(type_id, state, &display, end_at);
            let constraint = decl.and_then(|d| d.constraint.clone());
            if let Some(st) = simple_content_type(comps, type_id) {
                let lexical: &str = if text.is_empty() && !has_children {
                    constraint.as_ref().map_or("", |c| c.lexical.as_str())
                } else {
                    &text
                };
                let ns = Ns(reader);
                // The typed value is built only when a field of an identity constraint
                // waits for it or a fixed value must be compared.
                let want = self.idc.value_pending() || constraint.as_ref().is_some_and(|c| c.fixed);
                *value = self.check_value(
                    &st,
                    lexical,
                    &ns,
                    line,
                    column,
                    &|| format!("content of <{display}>"),
                    "value_invalid",
                    want,
                    self.stack.last().is_some_and(|f| f.sensitive),
                );
                if let (Some(c), Some(v)) = (constraint.as_ref().filter(|c| c.fixed), &*value)
                    && c.value.as_ref() != Some(&v.value)
                {
                    self.error(
                        "value_fixed",
                        line,
                        column,
                        format!(
                            "<{display}> must be {}, found {}",
                            quote_value(&c.lexical),
                            self.shown(lexical, None)
                        ),
                    );
                }
            } else if let Some(c) = constraint.as_ref().filter(|c| c.fixed) {
                self.check_fixed_mixed_content(c, &text, has_children, &display, (line, column));
            }
        }
        // Hand the text buffer back to the frame, which is kept for reuse.
        if let Some(f) = self.stack.last_mut() {
            let mut text = text;
            text.clear();
            f.text = text;
        }
        nil
    }

    /// The content model has reached a final state (else the missing elements are named).
    #[inline(always)]
    fn check_model_complete(
        &mut self,
        type_id: TypeId,
        state: Option<u32>,
        display: &str,
        end_at: (u64, u64),
    ) {
        if let Some(s) = state
            && !self.arena.nullable(s)
            && let Some(model) = self.schema.models.get(type_id).and_then(|m| m.clone())
        {
            let expected = self.expected(&model, s);
            self.error(
                "element_incomplete",
                end_at.0,
                end_at.1,
                format!("<{display}> is incomplete: expected {expected} before </{display}>"),
            );
        }
    }

    /// A fixed value on mixed content: no child elements, and the text (if any) equal to it.
    fn check_fixed_mixed_content(
        &mut self,
        c: &ValueConstraint,
        text: &str,
        has_children: bool,
        display: &str,
        (line, column): (u64, u64),
    ) {
        if has_children {
            self.error(
                "value_fixed",
                line,
                column,
                format!("<{display}> has a fixed value and may not contain elements"),
            );
        } else if !text.is_empty() && text != c.lexical {
            self.error(
                "value_fixed",
                line,
                column,
                format!(
                    "<{display}> must be {}, found {}",
                    quote_value(&c.lexical),
                    self.shown(text, None)
                ),
            );
        }
    }

    fn expected(&mut self, model: &Arc<crate::schema::Model>, s: u32) -> String {
        let first = self.arena.first(s);
        let mut names: Vec<String> = Vec::new();
        for &l in first.iter() {
            match model.leaves.get(l as usize) {
                Some(LeafTerm::Element(_)) => {
                    for (n, e) in model
                        .names
                        .get(l as usize)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        if !self.comps().elements[*e].abstract_ {
                            names.push(n.local.clone());
                        }
                    }
                }
                Some(LeafTerm::Wildcard(_)) => names.push(model.describe(self.comps(), l)),
                None => {}
            }
        }
        names.dedup();
        match names.len() {
            0 => String::new(),
            1 => format!("<{}>", names[0]),
            _ => format!("one of {{{}}}", names.join(", ")),
        }
    }

    fn finish(mut self) -> Report {
        if !self.done {
            let refs = std::mem::take(&mut self.idrefs);
            for (r, line, column, path, sensitive) in refs {
                if !self.ids.contains(&r) {
                    let shown = if sensitive {
                        withheld(&r)
                    } else {
                        quote_value(&r)
                    };
                    self.error_at(
                        "idref_unresolved",
                        line,
                        column,
                        path,
                        format!("IDREF {shown} does not match any ID in the document"),
                    );
                }
            }
        }
        self.report
    }
}

/// The simple type an element's text is validated against: its simple type, or its complex
/// type's simple content; `None` for element, mixed or empty content.
fn simple_content_type(comps: &Components, type_id: TypeId) -> Option<Arc<SimpleType>> {
    match comps.types.get(type_id) {
        Some(TypeDef::Simple(s)) => Some(s.st.clone()),
        Some(TypeDef::Complex(ct)) => match &ct.content {
            Content::Simple(st) => Some(st.clone()),
            _ => None,
        },
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(xsd: &str, name: &str) -> Schema {
        let dir = std::env::temp_dir().join(format!("xsd-arena-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.xsd");
        std::fs::write(&path, xsd).unwrap();
        Schema::compile(std::slice::from_ref(&path), &dir).unwrap()
    }

    fn doc(bs: usize, extra: &str) -> String {
        format!("<a>{}{extra}</a>", "<b/>".repeat(bs))
    }

    fn pooled(s: &Schema) -> usize {
        s.arenas.lock().unwrap().len()
    }

    #[test]
    fn automaton_states_are_reused_between_documents_within_a_bound() {
        // A finite maxOccurs makes a state per repetition: a long run of <b> grows the arena.
        let s = compile(
            r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
                 <xs:element name="a"><xs:complexType><xs:sequence>
                   <xs:element name="b" minOccurs="0" maxOccurs="5000"/>
                   <xs:element name="c" minOccurs="0"/>
                 </xs:sequence></xs:complexType></xs:element>
               </xs:schema>"#,
            "pool",
        );
        let opts = Options::default();
        assert_eq!(pooled(&s), 0);
        assert!(s.validate(doc(3, "").as_bytes(), &opts).is_valid());
        assert_eq!(pooled(&s), 1, "the arena is kept");
        // Reused, and outcomes do not depend on what earlier documents built.
        let bad = s.validate(doc(2, "<c/><b/>").as_bytes(), &opts);
        assert!(!bad.is_valid());
        assert!(s.validate(doc(3, "<c/>").as_bytes(), &opts).is_valid());
        assert_eq!(pooled(&s), 1, "taken and given back, not duplicated");
        // A document that makes more states than the bound: valid, and its arena is dropped.
        assert!(
            s.validate(doc(ARENA_KEEP_MAX + 100, "").as_bytes(), &opts)
                .is_valid()
        );
        assert_eq!(
            pooled(&s),
            0,
            "an arena over {ARENA_KEEP_MAX} states is not kept"
        );
        assert!(!s.validate(doc(5001, "").as_bytes(), &opts).is_valid());
    }
}
