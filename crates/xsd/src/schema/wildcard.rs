//! Wildcard algebra (XSD 1.0 §3.10.6): subset, union and intersection of namespace
//! constraints, and the strength order of processContents. The builder needs them for attribute
//! wildcards (extension, restriction, attribute groups) and `restriction` for particle wildcards,
//! so they live beside both rather than inside either.

use super::components::{NsConstraint, ProcessContents, Wildcard};

/// Whether `derived`'s processContents checks less than `base`'s (skip < lax < strict).
pub fn process_weaker(derived: ProcessContents, base: ProcessContents) -> bool {
    let rank = |p| match p {
        ProcessContents::Skip => 0,
        ProcessContents::Lax => 1,
        ProcessContents::Strict => 2,
    };
    rank(derived) < rank(base)
}

/// Namespace-constraint subset (§3.10.6 "Wildcard Subset").
pub fn wildcard_subset(sub: &Wildcard, sup: &Wildcard) -> bool {
    ns_subset(&sub.ns, &sup.ns)
}

/// The namespace half of "Wildcard Subset": every namespace `sub` allows, `sup` allows.
pub fn ns_subset(sub: &NsConstraint, sup: &NsConstraint) -> bool {
    match (sub, sup) {
        (_, NsConstraint::Any) => true,
        (NsConstraint::Not(a), NsConstraint::Not(b)) => a == b,
        (NsConstraint::Set(s), NsConstraint::Not(n)) => s.iter().all(|x| x.is_some() && x != n),
        (NsConstraint::Set(s), NsConstraint::Set(t)) => s.iter().all(|x| t.contains(x)),
        _ => false,
    }
}

/// §3.10.6 "Attribute Wildcard Union".
pub fn wildcard_union(a: &Wildcard, b: &Wildcard) -> Option<Wildcard> {
    use NsConstraint::*;
    let ns = match (&a.ns, &b.ns) {
        (x, y) if x == y => x.clone(),
        (Any, _) | (_, Any) => Any,
        (Set(s), Set(t)) => {
            let mut v = s.clone();
            for x in t {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            Set(v)
        }
        (Not(_), Not(_)) => Not(None),
        (Not(n), Set(s)) | (Set(s), Not(n)) => {
            let has_n = n.is_some() && s.contains(n);
            let has_absent = s.contains(&None);
            match (n, has_n, has_absent) {
                (_, true, true) => Any,
                (Some(_), true, false) => Not(None),
                (Some(_), false, true) => return None,
                (Some(n), false, false) => Not(Some(n.clone())),
                (None, _, true) => Any,
                (None, _, false) => Not(None),
            }
        }
    };
    Some(Wildcard {
        ns,
        process: a.process,
    })
}

/// §3.10.6 "Attribute Wildcard Intersection".
pub fn wildcard_intersection(a: &Wildcard, b: &Wildcard) -> Option<Wildcard> {
    use NsConstraint::*;
    let ns = match (&a.ns, &b.ns) {
        (x, y) if x == y => x.clone(),
        (Any, o) | (o, Any) => o.clone(),
        (Not(n), Set(s)) | (Set(s), Not(n)) => Set(s
            .iter()
            .filter(|x| x.is_some() && *x != n)
            .cloned()
            .collect()),
        (Set(s), Set(t)) => Set(s.iter().filter(|x| t.contains(x)).cloned().collect()),
        (Not(x), Not(y)) => {
            if x.is_none() {
                Not(y.clone())
            } else if y.is_none() {
                Not(x.clone())
            } else {
                return None;
            }
        }
    };
    Some(Wildcard {
        ns,
        process: a.process,
    })
}
