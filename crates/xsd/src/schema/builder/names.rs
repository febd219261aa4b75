//! The symbol table and references: registering top-level definitions (with the shape checks
//! of the schema for schemas), resolving QNames against a schema document's namespace
//! bindings, and turning a type reference into a built type.

use super::{Builder, Def, Kind};
use crate::datatypes::{self, BuiltinType};
use crate::names::{QName, XS};
use crate::schema::DiagnosticKind;
use crate::schema::components::*;
use crate::schema::document::Node;

pub(super) fn is_ncname(s: &str) -> bool {
    datatypes::builtin(BuiltinType::NCName)
        .validate(s, &crate::schema::document::NsScope::default())
        .is_ok()
        && s == s.trim()
}

impl<'a> Builder<'a> {
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
        self.apply_redefines(redefines);
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
        if let Some(msg) = crate::schema::s4s::check(node, parent) {
            match crate::schema::s4s::split_kind(&msg) {
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

    pub(super) fn qname(&mut self, doc: usize, node: &Node, value: &str) -> Option<QName> {
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
    pub(super) fn check_ns_visible(&mut self, doc: usize, node: &Node, q: &QName) -> bool {
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

    pub(super) fn redirect(&self, kind: Kind, q: &QName) -> QName {
        if let Some((k, name, hidden)) = &self.self_ref
            && *k == kind
            && name == q
        {
            return hidden.clone();
        }
        q.clone()
    }

    pub(super) fn type_ref(&mut self, doc: usize, node: &Node, value: &str) -> Option<TypeId> {
        let q = self.qname(doc, node, value)?;
        if !self.check_ns_visible(doc, node, &q) {
            return None;
        }
        let q = self.redirect(Kind::Type, &q);

        self.named_type(&q, Some((doc, node)))
    }

    pub(super) fn named_type(&mut self, q: &QName, from: Option<(usize, &Node)>) -> Option<TypeId> {
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
}
