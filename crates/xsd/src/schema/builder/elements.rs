//! Element declarations (XSD 1.0 §3.3) with their identity constraints (§3.11), substitution
//! groups, and the checks that wait until every type is final: default/fixed values,
//! substitution group membership, keyref targets.

use std::collections::HashSet;
use std::sync::Arc;

use super::names::is_ncname;
use super::{Builder, Kind};
use crate::datatypes;
use crate::identity::{IdcDef, IdcKind};
use crate::names::QName;
use crate::schema::components::*;
use crate::schema::document::Node;
use crate::schema::{Diagnostic, DiagnosticKind};

impl<'a> Builder<'a> {
    /// A global element declaration by name, built on first use.
    pub(super) fn global_element(&mut self, q: &QName) -> Option<ElemId> {
        if let Some(&id) = self.elem_memo.get(q) {
            return Some(id);
        }
        let def = self.table.get(&(Kind::Element, q.clone())).cloned()?;
        self.element_decl(def.doc, def.node, true)
    }

    /// An `<xs:element>` declaration, global or local (references are `element_ref`).
    pub(super) fn element_decl(
        &mut self,
        doc: usize,
        node: &'a Node,
        global: bool,
    ) -> Option<ElemId> {
        let qname = self.element_qname(doc, node, global)?;
        self.check_element_decl_attrs(doc, node, global);
        let id = self.push_element_decl(doc, node, global, &qname);
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
            self.substitution_group_head(doc, node, &qname)
        } else {
            None
        };
        let type_id = self.element_type(doc, node, anon, head);
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
            // Checked once every type is final (`check_element_values`): a complex type's
            // content is only known then.
            (Some(_), None) | (None, Some(_)) => self.pending_elem_values.push((id, node, doc)),
            _ => {}
        }
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

    /// The declared name: a global declaration is always in the target namespace, a local
    /// one as its `form` (or elementFormDefault) says.
    fn element_qname(&mut self, doc: usize, node: &Node, global: bool) -> Option<QName> {
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
        let qualified = global || self.local_form(doc, node, ctx.element_qualified);
        Some(QName::new(
            if qualified { ctx.tns.as_deref() } else { None },
            name,
        ))
    }

    /// Attributes that only a global, or only a local, declaration may have.
    fn check_element_decl_attrs(&mut self, doc: usize, node: &Node, global: bool) {
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
    }

    /// Pushes the declaration with its own properties and, for now, xs:anyType, so that a
    /// recursive reference to a global element resolves while its type is built.
    fn push_element_decl(
        &mut self,
        doc: usize,
        node: &Node,
        global: bool,
        qname: &QName,
    ) -> ElemId {
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
        id
    }

    /// The head named by `substitutionGroup`, built first (its type is this element's default
    /// type); a cycle of heads is left to `check_substitution_groups`.
    fn substitution_group_head(
        &mut self,
        doc: usize,
        node: &Node,
        qname: &QName,
    ) -> Option<ElemId> {
        let h = node.attr("substitutionGroup")?;
        let hq = self.qname(doc, node, h)?;
        if !self.check_ns_visible(doc, node, &hq) {
            return None;
        }
        if !self.building.insert((Kind::Element, qname.clone())) {
            return None;
        }
        let r = self.global_element(&hq);
        self.building.remove(&(Kind::Element, qname.clone()));
        if r.is_none() && !self.table.contains_key(&(Kind::Element, hq.clone())) {
            self.err(
                doc,
                node,
                format!("substitution group head {hq} is not declared"),
            );
        }
        r
    }

    /// The type attribute, else the anonymous type, else the head's type, else xs:anyType.
    fn element_type(
        &mut self,
        doc: usize,
        node: &'a Node,
        anon: Option<&'a Node>,
        head: Option<ElemId>,
    ) -> TypeId {
        if let Some(t) = node.attr("type") {
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
        }
    }

    /// `<xs:unique>`, `<xs:key>` or `<xs:keyref>`; keyrefs are resolved once all are known
    /// (`check_keyrefs`).
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

    /// A keyref refers to a key or unique constraint with as many fields.
    pub(super) fn check_keyrefs(&mut self) {
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

    /// An element's default or fixed value is valid for its (now final) type, which must have
    /// simple or mixed, emptiable content.
    pub(super) fn check_element_values(&mut self) {
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

    /// Substitution groups, once every type is built: no cycles, each member's type derives
    /// from its head's as the head's `final` permits, and each member is recorded as a
    /// substitute of every head up its chain.
    pub(super) fn check_substitution_groups(&mut self) {
        let n = self.c.elements.len();
        for id in 0..n {
            let Some(head) = self.c.elements[id].subst_group else {
                continue;
            };
            let name = self.c.elements[id].name.clone();
            if self.in_substitution_cycle(id) {
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
            self.add_substitute_up_the_chain(id, head);
        }
    }

    /// Whether following `id`'s heads comes back to an element already seen.
    fn in_substitution_cycle(&self, id: ElemId) -> bool {
        let mut seen = HashSet::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            if !seen.insert(c) {
                return true;
            }
            cur = self.c.elements[c].subst_group;
        }
        false
    }

    /// Records `id` as a substitute of `head` and of every head above it. The guard is
    /// defensive: cycles were cut above, but the walk must end whatever the schema says.
    fn add_substitute_up_the_chain(&mut self, id: ElemId, head: ElemId) {
        let n = self.c.elements.len();
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
