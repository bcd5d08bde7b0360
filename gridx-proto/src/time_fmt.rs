//! Timestamps on the wire are RFC 3339 in UTC; these helpers keep that in one place.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The one timestamp type that crosses process boundaries.
pub type Timestamp = OffsetDateTime;

pub fn now() -> Timestamp {
    OffsetDateTime::now_utc()
}

/// RFC 3339 text in UTC, for logs and terminals.
pub fn to_rfc3339(ts: Timestamp) -> String {
    ts.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| ts.unix_timestamp().to_string())
}

/// Milliseconds since the Unix epoch, as stored by the coordinator.
pub fn to_unix_millis(ts: Timestamp) -> i64 {
    i64::try_from(ts.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_unix_millis(ms: i64) -> Timestamp {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        let ts = from_unix_millis(1_700_000_000_123);
        assert_eq!(to_unix_millis(ts), 1_700_000_000_123);
        assert_eq!(to_rfc3339(ts), "2023-11-14T22:13:20.123Z");
    }
}
