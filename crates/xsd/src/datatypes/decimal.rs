//! Small exact arbitrary-precision decimal (sign, significant digits, scale).
use std::cmp::Ordering;
use std::fmt;

/// value = (-1)^neg * int(digits) * 10^(-scale). `digits` holds 0..=9 values with
/// no leading and no trailing zeros; zero is the empty digit string (neg=false, scale=0).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    neg: bool,
    digits: Vec<u8>,
    scale: i64,
}

impl Default for Decimal {
    fn default() -> Self {
        Decimal::zero()
    }
}

impl Decimal {
    pub fn zero() -> Self {
        Decimal {
            neg: false,
            digits: Vec::new(),
            scale: 0,
        }
    }

    fn from_parts(neg: bool, mut digits: Vec<u8>, mut scale: i64) -> Self {
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..lead);
        while digits.last() == Some(&0) {
            digits.pop();
            scale -= 1;
        }
        if digits.is_empty() {
            return Decimal::zero();
        }
        Decimal { neg, digits, scale }
    }

    /// Parses the XSD decimal lexical form: `[+-]? (d+ ('.' d*)? | '.' d+)`.
    pub fn parse(s: &str) -> Option<Decimal> {
        Self::parse_impl(s, true)
    }

    /// Parses the XSD integer lexical form: `[+-]? d+`.
    pub fn parse_integer(s: &str) -> Option<Decimal> {
        Self::parse_impl(s, false)
    }

    fn parse_impl(s: &str, allow_point: bool) -> Option<Decimal> {
        let b = s.as_bytes();
        let (neg, rest) = match b.first() {
            Some(b'-') => (true, b.get(1..)?),
            Some(b'+') => (false, b.get(1..)?),
            _ => (false, b),
        };
        let mut digits = Vec::with_capacity(rest.len());
        let mut seen_point = false;
        let mut ndigits = 0usize;
        let mut scale: i64 = 0;
        for &c in rest {
            match c {
                b'0'..=b'9' => {
                    digits.push(c - b'0');
                    ndigits += 1;
                    if seen_point {
                        scale += 1;
                    }
                }
                b'.' if allow_point && !seen_point => seen_point = true,
                _ => return None,
            }
        }
        if ndigits == 0 {
            return None;
        }
        Some(Decimal::from_parts(neg, digits, scale))
    }

    pub fn from_i128(v: i128) -> Decimal {
        let neg = v < 0;
        let mut m = v.unsigned_abs();
        let mut digits = Vec::new();
        while m > 0 {
            digits.push((m % 10) as u8);
            m /= 10;
        }
        digits.reverse();
        Decimal::from_parts(neg, digits, 0)
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }
    pub fn is_negative(&self) -> bool {
        self.neg
    }
    pub fn is_integer(&self) -> bool {
        self.scale <= 0
    }

    /// Number of fractional digits of the value (trailing zeros do not count).
    pub fn fraction_digits(&self) -> u64 {
        if self.scale > 0 { self.scale as u64 } else { 0 }
    }

    /// Number of significant digits as used by the totalDigits facet
    /// (smallest t such that value = i / 10^n, |i| < 10^t, 0 <= n <= t).
    pub fn total_digits(&self) -> u64 {
        if self.digits.is_empty() {
            return 1;
        }
        let len = self.digits.len() as i64;
        let t = if self.scale >= 0 {
            len.max(self.scale)
        } else {
            len - self.scale
        };
        t.max(1) as u64
    }

    /// Position of the most significant digit (number of integer digits if >= 1).
    fn magnitude(&self) -> i64 {
        self.digits.len() as i64 - self.scale
    }

    fn cmp_abs(&self, other: &Decimal) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        self.magnitude()
            .cmp(&other.magnitude())
            .then_with(|| self.digits.as_slice().cmp(other.digits.as_slice()))
    }

    pub fn neg(&self) -> Decimal {
        if self.is_zero() {
            return self.clone();
        }
        Decimal {
            neg: !self.neg,
            digits: self.digits.clone(),
            scale: self.scale,
        }
    }

    /// Coefficient digits (little-endian) at the given scale (scale >= self.scale).
    fn aligned_le(&self, scale: i64) -> Vec<u8> {
        let pad = (scale - self.scale).max(0) as usize;
        let mut v = vec![0u8; pad];
        v.extend(self.digits.iter().rev());
        v
    }

    pub fn add(&self, other: &Decimal) -> Decimal {
        if self.is_zero() {
            return other.clone();
        }
        if other.is_zero() {
            return self.clone();
        }
        let scale = self.scale.max(other.scale);
        let a = self.aligned_le(scale);
        let b = other.aligned_le(scale);
        if self.neg == other.neg {
            let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
            let mut carry = 0u8;
            for i in 0..a.len().max(b.len()) {
                let s = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
                out.push(s % 10);
                carry = s / 10;
            }
            if carry > 0 {
                out.push(carry);
            }
            out.reverse();
            Decimal::from_parts(self.neg, out, scale)
        } else {
            let (big, small, neg) = match self.cmp_abs(other) {
                Ordering::Equal => return Decimal::zero(),
                Ordering::Greater => (a, b, self.neg),
                Ordering::Less => (b, a, other.neg),
            };
            let mut out = Vec::with_capacity(big.len());
            let mut borrow = 0i8;
            for (i, &d) in big.iter().enumerate() {
                let mut x = d as i8 - small.get(i).copied().unwrap_or(0) as i8 - borrow;
                if x < 0 {
                    x += 10;
                    borrow = 1;
                } else {
                    borrow = 0;
                }
                out.push(x as u8);
            }
            out.reverse();
            Decimal::from_parts(neg, out, scale)
        }
    }

    pub fn sub(&self, other: &Decimal) -> Decimal {
        self.add(&other.neg())
    }

    pub fn mul_small(&self, m: u32) -> Decimal {
        if m == 0 || self.is_zero() {
            return Decimal::zero();
        }
        let mut out = Vec::with_capacity(self.digits.len() + 10);
        let mut carry: u64 = 0;
        for &d in self.digits.iter().rev() {
            let x = d as u64 * m as u64 + carry;
            out.push((x % 10) as u8);
            carry = x / 10;
        }
        while carry > 0 {
            out.push((carry % 10) as u8);
            carry /= 10;
        }
        out.reverse();
        Decimal::from_parts(self.neg, out, self.scale)
    }

    /// Integer value if it fits in i128.
    pub fn to_i128(&self) -> Option<i128> {
        if !self.is_integer() {
            return None;
        }
        let mut v: i128 = 0;
        for &d in &self.digits {
            v = v.checked_mul(10)?.checked_add(d as i128)?;
        }
        for _ in 0..(-self.scale) {
            v = v.checked_mul(10)?;
        }
        Some(if self.neg { -v } else { v })
    }

    /// Non-negative integer value saturated into u64 (None if negative or not integer).
    pub fn to_u64_saturating(&self) -> Option<u64> {
        if self.neg || !self.is_integer() {
            return None;
        }
        if self.magnitude() > 20 {
            return Some(u64::MAX);
        }
        Some(
            self.to_i128()
                .map(|v| v.min(u64::MAX as i128) as u64)
                .unwrap_or(u64::MAX),
        )
    }

    /// Splits into integer part (truncated toward zero) and the fractional remainder.
    pub fn trunc_split(&self) -> (Decimal, Decimal) {
        if self.scale <= 0 {
            return (self.clone(), Decimal::zero());
        }
        let int_len = (self.digits.len() as i64 - self.scale).max(0) as usize;
        let int_digits: Vec<u8> = self.digits.iter().take(int_len).copied().collect();
        let int = Decimal::from_parts(self.neg, int_digits, 0);
        let frac = self.sub(&int);
        (int, frac)
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.neg, other.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_abs(other),
            (true, true) => other.cmp_abs(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Decimal {
    /// Canonical-ish representation: no exponent, no trailing fractional zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut s = String::with_capacity(self.digits.len() + 4);
        if self.neg {
            s.push('-');
        }
        let len = self.digits.len() as i64;
        let ds = |d: &u8| (b'0' + *d) as char;
        if self.scale <= 0 {
            s.extend(self.digits.iter().map(ds));
            for _ in 0..(-self.scale) {
                s.push('0');
            }
        } else if self.scale >= len {
            s.push_str("0.");
            for _ in 0..(self.scale - len) {
                s.push('0');
            }
            s.extend(self.digits.iter().map(ds));
        } else {
            let ip = (len - self.scale) as usize;
            s.extend(self.digits.iter().take(ip).map(ds));
            s.push('.');
            s.extend(self.digits.iter().skip(ip).map(ds));
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parse_forms() {
        assert_eq!(d("1.0"), d("1"));
        assert_eq!(d("+001.500"), d("1.5"));
        assert_eq!(d("-0.0"), Decimal::zero());
        assert_eq!(d(".5").to_string(), "0.5");
        assert_eq!(d("5.").to_string(), "5");
        assert_eq!(d("1000").to_string(), "1000");
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse(".").is_none());
        assert!(Decimal::parse("-").is_none());
        assert!(Decimal::parse("1e5").is_none());
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse_integer("1.0").is_none());
    }

    #[test]
    fn digits() {
        assert_eq!(d("0.05").total_digits(), 2);
        assert_eq!(d("1000").total_digits(), 4);
        assert_eq!(d("12.50").total_digits(), 3);
        assert_eq!(d("12.50").fraction_digits(), 1);
        assert_eq!(d("-007.0").total_digits(), 1);
    }

    #[test]
    fn arith() {
        assert_eq!(d("1.5").add(&d("-2.25")), d("-0.75"));
        assert_eq!(d("99.9").add(&d("0.1")), d("100"));
        assert_eq!(d("1.5").mul_small(86400), d("129600"));
        let (i, f) = d("-12.75").trunc_split();
        assert_eq!((i, f), (d("-12"), d("-0.75")));
    }

    proptest! {
        #[test]
        fn cmp_matches_i128(a in any::<i64>(), b in any::<i64>()) {
            let da = Decimal::parse(&a.to_string()).unwrap();
            let db = Decimal::parse(&b.to_string()).unwrap();
            prop_assert_eq!(da.cmp(&db), a.cmp(&b));
            prop_assert_eq!(da.add(&db), Decimal::from_i128(a as i128 + b as i128));
            prop_assert_eq!(da.sub(&db), Decimal::from_i128(a as i128 - b as i128));
            prop_assert_eq!(da.to_i128(), Some(a as i128));
        }
        #[test]
        fn scaled_cmp(a in any::<i64>(), s in 0u32..10, b in any::<i64>(), t in 0u32..10) {
            let fa = format!("{}e-{}", a, s);
            let _ = fa;
            let da = Decimal::from_i128(a as i128);
            let mut x = da.clone(); for _ in 0..s { x = Decimal { neg: x.neg, digits: x.digits.clone(), scale: x.scale + 1 }; x = Decimal::from_parts(x.neg, x.digits, x.scale); }
            let db = Decimal::from_i128(b as i128);
            let mut y = db.clone(); for _ in 0..t { y = Decimal::from_parts(y.neg, y.digits.clone(), y.scale + 1); }
            let lhs = (a as i128) * 10i128.pow(t);
            let rhs = (b as i128) * 10i128.pow(s);
            prop_assert_eq!(x.cmp(&y), lhs.cmp(&rhs));
        }
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = Decimal::parse(&s);
        }
    }
}
