//! Content models as lazily built automata.
//!
//! A content model compiles once to an expression over its *leaves* (the element and wildcard
//! particles, XSD's "positions"). Matching uses Brzozowski derivatives: the state after a child
//! element is the derivative of the current expression by the leaf that element matched.
//! `maxOccurs` stays a counter inside `Rep` (never unrolled), states are interned, and
//! transitions are cached, so a validator that sees the same shapes again runs off a DFA built
//! on the fly. Unique Particle Attribution is checked by exploring the same automaton with
//! counters clamped (see [`Model::check_upa`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::components::*;
use crate::names::QName;

/// What a leaf matches.
#[derive(Debug, Clone)]
pub enum LeafTerm {
    Element(ElemId),
    Wildcard(Arc<Wildcard>),
}

/// Expression template of a content model (tree form; interned per validator).
#[derive(Debug, Clone)]
enum Rx {
    Empty,
    Leaf(u32),
    Seq(Vec<Rx>),
    Alt(Vec<Rx>),
    Rep(Box<Rx>, u32, Max),
    All {
        members: Vec<u32>,
        required: Vec<u32>,
    },
}

/// A compiled content model.
#[derive(Debug)]
pub struct Model {
    pub leaves: Vec<LeafTerm>,
    /// Per element leaf: the names it accepts (the declaration and allowed substitutes).
    pub names: Vec<Vec<(QName, ElemId)>>,
    template: Rx,
    clamped: Rx,
}

const CLAMP: u32 = 2;

impl Model {
    /// Compiles a particle. `block` lookups decide which substitution-group members apply.
    pub fn compile(c: &Components, p: &Particle) -> Model {
        let mut leaves = Vec::new();
        let template = build(p, &mut leaves, None);
        let clamped = build(p, &mut Vec::new(), Some(CLAMP));
        let names = leaves
            .iter()
            .map(|l| match l {
                LeafTerm::Element(e) => substitutable(c, *e),
                LeafTerm::Wildcard(_) => Vec::new(),
            })
            .collect();
        Model {
            leaves,
            names,
            template,
            clamped,
        }
    }

    /// Leaves whose names overlap in some reachable state: the Unique Particle Attribution
    /// constraint (§3.8.6). Returns a description of the first conflict.
    pub fn check_upa(&self, c: &Components) -> Result<(), String> {
        let mut arena = Arena::default();
        let start = arena.intern_rx(&self.clamped);
        let mut seen: HashSet<Id> = HashSet::new();
        let mut todo = vec![start];
        while let Some(s) = todo.pop() {
            if !seen.insert(s) || seen.len() > 4096 {
                continue;
            }
            let first = arena.first(s);
            for (i, &a) in first.iter().enumerate() {
                for &b in first.iter().skip(i + 1) {
                    if a != b && self.overlap(a, b) {
                        return Err(format!(
                            "content model is ambiguous (Unique Particle Attribution): {} and {} can both match the same element",
                            self.describe(c, a),
                            self.describe(c, b)
                        ));
                    }
                }
                let next = arena.deriv(s, a);
                todo.push(next);
            }
        }
        Ok(())
    }

    fn overlap(&self, a: u32, b: u32) -> bool {
        let (Some(la), Some(lb)) = (self.leaves.get(a as usize), self.leaves.get(b as usize))
        else {
            return false;
        };
        match (la, lb) {
            (LeafTerm::Element(_), LeafTerm::Element(_)) => {
                let na = &self.names[a as usize];
                let nb = &self.names[b as usize];
                na.iter().any(|(n, _)| nb.iter().any(|(m, _)| n == m))
            }
            (LeafTerm::Element(_), LeafTerm::Wildcard(w)) => self.names[a as usize]
                .iter()
                .any(|(n, _)| w.ns.allows(n.ns.as_deref())),
            (LeafTerm::Wildcard(w), LeafTerm::Element(_)) => self.names[b as usize]
                .iter()
                .any(|(n, _)| w.ns.allows(n.ns.as_deref())),
            (LeafTerm::Wildcard(x), LeafTerm::Wildcard(y)) => ns_overlap(&x.ns, &y.ns),
        }
    }

    /// A short description of a leaf for messages.
    pub fn describe(&self, c: &Components, leaf: u32) -> String {
        match self.leaves.get(leaf as usize) {
            Some(LeafTerm::Element(e)) => c
                .elements
                .get(*e)
                .map(|d| d.name.to_string())
                .unwrap_or_default(),
            Some(LeafTerm::Wildcard(w)) => match &w.ns {
                NsConstraint::Any => "any element".to_owned(),
                NsConstraint::Not(n) => format!(
                    "any element not in {}",
                    n.as_deref().unwrap_or("no namespace")
                ),
                NsConstraint::Set(v) => format!(
                    "any element in {{{}}}",
                    v.iter()
                        .map(|n| n.as_deref().unwrap_or("no namespace"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            None => String::new(),
        }
    }

    /// Element Declarations Consistent (§3.8.6): same name, same type.
    pub fn check_edc(&self, c: &Components) -> Result<(), String> {
        let mut seen: HashMap<&QName, TypeId> = HashMap::new();
        // Substitution-group members are checked against their head's type by the
        // substitution-group rules; here only the declarations in the model itself.
        for names in &self.names {
            for (n, e) in names.iter().take(1) {
                let t = c.elements[*e].type_id;
                if let Some(&prev) = seen.get(n) {
                    if prev != t {
                        return Err(format!(
                            "element {n} appears in the content model with two different types ({} and {})",
                            c.type_name(prev),
                            c.type_name(t)
                        ));
                    }
                } else {
                    seen.insert(n, t);
                }
            }
        }
        Ok(())
    }
}

fn ns_overlap(a: &NsConstraint, b: &NsConstraint) -> bool {
    use NsConstraint::*;
    match (a, b) {
        (Any, _) | (_, Any) => true,
        (Not(_), Not(_)) => true,
        (Not(n), Set(s)) | (Set(s), Not(n)) => s.iter().any(|x| x.is_some() && x != n),
        (Set(s), Set(t)) => s.iter().any(|x| t.contains(x)),
    }
}

/// The declarations an element particle accepts: itself and the members of its substitution
/// group, less abstract ones and those its `block` excludes (§3.3.6 "Substitution Group OK").
fn substitutable(c: &Components, e: ElemId) -> Vec<(QName, ElemId)> {
    let Some(head) = c.elements.get(e) else {
        return Vec::new();
    };
    let mut out = vec![(head.name.clone(), e)];
    if head.block.substitution {
        return out;
    }
    for &m in c.substitutes.get(e).map(Vec::as_slice).unwrap_or(&[]) {
        if m == e {
            continue;
        }
        let Some(md) = c.elements.get(m) else {
            continue;
        };
        let mut blocked = head.block;
        if let Some(ct) = c.complex(head.type_id) {
            blocked.extension |= ct.block.extension;
            blocked.restriction |= ct.block.restriction;
        }
        if !c.derives_from(md.type_id, head.type_id, blocked) {
            continue;
        }
        // Intermediate heads' block substitution also stops the chain.
        let mut ok = true;
        let mut cur = md.subst_group;
        let mut guard = 0;
        while let Some(h) = cur {
            guard += 1;
            if h == e || guard > 10_000 {
                break;
            }
            if c.elements[h].block.substitution {
                ok = false;
                break;
            }
            cur = c.elements[h].subst_group;
        }
        if ok {
            out.push((md.name.clone(), m));
        }
    }
    out
}

fn max_ge(a: Max, b: Max) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => x >= y,
    }
}

fn clamp_counts(min: u32, max: Max, k: Option<u32>) -> (u32, Max) {
    match k {
        None => (min, max),
        Some(k) => {
            let m = min.min(k);
            (m, max.map(|x| m + (x - min).min(k)))
        }
    }
}

fn build(p: &Particle, leaves: &mut Vec<LeafTerm>, clamp: Option<u32>) -> Rx {
    let (min, max) = clamp_counts(p.min, p.max, clamp);
    if max == Some(0) {
        return Rx::Empty;
    }
    let inner = match &p.term {
        Term::Element(e) => {
            leaves.push(LeafTerm::Element(*e));
            Rx::Leaf((leaves.len() - 1) as u32)
        }
        Term::Wildcard(w) => {
            leaves.push(LeafTerm::Wildcard(w.clone()));
            Rx::Leaf((leaves.len() - 1) as u32)
        }
        Term::Group(Compositor::Sequence, ch) => {
            Rx::Seq(ch.iter().map(|c| build(c, leaves, clamp)).collect())
        }
        Term::Group(Compositor::Choice, ch) => {
            Rx::Alt(ch.iter().map(|c| build(c, leaves, clamp)).collect())
        }
        Term::Group(Compositor::All, ch) => {
            let mut members = Vec::new();
            let mut required = Vec::new();
            for c in ch {
                if c.max == Some(0) {
                    continue;
                }
                let term = match &c.term {
                    Term::Element(e) => LeafTerm::Element(*e),
                    Term::Wildcard(w) => LeafTerm::Wildcard(w.clone()),
                    Term::Group(..) => continue,
                };
                leaves.push(term);
                let id = (leaves.len() - 1) as u32;
                members.push(id);
                if c.min > 0 {
                    required.push(id);
                }
            }
            Rx::All { members, required }
        }
    };
    if min == 1 && max == Some(1) {
        inner
    } else {
        Rx::Rep(Box::new(inner), min, max)
    }
}

/// Interned expression id.
pub type Id = u32;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Empty,
    Null,
    Leaf(u32),
    Seq(Id, Id),
    Alt(Box<[Id]>),
    Rep(Id, u32, Max),
    All { rem: Box<[u32]>, req: Box<[u32]> },
}

/// Interned states with cached nullability, first sets and transitions. One per validator.
#[derive(Debug, Default)]
pub struct Arena {
    nodes: Vec<Node>,
    nullable: Vec<bool>,
    map: HashMap<Node, Id>,
    /// Per state: its first set, once computed.
    first: Vec<Option<Arc<[u32]>>>,
    /// Per state: transitions by leaf (a state has few leaves, so a short list beats hashing).
    trans: Vec<Vec<(u32, Id)>>,
    starts: HashMap<usize, Id>,
}

const EMPTY: Id = 0;
const NULL: Id = 1;

impl Arena {
    fn init(&mut self) {
        if self.nodes.is_empty() {
            self.intern(Node::Empty);
            self.intern(Node::Null);
        }
    }

    /// Rebuilds the arena with only the states in `live` (and what they refer to), rewriting
    /// the ids in place. Called when a document has made the arena large (big finite
    /// `maxOccurs` make a new state per repetition), so memory stays bounded by depth.
    pub fn compact(&mut self, live: &mut [&mut Id]) {
        let mut fresh = Arena::default();
        fresh.init();
        let mut map: HashMap<Id, Id> = HashMap::new();
        for id in live.iter_mut() {
            **id = self.copy_into(**id, &mut fresh, &mut map, 0);
        }
        *self = fresh;
    }

    fn copy_into(&self, id: Id, fresh: &mut Arena, map: &mut HashMap<Id, Id>, depth: u32) -> Id {
        if let Some(&n) = map.get(&id) {
            return n;
        }
        if depth > 10_000 {
            return NULL;
        }
        let new = match self.nodes.get(id as usize).cloned() {
            None | Some(Node::Null) => NULL,
            Some(Node::Empty) => EMPTY,
            Some(Node::Leaf(l)) => fresh.intern(Node::Leaf(l)),
            Some(Node::Seq(a, b)) => {
                let (a, b) = (
                    self.copy_into(a, fresh, map, depth + 1),
                    self.copy_into(b, fresh, map, depth + 1),
                );
                fresh.intern(Node::Seq(a, b))
            }
            Some(Node::Alt(v)) => {
                let v: Box<[Id]> = v
                    .iter()
                    .map(|x| self.copy_into(*x, fresh, map, depth + 1))
                    .collect();
                fresh.intern(Node::Alt(v))
            }
            Some(Node::Rep(e, min, max)) => {
                let e = self.copy_into(e, fresh, map, depth + 1);
                fresh.intern(Node::Rep(e, min, max))
            }
            Some(n @ Node::All { .. }) => fresh.intern(n),
        };
        map.insert(id, new);
        new
    }

    /// Number of interned states (for memory bounds).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Drops every state; ids handed out before become invalid.
    pub fn clear(&mut self) {
        *self = Arena::default();
    }

    fn intern(&mut self, n: Node) -> Id {
        if let Some(&id) = self.map.get(&n) {
            return id;
        }
        let nullable = match &n {
            Node::Empty => true,
            Node::Null | Node::Leaf(_) => false,
            Node::Seq(a, b) => self.nullable(*a) && self.nullable(*b),
            Node::Alt(v) => v.iter().any(|x| self.nullable(*x)),
            Node::Rep(e, min, _) => *min == 0 || self.nullable(*e),
            Node::All { req, .. } => req.is_empty(),
        };
        let id = self.nodes.len() as Id;
        self.nodes.push(n.clone());
        self.nullable.push(nullable);
        self.first.push(None);
        self.trans.push(Vec::new());
        self.map.insert(n, id);
        id
    }

    /// True when the state accepts the end of the content.
    pub fn nullable(&self, id: Id) -> bool {
        self.nullable.get(id as usize).copied().unwrap_or(false)
    }

    /// True for the dead state.
    pub fn is_null(&self, id: Id) -> bool {
        id == NULL
    }

    /// The start state of a model, interned once per arena (`key` identifies the model).
    pub fn start(&mut self, key: usize, m: &Model) -> Id {
        if let Some(&s) = self.starts.get(&key) {
            return s;
        }
        let s = self.intern_rx(&m.template);
        self.starts.insert(key, s);
        s
    }

    fn intern_rx(&mut self, rx: &Rx) -> Id {
        self.init();
        match rx {
            Rx::Empty => EMPTY,
            Rx::Leaf(l) => self.intern(Node::Leaf(*l)),
            Rx::Seq(v) => {
                let mut acc = EMPTY;
                for x in v.iter().rev() {
                    let id = self.intern_rx(x);
                    acc = self.seq(id, acc);
                }
                acc
            }
            Rx::Alt(v) => {
                let ids: Vec<Id> = v.iter().map(|x| self.intern_rx(x)).collect();
                self.alt(ids)
            }
            Rx::Rep(e, min, max) => {
                let id = self.intern_rx(e);
                self.rep(id, *min, *max)
            }
            Rx::All { members, required } => {
                if members.is_empty() {
                    return EMPTY;
                }
                self.intern(Node::All {
                    rem: members.clone().into(),
                    req: required.clone().into(),
                })
            }
        }
    }

    fn seq(&mut self, a: Id, b: Id) -> Id {
        if a == NULL || b == NULL {
            return NULL;
        }
        if a == EMPTY {
            return b;
        }
        if b == EMPTY {
            return a;
        }
        if let Some(Node::Seq(x, y)) = self.nodes.get(a as usize).cloned() {
            let tail = self.seq(y, b);
            return self.seq(x, tail);
        }
        self.intern(Node::Seq(a, b))
    }

    fn alt(&mut self, ids: Vec<Id>) -> Id {
        let mut flat: Vec<Id> = Vec::with_capacity(ids.len());
        for id in ids {
            match self.nodes.get(id as usize) {
                Some(Node::Null) => {}
                Some(Node::Alt(v)) => flat.extend(v.iter().copied()),
                _ => flat.push(id),
            }
        }
        flat.sort_unstable();
        flat.dedup();
        // Terms that differ only in counters pile up when repetitions nest (e.g.
        // (a+){1,1e8} inside a repeated choice); dropping subsumed terms keeps the state small.
        if flat.len() > 1 {
            let mut keep: Vec<Id> = Vec::with_capacity(flat.len());
            for (i, &x) in flat.iter().enumerate() {
                let redundant = flat.iter().enumerate().any(|(j, &y)| {
                    j != i && self.subsumes(y, x, 0) && (!self.subsumes(x, y, 0) || j < i)
                });
                if !redundant {
                    keep.push(x);
                }
            }
            flat = keep;
        }
        match flat.len() {
            0 => NULL,
            1 => flat[0],
            _ => self.intern(Node::Alt(flat.into())),
        }
    }

    /// True when the language of `a` contains that of `b`, judged structurally: the same shape
    /// with wider counter ranges. Sound, not complete.
    fn subsumes(&self, a: Id, b: Id, depth: u32) -> bool {
        if a == b {
            return true;
        }
        if depth > 32 {
            return false;
        }
        match (self.nodes.get(a as usize), self.nodes.get(b as usize)) {
            (_, Some(Node::Null)) => true,
            (Some(Node::Rep(ea, mina, maxa)), Some(Node::Rep(eb, minb, maxb))) => {
                mina <= minb && max_ge(*maxa, *maxb) && self.subsumes(*ea, *eb, depth + 1)
            }
            (Some(Node::Rep(ea, mina, maxa)), _) => {
                *mina <= 1 && max_ge(*maxa, Some(1)) && self.subsumes(*ea, b, depth + 1)
            }
            (Some(Node::Seq(a1, a2)), Some(Node::Seq(b1, b2))) => {
                self.subsumes(*a1, *b1, depth + 1) && self.subsumes(*a2, *b2, depth + 1)
            }
            (Some(Node::Alt(v)), _) => v.iter().any(|x| self.subsumes(*x, b, depth + 1)),
            _ => false,
        }
    }

    fn rep(&mut self, e: Id, min: u32, max: Max) -> Id {
        if max == Some(0) || e == EMPTY {
            return EMPTY;
        }
        if e == NULL {
            return if min == 0 { EMPTY } else { NULL };
        }
        if min == 1 && max == Some(1) {
            return e;
        }
        // A nullable body makes the minimum irrelevant; normalising it keeps the state space small.
        let min = if self.nullable(e) { 0 } else { min };
        self.intern(Node::Rep(e, min, max))
    }

    /// The leaves that can match the next child element.
    pub fn first(&mut self, id: Id) -> Arc<[u32]> {
        if let Some(Some(f)) = self.first.get(id as usize) {
            return f.clone();
        }
        let mut out: Vec<u32> = Vec::new();
        self.collect_first(id, &mut out, 0);
        out.sort_unstable();
        out.dedup();
        let f: Arc<[u32]> = out.into();
        if let Some(slot) = self.first.get_mut(id as usize) {
            *slot = Some(f.clone());
        }
        f
    }

    fn collect_first(&self, id: Id, out: &mut Vec<u32>, depth: u32) {
        if depth > 10_000 {
            return;
        }
        match self.nodes.get(id as usize) {
            Some(Node::Leaf(l)) => out.push(*l),
            Some(Node::Seq(a, b)) => {
                self.collect_first(*a, out, depth + 1);
                if self.nullable(*a) {
                    self.collect_first(*b, out, depth + 1);
                }
            }
            Some(Node::Alt(v)) => {
                for x in v.iter() {
                    self.collect_first(*x, out, depth + 1);
                }
            }
            Some(Node::Rep(e, _, _)) => self.collect_first(*e, out, depth + 1),
            Some(Node::All { rem, .. }) => out.extend(rem.iter().copied()),
            _ => {}
        }
    }

    /// The state after a child matched `leaf`.
    pub fn deriv(&mut self, id: Id, leaf: u32) -> Id {
        if let Some(&(_, t)) = self
            .trans
            .get(id as usize)
            .and_then(|v| v.iter().find(|(l, _)| *l == leaf))
        {
            return t;
        }
        let t = self.deriv_uncached(id, leaf, 0);
        if let Some(v) = self.trans.get_mut(id as usize) {
            v.push((leaf, t));
        }
        t
    }

    fn deriv_uncached(&mut self, id: Id, leaf: u32, depth: u32) -> Id {
        if depth > 10_000 {
            return NULL;
        }
        let Some(node) = self.nodes.get(id as usize).cloned() else {
            return NULL;
        };
        match node {
            Node::Empty | Node::Null => NULL,
            Node::Leaf(l) => {
                if l == leaf {
                    EMPTY
                } else {
                    NULL
                }
            }
            Node::Seq(a, b) => {
                let da = self.deriv_uncached(a, leaf, depth + 1);
                let left = self.seq(da, b);
                if self.nullable(a) {
                    let db = self.deriv_uncached(b, leaf, depth + 1);
                    self.alt(vec![left, db])
                } else {
                    left
                }
            }
            Node::Alt(v) => {
                let ds: Vec<Id> = v
                    .iter()
                    .map(|x| self.deriv_uncached(*x, leaf, depth + 1))
                    .collect();
                self.alt(ds)
            }
            Node::Rep(e, min, max) => {
                let de = self.deriv_uncached(e, leaf, depth + 1);
                if de == NULL {
                    return NULL;
                }
                let rest = self.rep(e, min.saturating_sub(1), max.map(|m| m.saturating_sub(1)));
                self.seq(de, rest)
            }
            Node::All { rem, req } => {
                if !rem.contains(&leaf) {
                    return NULL;
                }
                let rem: Box<[u32]> = rem.iter().copied().filter(|x| *x != leaf).collect();
                let req: Box<[u32]> = req.iter().copied().filter(|x| *x != leaf).collect();
                if rem.is_empty() {
                    EMPTY
                } else {
                    self.intern(Node::All { rem, req })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u32) -> Rx {
        Rx::Leaf(i)
    }

    fn run(rx: &Rx, input: &[u32]) -> bool {
        let mut a = Arena::default();
        let mut s = a.intern_rx(rx);
        for &l in input {
            s = a.deriv(s, l);
        }
        a.nullable(s)
    }

    #[test]
    fn sequence_with_counters_accepts_exactly_the_counted_repetitions() {
        let rx = Rx::Seq(vec![Rx::Rep(Box::new(leaf(0)), 2, Some(3)), leaf(1)]);
        assert!(run(&rx, &[0, 0, 1]));
        assert!(run(&rx, &[0, 0, 0, 1]));
        assert!(!run(&rx, &[0, 1]));
        assert!(!run(&rx, &[0, 0, 0, 0, 1]));
    }

    #[test]
    fn large_max_occurs_is_a_counter_not_an_unrolled_automaton() {
        let rx = Rx::Rep(Box::new(leaf(0)), 0, Some(1_000_000));
        let mut a = Arena::default();
        let s = a.intern_rx(&rx);
        let s2 = a.deriv(s, 0);
        assert!(a.nullable(s2));
        assert!(a.len() < 10);
    }

    #[test]
    fn compaction_keeps_live_states_and_their_behaviour() {
        // a{0,100000} then b: every a makes a new state; compaction keeps only the live one.
        let rx = Rx::Seq(vec![Rx::Rep(Box::new(leaf(0)), 0, Some(100_000)), leaf(1)]);
        let mut a = Arena::default();
        let mut s = a.intern_rx(&rx);
        for _ in 0..1000 {
            s = a.deriv(s, 0);
        }
        let before = a.len();
        let mut other = a.intern_rx(&Rx::Leaf(7));
        a.compact(&mut [&mut s, &mut other]);
        assert!(
            a.len() < 20 && a.len() < before,
            "{} states after compaction, {before} before",
            a.len()
        );
        let done = a.deriv(s, 1);
        assert!(a.nullable(done));
        assert!(!a.nullable(s));
        let other_done = a.deriv(other, 7);
        assert!(a.nullable(other_done));
    }

    #[test]
    fn all_group_accepts_any_order_once_each() {
        let rx = Rx::All {
            members: vec![0, 1, 2],
            required: vec![0, 1],
        };
        assert!(run(&rx, &[1, 0]));
        assert!(run(&rx, &[2, 1, 0]));
        assert!(!run(&rx, &[0]));
        assert!(!run(&rx, &[0, 0, 1]));
    }

    #[test]
    fn nested_repetition_of_a_choice_counts_iterations() {
        // ((a|b){1,2}){2}
        let inner = Rx::Rep(Box::new(Rx::Alt(vec![leaf(0), leaf(1)])), 1, Some(2));
        let rx = Rx::Rep(Box::new(inner), 2, Some(2));
        assert!(run(&rx, &[0, 1]));
        assert!(run(&rx, &[0, 1, 0, 1]));
        assert!(!run(&rx, &[0]));
        assert!(!run(&rx, &[0, 0, 0, 0, 0]));
    }
}
