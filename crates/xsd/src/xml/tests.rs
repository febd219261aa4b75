use super::*;
use proptest::prelude::*;

/// Renders events as a compact trace; text runs are concatenated.
fn trace_with(doc: &[u8], limits: Limits) -> Result<String, XmlError> {
    trace_reader(doc, limits)
}

fn trace_reader<R: std::io::BufRead>(doc: R, limits: Limits) -> Result<String, XmlError> {
    let mut r = XmlReader::new(doc, limits);
    let mut out = String::new();
    let mut text = String::new();
    let mut steps = 0usize;
    loop {
        steps += 1;
        assert!(steps < 1_000_000, "reader does not terminate");
        let ev = r.next()?;
        if !matches!(ev, Event::Text(_)) && !text.is_empty() {
            out.push_str(&format!("T({text:?})"));
            text.clear();
        }
        match ev {
            Event::Start(s) => {
                out.push('<');
                if let Some(ns) = s.namespace {
                    out.push_str(&format!("{{{ns}}}"));
                }
                out.push_str(s.local);
                for a in s.attributes {
                    out.push(' ');
                    if let Some(ns) = &a.namespace {
                        out.push_str(&format!("{{{ns}}}"));
                    }
                    out.push_str(&format!("{}={:?}", a.local, a.value));
                }
                out.push('>');
            }
            Event::End => out.push_str("</>"),
            Event::Text(t) => text.push_str(t),
            Event::Eof => return Ok(out),
        }
    }
}

fn trace(doc: &str) -> Result<String, XmlError> {
    trace_with(doc.as_bytes(), Limits::default())
}

fn ok(doc: &str) -> String {
    match trace(doc) {
        Ok(t) => t,
        Err(e) => panic!("expected {doc:?} to be accepted, got {e}"),
    }
}

fn bad(doc: &str) -> XmlError {
    match trace(doc) {
        Ok(t) => panic!("expected {doc:?} to be rejected, got {t}"),
        Err(e) => e,
    }
}

fn bad_msg(doc: &str, needle: &str) -> XmlError {
    let e = bad(doc);
    assert!(
        e.message.contains(needle),
        "{doc:?}: message {:?} lacks {needle:?}",
        e.message
    );
    e
}

#[test]
fn simple_document() {
    assert_eq!(ok("<a>hi</a>"), "<a>T(\"hi\")</>");
    assert_eq!(ok("<a/>"), "<a></>");
    assert_eq!(
        ok("<a><b x='1' y=\"2\"/>t</a>"),
        "<a><b x=\"1\" y=\"2\"></>T(\"t\")</>"
    );
}

#[test]
fn root_structure() {
    ok("<?xml version='1.0'?>\n<!-- c -->\n<?pi x?>\n<a/>\n<!-- after -->\n<?pi?>\n");
    bad_msg("", "no root element");
    bad_msg("<!-- only -->", "no root element");
    bad_msg("<a/><b/>", "only one root element");
    bad_msg("x<a/>", "text is not allowed before");
    bad_msg("<a/>x", "text is not allowed after");
    bad_msg("<a/>&amp;", "outside the root");
    bad_msg("<a/><![CDATA[x]]>", "outside the root");
    bad_msg("<a>", "<a> opened at line 1, column 1 is not closed");
    bad_msg("<a></a></a>", "no element is open");
}

#[test]
fn end_tag_mismatch_message() {
    let e = bad("<Root>\n\n  <Child>x</Children></Root>");
    assert_eq!(e.kind, XmlErrorKind::Malformed);
    assert_eq!(e.kind.code(), "xml_malformed");
    assert!(
        e.message
            .contains("expected '</Child>' to close <Child> opened at line 3, found '</Children>'"),
        "{}",
        e.message
    );
    assert_eq!((e.line, e.column), (3, 11));
    bad_msg("<p:a xmlns:p='u'></a>", "expected '</p:a>'");
    ok("<a></a >");
}

#[test]
fn xml_declaration() {
    ok("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><a/>");
    ok("<?xml version='1.0' encoding='utf-8'?><a/>");
    ok("<?xml version='1.0' encoding='US-ASCII'?><a/>");
    ok("\u{FEFF}<?xml version='1.0'?><a/>");
    bad_msg("<?xml version='1.1'?><a/>", "version '1.1'");
    ok("<?xml version='1.0' encoding='ISO-8859-1'?><a/>");
    bad_msg(
        "<?xml version='1.0' encoding='klingon-7'?><a/>",
        "not an encoding name",
    );
    bad_msg("<?xml encoding='UTF-8' version='1.0'?><a/>", "version");
    bad_msg(
        "<?xml version='1.0' standalone='yes' encoding='UTF-8'?><a/>",
        "order",
    );
    bad_msg("<?xml version='1.0' standalone='maybe'?><a/>", "standalone");
    bad_msg("<?xml?><a/>", "version");
    bad_msg(" <?xml version='1.0'?><a/>", "very start");
    bad_msg("<a/><?xml version='1.0'?>", "very start");
    bad_msg("<?XML version='1.0'?><a/>", "reserved");
    bad_msg("<a><?Xml x?></a>", "reserved");
    bad_msg("<?xml version=1.0?><a/>", "quoted");
}

#[test]
fn encodings() {
    // UTF-16 with a byte order mark, either order, is read (XML 1.0 §4.3.3).
    assert_eq!(
        trace_with(b"\xFF\xFE<\0a\0>\0\xE9\0<\0/\0a\0>\0", Limits::default()).unwrap(),
        "<a>T(\"é\")</>"
    );
    assert_eq!(
        trace_with(b"\xFE\xFF\0<\0a\0/\0>", Limits::default()).unwrap(),
        "<a></>"
    );
    let e = trace_with(b"<\0a\0/\0>\0", Limits::default()).unwrap_err();
    assert!(
        e.message.contains("without a byte order mark"),
        "{}",
        e.message
    );
    // A lone surrogate in UTF-16 is named with its offset.
    let e = trace_with(b"\xFF\xFE<\0a\0>\0\x00\xD8x\0", Limits::default()).unwrap_err();
    assert!(e.message.contains("byte offset 8"), "{}", e.message);
    // A legacy encoding, named by the declaration.
    assert_eq!(
        trace_with(
            b"<?xml version='1.0' encoding='windows-1252'?><a>\x80 \x93q\x94</a>",
            Limits::default()
        )
        .unwrap(),
        "<a>T(\"€ “q”\")</>"
    );
    // A declaration that contradicts the byte order mark.
    let e = trace_with(
        b"\xFF\xFE<\0?\0x\0m\0l\0 \0v\0e\0r\0s\0i\0o\0n\0=\0'\x001\0.\x000\0'\0 \0e\0n\0c\0o\0d\0i\0n\0g\0=\0'\0U\0T\0F\0-\08\0'\0?\0>\0<\0a\0/\0>\0",
        Limits::default(),
    )
    .unwrap_err();
    assert!(e.message.contains("byte order mark"), "{}", e.message);
    let e = trace_with(b"<a>\xC3\x28</a>", Limits::default()).unwrap_err();
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    let e = trace_with(b"<a \xFF='1'/>", Limits::default()).unwrap_err();
    assert_eq!(e.kind, XmlErrorKind::Malformed);
    assert_eq!(
        trace_with(b"\xEF\xBB\xBF<a>x</a>", Limits::default()).unwrap(),
        "<a>T(\"x\")</>"
    );
    bad("\u{FEFF}\u{FEFF}<a/>");
}

#[test]
fn names() {
    ok("<_a.b-c1 é='1' x:y='2' xmlns:x='u'/>");
    bad_msg("<1a/>", "invalid element name");
    bad_msg("<a:b:c xmlns:a='u'/>", "invalid element name");
    bad_msg("<:a/>", "invalid element name");
    bad_msg("<a:/>", "invalid element name");
    bad_msg("<a 1b='x'/>", "invalid attribute name");
    bad_msg("<a b:='x'/>", "invalid attribute name");
    bad_msg("<a\u{B7}b/>x", "after"); // B7 is a NameChar, so the element is fine
    bad_msg("<\u{B7}a/>", "invalid element name");
}

#[test]
fn characters_and_refs() {
    assert_eq!(
        ok("<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x1F600;</a>"),
        "<a>T(\"<>&'\\\"AB😀\")</>"
    );
    bad_msg("<a>\u{1}</a>", "U+0001");
    bad_msg("<a>\u{FFFE}</a>", "U+FFFE");
    bad_msg("<a b='\u{1}'/>", "U+0001");
    bad_msg("<a><!-- \u{1} --></a>", "U+0001");
    bad_msg("<a><?p \u{1}?></a>", "U+0001");
    bad_msg("<a><![CDATA[\u{1}]]></a>", "U+0001");
    bad_msg("<a>&#0;</a>", "legal XML character");
    bad_msg("<a>&#xD800;</a>", "legal XML character");
    bad_msg("<a>&#x110000;</a>", "legal XML character");
    bad_msg("<a>&#99999999999999999999;</a>", "legal XML character");
    bad_msg("<a>&#x;</a>", "malformed character reference");
    bad_msg("<a>&#12a;</a>", "malformed character reference");
    bad_msg("<a>&#X41;</a>", "malformed character reference");
    let e = bad("<a>&nbsp;</a>");
    assert_eq!(
        e.message,
        "undefined entity '&nbsp;' (only &lt; &gt; &amp; &apos; &quot; and character references are allowed)"
    );
    bad_msg("<a b='&nbsp;'/>", "undefined entity '&nbsp;'");
    bad_msg("<a>a & b</a>", "'&'");
    bad_msg("<a>a &amp b</a>", "'&'");
    bad_msg("<a b='a & b'/>", "'&'");
    bad_msg("<a b='a &amp'/>", "'&'");
    bad_msg("<a>x ]]> y</a>", "']]>'");
    ok("<a>x ]] > y ]]&gt;</a>");
}

#[test]
fn comments_and_pis() {
    ok("<a><!----><!-- a - b --><?t?><?t data ?></a>");
    bad_msg("<a><!-- a -- b --></a>", "'--'");
    bad_msg("<a><!-- a ---></a>", "--->");
    bad_msg("<a><?a:b x?></a>", "invalid processing instruction target");
    assert_eq!(ok("<a>x<!-- c -->y<?p?>z</a>"), "<a>T(\"xyz\")</>");
}

#[test]
fn cdata_and_line_ends() {
    assert_eq!(ok("<a><![CDATA[<&>]]]]></a>"), "<a>T(\"<&>]]\")</>");
    assert_eq!(ok("<a>1\r\n2\r3\n4</a>"), "<a>T(\"1\\n2\\n3\\n4\")</>");
    assert_eq!(ok("<a><![CDATA[1\r\n2\r3]]></a>"), "<a>T(\"1\\n2\\n3\")</>");
    assert_eq!(ok("<a>&#13;&#10;</a>"), "<a>T(\"\\r\\n\")</>");
    // text is delivered in one piece between tags
    let mut r = XmlReader::new(&b"<a>x&amp;y<![CDATA[z]]>w</a>"[..], Limits::default());
    assert!(matches!(r.next(), Ok(Event::Start(_))));
    assert_eq!(r.next().unwrap(), Event::Text("x&yzw"));
    assert_eq!(r.next().unwrap(), Event::End);
    assert_eq!(r.next().unwrap(), Event::Eof);
    assert_eq!(r.next().unwrap(), Event::Eof);
}

#[test]
fn attribute_normalisation() {
    assert_eq!(
        ok("<a b='x\ty\nz\r\nw\rv' c='&#10;&#9;&#13;&#32;' d=\"&lt;'\" e='\"'/>"),
        "<a b=\"x y z w v\" c=\"\\n\\t\\r \" d=\"<'\" e=\"\\\"\"></>"
    );
    assert_eq!(ok("<a b='  two  spaces '/>"), "<a b=\"  two  spaces \"></>");
    bad_msg("<a b='<'/>", "'<'");
    bad_msg("<a b=x/>", "quoted");
    bad_msg("<a b/>", "no value");
    bad_msg("<a b='1'c='2'/>", "separated by whitespace");
    ok("<a b = '1'\n c\t=\"2\"/>");
}

#[test]
fn duplicate_attributes() {
    let e = bad("<Referral id='1' id='2'/>");
    assert_eq!(e.message, "attribute 'id' appears twice on <Referral>");
    assert_eq!((e.line, e.column), (1, 18));
    bad_msg(
        "<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>",
        "appears twice",
    );
    ok("<a xmlns:p='u' xmlns:q='v' p:x='1' q:x='2' x='3'/>");
    bad_msg("<a xmlns:p='u' xmlns:p='v'/>", "appears twice");
    // many attributes: sorted path
    let many: String = (0..100).map(|i| format!(" a{i}='{i}'")).collect();
    ok(&format!("<r{many}/>"));
    bad_msg(&format!("<r{many} a57='x'/>"), "'a57' appears twice");
    let many_ns: String = (0..40).map(|i| format!(" xmlns:p{i}='u'")).collect();
    let many_p: String = (0..40).map(|i| format!(" p{i}:a{i}='1'")).collect();
    ok(&format!("<r{many_ns}{many_p}/>"));
    bad_msg(&format!("<r{many_ns}{many_p} p3:a7='x'/>"), "appears twice");
}

#[test]
fn namespaces() {
    assert_eq!(
        ok("<r xmlns='d' xmlns:p='u'><p:a p:x='1' y='2'><b xmlns=''/><c/></p:a></r>"),
        "<{d}r><{u}a {u}x=\"1\" y=\"2\"><b></><{d}c></></></>"
    );
    assert_eq!(
        ok("<a xml:lang='en'/>"),
        format!("<a {{{XML_NS}}}lang=\"en\"></>")
    );
    ok(&format!("<a xmlns:xml='{XML_NS}'/>"));
    let e = bad("<nhs:Referral/>");
    assert!(
        e.message
            .contains("prefix 'nhs' is not bound to a namespace"),
        "{}",
        e.message
    );
    bad_msg("<a nhs:id='1'/>", "prefix 'nhs' is not bound");
    bad_msg("<a xmlns:p=''/>", "cannot be undeclared");
    bad_msg("<a xmlns:xml='http://other'/>", "'xml' prefix");
    bad_msg(
        &format!("<a xmlns:x='{XML_NS}'/>"),
        "only be bound to the 'xml' prefix",
    );
    bad_msg(
        &format!("<a xmlns='{XML_NS}'/>"),
        "only be bound to the 'xml' prefix",
    );
    bad_msg("<a xmlns:xmlns='u'/>", "'xmlns' prefix");
    bad_msg(
        &format!("<a xmlns:x='{XMLNS_NS}'/>"),
        "must not be declared",
    );
    bad_msg("<xmlns:a/>", "xmlns");
    bad_msg("<a><p:b xmlns:p='u'/><p:c/></a>", "prefix 'p' is not bound");
    // declarations are not attributes
    assert_eq!(ok("<a xmlns='u' xmlns:p='v'/>"), "<{u}a></>");
}

#[test]
fn namespace_scoping_and_lookup() {
    let doc = "<r xmlns='d' xmlns:p='u'><a xmlns:p='v' xmlns=''><b/></a><c/></r>";
    let mut r = XmlReader::new(doc.as_bytes(), Limits::default());
    let mut log = Vec::new();
    loop {
        let ev = r.next().unwrap();
        let kind = match ev {
            Event::Start(s) => format!("S{}", s.local),
            Event::End => "E".to_owned(),
            Event::Text(_) => "T".to_owned(),
            Event::Eof => break,
        };
        log.push(format!(
            "{kind}:{}:{:?}:{:?}",
            r.depth(),
            r.lookup_namespace(""),
            r.lookup_namespace("p")
        ));
    }
    assert_eq!(
        log,
        vec![
            "Sr:1:Some(\"d\"):Some(\"u\")",
            "Sa:2:None:Some(\"v\")",
            "Sb:3:None:Some(\"v\")",
            "E:3:None:Some(\"v\")",
            "E:2:None:Some(\"v\")",
            "Sc:2:Some(\"d\"):Some(\"u\")",
            "E:2:Some(\"d\"):Some(\"u\")",
            "E:1:Some(\"d\"):Some(\"u\")",
        ]
    );
    assert_eq!(r.lookup_namespace("xml"), Some(XML_NS));
}

#[test]
fn doctype() {
    let e = bad("<!DOCTYPE a><a/>");
    assert_eq!(e.kind, XmlErrorKind::DoctypeForbidden);
    assert_eq!(e.kind.code(), "dtd_forbidden");
    assert_eq!(
        e.message,
        "DOCTYPE declarations are not accepted (no DTDs, no entity definitions)"
    );
    let allow = Limits {
        allow_doctype: true,
        ..Limits::default()
    };
    let doc = "<!DOCTYPE a [<!ENTITY e 'boom'> <!ENTITY x SYSTEM 'file:///etc/passwd'> <!-- ]> --> <!ATTLIST a b CDATA 'x>'>]><a>ok</a>";
    assert_eq!(
        trace_with(doc.as_bytes(), allow.clone()).unwrap(),
        "<a>T(\"ok\")</>"
    );
    let e = trace_with(
        b"<!DOCTYPE a [<!ENTITY e 'boom'>]><a>&e;</a>",
        allow.clone(),
    )
    .unwrap_err();
    assert!(e.message.contains("undefined entity '&e;'"));
    let e = trace_with(
        b"<!DOCTYPE a SYSTEM 'http://x/y.dtd'><a>&x;</a>",
        allow.clone(),
    )
    .unwrap_err();
    assert!(e.message.contains("undefined entity"));
    assert!(trace_with(b"<a/><!DOCTYPE a>", allow.clone()).is_err());
    assert!(trace_with(b"<!DOCTYPE a><!DOCTYPE a><a/>", allow.clone()).is_err());
    assert!(trace_with(b"<!doctype a><a/>", allow).is_err());
}

#[test]
fn limits() {
    let check = |doc: &str, limits: Limits, needle: &str| {
        let e = trace_with(doc.as_bytes(), limits).unwrap_err();
        assert_eq!(e.kind, XmlErrorKind::LimitExceeded, "{e}");
        assert_eq!(e.kind.code(), "xml_limit_exceeded");
        assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
    };
    let deep = format!("{}{}", "<a>".repeat(257), "</a>".repeat(257));
    check(
        &deep,
        Limits::default(),
        "element depth exceeds the limit of 256",
    );
    let ok_deep = format!("{}{}", "<a>".repeat(256), "</a>".repeat(256));
    trace(&ok_deep).unwrap();
    check(
        "<a b='1' c='2' d='3'/>",
        Limits {
            max_attributes: 2,
            ..Limits::default()
        },
        "more than 2 attributes",
    );
    trace_with(
        b"<a b='1' c='2' xmlns='u'/>",
        Limits {
            max_attributes: 2,
            ..Limits::default()
        },
    )
    .unwrap();
    check(
        "<a xmlns:a='1' xmlns:b='2'/>",
        Limits {
            max_namespaces: 1,
            ..Limits::default()
        },
        "more than 1 namespaces",
    );
    check(
        "<abcdef/>",
        Limits {
            max_name_len: 5,
            ..Limits::default()
        },
        "limit of 5 bytes",
    );
    check(
        "<a bcdefg='1'/>",
        Limits {
            max_name_len: 5,
            ..Limits::default()
        },
        "limit of 5 bytes",
    );
    check(
        "<a>123456</a>",
        Limits {
            max_text_len: 5,
            ..Limits::default()
        },
        "limit of 5 bytes",
    );
    check(
        "<a>12&amp;456</a>",
        Limits {
            max_text_len: 5,
            ..Limits::default()
        },
        "limit of 5 bytes",
    );
    trace_with(
        b"<a>12345</a>",
        Limits {
            max_text_len: 5,
            ..Limits::default()
        },
    )
    .unwrap();
    check(
        "<a b='123456'/>",
        Limits {
            max_text_len: 5,
            ..Limits::default()
        },
        "limit of 5 bytes",
    );
    check(
        "<a>hello</a>",
        Limits {
            max_document_bytes: 8,
            ..Limits::default()
        },
        "limit of 8 bytes",
    );
    trace_with(
        b"<a>hello</a>",
        Limits {
            max_document_bytes: 12,
            ..Limits::default()
        },
    )
    .unwrap();
    check(
        &format!("<a>{}</a>", "x".repeat(5000)),
        Limits {
            max_token_bytes: 1000,
            ..Limits::default()
        },
        "limit of 1000 bytes",
    );
    check(
        &format!("<a b='{}'/>", "x".repeat(5000)),
        Limits {
            max_token_bytes: 1000,
            ..Limits::default()
        },
        "limit of 1000 bytes",
    );
}

#[test]
fn positions() {
    let e = bad("<a>\n  <b>\n    <c x='1' x='2'/></b></a>");
    assert_eq!((e.line, e.column), (3, 14));
    let e = bad("<a>\r\n<b>\r\n\u{e9}\u{e9}&bad;</b></a>");
    assert_eq!((e.line, e.column), (3, 3));
    let e = bad("<a>\n<b>x\n y\u{1}</b></a>");
    assert_eq!((e.line, e.column), (3, 3));
    let mut r = XmlReader::new(
        &b"<a>\n  <b c='1'\n     d='2'>t</b></a>"[..],
        Limits::default(),
    );
    assert!(matches!(r.next(), Ok(Event::Start(_))));
    assert_eq!(r.position(), (1, 1));
    assert!(matches!(r.next(), Ok(Event::Text("\n  "))));
    assert_eq!(r.position(), (1, 4));
    match r.next().unwrap() {
        Event::Start(s) => {
            assert_eq!((s.line, s.column), (2, 3));
            assert_eq!((s.attributes[0].line, s.attributes[0].column), (2, 6));
            assert_eq!((s.attributes[1].line, s.attributes[1].column), (3, 6));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.next(), Ok(Event::Text("t"))));
    assert_eq!(r.position(), (3, 12));
    assert_eq!(r.next().unwrap(), Event::End);
    assert_eq!(r.position(), (3, 13));
    let e = bad("<a>\n<b>");
    assert!(
        e.message
            .contains("<b> opened at line 2, column 1 is not closed"),
        "{}",
        e.message
    );
}

#[test]
fn error_is_sticky_and_display() {
    let mut r = XmlReader::new(&b"<a><b></a>"[..], Limits::default());
    while r.next().is_ok() {}
    let e1 = r.next().unwrap_err();
    let e2 = r.next().unwrap_err();
    assert_eq!(e1, e2);
    assert!(e1.to_string().contains("line 1, column 7"), "{e1}");
}

#[test]
fn io_error() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let mut r = XmlReader::new(std::io::BufReader::new(Failing), Limits::default());
    let e = r.next().unwrap_err();
    assert_eq!(e.kind, XmlErrorKind::Io);
    assert_eq!(e.kind.code(), "io_error");
}

#[test]
fn small_reads() {
    // A reader that delivers one byte at a time must give the same result.
    let doc = "<?xml version='1.0'?><r xmlns:p='u'>\r\n<p:a x='1&amp;2'>t&#65;<!--c--><![CDATA[d]]></p:a>\n</r>";
    let one = std::io::BufReader::with_capacity(1, doc.as_bytes());
    let mut r = XmlReader::new(one, Limits::default());
    let mut t = String::new();
    loop {
        match r.next().unwrap() {
            Event::Start(s) => t.push_str(&format!("<{}>", s.local)),
            Event::End => t.push_str("</>"),
            Event::Text(x) => t.push_str(x),
            Event::Eof => break,
        }
    }
    assert_eq!(t, "<r>\n<a>tAd</>\n</>");
}

// ---------------------------------------------------------------- proptest

#[derive(Debug, Clone)]
enum Node {
    Elem {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<Node>,
    },
    Text(String),
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.-]{0,6}"
}

fn arb_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just(' '),
            Just('<'),
            Just('&'),
            Just('>'),
            Just('\n'),
            Just('"'),
            Just('é'),
            Just('😀'),
            Just(']'),
            Just('\''),
            Just('\t')
        ],
        1..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn arb_node() -> impl Strategy<Value = Node> {
    let leaf = arb_text().prop_map(Node::Text);
    leaf.prop_recursive(4, 32, 5, |inner| {
        (
            arb_name(),
            proptest::collection::btree_map(arb_name(), arb_text(), 0..4),
            proptest::collection::vec(inner, 0..5),
        )
            .prop_map(|(name, attrs, children)| Node::Elem {
                name,
                attrs: attrs.into_iter().collect(),
                children,
            })
    })
}

fn arb_root() -> impl Strategy<Value = Node> {
    (arb_name(), proptest::collection::vec(arb_node(), 0..5)).prop_map(|(name, children)| {
        Node::Elem {
            name,
            attrs: vec![],
            children,
        }
    })
}

fn escape(s: &str, attr: bool) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '&' => o.push_str("&amp;"),
            '>' => o.push_str("&gt;"),
            '"' if attr => o.push_str("&quot;"),
            '\n' if attr => o.push_str("&#10;"),
            '\t' if attr => o.push_str("&#9;"),
            c => o.push(c),
        }
    }
    o
}

/// Writes `n`; `starts` receives the byte offset of every start tag's '<'.
fn serialize(n: &Node, out: &mut String, cdata_toggle: &mut bool, starts: &mut Vec<usize>) {
    match n {
        Node::Text(t) => {
            *cdata_toggle = !*cdata_toggle;
            if *cdata_toggle && !t.contains("]]>") {
                out.push_str(&format!("<![CDATA[{t}]]>"));
            } else {
                out.push_str(&escape(t, false));
            }
        }
        Node::Elem {
            name,
            attrs,
            children,
        } => {
            starts.push(out.len());
            out.push_str(&format!("<{name}"));
            for (k, v) in attrs {
                out.push_str(&format!(" {k}=\"{}\"", escape(v, true)));
            }
            if children.is_empty() {
                out.push_str("/>");
            } else {
                out.push('>');
                for c in children {
                    serialize(c, out, cdata_toggle, starts);
                }
                out.push_str(&format!("</{name}>"));
            }
        }
    }
}

fn expected_trace(n: &Node, out: &mut String, pending: &mut String) {
    match n {
        Node::Text(t) => pending.push_str(t),
        Node::Elem {
            name,
            attrs,
            children,
        } => {
            if !pending.is_empty() {
                out.push_str(&format!("T({pending:?})"));
                pending.clear();
            }
            out.push('<');
            out.push_str(name);
            for (k, v) in attrs {
                out.push_str(&format!(" {k}={v:?}"));
            }
            out.push('>');
            for c in children {
                expected_trace(c, out, pending);
            }
            if !pending.is_empty() {
                out.push_str(&format!("T({pending:?})"));
                pending.clear();
            }
            out.push_str("</>");
        }
    }
}

/// Line and column of byte `off`, counted the slow and obvious way (LF, CRLF and CR end
/// lines; columns count characters).
fn naive_pos(doc: &str, off: usize) -> (u64, u64) {
    let (mut line, mut col, mut prev_cr) = (1u64, 1u64, false);
    for c in doc[..off].chars() {
        match c {
            '\n' if prev_cr => {}
            '\n' | '\r' => {
                line += 1;
                col = 1;
            }
            _ => col += 1,
        }
        prev_cr = c == '\r';
    }
    (line, col)
}

fn with_line_ends(n: &Node, end: &str) -> Node {
    match n {
        Node::Text(t) => Node::Text(t.replace('\n', end)),
        Node::Elem {
            name,
            attrs,
            children,
        } => Node::Elem {
            name: name.clone(),
            attrs: attrs.clone(),
            children: children.iter().map(|c| with_line_ends(c, end)).collect(),
        },
    }
}

fn run_to_end(doc: &[u8]) {
    let mut r = XmlReader::new(doc, Limits::default());
    for _ in 0..(doc.len() * 4 + 16) {
        match r.next() {
            Ok(Event::Eof) | Err(_) => return,
            Ok(_) => {}
        }
    }
    panic!("reader did not finish");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(doc in proptest::collection::vec(any::<u8>(), 0..256)) {
        run_to_end(&doc);
    }

    #[test]
    fn xmlish_bytes_never_panic(doc in proptest::collection::vec(
        prop_oneof![
            Just(b'<'), Just(b'>'), Just(b'/'), Just(b'a'), Just(b':'), Just(b'='), Just(b'"'),
            Just(b'&'), Just(b';'), Just(b'#'), Just(b'x'), Just(b'!'), Just(b'-'), Just(b'?'),
            Just(b'['), Just(b']'), Just(b' '), Just(b'\r'), Just(b'\n'), Just(0xC3), Just(0xA9)
        ], 0..128)) {
        run_to_end(&doc);
    }

    #[test]
    fn mutated_documents_never_panic(
        root in arb_root(),
        muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut s = String::new();
        serialize(&root, &mut s, &mut false, &mut Vec::new());
        let mut doc = s.into_bytes();
        for (ix, b, op) in muts {
            if doc.is_empty() { break; }
            let i = ix.index(doc.len());
            match op {
                0 => doc[i] = b,
                1 => { doc.remove(i); }
                _ => doc.insert(i, b),
            }
        }
        run_to_end(&doc);
    }

    #[test]
    fn start_tag_positions_match_a_naive_count(
        root in arb_root(),
        end in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        cap in 1usize..48,
    ) {
        let root = with_line_ends(&root, end);
        let mut doc = String::from("<?xml version=\"1.0\"?>\r\n");
        let mut starts = Vec::new();
        serialize(&root, &mut doc, &mut false, &mut starts);
        let want: Vec<(u64, u64)> = starts.iter().map(|&o| naive_pos(&doc, o)).collect();
        let mut r = XmlReader::new(std::io::BufReader::with_capacity(cap, doc.as_bytes()), Limits::default());
        let mut got = Vec::new();
        loop {
            match r.next() {
                Ok(Event::Start(t)) => got.push((t.line, t.column)),
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => return Err(TestCaseError::fail(format!("{e} in {doc:?}"))),
            }
        }
        prop_assert_eq!(got, want, "document: {:?}", doc);
    }

    /// Issue 12: a document re-encoded into UTF-16 (either order) or windows-1252 reads as its
    /// UTF-8 original does: the same events, or the same error at the same place. Read in
    /// small chunks, so characters are split between reads.
    #[test]
    fn re_encoded_documents_read_as_their_utf8_original(
        root in arb_root(),
        extra in proptest::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![
                Just('<'), Just('&'), Just('é'), Just('€'), Just('\u{1F600}'), Just('“'), Just(']')
            ]), 0..3),
        cap in 1usize..40,
    ) {
        let mut body = String::new();
        serialize(&root, &mut body, &mut false, &mut Vec::new());
        for (ix, c) in extra {
            let mut i = ix.index(body.len() + 1);
            while !body.is_char_boundary(i) { i -= 1; }
            body.insert(i, c);
        }
        let verdict = |r: Result<String, XmlError>| r.map_err(|e| (e.kind, e.line, e.column));
        let utf8 = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}");
        let want = verdict(trace(&utf8));
        for big in [false, true] {
            let text = format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n{body}");
            let mut bytes = if big { vec![0xFE, 0xFF] } else { vec![0xFF, 0xFE] };
            for u in text.encode_utf16() {
                bytes.extend_from_slice(&if big { u.to_be_bytes() } else { u.to_le_bytes() });
            }
            let got = verdict(trace_reader(std::io::BufReader::with_capacity(cap, &bytes[..]), Limits::default()));
            prop_assert_eq!(&got, &want, "UTF-16 big-endian {}: {}", big, body);
        }
        let text = format!("<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n{body}");
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
        if !unmappable {
            let got = verdict(trace_reader(std::io::BufReader::with_capacity(cap, &bytes[..]), Limits::default()));
            prop_assert_eq!(&got, &want, "windows-1252: {}", body);
        }
    }

    #[test]
    fn well_formed_trees_round_trip(root in arb_root()) {
        let mut s = String::from("<?xml version=\"1.0\"?>\n");
        serialize(&root, &mut s, &mut false, &mut Vec::new());
        s.push_str("\n<!-- trailer -->\n");
        let got = trace(&s).map_err(|e| TestCaseError::fail(format!("{e} in {s}")))?;
        let mut want = String::new();
        let mut pending = String::new();
        expected_trace(&root, &mut want, &mut pending);
        prop_assert_eq!(got, want, "document: {}", s);
    }
}

// ------------------------------------------------------- W3C yardstick

fn json_str_field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let key = format!("\"{field}\": \"");
    let start = line.find(&key)? + key.len();
    let len = line.get(start..)?.find('"')?;
    line.get(start..start + len)
}

fn read_all(doc: &[u8], limits: Limits) -> Result<(), XmlError> {
    let mut r = XmlReader::new(std::io::BufReader::new(doc), limits);
    loop {
        if let Event::Eof = r.next()? {
            return Ok(());
        }
    }
}

/// Reads every instance document marked valid in the W3C XSD 1.0 suite.
/// Run with `cargo test w3c_valid_instances -- --ignored --nocapture`.
#[test]
#[ignore]
fn w3c_valid_instances() {
    let root = std::path::Path::new("/work/shared/xsdtests");
    let Ok(list) = std::fs::read_to_string(root.join("cases-xsd10.jsonl")) else {
        eprintln!("suite not present");
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut failures: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let (mut total, mut failed, mut failed_allow_doctype, mut missing) = (0, 0, 0, 0);
    for line in list.lines() {
        if json_str_field(line, "kind") != Some("instance")
            || json_str_field(line, "expected") != Some("valid")
        {
            continue;
        }
        let Some(inst) = json_str_field(line, "instance") else {
            continue;
        };
        if !seen.insert(inst.to_owned()) {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(inst)) else {
            missing += 1;
            continue;
        };
        total += 1;
        if let Err(e) = read_all(&bytes, Limits::default()) {
            failed += 1;
            let allow = Limits {
                allow_doctype: true,
                ..Limits::default()
            };
            let e2 = read_all(&bytes, allow).err();
            if e2.is_some() {
                failed_allow_doctype += 1;
            }
            let shown = e2.unwrap_or(e);
            let key: String = format!(
                "{:?}: {}",
                shown.kind,
                shown.message.chars().take(70).collect::<String>()
            );
            failures
                .entry(key)
                .or_default()
                .push(format!("{inst}:{}:{}", shown.line, shown.column));
        }
    }
    // Bonus: every schema document and every schema-invalid instance should
    // at least be well-formed (a few are deliberately not; listed below).
    let mut other_total = 0;
    let mut other_failures: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in list.lines() {
        let mut files: Vec<&str> = Vec::new();
        if json_str_field(line, "kind") == Some("instance")
            && json_str_field(line, "expected") == Some("invalid")
        {
            files.extend(json_str_field(line, "instance"));
        }
        if let Some(start) = line.find("\"schemas\": [") {
            let rest = &line[start + 12..];
            let list_end = rest.find(']').unwrap_or(0);
            files.extend(
                rest[..list_end]
                    .split(',')
                    .map(|f| f.trim().trim_matches('"'))
                    .filter(|f| !f.is_empty()),
            );
        }
        for f in files {
            if !seen.insert(f.to_owned()) {
                continue;
            }
            let Ok(bytes) = std::fs::read(root.join(f)) else {
                continue;
            };
            other_total += 1;
            let allow = Limits {
                allow_doctype: true,
                ..Limits::default()
            };
            if let Err(e) = read_all(&bytes, allow) {
                let key: String = format!(
                    "{:?}: {}",
                    e.kind,
                    e.message.chars().take(70).collect::<String>()
                );
                other_failures
                    .entry(key)
                    .or_default()
                    .push(format!("{f}:{}:{}", e.line, e.column));
            }
        }
    }
    eprintln!(
        "W3C schema documents + schema-invalid instances: {other_total} read, {} rejected (allow_doctype)",
        other_failures.values().map(Vec::len).sum::<usize>()
    );
    for (k, v) in &other_failures {
        eprintln!(
            "  {} x {k}\n      e.g. {}",
            v.len(),
            v.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    eprintln!(
        "W3C valid instances: {total} read, {failed} rejected with default limits, {failed_allow_doctype} rejected with allow_doctype, {missing} missing"
    );
    for (k, v) in &failures {
        eprintln!(
            "  {} x {k}\n      e.g. {}",
            v.len(),
            v.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
}
