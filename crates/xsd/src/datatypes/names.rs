//! XML 1.0 (5th edition) name productions, language, anyURI and XML Char checks.

pub fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

pub fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

pub fn is_name(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if is_name_start_char(c) => it.all(is_name_char),
        _ => false,
    }
}

pub fn is_ncname(s: &str) -> bool {
    is_name(s) && !s.contains(':')
}

pub fn is_nmtoken(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

/// `[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`
pub fn is_language(s: &str) -> bool {
    for (i, part) in s.split('-').enumerate() {
        if part.is_empty() || part.len() > 8 {
            return false;
        }
        let ok = if i == 0 {
            part.bytes().all(|c| c.is_ascii_alphabetic())
        } else {
            part.bytes().all(|c| c.is_ascii_alphanumeric())
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Lenient anyURI check (Xerces-like): after escaping, the string must be a URI reference.
/// Rejects only clear errors: more than one '#', '%' not followed by two hex digits,
/// an empty or malformed scheme before ':' in the first path segment is tolerated.
pub fn check_any_uri(s: &str) -> Result<(), String> {
    if s.matches('#').count() > 1 {
        return Err("'#' appears more than once".into());
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b.get(i) == Some(&b'%') {
            let ok = b.get(i + 1).is_some_and(|c| c.is_ascii_hexdigit())
                && b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err("'%' is not followed by two hex digits".into());
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    // a scheme, if present, must start with a letter and contain only [A-Za-z0-9+.-]
    let first_delim = s.find(['/', '?', '#']).unwrap_or(s.len());
    if let Some(colon) = s.get(..first_delim).and_then(|p| p.find(':')) {
        let scheme = s.get(..colon).unwrap_or("");
        let ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !ok {
            return Err(format!("'{scheme}' is not a valid URI scheme"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        assert!(is_ncname("a-b.c"));
        assert!(!is_ncname("a:b"));
        assert!(is_name("a:b"));
        assert!(!is_name("1a"));
        assert!(is_nmtoken("1a"));
        assert!(!is_nmtoken(""));
        assert!(is_language("en-US"));
        assert!(is_language("i-klingon"));
        assert!(!is_language("toolongtag"));
        assert!(!is_language("en-"));
        assert!(!is_language("1en"));
        assert!(check_any_uri("http://a/b#c").is_ok());
        assert!(check_any_uri("a#b#c").is_err());
        assert!(check_any_uri("%zz").is_err());
        assert!(check_any_uri("").is_ok());
    }
}
