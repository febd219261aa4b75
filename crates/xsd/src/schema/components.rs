//! The compiled schema components (XML Schema Part 1 §3), held in arenas and addressed by index.

use std::sync::Arc;

use crate::datatypes::{SimpleType, Value};
use crate::identity::IdcDef;
use crate::names::QName;

/// Index of a type definition in [`Components::types`].
pub type TypeId = usize;
/// Index of an element declaration in [`Components::elements`].
pub type ElemId = usize;
/// Index of an attribute declaration in [`Components::attributes`].
pub type AttrId = usize;

/// `xs:anyType` is always type 0.
pub const ANY_TYPE: TypeId = 0;
/// `xs:anySimpleType` is always type 1.
pub const ANY_SIMPLE_TYPE: TypeId = 1;

/// A set of derivation methods (`final`, `block`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DerivSet {
    pub extension: bool,
    pub restriction: bool,
    pub substitution: bool,
    pub list: bool,
    pub union: bool,
}

/// How a type was derived from its base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derivation {
    Extension,
    Restriction,
}

#[derive(Debug)]
pub enum TypeDef {
    Simple(SimpleTypeDef),
    Complex(ComplexTypeDef),
}

impl TypeDef {
    pub fn name(&self) -> Option<&QName> {
        match self {
            TypeDef::Simple(s) => s.name.as_ref(),
            TypeDef::Complex(c) => c.name.as_ref(),
        }
    }
    pub fn base(&self) -> TypeId {
        match self {
            TypeDef::Simple(s) => s.base,
            TypeDef::Complex(c) => c.base,
        }
    }
    pub fn final_set(&self) -> DerivSet {
        match self {
            TypeDef::Simple(s) => s.final_,
            TypeDef::Complex(c) => c.final_,
        }
    }
}

#[derive(Debug)]
pub struct SimpleTypeDef {
    pub name: Option<QName>,
    pub base: TypeId,
    pub st: Arc<SimpleType>,
    pub final_: DerivSet,
}

/// A value constraint (`default` or `fixed`).
#[derive(Debug, Clone)]
pub struct ValueConstraint {
    pub fixed: bool,
    pub lexical: String,
    /// The value in the declaration's type (`None` when the type has complex content, e.g. mixed).
    pub value: Option<Value>,
}

#[derive(Debug)]
pub struct ComplexTypeDef {
    pub name: Option<QName>,
    pub base: TypeId,
    pub derivation: Derivation,
    pub abstract_: bool,
    pub final_: DerivSet,
    pub block: DerivSet,
    pub attributes: Vec<AttributeUse>,
    pub attribute_wildcard: Option<Arc<Wildcard>>,
    pub content: Content,
    /// Where the definition is (file, line, column), for diagnostics found after building.
    pub source: Option<(String, u32, u32)>,
}

#[derive(Debug, Clone)]
pub enum Content {
    Empty,
    /// Simple content: the simple type of the text, and its type id when it is a named/registered one.
    Simple(Arc<SimpleType>),
    /// Element-only or mixed content with its particle.
    Elements {
        particle: Arc<Particle>,
        mixed: bool,
    },
}

#[derive(Debug, Clone)]
pub struct AttributeUse {
    pub decl: AttrId,
    pub required: bool,
    pub constraint: Option<ValueConstraint>,
}

#[derive(Debug)]
pub struct AttributeDecl {
    pub name: QName,
    pub type_id: TypeId,
    pub st: Arc<SimpleType>,
    pub constraint: Option<ValueConstraint>,
    pub global: bool,
}

#[derive(Debug)]
pub struct ElementDecl {
    pub name: QName,
    pub type_id: TypeId,
    pub nillable: bool,
    pub constraint: Option<ValueConstraint>,
    pub abstract_: bool,
    pub block: DerivSet,
    pub final_: DerivSet,
    pub subst_group: Option<ElemId>,
    pub idcs: Vec<Arc<IdcDef>>,
    pub global: bool,
}

/// A wildcard's namespace constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsConstraint {
    Any,
    /// `##other`: any namespace but this one (and, in XSD 1.0, not "no namespace").
    Not(Option<String>),
    /// An explicit list; `None` stands for "no namespace" (`##local`).
    Set(Vec<Option<String>>),
}

impl NsConstraint {
    pub fn allows(&self, ns: Option<&str>) -> bool {
        match self {
            NsConstraint::Any => true,
            NsConstraint::Not(n) => ns.is_some() && ns != n.as_deref(),
            NsConstraint::Set(v) => v.iter().any(|x| x.as_deref() == ns),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessContents {
    Strict,
    Lax,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pub ns: NsConstraint,
    pub process: ProcessContents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compositor {
    Sequence,
    Choice,
    All,
}

/// `maxOccurs`: `None` is unbounded.
pub type Max = Option<u32>;

#[derive(Debug, Clone)]
pub struct Particle {
    pub min: u32,
    pub max: Max,
    pub term: Term,
}

#[derive(Debug, Clone)]
pub enum Term {
    Element(ElemId),
    Wildcard(Arc<Wildcard>),
    Group(Compositor, Vec<Particle>),
}

impl Particle {
    /// True when the particle can match nothing at all.
    pub fn emptiable(&self) -> bool {
        self.min == 0
            || match &self.term {
                Term::Element(_) | Term::Wildcard(_) => false,
                Term::Group(Compositor::Choice, ps) => {
                    ps.iter().any(Particle::emptiable) || ps.is_empty()
                }
                Term::Group(_, ps) => ps.iter().all(Particle::emptiable),
            }
    }

    /// True for a particle that matches only the empty sequence.
    pub fn is_empty_content(&self) -> bool {
        self.max == Some(0)
            || match &self.term {
                Term::Group(_, ps) => ps.iter().all(Particle::is_empty_content),
                _ => false,
            }
    }
}

/// All components of a compiled schema.
#[derive(Debug, Default)]
pub struct Components {
    pub types: Vec<TypeDef>,
    pub elements: Vec<ElementDecl>,
    pub attributes: Vec<AttributeDecl>,
    pub global_elements: std::collections::HashMap<QName, ElemId>,
    pub global_attributes: std::collections::HashMap<QName, AttrId>,
    pub global_types: std::collections::HashMap<QName, TypeId>,
    pub notations: std::collections::HashSet<QName>,
    /// For each element declaration, the declarations that may substitute for it (transitively,
    /// itself included), before `block` is applied.
    pub substitutes: Vec<Vec<ElemId>>,
}

impl Components {
    pub fn complex(&self, t: TypeId) -> Option<&ComplexTypeDef> {
        match self.types.get(t) {
            Some(TypeDef::Complex(c)) => Some(c),
            _ => None,
        }
    }

    pub fn type_name(&self, t: TypeId) -> String {
        match self.types.get(t).and_then(TypeDef::name) {
            Some(n) => n.to_string(),
            None => "(anonymous type)".to_owned(),
        }
    }

    /// Walks the base chain of `derived` looking for `base`, honouring the methods in `blocked`
    /// (XSD 1.0 §3.4.6 "Type Derivation OK (Complex)" and §3.14.6 "(Simple)").
    pub fn derives_from(&self, derived: TypeId, base: TypeId, blocked: DerivSet) -> bool {
        if derived == base {
            return true;
        }
        // A union member type counts as derived from the union (§3.14.6 2.2.4).
        if let (Some(TypeDef::Simple(d)), Some(TypeDef::Simple(b))) =
            (self.types.get(derived), self.types.get(base))
            && !blocked.restriction
            && let crate::datatypes::Variety::Union(members) = &b.st.variety
            && members
                .iter()
                .any(|m| Arc::ptr_eq(m, &d.st) || simple_derives(&d.st, m))
        {
            return true;
        }
        let mut t = derived;
        let mut guard = 0;
        while t != ANY_TYPE && guard < 10_000 {
            guard += 1;
            let Some(def) = self.types.get(t) else {
                return false;
            };
            let method = match def {
                TypeDef::Complex(c) => c.derivation,
                TypeDef::Simple(_) => Derivation::Restriction,
            };
            if (method == Derivation::Extension && blocked.extension)
                || (method == Derivation::Restriction && blocked.restriction)
            {
                return false;
            }
            // A type's own `final`/`block` is checked by the caller; here only the methods matter.
            let next = def.base();
            if next == base {
                return true;
            }
            if next == t {
                return false;
            }
            t = next;
        }
        base == ANY_TYPE
    }
}

fn simple_derives(d: &Arc<SimpleType>, b: &Arc<SimpleType>) -> bool {
    let mut cur = Some(d);
    let mut guard = 0;
    while let Some(c) = cur {
        if Arc::ptr_eq(c, b) {
            return true;
        }
        guard += 1;
        if guard > 10_000 {
            return false;
        }
        cur = c.base.as_ref();
    }
    false
}
