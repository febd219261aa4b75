//! XML Schema 1.0 regular expressions (Part 2, Appendix F).
//!
//! Patterns are parsed by a small, depth-limited recursive-descent parser
//! and translated into the syntax of the linear-time `regex` crate, using
//! only explicit escaped characters, ranges and Unicode general categories.
//! XSD patterns are implicitly anchored: [`XsdRegex::is_match`] tests the
//! whole string.

mod charset;
mod parse;
mod tables;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod w3c_tests;

pub use self::charset::CharSet;

/// Compiled-program size limit handed to the `regex` crate (bytes).
pub const REGEX_SIZE_LIMIT: usize = 8 << 20;
/// Lazy-DFA cache limit handed to the `regex` crate (bytes).
pub const REGEX_DFA_SIZE_LIMIT: usize = 8 << 20;

/// A compiled XSD 1.0 pattern facet.
#[derive(Clone)]
pub struct XsdRegex {
    pattern: String,
    translated: String,
    regex: regex::Regex,
}

/// Error produced for an invalid (or unsupported because too large) pattern.
/// `position` is the 0-based index, in characters, into `pattern`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid pattern {pattern:?} at character {position}: {message}")]
pub struct RegexError {
    pub pattern: String,
    pub position: usize,
    pub message: String,
}

impl std::fmt::Debug for XsdRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsdRegex")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl XsdRegex {
    /// Compile an XSD 1.0 pattern facet value (XML Schema Part 2, Appendix F).
    pub fn compile(pattern: &str) -> Result<XsdRegex, RegexError> {
        let mk = |position: usize, message: String| RegexError {
            pattern: pattern.to_string(),
            position,
            message,
        };
        let body = parse::Parser::new(pattern)
            .translate()
            .map_err(|(p, m)| mk(p, m))?;
        let translated = format!("\\A(?:{body})\\z");
        let regex = regex::RegexBuilder::new(&translated)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
            .nest_limit(1000)
            .build()
            .map_err(|e| {
                let end = pattern.chars().count();
                match e {
                    regex::Error::CompiledTooBig(_) => mk(end, "pattern too large".to_string()),
                    other => mk(end, format!("pattern too large or unsupported: {other}")),
                }
            })?;
        Ok(XsdRegex {
            pattern: pattern.to_string(),
            translated,
            regex,
        })
    }

    /// True when the WHOLE string matches (XSD patterns are implicitly anchored).
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The original XSD pattern.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The translated `regex`-crate pattern (for diagnostics).
    pub fn translated(&self) -> &str {
        &self.translated
    }
}

/// Escape a literal string so that `XsdRegex::compile(&escape(s))` matches
/// exactly `s`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out
}
