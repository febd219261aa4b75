//! Sets of Unicode scalar values as sorted, disjoint, non-adjacent ranges.

/// Largest code point.
pub(crate) const MAX_CP: u32 = 0x10_FFFF;
const SUR_LO: u32 = 0xD800;
const SUR_HI: u32 = 0xDFFF;

/// A set of Unicode scalar values (surrogates are never members).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CharSet {
    /// Sorted, disjoint, non-adjacent inclusive ranges, no surrogates.
    ranges: Vec<(u32, u32)>,
}

impl CharSet {
    /// The empty set.
    pub fn empty() -> CharSet {
        CharSet { ranges: Vec::new() }
    }

    /// Every Unicode scalar value.
    pub fn all() -> CharSet {
        CharSet::from_ranges(&[(0, MAX_CP)])
    }

    /// A single character.
    pub fn single(c: char) -> CharSet {
        CharSet::from_ranges(&[(c as u32, c as u32)])
    }

    /// Build from arbitrary (possibly unsorted / overlapping / reversed) ranges.
    /// Reversed ranges are ignored; surrogates and values above U+10FFFF are dropped.
    pub fn from_ranges(input: &[(u32, u32)]) -> CharSet {
        let mut v: Vec<(u32, u32)> = Vec::with_capacity(input.len() + 1);
        for &(a, b) in input {
            if a > b || a > MAX_CP {
                continue;
            }
            let b = b.min(MAX_CP);
            // split around the surrogate block
            if b < SUR_LO || a > SUR_HI {
                v.push((a, b));
            } else {
                if a < SUR_LO {
                    v.push((a, SUR_LO - 1));
                }
                if b > SUR_HI {
                    v.push((SUR_HI + 1, b));
                }
            }
        }
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => {
                    if b > last.1 {
                        last.1 = b;
                    }
                }
                _ => out.push((a, b)),
            }
        }
        // Merge across the surrogate gap is never done: D7FF and E000 are not
        // adjacent numerically, so ranges stay split, which is what we want.
        CharSet { ranges: out }
    }

    /// The ranges (sorted, disjoint, non-adjacent, no surrogates).
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Membership test (binary search).
    pub fn contains(&self, c: char) -> bool {
        let cp = c as u32;
        self.ranges
            .binary_search_by(|&(a, b)| {
                if b < cp {
                    std::cmp::Ordering::Less
                } else if a > cp {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    pub fn union(&self, other: &CharSet) -> CharSet {
        let mut v = self.ranges.clone();
        v.extend_from_slice(&other.ranges);
        CharSet::from_ranges(&v)
    }

    /// Complement with respect to all Unicode scalar values.
    pub fn negate(&self) -> CharSet {
        let mut out = Vec::with_capacity(self.ranges.len() + 2);
        let mut next: u32 = 0;
        let mut done = false;
        for &(a, b) in &self.ranges {
            if a > next {
                out.push((next, a - 1));
            }
            if b >= MAX_CP {
                done = true;
                break;
            }
            next = b + 1;
        }
        if !done {
            out.push((next, MAX_CP));
        }
        CharSet::from_ranges(&out)
    }

    pub fn intersect(&self, other: &CharSet) -> CharSet {
        let (x, y) = (&self.ranges, &other.ranges);
        let (mut i, mut j) = (0usize, 0usize);
        let mut out = Vec::new();
        while let (Some(&(a1, b1)), Some(&(a2, b2))) = (x.get(i), y.get(j)) {
            let lo = a1.max(a2);
            let hi = b1.min(b2);
            if lo <= hi {
                out.push((lo, hi));
            }
            if b1 < b2 {
                i += 1;
            } else {
                j += 1;
            }
        }
        CharSet { ranges: out }
    }

    pub fn difference(&self, other: &CharSet) -> CharSet {
        self.intersect(&other.negate())
    }
}
