//! RFC 3339 UTC timestamps as used in the ledger, the outbox metadata and receipts.
//!
//! Timestamps are always written in UTC with exactly six fractional digits
//! (`2024-05-01T12:34:56.789012Z`), so their text sorts chronologically.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The current time in UTC, truncated to microseconds (what [`format()`] keeps).
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let micros = now.microsecond();
    now.replace_microsecond(micros).unwrap_or(now)
}

/// Formats `t` as RFC 3339 in UTC with microsecond precision.
pub fn format(t: &OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("invalid-timestamp"))
}

/// Parses an RFC 3339 timestamp (any offset) and converts it to UTC.
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.to_offset(UtcOffset::UTC))
}

/// `#[serde(with = "crate::message::timestamp::rfc3339")]` for `OffsetDateTime` fields.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serializes as an RFC 3339 UTC string.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    /// Deserializes from an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_timestamps_round_trip_and_end_in_z() {
        let t = now();
        let s = format(&t);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(s.len(), "2024-05-01T12:34:56.789012Z".len());
        assert_eq!(parse(&s).unwrap(), t);
    }
}
