//! hexBinary and base64Binary (XSD 1.0 Part 2 3.2.15/3.2.16).

pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err("an odd number of hex digits".into());
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks(2) {
        let hi = pair.first().and_then(|c| (*c as char).to_digit(16));
        let lo = pair.get(1).and_then(|c| (*c as char).to_digit(16));
        match (hi, lo) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err("a character that is not a hex digit".into()),
        }
    }
    Ok(out)
}

fn b64val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Parses the (whitespace-collapsed) base64Binary lexical form.
pub fn parse_base64(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    // S ::= #x20, at most one between characters, none leading/trailing
    let mut chars = Vec::with_capacity(b.len());
    let mut prev_space = true;
    for &c in b {
        if c == b' ' {
            if prev_space {
                return Err("misplaced space".into());
            }
            prev_space = true;
        } else {
            prev_space = false;
            chars.push(c);
        }
    }
    if prev_space && !b.is_empty() {
        return Err("trailing space".into());
    }
    if chars.len() % 4 != 0 {
        return Err("the number of base64 characters is not a multiple of 4".into());
    }
    let pad = chars.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return Err("too much '=' padding".into());
    }
    let body_len = chars.len() - pad;
    let body = chars.get(..body_len).unwrap_or(&[]);
    let mut vals = Vec::with_capacity(body.len());
    for &c in body {
        vals.push(b64val(c).ok_or_else(|| format!("'{}' is not a base64 character", c as char))?);
    }
    if pad > 0 {
        let last = vals.last().copied().unwrap_or(0);
        if pad == 2 && last & 0x0f != 0 {
            return Err("the character before '==' must be one of A, Q, g, w".into());
        }
        if pad == 1 && last & 0x03 != 0 {
            return Err("the character before '=' must be one of AEIMQUYcgkosw048".into());
        }
    }
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for q in vals.chunks(4) {
        let g = |i: usize| q.get(i).copied().unwrap_or(0) as u32;
        let n = (g(0) << 18) | (g(1) << 12) | (g(2) << 6) | g(3);
        out.push((n >> 16) as u8);
        if q.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if q.len() > 3 {
            out.push(n as u8);
        }
    }
    Ok(out)
}

pub fn encode_base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let g = |i: usize| c.get(i).copied().unwrap_or(0) as u32;
        let n = (g(0) << 16) | (g(1) << 8) | g(2);
        let ch = |k: u32| {
            T.get(((n >> k) & 63) as usize)
                .map(|&x| x as char)
                .unwrap_or('A')
        };
        s.push(ch(18));
        s.push(ch(12));
        s.push(if c.len() > 1 { ch(6) } else { '=' });
        s.push(if c.len() > 2 { ch(0) } else { '=' });
    }
    s
}

pub fn encode_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base64() {
        assert_eq!(parse_base64("").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_base64("YQ==").unwrap(), b"a");
        assert_eq!(parse_base64("YWI=").unwrap(), b"ab");
        assert_eq!(parse_base64("YW Jj").unwrap(), b"abc");
        assert!(parse_base64("YR==").is_err());
        assert!(parse_base64("YWJ=").is_err());
        assert!(parse_base64("YQ=").is_err());
        assert!(parse_base64("Y===").is_err());
        assert!(parse_base64("YQ==YQ==").is_err());
        assert!(parse_base64("YW  Jj").is_err());
        assert!(parse_base64("=YWJ").is_err());
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("0fA1").unwrap(), vec![0x0f, 0xa1]);
        assert!(parse_hex("0").is_err());
        assert!(parse_hex("0g").is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(data in prop::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(parse_base64(&encode_base64(&data)).unwrap(), data.clone());
            prop_assert_eq!(parse_hex(&encode_hex(&data)).unwrap(), data);
        }
        #[test]
        fn never_panics(s in ".*") { let _ = parse_base64(&s); let _ = parse_hex(&s); }
    }
}
