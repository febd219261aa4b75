//! Simple type definitions (XSD 1.0 §3.14): restriction, list and union, and the facets a
//! restriction lists.

use std::sync::Arc;

use super::Builder;
use crate::datatypes::{FacetKind, RawFacet, SimpleType, Variety};
use crate::names::QName;
use crate::schema::components::*;
use crate::schema::document::Node;

impl<'a> Builder<'a> {
    pub(super) fn simple_type_of(&self, t: TypeId) -> Option<Arc<SimpleType>> {
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
    pub(super) fn simple_type(
        &mut self,
        doc: usize,
        node: &'a Node,
        name: Option<QName>,
    ) -> Option<TypeId> {
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
            "restriction" => self.simple_restriction(doc, body, name, label, fin),
            "list" => self.simple_list(doc, body, name, label, fin),
            "union" => self.simple_union(doc, body, name, label, fin),
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

    /// The type a restriction or list builds on: named by attribute `attr` or defined by an
    /// inline `<xs:simpleType>`, exactly one of the two. `attr_phrase` names the attribute
    /// in messages ("a base", "an itemType").
    fn named_or_inline_type(
        &mut self,
        doc: usize,
        body: &'a Node,
        attr: &str,
        attr_phrase: &str,
    ) -> Option<TypeId> {
        let what = body.local.as_str();
        match (body.attr(attr), body.child("simpleType")) {
            (Some(_), Some(_)) => {
                self.err(
                    doc,
                    body,
                    format!(
                        "a {what} has either {attr_phrase} attribute or a simpleType child, not both"
                    ),
                );
                None
            }
            (None, None) => {
                self.err(
                    doc,
                    body,
                    format!("a {what} needs {attr_phrase} attribute or a simpleType child"),
                );
                None
            }
            (Some(b), None) => self.type_ref(doc, body, b),
            (None, Some(st)) => self.simple_type(doc, st, None),
        }
    }

    /// `<xs:restriction>` of a simple type: a simple, non-final base other than the urtypes,
    /// narrowed by facets.
    fn simple_restriction(
        &mut self,
        doc: usize,
        body: &'a Node,
        name: Option<QName>,
        label: Option<String>,
        fin: DerivSet,
    ) -> Option<TypeId> {
        let base_id = self.named_or_inline_type(doc, body, "base", "a base")?;
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

    /// `<xs:list>`: a list of a simple item type that is not final for list.
    fn simple_list(
        &mut self,
        doc: usize,
        body: &'a Node,
        name: Option<QName>,
        label: Option<String>,
        fin: DerivSet,
    ) -> Option<TypeId> {
        let item_id = self.named_or_inline_type(doc, body, "itemType", "an itemType")?;
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

    /// `<xs:union>`: members named by memberTypes, then the inline ones, in that order.
    fn simple_union(
        &mut self,
        doc: usize,
        body: &'a Node,
        name: Option<QName>,
        label: Option<String>,
        fin: DerivSet,
    ) -> Option<TypeId> {
        let members = self.union_member_ids(doc, body)?;
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

    /// Builds every member before giving up, so that each broken member is reported.
    fn union_member_ids(&mut self, doc: usize, body: &'a Node) -> Option<Vec<TypeId>> {
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
        Some(members)
    }

    /// The facets among `node`'s children, unparsed (their values are checked against the
    /// base type by `SimpleType::restrict`).
    pub(super) fn facets(&mut self, doc: usize, node: &Node) -> Vec<RawFacet> {
        let mut out = Vec::new();
        for f in node.xs_children() {
            let Some(kind) = FacetKind::from_local_name(&f.local) else {
                continue;
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
}

/// Whether simple type `d` is `b` or derives from it (by its chain of bases).
pub(super) fn simple_derives_from(d: &Arc<SimpleType>, b: &Arc<SimpleType>) -> bool {
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
