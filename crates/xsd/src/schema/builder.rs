//! Builds schema components from the loaded documents (XSD 1.0 Part 1 §3 "XML representation"
//! rules) and checks the constraints on schemas that make a schema invalid.
//!
//! Phase 1 builds every top-level component (lazily following references, with cycle
//! detection). Phase 2 computes each complex type's effective content and attributes from its
//! base, base first, and checks derivations. Phase 3 (in `content`) compiles content models.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::components::*;
use super::document::Node;
use super::loader::Doc;
use super::{Diagnostic, DiagnosticKind};
use crate::datatypes::{self, BuiltinType, FacetKind, RawFacet, SimpleType, Variety};
use crate::identity::{IdcDef, IdcKind};
use crate::names::{QName, XS, XSI};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Element,
    Attribute,
    Type,
    Group,
    AttributeGroup,
    Notation,
}

impl Kind {
    fn of(local: &str) -> Option<Kind> {
        Some(match local {
            "element" => Kind::Element,
            "attribute" => Kind::Attribute,
            "simpleType" | "complexType" => Kind::Type,
            "group" => Kind::Group,
            "attributeGroup" => Kind::AttributeGroup,
            "notation" => Kind::Notation,
            _ => return None,
        })
    }
    fn noun(self) -> &'static str {
        match self {
            Kind::Element => "element",
            Kind::Attribute => "attribute",
            Kind::Type => "type",
            Kind::Group => "group",
            Kind::AttributeGroup => "attribute group",
            Kind::Notation => "notation",
        }
    }
}

#[derive(Clone)]
struct Def<'a> {
    node: &'a Node,
    doc: usize,
    /// For a redefinition: its own name and the hidden name its self-references resolve to.
    redefines: Option<(QName, QName)>,
}

/// The attributes a type or group contributes.
#[derive(Clone, Default, Debug)]
struct AttrSet {
    uses: Vec<AttributeUse>,
    prohibited: Vec<QName>,
    wildcard: Option<Wildcard>,
}

enum RawKind<'a> {
    Simple {
        facets: &'a Node,
        inline: Option<Arc<SimpleType>>,
    },
    Complex {
        mixed: bool,
        particle: Option<Particle>,
    },
}

struct RawComplex<'a> {
    kind: RawKind<'a>,
    attrs: AttrSet,
    doc: usize,
    node: &'a Node,
}

pub struct Builder<'a> {
    docs: &'a [Doc],
    table: HashMap<(Kind, QName), Def<'a>>,
    /// Number of redefinitions, to give each original a distinct hidden name.
    redefine_count: usize,
    /// While building a redefinition, self-references go to the original.
    self_ref: Option<(Kind, QName, QName)>,
    pub c: Components,
    pub diags: Vec<Diagnostic>,
    type_memo: HashMap<QName, TypeId>,
    building: HashSet<(Kind, QName)>,
    elem_memo: HashMap<QName, ElemId>,
    attr_memo: HashMap<QName, AttrId>,
    group_memo: HashMap<QName, Option<Particle>>,
    agroup_memo: HashMap<QName, AttrSet>,
    raw: HashMap<TypeId, RawComplex<'a>>,
    finalizing: HashSet<TypeId>,
    pending_elem_values: Vec<(ElemId, &'a Node, usize)>,
    idcs: HashMap<QName, Arc<IdcDef>>,
    keyrefs: Vec<(Arc<IdcDef>, &'a Node, usize)>,
    st_ids: HashMap<*const SimpleType, TypeId>,
    ids: HashMap<usize, HashSet<String>>,
    redefine_restrictions: Vec<(Kind, QName, QName, usize, &'a Node)>,
}

fn derivation_set(v: Option<&str>, allowed: &[&str]) -> Result<DerivSet, String> {
    let mut s = DerivSet::default();
    let Some(v) = v else { return Ok(s) };
    let v = v.trim();
    if v == "#all" {
        for a in allowed {
            set_flag(&mut s, a);
        }
        return Ok(s);
    }
    for tok in v.split_ascii_whitespace() {
        if !allowed.contains(&tok) {
            return Err(format!(
                "'{tok}' is not one of {{{}}} or #all",
                allowed.join(", ")
            ));
        }
        set_flag(&mut s, tok);
    }
    Ok(s)
}

/// The methods of `allowed` that `v` names (`#all` names them all); other tokens are ignored.
fn derivation_flags(v: Option<&str>, allowed: &[&str]) -> DerivSet {
    let mut s = DerivSet::default();
    for tok in v.unwrap_or("").split_ascii_whitespace() {
        for a in allowed {
            if tok == "#all" || tok == *a {
                set_flag(&mut s, a);
            }
        }
    }
    s
}

fn set_flag(s: &mut DerivSet, tok: &str) {
    match tok {
        "extension" => s.extension = true,
        "restriction" => s.restriction = true,
        "substitution" => s.substitution = true,
        "list" => s.list = true,
        "union" => s.union = true,
        _ => {}
    }
}

fn is_ncname(s: &str) -> bool {
    datatypes::builtin(BuiltinType::NCName)
        .validate(s, &super::document::NsScope::default())
        .is_ok()
        && s == s.trim()
}

impl<'a> Builder<'a> {
    pub fn new(docs: &'a [Doc]) -> Self {
        let mut b = Builder {
            docs,
            table: HashMap::new(),
            redefine_count: 0,
            self_ref: None,
            c: Components::default(),
            diags: Vec::new(),
            type_memo: HashMap::new(),
            building: HashSet::new(),
            elem_memo: HashMap::new(),
            attr_memo: HashMap::new(),
            group_memo: HashMap::new(),
            agroup_memo: HashMap::new(),
            raw: HashMap::new(),
            finalizing: HashSet::new(),
            pending_elem_values: Vec::new(),
            idcs: HashMap::new(),
            keyrefs: Vec::new(),
            st_ids: HashMap::new(),
            ids: HashMap::new(),
            redefine_restrictions: Vec::new(),
        };
        b.register_builtins();
        b
    }

    fn err(&mut self, doc: usize, node: &Node, msg: String) {
        self.diag(DiagnosticKind::Invalid, doc, node, msg);
    }

    fn diag(&mut self, kind: DiagnosticKind, doc: usize, node: &Node, msg: String) {
        let path = self
            .docs
            .get(doc)
            .map(|d| d.ctx.path.as_str())
            .unwrap_or("");
        self.diags
            .push(Diagnostic::new(kind, path, node.line, node.column, msg));
    }

    fn register_builtins(&mut self) {
        let any_wild = Arc::new(Wildcard {
            ns: NsConstraint::Any,
            process: ProcessContents::Lax,
        });
        self.c.types.push(TypeDef::Complex(ComplexTypeDef {
            name: Some(QName::xs("anyType")),
            base: ANY_TYPE,
            derivation: Derivation::Restriction,
            abstract_: false,
            final_: DerivSet::default(),
            block: DerivSet::default(),
            attributes: Vec::new(),
            attribute_wildcard: Some(any_wild.clone()),
            content: Content::Elements {
                particle: Arc::new(Particle {
                    min: 1,
                    max: Some(1),
                    term: Term::Group(
                        Compositor::Sequence,
                        vec![Particle {
                            min: 0,
                            max: None,
                            term: Term::Wildcard(any_wild),
                        }],
                    ),
                }),
                mixed: true,
            },
            source: None,
        }));
        self.type_memo.insert(QName::xs("anyType"), ANY_TYPE);
        let all = [
            BuiltinType::AnySimpleType,
            BuiltinType::String,
            BuiltinType::NormalizedString,
            BuiltinType::Token,
            BuiltinType::Language,
            BuiltinType::Name,
            BuiltinType::NCName,
            BuiltinType::Id,
            BuiltinType::IdRef,
            BuiltinType::IdRefs,
            BuiltinType::Entity,
            BuiltinType::Entities,
            BuiltinType::NmToken,
            BuiltinType::NmTokens,
            BuiltinType::QName,
            BuiltinType::Notation,
            BuiltinType::AnyUri,
            BuiltinType::Boolean,
            BuiltinType::Decimal,
            BuiltinType::Integer,
            BuiltinType::NonPositiveInteger,
            BuiltinType::NegativeInteger,
            BuiltinType::Long,
            BuiltinType::Int,
            BuiltinType::Short,
            BuiltinType::Byte,
            BuiltinType::NonNegativeInteger,
            BuiltinType::UnsignedLong,
            BuiltinType::UnsignedInt,
            BuiltinType::UnsignedShort,
            BuiltinType::UnsignedByte,
            BuiltinType::PositiveInteger,
            BuiltinType::Float,
            BuiltinType::Double,
            BuiltinType::Duration,
            BuiltinType::DateTime,
            BuiltinType::Time,
            BuiltinType::Date,
            BuiltinType::GYearMonth,
            BuiltinType::GYear,
            BuiltinType::GMonthDay,
            BuiltinType::GDay,
            BuiltinType::GMonth,
            BuiltinType::HexBinary,
            BuiltinType::Base64Binary,
        ];
        // Parents come before children in this list, so base ids are known when needed.
        for bt in all {
            let st = datatypes::builtin(bt).clone();
            let base = st
                .base
                .as_ref()
                .and_then(|b| self.st_ids.get(&Arc::as_ptr(b)).copied())
                .unwrap_or(ANY_TYPE);
            let id = self.c.types.len();
            self.st_ids.insert(Arc::as_ptr(&st), id);
            let name = QName::xs(bt.local_name());
            self.c.types.push(TypeDef::Simple(SimpleTypeDef {
                name: Some(name.clone()),
                base,
                st,
                final_: DerivSet::default(),
            }));
            self.type_memo.insert(name.clone(), id);
            self.c.global_types.insert(name, id);
        }
        self.c.global_types.insert(QName::xs("anyType"), ANY_TYPE);
        debug_assert_eq!(
            self.type_memo.get(&QName::xs("anySimpleType")),
            Some(&ANY_SIMPLE_TYPE)
        );
    }

    // ---------------------------------------------------------------- symbol table

    /// Registers every top-level definition of every document, then applies redefinitions.
    pub fn collect(&mut self) {
        let docs = self.docs;
        let mut redefines: Vec<(usize, &'a Node)> = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            self.check_tree(i, &d.root, None);
            for child in d.root.xs_children() {
                if child.local == "redefine" {
                    redefines.push((i, child));
                    continue;
                }
                let Some(kind) = Kind::of(&child.local) else {
                    continue;
                };
                self.register(kind, i, child);
            }
        }
        // Innermost first: a redefined document may itself redefine (documents load outside-in).
        for (i, r) in redefines.into_iter().rev() {
            for child in r.xs_children() {
                let Some(kind) = Kind::of(&child.local) else {
                    continue;
                };
                let Some(name) = child.attr("name") else {
                    self.err(
                        i,
                        child,
                        format!("a redefined <xs:{}> needs a name", child.local),
                    );
                    continue;
                };
                let q = QName::new(docs[i].ctx.tns.as_deref(), name.trim());
                let key = (kind, q.clone());
                let Some(orig) = self.table.remove(&key) else {
                    self.err(i, child, format!("<xs:redefine> redefines {} {q}, which the redefined schema does not define", kind.noun()));
                    continue;
                };
                let hidden = QName {
                    ns: q.ns.clone(),
                    local: format!("{}\u{1}redefined{}", q.local, self.redefine_count),
                };
                self.table.insert((kind, hidden.clone()), orig);
                self.table.insert(
                    key.clone(),
                    Def {
                        node: child,
                        doc: i,
                        redefines: Some((q.clone(), hidden.clone())),
                    },
                );
                self.redefine_count += 1;
                self.check_redefinition(i, child, kind, &q, hidden);
            }
        }
    }

    /// src-redefine 5-7: a redefined type derives from itself; a redefined group or attribute
    /// group refers to itself exactly once, or else restricts the original.
    fn check_redefinition(
        &mut self,
        doc: usize,
        node: &'a Node,
        kind: Kind,
        q: &QName,
        hidden: QName,
    ) {
        match kind {
            Kind::Type => {
                let body = node.xs_children().next();
                let base_holder = match body {
                    Some(b) if b.local == "restriction" => Some(b),
                    Some(b) if b.local == "simpleContent" || b.local == "complexContent" => {
                        b.xs_children().next()
                    }
                    _ => None,
                };
                let base = base_holder
                    .and_then(|b| b.attr("base"))
                    .and_then(|v| self.qname(doc, node, v));
                if base.as_ref() != Some(q) {
                    self.err(
                        doc,
                        node,
                        format!("a redefinition of type {q} must derive from {q} itself"),
                    );
                }
            }
            Kind::Group | Kind::AttributeGroup => {
                let local = if kind == Kind::Group {
                    "group"
                } else {
                    "attributeGroup"
                };
                let refs: Vec<&Node> = collect_refs(node, local, &q.local);
                match refs.as_slice() {
                    [] => self
                        .redefine_restrictions
                        .push((kind, q.clone(), hidden, doc, node)),
                    [one] => {
                        if kind == Kind::Group
                            && (one.attr("minOccurs").is_some_and(|v| v.trim() != "1")
                                || one.attr("maxOccurs").is_some_and(|v| v.trim() != "1"))
                        {
                            self.err(doc, one, format!("the reference to group {q} inside its redefinition must have minOccurs and maxOccurs 1"));
                        }
                    }
                    _ => self.err(
                        doc,
                        node,
                        format!(
                            "a redefinition of {} {q} may refer to the original at most once",
                            kind.noun()
                        ),
                    ),
                }
            }
            _ => {}
        }
    }

    fn check_redefine_restrictions(&mut self) {
        let pending = std::mem::take(&mut self.redefine_restrictions);
        for (kind, q, hidden, doc, node) in pending {
            match kind {
                Kind::Group => {
                    if let (Some(new), Some(orig)) =
                        (self.named_group(&q), self.named_group(&hidden))
                        && let Err(e) = super::restriction::particle_restricts(&self.c, &new, &orig)
                    {
                        self.err(doc, node, format!("the redefinition of group {q} is not a restriction of the original: {e}"));
                    }
                }
                Kind::AttributeGroup => {
                    if let (Some(new), Some(orig)) =
                        (self.named_attr_group(&q), self.named_attr_group(&hidden))
                    {
                        for u in &new.uses {
                            let name = &self.c.attributes[u.decl].name;
                            let in_orig = orig
                                .uses
                                .iter()
                                .any(|o| &self.c.attributes[o.decl].name == name);
                            let by_wild = orig
                                .wildcard
                                .as_ref()
                                .is_some_and(|w| w.ns.allows(name.ns.as_deref()));
                            if !in_orig && !by_wild {
                                let n = name.clone();
                                self.err(doc, node, format!("the redefinition of attribute group {q} adds attribute {n}, which the original does not allow"));
                            }
                        }
                        for o in &orig.uses {
                            let name = &self.c.attributes[o.decl].name;
                            let kept = new
                                .uses
                                .iter()
                                .find(|u| &self.c.attributes[u.decl].name == name);
                            if o.required && !kept.is_some_and(|k| k.required) {
                                let n = name.clone();
                                self.err(doc, node, format!("the redefinition of attribute group {q} drops the required attribute {n}"));
                            }
                        }
                        if let Some(w) = &new.wildcard
                            && !orig
                                .wildcard
                                .as_ref()
                                .is_some_and(|o| wildcard_subset(w, o))
                        {
                            self.err(doc, node, format!("the redefinition of attribute group {q} widens its attribute wildcard"));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn register(&mut self, kind: Kind, doc: usize, node: &'a Node) {
        let Some(name) = node.attr("name") else {
            self.err(
                doc,
                node,
                format!("a top-level <xs:{}> needs a name", node.local),
            );
            return;
        };
        let name = name.trim();
        if !is_ncname(name) {
            self.err(doc, node, format!("'{name}' is not a valid name (NCName)"));
            return;
        }
        let q = QName::new(self.docs[doc].ctx.tns.as_deref(), name);
        if let Some(prev) = self.table.get(&(kind, q.clone())) {
            if !std::ptr::eq(prev.node, node) {
                let line = prev.node.line;
                self.err(
                    doc,
                    node,
                    format!(
                        "{} {q} is defined twice (first at line {line})",
                        kind.noun()
                    ),
                );
            }
            return;
        }
        self.table.insert(
            (kind, q),
            Def {
                node,
                doc,
                redefines: None,
            },
        );
    }

    /// Shape checks of the schema language on every element of a document.
    fn check_tree(&mut self, doc: usize, node: &'a Node, parent: Option<&str>) {
        if node.ns.as_deref() != Some(XS) {
            return;
        }
        if let Some(msg) = super::s4s::check(node, parent) {
            match super::s4s::split_kind(&msg) {
                (true, text) => self.diag(DiagnosticKind::Unsupported, doc, node, text.to_owned()),
                (false, text) => self.err(doc, node, text.to_owned()),
            }
        }
        // `id` attributes are of type xs:ID: unique within the schema document.
        if let Some(id) = node.attr("id")
            && !self
                .ids
                .entry(doc)
                .or_default()
                .insert(id.trim().to_owned())
        {
            self.err(
                doc,
                node,
                format!("id '{}' is used twice in this schema document", id.trim()),
            );
        }
        for c in &node.children {
            self.check_tree(doc, c, Some(&node.local));
        }
    }

    /// Builds every top-level component so that errors in unused ones are found too.
    pub fn build_all(&mut self) {
        let mut keys: Vec<(Kind, QName)> = self.table.keys().cloned().collect();
        keys.sort_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
        for (kind, q) in keys {
            match kind {
                Kind::Element => {
                    self.global_element(&q);
                }
                Kind::Attribute => {
                    self.global_attribute(&q);
                }
                Kind::Type => {
                    self.named_type(&q, None);
                }
                Kind::Group => {
                    self.named_group(&q);
                }
                Kind::AttributeGroup => {
                    self.named_attr_group(&q);
                }
                Kind::Notation => {
                    if let Some(def) = self.table.get(&(kind, q.clone())).cloned()
                        && def.node.attr("public").is_none()
                        && def.node.attr("system").is_none()
                    {
                        self.err(
                            def.doc,
                            def.node,
                            format!("notation {q} needs a public or system identifier"),
                        );
                    }
                    self.c.notations.insert(q);
                }
            }
        }
        // Phase 2: effective content of complex types, base first.
        let ids: Vec<TypeId> = self.raw.keys().copied().collect();
        for id in ids {
            self.finalize(id);
        }
        self.check_element_values();
        self.check_substitution_groups();
        self.check_keyrefs();
        self.check_redefine_restrictions();
    }

    // ---------------------------------------------------------------- references

    fn qname(&mut self, doc: usize, node: &Node, value: &str) -> Option<QName> {
        let v = value.trim();
        let (prefix, local) = match v.split_once(':') {
            Some((p, l)) => (p, l),
            None => ("", v),
        };
        if !is_ncname(local) || (!prefix.is_empty() && !is_ncname(prefix)) {
            self.err(doc, node, format!("'{v}' is not a valid QName"));
            return None;
        }
        let ns = if prefix.is_empty() {
            node.scope.default_ns().map(str::to_owned)
        } else {
            match crate::datatypes::NamespaceContext::lookup(&*node.scope, prefix) {
                Some(u) => Some(u.to_owned()),
                None => {
                    self.err(
                        doc,
                        node,
                        format!("prefix '{prefix}' in '{v}' is not bound to a namespace"),
                    );
                    return None;
                }
            }
        };
        let ctx = &self.docs[doc].ctx;
        // Chameleon inclusion: unqualified references follow the includer's namespace.
        let ns = if ns.is_none() && ctx.chameleon {
            ctx.tns.clone()
        } else {
            ns
        };
        Some(QName {
            ns,
            local: local.to_owned(),
        })
    }

    /// Checks that a reference to namespace `ns` is allowed from document `doc` (src-resolve.4).
    fn check_ns_visible(&mut self, doc: usize, node: &Node, q: &QName) -> bool {
        let d = &self.docs[doc];
        if q.ns == d.ctx.tns || q.ns.as_deref() == Some(XS) {
            return true;
        }
        let imported = d
            .root
            .xs_children()
            .any(|c| c.local == "import" && c.attr("namespace").map(str::trim) == q.ns.as_deref());
        if !imported {
            self.err(
                doc,
                node,
                format!(
                    "{q} is in namespace {} which this schema document does not import",
                    q.ns.as_deref()
                        .map(|n| format!("'{n}'"))
                        .unwrap_or_else(|| "'' (no namespace)".into())
                ),
            );
        }
        imported
    }

    fn redirect(&self, kind: Kind, q: &QName) -> QName {
        if let Some((k, name, hidden)) = &self.self_ref
            && *k == kind
            && name == q
        {
            return hidden.clone();
        }
        q.clone()
    }

    fn type_ref(&mut self, doc: usize, node: &Node, value: &str) -> Option<TypeId> {
        let q = self.qname(doc, node, value)?;
        if !self.check_ns_visible(doc, node, &q) {
            return None;
        }
        let q = self.redirect(Kind::Type, &q);

        self.named_type(&q, Some((doc, node)))
    }

    // ---------------------------------------------------------------- types

    fn named_type(&mut self, q: &QName, from: Option<(usize, &Node)>) -> Option<TypeId> {
        if let Some(&id) = self.type_memo.get(q) {
            return Some(id);
        }
        let Some(def) = self.table.get(&(Kind::Type, q.clone())).cloned() else {
            if let Some((doc, node)) = from {
                self.err(doc, node, format!("type {q} is not defined"));
            }
            return None;
        };
        if !self.building.insert((Kind::Type, q.clone())) {
            let (doc, node) = from.unwrap_or((def.doc, def.node));
            self.err(
                doc,
                node,
                format!("type {q} is defined in terms of itself (circular derivation)"),
            );
            return None;
        }
        let saved = self.self_ref.take();
        if let Some((own, hidden)) = def.redefines.clone() {
            self.self_ref = Some((Kind::Type, own, hidden));
        }
        let id = if def.node.local == "simpleType" {
            self.simple_type(def.doc, def.node, Some(q.clone()))
        } else {
            Some(self.complex_type(def.doc, def.node, Some(q.clone())))
        };
        self.self_ref = saved;
        self.building.remove(&(Kind::Type, q.clone()));
        if let Some(id) = id {
            self.type_memo.insert(q.clone(), id);
            self.c.global_types.insert(q.clone(), id);
        }
        id
    }

    fn simple_type_of(&self, t: TypeId) -> Option<Arc<SimpleType>> {
        match self.c.types.get(t)? {
            TypeDef::Simple(s) => Some(s.st.clone()),
            TypeDef::Complex(_) => None,
        }
    }

    fn push_simple(
        &mut self,
        name: Option<QName>,
        base: TypeId,
        st: SimpleType,
        final_: DerivSet,
    ) -> TypeId {
        let st = Arc::new(st);
        let id = self.c.types.len();
        self.st_ids.insert(Arc::as_ptr(&st), id);
        self.c.types.push(TypeDef::Simple(SimpleTypeDef {
            name,
            base,
            st,
            final_,
        }));
        id
    }

    /// `<xs:simpleType>`: restriction, list or union.
    fn simple_type(&mut self, doc: usize, node: &'a Node, name: Option<QName>) -> Option<TypeId> {
        // finalDefault applies to named simple types; it may also list 'extension', which
        // simple types ignore.
        let fin = if name.is_some() || node.attr("final").is_some() {
            self.deriv_attr(
                doc,
                node,
                "final",
                "finalDefault",
                &["restriction", "list", "union"],
            )
        } else {
            DerivSet::default()
        };
        if name.is_none() && node.attr("name").is_some() {
            self.err(
                doc,
                node,
                "a local <xs:simpleType> may not have a name".into(),
            );
        }
        let label = name.as_ref().map(|q| q.to_string());
        let Some(body) = node.xs_children().next() else {
            self.err(
                doc,
                node,
                "<xs:simpleType> needs a restriction, list or union".into(),
            );
            return None;
        };
        match body.local.as_str() {
            "restriction" => {
                let base_id = match (body.attr("base"), body.child("simpleType")) {
                    (Some(_), Some(_)) => {
                        self.err(doc, body, "a restriction has either a base attribute or a simpleType child, not both".into());
                        return None;
                    }
                    (None, None) => {
                        self.err(
                            doc,
                            body,
                            "a restriction needs a base attribute or a simpleType child".into(),
                        );
                        return None;
                    }
                    (Some(b), None) => self.type_ref(doc, body, b)?,
                    (None, Some(st)) => self.simple_type(doc, st, None)?,
                };
                if base_id == ANY_TYPE {
                    self.err(doc, body, "a simple type cannot restrict xs:anyType".into());
                    return None;
                }
                let Some(base_st) = self.simple_type_of(base_id) else {
                    self.err(
                        doc,
                        body,
                        format!(
                            "the base of a simple type must be simple, but {} is complex",
                            self.c.type_name(base_id)
                        ),
                    );
                    return None;
                };
                if base_id == ANY_SIMPLE_TYPE {
                    self.err(
                        doc,
                        body,
                        "xs:anySimpleType cannot be restricted directly".into(),
                    );
                    return None;
                }
                if self.c.types[base_id].final_set().restriction {
                    self.err(
                        doc,
                        body,
                        format!(
                            "type {} is final for restriction",
                            self.c.type_name(base_id)
                        ),
                    );
                }
                let facets = self.facets(doc, body);
                match SimpleType::restrict(&base_st, label, &facets, &*body.scope) {
                    Ok(st) => Some(self.push_simple(name, base_id, st, fin)),
                    Err(e) => {
                        self.err(doc, body, e.to_string());
                        None
                    }
                }
            }
            "list" => {
                let item_id = match (body.attr("itemType"), body.child("simpleType")) {
                    (Some(_), Some(_)) => {
                        self.err(doc, body, "a list has either an itemType attribute or a simpleType child, not both".into());
                        return None;
                    }
                    (None, None) => {
                        self.err(
                            doc,
                            body,
                            "a list needs an itemType attribute or a simpleType child".into(),
                        );
                        return None;
                    }
                    (Some(b), None) => self.type_ref(doc, body, b)?,
                    (None, Some(st)) => self.simple_type(doc, st, None)?,
                };
                let Some(item) = self.simple_type_of(item_id) else {
                    self.err(
                        doc,
                        body,
                        "the item type of a list must be a simple type".into(),
                    );
                    return None;
                };
                if self.c.types[item_id].final_set().list {
                    self.err(
                        doc,
                        body,
                        format!("type {} is final for list", self.c.type_name(item_id)),
                    );
                }
                match SimpleType::list(&item, label) {
                    Ok(st) => Some(self.push_simple(name, ANY_SIMPLE_TYPE, st, fin)),
                    Err(e) => {
                        self.err(doc, body, e.to_string());
                        None
                    }
                }
            }
            "union" => {
                let mut members = Vec::new();
                let mut ok = true;
                if let Some(list) = body.attr("memberTypes") {
                    for m in list.split_ascii_whitespace() {
                        match self.type_ref(doc, body, m) {
                            Some(id) => members.push(id),
                            None => ok = false,
                        }
                    }
                }
                for st in body.xs_children().filter(|c| c.local == "simpleType") {
                    match self.simple_type(doc, st, None) {
                        Some(id) => members.push(id),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                if members.is_empty() {
                    self.err(doc, body, "a union needs at least one member type".into());
                    return None;
                }
                let mut sts = Vec::new();
                for id in members {
                    let Some(st) = self.simple_type_of(id) else {
                        self.err(
                            doc,
                            body,
                            format!("union member {} is not a simple type", self.c.type_name(id)),
                        );
                        return None;
                    };
                    if self.c.types[id].final_set().union {
                        self.err(
                            doc,
                            body,
                            format!("type {} is final for union", self.c.type_name(id)),
                        );
                    }
                    sts.push(st);
                }
                match SimpleType::union(sts, label) {
                    Ok(st) => Some(self.push_simple(name, ANY_SIMPLE_TYPE, st, fin)),
                    Err(e) => {
                        self.err(doc, body, e.to_string());
                        None
                    }
                }
            }
            other => {
                self.err(
                    doc,
                    body,
                    format!("<xs:{other}> cannot define a simple type"),
                );
                None
            }
        }
    }

    fn facets(&mut self, doc: usize, node: &Node) -> Vec<RawFacet> {
        let mut out = Vec::new();
        for f in node.xs_children() {
            let kind = match f.local.as_str() {
                "length" => FacetKind::Length,
                "minLength" => FacetKind::MinLength,
                "maxLength" => FacetKind::MaxLength,
                "pattern" => FacetKind::Pattern,
                "enumeration" => FacetKind::Enumeration,
                "whiteSpace" => FacetKind::WhiteSpace,
                "maxInclusive" => FacetKind::MaxInclusive,
                "maxExclusive" => FacetKind::MaxExclusive,
                "minInclusive" => FacetKind::MinInclusive,
                "minExclusive" => FacetKind::MinExclusive,
                "totalDigits" => FacetKind::TotalDigits,
                "fractionDigits" => FacetKind::FractionDigits,
                _ => continue,
            };
            let Some(value) = f.attr("value") else {
                self.err(doc, f, format!("<xs:{}> needs a value", f.local));
                continue;
            };
            let fixed = match f.attr("fixed") {
                Some(v) => match self.boolean(doc, f, "fixed", v) {
                    Some(b) => b,
                    None => continue,
                },
                None => false,
            };
            out.push(RawFacet {
                kind,
                value: value.to_owned(),
                fixed,
            });
        }
        out
    }

    fn boolean(&mut self, doc: usize, node: &Node, attr: &str, v: &str) -> Option<bool> {
        match v.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            other => {
                self.err(
                    doc,
                    node,
                    format!("{attr}='{other}' is not a boolean (true, false, 1, 0)"),
                );
                None
            }
        }
    }

    fn bool_attr(&mut self, doc: usize, node: &Node, attr: &str) -> bool {
        match node.attr(attr) {
            Some(v) => self.boolean(doc, node, attr, v).unwrap_or(false),
            None => false,
        }
    }

    /// A `block`/`final` value: the element's own attribute (checked strictly), else the
    /// schema's default (checked once by the shape rules; here only the methods that apply to
    /// this kind of component are kept).
    fn deriv_attr(
        &mut self,
        doc: usize,
        node: &Node,
        attr: &str,
        default_attr: &str,
        allowed: &[&str],
    ) -> DerivSet {
        match node.attr(attr) {
            Some(own) => derivation_set(Some(own), allowed).unwrap_or_else(|e| {
                self.err(doc, node, format!("{attr}: {e}"));
                DerivSet::default()
            }),
            None => derivation_flags(self.docs[doc].root.attr(default_attr), allowed),
        }
    }

    /// `<xs:complexType>`: phase 1 (base, own particle, own attributes).
    fn complex_type(&mut self, doc: usize, node: &'a Node, name: Option<QName>) -> TypeId {
        let id = self.c.types.len();
        let abstract_ = self.bool_attr(doc, node, "abstract");
        let final_ = self.deriv_attr(
            doc,
            node,
            "final",
            "finalDefault",
            &["extension", "restriction"],
        );
        let block = self.deriv_attr(
            doc,
            node,
            "block",
            "blockDefault",
            &["extension", "restriction"],
        );
        if name.is_none()
            && (node.attr("name").is_some()
                || node.attr("abstract").is_some()
                || node.attr("final").is_some()
                || node.attr("block").is_some())
        {
            self.err(
                doc,
                node,
                "a local <xs:complexType> may not have name, abstract, final or block".into(),
            );
        }
        self.c.types.push(TypeDef::Complex(ComplexTypeDef {
            name: name.clone(),
            base: ANY_TYPE,
            derivation: Derivation::Restriction,
            abstract_,
            final_,
            block,
            attributes: Vec::new(),
            attribute_wildcard: None,
            content: Content::Empty,
            source: Some((self.docs[doc].ctx.path.clone(), node.line, node.column)),
        }));
        if let Some(q) = &name {
            self.type_memo.insert(q.clone(), id);
        }
        let mixed_attr = self.bool_attr(doc, node, "mixed");
        let first = node.xs_children().next();
        let (base, derivation, body, raw_kind_is_simple, mixed) = match first {
            Some(c) if c.local == "simpleContent" || c.local == "complexContent" => {
                let Some(d) = c.xs_children().next() else {
                    self.err(
                        doc,
                        c,
                        format!("<xs:{}> needs a restriction or extension", c.local),
                    );
                    return id;
                };
                let derivation = if d.local == "extension" {
                    Derivation::Extension
                } else {
                    Derivation::Restriction
                };
                let base = match d.attr("base") {
                    Some(b) => self.type_ref(doc, d, b).unwrap_or(ANY_TYPE),
                    None => {
                        self.err(doc, d, format!("<xs:{}> needs a base", d.local));
                        ANY_TYPE
                    }
                };
                let mixed = if c.local == "complexContent" {
                    match c.attr("mixed") {
                        Some(v) => self.boolean(doc, c, "mixed", v).unwrap_or(false),
                        None => mixed_attr,
                    }
                } else {
                    if node
                        .attr("mixed")
                        .is_some_and(|v| v.trim() == "true" || v.trim() == "1")
                    {
                        // Allowed by the schema for schemas but meaningless; Xerces and the spec
                        // ignore it for simple content.
                    }
                    false
                };
                (base, derivation, d, c.local == "simpleContent", mixed)
            }
            _ => (ANY_TYPE, Derivation::Restriction, node, false, mixed_attr),
        };
        if let Some(TypeDef::Complex(ct)) = self.c.types.get_mut(id) {
            ct.base = base;
            ct.derivation = derivation;
        }
        // Type references inside the content may now refer back to this type.
        let kind = if raw_kind_is_simple {
            let inline = match body.child("simpleType") {
                Some(st) if derivation == Derivation::Restriction => self
                    .simple_type(doc, st, None)
                    .and_then(|t| self.simple_type_of(t)),
                Some(st) => {
                    self.err(
                        doc,
                        st,
                        "an extension of simple content cannot define a simpleType".into(),
                    );
                    None
                }
                None => None,
            };
            RawKind::Simple {
                facets: body,
                inline,
            }
        } else {
            let particle = body
                .xs_children()
                .find(|c| matches!(c.local.as_str(), "group" | "all" | "choice" | "sequence"))
                .and_then(|p| self.particle(doc, p, true));
            RawKind::Complex { mixed, particle }
        };
        let attrs = self.attr_set(doc, body);
        self.raw.insert(
            id,
            RawComplex {
                kind,
                attrs,
                doc,
                node: body,
            },
        );
        id
    }

    // ---------------------------------------------------------------- particles

    fn occurs(&mut self, doc: usize, node: &Node) -> Option<(u32, Max)> {
        let parse = |s: &str| -> Option<u32> {
            let s = s.trim();
            let s = s.strip_prefix('+').unwrap_or(s);
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(
                s.parse::<u64>()
                    .map(|v| v.min(u64::from(u32::MAX)) as u32)
                    .unwrap_or(u32::MAX),
            )
        };
        let min = match node.attr("minOccurs") {
            Some(v) => match parse(v) {
                Some(n) => n,
                None => {
                    self.err(
                        doc,
                        node,
                        format!("minOccurs='{v}' is not a non-negative integer"),
                    );
                    return None;
                }
            },
            None => 1,
        };
        let max = match node.attr("maxOccurs") {
            Some(v) if v.trim() == "unbounded" => None,
            Some(v) => match parse(v) {
                Some(n) => Some(n),
                None => {
                    self.err(
                        doc,
                        node,
                        format!("maxOccurs='{v}' is not a non-negative integer or 'unbounded'"),
                    );
                    return None;
                }
            },
            None => Some(1),
        };
        if let Some(m) = max
            && min > m
        {
            self.err(
                doc,
                node,
                format!("minOccurs ({min}) is greater than maxOccurs ({m})"),
            );
            return None;
        }
        Some((min, max))
    }

    /// A particle: element, group reference, compositor or wildcard. `top` is true for the
    /// content model's outermost particle (where `xs:all` may appear).
    fn particle(&mut self, doc: usize, node: &'a Node, top: bool) -> Option<Particle> {
        let (min, max) = self.occurs(doc, node)?;
        match node.local.as_str() {
            "element" => {
                let term = if let Some(r) = node.attr("ref") {
                    for a in [
                        "name", "type", "nillable", "default", "fixed", "form", "block",
                    ] {
                        if node.attr(a).is_some() {
                            self.err(
                                doc,
                                node,
                                format!("an element reference cannot have the attribute '{a}'"),
                            );
                        }
                    }
                    if node.xs_children().next().is_some() {
                        self.err(
                            doc,
                            node,
                            "an element reference cannot have a type or identity constraints"
                                .into(),
                        );
                    }
                    let q = self.qname(doc, node, r)?;
                    if !self.check_ns_visible(doc, node, &q) {
                        return None;
                    }
                    match self.global_element(&q) {
                        Some(e) => Term::Element(e),
                        None => {
                            self.err(doc, node, format!("element {q} is not declared"));
                            return None;
                        }
                    }
                } else {
                    Term::Element(self.element_decl(doc, node, false)?)
                };
                Some(Particle { min, max, term })
            }
            "any" => Some(Particle {
                min,
                max,
                term: Term::Wildcard(Arc::new(self.wildcard(doc, node))),
            }),
            "group" => {
                let Some(r) = node.attr("ref") else {
                    self.err(doc, node, "a local <xs:group> needs a ref".into());
                    return None;
                };
                let q = self.qname(doc, node, r)?;
                if !self.check_ns_visible(doc, node, &q) {
                    return None;
                }
                let q = self.redirect(Kind::Group, &q);
                let p = match self.named_group(&q) {
                    Some(p) => p,
                    None => {
                        if !self.table.contains_key(&(Kind::Group, q.clone())) {
                            self.err(doc, node, format!("group {q} is not defined"));
                        }
                        return None;
                    }
                };
                if let Term::Group(Compositor::All, _) = p.term
                    && (!top || min > 1 || max != Some(1))
                {
                    self.err(doc, node, "a group whose content is xs:all must be the whole content model, with maxOccurs 1".into());
                }
                Some(Particle {
                    min,
                    max,
                    term: p.term,
                })
            }
            "all" | "choice" | "sequence" => {
                let comp = match node.local.as_str() {
                    "all" => Compositor::All,
                    "choice" => Compositor::Choice,
                    _ => Compositor::Sequence,
                };
                if comp == Compositor::All {
                    if !top {
                        self.err(
                            doc,
                            node,
                            "xs:all may only be the whole content model of a type or group".into(),
                        );
                    }
                    if min > 1 || max != Some(1) {
                        self.err(
                            doc,
                            node,
                            "xs:all must have minOccurs 0 or 1 and maxOccurs 1".into(),
                        );
                    }
                }
                let mut children = Vec::new();
                for c in node.xs_children() {
                    if let Some(p) = self.particle(doc, c, false) {
                        if comp == Compositor::All && (p.max.is_none_or(|m| m > 1)) {
                            self.err(
                                doc,
                                c,
                                "elements inside xs:all must have maxOccurs 0 or 1".into(),
                            );
                        }
                        children.push(p);
                    }
                }
                Some(Particle {
                    min,
                    max,
                    term: Term::Group(comp, children),
                })
            }
            other => {
                self.err(doc, node, format!("<xs:{other}> is not a particle"));
                None
            }
        }
    }

    fn named_group(&mut self, q: &QName) -> Option<Particle> {
        if let Some(p) = self.group_memo.get(q) {
            return p.clone();
        }
        let def = self.table.get(&(Kind::Group, q.clone())).cloned()?;
        if !self.building.insert((Kind::Group, q.clone())) {
            self.err(
                def.doc,
                def.node,
                format!("group {q} refers to itself (circular group definition)"),
            );
            return None;
        }
        let saved = self.self_ref.take();
        if let Some((own, hidden)) = def.redefines.clone() {
            self.self_ref = Some((Kind::Group, own, hidden));
        }
        let body = def.node.xs_children().next();
        let p = match body {
            Some(b) if matches!(b.local.as_str(), "all" | "choice" | "sequence") => {
                if b.attr("minOccurs").is_some() || b.attr("maxOccurs").is_some() {
                    self.err(
                        def.doc,
                        b,
                        "the model group of a named group cannot have minOccurs or maxOccurs"
                            .into(),
                    );
                }
                self.particle(def.doc, b, true).map(|mut p| {
                    p.min = 1;
                    p.max = Some(1);
                    p
                })
            }
            _ => {
                self.err(
                    def.doc,
                    def.node,
                    format!("group {q} needs one of xs:all, xs:choice, xs:sequence"),
                );
                None
            }
        };
        self.self_ref = saved;
        self.building.remove(&(Kind::Group, q.clone()));
        self.group_memo.insert(q.clone(), p.clone());
        p
    }

    fn wildcard(&mut self, doc: usize, node: &Node) -> Wildcard {
        let tns = self.docs[doc].ctx.tns.clone();
        let ns = match node.attr("namespace").map(str::trim) {
            None | Some("##any") => NsConstraint::Any,
            Some("##other") => NsConstraint::Not(tns.clone()),
            Some(list) => {
                let mut v: Vec<Option<String>> = Vec::new();
                for tok in list.split_ascii_whitespace() {
                    let item = match tok {
                        "##targetNamespace" => tns.clone(),
                        "##local" => None,
                        t if t.starts_with("##") => {
                            self.err(
                                doc,
                                node,
                                format!("'{t}' is not allowed in a namespace list"),
                            );
                            continue;
                        }
                        t => Some(t.to_owned()),
                    };
                    if !v.contains(&item) {
                        v.push(item);
                    }
                }
                NsConstraint::Set(v)
            }
        };
        let process = match node.attr("processContents").map(str::trim) {
            None | Some("strict") => ProcessContents::Strict,
            Some("lax") => ProcessContents::Lax,
            Some("skip") => ProcessContents::Skip,
            Some(other) => {
                self.err(
                    doc,
                    node,
                    format!("processContents='{other}' is not strict, lax or skip"),
                );
                ProcessContents::Strict
            }
        };
        Wildcard { ns, process }
    }

    // ---------------------------------------------------------------- elements

    fn global_element(&mut self, q: &QName) -> Option<ElemId> {
        if let Some(&id) = self.elem_memo.get(q) {
            return Some(id);
        }
        let def = self.table.get(&(Kind::Element, q.clone())).cloned()?;
        self.element_decl(def.doc, def.node, true)
    }

    fn element_decl(&mut self, doc: usize, node: &'a Node, global: bool) -> Option<ElemId> {
        let Some(name) = node.attr("name").map(str::trim) else {
            self.err(
                doc,
                node,
                "an element declaration needs a name (or a ref)".into(),
            );
            return None;
        };
        if !is_ncname(name) {
            self.err(doc, node, format!("'{name}' is not a valid element name"));
            return None;
        }
        let ctx = &self.docs[doc].ctx;
        let qualified = if global {
            true
        } else {
            match node.attr("form").map(str::trim) {
                Some("qualified") => true,
                Some("unqualified") => false,
                Some(other) => {
                    let other = other.to_owned();
                    self.err(
                        doc,
                        node,
                        format!("form='{other}' is not qualified or unqualified"),
                    );
                    false
                }
                None => ctx.element_qualified,
            }
        };
        let qname = QName::new(if qualified { ctx.tns.as_deref() } else { None }, name);
        if !global {
            for a in ["substitutionGroup", "final", "abstract"] {
                if node.attr(a).is_some() {
                    self.err(
                        doc,
                        node,
                        format!("a local element declaration cannot have '{a}'"),
                    );
                }
            }
        } else if node.attr("form").is_some()
            || node.attr("minOccurs").is_some()
            || node.attr("maxOccurs").is_some()
            || node.attr("ref").is_some()
        {
            self.err(
                doc,
                node,
                "a top-level element declaration cannot have form, minOccurs, maxOccurs or ref"
                    .into(),
            );
        }
        let id = self.c.elements.len();
        let block = self.deriv_attr(
            doc,
            node,
            "block",
            "blockDefault",
            &["extension", "restriction", "substitution"],
        );
        let final_ = if global {
            self.deriv_attr(
                doc,
                node,
                "final",
                "finalDefault",
                &["extension", "restriction"],
            )
        } else {
            DerivSet::default()
        };
        let nillable = self.bool_attr(doc, node, "nillable");
        let abstract_ = self.bool_attr(doc, node, "abstract");
        self.c.elements.push(ElementDecl {
            name: qname.clone(),
            type_id: ANY_TYPE,
            nillable,
            constraint: None,
            abstract_,
            block,
            final_,
            subst_group: None,
            idcs: Vec::new(),
            global,
        });
        self.c.substitutes.push(vec![id]);
        if global {
            self.elem_memo.insert(qname.clone(), id);
            self.c.global_elements.insert(qname.clone(), id);
        }
        let anon = node
            .xs_children()
            .find(|c| c.local == "simpleType" || c.local == "complexType");
        if node.attr("type").is_some() && anon.is_some() {
            self.err(
                doc,
                node,
                "an element declaration has either a type attribute or an anonymous type, not both"
                    .into(),
            );
        }
        let head = if global {
            match node.attr("substitutionGroup") {
                Some(h) => {
                    let hq = self.qname(doc, node, h);
                    match hq {
                        Some(hq) if self.check_ns_visible(doc, node, &hq) => {
                            if !self.building.insert((Kind::Element, qname.clone())) {
                                None
                            } else {
                                let r = self.global_element(&hq);
                                self.building.remove(&(Kind::Element, qname.clone()));
                                if r.is_none()
                                    && !self.table.contains_key(&(Kind::Element, hq.clone()))
                                {
                                    self.err(
                                        doc,
                                        node,
                                        format!("substitution group head {hq} is not declared"),
                                    );
                                }
                                r
                            }
                        }
                        _ => None,
                    }
                }
                None => None,
            }
        } else {
            None
        };
        let type_id = if let Some(t) = node.attr("type") {
            self.type_ref(doc, node, t).unwrap_or(ANY_TYPE)
        } else if let Some(a) = anon {
            if a.local == "simpleType" {
                self.simple_type(doc, a, None).unwrap_or(ANY_TYPE)
            } else {
                self.complex_type(doc, a, None)
            }
        } else if let Some(h) = head {
            self.c.elements[h].type_id
        } else {
            ANY_TYPE
        };
        if let Some(e) = self.c.elements.get_mut(id) {
            e.type_id = type_id;
            e.subst_group = head;
        }
        match (node.attr("default"), node.attr("fixed")) {
            (Some(_), Some(_)) => self.err(
                doc,
                node,
                "an element cannot have both default and fixed".into(),
            ),
            (Some(_), None) | (None, Some(_)) => self.pending_elem_values.push((id, node, doc)),
            _ => {}
        }
        // Identity constraints.
        for c in node
            .xs_children()
            .filter(|c| matches!(c.local.as_str(), "unique" | "key" | "keyref"))
        {
            if let Some(idc) = self.identity_constraint(doc, c) {
                self.c.elements[id].idcs.push(idc);
            }
        }
        Some(id)
    }

    fn identity_constraint(&mut self, doc: usize, node: &'a Node) -> Option<Arc<IdcDef>> {
        let name = node.attr("name")?.trim();
        let q = QName::new(self.docs[doc].ctx.tns.as_deref(), name);
        let kind = match node.local.as_str() {
            "unique" => IdcKind::Unique,
            "key" => IdcKind::Key,
            _ => {
                let Some(r) = node.attr("refer") else {
                    self.err(doc, node, "a keyref needs a refer attribute".into());
                    return None;
                };
                let rq = self.qname(doc, node, r)?;
                IdcKind::KeyRef {
                    refer: (rq.ns, rq.local),
                }
            }
        };
        let selector = node
            .child("selector")
            .and_then(|s| s.attr("xpath"))
            .unwrap_or("");
        let fields: Vec<&str> = node
            .xs_children()
            .filter(|c| c.local == "field")
            .filter_map(|f| f.attr("xpath"))
            .collect();
        let scope = node.scope.clone();
        let resolve =
            |p: &str| crate::datatypes::NamespaceContext::lookup(&*scope, p).map(str::to_owned);
        match IdcDef::compile(
            (q.ns.clone(), q.local.clone()),
            kind,
            selector,
            &fields,
            &resolve,
        ) {
            Ok(def) => {
                let def = Arc::new(def);
                if self.idcs.insert(q.clone(), def.clone()).is_some() {
                    self.err(
                        doc,
                        node,
                        format!("identity constraint {q} is defined twice"),
                    );
                }
                if matches!(def.kind, IdcKind::KeyRef { .. }) {
                    self.keyrefs.push((def.clone(), node, doc));
                }
                Some(def)
            }
            Err(e) => {
                self.err(doc, node, e.to_string());
                None
            }
        }
    }

    fn check_keyrefs(&mut self) {
        let keyrefs = std::mem::take(&mut self.keyrefs);
        for (def, node, doc) in keyrefs {
            if let IdcKind::KeyRef { refer } = &def.kind {
                let rq = QName {
                    ns: refer.0.clone(),
                    local: refer.1.clone(),
                };
                match self.idcs.get(&rq) {
                    None => self.err(
                        doc,
                        node,
                        format!("keyref refers to {rq}, which is not a key or unique constraint"),
                    ),
                    Some(k) if matches!(k.kind, IdcKind::KeyRef { .. }) => self.err(
                        doc,
                        node,
                        format!("keyref refers to {rq}, which is a keyref, not a key or unique"),
                    ),
                    Some(k) if k.fields.len() != def.fields.len() => self.err(
                        doc,
                        node,
                        format!(
                            "keyref has {} fields but {rq} has {}",
                            def.fields.len(),
                            k.fields.len()
                        ),
                    ),
                    _ => {}
                }
            }
        }
    }

    fn check_element_values(&mut self) {
        let pending = std::mem::take(&mut self.pending_elem_values);
        for (id, node, doc) in pending {
            let (fixed, lexical) = match (node.attr("default"), node.attr("fixed")) {
                (_, Some(f)) => (true, f),
                (Some(d), None) => (false, d),
                _ => continue,
            };
            let t = self.c.elements[id].type_id;
            let st = match self.c.types.get(t) {
                Some(TypeDef::Simple(s)) => Some(s.st.clone()),
                Some(TypeDef::Complex(c)) => match &c.content {
                    Content::Simple(st) => Some(st.clone()),
                    Content::Elements {
                        particle,
                        mixed: true,
                    } if particle.emptiable() => None,
                    _ => {
                        self.err(doc, node, "only elements with simple or mixed (emptiable) content can have a default or fixed value".into());
                        continue;
                    }
                },
                None => continue,
            };
            let value = match &st {
                Some(st) => {
                    if st.id_kind() == Some(datatypes::IdKind::Id) {
                        self.err(
                            doc,
                            node,
                            "an element of type xs:ID cannot have a default or fixed value".into(),
                        );
                        continue;
                    }
                    match st.validate(lexical, &*node.scope) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            self.err(
                                doc,
                                node,
                                format!(
                                    "the {} value is not valid for the element's type: {e}",
                                    if fixed { "fixed" } else { "default" }
                                ),
                            );
                            continue;
                        }
                    }
                }
                None => None,
            };
            self.c.elements[id].constraint = Some(ValueConstraint {
                fixed,
                lexical: lexical.to_owned(),
                value,
            });
        }
    }

    fn check_substitution_groups(&mut self) {
        let n = self.c.elements.len();
        for id in 0..n {
            let Some(head) = self.c.elements[id].subst_group else {
                continue;
            };
            // Circularity: walk up the chain.
            let mut seen = HashSet::new();
            let mut cur = Some(id);
            let mut circular = false;
            while let Some(c) = cur {
                if !seen.insert(c) {
                    circular = true;
                    break;
                }
                cur = self.c.elements[c].subst_group;
            }
            let name = self.c.elements[id].name.clone();
            if circular {
                self.diags.push(Diagnostic::new(
                    DiagnosticKind::Invalid,
                    "",
                    0,
                    0,
                    format!("element {name} is in a circular substitution group"),
                ));
                self.c.elements[id].subst_group = None;
                continue;
            }
            let (t, ht) = (self.c.elements[id].type_id, self.c.elements[head].type_id);
            let blocked = self.c.elements[head].final_;
            if !self.c.derives_from(t, ht, blocked) {
                let hname = self.c.elements[head].name.clone();
                self.diags.push(Diagnostic::new(
                    DiagnosticKind::Invalid,
                    "",
                    0,
                    0,
                    format!(
                        "element {name} cannot be in the substitution group of {hname}: its type {} is not validly derived from {}{}",
                        self.c.type_name(t),
                        self.c.type_name(ht),
                        if blocked != DerivSet::default() { " (or the head's final forbids the derivation)" } else { "" }
                    ),
                ));
                continue;
            }
            let mut cur = Some(head);
            let mut guard = 0;
            while let Some(h) = cur {
                guard += 1;
                if guard > n {
                    break;
                }
                if !self.c.substitutes[h].contains(&id) {
                    self.c.substitutes[h].push(id);
                }
                cur = self.c.elements[h].subst_group;
            }
        }
    }

    // ---------------------------------------------------------------- attributes

    fn global_attribute(&mut self, q: &QName) -> Option<AttrId> {
        if let Some(&id) = self.attr_memo.get(q) {
            return Some(id);
        }
        let def = self.table.get(&(Kind::Attribute, q.clone())).cloned()?;
        let id = self.attribute_decl(def.doc, def.node, true)?;
        self.attr_memo.insert(q.clone(), id);
        self.c.global_attributes.insert(q.clone(), id);
        Some(id)
    }

    fn value_constraint(
        &mut self,
        doc: usize,
        node: &Node,
        st: &Arc<SimpleType>,
    ) -> Option<ValueConstraint> {
        let (fixed, lexical) = match (node.attr("default"), node.attr("fixed")) {
            (Some(_), Some(_)) => {
                self.err(
                    doc,
                    node,
                    "an attribute cannot have both default and fixed".into(),
                );
                return None;
            }
            (Some(d), None) => (false, d),
            (None, Some(f)) => (true, f),
            (None, None) => return None,
        };
        if st.id_kind() == Some(datatypes::IdKind::Id) {
            self.err(
                doc,
                node,
                "an attribute of type xs:ID cannot have a default or fixed value".into(),
            );
            return None;
        }
        match st.validate(lexical, &*node.scope) {
            Ok(v) => Some(ValueConstraint {
                fixed,
                lexical: lexical.to_owned(),
                value: Some(v),
            }),
            Err(e) => {
                self.err(
                    doc,
                    node,
                    format!(
                        "the {} value '{lexical}' is not valid: {e}",
                        if fixed { "fixed" } else { "default" }
                    ),
                );
                None
            }
        }
    }

    fn attribute_decl(&mut self, doc: usize, node: &'a Node, global: bool) -> Option<AttrId> {
        let Some(name) = node.attr("name").map(str::trim) else {
            self.err(
                doc,
                node,
                "an attribute declaration needs a name (or a ref)".into(),
            );
            return None;
        };
        if !is_ncname(name) || name == "xmlns" {
            self.err(doc, node, format!("'{name}' is not a valid attribute name"));
            return None;
        }
        let ctx = &self.docs[doc].ctx;
        let qualified = if global {
            true
        } else {
            match node.attr("form").map(str::trim) {
                Some("qualified") => true,
                Some("unqualified") => false,
                Some(other) => {
                    let o = other.to_owned();
                    self.err(
                        doc,
                        node,
                        format!("form='{o}' is not qualified or unqualified"),
                    );
                    false
                }
                None => ctx.attribute_qualified,
            }
        };
        if global && (node.attr("form").is_some() || node.attr("use").is_some()) {
            self.err(
                doc,
                node,
                "a top-level attribute declaration cannot have form or use".into(),
            );
        }
        let qname = QName::new(if qualified { ctx.tns.as_deref() } else { None }, name);
        if qname.ns.as_deref() == Some(XSI) {
            self.err(
                doc,
                node,
                "attributes in the XML Schema instance namespace cannot be declared".into(),
            );
            return None;
        }
        let anon = node.child("simpleType");
        let type_id = match (node.attr("type"), anon) {
            (Some(_), Some(_)) => {
                self.err(doc, node, "an attribute declaration has either a type attribute or an anonymous simpleType, not both".into());
                return None;
            }
            (Some(t), None) => self.type_ref(doc, node, t)?,
            (None, Some(a)) => self.simple_type(doc, a, None)?,
            (None, None) => ANY_SIMPLE_TYPE,
        };
        let Some(st) = self.simple_type_of(type_id) else {
            self.err(
                doc,
                node,
                format!(
                    "the type of an attribute must be simple, but {} is complex",
                    self.c.type_name(type_id)
                ),
            );
            return None;
        };
        let constraint = self.value_constraint(doc, node, &st);
        let id = self.c.attributes.len();
        self.c.attributes.push(AttributeDecl {
            name: qname,
            type_id,
            st,
            constraint,
            global,
        });
        Some(id)
    }

    /// Attribute uses, prohibitions and the wildcard of a type body or attribute group.
    fn attr_set(&mut self, doc: usize, parent: &'a Node) -> AttrSet {
        let mut set = AttrSet::default();
        let mut group_wildcards: Vec<Option<Wildcard>> = Vec::new();
        for c in parent.xs_children() {
            match c.local.as_str() {
                "attribute" => {
                    let use_ = c.attr("use").map(str::trim).unwrap_or("optional");
                    if !matches!(use_, "optional" | "required" | "prohibited") {
                        self.err(
                            doc,
                            c,
                            format!("use='{use_}' is not optional, required or prohibited"),
                        );
                        continue;
                    }
                    if c.attr("default").is_some() && use_ != "optional" {
                        self.err(
                            doc,
                            c,
                            "an attribute with a default must have use='optional'".into(),
                        );
                        continue;
                    }
                    let (decl, constraint) = if let Some(r) = c.attr("ref") {
                        if c.attr("name").is_some()
                            || c.attr("type").is_some()
                            || c.attr("form").is_some()
                            || c.child("simpleType").is_some()
                        {
                            self.err(doc, c, "an attribute reference cannot have name, type, form or a simpleType".into());
                            continue;
                        }
                        let Some(q) = self.qname(doc, c, r) else {
                            continue;
                        };
                        if !self.check_ns_visible(doc, c, &q) {
                            continue;
                        }
                        let Some(id) = self
                            .global_attribute(&q)
                            .or_else(|| xml_ns_attribute(&mut self.c, &q))
                        else {
                            self.err(doc, c, format!("attribute {q} is not declared"));
                            continue;
                        };
                        let st = self.c.attributes[id].st.clone();
                        let vc = self.value_constraint(doc, c, &st);
                        if let (Some(Some(decl_vc)), Some(use_vc)) =
                            (self.c.attributes.get(id).map(|a| a.constraint.clone()), &vc)
                            && decl_vc.fixed
                            && (!use_vc.fixed || use_vc.value != decl_vc.value)
                        {
                            self.err(doc, c, format!("attribute {q} is declared fixed to '{}'; a reference cannot change it", decl_vc.lexical));
                        }
                        (id, vc)
                    } else {
                        let Some(id) = self.attribute_decl(doc, c, false) else {
                            continue;
                        };
                        (id, self.c.attributes[id].constraint.clone())
                    };
                    let name = self.c.attributes[decl].name.clone();
                    if use_ == "prohibited" {
                        set.prohibited.push(name);
                        continue;
                    }
                    if set
                        .uses
                        .iter()
                        .any(|u| self.c.attributes[u.decl].name == name)
                    {
                        self.err(doc, c, format!("attribute {name} is declared twice"));
                        continue;
                    }
                    set.uses.push(AttributeUse {
                        decl,
                        required: use_ == "required",
                        constraint,
                    });
                }
                "attributeGroup" => {
                    let Some(r) = c.attr("ref") else {
                        self.err(doc, c, "a local <xs:attributeGroup> needs a ref".into());
                        continue;
                    };
                    let Some(q) = self.qname(doc, c, r) else {
                        continue;
                    };
                    if !self.check_ns_visible(doc, c, &q) {
                        continue;
                    }
                    let q = self.redirect(Kind::AttributeGroup, &q);
                    let Some(g) = self.named_attr_group_from(&q, Some((doc, c))) else {
                        continue;
                    };
                    for u in g.uses {
                        let name = &self.c.attributes[u.decl].name;
                        if set
                            .uses
                            .iter()
                            .any(|x| &self.c.attributes[x.decl].name == name)
                        {
                            let n = name.clone();
                            self.err(
                                doc,
                                c,
                                format!(
                                    "attribute {n} is declared twice (through attribute group {q})"
                                ),
                            );
                            continue;
                        }
                        set.uses.push(u);
                    }
                    set.prohibited.extend(g.prohibited);
                    group_wildcards.push(g.wildcard);
                }
                "anyAttribute" => set.wildcard = Some(self.wildcard(doc, c)),
                _ => {}
            }
        }
        // §3.6.2: the complete wildcard is the intersection of the local one and the groups'.
        for gw in group_wildcards.into_iter().flatten() {
            set.wildcard = Some(match set.wildcard.take() {
                None => gw,
                Some(w) => match wildcard_intersection(&w, &gw) {
                    Some(x) => x,
                    None => {
                        self.err(
                            doc,
                            parent,
                            "the attribute wildcards cannot be intersected (not expressible)"
                                .into(),
                        );
                        w
                    }
                },
            });
        }
        let ids = set
            .uses
            .iter()
            .filter(|u| self.c.attributes[u.decl].st.id_kind() == Some(datatypes::IdKind::Id))
            .count();
        if ids > 1 {
            self.err(
                doc,
                parent,
                "at most one attribute may be of type xs:ID".into(),
            );
        }
        set
    }

    fn named_attr_group(&mut self, q: &QName) -> Option<AttrSet> {
        self.named_attr_group_from(q, None)
    }

    fn named_attr_group_from(
        &mut self,
        q: &QName,
        from: Option<(usize, &Node)>,
    ) -> Option<AttrSet> {
        if let Some(g) = self.agroup_memo.get(q) {
            return Some(g.clone());
        }
        let Some(def) = self.table.get(&(Kind::AttributeGroup, q.clone())).cloned() else {
            if let Some((doc, node)) = from {
                self.err(doc, node, format!("attribute group {q} is not defined"));
            }
            return None;
        };
        if !self.building.insert((Kind::AttributeGroup, q.clone())) {
            self.err(
                def.doc,
                def.node,
                format!("attribute group {q} refers to itself (circular definition)"),
            );
            return None;
        }
        let saved = self.self_ref.take();
        if let Some((own, hidden)) = def.redefines.clone() {
            self.self_ref = Some((Kind::AttributeGroup, own, hidden));
        }
        let set = self.attr_set(def.doc, def.node);
        self.self_ref = saved;
        self.building.remove(&(Kind::AttributeGroup, q.clone()));
        self.agroup_memo.insert(q.clone(), set.clone());
        Some(set)
    }

    // ---------------------------------------------------------------- phase 2

    fn finalize(&mut self, id: TypeId) {
        let Some(raw) = self.raw.remove(&id) else {
            return;
        };
        if !self.finalizing.insert(id) {
            return;
        }
        let (base, derivation) = match &self.c.types[id] {
            TypeDef::Complex(c) => (c.base, c.derivation),
            TypeDef::Simple(_) => return,
        };
        if base != id {
            self.finalize(base);
        }
        let doc = raw.doc;
        let node = raw.node;
        let base_final = self.c.types[base].final_set();
        if (derivation == Derivation::Extension && base_final.extension)
            || (derivation == Derivation::Restriction && base_final.restriction && base != ANY_TYPE)
        {
            self.err(
                doc,
                node,
                format!(
                    "type {} is final for {}",
                    self.c.type_name(base),
                    if derivation == Derivation::Extension {
                        "extension"
                    } else {
                        "restriction"
                    }
                ),
            );
        }
        let (base_content, base_attrs, base_wild) = match &self.c.types[base] {
            TypeDef::Complex(c) => (
                Some(c.content.clone()),
                c.attributes.clone(),
                c.attribute_wildcard.clone(),
            ),
            TypeDef::Simple(_) => (None, Vec::new(), None),
        };
        let content = match raw.kind {
            RawKind::Simple { facets, inline } => {
                let base_st = match &base_content {
                    Some(Content::Simple(st)) => Some(st.clone()),
                    None => match &self.c.types[base] {
                        TypeDef::Simple(s) if derivation == Derivation::Extension => {
                            Some(s.st.clone())
                        }
                        _ => {
                            self.err(doc, node, format!("simple content can only restrict a complex type with simple content; {} is a simple type (use extension)", self.c.type_name(base)));
                            None
                        }
                    },
                    Some(Content::Elements {
                        particle,
                        mixed: true,
                    }) if derivation == Derivation::Restriction
                        && particle.emptiable()
                        && inline.is_some() =>
                    {
                        inline.clone()
                    }
                    Some(_) => {
                        self.err(
                            doc,
                            node,
                            format!(
                                "the base type {} of simple content does not have simple content",
                                self.c.type_name(base)
                            ),
                        );
                        None
                    }
                };
                match base_st {
                    Some(bst) => {
                        if derivation == Derivation::Extension {
                            Content::Simple(bst)
                        } else {
                            let start = match inline {
                                Some(i) => {
                                    if !simple_derives_from(&i, &bst) {
                                        self.err(doc, node, "the simpleType of a simple-content restriction must derive from the base's content type".into());
                                    }
                                    i
                                }
                                None => bst,
                            };
                            let fs = self.facets(doc, facets);
                            if fs.is_empty() {
                                Content::Simple(start)
                            } else {
                                match SimpleType::restrict(&start, None, &fs, &*facets.scope) {
                                    Ok(st) => Content::Simple(Arc::new(st)),
                                    Err(e) => {
                                        self.err(doc, node, e.to_string());
                                        Content::Simple(start)
                                    }
                                }
                            }
                        }
                    }
                    None => Content::Empty,
                }
            }
            RawKind::Complex { mixed, particle } => {
                // §3.4.2: an empty group (or none) means empty content.
                let own = particle.filter(|p| !is_empty_particle(p));
                let own_content = match own {
                    Some(p) => Content::Elements {
                        particle: Arc::new(p),
                        mixed,
                    },
                    None if mixed => Content::Elements {
                        particle: Arc::new(Particle {
                            min: 1,
                            max: Some(1),
                            term: Term::Group(Compositor::Sequence, vec![]),
                        }),
                        mixed: true,
                    },
                    None => Content::Empty,
                };
                match (derivation, &base_content) {
                    (_, None) if base != ANY_TYPE => {
                        self.err(
                            doc,
                            node,
                            format!(
                                "complex content cannot derive from the simple type {}",
                                self.c.type_name(base)
                            ),
                        );
                        own_content
                    }
                    (Derivation::Extension, Some(Content::Simple(_))) => {
                        if matches!(own_content, Content::Empty) {
                            base_content.clone().unwrap_or(Content::Empty)
                        } else {
                            self.err(
                                doc,
                                node,
                                format!(
                                    "complex content cannot extend {} which has simple content",
                                    self.c.type_name(base)
                                ),
                            );
                            own_content
                        }
                    }
                    (
                        Derivation::Extension,
                        Some(Content::Elements {
                            particle: bp,
                            mixed: bm,
                        }),
                    ) => {
                        match own_content {
                            Content::Empty => Content::Elements {
                                particle: bp.clone(),
                                mixed: *bm,
                            },
                            Content::Elements {
                                particle: op,
                                mixed: om,
                            } => {
                                if om != *bm {
                                    self.err(doc, node, format!("an extension must be mixed exactly when its base {} is", self.c.type_name(base)));
                                }
                                if bp.is_empty_content() {
                                    Content::Elements {
                                        particle: op,
                                        mixed: om,
                                    }
                                } else {
                                    if matches!(bp.term, Term::Group(Compositor::All, _))
                                        || matches!(op.term, Term::Group(Compositor::All, _))
                                    {
                                        self.err(doc, node, "an xs:all content model cannot be extended with more particles (XSD 1.0)".into());
                                    }
                                    Content::Elements {
                                        particle: Arc::new(Particle {
                                            min: 1,
                                            max: Some(1),
                                            term: Term::Group(
                                                Compositor::Sequence,
                                                vec![(**bp).clone(), (*op).clone()],
                                            ),
                                        }),
                                        mixed: om,
                                    }
                                }
                            }
                            other => other,
                        }
                    }
                    (Derivation::Extension, _) => own_content,
                    (Derivation::Restriction, _) => {
                        if let Some(bc) = &base_content {
                            self.check_content_restriction(doc, node, &own_content, bc, base);
                        }
                        own_content
                    }
                }
            }
        };
        // Attributes.
        let mut uses: Vec<AttributeUse> = Vec::new();
        let mut wildcard = raw.attrs.wildcard.clone();
        match derivation {
            Derivation::Extension => {
                uses = base_attrs.clone();
                for u in &raw.attrs.uses {
                    let name = &self.c.attributes[u.decl].name;
                    if uses.iter().any(|b| &self.c.attributes[b.decl].name == name) {
                        let n = name.clone();
                        self.err(
                            doc,
                            node,
                            format!("attribute {n} is already declared in the base type"),
                        );
                        continue;
                    }
                    uses.push(u.clone());
                }
                wildcard = match (wildcard, base_wild.as_deref()) {
                    (None, b) => b.cloned(),
                    (Some(w), None) => Some(w),
                    (Some(w), Some(b)) => match wildcard_union(&w, b) {
                        Some(u) => Some(Wildcard {
                            ns: u.ns,
                            process: w.process,
                        }),
                        None => {
                            self.err(
                                doc,
                                node,
                                "the attribute wildcard union is not expressible".into(),
                            );
                            Some(w)
                        }
                    },
                };
            }
            Derivation::Restriction => {
                for b in &base_attrs {
                    let bname = self.c.attributes[b.decl].name.clone();
                    let own = raw
                        .attrs
                        .uses
                        .iter()
                        .find(|u| self.c.attributes[u.decl].name == bname);
                    if raw.attrs.prohibited.contains(&bname) && own.is_none() {
                        if b.required {
                            self.err(doc, node, format!("attribute {bname} is required in the base type and cannot be prohibited"));
                        }
                        continue;
                    }
                    match own {
                        Some(o) => {
                            if b.required && !o.required {
                                self.err(doc, node, format!("attribute {bname} is required in the base type and must stay required"));
                            }
                            let (ot, bt) = (
                                self.c.attributes[o.decl].type_id,
                                self.c.attributes[b.decl].type_id,
                            );
                            if !self.c.derives_from(ot, bt, DerivSet::default()) {
                                self.err(doc, node, format!("the type of attribute {bname} does not derive from its type in the base"));
                            }
                            if let Some(bc) = b.constraint.as_ref().filter(|c| c.fixed) {
                                let ok = o
                                    .constraint
                                    .as_ref()
                                    .is_some_and(|oc| oc.fixed && oc.value == bc.value);
                                if !ok {
                                    self.err(
                                        doc,
                                        node,
                                        format!(
                                            "attribute {bname} is fixed to '{}' in the base type",
                                            bc.lexical
                                        ),
                                    );
                                }
                            }
                            uses.push(o.clone());
                        }
                        None => uses.push(b.clone()),
                    }
                }
                for o in &raw.attrs.uses {
                    let name = self.c.attributes[o.decl].name.clone();
                    if base_attrs
                        .iter()
                        .any(|b| self.c.attributes[b.decl].name == name)
                    {
                        continue;
                    }
                    let allowed = base_wild
                        .as_ref()
                        .is_some_and(|w| w.ns.allows(name.ns.as_deref()));
                    if !allowed && base != ANY_TYPE {
                        self.err(doc, node, format!("attribute {name} is not in the base type {} (a restriction cannot add attributes)", self.c.type_name(base)));
                    }
                    uses.push(o.clone());
                }
                if let Some(w) = &wildcard {
                    match base_wild.as_deref() {
                        None if base != ANY_TYPE => self.err(doc, node, "a restriction cannot add an attribute wildcard the base type lacks".into()),
                        Some(b) if !wildcard_subset(w, b) => self.err(doc, node, "the attribute wildcard is not a subset of the base type's".into()),
                        Some(b) if base != ANY_TYPE && process_weaker(w.process, b.process) => self.err(doc, node, "the attribute wildcard's processContents is weaker than the base type's".into()),
                        _ => {}
                    }
                }
            }
        }
        let ids = uses
            .iter()
            .filter(|u| self.c.attributes[u.decl].st.id_kind() == Some(datatypes::IdKind::Id))
            .count();
        if ids > 1 {
            self.err(
                doc,
                node,
                "a complex type may have at most one attribute of type xs:ID".into(),
            );
        }
        if let TypeDef::Complex(ct) = &mut self.c.types[id] {
            ct.content = content;
            ct.attributes = uses;
            ct.attribute_wildcard = wildcard.map(Arc::new);
        }
    }

    /// derivation-ok-restriction clause 5 (content), with particle restriction checked in
    /// `restriction` (the rcase rules).
    fn check_content_restriction(
        &mut self,
        doc: usize,
        node: &Node,
        own: &Content,
        base: &Content,
        base_id: TypeId,
    ) {
        if base_id == ANY_TYPE {
            return;
        }
        match (own, base) {
            (Content::Empty, Content::Elements { particle, .. }) if !particle.emptiable() => {
                self.err(doc, node, format!("a restriction with empty content needs an emptiable base content model ({} requires content)", self.c.type_name(base_id)));
            }
            (Content::Empty, Content::Simple(_)) => {
                self.err(
                    doc,
                    node,
                    format!(
                        "a complex-content restriction of {} (simple content) is not allowed",
                        self.c.type_name(base_id)
                    ),
                );
            }
            (Content::Elements { .. }, Content::Empty) => {
                self.err(
                    doc,
                    node,
                    format!(
                        "the base type {} has empty content; a restriction cannot add elements",
                        self.c.type_name(base_id)
                    ),
                );
            }
            (Content::Elements { mixed: true, .. }, Content::Elements { mixed: false, .. }) => {
                self.err(
                    doc,
                    node,
                    format!(
                        "a restriction of element-only type {} cannot be mixed",
                        self.c.type_name(base_id)
                    ),
                );
            }
            (Content::Elements { particle: p, .. }, Content::Elements { particle: bp, .. }) => {
                if let Err(msg) = super::restriction::particle_restricts(&self.c, p, bp) {
                    self.err(
                        doc,
                        node,
                        format!(
                            "content model is not a valid restriction of {}: {msg}",
                            self.c.type_name(base_id)
                        ),
                    );
                }
            }
            (Content::Elements { .. } | Content::Simple(_), Content::Simple(_)) => {
                self.err(
                    doc,
                    node,
                    format!(
                        "complex content cannot restrict {} which has simple content",
                        self.c.type_name(base_id)
                    ),
                );
            }
            _ => {}
        }
    }

    pub fn finish(self) -> (Components, Vec<Diagnostic>) {
        (self.c, self.diags)
    }
}

fn simple_derives_from(d: &Arc<SimpleType>, b: &Arc<SimpleType>) -> bool {
    let mut cur = Some(d);
    let mut n = 0;
    while let Some(c) = cur {
        if Arc::ptr_eq(c, b) || matches!(b.variety, Variety::AnySimple) {
            return true;
        }
        n += 1;
        if n > 10_000 {
            return false;
        }
        cur = c.base.as_ref();
    }
    false
}

fn collect_refs<'n>(node: &'n Node, local: &str, name: &str) -> Vec<&'n Node> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n.is_xs(local)
            && n.attr("ref")
                .is_some_and(|v| v.trim().rsplit(':').next() == Some(name))
        {
            out.push(n);
        }
        stack.extend(n.children.iter());
    }
    out
}

/// The `xml:` attributes (lang, space, base, id) are known without importing xml.xsd.
fn xml_ns_attribute(c: &mut Components, q: &QName) -> Option<AttrId> {
    if q.ns.as_deref() != Some(crate::names::XML) {
        return None;
    }
    if let Some(&id) = c.global_attributes.get(q) {
        return Some(id);
    }
    let bt = match q.local.as_str() {
        "lang" => BuiltinType::Language,
        "space" => BuiltinType::NCName,
        "base" => BuiltinType::AnyUri,
        "id" => BuiltinType::Id,
        _ => return None,
    };
    let mut st = datatypes::builtin(bt).clone();
    if q.local == "space" {
        let facets = [
            RawFacet {
                kind: FacetKind::Enumeration,
                value: "default".into(),
                fixed: false,
            },
            RawFacet {
                kind: FacetKind::Enumeration,
                value: "preserve".into(),
                fixed: false,
            },
        ];
        if let Ok(s) =
            SimpleType::restrict(&st, None, &facets, &super::document::NsScope::default())
        {
            st = Arc::new(s);
        }
    }
    let id = c.attributes.len();
    c.attributes.push(AttributeDecl {
        name: q.clone(),
        type_id: ANY_SIMPLE_TYPE,
        st,
        constraint: None,
        global: true,
    });
    c.global_attributes.insert(q.clone(), id);
    Some(id)
}

fn process_weaker(derived: ProcessContents, base: ProcessContents) -> bool {
    let rank = |p| match p {
        ProcessContents::Skip => 0,
        ProcessContents::Lax => 1,
        ProcessContents::Strict => 2,
    };
    rank(derived) < rank(base)
}

/// Namespace-constraint subset (§3.10.6 "Wildcard Subset").
pub fn wildcard_subset(sub: &Wildcard, sup: &Wildcard) -> bool {
    ns_subset(&sub.ns, &sup.ns)
}

pub fn ns_subset(sub: &NsConstraint, sup: &NsConstraint) -> bool {
    match (sub, sup) {
        (_, NsConstraint::Any) => true,
        (NsConstraint::Not(a), NsConstraint::Not(b)) => a == b,
        (NsConstraint::Set(s), NsConstraint::Not(n)) => s.iter().all(|x| x.is_some() && x != n),
        (NsConstraint::Set(s), NsConstraint::Set(t)) => s.iter().all(|x| t.contains(x)),
        _ => false,
    }
}

/// §3.10.6 "Attribute Wildcard Union".
pub fn wildcard_union(a: &Wildcard, b: &Wildcard) -> Option<Wildcard> {
    use NsConstraint::*;
    let ns = match (&a.ns, &b.ns) {
        (x, y) if x == y => x.clone(),
        (Any, _) | (_, Any) => Any,
        (Set(s), Set(t)) => {
            let mut v = s.clone();
            for x in t {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            Set(v)
        }
        (Not(_), Not(_)) => Not(None),
        (Not(n), Set(s)) | (Set(s), Not(n)) => {
            let has_n = n.is_some() && s.contains(n);
            let has_absent = s.contains(&None);
            match (n, has_n, has_absent) {
                (_, true, true) => Any,
                (Some(_), true, false) => Not(None),
                (Some(_), false, true) => return None,
                (Some(n), false, false) => Not(Some(n.clone())),
                (None, _, true) => Any,
                (None, _, false) => Not(None),
            }
        }
    };
    Some(Wildcard {
        ns,
        process: a.process,
    })
}

/// §3.10.6 "Attribute Wildcard Intersection".
pub fn wildcard_intersection(a: &Wildcard, b: &Wildcard) -> Option<Wildcard> {
    use NsConstraint::*;
    let ns = match (&a.ns, &b.ns) {
        (x, y) if x == y => x.clone(),
        (Any, o) | (o, Any) => o.clone(),
        (Not(n), Set(s)) | (Set(s), Not(n)) => Set(s
            .iter()
            .filter(|x| x.is_some() && *x != n)
            .cloned()
            .collect()),
        (Set(s), Set(t)) => Set(s.iter().filter(|x| t.contains(x)).cloned().collect()),
        (Not(x), Not(y)) => {
            if x.is_none() {
                Not(y.clone())
            } else if y.is_none() {
                Not(x.clone())
            } else {
                return None;
            }
        }
    };
    Some(Wildcard {
        ns,
        process: a.process,
    })
}

/// §3.4.2 (complex content, clause 2.1): particles that stand for empty content.
fn is_empty_particle(p: &Particle) -> bool {
    match &p.term {
        _ if p.max == Some(0) => true,
        Term::Group(Compositor::All | Compositor::Sequence, v) => v.is_empty(),
        Term::Group(Compositor::Choice, v) => v.is_empty() && p.min == 0,
        _ => false,
    }
}
