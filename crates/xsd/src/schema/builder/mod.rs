//! Builds schema components from the loaded documents (XSD 1.0 Part 1 §3 "XML representation"
//! rules) and checks the constraints on schemas that make a schema invalid.
//!
//! Phase 1 builds every top-level component (lazily following references, with cycle
//! detection). Phase 2 computes each complex type's effective content and attributes from its
//! base, base first, and checks derivations. Phase 3 (in `content`) compiles content models.
//!
//! The builder's methods are spread over one file per kind of component; each adds an
//! `impl Builder` block:
//! - `names`: the symbol table (registration, shape checks), QName resolution, type references;
//! - `redefine`: `<xs:redefine>` (hidden originals, self-references, restriction checks);
//! - `flags`: boolean and block/final attribute values;
//! - `simple`: simple types and facets;
//! - `complex`: complex types, and phase 2 (`finalize`: effective content and attributes);
//! - `particles`: particles, model groups, occurrence ranges, wildcards;
//! - `elements`: element declarations, identity constraints, substitution groups, element values;
//! - `attributes`: attribute declarations, attribute uses and attribute groups.

mod attributes;
mod complex;
mod elements;
mod flags;
mod names;
mod particles;
mod redefine;
mod simple;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::components::*;
use super::document::Node;
use super::loader::Doc;
use super::{Diagnostic, DiagnosticKind};
use crate::datatypes::{self, BuiltinType, SimpleType};
use crate::identity::IdcDef;
use crate::names::QName;

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

/// The built-in simple types, parents before children so that a base's id is known when its
/// children are registered.
const BUILTINS_BASE_FIRST: [BuiltinType; 45] = [
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
        self.push_any_type();
        self.register_builtin_simple_types();
        self.c.global_types.insert(QName::xs("anyType"), ANY_TYPE);
        debug_assert_eq!(
            self.type_memo.get(&QName::xs("anySimpleType")),
            Some(&ANY_SIMPLE_TYPE)
        );
    }

    /// xs:anyType (id `ANY_TYPE`): mixed, any attributes, any elements, all lax.
    fn push_any_type(&mut self) {
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
    }

    fn register_builtin_simple_types(&mut self) {
        for bt in BUILTINS_BASE_FIRST {
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
                Kind::Notation => self.build_notation(q),
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

    /// A notation needs a public or a system identifier; it has no other content to build.
    fn build_notation(&mut self, q: QName) {
        if let Some(def) = self.table.get(&(Kind::Notation, q.clone())).cloned()
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

    pub fn finish(self) -> (Components, Vec<Diagnostic>) {
        (self.c, self.diags)
    }
}
