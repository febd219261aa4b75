//! Values of the schema language's own attributes that every kind of component reads:
//! booleans (`abstract`, `mixed`, `nillable`, `fixed`), `form`, and the `block`/`final` sets
//! with their schema-wide defaults.

use super::Builder;
use crate::schema::components::DerivSet;
use crate::schema::document::Node;

impl Builder<'_> {
    pub(super) fn boolean(&mut self, doc: usize, node: &Node, attr: &str, v: &str) -> Option<bool> {
        match v.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            other => {
                self.err(
                    doc,
                    node,
                    format!("{attr}='{other}' is not a boolean (true, false, 1, 0)"),
                );
                None
            }
        }
    }

    pub(super) fn bool_attr(&mut self, doc: usize, node: &Node, attr: &str) -> bool {
        match node.attr(attr) {
            Some(v) => self.boolean(doc, node, attr, v).unwrap_or(false),
            None => false,
        }
    }

    /// A `block`/`final` value: the element's own attribute (checked strictly), else the
    /// schema's default (checked once by the shape rules; here only the methods that apply to
    /// this kind of component are kept).
    pub(super) fn deriv_attr(
        &mut self,
        doc: usize,
        node: &Node,
        attr: &str,
        default_attr: &str,
        allowed: &[&str],
    ) -> DerivSet {
        match node.attr(attr) {
            Some(own) => derivation_set(Some(own), allowed).unwrap_or_else(|e| {
                self.err(doc, node, format!("{attr}: {e}"));
                DerivSet::default()
            }),
            None => derivation_flags(self.docs[doc].root.attr(default_attr), allowed),
        }
    }

    /// `form` of a local element or attribute declaration; `default` is the schema's
    /// elementFormDefault or attributeFormDefault.
    pub(super) fn local_form(&mut self, doc: usize, node: &Node, default: bool) -> bool {
        match node.attr("form").map(str::trim) {
            Some("qualified") => true,
            Some("unqualified") => false,
            Some(other) => {
                self.err(
                    doc,
                    node,
                    format!("form='{other}' is not qualified or unqualified"),
                );
                false
            }
            None => default,
        }
    }
}

fn derivation_set(v: Option<&str>, allowed: &[&str]) -> Result<DerivSet, String> {
    let mut s = DerivSet::default();
    let Some(v) = v else { return Ok(s) };
    let v = v.trim();
    if v == "#all" {
        for a in allowed {
            set_flag(&mut s, a);
        }
        return Ok(s);
    }
    for tok in v.split_ascii_whitespace() {
        if !allowed.contains(&tok) {
            return Err(format!(
                "'{tok}' is not one of {{{}}} or #all",
                allowed.join(", ")
            ));
        }
        set_flag(&mut s, tok);
    }
    Ok(s)
}

/// The methods of `allowed` that `v` names (`#all` names them all); other tokens are ignored.
fn derivation_flags(v: Option<&str>, allowed: &[&str]) -> DerivSet {
    let mut s = DerivSet::default();
    for tok in v.unwrap_or("").split_ascii_whitespace() {
        for a in allowed {
            if tok == "#all" || tok == *a {
                set_flag(&mut s, a);
            }
        }
    }
    s
}

fn set_flag(s: &mut DerivSet, tok: &str) {
    match tok {
        "extension" => s.extension = true,
        "restriction" => s.restriction = true,
        "substitution" => s.substitution = true,
        "list" => s.list = true,
        "union" => s.union = true,
        _ => {}
    }
}
