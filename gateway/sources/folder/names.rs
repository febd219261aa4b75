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

/// Longest extension kept whole when a name is shortened (`.sealed`, `.xml.age` ends in `.age`).
const MAX_EXTENSION: usize = 16;

/// Whether a file in the inbox may be picked up at all. Writers use hidden names and `.part` /
/// `.tmp` suffixes while writing and rename the file in when done; those are never touched.
///
/// A name starting with `..` (such as `..sealed`) is not hidden in that sense: removing the
/// writer's leading dot would still leave a hidden name, so no writer renames it into anything
/// we would take, and ignoring it would leave it in the inbox for ever without a word. It is
/// taken like any other file (its outcome files are named by [`sanitise`], `unnamed.sealed`).
pub fn is_candidate(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    let hidden = b.starts_with(b".") && !(b.starts_with(b"..") && b.len() > 2);
    !b.is_empty() && !hidden && !b.ends_with(b".part") && !b.ends_with(b".tmp")
}

/// A plain, printable file name derived from `raw`: control characters, separators and
/// invalid UTF-8 become `_`, leading dots are dropped, the length is capped.
///
/// The extension (up to [`MAX_EXTENSION`] bytes, e.g. `.sealed`) survives both the capping and
/// the dropping of leading dots: it is what tells operators and their tools what the file in
/// `accepted/` or `rejected/` is. What is cut is the end of the stem; a stem that is nothing
/// but dots becomes `unnamed` (`..sealed` gives `unnamed.sealed`).
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
    let (stem, extension) = match mapped.rfind('.') {
        Some(dot) if dot > 0 && mapped.len() - dot > 1 && mapped.len() - dot <= MAX_EXTENSION => {
            mapped.split_at(dot)
        }
        _ => (mapped.as_str(), ""),
    };
    let mut stem = stem.trim_start_matches('.').to_owned();
    if stem.is_empty() {
        stem = "unnamed".to_owned();
    }
    let room = MAX_NAME - extension.len();
    if stem.len() > room {
        let mut end = room;
        while !stem.is_char_boundary(end) {
            end -= 1;
        }
        stem.truncate(end);
    }
    stem + extension
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
        for n in [
            ".x.sealed",
            "x.part",
            "x.sealed.tmp",
            "",
            ".processing",
            ".",
            "..",
            "..x.part",
        ] {
            assert!(!is_candidate(OsStr::new(n)), "{n:?}");
        }
        for n in ["x.sealed", "x", "partial", "a..b", "..sealed", "...", "..x"] {
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

    #[test]
    fn long_names_are_cut_in_the_stem_and_keep_their_extension() {
        let long = format!("{}.sealed", "r".repeat(300));
        let s = sanitise(OsStr::new(&long));
        assert_eq!(s.len(), MAX_NAME);
        assert!(s.ends_with("r.sealed"), "{s}");
        let wide = format!("{}.sealed", "é".repeat(200));
        let s = sanitise(OsStr::new(&wide));
        assert!(s.len() <= MAX_NAME && s.ends_with("é.sealed"), "{s}");
        // A very long "extension" is no extension: the end is cut as before.
        let odd = format!("a.{}", "x".repeat(300));
        assert_eq!(sanitise(OsStr::new(&odd)).len(), MAX_NAME);
        // Suffixed outcome names still fit the filesystem's 255 bytes with our sidecars.
        let suffixed = with_suffix(&sanitise(OsStr::new(&long)), 999);
        assert!(format!("{suffixed}.receipt.json").len() <= 255);
    }

    #[test]
    fn a_name_that_is_only_dots_and_an_extension_keeps_the_extension() {
        assert_eq!(sanitise(OsStr::new("..sealed")), "unnamed.sealed");
        assert_eq!(sanitise(OsStr::new(".x.sealed")), "x.sealed");
        assert_eq!(sanitise(OsStr::new(".sealed")), "sealed");
        assert_eq!(sanitise(OsStr::new("...")), "unnamed");
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
