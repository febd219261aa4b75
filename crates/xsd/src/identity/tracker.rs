//! Streaming evaluation of identity constraints (XSD 1.0 §3.11.4, §3.11.5).
//!
//! State, all bounded by the open elements plus the stored key-sequences:
//! * `frames`: one per open element from the outermost open scope root down
//!   (names kept in one string arena), each with the node tables
//!   (§3.11.5) built so far for that element;
//! * `scopes`: open constraint scopes (element declaring the constraint);
//! * `targets`: open target nodes (selected by a selector) with field slots;
//! * `pending`: (target, field) slots waiting for the value of an open element.
//!
//! Path matching is a suffix check of the open-element stack, O(steps) per
//! candidate; only scopes/targets that can still reach the current depth are
//! visited, so typical (bounded) paths cost O(1) per element and depth.

use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::sync::Arc;

use super::xpath::max_depth_of;
use super::{IdcDef, IdcError, IdcKind, KeySeqDisplay, Name};

type KeySeq<V> = Box<[V]>;

/// One entry of a node table: the node that owns the key-sequence.
#[derive(Debug, Clone, Copy)]
struct Entry {
    node: u64,
    line: u64,
    /// Depth of the frame whose own qualified node set contributed the entry;
    /// an entry in the table of the frame at depth `d` is "own" iff `owner == d`
    /// (entries only move upwards, so a stale owner is always deeper).
    owner: usize,
    /// Two distinct nodes contributed this key-sequence: it is dropped when
    /// the table is passed to the parent (§3.11.5 "conflicting" entries).
    conflicted: bool,
}

/// The node table of one constraint at one element.
struct Table<V> {
    def: Arc<IdcDef>,
    map: HashMap<KeySeq<V>, Entry>,
    conflicts: Vec<KeySeq<V>>,
}

struct Frame<V> {
    buf_start: usize,
    ns: Option<(usize, usize)>,
    local: (usize, usize),
    pending_start: usize,
    tables: Vec<Table<V>>,
}

struct Scope<V> {
    def: Arc<IdcDef>,
    depth: usize,
    line: u64,
    column: u64,
    /// Greatest relative depth the selector can reach (None = unbounded).
    bound: Option<usize>,
    /// Max of `bound` over the bounded scopes at or below this stack index.
    run_max: usize,
    /// Complete key-sequences of a keyref's qualified node set.
    keyrefs: Vec<(KeySeq<V>, u64, u64)>,
}

#[derive(Debug)]
enum SlotVal<V> {
    Empty,
    Pending,
    Value(V),
    /// Attribute without a typed value.
    NoValue,
    Nil,
    NotSimple,
}

struct Slot<V> {
    count: u32,
    val: SlotVal<V>,
}

struct Target<V> {
    scope: usize,
    depth: usize,
    node: u64,
    line: u64,
    column: u64,
    bound: Option<usize>,
    run_max: usize,
    fields: Vec<Slot<V>>,
}

/// Streaming identity-constraint checker for one document.
pub struct IdcTracker<V> {
    max_entries: usize,
    stored: usize,
    exhausted: bool,
    names: String,
    frames: Vec<Frame<V>>,
    scopes: Vec<Scope<V>>,
    desc_scopes: Vec<usize>,
    targets: Vec<Target<V>>,
    desc_targets: Vec<usize>,
    pending: Vec<(usize, usize)>,
    /// refer name -> number of open keyref scopes referring to it.
    interest: Vec<(Name, usize)>,
    next_node: u64,
    scratch_idx: Vec<usize>,
    scratch_bool: Vec<bool>,
}

fn name_of<'a, V>(names: &'a str, f: &Frame<V>) -> (Option<&'a str>, &'a str) {
    let ns = f.ns.and_then(|(a, b)| names.get(a..b));
    let local = names.get(f.local.0..f.local.1).unwrap_or("");
    (ns, local)
}

fn display_name(n: &Name) -> &str {
    &n.1
}

impl<V> IdcTracker<V>
where
    V: Eq + Hash + Clone + Debug + Display,
{
    /// `max_table_entries` bounds all stored key-sequences together (node
    /// table entries and pending keyref key-sequences).
    pub fn new(max_table_entries: usize) -> Self {
        IdcTracker {
            max_entries: max_table_entries,
            stored: 0,
            exhausted: false,
            names: String::new(),
            frames: Vec::new(),
            scopes: Vec::new(),
            desc_scopes: Vec::new(),
            targets: Vec::new(),
            desc_targets: Vec::new(),
            pending: Vec::new(),
            interest: Vec::new(),
            next_node: 0,
            scratch_idx: Vec::new(),
            scratch_bool: Vec::new(),
        }
    }

    /// True if any constraint scope is open.
    pub fn is_active(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Forget everything (e.g. to reuse the tracker for another document).
    pub fn reset(&mut self) {
        let max = self.max_entries;
        *self = IdcTracker::new(max);
    }

    fn exhaust(&mut self, errors: &mut Vec<IdcError>, line: u64, column: u64) {
        errors.push(IdcError::new(
            "idc_limit_exceeded",
            format!(
                "identity-constraint tables exceed the limit of {} stored key-sequences; identity constraints are no longer checked",
                self.max_entries
            ),
            line,
            column,
        ));
        let max = self.max_entries;
        *self = IdcTracker::new(max);
        self.exhausted = true;
    }

    /// An element starts; `idcs` are the constraints of its declaration.
    pub fn start_element(
        &mut self,
        ns: Option<&str>,
        local: &str,
        attributes: &[(Option<&str>, &str, Option<V>)],
        idcs: &[Arc<IdcDef>],
        line: u64,
        column: u64,
    ) -> Vec<IdcError> {
        if self.exhausted || (self.frames.is_empty() && idcs.is_empty()) {
            return Vec::new();
        }
        let errors = Vec::new();
        let d = self.frames.len();

        // 1. frame
        let buf_start = self.names.len();
        let ns = ns.filter(|s| !s.is_empty());
        let ns_range = ns.map(|s| {
            self.names.push_str(s);
            (buf_start, self.names.len())
        });
        let lstart = self.names.len();
        self.names.push_str(local);
        let node = self.next_node;
        self.next_node = self.next_node.wrapping_add(1);
        self.frames.push(Frame {
            buf_start,
            ns: ns_range,
            local: (lstart, self.names.len()),
            pending_start: self.pending.len(),
            tables: Vec::new(),
        });

        // 2. open the scopes declared here
        for def in idcs {
            let dup = self
                .scopes
                .iter()
                .rev()
                .take_while(|s| s.depth == d)
                .any(|s| s.def.name == def.name);
            if dup {
                continue;
            }
            let bound = max_depth_of(&def.selector.paths);
            let prev_max = self.scopes.last().map_or(0, |s| s.run_max);
            let run_max = match bound {
                Some(b) => prev_max.max(b),
                None => prev_max,
            };
            if bound.is_none() {
                self.desc_scopes.push(self.scopes.len());
            }
            match &def.kind {
                IdcKind::Unique | IdcKind::Key => {
                    if let Some(frame) = self.frames.last_mut()
                        && !frame.tables.iter().any(|t| t.def.name == def.name)
                    {
                        frame.tables.push(Table {
                            def: def.clone(),
                            map: HashMap::new(),
                            conflicts: Vec::new(),
                        });
                    }
                }
                IdcKind::KeyRef { refer } => {
                    if let Some(e) = self.interest.iter_mut().find(|(n, _)| n == refer) {
                        e.1 = e.1.saturating_add(1);
                    } else {
                        self.interest.push((refer.clone(), 1));
                    }
                }
            }
            self.scopes.push(Scope {
                def: def.clone(),
                depth: d,
                line,
                column,
                bound,
                run_max,
                keyrefs: Vec::new(),
            });
        }

        // 3. selectors: which open scopes select this element?
        let mut matched = std::mem::take(&mut self.scratch_idx);
        matched.clear();
        {
            let frames = &self.frames;
            let names = self.names.as_str();
            let check = |s: &Scope<V>| -> bool {
                let base = s.depth;
                let Some(rel) = d.checked_sub(base) else {
                    return false;
                };
                s.def.selector.paths.iter().any(|p| {
                    p.attribute.is_none()
                        && p.matches_element(rel, |r| {
                            frames
                                .get(base.saturating_add(r))
                                .map(|f| name_of(names, f))
                        })
                })
            };
            for (i, s) in self.scopes.iter().enumerate().rev() {
                if d > s.depth.saturating_add(s.run_max) {
                    break;
                }
                if let Some(b) = s.bound
                    && d <= s.depth.saturating_add(b)
                    && check(s)
                {
                    matched.push(i);
                }
            }
            for &i in &self.desc_scopes {
                if let Some(s) = self.scopes.get(i)
                    && check(s)
                {
                    matched.push(i);
                }
            }
        }
        for &si in &matched {
            let Some(s) = self.scopes.get(si) else {
                continue;
            };
            let nfields = s.def.fields.len();
            let mut bound = Some(0usize);
            for f in &s.def.fields {
                bound = match (bound, max_depth_of(&f.paths)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            let prev_max = self.targets.last().map_or(0, |t| t.run_max);
            let run_max = match bound {
                Some(b) => prev_max.max(b),
                None => prev_max,
            };
            if bound.is_none() {
                self.desc_targets.push(self.targets.len());
            }
            let mut fields = Vec::with_capacity(nfields);
            fields.resize_with(nfields, || Slot {
                count: 0,
                val: SlotVal::Empty,
            });
            self.targets.push(Target {
                scope: si,
                depth: d,
                node,
                line,
                column,
                bound,
                run_max,
                fields,
            });
        }

        // 4. fields: which open targets' fields select this element or its attributes?
        matched.clear();
        for (i, t) in self.targets.iter().enumerate().rev() {
            if d > t.depth.saturating_add(t.run_max) {
                break;
            }
            if let Some(b) = t.bound
                && d <= t.depth.saturating_add(b)
            {
                matched.push(i);
            }
        }
        matched.extend(self.desc_targets.iter().copied());
        let mut path_hits = std::mem::take(&mut self.scratch_bool);
        for &ti in &matched {
            self.eval_fields(ti, d, attributes, &mut path_hits);
        }
        self.scratch_bool = path_hits;
        self.scratch_idx = matched;
        errors
    }

    /// Evaluate every field of target `ti` against the element at depth `d`
    /// (the newest frame) and its attributes.
    fn eval_fields(
        &mut self,
        ti: usize,
        d: usize,
        attributes: &[(Option<&str>, &str, Option<V>)],
        hits: &mut Vec<bool>,
    ) {
        let Some(t) = self.targets.get_mut(ti) else {
            return;
        };
        let Some(scope) = self.scopes.get(t.scope) else {
            return;
        };
        let def = &scope.def;
        let base = t.depth;
        let Some(rel) = d.checked_sub(base) else {
            return;
        };
        let frames = &self.frames;
        let names = self.names.as_str();
        let name_at = |r: usize| {
            frames
                .get(base.saturating_add(r))
                .map(|f| name_of(names, f))
        };
        for (fi, field) in def.fields.iter().enumerate() {
            hits.clear();
            let mut elem_sel = false;
            let mut attr_paths = false;
            for p in &field.paths {
                let m = p.matches_element(rel, name_at);
                hits.push(m);
                if m {
                    if p.attribute.is_none() {
                        elem_sel = true;
                    } else {
                        attr_paths = true;
                    }
                }
            }
            let mut selected: u32 = u32::from(elem_sel);
            let mut first_attr: Option<&Option<V>> = None;
            if attr_paths {
                for (ans, alocal, aval) in attributes {
                    let hit = field.paths.iter().zip(hits.iter()).any(|(p, &m)| {
                        m && p
                            .attribute
                            .as_ref()
                            .is_some_and(|test| test.matches(*ans, alocal))
                    });
                    if hit {
                        selected = selected.saturating_add(1);
                        if first_attr.is_none() {
                            first_attr = Some(aval);
                        }
                        if selected > 1 {
                            break;
                        }
                    }
                }
            }
            if selected == 0 {
                continue;
            }
            let Some(slot) = t.fields.get_mut(fi) else {
                continue;
            };
            let prev = slot.count;
            slot.count = slot.count.saturating_add(selected);
            if prev == 0 && selected == 1 {
                if elem_sel {
                    slot.val = SlotVal::Pending;
                    self.pending.push((ti, fi));
                } else {
                    slot.val = match first_attr {
                        Some(Some(v)) => SlotVal::Value(v.clone()),
                        _ => SlotVal::NoValue,
                    };
                }
            } else {
                slot.val = SlotVal::Empty;
            }
        }
    }

    /// Whether a field waits for the value of the innermost open element (otherwise
    /// [`Self::end_element`] ignores the value, and the caller need not build it).
    pub fn value_pending(&self) -> bool {
        self.frames
            .last()
            .is_some_and(|f| f.pending_start < self.pending.len())
    }

    /// The innermost open element ends. `value`: its typed value if it has a
    /// simple type or simple content; `is_nil`: it was `xsi:nil="true"`.
    pub fn end_element(&mut self, value: Option<V>, is_nil: bool) -> Vec<IdcError> {
        if self.exhausted || self.frames.is_empty() {
            return Vec::new();
        }
        let mut errors = Vec::new();
        let d = self.frames.len().saturating_sub(1);
        let pstart = match self.frames.last() {
            Some(f) => f.pending_start,
            None => return errors,
        };

        // 1. deliver this element's value to the fields that selected it
        if pstart < self.pending.len() {
            for (ti, fi) in self.pending.drain(pstart..) {
                if let Some(slot) = self.targets.get_mut(ti).and_then(|t| t.fields.get_mut(fi))
                    && slot.count == 1
                {
                    slot.val = if is_nil {
                        SlotVal::Nil
                    } else {
                        match &value {
                            Some(v) => SlotVal::Value(v.clone()),
                            None => SlotVal::NotSimple,
                        }
                    };
                }
            }
        }

        // 2. close the target nodes that are this element
        while self.targets.last().is_some_and(|t| t.depth == d) {
            let Some(t) = self.targets.pop() else { break };
            if self.desc_targets.last() == Some(&self.targets.len()) {
                self.desc_targets.pop();
            }
            if !self.close_target(t, &mut errors) {
                return errors;
            }
        }

        // 3. close the scopes rooted here (keyrefs are checked now)
        while self.scopes.last().is_some_and(|s| s.depth == d) {
            let Some(s) = self.scopes.pop() else { break };
            if self.desc_scopes.last() == Some(&self.scopes.len()) {
                self.desc_scopes.pop();
            }
            if let IdcKind::KeyRef { refer } = &s.def.kind {
                if let Some(pos) = self.interest.iter().position(|(n, _)| n == refer)
                    && let Some(e) = self.interest.get_mut(pos)
                {
                    e.1 = e.1.saturating_sub(1);
                    if e.1 == 0 {
                        self.interest.swap_remove(pos);
                    }
                }
                self.check_keyrefs(&s, refer, d, &mut errors);
                self.stored = self.stored.saturating_sub(s.keyrefs.len());
            }
        }

        // 4. pass node tables up (only if an open keyref may use them)
        let Some(frame) = self.frames.pop() else {
            return errors;
        };
        self.names.truncate(frame.buf_start);
        for mut table in frame.tables {
            let wanted = !self.frames.is_empty()
                && self
                    .interest
                    .iter()
                    .any(|(n, c)| *c > 0 && *n == table.def.name);
            if !wanted {
                self.stored = self.stored.saturating_sub(table.map.len());
                continue;
            }
            // drop conflicting entries
            for k in std::mem::take(&mut table.conflicts) {
                if table.map.remove(&k).is_some() {
                    self.stored = self.stored.saturating_sub(1);
                }
            }
            self.merge_into_parent(table);
        }
        errors
    }

    /// Finish one target node: build its key-sequence and record it.
    /// Returns false if the tracker became exhausted.
    fn close_target(&mut self, t: Target<V>, errors: &mut Vec<IdcError>) -> bool {
        let Some(scope) = self.scopes.get(t.scope) else {
            return true;
        };
        let def = scope.def.clone();
        let scope_depth = scope.depth;
        let kind = def.kind.word();
        let cname = display_name(&def.name);
        let is_key = matches!(def.kind, IdcKind::Key);
        let mut values = Vec::with_capacity(t.fields.len());
        let mut complete = true;
        for (fi, slot) in t.fields.into_iter().enumerate() {
            let src = def.fields.get(fi).map_or("", |f| f.source.as_str());
            if slot.count > 1 {
                complete = false;
                errors.push(IdcError::new(
                    "idc_field_multiple",
                    format!("field '{src}' of {kind} '{cname}' selects more than one node"),
                    t.line,
                    t.column,
                ));
                continue;
            }
            let missing = match slot.val {
                SlotVal::Value(v) => {
                    values.push(v);
                    continue;
                }
                SlotVal::NotSimple => {
                    complete = false;
                    errors.push(IdcError::new(
                        "idc_field_not_simple",
                        format!(
                            "field '{src}' of {kind} '{cname}' selects an element without simple content"
                        ),
                        t.line,
                        t.column,
                    ));
                    continue;
                }
                SlotVal::Empty | SlotVal::Pending => "selects no node",
                SlotVal::NoValue => "selects an attribute without a typed value",
                SlotVal::Nil => "selects a nil element",
            };
            complete = false;
            if is_key {
                errors.push(IdcError::new(
                    "idc_key_missing",
                    format!("field '{src}' of key '{cname}' {missing}"),
                    t.line,
                    t.column,
                ));
            }
        }
        if !complete {
            return true;
        }
        let ks: KeySeq<V> = values.into_boxed_slice();
        match &def.kind {
            IdcKind::KeyRef { .. } => {
                if let Some(s) = self.scopes.get_mut(t.scope) {
                    s.keyrefs.push((ks, t.line, t.column));
                    self.stored = self.stored.saturating_add(1);
                }
            }
            IdcKind::Unique | IdcKind::Key => {
                let Some(table) = self
                    .frames
                    .get_mut(scope_depth)
                    .and_then(|f| f.tables.iter_mut().find(|tb| tb.def.name == def.name))
                else {
                    return true;
                };
                match table.map.get_mut(&ks) {
                    Some(e) if e.owner == scope_depth => {
                        if e.node != t.node {
                            errors.push(IdcError::new(
                                "idc_duplicate",
                                format!(
                                    "duplicate key value {} for {kind} '{cname}' (first at line {})",
                                    KeySeqDisplay(&ks),
                                    e.line
                                ),
                                t.line,
                                t.column,
                            ));
                        }
                    }
                    Some(e) => {
                        // entry propagated from a descendant's table
                        if e.node != t.node && !e.conflicted {
                            e.conflicted = true;
                            table.conflicts.push(ks.clone());
                        }
                        e.owner = scope_depth;
                        e.node = t.node;
                        e.line = t.line;
                    }
                    None => {
                        table.map.insert(
                            ks,
                            Entry {
                                node: t.node,
                                line: t.line,
                                owner: scope_depth,
                                conflicted: false,
                            },
                        );
                        self.stored = self.stored.saturating_add(1);
                    }
                }
            }
        }
        if self.stored > self.max_entries {
            self.exhaust(errors, t.line, t.column);
            return false;
        }
        true
    }

    fn check_keyrefs(&self, s: &Scope<V>, refer: &Name, d: usize, errors: &mut Vec<IdcError>) {
        if s.keyrefs.is_empty() {
            return;
        }
        let cname = display_name(&s.def.name);
        let rname = display_name(refer);
        let table = self
            .frames
            .get(d)
            .and_then(|f| f.tables.iter().find(|t| t.def.name == *refer));
        let Some(table) = table else {
            errors.push(IdcError::new(
                "idc_refer",
                format!(
                    "keyref '{cname}' refers to '{rname}', which has no node table in scope here (it must be a key or unique declared on this element or a descendant)"
                ),
                s.line,
                s.column,
            ));
            return;
        };
        for (ks, line, column) in &s.keyrefs {
            let ok = table.map.get(ks).is_some_and(|e| !e.conflicted);
            if !ok {
                errors.push(IdcError::new(
                    "idc_keyref_unmatched",
                    format!(
                        "keyref '{cname}' value {} matches no '{rname}' key",
                        KeySeqDisplay(ks)
                    ),
                    *line,
                    *column,
                ));
            }
        }
    }

    /// Merge a finished child table into the parent frame's table for the
    /// same constraint (smaller into larger); entries with equal
    /// key-sequences from distinct nodes become conflicting.
    fn merge_into_parent(&mut self, mut child: Table<V>) {
        let Some(parent) = self.frames.last_mut() else {
            self.stored = self.stored.saturating_sub(child.map.len());
            return;
        };
        let Some(dst) = parent
            .tables
            .iter_mut()
            .find(|t| t.def.name == child.def.name)
        else {
            parent.tables.push(child);
            return;
        };
        if dst.map.len() < child.map.len() {
            std::mem::swap(&mut dst.map, &mut child.map);
            // conflicts recorded on the parent stay with the parent
        }
        let mut removed = 0usize;
        for (k, inc) in child.map.drain() {
            match dst.map.get_mut(&k) {
                Some(e) => {
                    removed = removed.saturating_add(1);
                    if e.node == inc.node {
                        if inc.owner < e.owner {
                            *e = Entry {
                                conflicted: e.conflicted || inc.conflicted,
                                ..inc
                            };
                        } else {
                            e.conflicted = e.conflicted || inc.conflicted;
                        }
                    } else {
                        let was = e.conflicted || inc.conflicted;
                        if inc.owner < e.owner {
                            *e = inc;
                        }
                        e.conflicted = true;
                        if !was {
                            dst.conflicts.push(k);
                        }
                    }
                }
                None => {
                    dst.map.insert(k, inc);
                }
            }
        }
        self.stored = self.stored.saturating_sub(removed);
    }
}
