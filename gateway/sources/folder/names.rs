//! File names in the inbox: which ones are candidates, and the safe names the outcome files get.
//!
//! The name an operator or agency chose is never used to build a path as it is: it may be
//! non-UTF-8, hold control characters or be longer than the filesystem allows once suffixes are
//! added. Outcome files get a sanitised copy; the file itself is only ever addressed through the
//! entry the directory listing or the watcher gave us.

use std::ffi::OsStr;

/// Longest sanitised name, in bytes: leaves room for `.processing/<uuid>.` in front and
/// `-NNN` plus `.receipt.json` behind within the usual 255-byte limit.
const MAX_NAME: usize = 150;

/// Whether a file in the inbox may be picked up at all. Writers use hidden names and `.part` /
/// `.tmp` suffixes while writing and rename the file in when done; those are never touched.
pub fn is_candidate(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    !b.is_empty() && !b.starts_with(b".") && !b.ends_with(b".part") && !b.ends_with(b".tmp")
}

/// A plain, printable file name derived from `raw`: control characters, separators and
/// invalid UTF-8 become `_`, leading dots are dropped, the length is capped.
pub fn sanitise(raw: &OsStr) -> String {
    let lossy = raw.to_string_lossy();
    let mapped: String = lossy
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | '\u{FFFD}') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut s = mapped.trim_start_matches('.').to_owned();
    if s.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    if s.is_empty() {
        "unnamed".to_owned()
    } else {
        s
    }
}

/// `name` for attempt 0, then `stem-N.ext` (`report-2.sealed`), for outcome names that must
/// not overwrite an earlier file of the same name.
pub fn with_suffix(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}-{n}{}", &name[..dot], &name[dot..]),
        _ => format!("{name}-{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_temporary_names_are_not_candidates() {
        for n in [".x.sealed", "x.part", "x.sealed.tmp", "", ".processing"] {
            assert!(!is_candidate(OsStr::new(n)), "{n:?}");
        }
        for n in ["x.sealed", "x", "partial", "a..b"] {
            assert!(is_candidate(OsStr::new(n)), "{n:?}");
        }
    }

    #[test]
    fn hostile_names_become_plain_printable_names() {
        assert_eq!(sanitise(OsStr::new("a\nb\tc")), "a_b_c");
        assert_eq!(sanitise(OsStr::new("../../etc")), "_.._etc");
        assert_eq!(sanitise(OsStr::new("..")), "unnamed");
        assert_eq!(sanitise(OsStr::new("")), "unnamed");
        let long = "é".repeat(200);
        let s = sanitise(OsStr::new(&long));
        assert!(s.len() <= MAX_NAME && s.chars().all(|c| c == 'é'));
        for n in ["a\nb", "../x", "..", "x\u{7f}"] {
            assert!(crate::fsio::check_file_name(&sanitise(OsStr::new(n))).is_ok());
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_sanitised() {
        use std::os::unix::ffi::OsStrExt;
        let s = sanitise(OsStr::from_bytes(b"caf\xe9.sealed"));
        assert_eq!(s, "caf_.sealed");
    }

    #[test]
    fn suffixes_go_before_the_extension() {
        assert_eq!(with_suffix("r.sealed", 0), "r.sealed");
        assert_eq!(with_suffix("r.sealed", 2), "r-2.sealed");
        assert_eq!(with_suffix("r", 1), "r-1");
    }
}
