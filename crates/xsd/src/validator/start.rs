//! Opening an element: its position among its siblings, what governs it (the parent's content
//! model, a wildcard, or a global declaration at the root), its type (`xsi:type`), `xsi:nil`,
//! and the frame pushed for it. Attributes are checked next, in `attributes`.
//!
//! The steps run for every element and most have one caller: they are `#[inline(always)]`
//! because, split out of one function, the compiler left them out of line and the
//! per-element cost rose (measured with callgrind on bench/schema/records.xsd). Error paths
//! are `#[cold]`.

use std::collections::HashSet;
use std::io::BufRead;
use std::sync::Arc;

use super::{ARENA_COMPACT_AT, Frame, Gov, MAX_TRACKED_CHILD_NAMES, Mode, Run};
use crate::datatypes::quote_value;
use crate::names::{QName, XSI};
use crate::schema::LeafTerm;
use crate::schema::components::*;
use crate::xml::{Attribute, XmlReader};

/// Problems found before the element's frame exists, reported once it is pushed (so that
/// their path ends at the element).
type Deferred = Vec<(&'static str, String)>;

impl Run<'_> {
    /// A start tag: decide what governs the element and its type, push its frame, then check
    /// its attributes (or assess them laxly) and track identity constraints.
    pub(super) fn start<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        name: &QName,
        display: Arc<str>,
        line: u64,
        column: u64,
        attrs: &[Attribute],
    ) {
        if self.stack.is_empty() && self.report.root.is_none() {
            self.report.root = Some(name.clone());
        }
        self.advance_capture_paths(name);
        self.compact_arena_if_large();
        let index = self.sibling_index(&display);
        let Some(gov) = self.governor(name, &display, index, (line, column)) else {
            let msg =
                format!("element <{display}> is not allowed: the parent is nil (xsi:nil=\"true\")");
            self.push_frame(display, index, Mode::Lax, line, column);
            self.error("nil_content", line, column, msg);
            return;
        };
        let xsi_type = attrs
            .iter()
            .find(|a| a.namespace.as_deref() == Some(XSI) && a.local == "type")
            .map(|a| a.value.clone());
        let xsi_nil = attrs
            .iter()
            .find(|a| a.namespace.as_deref() == Some(XSI) && a.local == "nil")
            .map(|a| a.value.clone());
        let mode = match gov {
            Gov::Skip => Mode::Skip,
            Gov::Lax | Gov::Strict => {
                // An xsi:type makes an undeclared element assessable.
                match xsi_type
                    .as_deref()
                    .and_then(|t| self.resolve_type(reader, t))
                {
                    Some(t) => self.typed_mode(None, t, xsi_nil.as_deref(), line, column, &display),
                    None if matches!(gov, Gov::Strict) => {
                        self.start_undeclared(reader, name, display, index, (line, column), attrs);
                        return;
                    }
                    None => Mode::Lax,
                }
            }
            Gov::Decl(e) => {
                let (t, problems) = self.declared_type(reader, e, xsi_type.as_deref());
                let mode = self.typed_mode(Some(e), t, xsi_nil.as_deref(), line, column, &display);
                self.push_frame(display, index, mode, line, column);
                for (code, msg) in problems {
                    self.error(code, line, column, msg);
                }
                self.after_push(reader, Some(e), t, line, column, attrs);
                return;
            }
        };
        let lax = matches!(mode, Mode::Lax);
        let typed = match &mode {
            Mode::Typed { type_id, .. } => Some(*type_id),
            _ => None,
        };
        self.push_frame(display, index, mode, line, column);
        if let Some(t) = typed {
            self.after_push(reader, None, t, line, column, attrs);
        } else {
            if lax {
                self.lax_attributes(reader, attrs);
            }
            self.idc_start(name, &[], line, column);
        }
    }

    /// Capture paths whose steps so far match the open elements move one step on.
    #[inline(always)]
    fn advance_capture_paths(&mut self, name: &QName) {
        let depth = self.stack.len();
        for (m, path) in self.cap_match.iter_mut().zip(&self.opts.capture) {
            if *m == depth && path.get(depth) == Some(name) {
                *m = depth + 1;
            }
        }
    }

    /// Large finite maxOccurs make a new automaton state per repetition; keep only the live
    /// ones so memory stays bounded by depth, not document length.
    #[inline(always)]
    fn compact_arena_if_large(&mut self) {
        if self.arena.len() > ARENA_COMPACT_AT {
            let mut live: Vec<&mut u32> = self
                .stack
                .iter_mut()
                .filter_map(|f| match &mut f.mode {
                    Mode::Typed {
                        state: Some(st), ..
                    } => Some(st),
                    _ => None,
                })
                .collect();
            self.arena.compact(&mut live);
        }
    }

    /// Position among siblings of the same name, for the `[n]` of paths; 0 once too many
    /// distinct names are tracked.
    #[inline(always)]
    fn sibling_index(&mut self, display: &Arc<str>) -> u32 {
        let counts = match self.stack.last_mut() {
            Some(f) => {
                f.has_children = true;
                &mut f.children
            }
            None => &mut self.root_children,
        };
        let tracked = counts.len();
        match counts
            .iter_mut()
            .find(|(n, _)| Arc::ptr_eq(n, display) || **n == **display)
        {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            // Distinct child names are tracked up to a bound (a hostile document may use
            // endless names, e.g. under a skip wildcard); past it, paths omit the `[n]`.
            None if tracked < MAX_TRACKED_CHILD_NAMES => {
                counts.push((display.clone(), 1));
                1
            }
            None => 0,
        }
    }

    /// What governs the new element, from its parent's mode; for a typed parent this advances
    /// the parent's content model. `None` when the parent is nil and may have no children.
    #[inline(always)]
    fn governor(&mut self, name: &QName, display: &str, index: u32, at: (u64, u64)) -> Option<Gov> {
        let comps = self.comps();
        let Some(parent) = self.stack.last() else {
            return Some(match comps.global_elements.get(name) {
                Some(&e) => Gov::Decl(e),
                None => Gov::Strict,
            });
        };
        match &parent.mode {
            Mode::Skip => Some(Gov::Skip),
            Mode::Lax => Some(match comps.global_elements.get(name) {
                Some(&e) => Gov::Decl(e),
                None => Gov::Lax,
            }),
            Mode::Typed { nil: true, .. } => None,
            &Mode::Typed {
                type_id,
                state: Some(s),
                ..
            } => Some(self.governor_in_model(type_id, s, name, display, index, at)),
            &Mode::Typed {
                type_id,
                state: None,
                ..
            } => Some(self.child_not_allowed(type_id, display, at)),
        }
    }

    /// The parent's content model at state `s` accepts `name` (the parent moves on), or the
    /// element is reported unexpected and the model resynchronised where possible.
    #[inline(always)]
    fn governor_in_model(
        &mut self,
        type_id: TypeId,
        s: u32,
        name: &QName,
        display: &str,
        index: u32,
        at: (u64, u64),
    ) -> Gov {
        let model = self.schema.models.get(type_id).and_then(|m| m.clone());
        let Some(model) = model else {
            return Gov::Lax;
        };
        let first = self.arena.first(s);
        match self.match_leaf(&model, &first, name) {
            Some((leaf, g)) => {
                let next = self.arena.deriv(s, leaf);
                self.set_parent_state(next);
                g
            }
            None => self.unexpected_child(&model, s, name, display, index, at),
        }
    }

    #[inline(always)]
    fn set_parent_state(&mut self, next: u32) {
        if let Some(Frame {
            mode: Mode::Typed { state, .. },
            ..
        }) = self.stack.last_mut()
        {
            *state = Some(next);
        }
    }

    /// Reports an element the content model does not accept here. The element may belong
    /// further on, after missing required ones: resume there, so later siblings are not all
    /// reported as unexpected too.
    #[cold]
    fn unexpected_child(
        &mut self,
        model: &Arc<crate::schema::Model>,
        s: u32,
        name: &QName,
        display: &str,
        index: u32,
        (line, column): (u64, u64),
    ) -> Gov {
        let expected = self.expected(model, s);
        let resync = self.resync(model, s, name);
        let msg = if let Some((skipped, ..)) = resync.as_ref().filter(|r| !r.0.is_empty()) {
            format!("missing {} before <{display}>", skipped.join(", "))
        } else if expected.is_empty() {
            format!("element <{display}> is not allowed here: no more elements are expected")
        } else {
            format!("expected {expected}, found <{display}>")
        };
        let path_parent = self.path();
        let path = format!(
            "{path_parent}/{display}{}",
            if index > 1 {
                format!("[{index}]")
            } else {
                String::new()
            }
        );
        self.error_at("element_unexpected", line, column, path, msg);
        match resync {
            Some((_, next, g)) => {
                self.set_parent_state(next);
                g
            }
            None => match self.comps().global_elements.get(name) {
                Some(&e) => Gov::Decl(e),
                None => Gov::Lax,
            },
        }
    }

    /// A child under a parent whose type has empty or simple content.
    #[cold]
    fn child_not_allowed(
        &mut self,
        type_id: TypeId,
        display: &str,
        (line, column): (u64, u64),
    ) -> Gov {
        let comps = self.comps();
        let what = match comps.types.get(type_id) {
            Some(TypeDef::Complex(ct)) if matches!(ct.content, Content::Empty) => "empty content",
            _ => "simple content",
        };
        let msg = format!(
            "element <{display}> is not allowed: type {} has {what}",
            comps.type_name(type_id)
        );
        let path_parent = self.path();
        let path = format!("{path_parent}/{display}");
        self.error_at("element_not_allowed", line, column, path, msg);
        Gov::Lax
    }

    /// An element a strict wildcard (or the root) requires a declaration for, and that has
    /// none: reported, then assessed laxly.
    #[cold]
    fn start_undeclared<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        name: &QName,
        display: Arc<str>,
        index: u32,
        (line, column): (u64, u64),
        attrs: &[Attribute],
    ) {
        let msg = if self.stack.is_empty() {
            format!("no declaration for the root element <{display}> ({name}) in the schema")
        } else {
            format!(
                "no declaration for element <{display}> ({name}), which a strict wildcard requires"
            )
        };
        self.push_frame(display, index, Mode::Lax, line, column);
        self.error("element_undeclared", line, column, msg);
        self.lax_attributes(reader, attrs);
    }

    /// The declared element's type, or the `xsi:type` that replaces it when validly derived
    /// and not blocked; with the problems to report once the frame is pushed.
    #[inline(always)]
    fn declared_type<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        e: ElemId,
        xsi_type: Option<&str>,
    ) -> (TypeId, Deferred) {
        let comps = self.comps();
        let decl = &comps.elements[e];
        let mut t = decl.type_id;
        let mut problems: Deferred = Vec::new();
        if decl.abstract_ {
            problems.push((
                "element_abstract",
                format!(
                    "element {} is abstract; use a member of its substitution group",
                    decl.name
                ),
            ));
        }
        if let Some(xt) = xsi_type {
            match self.resolve_type(reader, xt) {
                Some(x) => {
                    let mut blocked = decl.block;
                    if let Some(ct) = comps.complex(t) {
                        blocked.extension |= ct.block.extension;
                        blocked.restriction |= ct.block.restriction;
                    }
                    if comps.derives_from(x, t, blocked) && !blocked_in_chain(comps, x, t) {
                        t = x;
                    } else {
                        problems.push(("xsi_type_invalid", format!("xsi:type {} is not validly derived from {} (or the derivation is blocked)", comps.type_name(x), comps.type_name(t))));
                    }
                }
                None => problems.push((
                    "xsi_type_invalid",
                    format!(
                        "xsi:type {} does not name a type in the schema",
                        quote_value(xt)
                    ),
                )),
            }
        }
        (t, problems)
    }
    /// The leaf of `first` that accepts `name` (declarations before wildcards), and what then
    /// governs the element.
    fn match_leaf(
        &self,
        model: &crate::schema::Model,
        first: &[u32],
        name: &QName,
    ) -> Option<(u32, Gov)> {
        let comps = self.comps();
        let mut hit: Option<(u32, Gov)> = None;
        for &leaf in first {
            match model.leaves.get(leaf as usize) {
                Some(LeafTerm::Element(_)) => {
                    if let Some((_, e)) = model
                        .names
                        .get(leaf as usize)
                        .and_then(|v| v.iter().find(|(n, _)| n == name))
                    {
                        return Some((leaf, Gov::Decl(*e)));
                    }
                }
                Some(LeafTerm::Wildcard(w)) if hit.is_none() && w.ns.allows(name.ns.as_deref()) => {
                    let g = match (w.process, comps.global_elements.get(name)) {
                        (ProcessContents::Skip, _) => Gov::Skip,
                        (_, Some(&e)) => Gov::Decl(e),
                        (ProcessContents::Lax, None) => Gov::Lax,
                        (ProcessContents::Strict, None) => Gov::Strict,
                    };
                    hit = Some((leaf, g));
                }
                _ => {}
            }
        }
        hit
    }

    /// Looks a few elements ahead of state `s` for a place where `name` fits. Returns the names
    /// of the required elements skipped to get there, the state after `name`, and its governor.
    /// Bounded: at most 4 skipped elements and 256 states explored.
    fn resync(
        &mut self,
        model: &crate::schema::Model,
        s: u32,
        name: &QName,
    ) -> Option<(Vec<String>, u32, Gov)> {
        let mut frontier: Vec<(u32, Vec<u32>)> = vec![(s, Vec::new())];
        let mut seen: HashSet<u32> = HashSet::from([s]);
        for _depth in 0..4 {
            let mut next_frontier = Vec::new();
            for (st, path) in frontier {
                let first = self.arena.first(st);
                for &leaf in first.iter() {
                    let next = self.arena.deriv(st, leaf);
                    if self.arena.is_null(next) || !seen.insert(next) || seen.len() > 256 {
                        continue;
                    }
                    let mut p = path.clone();
                    p.push(leaf);
                    let after = self.arena.first(next);
                    if let Some((hit_leaf, g)) = self.match_leaf(model, &after, name) {
                        let state = self.arena.deriv(next, hit_leaf);
                        let comps = self.comps();
                        let skipped = p
                            .iter()
                            .map(|l| match model.leaves.get(*l as usize) {
                                Some(LeafTerm::Element(e)) => {
                                    format!("<{}>", comps.elements[*e].name.local)
                                }
                                _ => model.describe(comps, *l),
                            })
                            .collect();
                        return Some((skipped, state, g));
                    }
                    next_frontier.push((next, p));
                }
            }
            if next_frontier.is_empty() {
                break;
            }
            frontier = next_frontier;
        }
        None
    }

    /// Pushes the element's frame, reusing a popped one (no allocation per element once warm).
    fn push_frame(&mut self, name: Arc<str>, index: u32, mode: Mode, line: u64, column: u64) {
        let sensitive = self.element_is_sensitive(&name);
        match self.spare.pop() {
            Some(mut f) => {
                f.name = name;
                f.index = index;
                f.mode = mode;
                f.children.clear();
                f.text.clear();
                f.has_children = false;
                f.line = line;
                f.column = column;
                f.sensitive = sensitive;
                self.stack.push(f);
            }
            None => self.stack.push(Frame {
                name,
                index,
                mode,
                children: Vec::new(),
                text: String::new(),
                has_children: false,
                line,
                column,
                sensitive,
            }),
        }
    }

    /// The global type an `xsi:type` value names, resolved with the element's namespace
    /// bindings.
    fn resolve_type<R: BufRead>(&mut self, reader: &XmlReader<R>, lexical: &str) -> Option<TypeId> {
        let v = lexical.trim();
        let (prefix, local) = v.split_once(':').unwrap_or(("", v));
        let ns = reader.lookup_namespace(prefix);
        if !prefix.is_empty() && ns.is_none() {
            return None;
        }
        self.comps()
            .global_types
            .get(&QName::new(ns.filter(|s| !s.is_empty()), local))
            .copied()
    }

    /// The mode of an element validated against type `t`: nil or not, and the start state of
    /// its content model. Reports a bad xsi:nil and an abstract type.
    #[allow(clippy::too_many_arguments)]
    fn typed_mode(
        &mut self,
        elem: Option<ElemId>,
        t: TypeId,
        xsi_nil: Option<&str>,
        line: u64,
        column: u64,
        display: &str,
    ) -> Mode {
        let comps = self.comps();
        let mut errs: Deferred = Vec::new();
        let nil = match xsi_nil {
            Some(v) => self.xsi_nil(elem, v, display, &mut errs),
            None => false,
        };
        if let Some(ct) = comps.complex(t)
            && ct.abstract_
        {
            errs.push((
                "type_abstract",
                format!(
                    "type {} is abstract; give a concrete type with xsi:type",
                    comps.type_name(t)
                ),
            ));
        }
        for (code, msg) in errs {
            self.error_at(
                code,
                line,
                column,
                format!("{}/{display}", self.path()),
                msg,
            );
        }
        let state = match comps.complex(t).map(|c| &c.content) {
            Some(Content::Elements { .. }) => self
                .schema
                .models
                .get(t)
                .and_then(|m| m.clone())
                .map(|m| self.arena.start(t, &m)),
            _ => None,
        };
        Mode::Typed {
            elem,
            type_id: t,
            state,
            nil,
        }
    }

    /// Whether `xsi:nil` value `v` makes the element nil: only a nillable declaration allows
    /// it, and not with a fixed value.
    fn xsi_nil(&self, elem: Option<ElemId>, v: &str, display: &str, errs: &mut Deferred) -> bool {
        let comps = self.comps();
        let b = match v.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        };
        match (b, elem.map(|e| &comps.elements[e])) {
            (None, _) => errs.push((
                "attribute_invalid",
                format!("xsi:nil={} is not a boolean", quote_value(v)),
            )),
            (Some(true), Some(d)) if d.nillable => {
                if d.constraint.as_ref().is_some_and(|c| c.fixed) {
                    errs.push((
                        "nil_not_allowed",
                        format!("element <{display}> has a fixed value and cannot be nil"),
                    ));
                }
                return true;
            }
            (Some(_), Some(d)) if !d.nillable => errs.push((
                "nil_not_allowed",
                format!("element <{display}> is not nillable; remove xsi:nil"),
            )),
            (Some(_), None) => errs.push((
                "nil_not_allowed",
                format!("element <{display}> has no declaration that allows xsi:nil"),
            )),
            _ => {}
        }
        false
    }
}

/// `block` on intermediate types between `derived` and `base` also forbids the substitution.
fn blocked_in_chain(c: &Components, derived: TypeId, base: TypeId) -> bool {
    let mut t = derived;
    let mut guard = 0;
    while t != base && guard < 10_000 {
        guard += 1;
        let Some(def) = c.types.get(t) else {
            return false;
        };
        let next = def.base();
        if let Some(TypeDef::Complex(bct)) = c.types.get(next) {
            let method = match def {
                TypeDef::Complex(ct) => ct.derivation,
                TypeDef::Simple(_) => Derivation::Restriction,
            };
            if (method == Derivation::Extension && bct.block.extension)
                || (method == Derivation::Restriction && bct.block.restriction)
            {
                return true;
            }
        }
        if next == t {
            return false;
        }
        t = next;
    }
    false
}
