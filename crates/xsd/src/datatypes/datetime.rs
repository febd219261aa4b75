//! dateTime family: lexical parsing, timeline values, XSD 1.0 order (Part 2 3.2.7.4).
use super::decimal::Decimal;
use std::cmp::Ordering;
use std::fmt;

/// Which member of the date/time family a value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtKind {
    DateTime,
    Time,
    Date,
    GYearMonth,
    GYear,
    GMonthDay,
    GDay,
    GMonth,
}

/// A dateTime-family value. Fields not present in the lexical form hold reference
/// values (year 1972, month 12, day 31 / 1). `instant` is the position on the timeline
/// in seconds (UTC-normalised if `tz` is present, local otherwise).
#[derive(Clone, Debug)]
pub struct DateTimeValue {
    pub kind: DtKind,
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: Decimal,
    /// timezone offset in minutes
    pub tz: Option<i16>,
    instant: Decimal,
}

impl PartialEq for DateTimeValue {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.tz.is_some() == other.tz.is_some()
            && self.instant == other.instant
    }
}
impl Eq for DateTimeValue {}
impl std::hash::Hash for DateTimeValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.tz.is_some().hash(state);
        self.instant.hash(state);
    }
}

const MAX_YEAR_DIGITS: usize = 15;
const FOURTEEN_HOURS: i128 = 14 * 3600;

pub fn is_leap(year: i64) -> bool {
    // XSD 1.0 has no year 0: -0001 is the year before 0001 (astronomical year 0).
    let y = if year < 0 { year + 1 } else { year };
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => {
            if is_leap(year) {
                29
            } else {
                28
            }
        }
        _ => 0,
    }
}

/// Days since 1970-01-01 of the proleptic Gregorian date (XSD 1.0 year numbering).
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i128 {
    let y0 = if year < 0 {
        year as i128 + 1
    } else {
        year as i128
    };
    let m = month as i128;
    let y = if m <= 2 { y0 - 1 } else { y0 };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i128 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn two(b: &[u8], i: usize) -> Option<u8> {
    let a = *b.get(i)?;
    let c = *b.get(i + 1)?;
    if a.is_ascii_digit() && c.is_ascii_digit() {
        Some((a - b'0') * 10 + (c - b'0'))
    } else {
        None
    }
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at position {}",
                c as char,
                self.i + 1
            ))
        }
    }
    fn two(&mut self, what: &str) -> Result<u8, String> {
        let v = two(self.b, self.i).ok_or_else(|| format!("expected two-digit {what}"))?;
        self.i += 2;
        Ok(v)
    }
    fn year(&mut self) -> Result<i64, String> {
        let neg = if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
            true
        } else {
            false
        };
        let start = self.i;
        while self.b.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = self.b.get(start..self.i).unwrap_or(&[]);
        if digits.len() < 4 {
            return Err("the year must have at least four digits".into());
        }
        if digits.len() > 4 && digits.first() == Some(&b'0') {
            return Err("a year with more than four digits must not have leading zeros".into());
        }
        if digits.len() > MAX_YEAR_DIGITS {
            return Err("the year is too large for this implementation".into());
        }
        let mut y: i64 = 0;
        for &d in digits {
            y = y * 10 + (d - b'0') as i64;
        }
        if y == 0 {
            return Err("year 0000 is not allowed".into());
        }
        Ok(if neg { -y } else { y })
    }
    fn month(&mut self) -> Result<u8, String> {
        let m = self.two("month")?;
        if !(1..=12).contains(&m) {
            return Err(format!("month {m} is out of range"));
        }
        Ok(m)
    }
    fn day(&mut self) -> Result<u8, String> {
        let d = self.two("day")?;
        if !(1..=31).contains(&d) {
            return Err(format!("day {d} is out of range"));
        }
        Ok(d)
    }
    /// hh:mm:ss(.s+)? ; returns (h, m, sec, is_24)
    fn time(&mut self, full: bool) -> Result<(u8, u8, Decimal), String> {
        let h = self.two("hour")?;
        self.eat(b':')?;
        let mi = self.two("minute")?;
        self.eat(b':')?;
        let s_start = self.i;
        let whole = self.two("second")?;
        let mut frac_zero = true;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let fs = self.i;
            while let Some(c) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
                frac_zero &= *c == b'0';
                self.i += 1;
            }
            if self.i == fs {
                return Err("fractional seconds need at least one digit".into());
            }
        }
        // Only a value (not a validity check) needs the seconds as a decimal.
        let sec = if full {
            let sec_str = std::str::from_utf8(self.b.get(s_start..self.i).unwrap_or(&[]))
                .map_err(|e| e.to_string())?;
            Decimal::parse(sec_str).ok_or("invalid seconds")?
        } else {
            Decimal::zero()
        };
        if mi > 59 {
            return Err(format!("minute {mi} is out of range"));
        }
        // Two integer digits: the value is at least 60 exactly when they are.
        if whole >= 60 {
            let shown = std::str::from_utf8(self.b.get(s_start..self.i).unwrap_or(&[]))
                .unwrap_or("")
                .to_owned();
            return Err(format!(
                "second {} is out of range",
                Decimal::parse(&shown).map_or(shown, |d| d.to_string())
            ));
        }
        if h > 24 || (h == 24 && (mi != 0 || whole != 0 || !frac_zero)) {
            return Err(format!("hour {h} is out of range"));
        }
        Ok((h, mi, sec))
    }
    fn tz(&mut self) -> Result<Option<i16>, String> {
        match self.b.get(self.i) {
            None => Ok(None),
            Some(b'Z') => {
                self.i += 1;
                Ok(Some(0))
            }
            Some(&c @ (b'+' | b'-')) => {
                self.i += 1;
                let h = self.two("timezone hour")?;
                self.eat(b':')?;
                let m = self.two("timezone minute")?;
                if m > 59 || h > 14 || (h == 14 && m != 0) {
                    return Err(format!(
                        "timezone {}{:02}:{:02} is out of range",
                        c as char, h, m
                    ));
                }
                let v = h as i16 * 60 + m as i16;
                Ok(Some(if c == b'-' { -v } else { v }))
            }
            Some(_) => Err(format!("unexpected character at position {}", self.i + 1)),
        }
    }
    fn end(&self) -> Result<(), String> {
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(format!("unexpected character at position {}", self.i + 1))
        }
    }
}

impl DateTimeValue {
    /// Parses the XSD 1.0 lexical form of the given kind. Err holds a human-readable reason.
    pub fn parse(kind: DtKind, s: &str) -> Result<DateTimeValue, String> {
        Self::parse_impl(kind, s, true)
    }

    /// Checks the lexical form only (the same errors as [`Self::parse`], no value built).
    pub fn check(kind: DtKind, s: &str) -> Result<(), String> {
        Self::parse_impl(kind, s, false).map(|_| ())
    }

    fn parse_impl(kind: DtKind, s: &str, full: bool) -> Result<DateTimeValue, String> {
        let mut p = P {
            b: s.as_bytes(),
            i: 0,
        };
        let (mut year, mut month, mut day) = (1972i64, 12u8, 31u8);
        let (mut hour, mut minute, mut second) = (0u8, 0u8, Decimal::zero());
        match kind {
            DtKind::DateTime | DtKind::Date | DtKind::GYearMonth | DtKind::GYear => {
                year = p.year()?;
                if kind == DtKind::GYear {
                    month = 1;
                    day = 1;
                } else {
                    p.eat(b'-')?;
                    month = p.month()?;
                    if kind == DtKind::GYearMonth {
                        day = 1;
                    } else {
                        p.eat(b'-')?;
                        day = p.day()?;
                        if day > days_in_month(year, month) {
                            return Err(format!(
                                "day {day} does not exist in month {month} of year {year}"
                            ));
                        }
                        if kind == DtKind::DateTime {
                            p.eat(b'T')?;
                            let (h, mi, sec) = p.time(full)?;
                            hour = h;
                            minute = mi;
                            second = sec;
                        }
                    }
                }
            }
            DtKind::Time => {
                let (h, mi, sec) = p.time(full)?;
                hour = if h == 24 { 0 } else { h };
                minute = mi;
                second = sec;
            }
            DtKind::GMonthDay => {
                p.eat(b'-')?;
                p.eat(b'-')?;
                month = p.month()?;
                p.eat(b'-')?;
                day = p.day()?;
                if day > days_in_month(2000, month) {
                    return Err(format!("day {day} does not exist in month {month}"));
                }
            }
            DtKind::GDay => {
                p.eat(b'-')?;
                p.eat(b'-')?;
                p.eat(b'-')?;
                day = p.day()?;
            }
            DtKind::GMonth => {
                p.eat(b'-')?;
                p.eat(b'-')?;
                month = p.month()?;
                day = 1;
            }
        }
        let tz = p.tz()?;
        p.end()?;
        // 24:00:00 in a dateTime is the first instant of the following day.
        if kind == DtKind::DateTime && hour == 24 {
            hour = 0;
            if day < days_in_month(year, month) {
                day += 1;
            } else {
                day = 1;
                if month < 12 {
                    month += 1;
                } else {
                    month = 1;
                    year = if year == -1 { 1 } else { year + 1 };
                }
            }
        }
        let mut v = DateTimeValue {
            kind,
            year,
            month,
            day,
            hour,
            minute,
            second,
            tz,
            instant: Decimal::zero(),
        };
        if full {
            v.instant = v.compute_instant();
        }
        Ok(v)
    }

    fn compute_instant(&self) -> Decimal {
        let days = days_from_civil(self.year, self.month, self.day);
        let mut secs = days * 86400 + self.hour as i128 * 3600 + self.minute as i128 * 60;
        if let Some(tz) = self.tz {
            secs -= tz as i128 * 60;
        }
        Decimal::from_i128(secs).add(&self.second)
    }

    /// Seconds on the timeline (UTC if timezoned, local otherwise).
    pub fn instant(&self) -> &Decimal {
        &self.instant
    }

    /// XSD 1.0 partial order (3.2.7.4). Values of different kinds are incomparable.
    pub fn partial_cmp_xsd(&self, other: &DateTimeValue) -> Option<Ordering> {
        if self.kind != other.kind {
            return None;
        }
        match (self.tz.is_some(), other.tz.is_some()) {
            (true, true) | (false, false) => Some(self.instant.cmp(&other.instant)),
            (true, false) => cmp_tz_vs_local(&self.instant, &other.instant),
            (false, true) => cmp_tz_vs_local(&other.instant, &self.instant).map(Ordering::reverse),
        }
    }
}

/// p has a timezone; q (local) is treated as any timezone in -14:00..+14:00.
fn cmp_tz_vs_local(p: &Decimal, q: &Decimal) -> Option<Ordering> {
    let d = Decimal::from_i128(FOURTEEN_HOURS);
    if *p < q.sub(&d) {
        Some(Ordering::Less)
    } else if *p > q.add(&d) {
        Some(Ordering::Greater)
    } else {
        None
    }
}

impl fmt::Display for DateTimeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let y = if self.year < 0 {
            format!("-{:04}", -self.year)
        } else {
            format!("{:04}", self.year)
        };
        let sec = {
            let s = self.second.to_string();
            if self.second < Decimal::from_i128(10) {
                format!("0{s}")
            } else {
                s
            }
        };
        let t = format!("{:02}:{:02}:{}", self.hour, self.minute, sec);
        match self.kind {
            DtKind::DateTime => write!(f, "{}-{:02}-{:02}T{}", y, self.month, self.day, t)?,
            DtKind::Time => f.write_str(&t)?,
            DtKind::Date => write!(f, "{}-{:02}-{:02}", y, self.month, self.day)?,
            DtKind::GYearMonth => write!(f, "{}-{:02}", y, self.month)?,
            DtKind::GYear => f.write_str(&y)?,
            DtKind::GMonthDay => write!(f, "--{:02}-{:02}", self.month, self.day)?,
            DtKind::GDay => write!(f, "---{:02}", self.day)?,
            DtKind::GMonth => write!(f, "--{:02}", self.month)?,
        }
        match self.tz {
            None => Ok(()),
            Some(0) => f.write_str("Z"),
            Some(m) => write!(
                f,
                "{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                m.abs() / 60,
                m.abs() % 60
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(s: &str) -> DateTimeValue {
        DateTimeValue::parse(DtKind::DateTime, s).unwrap()
    }

    #[test]
    fn lexical() {
        assert!(DateTimeValue::parse(DtKind::DateTime, "2024-02-29T24:00:00Z").is_ok());
        assert!(DateTimeValue::parse(DtKind::DateTime, "2023-02-29T00:00:00").is_err());
        assert!(DateTimeValue::parse(DtKind::DateTime, "0000-01-01T00:00:00").is_err());
        assert!(DateTimeValue::parse(DtKind::DateTime, "02024-01-01T00:00:00").is_err());
        assert!(
            DateTimeValue::parse(DtKind::DateTime, "12024-01-01T00:00:00.123456789012345").is_ok()
        );
        assert!(DateTimeValue::parse(DtKind::DateTime, "2024-01-01T24:00:01").is_err());
        assert!(DateTimeValue::parse(DtKind::DateTime, "2024-01-01T00:00:00+14:01").is_err());
        assert!(DateTimeValue::parse(DtKind::DateTime, "2024-01-01T00:00:00.").is_err());
        assert!(DateTimeValue::parse(DtKind::Date, "-0001-01-01").is_ok());
        assert!(DateTimeValue::parse(DtKind::GMonthDay, "--02-29").is_ok());
        assert!(DateTimeValue::parse(DtKind::GMonthDay, "--04-31").is_err());
        assert!(DateTimeValue::parse(DtKind::GDay, "---31Z").is_ok());
        assert!(DateTimeValue::parse(DtKind::GMonth, "--12").is_ok());
        assert!(DateTimeValue::parse(DtKind::Time, "24:00:00").is_ok());
        assert!(DateTimeValue::parse(DtKind::GYear, "2024-05:00").is_ok());
        assert_eq!(dt("2024-12-31T24:00:00"), dt("2025-01-01T00:00:00"));
        assert_eq!(dt("2024-01-01T05:00:00+05:00"), dt("2024-01-01T00:00:00Z"));
        assert_ne!(dt("2024-01-01T00:00:00"), dt("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn order() {
        let a = dt("2000-01-15T00:00:00Z");
        let b = dt("2000-01-15T12:00:00");
        assert_eq!(a.partial_cmp_xsd(&b), None);
        let c = dt("2000-01-16T15:00:00");
        assert_eq!(a.partial_cmp_xsd(&c), Some(Ordering::Less));
        assert_eq!(c.partial_cmp_xsd(&a), Some(Ordering::Greater));
    }

    fn arb_dt() -> impl Strategy<Value = String> {
        (
            1990i64..2010,
            1u8..13,
            1u8..29,
            0u8..24,
            0u8..60,
            prop::option::of(-14i16..15),
        )
            .prop_map(|(y, m, d, h, mi, tz)| {
                let tzs = match tz {
                    None => String::new(),
                    Some(t) => format!("{}{:02}:00", if t < 0 { '-' } else { '+' }, t.abs()),
                };
                format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:00{tzs}")
            })
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            for k in [DtKind::DateTime, DtKind::Time, DtKind::Date, DtKind::GYearMonth, DtKind::GYear, DtKind::GMonthDay, DtKind::GDay, DtKind::GMonth] {
                let _ = DateTimeValue::parse(k, &s);
            }
        }
        #[test]
        fn transitive(a in arb_dt(), b in arb_dt(), c in arb_dt()) {
            let (a, b, c) = (dt(&a), dt(&b), dt(&c));
            for (x, y, z) in [(&a, &b, &c), (&a, &c, &b), (&b, &a, &c), (&b, &c, &a), (&c, &a, &b), (&c, &b, &a)] {
                if x.partial_cmp_xsd(y) == Some(Ordering::Less) && y.partial_cmp_xsd(z) == Some(Ordering::Less) {
                    prop_assert_eq!(x.partial_cmp_xsd(z), Some(Ordering::Less));
                }
            }
        }
    }
}
