//! Streaming, namespace-aware, well-formedness-checking XML 1.0 reader for
//! untrusted input.
//!
//! Tokenising is done by `quick_xml::Reader` (low level); everything quick-xml
//! is lax about (characters, names, attribute syntax, namespaces, document
//! structure, XML declaration, references, limits) is enforced here.
//!
//! Memory: one token (bounded by [`Limits::max_token_bytes`]), the current
//! text node (bounded by [`Limits::max_text_len`]), the open-element stack and
//! the namespace scopes.
//!
//! Notes:
//! - Text between two tags is normally delivered as one `Text` event (runs
//!   split by references, CDATA, comments and PIs are joined); it may still be
//!   split when the next markup is not yet buffered, so consumers concatenate.
//! - With `allow_doctype`, the DOCTYPE (internal subset included) is skipped:
//!   no entity is defined, no attribute default applied, nothing fetched.
//! - Only XML 1.0 is accepted (`version="1.1"` is an error).
//! - After the first error the reader keeps returning that error.

mod chars;
mod source;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::BufRead;

use quick_xml::events::Event as QEvent;

use self::chars::{Pos, find_invalid_char, is_name, is_ncname, is_ws, is_xml_char, qname_colon};
use self::source::{LimitHit, Source};

/// The namespace bound to the `xml` prefix.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` declarations (never bindable).
pub const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Resource limits; every violation yields [`XmlErrorKind::LimitExceeded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum element nesting depth (root = 1). Default 256.
    pub max_depth: usize,
    /// Maximum attributes per element, namespace declarations excluded. Default 256.
    pub max_attributes: usize,
    /// Maximum length in bytes of element/attribute names and PI targets. Default 1024.
    pub max_name_len: usize,
    /// Maximum length in bytes (after normalisation) of a text node or an attribute value. Default 16 MiB.
    pub max_text_len: usize,
    /// Maximum number of bytes consumed from the input. Default `u64::MAX`.
    pub max_document_bytes: u64,
    /// Maximum namespace declarations per element. Default 256.
    pub max_namespaces: usize,
    /// Accept (and skip, never expanding or fetching anything) a DOCTYPE. Default false.
    pub allow_doctype: bool,
    /// Extension: maximum raw size in bytes of a single token (a start tag with
    /// all its attributes, a comment, a PI, a CDATA section, a DOCTYPE, or a
    /// run of text between markup/references). Bounds the reader's buffer.
    /// Default 64 MiB.
    pub max_token_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 256,
            max_attributes: 256,
            max_name_len: 1024,
            max_text_len: 16 * 1024 * 1024,
            max_document_bytes: u64::MAX,
            max_namespaces: 256,
            allow_doctype: false,
            max_token_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Category of an [`XmlError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmlErrorKind {
    Malformed,
    DoctypeForbidden,
    LimitExceeded,
    Io,
}

impl XmlErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            XmlErrorKind::Malformed => "xml_malformed",
            XmlErrorKind::DoctypeForbidden => "dtd_forbidden",
            XmlErrorKind::LimitExceeded => "xml_limit_exceeded",
            XmlErrorKind::Io => "io_error",
        }
    }
}

/// A fatal reading error. After an error the reader keeps returning it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct XmlError {
    pub kind: XmlErrorKind,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// An attribute of a start tag (namespace declarations are not included).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    pub namespace: Option<String>,
    pub local: String,
    pub prefix: Option<String>,
    /// Normalised as for CDATA attributes (XML 1.0 §3.3.3).
    pub value: String,
    pub line: u64,
    pub column: u64,
}

/// A start tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartTag<'a> {
    pub namespace: Option<&'a str>,
    pub local: &'a str,
    pub prefix: Option<&'a str>,
    pub attributes: &'a [Attribute],
    pub line: u64,
    pub column: u64,
}

/// A reader event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// An element starts (`<a/>` yields `Start` then `End`).
    Start(StartTag<'a>),
    /// The innermost open element ends.
    End,
    /// Character data (references resolved, CDATA included, line ends
    /// normalised). Consecutive `Text` events must be concatenated.
    Text(&'a str),
    /// End of a well-formed document.
    Eof,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Prolog,
    Root,
    Epilog,
    Done,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Start,
    End,
    Text,
    Eof,
}

#[derive(Debug)]
struct Frame {
    start: usize,
    colon: Option<usize>,
    ns_start: usize,
    line: u64,
    col: u64,
}

#[derive(Debug, Clone, Copy)]
struct RawAttr {
    ns: usize,
    ne: usize,
    vs: usize,
    ve: usize,
    line: u64,
    col: u64,
}

/// Streaming XML reader. See the module documentation.
pub struct XmlReader<R: BufRead> {
    reader: quick_xml::Reader<Source<R>>,
    limits: Limits,
    buf: Vec<u8>,
    phase: Phase,
    started: bool,
    bom_len: u64,
    any_event: bool,
    seen_doctype: bool,
    names: String,
    frames: Vec<Frame>,
    pending_pop: bool,
    pending_end: bool,
    ns: NsScopes,
    attrs: Vec<Attribute>,
    n_attrs: usize,
    raw: Vec<RawAttr>,
    idx: Vec<u32>,
    text: String,
    ev_line: u64,
    ev_col: u64,
    error: Option<XmlError>,
}

fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or(""))
}

fn describe_char_at(s: &str, off: usize) -> String {
    match s.get(off..).and_then(|t| t.chars().next()) {
        Some(c) => format!("U+{:04X}", c as u32),
        None => "?".to_owned(),
    }
}

fn pos_in(line: u64, col: u64, s: &[u8], off: usize) -> (u64, u64) {
    let mut p = Pos {
        line,
        col,
        prev_cr: false,
    };
    p.advance(s.get(..off).unwrap_or(s));
    (p.line, p.col)
}

/// Resolves the reference `&name;` (name without `&` and `;`).
fn resolve_ref(name: &str) -> Result<char, String> {
    if let Some(num) = name.strip_prefix('#') {
        let (digits, radix) = match num.strip_prefix('x') {
            Some(h) => (h, 16u32),
            None => (num, 10u32),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(format!("malformed character reference '&{};'", clip(name)));
        }
        let mut v: u32 = 0;
        for c in digits.chars() {
            let d = c.to_digit(radix).unwrap_or(0);
            v = v.saturating_mul(radix).saturating_add(d).min(0x11_0000);
        }
        if !is_xml_char(v) {
            return Err(format!(
                "character reference '&{};' does not refer to a legal XML character",
                clip(name)
            ));
        }
        return char::from_u32(v).ok_or_else(|| {
            format!(
                "character reference '&{};' does not refer to a legal XML character",
                clip(name)
            )
        });
    }
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ if is_name(name) => Err(format!(
            "undefined entity '&{};' (only &lt; &gt; &amp; &apos; &quot; and character references are allowed)",
            clip(name)
        )),
        _ => Err(format!(
            "'&' must start a reference such as '&amp;' (found '&{};')",
            clip(name)
        )),
    }
}

/// Offset of the first `]]>` in `s`.
#[inline]
fn find_cdata_end(s: &[u8]) -> Option<usize> {
    let mut from = 0usize;
    while let Some(i) = memchr::memchr(b'>', s.get(from..)?) {
        let gt = from + i;
        if gt >= 2 && s.get(gt - 2..gt) == Some(b"]]") {
            return Some(gt - 2);
        }
        from = gt + 1;
    }
    None
}

/// Appends `s` with line ends normalised (CRLF and CR to LF).
fn push_normalized(out: &mut String, s: &str) {
    if memchr::memchr(b'\r', s.as_bytes()).is_none() {
        out.push_str(s);
        return;
    }
    let mut rest = s;
    while let Some(i) = memchr::memchr(b'\r', rest.as_bytes()) {
        out.push_str(rest.get(..i).unwrap_or(""));
        out.push('\n');
        rest = rest.get(i + 1..).unwrap_or("");
        if let Some(r) = rest.strip_prefix('\n') {
            rest = r;
        }
    }
    out.push_str(rest);
}

/// Attribute-value normalisation for CDATA attributes. Returns the byte
/// offset (in `raw`) and message of the first error.
fn normalize_attr(raw: &str, out: &mut String) -> Result<(), (usize, String)> {
    out.clear();
    if let Some(off) = find_invalid_char(raw) {
        return Err((
            off,
            format!(
                "character {} is not allowed in XML",
                describe_char_at(raw, off)
            ),
        ));
    }
    let bytes = raw.as_bytes();
    let mut i = 0usize;
    let mut span = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\t' | b'\n' | b'\r' => {
                out.push_str(raw.get(span..i).unwrap_or(""));
                out.push(' ');
                if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                i += 1;
                span = i;
            }
            b'<' => {
                return Err((
                    i,
                    "'<' is not allowed in attribute values (use &lt;)".to_owned(),
                ));
            }
            b'&' => {
                out.push_str(raw.get(span..i).unwrap_or(""));
                let rest = bytes.get(i + 1..).unwrap_or(&[]);
                let Some(semi) = memchr::memchr(b';', rest) else {
                    return Err((
                        i,
                        "'&' in an attribute value must start a reference such as '&amp;'"
                            .to_owned(),
                    ));
                };
                let name = raw.get(i + 1..i + 1 + semi).unwrap_or("");
                let c = resolve_ref(name).map_err(|m| (i, m))?;
                out.push(c);
                i += semi + 2;
                span = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(raw.get(span..).unwrap_or(""));
    Ok(())
}

/// Finds a duplicate key among `n` items; returns the index of the later one.
fn find_dup<'k, K: Ord + 'k>(
    n: usize,
    idx: &mut Vec<u32>,
    key: impl Fn(usize) -> K,
) -> Option<(usize, usize)> {
    if n <= 16 {
        for j in 1..n {
            for i in 0..j {
                if key(i) == key(j) {
                    return Some((i, j));
                }
            }
        }
        return None;
    }
    idx.clear();
    idx.extend((0..n).map(|i| i as u32));
    idx.sort_unstable_by(|&a, &b| key(a as usize).cmp(&key(b as usize)).then(a.cmp(&b)));
    let mut best: Option<(usize, usize)> = None;
    for w in idx.windows(2) {
        if let [a, b] = *w
            && key(a as usize) == key(b as usize)
        {
            let cand = (a as usize, b as usize);
            if best.is_none_or(|(_, bj)| cand.1 < bj) {
                best = Some(cand);
            }
        }
    }
    best
}

/// In-scope namespace bindings. The default namespace has its own stack so
/// that unprefixed names need no hashing; an empty URI means "undeclared".
#[derive(Default)]
struct NsScopes {
    map: HashMap<String, Vec<String>>,
    default: Vec<String>,
    /// Declared prefixes in document order ("" = default), popped per element.
    decls: Vec<String>,
}

impl NsScopes {
    #[inline]
    fn lookup(&self, prefix: &str) -> Option<&str> {
        let uri = match prefix {
            "" => self.default.last(),
            "xml" => return Some(XML_NS),
            "xmlns" => return Some(XMLNS_NS),
            _ => self.map.get(prefix).and_then(|v| v.last()),
        };
        uri.map(String::as_str).filter(|s| !s.is_empty())
    }

    fn declare(&mut self, prefix: &str, uri: &str) {
        if prefix.is_empty() {
            self.default.push(uri.to_owned());
        } else if let Some(v) = self.map.get_mut(prefix) {
            v.push(uri.to_owned());
        } else {
            self.map.insert(prefix.to_owned(), vec![uri.to_owned()]);
        }
        self.decls.push(prefix.to_owned());
    }

    fn pop_to(&mut self, len: usize) {
        while self.decls.len() > len {
            let Some(prefix) = self.decls.pop() else {
                break;
            };
            if prefix.is_empty() {
                self.default.pop();
                continue;
            }
            let empty = match self.map.get_mut(&prefix) {
                Some(v) => {
                    v.pop();
                    v.is_empty()
                }
                None => false,
            };
            if empty {
                self.map.remove(&prefix);
            }
        }
    }
}

fn set_opt(slot: &mut Option<String>, v: Option<&str>) {
    match (slot.as_mut(), v) {
        (Some(s), Some(v)) => {
            s.clear();
            s.push_str(v);
        }
        (None, Some(v)) => *slot = Some(v.to_owned()),
        (_, None) => *slot = None,
    }
}

/// Checks the pseudo-attributes of an XML declaration (`rest` follows `xml`).
fn check_decl(rest: &str) -> Result<(), String> {
    let b = rest.as_bytes();
    let mut i = 0usize;
    let mut seen: Vec<(&str, &str)> = Vec::new();
    loop {
        let ws = i;
        while b.get(i).is_some_and(|&c| is_ws(c)) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if i == ws {
            return Err(
                "malformed XML declaration: expected whitespace between pseudo-attributes".into(),
            );
        }
        let ns = i;
        while b
            .get(i)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            i += 1;
        }
        let name = rest.get(ns..i).unwrap_or("");
        while b.get(i).is_some_and(|&c| is_ws(c)) {
            i += 1;
        }
        if name.is_empty() || b.get(i) != Some(&b'=') {
            return Err(
                "malformed XML declaration: expected name=\"value\" pseudo-attributes".into(),
            );
        }
        i += 1;
        while b.get(i).is_some_and(|&c| is_ws(c)) {
            i += 1;
        }
        let q = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                return Err(format!(
                    "malformed XML declaration: value of '{}' must be quoted",
                    clip(name)
                ));
            }
        };
        let vs = i + 1;
        let Some(len) = memchr::memchr(q, b.get(vs..).unwrap_or(&[])) else {
            return Err("malformed XML declaration: unterminated value".into());
        };
        seen.push((name, rest.get(vs..vs + len).unwrap_or("")));
        i = vs + len + 1;
    }
    let order = ["version", "encoding", "standalone"];
    let mut last: Option<usize> = None;
    for (k, (name, _)) in seen.iter().enumerate() {
        let Some(p) = order.iter().position(|o| o == name) else {
            return Err(format!(
                "malformed XML declaration: unknown pseudo-attribute '{}'",
                clip(name)
            ));
        };
        if k == 0 && p != 0 {
            return Err("malformed XML declaration: 'version' must come first".into());
        }
        if last.is_some_and(|l| p <= l) {
            return Err("malformed XML declaration: pseudo-attributes must be version, encoding, standalone in that order, each at most once".into());
        }
        last = Some(p);
    }
    if seen.is_empty() {
        return Err("malformed XML declaration: 'version' is required".into());
    }
    for (name, value) in &seen {
        match *name {
            "version" => {
                if *value != "1.0" {
                    return Err(format!(
                        "XML version '{}' is not supported (only XML 1.0 documents are accepted)",
                        clip(value)
                    ));
                }
            }
            "encoding" => {
                let ok_syntax = value
                    .as_bytes()
                    .first()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                    && value
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
                if !ok_syntax {
                    return Err(format!(
                        "malformed encoding name '{}' in XML declaration",
                        clip(value)
                    ));
                }
                if !(value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("us-ascii"))
                {
                    return Err(format!(
                        "encoding '{}' is not supported: only UTF-8 documents are accepted",
                        clip(value)
                    ));
                }
            }
            _ => {
                if *value != "yes" && *value != "no" {
                    return Err(format!(
                        "standalone must be 'yes' or 'no' in the XML declaration, found '{}'",
                        clip(value)
                    ));
                }
            }
        }
    }
    Ok(())
}

impl<R: BufRead> XmlReader<R> {
    pub fn new(input: R, limits: Limits) -> Self {
        let src = Source::new(input, limits.max_document_bytes, limits.max_token_bytes);
        let mut reader = quick_xml::Reader::from_reader(src);
        {
            let c = reader.config_mut();
            c.check_end_names = false;
            c.allow_unmatched_ends = true;
            c.check_comments = false;
            c.expand_empty_elements = false;
            c.trim_text(false);
            c.allow_dangling_amp = false;
            c.trim_markup_names_in_closing_tags = true;
        }
        XmlReader {
            reader,
            limits,
            buf: Vec::with_capacity(4096),
            phase: Phase::Prolog,
            started: false,
            bom_len: 0,
            any_event: false,
            seen_doctype: false,
            names: String::new(),
            frames: Vec::new(),
            pending_pop: false,
            pending_end: false,
            ns: NsScopes::default(),
            attrs: Vec::new(),
            n_attrs: 0,
            raw: Vec::new(),
            idx: Vec::new(),
            text: String::new(),
            ev_line: 1,
            ev_col: 1,
            error: None,
        }
    }

    /// Returns the next event. After `Eof` or an error, keeps returning it.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Event<'_>, XmlError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.next_inner() {
            Ok(k) => Ok(self.make_event(k)),
            Err(e) => {
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Namespace URI bound to `prefix` ("" = default namespace) in the scope
    /// of the element most recently started and not yet ended (during an
    /// `End` event: the element being closed).
    pub fn lookup_namespace(&self, prefix: &str) -> Option<&str> {
        self.ns.lookup(prefix)
    }

    /// Number of open elements; during `Start` and `End` events it includes
    /// the element being started/ended (root = 1).
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// 1-based line and column (in characters) of the start of the last event.
    pub fn position(&self) -> (u64, u64) {
        (self.ev_line, self.ev_col)
    }

    /// Bytes consumed from the input so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.reader.get_ref().consumed
    }

    fn make_event(&self, k: Kind) -> Event<'_> {
        match k {
            Kind::Text => Event::Text(&self.text),
            Kind::End => Event::End,
            Kind::Eof => Event::Eof,
            Kind::Start => match self.frames.last() {
                Some(f) => {
                    let qname = self.names.get(f.start..).unwrap_or("");
                    let (prefix, local) = match f.colon {
                        Some(c) => (qname.get(..c), qname.get(c + 1..).unwrap_or("")),
                        None => (None, qname),
                    };
                    Event::Start(StartTag {
                        namespace: self.lookup_namespace(prefix.unwrap_or("")),
                        local,
                        prefix,
                        attributes: self.attrs.get(..self.n_attrs).unwrap_or(&[]),
                        line: f.line,
                        column: f.col,
                    })
                }
                None => Event::Eof,
            },
        }
    }

    fn err(kind: XmlErrorKind, (line, column): (u64, u64), message: impl Into<String>) -> XmlError {
        XmlError {
            kind,
            line,
            column,
            message: message.into(),
        }
    }

    fn malformed(pos: (u64, u64), message: impl Into<String>) -> XmlError {
        Self::err(XmlErrorKind::Malformed, pos, message)
    }

    fn limit(pos: (u64, u64), message: impl Into<String>) -> XmlError {
        Self::err(XmlErrorKind::LimitExceeded, pos, message)
    }

    fn cur_pos(&self) -> (u64, u64) {
        let p = self.reader.get_ref().pos;
        (p.line, p.col)
    }

    fn pop_frame(&mut self) {
        if let Some(f) = self.frames.pop() {
            self.names.truncate(f.start);
            self.ns.pop_to(f.ns_start);
        }
        if self.frames.is_empty() && self.phase == Phase::Root {
            self.phase = Phase::Epilog;
        }
    }

    fn begin(&mut self) -> Result<(), XmlError> {
        self.started = true;
        let src = self.reader.get_mut();
        let head: [Option<u8>; 6] = match src.peek() {
            Ok(b) => {
                [b.first(), b.get(1), b.get(2), b.get(3), b.get(4), b.get(5)].map(|x| x.copied())
            }
            Err(e) => {
                return Err(Self::err(
                    XmlErrorKind::Io,
                    (1, 1),
                    format!("I/O error: {e}"),
                ));
            }
        };
        match head {
            [Some(0xFE), Some(0xFF), ..] | [Some(0xFF), Some(0xFE), ..] => {
                return Err(Self::malformed(
                    (1, 1),
                    "only UTF-8 documents are accepted (found a UTF-16 byte order mark)",
                ));
            }
            [Some(0), Some(0x3C), ..] | [Some(0x3C), Some(0), ..] | [Some(0), Some(0), ..] => {
                return Err(Self::malformed(
                    (1, 1),
                    "only UTF-8 documents are accepted (input looks like UTF-16/UTF-32)",
                ));
            }
            [Some(0xEF), Some(0xBB), Some(0xBF), a, b, c] => {
                src.skip_invisible(3);
                self.bom_len = 3;
                if (a, b, c) == (Some(0xEF), Some(0xBB), Some(0xBF)) {
                    return Err(Self::malformed(
                        (1, 1),
                        "text is not allowed before the root element (found a second byte order mark)",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn next_inner(&mut self) -> Result<Kind, XmlError> {
        if self.pending_pop {
            self.pending_pop = false;
            self.pop_frame();
        }
        if self.pending_end {
            self.pending_end = false;
            self.pending_pop = true;
            return Ok(Kind::End);
        }
        if self.phase == Phase::Done {
            self.ev_line = self.cur_pos().0;
            self.ev_col = self.cur_pos().1;
            return Ok(Kind::Eof);
        }
        if !self.started {
            self.begin()?;
        }
        self.text.clear();
        if self.text.capacity() > (1 << 20) {
            self.text = String::with_capacity(4096);
        }
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.read_loop(&mut buf);
        // Do not keep a huge buffer around after an exceptional token.
        if buf.capacity() > (1 << 20) {
            buf = Vec::with_capacity(4096);
        }
        self.buf = buf;
        r
    }

    fn map_qerr(&self, e: quick_xml::Error, pos: (u64, u64)) -> XmlError {
        match self.reader.get_ref().limit_hit {
            Some(LimitHit::Document) => {
                return Self::limit(
                    self.cur_pos(),
                    format!(
                        "document size exceeds the limit of {} bytes",
                        self.limits.max_document_bytes
                    ),
                );
            }
            Some(LimitHit::Token) => {
                return Self::limit(
                    pos,
                    format!(
                        "a single token (tag, text run, comment, PI, CDATA or DOCTYPE) exceeds the limit of {} bytes",
                        self.limits.max_token_bytes
                    ),
                );
            }
            None => {}
        }
        match e {
            quick_xml::Error::Io(io) => {
                Self::err(XmlErrorKind::Io, pos, format!("I/O error: {io}"))
            }
            quick_xml::Error::Encoding(_) => Self::malformed(
                pos,
                "invalid UTF-8 byte sequence (only UTF-8 documents are accepted)",
            ),
            quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::UnclosedReference) => {
                Self::malformed(
                    pos,
                    "'&' must start a reference such as '&amp;' terminated by ';'",
                )
            }
            other => Self::malformed(pos, format!("{other}")),
        }
    }

    fn check_text_len(&self, pos: (u64, u64)) -> Result<(), XmlError> {
        if self.text.len() > self.limits.max_text_len {
            return Err(Self::limit(
                pos,
                format!(
                    "text node exceeds the limit of {} bytes",
                    self.limits.max_text_len
                ),
            ));
        }
        Ok(())
    }

    /// After character content inside the root: is the text node finished?
    fn should_flush(&mut self) -> bool {
        match self.reader.get_mut().peek() {
            Ok(b) => match b.first() {
                None => true,
                Some(b'<') => !matches!(b.get(1), Some(b'!') | Some(b'?')),
                Some(_) => false,
            },
            Err(_) => true,
        }
    }

    fn read_loop(&mut self, buf: &mut Vec<u8>) -> Result<Kind, XmlError> {
        let mut text_pos: Option<(u64, u64)> = None;
        loop {
            buf.clear();
            let src = self.reader.get_mut();
            src.mark_token();
            let tok_off = src.consumed;
            let pos = (src.pos.line, src.pos.col);
            let ev = match self.reader.read_event_into(buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.map_qerr(e, pos)),
            };
            let first_event = !self.any_event;
            self.any_event = true;
            let in_root = self.phase == Phase::Root;
            let mut check_doctype_keyword = false;
            match ev {
                QEvent::Text(t) => {
                    let s: &str = &t;
                    if s.is_empty() {
                    } else if in_root {
                        if let Some(off) = find_invalid_char(s) {
                            return Err(Self::malformed(
                                pos_in(pos.0, pos.1, s.as_bytes(), off),
                                format!(
                                    "character {} is not allowed in XML",
                                    describe_char_at(s, off)
                                ),
                            ));
                        }
                        if let Some(off) = find_cdata_end(s.as_bytes()) {
                            return Err(Self::malformed(
                                pos_in(pos.0, pos.1, s.as_bytes(), off),
                                "']]>' is not allowed in text content (escape '>' as &gt;)",
                            ));
                        }
                        text_pos.get_or_insert(pos);
                        push_normalized(&mut self.text, s);
                        self.check_text_len(pos)?;
                    } else if let Some(off) = s.bytes().position(|b| !is_ws(b)) {
                        let where_ = if self.phase == Phase::Prolog {
                            "before"
                        } else {
                            "after"
                        };
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1, s.as_bytes(), off),
                            format!("text is not allowed {where_} the root element"),
                        ));
                    }
                }
                QEvent::GeneralRef(r) => {
                    let name: &str = &r;
                    if !in_root {
                        return Err(Self::malformed(
                            pos,
                            format!(
                                "reference '&{};' is not allowed outside the root element",
                                clip(name)
                            ),
                        ));
                    }
                    let c = resolve_ref(name).map_err(|m| Self::malformed(pos, m))?;
                    text_pos.get_or_insert(pos);
                    self.text.push(c);
                    self.check_text_len(pos)?;
                }
                QEvent::CData(c) => {
                    let s: &str = &c;
                    if !in_root {
                        return Err(Self::malformed(
                            pos,
                            "CDATA sections are not allowed outside the root element",
                        ));
                    }
                    if let Some(off) = find_invalid_char(s) {
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1 + 9, s.as_bytes(), off),
                            format!(
                                "character {} is not allowed in XML",
                                describe_char_at(s, off)
                            ),
                        ));
                    }
                    text_pos.get_or_insert(pos);
                    push_normalized(&mut self.text, s);
                    self.check_text_len(pos)?;
                }
                QEvent::Comment(c) => {
                    let s: &str = &c;
                    if let Some(off) = find_invalid_char(s) {
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1 + 4, s.as_bytes(), off),
                            format!(
                                "character {} is not allowed in XML",
                                describe_char_at(s, off)
                            ),
                        ));
                    }
                    if let Some(off) = memchr::memmem::find(s.as_bytes(), b"--") {
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1 + 4, s.as_bytes(), off),
                            "'--' is not allowed inside a comment",
                        ));
                    }
                    if s.ends_with('-') {
                        return Err(Self::malformed(pos, "a comment must not end with '--->'"));
                    }
                }
                QEvent::PI(p) => {
                    let s: &str = &p;
                    let tend = s.bytes().position(is_ws).unwrap_or(s.len());
                    let target = s.get(..tend).unwrap_or("");
                    if target.len() > self.limits.max_name_len {
                        return Err(Self::limit(
                            pos,
                            format!(
                                "name length exceeds the limit of {} bytes",
                                self.limits.max_name_len
                            ),
                        ));
                    }
                    if !is_ncname(target) {
                        return Err(Self::malformed(
                            pos,
                            format!("invalid processing instruction target '{}'", clip(target)),
                        ));
                    }
                    if target.eq_ignore_ascii_case("xml") {
                        return Err(Self::malformed(
                            pos,
                            if target == "xml" {
                                "the XML declaration is only allowed at the very start of the document".to_owned()
                            } else {
                                format!("processing instruction target '{target}' is reserved")
                            },
                        ));
                    }
                    if let Some(off) = find_invalid_char(s) {
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1 + 2, s.as_bytes(), off),
                            format!(
                                "character {} is not allowed in XML",
                                describe_char_at(s, off)
                            ),
                        ));
                    }
                }
                QEvent::Decl(d) => {
                    if !first_event || tok_off != self.bom_len {
                        return Err(Self::malformed(
                            pos,
                            "the XML declaration is only allowed at the very start of the document",
                        ));
                    }
                    let s: &str = &d;
                    if let Some(off) = find_invalid_char(s) {
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1 + 2, s.as_bytes(), off),
                            format!(
                                "character {} is not allowed in XML",
                                describe_char_at(s, off)
                            ),
                        ));
                    }
                    check_decl(s.get(3..).unwrap_or("")).map_err(|m| Self::malformed(pos, m))?;
                }
                QEvent::DocType(d) => {
                    if !self.limits.allow_doctype {
                        return Err(Self::err(
                            XmlErrorKind::DoctypeForbidden,
                            pos,
                            "DOCTYPE declarations are not accepted (no DTDs, no entity definitions)",
                        ));
                    }
                    if self.phase != Phase::Prolog || self.seen_doctype {
                        return Err(Self::malformed(
                            pos,
                            "a DOCTYPE declaration is only allowed once, before the root element",
                        ));
                    }
                    self.seen_doctype = true;
                    let s: &str = &d;
                    if let Some(off) = find_invalid_char(s) {
                        return Err(Self::malformed(
                            pos_in(pos.0, pos.1, s.as_bytes(), off),
                            format!(
                                "character {} is not allowed in XML",
                                describe_char_at(s, off)
                            ),
                        ));
                    }
                    let nend = s
                        .bytes()
                        .position(|b| is_ws(b) || b == b'[')
                        .unwrap_or(s.len());
                    if qname_colon(s.get(..nend).unwrap_or("")).is_err() {
                        return Err(Self::malformed(
                            pos,
                            "malformed DOCTYPE declaration: invalid name",
                        ));
                    }
                    // The internal subset is skipped; nothing is expanded or fetched.
                    check_doctype_keyword = true;
                }
                QEvent::Start(s) => {
                    let content: &str = &s;
                    self.start_tag(content, pos)?;
                    (self.ev_line, self.ev_col) = pos;
                    return Ok(Kind::Start);
                }
                QEvent::Empty(s) => {
                    let content: &str = &s;
                    self.start_tag(content, pos)?;
                    self.pending_end = true;
                    (self.ev_line, self.ev_col) = pos;
                    return Ok(Kind::Start);
                }
                QEvent::End(e) => {
                    let name: &str = &e;
                    let Some(f) = self.frames.last() else {
                        return Err(Self::malformed(
                            pos,
                            format!("unexpected end tag '</{}>': no element is open", clip(name)),
                        ));
                    };
                    let open = self.names.get(f.start..).unwrap_or("");
                    if open != name {
                        return Err(Self::malformed(
                            pos,
                            format!(
                                "expected '</{}>' to close <{}> opened at line {}, found '</{}>'",
                                open,
                                open,
                                f.line,
                                clip(name)
                            ),
                        ));
                    }
                    self.pending_pop = true;
                    (self.ev_line, self.ev_col) = pos;
                    return Ok(Kind::End);
                }
                QEvent::Eof => {
                    if let Some(f) = self.frames.last() {
                        let open = self.names.get(f.start..).unwrap_or("");
                        return Err(Self::malformed(
                            pos,
                            format!(
                                "unexpected end of document: <{}> opened at line {}, column {} is not closed",
                                open, f.line, f.col
                            ),
                        ));
                    }
                    if self.phase == Phase::Prolog {
                        return Err(Self::malformed(pos, "document has no root element"));
                    }
                    self.phase = Phase::Done;
                    (self.ev_line, self.ev_col) = pos;
                    return Ok(Kind::Eof);
                }
            }
            if check_doctype_keyword {
                let head = buf.get(..buf.len().min(12)).unwrap_or(&[]);
                if memchr::memmem::find(head, b"DOCTYPE").is_none() {
                    return Err(Self::malformed(
                        pos,
                        "the DOCTYPE keyword must be written in upper case",
                    ));
                }
            }
            if in_root && !self.text.is_empty() && self.should_flush() {
                (self.ev_line, self.ev_col) = text_pos.unwrap_or(pos);
                return Ok(Kind::Text);
            }
        }
    }

    fn start_tag(&mut self, content: &str, pos: (u64, u64)) -> Result<(), XmlError> {
        match self.phase {
            Phase::Prolog => self.phase = Phase::Root,
            Phase::Epilog | Phase::Done => {
                let n = content.bytes().position(is_ws).unwrap_or(content.len());
                return Err(Self::malformed(
                    pos,
                    format!(
                        "only one root element is allowed: found <{}> after the root element closed",
                        clip(content.get(..n).unwrap_or(""))
                    ),
                ));
            }
            Phase::Root => {}
        }
        if self.frames.len() >= self.limits.max_depth {
            return Err(Self::limit(
                pos,
                format!(
                    "element depth exceeds the limit of {}",
                    self.limits.max_depth
                ),
            ));
        }
        let bytes = content.as_bytes();
        let name_end = bytes.iter().position(|&b| is_ws(b)).unwrap_or(bytes.len());
        let qname = content.get(..name_end).unwrap_or("");
        if qname.is_empty() {
            return Err(Self::malformed(pos, "missing element name after '<'"));
        }
        if qname.len() > self.limits.max_name_len {
            return Err(Self::limit(
                pos,
                format!(
                    "name length exceeds the limit of {} bytes",
                    self.limits.max_name_len
                ),
            ));
        }
        let Ok(colon) = qname_colon(qname) else {
            return Err(Self::malformed(
                pos,
                format!("invalid element name '{}'", clip(qname)),
            ));
        };

        // Pass 1: attribute syntax.
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let r = self.parse_raw_attrs(content, qname, name_end, pos, &mut raw);
        let r = r.and_then(|()| self.process_tag(content, qname, colon, pos, &raw));
        self.raw = raw;
        r
    }

    fn parse_raw_attrs(
        &self,
        content: &str,
        qname: &str,
        name_end: usize,
        pos: (u64, u64),
        raw: &mut Vec<RawAttr>,
    ) -> Result<(), XmlError> {
        let bytes = content.as_bytes();
        let mut cursor = Pos {
            line: pos.0,
            col: pos.1 + 1,
            prev_cr: false,
        };
        let mut cursor_off = 0usize;
        let at = |cursor: &mut Pos, cursor_off: &mut usize, off: usize| -> (u64, u64) {
            if off > *cursor_off {
                cursor.advance(bytes.get(*cursor_off..off).unwrap_or(&[]));
                *cursor_off = off;
            }
            (cursor.line, cursor.col)
        };
        let max_total = self
            .limits
            .max_attributes
            .saturating_add(self.limits.max_namespaces);
        let mut i = name_end;
        loop {
            let ws = i;
            while bytes.get(i).is_some_and(|&b| is_ws(b)) {
                i += 1;
            }
            let Some(&c) = bytes.get(i) else { break };
            let here = at(&mut cursor, &mut cursor_off, i);
            if i == ws {
                return Err(Self::malformed(
                    here,
                    format!(
                        "unexpected character {} in <{}> (attributes must be separated by whitespace)",
                        describe_char_at(content, i),
                        clip(qname)
                    ),
                ));
            }
            let ns = i;
            while bytes.get(i).is_some_and(|&b| !is_ws(b) && b != b'=') {
                i += 1;
            }
            let ne = i;
            if ns == ne {
                return Err(Self::malformed(
                    here,
                    format!("unexpected character '{}' in <{}>", c as char, clip(qname)),
                ));
            }
            let name = content.get(ns..ne).unwrap_or("");
            while bytes.get(i).is_some_and(|&b| is_ws(b)) {
                i += 1;
            }
            if bytes.get(i) != Some(&b'=') {
                return Err(Self::malformed(
                    here,
                    format!(
                        "attribute '{}' on <{}> has no value (expected '=' and a quoted value)",
                        clip(name),
                        clip(qname)
                    ),
                ));
            }
            i += 1;
            while bytes.get(i).is_some_and(|&b| is_ws(b)) {
                i += 1;
            }
            let q = match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => q,
                _ => {
                    return Err(Self::malformed(
                        here,
                        format!(
                            "value of attribute '{}' on <{}> must be quoted",
                            clip(name),
                            clip(qname)
                        ),
                    ));
                }
            };
            let vs = i + 1;
            let Some(len) = memchr::memchr(q, bytes.get(vs..).unwrap_or(&[])) else {
                return Err(Self::malformed(
                    here,
                    format!(
                        "unterminated value of attribute '{}' on <{}>",
                        clip(name),
                        clip(qname)
                    ),
                ));
            };
            let ve = vs + len;
            i = ve + 1;
            if raw.len() >= max_total {
                return Err(Self::limit(
                    here,
                    format!(
                        "element <{}> has more than {} attributes",
                        clip(qname),
                        self.limits.max_attributes
                    ),
                ));
            }
            raw.push(RawAttr {
                ns,
                ne,
                vs,
                ve,
                line: here.0,
                col: here.1,
            });
        }
        Ok(())
    }

    fn process_tag(
        &mut self,
        content: &str,
        qname: &str,
        colon: Option<usize>,
        pos: (u64, u64),
        raw: &[RawAttr],
    ) -> Result<(), XmlError> {
        let name_of = |r: &RawAttr| content.get(r.ns..r.ne).unwrap_or("");
        let value_of = |r: &RawAttr| content.get(r.vs..r.ve).unwrap_or("");

        let mut idx = std::mem::take(&mut self.idx);
        let dup = find_dup(raw.len(), &mut idx, |i| {
            raw.get(i).map(name_of).unwrap_or("")
        });
        self.idx = idx;
        if let Some((_, j)) = dup {
            let r = raw.get(j).copied().unwrap_or(RawAttr {
                ns: 0,
                ne: 0,
                vs: 0,
                ve: 0,
                line: pos.0,
                col: pos.1,
            });
            return Err(Self::malformed(
                (r.line, r.col),
                format!(
                    "attribute '{}' appears twice on <{}>",
                    clip(name_of(&r)),
                    clip(qname)
                ),
            ));
        }

        // Push the frame first so that its declarations are popped with it.
        let ns_start = self.ns.decls.len();
        let start = self.names.len();
        self.names.push_str(qname);
        self.frames.push(Frame {
            start,
            colon,
            ns_start,
            line: pos.0,
            col: pos.1,
        });

        // Pass 2: namespace declarations.
        let mut n_decls = 0usize;
        let mut n_attrs = 0usize;
        let mut value = String::new();
        for r in raw {
            let name = name_of(r);
            let here = (r.line, r.col);
            let prefix = if name == "xmlns" {
                ""
            } else if let Some(p) = name.strip_prefix("xmlns:") {
                p
            } else {
                n_attrs += 1;
                continue;
            };
            n_decls += 1;
            if n_decls > self.limits.max_namespaces {
                return Err(Self::limit(
                    here,
                    format!(
                        "element <{}> declares more than {} namespaces",
                        clip(qname),
                        self.limits.max_namespaces
                    ),
                ));
            }
            if !prefix.is_empty() && !is_ncname(prefix) {
                return Err(Self::malformed(
                    here,
                    format!(
                        "invalid namespace prefix '{}' in '{}'",
                        clip(prefix),
                        clip(name)
                    ),
                ));
            }
            normalize_attr(value_of(r), &mut value).map_err(|(_, m)| Self::malformed(here, m))?;
            if value.len() > self.limits.max_text_len {
                return Err(Self::limit(
                    here,
                    format!(
                        "attribute value exceeds the limit of {} bytes",
                        self.limits.max_text_len
                    ),
                ));
            }
            if prefix == "xmlns" {
                return Err(Self::malformed(
                    here,
                    "the 'xmlns' prefix must not be declared",
                ));
            }
            if prefix == "xml" {
                if value != XML_NS {
                    return Err(Self::malformed(
                        here,
                        format!("the 'xml' prefix can only be bound to '{XML_NS}'"),
                    ));
                }
            } else if value == XML_NS {
                return Err(Self::malformed(
                    here,
                    format!("the namespace '{XML_NS}' can only be bound to the 'xml' prefix"),
                ));
            }
            if value == XMLNS_NS {
                return Err(Self::malformed(
                    here,
                    format!("the namespace '{XMLNS_NS}' must not be declared"),
                ));
            }
            if !prefix.is_empty() && value.is_empty() {
                return Err(Self::malformed(
                    here,
                    format!(
                        "namespace prefix '{}' cannot be undeclared (xmlns:{}=\"\" is not allowed in XML Namespaces 1.0)",
                        prefix, prefix
                    ),
                ));
            }
            self.ns.declare(prefix, &value);
        }
        if n_attrs > self.limits.max_attributes {
            return Err(Self::limit(
                pos,
                format!(
                    "element <{}> has more than {} attributes",
                    clip(qname),
                    self.limits.max_attributes
                ),
            ));
        }

        // Element name.
        if let Some(c) = colon {
            let prefix = qname.get(..c).unwrap_or("");
            if prefix == "xmlns" {
                return Err(Self::malformed(
                    pos,
                    format!(
                        "element <{}> must not use the reserved prefix 'xmlns'",
                        clip(qname)
                    ),
                ));
            }
            if self.lookup_namespace(prefix).is_none() {
                return Err(Self::malformed(
                    pos,
                    format!(
                        "prefix '{}' is not bound to a namespace (element <{}>)",
                        prefix,
                        clip(qname)
                    ),
                ));
            }
        }

        // Pass 3: ordinary attributes.
        self.n_attrs = 0;
        let mut n_prefixed = 0usize;
        for r in raw {
            let name = name_of(r);
            if name == "xmlns" || name.starts_with("xmlns:") {
                continue;
            }
            let here = (r.line, r.col);
            if name.len() > self.limits.max_name_len {
                return Err(Self::limit(
                    here,
                    format!(
                        "name length exceeds the limit of {} bytes",
                        self.limits.max_name_len
                    ),
                ));
            }
            let Ok(acolon) = qname_colon(name) else {
                return Err(Self::malformed(
                    here,
                    format!(
                        "invalid attribute name '{}' on <{}>",
                        clip(name),
                        clip(qname)
                    ),
                ));
            };
            let (prefix, local) = match acolon {
                Some(c) => (name.get(..c), name.get(c + 1..).unwrap_or("")),
                None => (None, name),
            };
            let namespace = match prefix {
                Some(p) => match self.ns.lookup(p) {
                    Some(u) => Some(u),
                    None => {
                        return Err(Self::malformed(
                            here,
                            format!(
                                "prefix '{}' is not bound to a namespace (attribute '{}' on <{}>)",
                                p,
                                clip(name),
                                clip(qname)
                            ),
                        ));
                    }
                },
                None => None,
            };
            if prefix.is_some() {
                n_prefixed += 1;
            }
            let k = self.n_attrs;
            if self.attrs.len() <= k {
                self.attrs.push(Attribute::default());
            }
            let Some(a) = self.attrs.get_mut(k) else {
                break;
            };
            // `namespace` borrows self.ns; copy it before mutably borrowing attrs.
            let ns_owned: Option<&str> = namespace;
            set_opt(&mut a.namespace, ns_owned);
            set_opt(&mut a.prefix, prefix);
            a.local.clear();
            a.local.push_str(local);
            a.line = r.line;
            a.column = r.col;
            normalize_attr(value_of(r), &mut a.value).map_err(|(_, m)| Self::malformed(here, m))?;
            if a.value.len() > self.limits.max_text_len {
                return Err(Self::limit(
                    here,
                    format!(
                        "value of attribute '{}' exceeds the limit of {} bytes",
                        clip(name),
                        self.limits.max_text_len
                    ),
                ));
            }
            self.n_attrs += 1;
        }

        // Uniqueness of expanded names (only prefixed attributes can collide
        // beyond the qualified-name check).
        if n_prefixed >= 2 {
            let attrs = self.attrs.get(..self.n_attrs).unwrap_or(&[]);
            let mut idx = std::mem::take(&mut self.idx);
            let dup = find_dup(attrs.len(), &mut idx, |i| {
                attrs
                    .get(i)
                    .map(|a| (a.namespace.as_deref(), a.local.as_str()))
                    .unwrap_or((None, ""))
            });
            self.idx = idx;
            if let Some((i, j)) = dup
                && let (Some(a), Some(b)) = (attrs.get(i), attrs.get(j))
            {
                return Err(Self::malformed(
                    (b.line, b.column),
                    format!(
                        "attribute '{}' in namespace '{}' appears twice on <{}> (as '{}:{}' and '{}:{}')",
                        a.local,
                        a.namespace.as_deref().unwrap_or(""),
                        clip(qname),
                        a.prefix.as_deref().unwrap_or(""),
                        a.local,
                        b.prefix.as_deref().unwrap_or(""),
                        b.local
                    ),
                ));
            }
        }
        Ok(())
    }
}
