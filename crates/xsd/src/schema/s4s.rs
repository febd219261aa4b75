//! The shape rules of the schema for schemas: which attributes and children each `xs:` element
//! may carry. Checked before components are built so that a misspelt attribute or a misplaced
//! child is reported as such instead of being silently ignored.

use super::document::Node;

/// One position in a child sequence: any of `names`, between `min` and `max` times.
struct Slot(&'static [&'static str], u32, u32);

const U: u32 = u32::MAX;

fn attrs_for(local: &str) -> Option<&'static [&'static str]> {
    Some(match local {
        "schema" => &[
            "id",
            "targetNamespace",
            "version",
            "finalDefault",
            "blockDefault",
            "attributeFormDefault",
            "elementFormDefault",
            "lang",
        ],
        "include" => &["id", "schemaLocation"],
        "import" => &["id", "namespace", "schemaLocation"],
        "redefine" => &["id", "schemaLocation"],
        "annotation" => &["id"],
        "appinfo" => &["source"],
        "documentation" => &["source", "lang"],
        "notation" => &["id", "name", "public", "system"],
        "simpleType" => &["id", "name", "final"],
        "restriction" => &["id", "base"],
        "list" => &["id", "itemType"],
        "union" => &["id", "memberTypes"],
        "minExclusive" | "minInclusive" | "maxExclusive" | "maxInclusive" | "totalDigits"
        | "fractionDigits" | "length" | "minLength" | "maxLength" | "whiteSpace" => {
            &["id", "value", "fixed"]
        }
        "enumeration" | "pattern" => &["id", "value"],
        "complexType" => &["id", "name", "mixed", "abstract", "final", "block"],
        "simpleContent" => &["id"],
        "complexContent" => &["id", "mixed"],
        "extension" => &["id", "base"],
        "group" => &["id", "name", "ref", "minOccurs", "maxOccurs"],
        "all" | "choice" | "sequence" => &["id", "minOccurs", "maxOccurs"],
        "element" => &[
            "id",
            "name",
            "ref",
            "type",
            "substitutionGroup",
            "minOccurs",
            "maxOccurs",
            "default",
            "fixed",
            "nillable",
            "abstract",
            "final",
            "block",
            "form",
        ],
        "attribute" => &[
            "id", "name", "ref", "type", "use", "default", "fixed", "form",
        ],
        "attributeGroup" => &["id", "name", "ref"],
        "any" => &[
            "id",
            "namespace",
            "processContents",
            "minOccurs",
            "maxOccurs",
        ],
        "anyAttribute" => &["id", "namespace", "processContents"],
        "unique" | "key" => &["id", "name"],
        "keyref" => &["id", "name", "refer"],
        "selector" | "field" => &["id", "xpath"],
        _ => return None,
    })
}

const FACETS: &[&str] = &[
    "minExclusive",
    "minInclusive",
    "maxExclusive",
    "maxInclusive",
    "totalDigits",
    "fractionDigits",
    "length",
    "minLength",
    "maxLength",
    "enumeration",
    "whiteSpace",
    "pattern",
];
const PARTICLES: &[&str] = &["group", "all", "choice", "sequence"];
const ATTRS: &[&str] = &["attribute", "attributeGroup"];
const IDCS: &[&str] = &["unique", "key", "keyref"];

/// The allowed child sequences (alternatives) of an element, annotations excluded.
fn content_for(node: &Node, parent: Option<&str>) -> Vec<Vec<Slot>> {
    let top_level = parent == Some("schema") || parent == Some("redefine");
    match node.local.as_str() {
        "schema" => vec![vec![
            Slot(&["include", "import", "redefine"], 0, U),
            Slot(
                &[
                    "simpleType",
                    "complexType",
                    "group",
                    "attributeGroup",
                    "element",
                    "attribute",
                    "notation",
                ],
                0,
                U,
            ),
        ]],
        "redefine" => vec![vec![Slot(
            &["simpleType", "complexType", "group", "attributeGroup"],
            0,
            U,
        )]],
        "include" | "import" | "notation" | "selector" | "field" | "enumeration" | "pattern"
        | "whiteSpace" | "minExclusive" | "minInclusive" | "maxExclusive" | "maxInclusive"
        | "totalDigits" | "fractionDigits" | "length" | "minLength" | "maxLength"
        | "anyAttribute" | "any" => vec![vec![]],
        "simpleType" => vec![vec![Slot(&["restriction", "list", "union"], 1, 1)]],
        "list" => vec![vec![Slot(&["simpleType"], 0, 1)]],
        "union" => vec![vec![Slot(&["simpleType"], 0, U)]],
        "restriction" => match parent {
            Some("simpleType") => vec![vec![Slot(&["simpleType"], 0, 1), Slot(FACETS, 0, U)]],
            Some("simpleContent") => vec![vec![
                Slot(&["simpleType"], 0, 1),
                Slot(FACETS, 0, U),
                Slot(ATTRS, 0, U),
                Slot(&["anyAttribute"], 0, 1),
            ]],
            _ => vec![vec![
                Slot(PARTICLES, 0, 1),
                Slot(ATTRS, 0, U),
                Slot(&["anyAttribute"], 0, 1),
            ]],
        },
        "extension" => match parent {
            Some("simpleContent") => vec![vec![Slot(ATTRS, 0, U), Slot(&["anyAttribute"], 0, 1)]],
            _ => vec![vec![
                Slot(PARTICLES, 0, 1),
                Slot(ATTRS, 0, U),
                Slot(&["anyAttribute"], 0, 1),
            ]],
        },
        "complexType" => vec![
            vec![Slot(&["simpleContent", "complexContent"], 1, 1)],
            vec![
                Slot(PARTICLES, 0, 1),
                Slot(ATTRS, 0, U),
                Slot(&["anyAttribute"], 0, 1),
            ],
        ],
        "simpleContent" | "complexContent" => vec![vec![Slot(&["restriction", "extension"], 1, 1)]],
        "group" if top_level => vec![vec![Slot(&["all", "choice", "sequence"], 1, 1)]],
        "group" => vec![vec![]],
        "all" => vec![vec![Slot(&["element"], 0, U)]],
        "choice" | "sequence" => vec![vec![Slot(
            &["element", "group", "choice", "sequence", "any"],
            0,
            U,
        )]],
        "element" => vec![vec![
            Slot(&["simpleType", "complexType"], 0, 1),
            Slot(IDCS, 0, U),
        ]],
        "attribute" => vec![vec![Slot(&["simpleType"], 0, 1)]],
        "attributeGroup" if top_level => {
            vec![vec![Slot(ATTRS, 0, U), Slot(&["anyAttribute"], 0, 1)]]
        }
        "attributeGroup" => vec![vec![]],
        "unique" | "key" | "keyref" => {
            vec![vec![Slot(&["selector"], 1, 1), Slot(&["field"], 1, U)]]
        }
        _ => vec![vec![]],
    }
}

fn fits(children: &[&str], slots: &[Slot]) -> bool {
    let mut slot = 0;
    let mut count = 0;
    for name in children {
        loop {
            let Some(Slot(names, _, max)) = slots.get(slot) else {
                return false;
            };
            if names.contains(name) && count < *max {
                count += 1;
                break;
            }
            if count < slots.get(slot).map_or(0, |s| s.1) {
                return false;
            }
            slot += 1;
            count = 0;
        }
    }
    // The current slot must have its minimum, and every later one must allow zero occurrences.
    slots.get(slot).is_none_or(|s| count >= s.1) && slots.iter().skip(slot + 1).all(|s| s.1 == 0)
}

/// Marks a message as "not implemented" rather than "invalid" (see [`split_kind`]).
pub const UNSUPPORTED: &str = "\u{0}unsupported:";

/// XSD 1.1 constructs: a schema using them fails to compile as unsupported, by name.
const XSD11_ELEMENTS: &[&str] = &[
    "assert",
    "assertion",
    "openContent",
    "defaultOpenContent",
    "alternative",
    "override",
    "explicitTimezone",
];
const XSD11_ATTRIBUTES: &[&str] = &[
    "notQName",
    "notNamespace",
    "defaultAttributes",
    "xpathDefaultNamespace",
    "inheritable",
    "defaultAttributesApply",
];

/// Splits a message from [`check`] into whether it reports an unsupported construct, and the text.
pub fn split_kind(msg: &str) -> (bool, &str) {
    match msg.strip_prefix(UNSUPPORTED) {
        Some(rest) => (true, rest),
        None => (false, msg),
    }
}

/// The schema-for-schemas type of an unqualified attribute value, by attribute name.
fn check_value(node: &Node, name: &str, value: &str) -> Option<String> {
    use crate::datatypes::{BuiltinType as B, builtin};
    let methods: Option<&[&str]> = match name {
        "blockDefault" => Some(&["extension", "restriction", "substitution"]),
        "finalDefault" => Some(&["extension", "restriction", "list", "union"]),
        _ => None,
    };
    if let Some(allowed) = methods {
        let v = value.trim();
        let ok = v == "#all" || v.split_ascii_whitespace().all(|t| allowed.contains(&t));
        return (!ok).then(|| {
            format!(
                "{name}='{value}' must be #all or a list of {}",
                allowed.join(", ")
            )
        });
    }
    let enumerated: Option<&[&str]> = match name {
        "elementFormDefault" | "attributeFormDefault" | "form" => {
            Some(&["qualified", "unqualified"])
        }
        "use" => Some(&["optional", "required", "prohibited"]),
        "processContents" => Some(&["strict", "lax", "skip"]),
        _ => None,
    };
    if let Some(allowed) = enumerated {
        let v = value.trim();
        return (!allowed.contains(&v))
            .then(|| format!("{name}='{value}' must be one of {}", allowed.join(", ")));
    }
    let bt = match name {
        "id" | "name" => B::NCName,
        // `fixed` is a value on element and attribute declarations, a boolean on facets.
        "fixed" if node.local == "element" || node.local == "attribute" => return None,
        "mixed" | "abstract" | "nillable" | "fixed" => B::Boolean,
        "ref" | "type" | "base" | "itemType" | "substitutionGroup" | "refer" => B::QName,
        "targetNamespace" | "schemaLocation" | "system" | "source" => B::AnyUri,
        "version" | "public" => B::Token,
        "lang" => B::Language,
        "minOccurs" => B::NonNegativeInteger,
        "memberTypes" => {
            let st = builtin(B::QName);
            return value.split_ascii_whitespace().find_map(|t| {
                st.validate(t, &*node.scope)
                    .err()
                    .map(|e| format!("memberTypes: {e}"))
            });
        }
        _ => return None,
    };
    builtin(bt)
        .validate(value, &*node.scope)
        .err()
        .map(|e| format!("attribute {name} of <xs:{}>: {e}", node.local))
}

/// Checks one schema element (not its descendants); returns a message on the first problem.
pub fn check(node: &Node, parent: Option<&str>) -> Option<String> {
    let Some(allowed) = attrs_for(&node.local) else {
        if XSD11_ELEMENTS.contains(&node.local.as_str()) {
            return Some(format!(
                "{UNSUPPORTED}<xs:{}> is XSD 1.1, which this engine does not implement",
                node.local
            ));
        }
        return Some(format!(
            "<xs:{}> is not an element of the XML Schema language",
            node.local
        ));
    };
    for a in &node.attrs {
        match a.ns.as_deref() {
            None if !allowed.contains(&a.local.as_str())
                && XSD11_ATTRIBUTES.contains(&a.local.as_str()) =>
            {
                return Some(format!(
                    "{UNSUPPORTED}attribute '{}' on <xs:{}> is XSD 1.1, which this engine does not implement",
                    a.local, node.local
                ));
            }
            None if !allowed.contains(&a.local.as_str()) => {
                return Some(format!(
                    "attribute '{}' is not allowed on <xs:{}>",
                    a.local, node.local
                ));
            }
            Some(crate::names::XS) => {
                return Some(format!(
                    "attribute 'xs:{}' is not allowed on <xs:{}>",
                    a.local, node.local
                ));
            }
            None => {
                if let Some(msg) = check_value(node, &a.local, &a.value) {
                    return Some(msg);
                }
            }
            _ => {}
        }
    }
    if node.local == "appinfo" || node.local == "documentation" {
        return None;
    }
    if node.has_text {
        return Some(format!("<xs:{}> may not contain text", node.local));
    }
    // Annotations: at most one, and only first.
    let mut seen_other = false;
    let mut annotations = 0;
    for c in &node.children {
        if c.ns.as_deref() != Some(crate::names::XS) {
            return Some(format!(
                "<{}> is not allowed inside <xs:{}>",
                c.local, node.local
            ));
        }
        if c.local == "annotation" {
            // The schema element and redefine allow annotations anywhere among their children.
            if node.local != "schema" && node.local != "redefine" && (seen_other || annotations > 0)
            {
                return Some(format!(
                    "<xs:annotation> must come first in <xs:{}>, and only once",
                    node.local
                ));
            }
            annotations += 1;
        } else {
            seen_other = true;
        }
    }
    if node.local == "annotation" {
        return node
            .children
            .iter()
            .find(|c| c.local != "appinfo" && c.local != "documentation")
            .map(|c| format!("<xs:{}> is not allowed inside <xs:annotation>", c.local));
    }
    let names: Vec<&str> = node.xs_children().map(|c| c.local.as_str()).collect();
    let alternatives = content_for(node, parent);
    if alternatives.iter().any(|slots| fits(&names, slots)) {
        return None;
    }
    let found = if names.is_empty() {
        "no children".to_owned()
    } else {
        format!("children <{}>", names.join(">, <"))
    };
    Some(format!(
        "<xs:{}> has {found}, which the schema language does not allow here",
        node.local
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_accept_ordered_children_and_reject_misordered_ones() {
        let slots = [Slot(&["a"], 0, 1), Slot(&["b"], 1, U), Slot(&["c"], 0, 1)];
        assert!(fits(&["a", "b", "b", "c"], &slots));
        assert!(fits(&["b"], &slots));
        assert!(!fits(&["a"], &slots));
        assert!(!fits(&["b", "a"], &slots));
        assert!(!fits(&["a", "a", "b"], &slots));
        assert!(fits(&[], &[Slot(&["a"], 0, U)]));
        assert!(!fits(&["x"], &[]));
    }
}
