//! Character classes of XML 1.0 (5th edition) and Namespaces 1.0.

/// `S ::= (#x20 | #x9 | #xD | #xA)+`
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// XML `Char` production.
#[inline]
pub(crate) fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Returns the byte offset of the first character of `s` that is not an XML
/// `Char` (the input is already valid UTF-8, so only C0 controls, U+FFFE and
/// U+FFFF need checking).
pub(crate) fn find_invalid_char(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut base = 0usize;
    for chunk in bytes.chunks(32) {
        // Branch-free over the chunk (vectorises); tab, LF and CR are common and allowed.
        let suspicious = chunk.iter().fold(false, |acc, &b| {
            acc | ((b < 0x20) & (b != 0x9) & (b != 0xA) & (b != 0xD)) | (b == 0xEF)
        });
        if suspicious {
            for (j, &b) in chunk.iter().enumerate() {
                let i = base + j;
                if b < 0x20 {
                    if b != 0x9 && b != 0xA && b != 0xD {
                        return Some(i);
                    }
                } else if b == 0xEF
                    && bytes.get(i + 1) == Some(&0xBF)
                    && matches!(bytes.get(i + 2), Some(0xBE) | Some(0xBF))
                {
                    return Some(i);
                }
            }
        }
        base += chunk.len();
    }
    None
}

#[inline]
fn is_name_start_char(c: char) -> bool {
    match c {
        'A'..='Z' | 'a'..='z' | '_' | ':' => true,
        c if (c as u32) < 0xC0 => false,
        '\u{C0}'..='\u{D6}'
        | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}'
        | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}'
        | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}' => true,
        _ => false,
    }
}

#[inline]
fn is_name_char(c: char) -> bool {
    match c {
        'A'..='Z' | 'a'..='z' | '_' | ':' | '-' | '.' | '0'..='9' => true,
        c if (c as u32) < 0xB7 => false,
        '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}' => true,
        c => is_name_start_char(c),
    }
}

/// Name classes by byte: 1 = ASCII NameStartChar, 2 = ASCII NameChar only,
/// 3 = non-ASCII (decided per character), 0 = neither.
const NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c >= 0x80 {
            3
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            1
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            2
        } else {
            0
        };
        i += 1;
    }
    t
};

/// XML `Name` production (colons allowed).
pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    let Some((&f, rest)) = b.split_first() else {
        return false;
    };
    let mut acc = NAME_CLASS[usize::from(f)] & 1;
    let mut ascii = f < 0x80;
    for &c in rest {
        let k = NAME_CLASS[usize::from(c)];
        acc &= u8::from(k != 0);
        ascii &= k != 3;
    }
    if ascii {
        return acc == 1;
    }
    is_name_chars(s)
}

fn is_name_chars(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if is_name_start_char(c) => it.all(is_name_char),
        _ => false,
    }
}

/// Namespaces `NCName` (a Name without colons).
pub(crate) fn is_ncname(s: &str) -> bool {
    !s.as_bytes().contains(&b':') && is_name(s)
}

/// Result of QName analysis: `Ok(Some(colon))`, `Ok(None)` (no prefix), or
/// `Err(())` when `s` is not a QName.
pub(crate) fn qname_colon(s: &str) -> Result<Option<usize>, ()> {
    match s.bytes().position(|b| b == b':') {
        None => {
            if is_name(s) {
                Ok(None)
            } else {
                Err(())
            }
        }
        Some(i) => {
            let (p, l) = (s.get(..i).ok_or(())?, s.get(i + 1..).ok_or(())?);
            if is_ncname(p) && is_ncname(l) {
                Ok(Some(i))
            } else {
                Err(())
            }
        }
    }
}

/// Every byte 0x01, every byte 0x80: the masks of the eight-bytes-at-a-time scans below.
const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight bytes as a little-endian word (callers pass exactly eight).
#[inline]
fn word(c: &[u8]) -> u64 {
    <[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes)
}

/// The high bit of each zero byte of `v` (the lowest one flagged is always exact; bytes above
/// a zero byte may be flagged falsely).
#[inline]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LOW) & !v & HIGH
}

/// Counts characters (not bytes) of UTF-8 data.
#[inline]
pub(crate) fn count_chars(s: &[u8]) -> u64 {
    // Eight bytes at a time: a byte starts a character unless it is 0b10xxxxxx.
    let mut chunks = s.chunks_exact(8);
    let mut n = 0u64;
    for c in &mut chunks {
        let w = word(c);
        let starts = ((!w >> 7) | (w >> 6)) & LOW;
        n += u64::from(starts.count_ones());
    }
    n + chunks
        .remainder()
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count() as u64
}

/// The first `x` or `y` in `s`. Tokens and lines are mostly short, where `memchr`'s
/// set-up costs more than the search: the first 64 bytes are scanned a word at a time.
#[inline]
pub(crate) fn find_byte2(x: u8, y: u8, s: &[u8]) -> Option<usize> {
    let (wx, wy) = (LOW * u64::from(x), LOW * u64::from(y));
    let mut i = 0usize;
    while i < 64 {
        let Some(c) = s.get(i..i + 8) else { break };
        let w = word(c);
        // A zero byte of either is a match.
        let m = zero_bytes(w ^ wx) | zero_bytes(w ^ wy);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr2(x, y, s.get(i..).unwrap_or(&[])).map(|k| i + k)
}

/// The first byte of `s` that is not ASCII.
#[inline]
pub(crate) fn find_non_ascii(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut i = 0usize;
    for c in &mut chunks {
        let m = word(c) & HIGH;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b >= 0x80)
        .map(|k| i + k)
}

/// A line/column cursor. Line ends are LF, CRLF and lone CR.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pos {
    pub line: u64,
    pub col: u64,
    pub prev_cr: bool,
}

impl Pos {
    pub(crate) fn start() -> Self {
        Pos {
            line: 1,
            col: 1,
            prev_cr: false,
        }
    }

    #[inline]
    pub(crate) fn advance(&mut self, s: &[u8]) {
        if s.len() <= 64 {
            self.advance_words(s);
        } else {
            self.advance_large(s);
        }
    }

    /// Eight bytes at a time: a word without CR or LF only moves the column (by its count
    /// of bytes that start a character); other words go byte by byte.
    #[inline]
    fn advance_words(&mut self, s: &[u8]) {
        let (lf, cr) = (LOW * u64::from(b'\n'), LOW * u64::from(b'\r'));
        let mut chunks = s.chunks_exact(8);
        for c in &mut chunks {
            let w = word(c);
            if zero_bytes(w ^ lf) | zero_bytes(w ^ cr) != 0 {
                self.advance_small(c);
            } else {
                // Continuation bytes are 0b10xxxxxx: bit 7 set, bit 6 clear.
                let cont = (w & !(w << 1) & HIGH).count_ones();
                self.col += u64::from(8 - cont);
                self.prev_cr = false;
            }
        }
        self.advance_small(chunks.remainder());
    }

    #[inline]
    fn advance_small(&mut self, s: &[u8]) {
        for &b in s {
            if b == b'\n' {
                if !self.prev_cr {
                    self.line += 1;
                }
                self.col = 1;
                self.prev_cr = false;
            } else if b == b'\r' {
                self.line += 1;
                self.col = 1;
                self.prev_cr = true;
            } else {
                self.col += u64::from((b & 0xC0) != 0x80);
                self.prev_cr = false;
            }
        }
    }

    fn advance_large(&mut self, s: &[u8]) {
        let Some(&last_byte) = s.last() else { return };
        match memchr::memrchr2(b'\n', b'\r', s) {
            None => {
                self.col += count_chars(s);
            }
            Some(last) => {
                let mut prev_cr = self.prev_cr;
                let mut prev_idx: Option<usize> = None;
                for i in memchr::memchr2_iter(b'\n', b'\r', s) {
                    let b = s.get(i).copied().unwrap_or(0);
                    let follows_cr = match prev_idx {
                        Some(p) if p + 1 == i => prev_cr,
                        Some(_) => false,
                        None => i == 0 && prev_cr,
                    };
                    if !(b == b'\n' && follows_cr) {
                        self.line += 1;
                    }
                    prev_cr = b == b'\r';
                    prev_idx = Some(i);
                }
                self.col = 1 + count_chars(s.get(last + 1..).unwrap_or(&[]));
            }
        }
        self.prev_cr = last_byte == b'\r';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_chars_matches_a_per_byte_count() {
        for text in [
            "",
            "abc",
            "abcdefghij",
            "é",
            "ééééééééé",
            "a€b𝄞cdefghijklmnop",
            "日本語のテキストです",
        ] {
            assert_eq!(
                count_chars(text.as_bytes()),
                text.chars().count() as u64,
                "{text}"
            );
        }
    }

    #[test]
    fn find_byte2_matches_a_plain_search() {
        let mut text = Vec::new();
        let alphabet = b"ab\xC3\xA9<&\n\rz \x01\xFF";
        for n in 0..200usize {
            text.push(alphabet[n * 7 % alphabet.len()]);
        }
        for start in 0..text.len() {
            let s = &text[start..];
            for (x, y) in [(b'<', b'&'), (b'\n', b'\r'), (b'z', b'z'), (0x01, 0xFF)] {
                let want = s.iter().position(|&b| b == x || b == y);
                assert_eq!(find_byte2(x, y, s), want, "{start} {x} {y}");
            }
        }
        assert_eq!(find_byte2(b'<', b'&', &[b'a'; 100]), None);
        let mut late = vec![b'a'; 100];
        late[99] = b'&';
        assert_eq!(find_byte2(b'<', b'&', &late), Some(99));
    }

    #[test]
    fn find_non_ascii_matches_a_plain_search() {
        let text = "abcdefgh\u{e9}ijklmnopqrstuvw\u{20ac}xyz".as_bytes();
        for start in 0..text.len() {
            let s = &text[start..];
            assert_eq!(
                find_non_ascii(s),
                s.iter().position(|&b| b >= 0x80),
                "{start}"
            );
        }
    }

    #[test]
    fn names() {
        assert!(is_name("a"));
        assert!(is_name("_a-1.b"));
        assert!(is_name("é"));
        assert!(!is_name("1a"));
        assert!(!is_name("-a"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
        assert_eq!(qname_colon("p:l"), Ok(Some(1)));
        assert_eq!(qname_colon("l"), Ok(None));
        assert!(qname_colon(":l").is_err());
        assert!(qname_colon("l:").is_err());
        assert!(qname_colon("a:b:c").is_err());
    }

    #[test]
    fn chars() {
        assert_eq!(find_invalid_char("abc\t\n\r"), None);
        assert_eq!(find_invalid_char("ab\u{1}"), Some(2));
        assert_eq!(find_invalid_char("ab\u{FFFE}"), Some(2));
        assert_eq!(find_invalid_char("ab\u{FFFD}\u{FFFF}"), Some(5));
        let long = format!("{}\u{0}", "x".repeat(100));
        assert_eq!(find_invalid_char(&long), Some(100));
    }

    #[test]
    fn pos() {
        let mut p = Pos::start();
        p.advance("ab\r\ncd\re\nfé".as_bytes());
        assert_eq!((p.line, p.col), (4, 3));
        let long = format!(
            "{}\r\n{}\r{}\n\r\r\nxé",
            "a".repeat(70),
            "b".repeat(70),
            "c".repeat(70)
        );
        let mut p = Pos::start();
        p.advance(long.as_bytes());
        let mut q = Pos::start();
        for b in long.as_bytes() {
            q.advance(std::slice::from_ref(b));
        }
        assert_eq!((p.line, p.col), (q.line, q.col));
        assert_eq!((p.line, p.col), (6, 3));
        let mut p = Pos::start();
        p.advance(b"a\r");
        p.advance(b"\nb");
        assert_eq!((p.line, p.col), (2, 2));
    }
}
