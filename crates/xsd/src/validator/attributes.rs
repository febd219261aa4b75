//! Attributes of an opened element: checked against its complex type's attribute uses and
//! wildcard (or refused on a simple type), assessed laxly on an undeclared element; then the
//! element is handed to the identity-constraint tracker with the attribute values it needs.
//!
//! The steps run for every element and most have one caller: they are `#[inline(always)]`
//! because, split out of one function, the compiler left them out of line and the
//! per-element cost rose (measured with callgrind on bench/schema/records.xsd). Error paths
//! are `#[cold]`.

use std::io::BufRead;
use std::sync::Arc;

use super::{KeyValue, Ns, Run, set_str};
use crate::datatypes::{IdKind, SimpleType, quote_value};
use crate::names::{QName, XSI};
use crate::schema::components::*;
use crate::xml::{Attribute, XmlReader};

/// An attribute as selector and field paths see it: namespace, local name, typed value.
type IdcAttr = (Option<String>, String, Option<KeyValue>);

/// What an element's attribute checks gather as they go.
#[derive(Default)]
struct AttrTally {
    /// Indexes of the type's attribute uses that occurred.
    seen_uses: Vec<usize>,
    /// Attributes of type xs:ID so far (cvc-complex-type.5.2: at most one per element).
    id_attributes: u32,
    /// Filled only when the schema has identity constraints.
    idc_attrs: Vec<IdcAttr>,
}

impl Run<'_> {
    /// Attribute checks for a typed element; then identity-constraint bookkeeping.
    pub(super) fn after_push<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        elem: Option<ElemId>,
        t: TypeId,
        line: u64,
        column: u64,
        attrs: &[Attribute],
    ) {
        let comps = self.comps();
        let elem_name = self
            .stack
            .last()
            .map(|f| f.name.clone())
            .unwrap_or_default();
        let idc_attrs = match comps.types.get(t) {
            Some(TypeDef::Complex(ct)) => {
                self.complex_type_attributes(reader, ct, &elem_name, (line, column), attrs)
            }
            _ => {
                self.simple_type_attributes(&elem_name, line, column, attrs);
                Vec::new()
            }
        };
        self.idc_start_typed(reader, elem, idc_attrs, line, column);
    }

    /// Each attribute against the type's uses and wildcard, then the uses that did not occur:
    /// required ones are missing, defaulted ones count for identity constraints.
    #[inline(always)]
    fn complex_type_attributes<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        ct: &ComplexTypeDef,
        elem_name: &str,
        (line, column): (u64, u64),
        attrs: &[Attribute],
    ) -> Vec<IdcAttr> {
        let ns = Ns(reader);
        let mut tally = AttrTally::default();
        for a in attrs {
            self.check_attribute(&ns, ct, elem_name, a, &mut tally);
        }
        self.cur_attr_on = false;
        let comps = self.comps();
        for (i, u) in ct.attributes.iter().enumerate() {
            if tally.seen_uses.contains(&i) {
                continue;
            }
            let d = &comps.attributes[u.decl];
            if u.required {
                self.error(
                    "attribute_missing",
                    line,
                    column,
                    format!(
                        "required attribute {} is missing from <{elem_name}>",
                        d.name.local
                    ),
                );
            } else if let Some(c) = u.constraint.as_ref().or(d.constraint.as_ref())
                && let Some(v) = &c.value
            {
                tally.idc_attrs.push((
                    d.name.ns.clone(),
                    d.name.local.clone(),
                    Some(KeyValue {
                        value: v.clone(),
                        lexical: c.lexical.clone(),
                    }),
                ));
            }
        }
        tally.idc_attrs
    }

    /// One attribute of an element of complex type `ct`: allowed, of a valid value, the
    /// element's only ID, and its fixed value kept.
    #[inline(always)]
    fn check_attribute<R: BufRead>(
        &mut self,
        ns: &Ns<'_, R>,
        ct: &ComplexTypeDef,
        elem_name: &str,
        a: &Attribute,
        tally: &mut AttrTally,
    ) {
        let shown: std::borrow::Cow<str> = match &a.prefix {
            Some(p) => format!("{p}:{}", a.local).into(),
            None => a.local.as_str().into(),
        };
        // Violations of this attribute point at it, not at its element.
        let (line, column) = (a.line, a.column);
        set_str(&mut self.cur_attr, &shown);
        self.cur_attr_on = true;
        if a.namespace.as_deref() == Some(XSI) {
            match a.local.as_str() {
                "type" | "nil" | "schemaLocation" | "noNamespaceSchemaLocation" => {}
                _ => self.error(
                    "attribute_undeclared",
                    line,
                    column,
                    format!("attribute {shown} is not an XML Schema instance attribute"),
                ),
            }
            return;
        }
        let Some((st, constraint)) = self.attribute_governor(ct, elem_name, a, &shown, tally)
        else {
            return;
        };
        if st
            .as_ref()
            .is_some_and(|st| st.id_kind() == Some(IdKind::Id))
        {
            tally.id_attributes += 1;
            if tally.id_attributes == 2 {
                self.error(
                    "attribute_invalid",
                    line,
                    column,
                    format!("attribute {shown} is a second attribute of type xs:ID on <{elem_name}>; an element may have only one"),
                );
            }
        }
        let kv = match st {
            Some(st) => self.check_attribute_value(ns, a, &shown, &st, constraint.as_ref()),
            None => None,
        };
        if self.has_idcs {
            tally
                .idc_attrs
                .push((a.namespace.clone(), a.local.clone(), kv));
        }
    }

    /// The attribute's value against its type and its fixed value; the typed value when
    /// identity constraints or the fixed value need it.
    #[inline(always)]
    fn check_attribute_value<R: BufRead>(
        &mut self,
        ns: &Ns<'_, R>,
        a: &Attribute,
        shown: &str,
        st: &Arc<SimpleType>,
        constraint: Option<&ValueConstraint>,
    ) -> Option<KeyValue> {
        let (line, column) = (a.line, a.column);
        let want = self.has_idcs || constraint.is_some_and(|c| c.fixed);
        let kv = self.check_value(
            st,
            &a.value,
            ns,
            line,
            column,
            &|| format!("attribute {shown}"),
            "attribute_invalid",
            want,
            self.attribute_is_sensitive(&a.local),
        );
        if let (Some(kv), Some(c)) = (&kv, constraint.filter(|c| c.fixed))
            && c.value.as_ref() != Some(&kv.value)
        {
            self.error(
                "attribute_fixed",
                line,
                column,
                format!(
                    "attribute {shown} must be {}, found {}",
                    quote_value(&c.lexical),
                    self.shown(&a.value, Some(&a.local))
                ),
            );
        }
        kv
    }

    /// The simple type and value constraint an attribute is checked with: its attribute use,
    /// else what the type's wildcard says (no type: not checked). `None` once reported as
    /// not allowed.
    #[inline(always)]
    fn attribute_governor(
        &mut self,
        ct: &ComplexTypeDef,
        elem_name: &str,
        a: &Attribute,
        shown: &str,
        tally: &mut AttrTally,
    ) -> Option<(Option<Arc<SimpleType>>, Option<ValueConstraint>)> {
        let comps = self.comps();
        let (line, column) = (a.line, a.column);
        let found = ct.attributes.iter().enumerate().find(|(_, u)| {
            comps.attributes[u.decl]
                .name
                .is(a.namespace.as_deref(), &a.local)
        });
        if let Some((i, u)) = found {
            tally.seen_uses.push(i);
            let d = &comps.attributes[u.decl];
            return Some((
                Some(d.st.clone()),
                u.constraint.clone().or_else(|| d.constraint.clone()),
            ));
        }
        match &ct.attribute_wildcard {
            Some(w) if w.ns.allows(a.namespace.as_deref()) => {
                let q = QName {
                    ns: a.namespace.clone(),
                    local: a.local.clone(),
                };
                match (w.process, comps.global_attributes.get(&q)) {
                    (ProcessContents::Skip, _) => Some((None, None)),
                    (_, Some(&d)) => Some((
                        Some(comps.attributes[d].st.clone()),
                        comps.attributes[d].constraint.clone(),
                    )),
                    (ProcessContents::Lax, None) => Some((None, None)),
                    (ProcessContents::Strict, None) => {
                        self.error(
                            "attribute_undeclared",
                            line,
                            column,
                            format!(
                                "attribute {shown} matches a strict wildcard but has no declaration"
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                let allowed: Vec<String> = ct
                    .attributes
                    .iter()
                    .map(|u| comps.attributes[u.decl].name.local.clone())
                    .collect();
                let hint = if allowed.is_empty() {
                    "it allows no attributes".to_owned()
                } else {
                    format!("allowed: {}", allowed.join(", "))
                };
                self.error(
                    "attribute_undeclared",
                    line,
                    column,
                    format!("attribute {shown} is not allowed on <{elem_name}> ({hint})"),
                );
                None
            }
        }
    }

    /// An element of simple type may carry only the xsi: attributes.
    #[inline(always)]
    fn simple_type_attributes(
        &mut self,
        elem_name: &str,
        line: u64,
        column: u64,
        attrs: &[Attribute],
    ) {
        for a in attrs {
            if a.namespace.as_deref() == Some(XSI)
                && matches!(
                    a.local.as_str(),
                    "type" | "nil" | "schemaLocation" | "noNamespaceSchemaLocation"
                )
            {
                continue;
            }
            self.error(
                "attribute_undeclared",
                line,
                column,
                format!(
                    "attribute {} is not allowed: <{elem_name}> has a simple type",
                    a.local
                ),
            );
        }
    }

    /// Identity-constraint bookkeeping for a typed element: its own constraints start, and the
    /// active ones see its name and attributes.
    #[inline(always)]
    fn idc_start_typed<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        elem: Option<ElemId>,
        mut idc_attrs: Vec<IdcAttr>,
        line: u64,
        column: u64,
    ) {
        let comps = self.comps();
        let idcs: &[Arc<crate::identity::IdcDef>] = match elem {
            Some(e) => &comps.elements[e].idcs,
            None => &[],
        };
        if idcs.is_empty() && !self.idc.is_active() {
            return;
        }
        // The element's expanded name is needed by selector paths (borrowed: this runs for
        // every element inside a constraint's scope).
        let shown: Arc<str> = self
            .stack
            .last()
            .map(|f| f.name.clone())
            .unwrap_or_else(|| Arc::from(""));
        let local = shown.rsplit(':').next().unwrap_or("");
        let prefix = shown.split_once(':').map(|(p, _)| p).unwrap_or("");
        let ns = reader.lookup_namespace(prefix).filter(|s| !s.is_empty());
        let borrowed: Vec<(Option<&str>, &str, Option<KeyValue>)> = idc_attrs
            .iter_mut()
            .map(|(n, l, v)| (n.as_deref(), l.as_str(), v.take()))
            .collect();
        let errs = self
            .idc
            .start_element(ns, local, &borrowed, idcs, line, column);
        for e in errs {
            self.error(e.code, e.line, e.column, e.message.clone());
        }
    }

    /// Attributes of an element assessed laxly (no declaration, no type).
    pub(super) fn lax_attributes<R: BufRead>(
        &mut self,
        reader: &XmlReader<R>,
        attrs: &[Attribute],
    ) {
        // Attributes of an undeclared element are validated only where global declarations exist.
        let comps = self.comps();
        let ns = Ns(reader);
        for a in attrs {
            set_str(&mut self.cur_attr, &a.local);
            self.cur_attr_on = true;
            let (line, column) = (a.line, a.column);
            let q = QName {
                ns: a.namespace.clone(),
                local: a.local.clone(),
            };
            if let Some(&d) = comps.global_attributes.get(&q) {
                let st = comps.attributes[d].st.clone();
                self.check_value(
                    &st,
                    &a.value,
                    &ns,
                    line,
                    column,
                    &|| format!("attribute {}", a.local),
                    "attribute_invalid",
                    self.has_idcs,
                    self.attribute_is_sensitive(&a.local),
                );
            }
        }
        self.cur_attr_on = false;
    }

    /// Identity-constraint bookkeeping for an element that has no type: only its name.
    pub(super) fn idc_start(
        &mut self,
        name: &QName,
        attrs: &[(Option<&str>, &str, Option<KeyValue>)],
        line: u64,
        column: u64,
    ) {
        if !self.idc.is_active() {
            return;
        }
        let errs =
            self.idc
                .start_element(name.ns.as_deref(), &name.local, attrs, &[], line, column);
        for e in errs {
            self.error(e.code, e.line, e.column, e.message.clone());
        }
    }
}
