//! xs:duration: (months, exact seconds) with the XSD 1.0 partial order (3.2.6.2).
use super::datetime::days_from_civil;
use super::decimal::Decimal;
use std::cmp::Ordering;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DurationValue {
    /// total months (years*12 + months), signed
    pub months: i64,
    /// total seconds (days, hours, minutes, seconds), signed, exact
    pub seconds: Decimal,
}

const REFERENCES: [(i64, u8); 4] = [(1696, 9), (1697, 2), (1903, 3), (1903, 7)];

impl DurationValue {
    pub fn parse(s: &str) -> Result<DurationValue, String> {
        let b = s.as_bytes();
        let mut i = 0usize;
        let neg = if b.first() == Some(&b'-') {
            i += 1;
            true
        } else {
            false
        };
        if b.get(i) != Some(&b'P') {
            return Err("a duration must start with 'P' (or '-P')".into());
        }
        i += 1;
        let mut months: i64 = 0;
        let mut seconds = Decimal::zero();
        let mut in_time = false;
        let mut any = false;
        let mut time_any = false;
        // order index of the last designator seen, to enforce Y M D T H M S order
        let mut last = 0u8;
        while i < b.len() {
            if b.get(i) == Some(&b'T') {
                if in_time {
                    return Err("'T' appears twice".into());
                }
                in_time = true;
                last = 4;
                i += 1;
                continue;
            }
            let start = i;
            while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            let int_end = i;
            let mut frac = false;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let fs = i;
                while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                if fs == i {
                    return Err("a fraction needs at least one digit".into());
                }
                frac = true;
            }
            if int_end == start {
                return Err(format!("expected digits at position {}", start + 1));
            }
            let num_str =
                std::str::from_utf8(b.get(start..i).unwrap_or(&[])).map_err(|e| e.to_string())?;
            let num = Decimal::parse(num_str).ok_or("invalid number")?;
            let des = b.get(i).copied().ok_or("missing designator after number")?;
            i += 1;
            let order = match (in_time, des) {
                (false, b'Y') => 1,
                (false, b'M') => 2,
                (false, b'D') => 3,
                (true, b'H') => 5,
                (true, b'M') => 6,
                (true, b'S') => 7,
                _ => return Err(format!("unexpected designator '{}'", des as char)),
            };
            if order <= last {
                return Err("duration parts are out of order or repeated".into());
            }
            last = order;
            if frac && order != 7 {
                return Err("only seconds may have a fractional part".into());
            }
            any = true;
            if in_time {
                time_any = true;
            }
            match order {
                1 | 2 => {
                    let n = num.to_i128().ok_or("number too large")?;
                    let n = if order == 1 {
                        n.checked_mul(12).ok_or("number too large")?
                    } else {
                        n
                    };
                    let n = i64::try_from(n)
                        .map_err(|_| "years/months too large for this implementation")?;
                    months = months
                        .checked_add(n)
                        .ok_or("years/months too large for this implementation")?;
                }
                3 => seconds = seconds.add(&num.mul_small(86400)),
                5 => seconds = seconds.add(&num.mul_small(3600)),
                6 => seconds = seconds.add(&num.mul_small(60)),
                _ => seconds = seconds.add(&num),
            }
        }
        if !any {
            return Err("a duration needs at least one part".into());
        }
        if in_time && !time_any {
            return Err("'T' must be followed by at least one time part".into());
        }
        if neg {
            months = -months;
            seconds = seconds.neg();
        }
        Ok(DurationValue { months, seconds })
    }

    fn at_reference(&self, y: i64, m: u8) -> Decimal {
        let total = y as i128 * 12 + (m as i128 - 1) + self.months as i128;
        let ny = total.div_euclid(12);
        let nm = (total.rem_euclid(12) + 1) as u8;
        // clamp into the i64 year range used by days_from_civil (months fit in i64 anyway)
        let ny = ny.clamp(i64::MIN as i128 / 2, i64::MAX as i128 / 2) as i64;
        // reference years are positive; map astronomical year <= 0 to XSD 1.0 numbering
        let xy = if ny <= 0 { ny - 1 } else { ny };
        Decimal::from_i128(days_from_civil(xy, nm, 1) * 86400).add(&self.seconds)
    }

    pub fn partial_cmp_xsd(&self, other: &DurationValue) -> Option<Ordering> {
        if self.months == other.months {
            return Some(self.seconds.cmp(&other.seconds));
        }
        if self.seconds == other.seconds {
            return Some(self.months.cmp(&other.months));
        }
        let mut res: Option<Ordering> = None;
        for (y, m) in REFERENCES {
            let o = self.at_reference(y, m).cmp(&other.at_reference(y, m));
            match res {
                None => res = Some(o),
                Some(r) if r != o => return None,
                _ => {}
            }
        }
        res
    }
}

impl fmt::Display for DurationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.months < 0 || self.seconds.is_negative();
        let m = self.months.unsigned_abs();
        let s = if self.seconds.is_negative() {
            self.seconds.neg()
        } else {
            self.seconds.clone()
        };
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        out.push('P');
        if m / 12 > 0 {
            out.push_str(&format!("{}Y", m / 12));
        }
        if !m.is_multiple_of(12) {
            out.push_str(&format!("{}M", m % 12));
        }
        if !s.is_zero() || m == 0 {
            out.push_str(&format!("T{}S", s));
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> DurationValue {
        DurationValue::parse(s).unwrap()
    }

    #[test]
    fn lexical() {
        for ok in [
            "P1Y",
            "-P1Y2M3DT4H5M6.7S",
            "PT0S",
            "P0D",
            "PT1.5S",
            "P123456789012345678901234567890D",
        ] {
            assert!(DurationValue::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "P", "PT", "-P", "P1YT", "P1S", "PT1D", "P1M1Y", "P1.5Y", "PT.5S", "P-1Y", "1Y",
            "P1Y1Y", "PT1.S", " P1Y",
        ] {
            assert!(DurationValue::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(d("P1Y"), d("P12M"));
        assert_eq!(d("PT24H"), d("P1D"));
    }

    #[test]
    fn order() {
        assert_eq!(d("P1Y").partial_cmp_xsd(&d("P365D")), None);
        assert_eq!(d("P1M").partial_cmp_xsd(&d("P30D")), None);
        assert_eq!(d("P1M").partial_cmp_xsd(&d("P32D")), Some(Ordering::Less));
        assert_eq!(
            d("P1Y").partial_cmp_xsd(&d("P364D")),
            Some(Ordering::Greater)
        );
        assert_eq!(d("P2Y").partial_cmp_xsd(&d("P1Y")), Some(Ordering::Greater));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") { let _ = DurationValue::parse(&s); }
        #[test]
        fn never_panics_shaped(s in "-?P[0-9YMDTHS.]{0,30}") { let _ = DurationValue::parse(&s); }
    }
}
