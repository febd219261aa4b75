//! Particle restriction (XSD 1.0 §3.9.6 "Particle Valid (Restriction)", the rcase rules): a
//! complex type derived by restriction must accept a subset of what its base accepts, which the
//! spec checks structurally.

use super::components::*;
use super::wildcard::{process_weaker, wildcard_subset};

type R = Result<(), String>;

fn range_ok(rmin: u32, rmax: Max, bmin: u32, bmax: Max) -> bool {
    rmin >= bmin
        && match (rmax, bmax) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(r), Some(b)) => r <= b,
        }
}

fn show(max: Max) -> String {
    max.map_or_else(|| "unbounded".to_owned(), |m| m.to_string())
}

/// Removes pointless groups (§3.9.6 "pointless" particles) so the structural rules apply.
fn normalize(p: &Particle) -> Particle {
    match &p.term {
        Term::Group(comp, children) => {
            let mut out: Vec<Particle> = Vec::new();
            for ch in children {
                let n = normalize(ch);
                match &n.term {
                    // A nested group of the same kind occurring once merges into its parent.
                    Term::Group(k, inner)
                        if k == comp
                            && n.min == 1
                            && n.max == Some(1)
                            && *comp != Compositor::All =>
                    {
                        out.extend(inner.iter().cloned())
                    }
                    Term::Group(_, inner) if inner.is_empty() => {}
                    _ => out.push(n),
                }
            }
            if out.len() == 1
                && p.min == 1
                && p.max == Some(1)
                && *comp != Compositor::All
                && let Some(only) = out.pop()
            {
                return only;
            }
            Particle {
                min: p.min,
                max: p.max,
                term: Term::Group(*comp, out),
            }
        }
        _ => p.clone(),
    }
}

/// Checks that `derived` is a valid restriction of `base`.
pub fn particle_restricts(c: &Components, derived: &Particle, base: &Particle) -> R {
    let r = normalize(derived);
    let b = normalize(base);
    check(c, &r, &b, 0)
}

fn mul(a: Max, b: Max) -> Max {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_mul(y)),
        _ => None,
    }
}

/// §3.8.6 effective total range of a group particle.
fn effective_range(p: &Particle) -> (u32, Max) {
    match &p.term {
        Term::Group(Compositor::Choice, ch) => {
            let min = ch.iter().map(|x| effective_range(x).0).min().unwrap_or(0);
            let max = ch
                .iter()
                .map(|x| effective_range(x).1)
                .try_fold(0u32, |acc, m| m.map(|b| acc.max(b)));
            (p.min.saturating_mul(min), mul(p.max, max))
        }
        Term::Group(_, ch) => {
            let min = ch
                .iter()
                .map(|x| effective_range(x).0)
                .fold(0u32, |a, b| a.saturating_add(b));
            let max = ch
                .iter()
                .map(|x| effective_range(x).1)
                .try_fold(0u32, |acc, m| m.map(|m| acc.saturating_add(m)));
            (p.min.saturating_mul(min), mul(p.max, max))
        }
        _ => (p.min, p.max),
    }
}

fn check(c: &Components, r: &Particle, b: &Particle, depth: u32) -> R {
    if depth > 64 {
        return Err("content model nesting too deep to check".into());
    }
    // A base element that heads a substitution group behaves as a choice of its members.
    if let Term::Element(be) = &b.term {
        let subs = c.substitutes.get(*be).map(Vec::as_slice).unwrap_or(&[]);
        if subs.len() > 1 && !matches!(r.term, Term::Element(re) if re == *be) {
            let choice = Particle {
                min: b.min,
                max: b.max,
                term: Term::Group(
                    Compositor::Choice,
                    subs.iter()
                        .filter(|e| !c.elements[**e].abstract_)
                        .map(|e| Particle {
                            min: 1,
                            max: Some(1),
                            term: Term::Element(*e),
                        })
                        .collect(),
                ),
            };
            return check(c, r, &choice, depth + 1);
        }
    }
    match (&r.term, &b.term) {
        (Term::Element(re), Term::Element(be)) => name_and_type_ok(c, r, *re, b, *be),
        (Term::Element(re), Term::Wildcard(w)) => {
            let name = &c.elements[*re].name;
            if !w.ns.allows(name.ns.as_deref()) {
                return Err(format!(
                    "element {name} is not allowed by the base's wildcard"
                ));
            }
            occurrence(r, b, &format!("element {name}"))
        }
        (Term::Element(_), Term::Group(comp, _)) => {
            let as_group = Particle {
                min: 1,
                max: Some(1),
                term: Term::Group(*comp, vec![r.clone()]),
            };
            check(c, &as_group, b, depth + 1)
        }
        (Term::Wildcard(rw), Term::Wildcard(bw)) => {
            occurrence(r, b, "wildcard")?;
            if !wildcard_subset(rw, bw) {
                return Err(
                    "the wildcard's namespaces are not a subset of the base wildcard's".into(),
                );
            }
            if process_weaker(rw.process, bw.process) {
                return Err(
                    "the wildcard's processContents is weaker than the base wildcard's".into(),
                );
            }
            Ok(())
        }
        (Term::Wildcard(_), _) => {
            Err("a wildcard cannot restrict an element or a model group".into())
        }
        (Term::Group(_, rch), Term::Wildcard(bw)) => {
            // NSRecurseCheckCardinality
            let (min, max) = effective_range(r);
            if !range_ok(min, max, b.min, b.max) {
                return Err(format!(
                    "the group's occurrence range ({min}, {}) is not within the base wildcard's ({}, {})",
                    show(max),
                    b.min,
                    show(b.max)
                ));
            }
            let open = Particle {
                min: 0,
                max: None,
                term: Term::Wildcard(bw.clone()),
            };
            for ch in rch {
                check(c, ch, &open, depth + 1)?;
            }
            Ok(())
        }
        (Term::Group(_, _), Term::Element(_)) => {
            Err("a model group cannot restrict an element".into())
        }
        (Term::Group(rc, rch), Term::Group(bc, bch)) => {
            use Compositor::*;
            match (rc, bc) {
                (All, All) | (Sequence, Sequence) => {
                    occurrence(r, b, "group")?;
                    recurse(c, rch, bch, depth, true)
                }
                (Choice, Choice) => {
                    occurrence(r, b, "choice")?;
                    recurse(c, rch, bch, depth, false)
                }
                (Sequence, All) => {
                    occurrence(r, b, "group")?;
                    recurse_unordered(c, rch, bch, depth)
                }
                (Sequence, Choice) => {
                    // MapAndSum
                    let n = rch.len() as u32;
                    let (min, max) = (r.min.saturating_mul(n), mul(r.max, Some(n)));
                    if !range_ok(min, max, b.min, b.max) {
                        return Err(format!(
                            "the sequence's occurrence range ({min}, {}) is not within the base choice's ({}, {})",
                            show(max),
                            b.min,
                            show(b.max)
                        ));
                    }
                    for ch in rch {
                        if !bch.iter().any(|bp| check(c, ch, bp, depth + 1).is_ok()) {
                            return Err(format!(
                                "{} does not restrict any branch of the base choice",
                                describe(c, ch)
                            ));
                        }
                    }
                    Ok(())
                }
                _ => Err(format!(
                    "a {} cannot restrict a {}",
                    comp_name(*rc),
                    comp_name(*bc)
                )),
            }
        }
    }
}

fn comp_name(c: Compositor) -> &'static str {
    match c {
        Compositor::All => "xs:all",
        Compositor::Choice => "xs:choice",
        Compositor::Sequence => "xs:sequence",
    }
}

fn describe(c: &Components, p: &Particle) -> String {
    match &p.term {
        Term::Element(e) => format!("element {}", c.elements[*e].name),
        Term::Wildcard(_) => "a wildcard".into(),
        Term::Group(k, _) => format!("an {}", comp_name(*k)),
    }
}

fn occurrence(r: &Particle, b: &Particle, what: &str) -> R {
    if range_ok(r.min, r.max, b.min, b.max) {
        Ok(())
    } else {
        Err(format!(
            "{what} occurs ({}, {}) times, not within the base's ({}, {})",
            r.min,
            show(r.max),
            b.min,
            show(b.max)
        ))
    }
}

/// Recurse / RecurseLax: an order-preserving mapping of derived children onto base children.
fn recurse(c: &Components, rch: &[Particle], bch: &[Particle], depth: u32, strict: bool) -> R {
    let mut bi = 0;
    for rp in rch {
        loop {
            let Some(bp) = bch.get(bi) else {
                return Err(format!(
                    "{} has no counterpart in the base content model (in order)",
                    describe(c, rp)
                ));
            };
            bi += 1;
            match check(c, rp, bp, depth + 1) {
                Ok(()) => break,
                Err(e) => {
                    if strict && !bp.emptiable() {
                        return Err(e);
                    }
                }
            }
        }
    }
    if strict
        && let Some(bp) = bch
            .get(bi..)
            .and_then(|rest| rest.iter().find(|p| !p.emptiable()))
    {
        return Err(format!(
            "{} is required by the base but missing from the restriction",
            describe(c, bp)
        ));
    }
    Ok(())
}

fn recurse_unordered(c: &Components, rch: &[Particle], bch: &[Particle], depth: u32) -> R {
    let mut used = vec![false; bch.len()];
    for rp in rch {
        let found = bch.iter().enumerate().find(|(i, bp)| {
            !used.get(*i).copied().unwrap_or(true) && check(c, rp, bp, depth + 1).is_ok()
        });
        match found {
            Some((i, _)) => {
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
                if rp.max.is_none_or(|m| m > 1) {
                    return Err(format!(
                        "{} may occur at most once when restricting xs:all",
                        describe(c, rp)
                    ));
                }
            }
            None => {
                return Err(format!(
                    "{} has no counterpart in the base xs:all",
                    describe(c, rp)
                ));
            }
        }
    }
    for (i, bp) in bch.iter().enumerate() {
        if !used.get(i).copied().unwrap_or(true) && !bp.emptiable() {
            return Err(format!(
                "{} is required by the base but missing from the restriction",
                describe(c, bp)
            ));
        }
    }
    Ok(())
}

fn name_and_type_ok(c: &Components, r: &Particle, re: ElemId, b: &Particle, be: ElemId) -> R {
    let (rd, bd) = (&c.elements[re], &c.elements[be]);
    if rd.name != bd.name {
        return Err(format!(
            "element {} does not match the base's element {}",
            rd.name, bd.name
        ));
    }
    occurrence(r, b, &format!("element {}", rd.name))?;
    if rd.nillable && !bd.nillable {
        return Err(format!(
            "element {} is nillable but the base's is not",
            rd.name
        ));
    }
    if let Some(bc) = bd.constraint.as_ref().filter(|x| x.fixed) {
        let same = rd.constraint.as_ref().is_some_and(|rc| {
            rc.fixed && (rc.value == bc.value && (rc.value.is_some() || rc.lexical == bc.lexical))
        });
        if !same {
            return Err(format!(
                "element {} is fixed to '{}' in the base",
                rd.name, bc.lexical
            ));
        }
    }
    let bb = bd.block;
    let rb = rd.block;
    if (bb.extension && !rb.extension)
        || (bb.restriction && !rb.restriction)
        || (bb.substitution && !rb.substitution)
    {
        return Err(format!(
            "element {} must block at least what the base's declaration blocks",
            rd.name
        ));
    }
    if re != be {
        let blocked = DerivSet {
            extension: true,
            list: true,
            union: true,
            ..Default::default()
        };
        if !c.derives_from(rd.type_id, bd.type_id, blocked) {
            return Err(format!(
                "the type of element {} ({}) is not a restriction of the base's ({})",
                rd.name,
                c.type_name(rd.type_id),
                c.type_name(bd.type_id)
            ));
        }
    }
    Ok(())
}
