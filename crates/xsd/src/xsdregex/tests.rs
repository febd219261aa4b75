use super::parse::{ClassExpr, Parser};
use super::*;
use proptest::prelude::*;

fn ok(p: &str) -> XsdRegex {
    match XsdRegex::compile(p) {
        Ok(r) => r,
        Err(e) => panic!("{p:?} should compile: {e}"),
    }
}

fn bad(p: &str) -> RegexError {
    match XsdRegex::compile(p) {
        Ok(r) => panic!("{p:?} should be rejected, translated to {}", r.translated()),
        Err(e) => e,
    }
}

fn yes(p: &str, inputs: &[&str]) {
    let r = ok(p);
    for s in inputs {
        assert!(
            r.is_match(s),
            "{p:?} should match {s:?} (translated {})",
            r.translated()
        );
    }
}

fn no(p: &str, inputs: &[&str]) {
    let r = ok(p);
    for s in inputs {
        assert!(
            !r.is_match(s),
            "{p:?} should NOT match {s:?} (translated {})",
            r.translated()
        );
    }
}

#[test]
fn traits() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<XsdRegex>();
    assert_traits::<RegexError>();
    let r = ok("a+");
    assert_eq!(r.as_str(), "a+");
    let r2 = r.clone();
    assert!(r2.is_match("aaa"));
    assert!(format!("{r:?}").contains("a+"));
}

#[test]
fn error_display_and_position() {
    let e = bad("ab\\q");
    assert_eq!(e.pattern, "ab\\q");
    assert_eq!(e.position, 2);
    let msg = e.to_string();
    assert!(
        msg.starts_with("invalid pattern \"ab\\\\q\" at character 2: "),
        "{msg}"
    );
}

#[test]
fn empty_pattern() {
    yes("", &[""]);
    no("", &["a", " "]);
}

#[test]
fn implicit_anchoring() {
    yes("abc", &["abc"]);
    no("abc", &["abcd", "xabc", "ab", "abc\n"]);
}

#[test]
fn caret_and_dollar_are_literals() {
    yes("^abc$", &["^abc$"]);
    no("^abc$", &["abc"]);
    yes("a^b", &["a^b"]);
    yes("[$^]+", &["$^$"]);
    yes("\\^", &["^"]);
    bad("\\$");
}

#[test]
fn branches() {
    yes("a|b|cd", &["a", "b", "cd"]);
    no("a|b|cd", &["c", "ab", ""]);
    yes("a|", &["a", ""]);
    yes("|a", &["a", ""]);
    yes("(|a)b", &["b", "ab"]);
    yes("()", &[""]);
}

#[test]
fn quantifiers() {
    yes("ab?c", &["ac", "abc"]);
    no("ab?c", &["abbc"]);
    yes("ab*c", &["ac", "abbbc"]);
    yes("ab+c", &["abc", "abbc"]);
    no("ab+c", &["ac"]);
    yes("a{3}", &["aaa"]);
    no("a{3}", &["aa", "aaaa"]);
    yes("a{2,}", &["aa", "aaaaaa"]);
    no("a{2,}", &["a"]);
    yes("a{1,3}", &["a", "aaa"]);
    no("a{1,3}", &["", "aaaa"]);
    yes("a{0}", &[""]);
    no("a{0}", &["a"]);
    yes("a{0,0}b", &["b"]);
    yes("(ab){2}", &["abab"]);
    yes("a{2,2}", &["aa"]);
}

#[test]
fn quantifier_errors() {
    bad("a{2,1}");
    bad("a{,1}");
    bad("a{}");
    bad("a{1");
    bad("a{1,");
    bad("a{1,2");
    bad("a{x}");
    bad("a{ 1}");
    bad("a{1 }");
    bad("a**");
    bad("a+?");
    bad("a?+");
    bad("a{2}{3}");
    bad("a{2}*");
    bad("*a");
    bad("+");
    bad("?");
    bad("{1}");
    bad("a|*");
    bad("(*)");
    bad("a{99999999999}");
    bad("a{1,99999999999}");
}

#[test]
fn too_large_is_a_clean_error() {
    // may or may not fit the size limit, but must not panic or hang
    if let Ok(r) = XsdRegex::compile("a{0,100000}") {
        assert!(r.is_match(&"a".repeat(100_000)));
        assert!(!r.is_match(&"a".repeat(100_001)));
    }
    let e = bad("a{0,10000000}");
    assert!(e.message.contains("too large"), "{}", e.message);
    let e = bad("(\\w{1000}){1000}");
    assert!(e.message.contains("too large"), "{}", e.message);
    let e = bad("((a{1000}){1000}){1000}");
    assert!(e.message.contains("too large"), "{}", e.message);
    let e = bad("\\c{1000}");
    assert!(e.message.contains("too large"), "{}", e.message);
    // huge literal pattern: translated size bound
    let big = "\\i".repeat(20_000);
    let e = bad(&big);
    assert!(e.message.contains("too large"), "{}", e.message);
}

#[test]
fn hostile_patterns_are_bounded() {
    let pats: Vec<String> = vec![
        "(\\c\\C\\i\\I\\w\\W){100}".into(),
        "\\W{1000}".into(),
        "[\\w-[\\p{L}]]{500}".into(),
        "\\c".repeat(170),
        "[^\\c]".repeat(170),
        "(\\p{L}|\\p{N}|\\w){1000}".into(),
        "((((((((a*)*)*)*)*)*)*)*)*b".into(),
        "(a|aa)*(a|aa)*(a|aa)*c".into(),
        "\\i\\c*".repeat(1000),
        format!("{}a{}", "(".repeat(64), "){1000}".repeat(64)),
        ".{1000}".into(),
    ];
    let input = "a".repeat(100_000);
    for p in &pats {
        let t = std::time::Instant::now();
        if let Ok(r) = XsdRegex::compile(p) {
            let _ = r.is_match(&input);
        }
        assert!(t.elapsed().as_secs() < 20, "{p:?} took {:?}", t.elapsed());
    }
}

#[test]
fn groups_and_parens() {
    yes("(a(b(c)))", &["abc"]);
    yes("(a|b)*c", &["c", "ababbac"]);
    bad("(a");
    bad("a)");
    bad("((a)");
    bad(")");
}

#[test]
fn depth_limit() {
    let ok_depth = format!("{}a{}", "(".repeat(50), ")".repeat(50));
    yes(&ok_depth, &["a"]);
    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = bad(&deep);
    assert!(e.message.contains("nesting"), "{}", e.message);
    let deep_class = format!("{}{}", "[a-".repeat(100_000), "]".repeat(100_000));
    let e = bad(&deep_class);
    assert!(e.message.contains("nesting"), "{}", e.message);
    let unclosed = "(".repeat(1_000_000);
    bad(&unclosed);
}

#[test]
fn dot() {
    yes(".", &["a", " ", "\t", "\u{10FFFF}", "é"]);
    no(".", &["\n", "\r", "", "ab"]);
    yes("a.c", &["abc", "a.c"]);
}

#[test]
fn single_char_escapes() {
    yes("\\n\\r\\t", &["\n\r\t"]);
    yes(
        "\\\\\\|\\.\\-\\^\\?\\*\\+\\{\\}\\(\\)\\[\\]",
        &["\\|.-^?*+{}()[]"],
    );
    for e in [
        "\\a", "\\b", "\\x", "\\u0041", "\\0", "\\1", "\\B", "\\A", "\\z", "\\Z", "\\$", "\\ ",
        "\\/", "\\e",
    ] {
        bad(e);
    }
    bad("\\");
    bad("ab\\");
}

#[test]
fn unescaped_metachars() {
    bad("[");
    bad("]");
    bad("a]");
    bad("{");
    bad("}");
    bad("a}");
    bad("(");
}

#[test]
fn multi_char_escapes() {
    yes("\\s", &[" ", "\t", "\n", "\r"]);
    no("\\s", &["\u{A0}", "\u{2003}", "a", "\u{B}", "\u{C}"]);
    yes("\\S", &["a", "\u{A0}"]);
    no("\\S", &[" ", "\n"]);
    yes("\\d", &["0", "9", "\u{0660}", "\u{FF10}"]);
    no("\\d", &["a", "\u{00B2}", "Ⅷ"]);
    yes("\\D", &["a", "-"]);
    no("\\D", &["5"]);
    yes("\\w", &["a", "Z", "5", "é", "+", "$", "^"]);
    // \w excludes punctuation, separators and other
    no(
        "\\w",
        &[
            "_", "-", ".", " ", "\u{A0}", "\u{0}", "\u{7F}", "!", "(", "\u{E000}",
        ],
    );
    yes("\\W", &["-", " ", "!", "\u{0}"]);
    no("\\W", &["a", "+"]);
}

#[test]
fn name_escapes() {
    yes(
        "\\i\\c*",
        &["_x1", "a", ":a.b-c", "xml:lang", "\u{0E01}\u{0E31}"],
    );
    no("\\i\\c*", &["1x", "-a", ".a", "", "a b"]);
    yes(
        "\\i",
        &[
            "A", "z", "_", ":", "\u{00C0}", "\u{4E00}", "\u{3007}", "\u{AC00}",
        ],
    );
    // Digit, CombiningChar, Extender are NameChars but not initial
    no(
        "\\i",
        &[
            "0", "\u{0300}", "\u{00B7}", "-", ".", "\u{00D7}", "\u{0132}",
        ],
    );
    yes(
        "\\c",
        &[
            "0", "\u{0300}", "\u{00B7}", "-", ".", "\u{0660}", "\u{3005}",
        ],
    );
    // XML 1.0 2nd-edition tables: not name chars
    no(
        "\\c",
        &[
            " ",
            "\u{00D7}",
            "\u{0132}",
            "\u{0346}",
            "\u{9FA6}",
            "\u{10000}",
            "@",
        ],
    );
    yes("\\I", &["0", "-", " "]);
    no("\\I", &["a", "_"]);
    yes("\\C", &[" ", "@", "\u{10000}"]);
    no("\\C", &["a", "0"]);
}

#[test]
fn categories() {
    yes("\\p{Lu}+", &["ABC", "ÀÉ"]);
    no("\\p{Lu}", &["a", "1"]);
    yes("\\P{Lu}", &["a", "1"]);
    yes("\\p{L}", &["a", "Z", "\u{4E00}"]);
    yes("\\p{Nd}", &["7"]);
    yes("\\p{N}", &["7", "\u{00B2}", "Ⅷ"]);
    yes("\\p{P}", &["!", "-", "(", "_"]);
    yes("\\p{Pd}", &["-"]);
    yes("\\p{Ps}\\p{Pe}", &["()"]);
    yes("\\p{Z}", &[" ", "\u{2028}", "\u{2029}"]);
    yes("\\p{Zs}", &[" "]);
    yes("\\p{Zl}", &["\u{2028}"]);
    yes("\\p{Zp}", &["\u{2029}"]);
    yes("\\p{Sm}", &["+"]);
    yes("\\p{Sc}", &["$", "€"]);
    yes("\\p{Cc}", &["\u{0}", "\n"]);
    yes("\\p{Co}", &["\u{E000}"]);
    yes("\\p{Cf}", &["\u{200B}"]);
    yes("\\p{C}", &["\u{0}", "\u{E000}"]);
    yes("\\p{M}\\p{Mn}", &["\u{0300}\u{0301}"]);
    for c in [
        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
        "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp", "S", "Sm", "Sc", "Sk", "So",
        "C", "Cc", "Cf", "Co", "Cn", "Cs",
    ] {
        ok(&format!("\\p{{{c}}}"));
        ok(&format!("\\P{{{c}}}"));
        ok(&format!("[a\\p{{{c}}}]"));
        ok(&format!("[^a\\P{{{c}}}-[b]]"));
    }
    for c in [
        "Lx",
        "l",
        "LU",
        "",
        "Letter",
        "Greek",
        "IsFoo",
        "Is",
        "isBasicLatin",
        "L&",
        "Any",
        "Latin",
    ] {
        bad(&format!("\\p{{{c}}}"));
    }
    no("\\p{Cs}", &["a", "\u{D7FF}", "\u{E000}"]);
    yes("\\p{Cs}?", &[""]);
    yes("\\P{Cs}", &["a", "\u{10FFFF}"]);
    yes("[a\\p{Cs}]", &["a"]);
    bad("\\p");
    bad("\\pL");
    bad("\\p{L");
    bad("\\p{");
}

#[test]
fn blocks() {
    yes("\\p{IsBasicLatin}+", &["Hello, world!\n\u{7F}\u{0}"]);
    no("\\p{IsBasicLatin}+", &["é", "a\u{80}"]);
    yes("\\P{IsBasicLatin}", &["é"]);
    yes("\\p{IsLatin-1Supplement}", &["\u{80}", "ÿ"]);
    yes("\\p{IsGreek}", &["α", "\u{0370}", "\u{03FF}"]);
    no("\\p{IsGreek}", &["\u{0400}"]);
    yes(
        "\\p{IsArabicPresentationForms-B}",
        &["\u{FE70}", "\u{FEFE}"],
    );
    no("\\p{IsArabicPresentationForms-B}", &["\u{FEFF}"]);
    yes("\\p{IsSpecials}", &["\u{FEFF}", "\u{FFF0}", "\u{FFFD}"]);
    yes(
        "\\p{IsPrivateUse}",
        &["\u{E000}", "\u{F8FF}", "\u{F0000}", "\u{10FFFD}"],
    );
    no("\\p{IsPrivateUse}", &["\u{F900}", "\u{FFFFE}"]);
    yes(
        "\\p{IsOldItalic}\\p{IsGothic}\\p{IsDeseret}",
        &["\u{10300}\u{10330}\u{10400}"],
    );
    yes("\\p{IsMathematicalAlphanumericSymbols}", &["\u{1D400}"]);
    yes(
        "\\p{IsCJKUnifiedIdeographsExtensionB}",
        &["\u{20000}", "\u{2A6D6}"],
    );
    yes(
        "\\p{IsCJKCompatibilityIdeographsSupplement}",
        &["\u{2F800}"],
    );
    yes("\\p{IsTags}", &["\u{E0001}"]);
    yes(
        "\\p{IsByzantineMusicalSymbols}\\p{IsMusicalSymbols}",
        &["\u{1D000}\u{1D100}"],
    );
    yes("\\p{IsHalfwidthandFullwidthForms}", &["Ａ"]);
    yes("\\p{IsCombiningMarksforSymbols}", &["\u{20D0}"]);
    // surrogate blocks contain no Unicode scalar values
    no("\\p{IsHighSurrogates}", &["a", "\u{D7FF}", "\u{E000}"]);
    yes("\\p{IsHighSurrogates}?", &[""]);
    yes("\\P{IsLowSurrogates}", &["a"]);
    no("\\p{IsHighPrivateUseSurrogates}", &["a"]);
    // Unknown block names are errors (deliberately strict, like Xerces)
    for b in [
        "IsFoo",
        "IsGreekandCoptic",
        "IsBasiclatin",
        "IsLatin1Supplement",
        "IsCyrillicSupplement",
    ] {
        let e = bad(&format!("\\p{{{b}}}"));
        assert!(e.message.contains("block"), "{}", e.message);
    }
}

#[test]
fn block_table_is_well_formed() {
    let mut names = std::collections::HashSet::new();
    for (name, ranges) in super::tables::BLOCKS {
        assert!(names.insert(*name), "duplicate {name}");
        for &(a, b) in *ranges {
            assert!(a <= b && b <= 0x10FFFF, "{name}");
        }
    }
    assert!(names.len() >= 90);
}

#[test]
fn char_classes() {
    yes("[abc]", &["a", "b", "c"]);
    no("[abc]", &["d", "", "ab"]);
    yes("[a-z]", &["a", "m", "z"]);
    no("[a-z]", &["A", "{"]);
    yes("[^a-z]", &["A", "0", "\n", "\u{10FFFF}"]);
    no("[^a-z]", &["q", ""]);
    yes("[^\\s]", &["a", "\u{A0}"]);
    no("[^\\s]", &[" ", "\t"]);
    yes("[\\s\\d]", &[" ", "4"]);
    yes("[\\n-\\r]", &["\n", "\u{B}", "\r"]);
    yes("[\\--/]", &["-", ".", "/"]);
    yes("[+\\--]", &["+", "-"]);
    yes("[\\[\\]]", &["[", "]"]);
    yes("[\\^a]", &["^", "a"]);
    yes("[a^]", &["^", "a"]);
    yes("[.*+?(){}|$]+", &[".*+?(){}|$"]);
    yes("[\\p{Lu}\\d]", &["A", "5"]);
    no("[\\p{Lu}\\d]", &["a"]);
    yes("[^\\p{Lu}]", &["a"]);
    no("[^\\p{Lu}]", &["A"]);
    yes("[\\P{L}a]", &["a", "1"]);
    no("[\\P{L}a]", &["b"]);
    yes("[\\i-[:]]", &["a", "_"]);
    no("[\\i-[:]]", &[":"]);
    yes("[\\w-[\\d]]", &["a"]);
    no("[\\w-[\\d]]", &["5", "-"]);
    yes("[\\W\\d]", &["5", "-"]);
    yes("[\\p{IsBasicLatin}-[a-z]]", &["A"]);
    no("[\\p{IsBasicLatin}-[a-z]]", &["a", "é"]);
    yes("[é-ü]", &["é", "ü", "ñ"]);
    yes("[\u{10000}-\u{10FFFF}]", &["\u{1F600}"]);
    no("[\u{10000}-\u{10FFFF}]", &["\u{FFFF}"]);
}

#[test]
fn dash_rules() {
    yes("[-a]", &["-", "a"]);
    yes("[a-]", &["-", "a"]);
    yes("[^-a]", &["b"]);
    no("[^-a]", &["-"]);
    yes("[-]", &["-"]);
    yes("[a-z-]", &["-", "q"]);
    yes("[a-z--[b-z]]", &["a", "-"]);
    no("[a-z--[b-z]]", &["b"]);
    bad("[a-b-c]");
    yes("[ab-cd-ef-]x-", &["-x-", "ex-"]);
    bad("[a-c-e]");
    bad("[\\d-z]");
    bad("[a-\\d]");
    bad("[a-\\p{L}]");
    bad("[--a]");
    bad("[a--]");
    bad("[a-[b]x]");
}

#[test]
fn class_errors() {
    bad("[]");
    bad("[^]");
    bad("[]a]");
    bad("[a");
    bad("[a-");
    bad("[a-z");
    bad("[[a]]");
    bad("[a[b]]");
    bad("[a-[b]");
    bad("[z-a]");
    bad("[\\u0041]");
    bad("[\\q]");
    bad("[a-\\]");
    bad("[a-z-[]]");
}

#[test]
fn subtraction() {
    yes("[a-z-[aeiou]]", &["b", "z"]);
    no("[a-z-[aeiou]]", &["e", "a", "A"]);
    yes("[a-z-[aeiou-[e]]]", &["b", "e"]);
    no("[a-z-[aeiou-[e]]]", &["a", "u"]);
    yes("[^a-z-[0-9]]", &["A"]);
    no("[^a-z-[0-9]]", &["5", "a"]);
    yes("[\\p{L}-[\\p{Lu}]]", &["a"]);
    no("[\\p{L}-[\\p{Lu}]]", &["A", "1"]);
    yes("[\\p{L}-[a-z]]", &["A", "é"]);
    no("[\\p{L}-[a-z]]", &["q"]);
    yes("[a-z-[\\P{Ll}]]", &["q"]);
    yes("[\\w-[\\p{L}]]+", &["123"]);
    no("[\\w-[\\p{L}]]", &["a"]);
}

#[test]
fn real_world_patterns() {
    // NHS number
    yes("[0-9]{10}", &["9434765919"]);
    no("[0-9]{10}", &["943476591", "94347659190", "943476591a"]);
    yes("\\d{3}-\\d{4}", &["555-1234"]);
    no("\\d{3}-\\d{4}", &["5551234", "555-123"]);
    yes(
        "[A-Z]\\d{12}[0-9A-Z]",
        &["A123456789012B", "Z0000000000009"],
    );
    no("[A-Z]\\d{12}[0-9A-Z]", &["a123456789012B", "A12345678901B"]);
    // UK postcode (simplified GOV.UK style)
    let pc = "(GIR 0AA)|((([A-Z][0-9][0-9]?)|(([A-Z][A-HJ-Y][0-9][0-9]?)|(([A-Z][0-9][A-Z])|([A-Z][A-HJ-Y][0-9]?[A-Z])))) [0-9][A-Z]{2})";
    yes(
        pc,
        &[
            "SW1A 1AA", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "GIR 0AA", "EC1A 1BB",
        ],
    );
    no(pc, &["SW1A1AA", "sw1a 1aa", "Q1A 1AA ", "12345"]);
    // National Insurance number
    let nino = "[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\\d{6}[A-D]";
    yes(nino, &["AB123456C"]);
    no(nino, &["DA123456C", "AB123456E"]);
    // email-ish, dates, language tags
    yes("[^@\\s]+@[^@\\s]+\\.[a-z]{2,}", &["a.b@example.org"]);
    yes(
        "\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])",
        &["2024-02-29"],
    );
    no(
        "\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])",
        &["2024-13-01"],
    );
    yes("[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*", &["en-GB", "x-klingon"]);
    yes("\\c+", &["xs:NMTOKEN.value-1"]);
    yes("[\\i-[:]][\\c-[:]]*", &["ncname"]);
    no("[\\i-[:]][\\c-[:]]*", &["a:b"]);
}

#[test]
fn escape_roundtrip_examples() {
    for s in [
        "", "a.b", "^$", "[a-z]{2}", "\\d", "a\nb\r\t", "(|)*+?", "é😀",
    ] {
        let r = ok(&escape(s));
        assert!(r.is_match(s));
        assert!(!r.is_match(&format!("{s}x")));
    }
}

#[test]
fn charset_ops() {
    let a = CharSet::from_ranges(&[(0x61, 0x7A), (0x41, 0x5A), (0x5B, 0x5B)]);
    assert_eq!(a.ranges(), &[(0x41, 0x5B), (0x61, 0x7A)]);
    let n = a.negate();
    assert!(!n.contains('a') && n.contains('0') && n.contains('\u{10FFFF}'));
    assert_eq!(n.negate(), a);
    let all = CharSet::all();
    assert_eq!(all.ranges(), &[(0, 0xD7FF), (0xE000, 0x10FFFF)]);
    assert!(all.negate().is_empty());
    assert_eq!(CharSet::empty().negate(), all);
    let b = CharSet::from_ranges(&[(0x60, 0x65)]);
    assert_eq!(a.intersect(&b).ranges(), &[(0x61, 0x65)]);
    assert_eq!(a.difference(&b).ranges(), &[(0x41, 0x5B), (0x66, 0x7A)]);
    assert_eq!(
        CharSet::from_ranges(&[(0xD000, 0xE100)]).ranges(),
        &[(0xD000, 0xD7FF), (0xE000, 0xE100)]
    );
    assert!(CharSet::from_ranges(&[(5, 4), (0x110000, 0x110005)]).is_empty());
}

#[test]
fn class_expr_to_set() {
    let e = Parser::new("[a-z-[aeiou]]").parse_class_only();
    let Ok(e) = e else { panic!("parse") };
    let s = e.to_set().unwrap_or_default();
    assert!(s.contains('b') && !s.contains('e'));
    let Ok(e) = Parser::new("[\\p{L}-[a]]").parse_class_only() else {
        panic!("parse")
    };
    assert!(matches!(e, ClassExpr::Subtract(..)));
    assert!(e.to_set().is_none());
}

// ---------------------------------------------------------------- proptest

/// A model of a small character class, rendered as XSD syntax, with an
/// independent membership function.
#[derive(Debug, Clone)]
enum Item {
    Char(char),
    Range(char, char),
    Space,
    NotSpace,
    BasicLatin,
    Greek,
    NameStart,
    /// general category, negated?
    Cat(&'static str, bool),
    Digit,
    Word,
}

/// Category membership straight from the regex crate (model side).
fn in_cat(name: &str, c: char) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache.entry(name.to_string()).or_insert_with(|| {
            regex::Regex::new(&format!("^\\p{{{name}}}$")).unwrap_or_else(|e| panic!("{e}"))
        });
        re.is_match(&c.to_string())
    })
}

#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    items: Vec<Item>,
    sub: Option<Box<Class>>,
}

fn xsd_char(c: char) -> String {
    match c {
        '\\' | '-' | '[' | ']' | '^' => format!("\\{c}"),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        _ => c.to_string(),
    }
}

impl Class {
    fn render(&self) -> String {
        let mut s = String::from("[");
        if self.negated {
            s.push('^');
        }
        for it in &self.items {
            match it {
                Item::Char(c) => s.push_str(&xsd_char(*c)),
                Item::Range(a, b) => s.push_str(&format!("{}-{}", xsd_char(*a), xsd_char(*b))),
                Item::Space => s.push_str("\\s"),
                Item::NotSpace => s.push_str("\\S"),
                Item::BasicLatin => s.push_str("\\p{IsBasicLatin}"),
                Item::Greek => s.push_str("\\p{IsGreek}"),
                Item::NameStart => s.push_str("\\i"),
                Item::Cat(n, neg) => {
                    s.push_str(&format!("\\{}{{{n}}}", if *neg { 'P' } else { 'p' }))
                }
                Item::Digit => s.push_str("\\d"),
                Item::Word => s.push_str("\\w"),
            }
        }
        if let Some(sub) = &self.sub {
            s.push('-');
            s.push_str(&sub.render());
        }
        s.push(']');
        s
    }

    fn contains(&self, c: char) -> bool {
        let u = c as u32;
        let in_items = self.items.iter().any(|it| match it {
            Item::Char(x) => *x == c,
            Item::Range(a, b) => *a <= c && c <= *b,
            Item::Space => matches!(c, ' ' | '\t' | '\n' | '\r'),
            Item::NotSpace => !matches!(c, ' ' | '\t' | '\n' | '\r'),
            Item::BasicLatin => u <= 0x7F,
            Item::Greek => (0x370..=0x3FF).contains(&u),
            Item::NameStart => {
                c == '_'
                    || c == ':'
                    || c.is_ascii_alphabetic()
                    || (0x4E00..=0x9FA5).contains(&u)
                    || {
                        // consult the raw XML 1.0 tables directly
                        super::tables::BASE_CHAR
                            .iter()
                            .chain(super::tables::IDEOGRAPHIC)
                            .any(|&(a, b)| a <= u && u <= b)
                    }
            }
            Item::Cat(n, neg) => in_cat(n, c) != *neg,
            Item::Digit => in_cat("Nd", c),
            Item::Word => !(in_cat("P", c) || in_cat("Z", c) || in_cat("C", c)),
        });
        let base = in_items != self.negated;
        base && !self.sub.as_ref().is_some_and(|s| s.contains(c))
    }
}

fn any_class_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::char::range('a', 'f'),
        prop::sample::select(vec![
            '-',
            '[',
            ']',
            '^',
            '\\',
            '\n',
            '\t',
            ' ',
            'α',
            'é',
            '\u{7F}',
            '\u{80}',
            '\u{10000}'
        ]),
        any::<char>(),
    ]
}

fn set_item() -> BoxedStrategy<Item> {
    prop_oneof![
        4 => any_class_char().prop_map(Item::Char),
        3 => (any_class_char(), any_class_char()).prop_map(|(a, b)| if a <= b { Item::Range(a, b) } else { Item::Range(b, a) }),
        1 => Just(Item::Space),
        1 => Just(Item::NotSpace),
        1 => Just(Item::BasicLatin),
        1 => Just(Item::Greek),
        1 => Just(Item::NameStart),
    ]
    .boxed()
}

fn any_item() -> BoxedStrategy<Item> {
    prop_oneof![
        6 => set_item(),
        1 => (prop::sample::select(vec!["L", "Lu", "Ll", "N", "Nd", "P", "Pd", "Z", "S", "C", "Cn", "Co", "Mn"]), any::<bool>())
            .prop_map(|(n, neg)| Item::Cat(n, neg)),
        1 => Just(Item::Digit),
        1 => Just(Item::Word),
    ]
    .boxed()
}

fn any_class_of<S>(item: S) -> impl Strategy<Value = Class>
where
    S: Strategy<Value = Item> + Clone + 'static,
{
    let item2 = item.clone();
    let leaf =
        (any::<bool>(), prop::collection::vec(item, 1..5)).prop_map(|(negated, items)| Class {
            negated,
            items,
            sub: None,
        });
    leaf.prop_recursive(3, 12, 2, move |inner| {
        (
            any::<bool>(),
            prop::collection::vec(item2.clone(), 1..5),
            inner,
        )
            .prop_map(|(negated, items, sub)| Class {
                negated,
                items,
                sub: Some(Box::new(sub)),
            })
    })
}

fn probe_chars() -> impl Strategy<Value = Vec<char>> {
    prop::collection::vec(any_class_char(), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300), ..ProptestConfig::default() })]

    #[test]
    fn class_membership_matches_model(class in any_class_of(set_item()), probes in probe_chars()) {
        let pat = class.render();
        let re = XsdRegex::compile(&pat);
        prop_assert!(re.is_ok(), "{pat:?}: {:?}", re.err());
        let Ok(re) = re else { return Ok(()) };
        let Ok(expr) = Parser::new(&pat).parse_class_only() else { return Err(TestCaseError::fail("parse")) };
        let set = expr.to_set();
        prop_assert!(set.is_some());
        let set = set.unwrap_or_default();
        for c in probes {
            let expected = class.contains(c);
            let s = c.to_string();
            prop_assert_eq!(re.is_match(&s), expected, "regex vs model for {:?} in {:?}", c, pat);
            prop_assert_eq!(set.contains(c), expected, "set vs model for {:?} in {:?}", c, pat);
        }
    }

    #[test]
    fn class_with_categories_matches_model(class in any_class_of(any_item()), probes in probe_chars()) {
        let pat = class.render();
        let re = XsdRegex::compile(&pat);
        prop_assert!(re.is_ok(), "{pat:?}: {:?}", re.err());
        let Ok(re) = re else { return Ok(()) };
        for c in probes {
            prop_assert_eq!(re.is_match(&c.to_string()), class.contains(c), "{:?} in {:?} ({})", c, pat, re.translated());
        }
    }

    #[test]
    fn escape_matches_exactly(s in any::<String>(), t in any::<String>()) {
        let re = XsdRegex::compile(&escape(&s));
        prop_assert!(re.is_ok());
        let Ok(re) = re else { return Ok(()) };
        prop_assert!(re.is_match(&s));
        prop_assert_eq!(re.is_match(&t), s == t);
    }

    #[test]
    fn never_panics_on_arbitrary(s in any::<String>()) {
        let _ = XsdRegex::compile(&s).map(|r| r.is_match(&s));
    }

    #[test]
    fn never_panics_on_metachars(s in "[\\\\\\[\\]\\-^(){}|?*+.,0-9a-zpPsSiIcCdDwW$#x]{0,40}") {
        let _ = XsdRegex::compile(&s).map(|r| r.is_match(&s));
    }

    #[test]
    fn never_panics_on_structured(parts in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "[", "]", "[^", "-[", "-", "\\", "\\p{", "\\P{", "}", "{", "{2}", "{1,3}", "{3,1}",
        "{0,}", "{99999}", "|", "*", "+", "?", ".", "a", "z", "\\d", "\\i", "\\c", "\\s", "\\w", "L}",
        "IsBasicLatin}", "Lu}", "^", "$", ",", "0", "9", "é", "\u{10000}",
    ]), 0..30)) {
        let s: String = parts.concat();
        let _ = XsdRegex::compile(&s).map(|r| r.is_match(&s));
    }
}
