//! Particles and model groups (XSD 1.0 §3.8-3.10): element particles and references, group
//! definitions and references, compositors, occurrence bounds and wildcards.

use std::sync::Arc;

use super::{Builder, Kind};
use crate::names::QName;
use crate::schema::components::*;
use crate::schema::document::Node;

impl<'a> Builder<'a> {
    /// `minOccurs`/`maxOccurs` (1 when absent); values beyond `u32::MAX` saturate to it.
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
    pub(super) fn particle(&mut self, doc: usize, node: &'a Node, top: bool) -> Option<Particle> {
        let (min, max) = self.occurs(doc, node)?;
        match node.local.as_str() {
            "element" => {
                let term = if let Some(r) = node.attr("ref") {
                    Term::Element(self.element_ref(doc, node, r)?)
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
            "group" => self.group_ref(doc, node, top, min, max),
            "all" | "choice" | "sequence" => Some(self.model_group(doc, node, top, min, max)),
            other => {
                self.err(doc, node, format!("<xs:{other}> is not a particle"));
                None
            }
        }
    }

    /// `<xs:element ref="…">`: a reference carries occurrence bounds only; everything else
    /// belongs to the global declaration it names.
    fn element_ref(&mut self, doc: usize, node: &'a Node, r: &str) -> Option<ElemId> {
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
                "an element reference cannot have a type or identity constraints".into(),
            );
        }
        let q = self.qname(doc, node, r)?;
        if !self.check_ns_visible(doc, node, &q) {
            return None;
        }
        match self.global_element(&q) {
            Some(e) => Some(e),
            None => {
                self.err(doc, node, format!("element {q} is not declared"));
                None
            }
        }
    }

    /// `<xs:group ref="…">`: the named group's model group with this reference's occurrence
    /// bounds; an xs:all group may only be a whole content model, at most once.
    fn group_ref(
        &mut self,
        doc: usize,
        node: &'a Node,
        top: bool,
        min: u32,
        max: Max,
    ) -> Option<Particle> {
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
            self.err(
                doc,
                node,
                "a group whose content is xs:all must be the whole content model, with maxOccurs 1"
                    .into(),
            );
        }
        Some(Particle {
            min,
            max,
            term: p.term,
        })
    }

    /// `<xs:all>`, `<xs:choice>`, `<xs:sequence>` and their particles (XSD 1.0 restricts
    /// xs:all: only at the top, occurring at most once, over particles occurring at most once).
    fn model_group(
        &mut self,
        doc: usize,
        node: &'a Node,
        top: bool,
        min: u32,
        max: Max,
    ) -> Particle {
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
        Particle {
            min,
            max,
            term: Term::Group(comp, children),
        }
    }

    /// A named `<xs:group>`: its model group, always occurring once (occurrence bounds belong
    /// to references).
    pub(super) fn named_group(&mut self, q: &QName) -> Option<Particle> {
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

    /// `<xs:any>` or `<xs:anyAttribute>`.
    pub(super) fn wildcard(&mut self, doc: usize, node: &Node) -> Wildcard {
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
}
