//! Recursive-descent parser for the XSD 1.0 regular-expression dialect
//! (XML Schema Part 2, Appendix F) that translates directly into the syntax
//! of the `regex` crate.
//!
//! The output only uses `(?:...)`, `|`, quantifiers, and bracketed classes
//! made of `\x{HEX}` escapes, `\p{..}`/`\P{..}` general categories and the
//! class set operators `--` (difference) and nesting (union).

use super::charset::CharSet;
use super::tables;

/// Maximum nesting of groups and character-class subtractions.
pub(crate) const MAX_DEPTH: usize = 64;
/// Maximum length (bytes) of the translated pattern.
pub(crate) const MAX_OUTPUT: usize = 1 << 20;

/// A character-class expression. Categories are kept symbolic (the `regex`
/// crate knows the Unicode tables); everything else is an explicit set.
#[derive(Debug, Clone)]
pub(crate) enum ClassExpr {
    Set(CharSet),
    /// A general category (name as accepted by both XSD and the regex crate).
    Category {
        name: &'static str,
        negated: bool,
    },
    Union(Vec<ClassExpr>),
    Negate(Box<ClassExpr>),
    Subtract(Box<ClassExpr>, Box<ClassExpr>),
}

impl ClassExpr {
    /// The explicit set, when no category is involved.
    pub(crate) fn to_set(&self) -> Option<CharSet> {
        match self {
            ClassExpr::Set(s) => Some(s.clone()),
            ClassExpr::Category { .. } => None,
            ClassExpr::Union(items) => {
                let mut acc: Vec<(u32, u32)> = Vec::new();
                for it in items {
                    acc.extend_from_slice(it.to_set()?.ranges());
                }
                Some(CharSet::from_ranges(&acc))
            }
            ClassExpr::Negate(e) => Some(e.to_set()?.negate()),
            ClassExpr::Subtract(a, b) => Some(a.to_set()?.difference(&b.to_set()?)),
        }
    }

    /// Render as one bracketed `regex` class.
    pub(crate) fn render(&self, out: &mut String) {
        if let Some(set) = self.to_set() {
            render_set(&set, out);
            return;
        }
        match self {
            ClassExpr::Set(s) => render_set(s, out),
            ClassExpr::Category { name, negated } => {
                out.push_str(if *negated { "[\\P{" } else { "[\\p{" });
                out.push_str(name);
                out.push_str("}]");
            }
            ClassExpr::Union(items) => {
                if items.is_empty() {
                    render_set(&CharSet::empty(), out);
                    return;
                }
                out.push('[');
                for it in items {
                    it.render(out);
                }
                out.push(']');
            }
            ClassExpr::Negate(e) => {
                out.push_str("[^");
                e.render(out);
                out.push(']');
            }
            ClassExpr::Subtract(a, b) => {
                out.push('[');
                a.render(out);
                out.push_str("--");
                b.render(out);
                out.push(']');
            }
        }
    }
}

fn push_hex(c: u32, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "\\x{{{:X}}}", c);
}

/// Render an explicit set as a bracketed class.
pub(crate) fn render_set(set: &CharSet, out: &mut String) {
    if set.is_empty() {
        // An empty class: never matches.
        out.push_str("[\\x{0}&&\\x{1}]");
        return;
    }
    out.push('[');
    for &(a, b) in set.ranges() {
        push_hex(a, out);
        if b != a {
            out.push('-');
            push_hex(b, out);
        }
    }
    out.push(']');
}

/// Push a literal character outside classes.
fn push_literal(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() || c == '_' || c == ' ' {
        out.push(c);
    } else {
        push_hex(c as u32, out);
    }
}

/// Result of an escape: a single character or a class.
enum Esc {
    Char(char),
    Class(ClassExpr),
}

/// Parse error: (character position, message).
pub(crate) type PErr = (usize, String);

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, PErr> {
    Err((pos, msg.into()))
}

/// XSD general-category names (F.1.1 "Character Properties") mapped to the
/// names the `regex` crate uses (identical short names).
const CATEGORIES: &[&str] = &[
    "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
    "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp", "S", "Sm", "Sc", "Sk", "So", "C",
    "Cc", "Cf", "Co", "Cn", "Cs",
];

fn table_set(t: &[(u32, u32)]) -> CharSet {
    CharSet::from_ranges(t)
}

/// XML 1.0 Letter = BaseChar | Ideographic.
fn letter_set() -> CharSet {
    table_set(tables::BASE_CHAR).union(&table_set(tables::IDEOGRAPHIC))
}

/// `\i`: Letter | '_' | ':'
pub(crate) fn initial_name_char_set() -> CharSet {
    letter_set().union(&CharSet::from_ranges(&[(0x5F, 0x5F), (0x3A, 0x3A)]))
}

/// `\c`: NameChar = Letter | Digit | '.' | '-' | '_' | ':' | CombiningChar | Extender
pub(crate) fn name_char_set() -> CharSet {
    let mut v: Vec<(u32, u32)> = Vec::new();
    v.extend_from_slice(tables::BASE_CHAR);
    v.extend_from_slice(tables::IDEOGRAPHIC);
    v.extend_from_slice(tables::DIGIT);
    v.extend_from_slice(tables::COMBINING_CHAR);
    v.extend_from_slice(tables::EXTENDER);
    v.extend_from_slice(&[(0x2E, 0x2E), (0x2D, 0x2D), (0x5F, 0x5F), (0x3A, 0x3A)]);
    CharSet::from_ranges(&v)
}

/// `\s`: [#x20\t\n\r]
pub(crate) fn space_set() -> CharSet {
    CharSet::from_ranges(&[(0x20, 0x20), (0x9, 0x9), (0xA, 0xA), (0xD, 0xD)])
}

/// Look up an XSD 1.0 block name (without the `Is` prefix).
pub(crate) fn block_set(name: &str) -> Option<CharSet> {
    tables::BLOCKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| CharSet::from_ranges(r))
}

fn cat(name: &'static str, negated: bool) -> ClassExpr {
    ClassExpr::Category { name, negated }
}

/// `\w` = [#x0000-#x10FFFF]-[\p{P}\p{Z}\p{C}]
fn word_expr(negated: bool) -> ClassExpr {
    let pzc = ClassExpr::Union(vec![cat("P", false), cat("Z", false), cat("C", false)]);
    if negated {
        pzc
    } else {
        ClassExpr::Negate(Box::new(pzc))
    }
}

pub(crate) struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    out: String,
}

impl Parser {
    pub(crate) fn new(pattern: &str) -> Parser {
        Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            depth: 0,
            out: String::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.pos
            .checked_add(k)
            .and_then(|i| self.chars.get(i))
            .copied()
    }

    /// Translate the whole pattern (unanchored body).
    pub(crate) fn translate(mut self) -> Result<String, PErr> {
        self.parse_regexp()?;
        if let Some(c) = self.peek() {
            // only ')' can stop parse_regexp early
            return err(
                self.pos,
                format!("unexpected {c:?} (unbalanced parenthesis)"),
            );
        }
        Ok(self.out)
    }

    /// Parse a single character class expression `[...]` (tests / tooling).
    #[cfg(test)]
    pub(crate) fn parse_class_only(mut self) -> Result<ClassExpr, PErr> {
        let e = self.parse_class_expr()?;
        if self.pos != self.chars.len() {
            return err(self.pos, "trailing input");
        }
        Ok(e)
    }

    fn check_size(&self) -> Result<(), PErr> {
        if self.out.len() > MAX_OUTPUT {
            return err(self.pos, "pattern too large");
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), PErr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.pos, format!("nesting deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // regExp ::= branch ( '|' branch )*
    fn parse_regexp(&mut self) -> Result<(), PErr> {
        loop {
            self.parse_branch()?;
            if self.peek() == Some('|') {
                self.pos += 1;
                self.out.push('|');
            } else {
                return Ok(());
            }
        }
    }

    // branch ::= piece*
    fn parse_branch(&mut self) -> Result<(), PErr> {
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.parse_piece()?;
            self.check_size()?;
        }
        Ok(())
    }

    // piece ::= atom quantifier?
    fn parse_piece(&mut self) -> Result<(), PErr> {
        self.parse_atom()?;
        match self.peek() {
            Some(c @ ('?' | '*' | '+')) => {
                self.pos += 1;
                self.out.push(c);
            }
            Some('{') => self.parse_quantity()?,
            _ => {}
        }
        Ok(())
    }

    fn parse_number(&mut self) -> Result<Option<u32>, PErr> {
        let start = self.pos;
        let mut n: u32 = 0;
        while let Some(c) = self.peek() {
            let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) else {
                break;
            };
            n = match n.checked_mul(10).and_then(|x| x.checked_add(d)) {
                Some(v) => v,
                None => return err(start, "quantifier bound too large"),
            };
            self.pos += 1;
        }
        Ok(if self.pos == start { None } else { Some(n) })
    }

    // quantifier ::= '{' quantity '}' ; quantity ::= n | n ',' | n ',' m
    fn parse_quantity(&mut self) -> Result<(), PErr> {
        let open = self.pos;
        self.pos += 1; // '{'
        let Some(n) = self.parse_number()? else {
            return err(self.pos, "expected a number after '{'");
        };
        let mut text = format!("{{{n}");
        match self.peek() {
            Some('}') => {}
            Some(',') => {
                self.pos += 1;
                text.push(',');
                if let Some(m) = self.parse_number()? {
                    if m < n {
                        return err(
                            open,
                            format!("quantifier {{{n},{m}}}: maximum less than minimum"),
                        );
                    }
                    text.push_str(&m.to_string());
                }
            }
            _ => return err(self.pos, "expected ',' or '}' in quantifier"),
        }
        if self.peek() != Some('}') {
            return err(self.pos, "expected '}' to close quantifier");
        }
        self.pos += 1;
        text.push('}');
        self.out.push_str(&text);
        Ok(())
    }

    // atom ::= Char | charClass | '(' regExp ')'
    fn parse_atom(&mut self) -> Result<(), PErr> {
        let Some(c) = self.peek() else {
            return err(self.pos, "unexpected end of pattern");
        };
        match c {
            '(' => {
                self.enter()?;
                self.pos += 1;
                self.out.push_str("(?:");
                self.parse_regexp()?;
                if self.peek() != Some(')') {
                    return err(self.pos, "missing ')'");
                }
                self.pos += 1;
                self.out.push(')');
                self.leave();
            }
            '?' | '*' | '+' | '{' => {
                return err(
                    self.pos,
                    format!("quantifier {c:?} without a preceding atom"),
                );
            }
            '}' | ']' => return err(self.pos, format!("unescaped {c:?}")),
            '[' => {
                let e = self.parse_class_expr()?;
                e.render(&mut self.out);
            }
            '.' => {
                self.pos += 1;
                self.out.push_str("[^\\n\\r]");
            }
            '\\' => match self.parse_escape()? {
                Esc::Char(ch) => push_literal(ch, &mut self.out),
                Esc::Class(e) => e.render(&mut self.out),
            },
            _ => {
                self.pos += 1;
                push_literal(c, &mut self.out);
            }
        }
        Ok(())
    }

    /// Parse an escape starting at '\\'.
    fn parse_escape(&mut self) -> Result<Esc, PErr> {
        let start = self.pos;
        self.pos += 1; // '\\'
        let Some(c) = self.peek() else {
            return err(start, "pattern ends with '\\'");
        };
        self.pos += 1;
        let esc = match c {
            'n' => Esc::Char('\n'),
            'r' => Esc::Char('\r'),
            't' => Esc::Char('\t'),
            '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
                Esc::Char(c)
            }
            's' => Esc::Class(ClassExpr::Set(space_set())),
            'S' => Esc::Class(ClassExpr::Set(space_set().negate())),
            'i' => Esc::Class(ClassExpr::Set(initial_name_char_set())),
            'I' => Esc::Class(ClassExpr::Set(initial_name_char_set().negate())),
            'c' => Esc::Class(ClassExpr::Set(name_char_set())),
            'C' => Esc::Class(ClassExpr::Set(name_char_set().negate())),
            'd' => Esc::Class(cat("Nd", false)),
            'D' => Esc::Class(cat("Nd", true)),
            'w' => Esc::Class(word_expr(false)),
            'W' => Esc::Class(word_expr(true)),
            'p' | 'P' => Esc::Class(self.parse_property(start, c == 'P')?),
            _ => return err(start, format!("invalid escape \\{c}")),
        };
        Ok(esc)
    }

    // catEsc ::= '\p{' charProp '}' ; complEsc ::= '\P{' charProp '}'
    fn parse_property(&mut self, start: usize, negated: bool) -> Result<ClassExpr, PErr> {
        if self.peek() != Some('{') {
            return err(start, "expected '{' after \\p or \\P");
        }
        self.pos += 1;
        let name_start = self.pos;
        let mut name = String::new();
        loop {
            match self.peek() {
                None => return err(start, "unterminated \\p{...}"),
                Some('}') => break,
                Some(ch) => {
                    if name.len() > 64 {
                        return err(name_start, "property name too long");
                    }
                    name.push(ch);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1; // '}'
        if name == "Cs" {
            // Surrogates are never Unicode scalar values, so no string
            // character is in Cs (the regex crate rejects \p{Cs}).
            let s = CharSet::empty();
            return Ok(ClassExpr::Set(if negated { s.negate() } else { s }));
        }
        if let Some(&known) = CATEGORIES.iter().find(|&&k| k == name) {
            return Ok(cat(known, negated));
        }
        if let Some(block) = name.strip_prefix("Is") {
            // XSD 1.0 says processors *may* accept unknown block names; we
            // deliberately reject them (like Xerces) so typos do not silently
            // produce a pattern matching nothing or everything.
            return match block_set(block) {
                Some(set) => Ok(ClassExpr::Set(if negated { set.negate() } else { set })),
                None => err(name_start, format!("unknown Unicode block name {name:?}")),
            };
        }
        err(name_start, format!("unknown character property {name:?}"))
    }

    // charClassExpr ::= '[' charGroup ']'
    fn parse_class_expr(&mut self) -> Result<ClassExpr, PErr> {
        let open = self.pos;
        if self.peek() != Some('[') {
            return err(self.pos, "expected '['");
        }
        self.enter()?;
        self.pos += 1;
        let negated = if self.peek() == Some('^') {
            self.pos += 1;
            true
        } else {
            false
        };
        let mut items: Vec<ClassExpr> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return err(open, "unterminated character class");
            };
            match c {
                ']' => {
                    if items.is_empty() {
                        return err(self.pos, "empty character class");
                    }
                    self.pos += 1;
                    self.leave();
                    let base = ClassExpr::Union(items);
                    return Ok(if negated {
                        ClassExpr::Negate(Box::new(base))
                    } else {
                        base
                    });
                }
                '[' => return err(self.pos, "unescaped '[' in character class"),
                '-' => {
                    let next = self.peek_at(1);
                    if next == Some('[') && !items.is_empty() {
                        // charClassSub ::= ( posCharGroup | negCharGroup ) '-' charClassExpr
                        self.pos += 1;
                        let sub = self.parse_class_expr()?;
                        if self.peek() != Some(']') {
                            return err(
                                self.pos,
                                "a class subtraction must be the last part of a character class",
                            );
                        }
                        self.pos += 1;
                        self.leave();
                        let base = ClassExpr::Union(items);
                        let base = if negated {
                            ClassExpr::Negate(Box::new(base))
                        } else {
                            base
                        };
                        return Ok(ClassExpr::Subtract(Box::new(base), Box::new(sub)));
                    } else if items.is_empty()
                        || next == Some(']')
                        || (next == Some('-') && self.peek_at(2) == Some('['))
                    {
                        // '-' is literal at the start or end of a group (the end
                        // of a posCharGroup may be followed by `-[...]`)
                        self.pos += 1;
                        items.push(ClassExpr::Set(CharSet::single('-')));
                    } else {
                        return err(
                            self.pos,
                            "'-' must be escaped unless first or last in a character group",
                        );
                    }
                }
                '\\' => match self.parse_escape()? {
                    Esc::Char(ch) => {
                        let e = self.maybe_range(ch)?;
                        items.push(e);
                    }
                    Esc::Class(e) => items.push(e),
                },
                _ => {
                    self.pos += 1;
                    let e = self.maybe_range(c)?;
                    items.push(e);
                }
            }
        }
    }

    /// After a range start `s` (XmlChar or single-char escape), parse `-end`
    /// if present.
    fn maybe_range(&mut self, s: char) -> Result<ClassExpr, PErr> {
        if self.peek() == Some('-') {
            match self.peek_at(1) {
                Some('[') | Some(']') | None => {}
                // `a--[...]`: the '-' ends the group, followed by a subtraction
                Some('-') if self.peek_at(2) == Some('[') => {}
                Some(_) => {
                    let dash = self.pos;
                    self.pos += 1;
                    let end = match self.peek() {
                        Some('\\') => match self.parse_escape()? {
                            Esc::Char(ch) => ch,
                            Esc::Class(_) => {
                                return err(dash, "a multi-character escape cannot end a range");
                            }
                        },
                        Some('-') => return err(self.pos, "'-' cannot end a range unless escaped"),
                        Some(ch) => {
                            self.pos += 1;
                            ch
                        }
                        None => return err(self.pos, "unterminated character class"),
                    };
                    if end < s {
                        return err(
                            dash,
                            format!("invalid range {s:?}-{end:?}: end before start"),
                        );
                    }
                    return Ok(ClassExpr::Set(CharSet::from_ranges(&[(
                        s as u32, end as u32,
                    )])));
                }
            }
        }
        Ok(ClassExpr::Set(CharSet::single(s)))
    }
}
