//! `<xs:redefine>` (XSD 1.0 §4.2.2): the redefined component keeps its name, the original moves
//! to a hidden name that the redefinition's self-reference resolves to (see `Builder::redirect`),
//! and src-redefine 5-7 are checked.

use super::{AttrSet, Builder, Def, Kind};
use crate::names::QName;
use crate::schema::document::Node;
use crate::schema::wildcard::wildcard_subset;

impl<'a> Builder<'a> {
    /// Innermost first: a redefined document may itself redefine (documents load outside-in).
    pub(super) fn apply_redefines(&mut self, redefines: Vec<(usize, &'a Node)>) {
        for (i, r) in redefines.into_iter().rev() {
            for child in r.xs_children() {
                let Some(kind) = Kind::of(&child.local) else {
                    continue;
                };
                self.apply_redefine(i, child, kind);
            }
        }
    }

    /// Moves the original of one redefined component to a hidden name and puts the
    /// redefinition in its place.
    fn apply_redefine(&mut self, i: usize, child: &'a Node, kind: Kind) {
        let Some(name) = child.attr("name") else {
            self.err(
                i,
                child,
                format!("a redefined <xs:{}> needs a name", child.local),
            );
            return;
        };
        let q = QName::new(self.docs[i].ctx.tns.as_deref(), name.trim());
        let key = (kind, q.clone());
        let Some(orig) = self.table.remove(&key) else {
            self.err(
                i,
                child,
                format!(
                    "<xs:redefine> redefines {} {q}, which the redefined schema does not define",
                    kind.noun()
                ),
            );
            return;
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
            Kind::Type => self.check_type_redefinition(doc, node, q),
            Kind::Group | Kind::AttributeGroup => {
                self.check_group_redefinition(doc, node, kind, q, hidden)
            }
            _ => {}
        }
    }

    /// src-redefine 5: the redefinition of a type derives from the type itself.
    fn check_type_redefinition(&mut self, doc: usize, node: &'a Node, q: &QName) {
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

    /// src-redefine 6-7: at most one self-reference (with occurs 1 for a group); with none,
    /// the redefinition must restrict the original, checked once everything is built.
    fn check_group_redefinition(
        &mut self,
        doc: usize,
        node: &'a Node,
        kind: Kind,
        q: &QName,
        hidden: QName,
    ) {
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

    /// src-redefine 6.2.2 / 7.2.2: a group or attribute group redefined without a
    /// self-reference must be a valid restriction of the original.
    pub(super) fn check_redefine_restrictions(&mut self) {
        let pending = std::mem::take(&mut self.redefine_restrictions);
        for (kind, q, hidden, doc, node) in pending {
            match kind {
                Kind::Group => {
                    if let (Some(new), Some(orig)) =
                        (self.named_group(&q), self.named_group(&hidden))
                        && let Err(e) =
                            crate::schema::restriction::particle_restricts(&self.c, &new, &orig)
                    {
                        self.err(doc, node, format!("the redefinition of group {q} is not a restriction of the original: {e}"));
                    }
                }
                Kind::AttributeGroup => {
                    if let (Some(new), Some(orig)) =
                        (self.named_attr_group(&q), self.named_attr_group(&hidden))
                    {
                        self.check_attr_group_restricts(doc, node, &q, &new, &orig);
                    }
                }
                _ => {}
            }
        }
    }

    /// An attribute group restricts another when it adds no attribute the original does not
    /// allow, keeps every required one required, and does not widen the wildcard.
    fn check_attr_group_restricts(
        &mut self,
        doc: usize,
        node: &Node,
        q: &QName,
        new: &AttrSet,
        orig: &AttrSet,
    ) {
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
                self.err(
                    doc,
                    node,
                    format!(
                        "the redefinition of attribute group {q} drops the required attribute {n}"
                    ),
                );
            }
        }
        if let Some(w) = &new.wildcard
            && !orig
                .wildcard
                .as_ref()
                .is_some_and(|o| wildcard_subset(w, o))
        {
            self.err(
                doc,
                node,
                format!("the redefinition of attribute group {q} widens its attribute wildcard"),
            );
        }
    }
}

/// The `<xs:{local} ref="…name">` elements under `node` (the self-references of a
/// redefinition), matched on the local part of the reference only.
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
