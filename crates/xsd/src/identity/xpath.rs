//! The restricted XPath of XSD 1.0 §3.11.6:
//!
//! ```text
//! Selector ::= Path ( '|' Path )*
//! Path     ::= ('.//')? Step ( '/' Step )*
//! Field    ::= Path ( '|' Path )*
//! Path     ::= ('.//')? ( Step '/' )* ( Step | '@' NameTest )
//! Step     ::= '.' | NameTest            (also 'child::' NameTest)
//! NameTest ::= QName | '*' | NCName ':' '*'   ('@' may be spelt 'attribute::')
//! ```
//!
//! Whitespace is allowed between tokens (not inside a QName or `p:*`).
//! The parser is iterative (no recursion).

use super::IdcError;

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// A node test of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTest {
    /// `*`
    Any,
    /// `prefix:*` (namespace resolved; `None` = no namespace)
    AnyIn(Option<String>),
    /// `name` or `prefix:name` (unprefixed = no namespace)
    Name(Option<String>, String),
}

impl NameTest {
    /// Does a node named (`ns`, `local`) pass this test? `Some("")` counts as no namespace.
    pub fn matches(&self, ns: Option<&str>, local: &str) -> bool {
        let ns = ns.filter(|s| !s.is_empty());
        match self {
            NameTest::Any => true,
            NameTest::AnyIn(n) => n.as_deref() == ns,
            NameTest::Name(n, l) => l == local && n.as_deref() == ns,
        }
    }
}

/// One `|`-alternative, with `.` steps removed (they do not move).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathExpr {
    /// Leading `.//` (descendant-or-self of the context node).
    pub descendant: bool,
    /// Child steps, in order.
    pub steps: Vec<NameTest>,
    /// Final attribute step (fields only).
    pub attribute: Option<NameTest>,
}

impl PathExpr {
    /// Greatest depth below the context node at which this path can select
    /// an element (or the bearer of an attribute); `None` if unbounded.
    pub fn max_depth(&self) -> Option<usize> {
        if self.descendant {
            None
        } else {
            Some(self.steps.len())
        }
    }

    /// Does the element part of this path select the element at relative
    /// depth `rel` below the context node? `name_at(r)` gives the name of the
    /// open element at relative depth `r` (1..=rel) on the current branch.
    /// Cost: O(number of steps).
    pub(crate) fn matches_element<'a, F>(&self, rel: usize, name_at: F) -> bool
    where
        F: Fn(usize) -> Option<(Option<&'a str>, &'a str)>,
    {
        let n = self.steps.len();
        if self.descendant {
            if rel < n {
                return false;
            }
        } else if rel != n {
            return false;
        }
        // rel >= n here
        let first = rel.saturating_sub(n).saturating_add(1);
        self.steps
            .iter()
            .enumerate()
            .all(|(i, t)| match name_at(first.saturating_add(i)) {
                Some((ns, local)) => t.matches(ns, local),
                None => false,
            })
    }
}

/// A compiled `xs:selector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub source: String,
    pub paths: Vec<PathExpr>,
}

/// A compiled `xs:field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub source: String,
    pub paths: Vec<PathExpr>,
}

/// Greatest reach of a set of paths (`None` = unbounded).
pub(crate) fn max_depth_of(paths: &[PathExpr]) -> Option<usize> {
    let mut m = 0usize;
    for p in paths {
        m = m.max(p.max_depth()?);
    }
    Some(m)
}

impl Selector {
    pub fn compile(
        expr: &str,
        constraint: &str,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Selector, IdcError> {
        let paths = parse(expr, false, resolve)
            .map_err(|(pos, msg)| xpath_error("selector", expr, constraint, pos, &msg))?;
        Ok(Selector {
            source: expr.to_string(),
            paths,
        })
    }
}

impl Field {
    pub fn compile(
        expr: &str,
        constraint: &str,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Field, IdcError> {
        let paths = parse(expr, true, resolve)
            .map_err(|(pos, msg)| xpath_error("field", expr, constraint, pos, &msg))?;
        Ok(Field {
            source: expr.to_string(),
            paths,
        })
    }
}

fn xpath_error(what: &str, expr: &str, constraint: &str, pos: usize, msg: &str) -> IdcError {
    IdcError::new(
        "idc_xpath",
        format!(
            "invalid {what} XPath \"{expr}\" of identity constraint '{constraint}' at position {pos}: {msg}"
        ),
        0,
        0,
    )
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Dot,
    DSlash,
    Slash,
    Pipe,
    At,
    Star,
    DColon,
    NcName(String),
    QName(String, String),
    PrefixStar(String),
}

/// Position (1-based, in characters) and message.
type PErr = (usize, String);

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(expr: &str) -> Result<Vec<(Tok, usize)>, PErr> {
    let chars: Vec<char> = expr.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut toks = Vec::new();
    let mut i = 0usize;
    while let Some(c) = at(i) {
        let pos = i + 1;
        if is_ws(c) {
            i += 1;
            continue;
        }
        match c {
            '.' => {
                match at(i + 1) {
                    Some('.') => return Err((pos, "'..' (parent axis) is not allowed".into())),
                    Some(d) if d.is_ascii_digit() => {
                        return Err((pos, "numbers are not allowed".into()));
                    }
                    _ => {}
                }
                toks.push((Tok::Dot, pos));
                i += 1;
            }
            '/' => {
                if at(i + 1) == Some('/') {
                    toks.push((Tok::DSlash, pos));
                    i += 2;
                } else {
                    toks.push((Tok::Slash, pos));
                    i += 1;
                }
            }
            '|' => {
                toks.push((Tok::Pipe, pos));
                i += 1;
            }
            '@' => {
                toks.push((Tok::At, pos));
                i += 1;
            }
            '*' => {
                toks.push((Tok::Star, pos));
                i += 1;
            }
            ':' => {
                if at(i + 1) == Some(':') {
                    toks.push((Tok::DColon, pos));
                    i += 2;
                } else {
                    return Err((pos, "unexpected ':'".into()));
                }
            }
            c if is_name_start(c) => {
                let start = i;
                while at(i).is_some_and(is_name_char) {
                    i += 1;
                }
                let prefix: String = chars.get(start..i).unwrap_or(&[]).iter().collect();
                // QName or prefix:* — no whitespace allowed around the colon.
                if at(i) == Some(':') && at(i + 1) != Some(':') {
                    match at(i + 1) {
                        Some('*') => {
                            toks.push((Tok::PrefixStar(prefix), pos));
                            i += 2;
                        }
                        Some(c2) if is_name_start(c2) => {
                            let lstart = i + 1;
                            i = lstart;
                            while at(i).is_some_and(is_name_char) {
                                i += 1;
                            }
                            let local: String =
                                chars.get(lstart..i).unwrap_or(&[]).iter().collect();
                            toks.push((Tok::QName(prefix, local), pos));
                        }
                        _ => {
                            return Err((
                                i + 1,
                                "a name or '*' must follow ':' directly (no whitespace)".into(),
                            ));
                        }
                    }
                } else {
                    toks.push((Tok::NcName(prefix), pos));
                }
            }
            other => return Err((pos, format!("unexpected character '{other}'"))),
        }
    }
    Ok(toks)
}

// ---------------------------------------------------------------- parser

fn resolve_prefix(
    prefix: &str,
    pos: usize,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, PErr> {
    match resolve(prefix) {
        Some(ns) if ns.is_empty() => Ok(None),
        Some(ns) => Ok(Some(ns)),
        None if prefix == "xml" => Ok(Some(XML_NS.to_string())),
        None => Err((pos, format!("namespace prefix '{prefix}' is not bound"))),
    }
}

fn name_test(
    tok: Option<&(Tok, usize)>,
    end: usize,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<NameTest, PErr> {
    match tok {
        Some((Tok::Star, _)) => Ok(NameTest::Any),
        Some((Tok::NcName(n), _)) => Ok(NameTest::Name(None, n.clone())),
        Some((Tok::QName(p, l), pos)) => {
            Ok(NameTest::Name(resolve_prefix(p, *pos, resolve)?, l.clone()))
        }
        Some((Tok::PrefixStar(p), pos)) => Ok(NameTest::AnyIn(resolve_prefix(p, *pos, resolve)?)),
        Some((_, pos)) => Err((
            *pos,
            "expected a name test (QName, '*' or 'prefix:*')".into(),
        )),
        None => Err((end, "expected a name test, found end of expression".into())),
    }
}

fn parse(
    expr: &str,
    field: bool,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathExpr>, PErr> {
    let toks = lex(expr)?;
    let end = expr.chars().count() + 1;
    let tok = |i: usize| toks.get(i).map(|(t, _)| t);
    let pos_of = |i: usize| toks.get(i).map_or(end, |(_, p)| *p);
    let mut paths = Vec::new();
    let mut i = 0usize;
    loop {
        let mut path = PathExpr {
            descendant: false,
            steps: Vec::new(),
            attribute: None,
        };
        if tok(i) == Some(&Tok::Dot) && tok(i + 1) == Some(&Tok::DSlash) {
            path.descendant = true;
            i += 2;
        }
        // Steps separated by '/'.
        loop {
            let mut attr_step = false;
            match tok(i) {
                Some(Tok::Dot) => i += 1,
                Some(Tok::At) => {
                    attr_step = true;
                    i += 1;
                }
                Some(Tok::NcName(axis)) if tok(i + 1) == Some(&Tok::DColon) => {
                    match axis.as_str() {
                        "child" => {
                            i += 2;
                            path.steps.push(name_test(toks.get(i), end, resolve)?);
                            i += 1;
                        }
                        "attribute" => {
                            attr_step = true;
                            i += 2;
                        }
                        other => {
                            return Err((
                                pos_of(i),
                                format!(
                                    "axis '{other}::' is not allowed (only child:: and attribute::)"
                                ),
                            ));
                        }
                    }
                }
                Some(Tok::Star | Tok::NcName(_) | Tok::QName(..) | Tok::PrefixStar(_)) => {
                    path.steps.push(name_test(toks.get(i), end, resolve)?);
                    i += 1;
                }
                Some(Tok::DSlash) => {
                    return Err((
                        pos_of(i),
                        "'//' is only allowed as the leading './/'".into(),
                    ));
                }
                Some(_) => return Err((pos_of(i), "expected a step".into())),
                None => return Err((end, "expected a step, found end of expression".into())),
            }
            if attr_step {
                if !field {
                    return Err((
                        pos_of(i.saturating_sub(1)),
                        "attribute steps are not allowed in a selector".into(),
                    ));
                }
                path.attribute = Some(name_test(toks.get(i), end, resolve)?);
                i += 1;
                match tok(i) {
                    None | Some(Tok::Pipe) => {}
                    Some(_) => {
                        return Err((pos_of(i), "an attribute step must be the last step".into()));
                    }
                }
            }
            match tok(i) {
                Some(Tok::Slash) if !attr_step => i += 1,
                None | Some(Tok::Pipe) => break,
                Some(Tok::DSlash) => {
                    return Err((
                        pos_of(i),
                        "'//' is only allowed as the leading './/'".into(),
                    ));
                }
                Some(Tok::DColon) => return Err((pos_of(i), "unexpected '::'".into())),
                Some(_) => return Err((pos_of(i), "expected '/' or '|'".into())),
            }
        }
        paths.push(path);
        match tok(i) {
            Some(Tok::Pipe) => i += 1,
            _ => break,
        }
    }
    Ok(paths)
}
