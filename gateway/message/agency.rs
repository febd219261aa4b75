//! Agency names, checked once where they enter (a folder name, a token, `agency add`, the
//! schema catalog) so that everything after can use them as path components and metric
//! labels without checking again.

use std::fmt;

/// A name that is safe as one path component on every platform: 1 to 63 characters of
/// lowercase ASCII letters, digits and `-`, starting with a letter or digit. Queue names
/// follow the same rule.
pub fn is_safe_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The name of a registered (or registrable) agency, e.g. `police`, `social-care`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AgencyName(String);

/// A string that cannot be an agency name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad agency name {0:?}: use 1-63 lowercase letters, digits and '-', starting with a letter or digit"
)]
pub struct BadName(pub String);

impl AgencyName {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<AgencyName, BadName> {
        if is_safe_name(s) {
            Ok(AgencyName(s.to_owned()))
        } else {
            Err(BadName(s.chars().take(80).collect()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for AgencyName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AgencyName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<AgencyName> for String {
    fn eq(&self, other: &AgencyName) -> bool {
        *self == other.0
    }
}

impl fmt::Display for AgencyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AgencyName {
    type Err = BadName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgencyName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::AgencyName;

    #[test]
    fn names_are_checked_once_at_the_edge() {
        for ok in ["police", "social-care", "a", "youth-offending-2"] {
            assert_eq!(
                AgencyName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "-x",
            "Police",
            "../etc",
            "a/b",
            "a b",
            "é",
            long.as_str(),
        ] {
            assert!(AgencyName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
