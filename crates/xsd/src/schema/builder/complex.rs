//! Complex type definitions (XSD 1.0 §3.4). Phase 1 (`complex_type`) records a type's base,
//! derivation method, own particle and own attributes; phase 2 (`finalize`), once every
//! component is built, computes its effective content and attribute uses from its base's and
//! checks the derivation (derivation-ok-extension, derivation-ok-restriction).

use std::sync::Arc;

use super::simple::simple_derives_from;
use super::{AttrSet, Builder, RawComplex, RawKind};
use crate::datatypes::{self, SimpleType};
use crate::names::QName;
use crate::schema::components::*;
use crate::schema::document::Node;
use crate::schema::wildcard::{process_weaker, wildcard_subset, wildcard_union};

/// What a complex type's `<xs:simpleContent>` or `<xs:complexContent>` says about its
/// derivation; without either, the type restricts xs:anyType.
struct ContentHead<'a> {
    base: TypeId,
    derivation: Derivation,
    /// The element holding the particle and attributes: the `<xs:restriction>` or
    /// `<xs:extension>`, or the `<xs:complexType>` itself.
    body: &'a Node,
    simple: bool,
    mixed: bool,
}

/// The type phase 2 is finalizing, as its checks report it.
struct Finalizing<'n> {
    doc: usize,
    node: &'n Node,
    base: TypeId,
    derivation: Derivation,
}

impl<'a> Builder<'a> {
    /// `<xs:complexType>`: phase 1 (base, own particle, own attributes).
    pub(super) fn complex_type(
        &mut self,
        doc: usize,
        node: &'a Node,
        name: Option<QName>,
    ) -> TypeId {
        let id = self.push_complex_type(doc, node, name);
        let mixed_attr = self.bool_attr(doc, node, "mixed");
        let Some(head) = self.content_head(doc, node, mixed_attr) else {
            return id;
        };
        if let Some(TypeDef::Complex(ct)) = self.c.types.get_mut(id) {
            ct.base = head.base;
            ct.derivation = head.derivation;
        }
        // Type references inside the content may now refer back to this type.
        let kind = self.raw_content(doc, &head);
        let attrs = self.attr_set(doc, head.body);
        self.raw.insert(
            id,
            RawComplex {
                kind,
                attrs,
                doc,
                node: head.body,
            },
        );
        id
    }

    /// Pushes the type with its own properties (abstract, final, block) and, for now, no
    /// content, so that references to it resolve while its content is built.
    fn push_complex_type(&mut self, doc: usize, node: &'a Node, name: Option<QName>) -> TypeId {
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
        id
    }

    /// The base and derivation method; `None` (after reporting it) when simpleContent or
    /// complexContent lacks its restriction or extension.
    fn content_head(
        &mut self,
        doc: usize,
        node: &'a Node,
        mixed_attr: bool,
    ) -> Option<ContentHead<'a>> {
        let c = match node.xs_children().next() {
            Some(c) if c.local == "simpleContent" || c.local == "complexContent" => c,
            _ => {
                return Some(ContentHead {
                    base: ANY_TYPE,
                    derivation: Derivation::Restriction,
                    body: node,
                    simple: false,
                    mixed: mixed_attr,
                });
            }
        };
        let Some(d) = c.xs_children().next() else {
            self.err(
                doc,
                c,
                format!("<xs:{}> needs a restriction or extension", c.local),
            );
            return None;
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
            // mixed="true" beside simple content is allowed by the schema for schemas but
            // meaningless; Xerces and the spec ignore it.
            false
        };
        Some(ContentHead {
            base,
            derivation,
            body: d,
            simple: c.local == "simpleContent",
            mixed,
        })
    }

    /// The type's own content, before its base's is combined with it in phase 2.
    fn raw_content(&mut self, doc: usize, head: &ContentHead<'a>) -> RawKind<'a> {
        let body = head.body;
        if head.simple {
            let inline = match body.child("simpleType") {
                Some(st) if head.derivation == Derivation::Restriction => self
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
            RawKind::Complex {
                mixed: head.mixed,
                particle,
            }
        }
    }

    // ---------------------------------------------------------------- phase 2

    /// Phase 2 for one type: effective content and attribute uses from its base's (the base is
    /// finalized first), with the derivation checked.
    pub(super) fn finalize(&mut self, id: TypeId) {
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
        let t = Finalizing {
            doc: raw.doc,
            node: raw.node,
            base,
            derivation,
        };
        self.check_base_not_final(&t);
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
                self.simple_content(&t, base_content.as_ref(), facets, inline)
            }
            RawKind::Complex { mixed, particle } => {
                self.complex_content(&t, base_content.as_ref(), mixed, particle)
            }
        };
        let (uses, wildcard) = match derivation {
            Derivation::Extension => {
                self.extend_attributes(&t, &raw.attrs, base_attrs, base_wild.as_deref())
            }
            Derivation::Restriction => {
                self.restrict_attributes(&t, &raw.attrs, &base_attrs, base_wild.as_deref())
            }
        };
        self.check_one_id_attribute(&t, &uses);
        if let TypeDef::Complex(ct) = &mut self.c.types[id] {
            ct.content = content;
            ct.attributes = uses;
            ct.attribute_wildcard = wildcard.map(Arc::new);
        }
    }

    /// The base's `final` forbids this derivation method (xs:anyType may always be restricted).
    fn check_base_not_final(&mut self, t: &Finalizing) {
        let base_final = self.c.types[t.base].final_set();
        if (t.derivation == Derivation::Extension && base_final.extension)
            || (t.derivation == Derivation::Restriction
                && base_final.restriction
                && t.base != ANY_TYPE)
        {
            self.err(
                t.doc,
                t.node,
                format!(
                    "type {} is final for {}",
                    self.c.type_name(t.base),
                    if t.derivation == Derivation::Extension {
                        "extension"
                    } else {
                        "restriction"
                    }
                ),
            );
        }
    }

    /// `<xs:simpleContent>`: an extension keeps the base's simple type; a restriction narrows
    /// it (or the inline simpleType) by its facets.
    fn simple_content(
        &mut self,
        t: &Finalizing,
        base_content: Option<&Content>,
        facets: &Node,
        inline: Option<Arc<SimpleType>>,
    ) -> Content {
        match self.simple_content_base(t, base_content, inline.as_ref()) {
            Some(bst) => {
                if t.derivation == Derivation::Extension {
                    Content::Simple(bst)
                } else {
                    self.restrict_simple_content(t, facets, inline, bst)
                }
            }
            None => Content::Empty,
        }
    }

    /// The simple type simple content starts from: the base's simple content, a simple base
    /// type (extension only), or the inline simpleType restricting a mixed, emptiable base.
    fn simple_content_base(
        &mut self,
        t: &Finalizing,
        base_content: Option<&Content>,
        inline: Option<&Arc<SimpleType>>,
    ) -> Option<Arc<SimpleType>> {
        let (doc, node, base, derivation) = (t.doc, t.node, t.base, t.derivation);
        match base_content {
            Some(Content::Simple(st)) => Some(st.clone()),
            None => match &self.c.types[base] {
                TypeDef::Simple(s) if derivation == Derivation::Extension => Some(s.st.clone()),
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
                inline.cloned()
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
        }
    }

    /// A simple-content restriction: the inline simpleType must derive from the base's
    /// content type, and the facets restrict it further.
    fn restrict_simple_content(
        &mut self,
        t: &Finalizing,
        facets: &Node,
        inline: Option<Arc<SimpleType>>,
        bst: Arc<SimpleType>,
    ) -> Content {
        let (doc, node) = (t.doc, t.node);
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

    /// `<xs:complexContent>` (or none): the type's own particle, combined with the base's
    /// for an extension, checked against it for a restriction.
    fn complex_content(
        &mut self,
        t: &Finalizing,
        base_content: Option<&Content>,
        mixed: bool,
        particle: Option<Particle>,
    ) -> Content {
        let (doc, node, base) = (t.doc, t.node, t.base);
        let own_content = own_complex_content(mixed, particle);
        match (t.derivation, base_content) {
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
                    base_content.cloned().unwrap_or(Content::Empty)
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
            ) => self.extend_element_content(t, bp, *bm, own_content),
            (Derivation::Extension, _) => own_content,
            (Derivation::Restriction, _) => {
                if let Some(bc) = base_content {
                    self.check_content_restriction(doc, node, &own_content, bc, base);
                }
                own_content
            }
        }
    }

    /// §3.4.2 complex content 3.2: an extension's content is the base's particle followed by
    /// its own (in a sequence), unless one of them is empty.
    fn extend_element_content(
        &mut self,
        t: &Finalizing,
        bp: &Arc<Particle>,
        bm: bool,
        own_content: Content,
    ) -> Content {
        let (doc, node) = (t.doc, t.node);
        match own_content {
            Content::Empty => Content::Elements {
                particle: bp.clone(),
                mixed: bm,
            },
            Content::Elements {
                particle: op,
                mixed: om,
            } => {
                if om != bm {
                    self.err(
                        doc,
                        node,
                        format!(
                            "an extension must be mixed exactly when its base {} is",
                            self.c.type_name(t.base)
                        ),
                    );
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

    /// derivation-ok-extension 1.2-1.3: the base's attribute uses, then the type's own (none
    /// may redeclare a base attribute); the wildcard is the union of both.
    fn extend_attributes(
        &mut self,
        t: &Finalizing,
        own: &AttrSet,
        base_attrs: Vec<AttributeUse>,
        base_wild: Option<&Wildcard>,
    ) -> (Vec<AttributeUse>, Option<Wildcard>) {
        let mut uses = base_attrs;
        for u in &own.uses {
            let name = &self.c.attributes[u.decl].name;
            if uses.iter().any(|b| &self.c.attributes[b.decl].name == name) {
                let n = name.clone();
                self.err(
                    t.doc,
                    t.node,
                    format!("attribute {n} is already declared in the base type"),
                );
                continue;
            }
            uses.push(u.clone());
        }
        let wildcard = match (own.wildcard.clone(), base_wild) {
            (None, b) => b.cloned(),
            (Some(w), None) => Some(w),
            (Some(w), Some(b)) => match wildcard_union(&w, b) {
                // The union takes the namespaces of both but the type's own processContents.
                Some(u) => Some(Wildcard {
                    ns: u.ns,
                    process: w.process,
                }),
                None => {
                    self.err(
                        t.doc,
                        t.node,
                        "the attribute wildcard union is not expressible".into(),
                    );
                    Some(w)
                }
            },
        };
        (uses, wildcard)
    }

    /// derivation-ok-restriction 2-4: each base attribute use is kept, prohibited or
    /// restricted; any other use must be allowed by the base's wildcard; the wildcard itself
    /// may only narrow.
    fn restrict_attributes(
        &mut self,
        t: &Finalizing,
        own: &AttrSet,
        base_attrs: &[AttributeUse],
        base_wild: Option<&Wildcard>,
    ) -> (Vec<AttributeUse>, Option<Wildcard>) {
        let mut uses: Vec<AttributeUse> = Vec::new();
        for b in base_attrs {
            let bname = self.c.attributes[b.decl].name.clone();
            let own_use = own
                .uses
                .iter()
                .find(|u| self.c.attributes[u.decl].name == bname);
            if own.prohibited.contains(&bname) && own_use.is_none() {
                if b.required {
                    self.err(t.doc, t.node, format!("attribute {bname} is required in the base type and cannot be prohibited"));
                }
                continue;
            }
            match own_use {
                Some(o) => {
                    self.check_attribute_use_restricts(t, &bname, o, b);
                    uses.push(o.clone());
                }
                None => uses.push(b.clone()),
            }
        }
        self.add_restricting_attribute_uses(t, own, base_attrs, base_wild, &mut uses);
        let wildcard = own.wildcard.clone();
        if let Some(w) = &wildcard {
            self.check_wildcard_restricts(t, w, base_wild);
        }
        (uses, wildcard)
    }

    /// derivation-ok-restriction 2.1: a restricting use stays required, has a type derived
    /// from the base use's, and keeps its fixed value.
    fn check_attribute_use_restricts(
        &mut self,
        t: &Finalizing,
        bname: &QName,
        o: &AttributeUse,
        b: &AttributeUse,
    ) {
        let (doc, node) = (t.doc, t.node);
        if b.required && !o.required {
            self.err(
                doc,
                node,
                format!("attribute {bname} is required in the base type and must stay required"),
            );
        }
        let (ot, bt) = (
            self.c.attributes[o.decl].type_id,
            self.c.attributes[b.decl].type_id,
        );
        if !self.c.derives_from(ot, bt, DerivSet::default()) {
            self.err(
                doc,
                node,
                format!("the type of attribute {bname} does not derive from its type in the base"),
            );
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
    }

    /// derivation-ok-restriction 2.2: uses the base does not have must be allowed by its
    /// attribute wildcard (anything goes when restricting xs:anyType).
    fn add_restricting_attribute_uses(
        &mut self,
        t: &Finalizing,
        own: &AttrSet,
        base_attrs: &[AttributeUse],
        base_wild: Option<&Wildcard>,
        uses: &mut Vec<AttributeUse>,
    ) {
        for o in &own.uses {
            let name = self.c.attributes[o.decl].name.clone();
            if base_attrs
                .iter()
                .any(|b| self.c.attributes[b.decl].name == name)
            {
                continue;
            }
            let allowed = base_wild.is_some_and(|w| w.ns.allows(name.ns.as_deref()));
            if !allowed && t.base != ANY_TYPE {
                self.err(t.doc, t.node, format!("attribute {name} is not in the base type {} (a restriction cannot add attributes)", self.c.type_name(t.base)));
            }
            uses.push(o.clone());
        }
    }

    /// derivation-ok-restriction 4: the wildcard is a subset of the base's, and no weaker.
    fn check_wildcard_restricts(
        &mut self,
        t: &Finalizing,
        w: &Wildcard,
        base_wild: Option<&Wildcard>,
    ) {
        let (doc, node, base) = (t.doc, t.node, t.base);
        match base_wild {
            None if base != ANY_TYPE => self.err(
                doc,
                node,
                "a restriction cannot add an attribute wildcard the base type lacks".into(),
            ),
            Some(b) if !wildcard_subset(w, b) => self.err(
                doc,
                node,
                "the attribute wildcard is not a subset of the base type's".into(),
            ),
            Some(b) if base != ANY_TYPE && process_weaker(w.process, b.process) => self.err(
                doc,
                node,
                "the attribute wildcard's processContents is weaker than the base type's".into(),
            ),
            _ => {}
        }
    }

    /// ct-props-correct 5: at most one attribute use of type xs:ID, the base's included.
    fn check_one_id_attribute(&mut self, t: &Finalizing, uses: &[AttributeUse]) {
        let ids = uses
            .iter()
            .filter(|u| self.c.attributes[u.decl].st.id_kind() == Some(datatypes::IdKind::Id))
            .count();
        if ids > 1 {
            self.err(
                t.doc,
                t.node,
                "a complex type may have at most one attribute of type xs:ID".into(),
            );
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
                if let Err(msg) = crate::schema::restriction::particle_restricts(&self.c, p, bp) {
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
}

/// §3.4.2 complex content, clauses 1-2: the type's own (effective) content, before its base
/// is considered.
fn own_complex_content(mixed: bool, particle: Option<Particle>) -> Content {
    // §3.4.2: an empty group (or none) means empty content.
    let own = particle.filter(|p| !is_empty_particle(p));
    match own {
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
    }
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
