//! xs:float / xs:double lexical parsing (XSD 1.0) and the 1.0 order/equality.
use std::cmp::Ordering;

/// Checks the XSD 1.0 float/double lexical grammar (no `+INF`, `inf`, hex, ...).
fn lexical_ok(s: &str) -> bool {
    if s == "INF" || s == "-INF" || s == "NaN" {
        return true;
    }
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let ms = i;
    while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    let mut nd = i - ms;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let fs = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        nd += i - fs;
    }
    if nd == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let es = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == es {
            return false;
        }
    }
    i == b.len()
}

fn special(s: &str) -> Option<f64> {
    match s {
        "INF" => Some(f64::INFINITY),
        "-INF" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => None,
    }
}

pub fn parse_double(s: &str) -> Option<f64> {
    if !lexical_ok(s) {
        return None;
    }
    if let Some(v) = special(s) {
        return Some(v);
    }
    s.parse::<f64>().ok()
}

pub fn parse_float(s: &str) -> Option<f32> {
    if !lexical_ok(s) {
        return None;
    }
    if let Some(v) = special(s) {
        return Some(v as f32);
    }
    // parse directly as f32 to avoid double rounding
    s.parse::<f32>().ok()
}

/// XSD 1.0 order: -0 < +0, NaN equals itself and is greater than everything.
pub fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.total_cmp(&b),
    }
}

pub fn cmp_f32(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.total_cmp(&b),
    }
}

/// Bits used for equality/hash (NaN canonicalised).
pub fn key_f64(a: f64) -> u64 {
    if a.is_nan() {
        f64::NAN.to_bits()
    } else {
        a.to_bits()
    }
}
pub fn key_f32(a: f32) -> u32 {
    if a.is_nan() {
        f32::NAN.to_bits()
    } else {
        a.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lexical() {
        for ok in [
            "1", "-1.5e10", ".5", "5.", "1E-3", "+1e+3", "INF", "-INF", "NaN", "0", "-0",
        ] {
            assert!(parse_double(ok).is_some(), "{ok}");
        }
        for bad in [
            "+INF", "inf", "Infinity", "nan", "0x1p3", "1e", "e5", ".", "", "1.5f", " 1", "1,5",
            "--1",
        ] {
            assert!(parse_double(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_float("1.1"), Some(1.1f32));
        assert_eq!(parse_float("1e39"), Some(f32::INFINITY));
        assert_eq!(cmp_f64(-0.0, 0.0), Ordering::Less);
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") { let _ = parse_double(&s); let _ = parse_float(&s); }
    }
}
