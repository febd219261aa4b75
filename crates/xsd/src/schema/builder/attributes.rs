//! Attribute declarations (XSD 1.0 §3.2), attribute uses and prohibitions, and attribute
//! group definitions (§3.6) with their wildcards.

use std::sync::Arc;

use super::names::is_ncname;
use super::{AttrSet, Builder, Kind};
use crate::datatypes::{self, BuiltinType, FacetKind, RawFacet, SimpleType};
use crate::names::{QName, XSI};
use crate::schema::components::*;
use crate::schema::document::Node;
use crate::schema::wildcard::wildcard_intersection;

impl<'a> Builder<'a> {
    /// A global attribute declaration by name, built on first use.
    pub(super) fn global_attribute(&mut self, q: &QName) -> Option<AttrId> {
        if let Some(&id) = self.attr_memo.get(q) {
            return Some(id);
        }
        let def = self.table.get(&(Kind::Attribute, q.clone())).cloned()?;
        let id = self.attribute_decl(def.doc, def.node, true)?;
        self.attr_memo.insert(q.clone(), id);
        self.c.global_attributes.insert(q.clone(), id);
        Some(id)
    }

    /// The `default` or `fixed` value of an attribute declaration or use, valid for `st`.
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

    /// An `<xs:attribute>` declaration, global or local (references are `attribute_ref`).
    fn attribute_decl(&mut self, doc: usize, node: &'a Node, global: bool) -> Option<AttrId> {
        let qname = self.attribute_qname(doc, node, global)?;
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

    /// The declared name: a global declaration is always in the target namespace, a local
    /// one as its `form` (or attributeFormDefault) says; never `xmlns`, never in the xsi
    /// namespace.
    fn attribute_qname(&mut self, doc: usize, node: &Node, global: bool) -> Option<QName> {
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
        let qualified = global || self.local_form(doc, node, ctx.attribute_qualified);
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
        Some(qname)
    }

    /// Attribute uses, prohibitions and the wildcard of a type body or attribute group.
    pub(super) fn attr_set(&mut self, doc: usize, parent: &'a Node) -> AttrSet {
        let mut set = AttrSet::default();
        let mut group_wildcards: Vec<Option<Wildcard>> = Vec::new();
        for c in parent.xs_children() {
            match c.local.as_str() {
                "attribute" => self.add_attribute_use(doc, c, &mut set),
                "attributeGroup" => {
                    if let Some(wildcard) = self.add_attribute_group_ref(doc, c, &mut set) {
                        group_wildcards.push(wildcard);
                    }
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

    /// A local `<xs:attribute>` (a declaration or a reference) as a use, or a prohibition.
    fn add_attribute_use(&mut self, doc: usize, c: &'a Node, set: &mut AttrSet) {
        let use_ = c.attr("use").map(str::trim).unwrap_or("optional");
        if !matches!(use_, "optional" | "required" | "prohibited") {
            self.err(
                doc,
                c,
                format!("use='{use_}' is not optional, required or prohibited"),
            );
            return;
        }
        if c.attr("default").is_some() && use_ != "optional" {
            self.err(
                doc,
                c,
                "an attribute with a default must have use='optional'".into(),
            );
            return;
        }
        let (decl, constraint) = if let Some(r) = c.attr("ref") {
            let Some(found) = self.attribute_ref(doc, c, r) else {
                return;
            };
            found
        } else {
            let Some(id) = self.attribute_decl(doc, c, false) else {
                return;
            };
            (id, self.c.attributes[id].constraint.clone())
        };
        let name = self.c.attributes[decl].name.clone();
        if use_ == "prohibited" {
            set.prohibited.push(name);
            return;
        }
        if set
            .uses
            .iter()
            .any(|u| self.c.attributes[u.decl].name == name)
        {
            self.err(doc, c, format!("attribute {name} is declared twice"));
            return;
        }
        set.uses.push(AttributeUse {
            decl,
            required: use_ == "required",
            constraint,
        });
    }

    /// `<xs:attribute ref="…">`: the global declaration (the `xml:` ones need no import) and
    /// the use's own default or fixed value, which may not change a fixed declaration.
    fn attribute_ref(
        &mut self,
        doc: usize,
        c: &Node,
        r: &str,
    ) -> Option<(AttrId, Option<ValueConstraint>)> {
        if c.attr("name").is_some()
            || c.attr("type").is_some()
            || c.attr("form").is_some()
            || c.child("simpleType").is_some()
        {
            self.err(
                doc,
                c,
                "an attribute reference cannot have name, type, form or a simpleType".into(),
            );
            return None;
        }
        let q = self.qname(doc, c, r)?;
        if !self.check_ns_visible(doc, c, &q) {
            return None;
        }
        let Some(id) = self
            .global_attribute(&q)
            .or_else(|| xml_ns_attribute(&mut self.c, &q))
        else {
            self.err(doc, c, format!("attribute {q} is not declared"));
            return None;
        };
        let st = self.c.attributes[id].st.clone();
        let vc = self.value_constraint(doc, c, &st);
        if let (Some(Some(decl_vc)), Some(use_vc)) =
            (self.c.attributes.get(id).map(|a| a.constraint.clone()), &vc)
            && decl_vc.fixed
            && (!use_vc.fixed || use_vc.value != decl_vc.value)
        {
            self.err(
                doc,
                c,
                format!(
                    "attribute {q} is declared fixed to '{}'; a reference cannot change it",
                    decl_vc.lexical
                ),
            );
        }
        Some((id, vc))
    }

    /// `<xs:attributeGroup ref="…">`: adds the group's uses and prohibitions to `set`; returns
    /// the group's wildcard (to intersect with the others), or `None` if the reference failed.
    fn add_attribute_group_ref(
        &mut self,
        doc: usize,
        c: &Node,
        set: &mut AttrSet,
    ) -> Option<Option<Wildcard>> {
        let Some(r) = c.attr("ref") else {
            self.err(doc, c, "a local <xs:attributeGroup> needs a ref".into());
            return None;
        };
        let q = self.qname(doc, c, r)?;
        if !self.check_ns_visible(doc, c, &q) {
            return None;
        }
        let q = self.redirect(Kind::AttributeGroup, &q);
        let g = self.named_attr_group_from(&q, Some((doc, c)))?;
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
                    format!("attribute {n} is declared twice (through attribute group {q})"),
                );
                continue;
            }
            set.uses.push(u);
        }
        set.prohibited.extend(g.prohibited);
        Some(g.wildcard)
    }

    /// A named `<xs:attributeGroup>`, built on first use.
    pub(super) fn named_attr_group(&mut self, q: &QName) -> Option<AttrSet> {
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
        if let Ok(s) = SimpleType::restrict(
            &st,
            None,
            &facets,
            &crate::schema::document::NsScope::default(),
        ) {
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
