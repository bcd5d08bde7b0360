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

/// RFC 3339 in UTC with exactly three fraction digits and `Z`, for columns:
/// `to_rfc3339` writes as many fraction digits as the time needs (none, 1 to 9), so a
/// column of them is ragged. Milliseconds are what the coordinator stores; finer
/// digits are cut, not rounded. A year RFC 3339 cannot write (before 0, past 9999)
/// falls back to `to_rfc3339`.
pub fn to_rfc3339_millis(ts: Timestamp) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&ts.year()) {
        return to_rfc3339(ts);
    }
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.millisecond()
    )
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

    #[test]
    fn millis_text_has_a_fixed_width() {
        let shown: Vec<String> = [1_700_000_000_000, 1_700_000_000_500, 1_700_000_000_007]
            .into_iter()
            .map(|ms| to_rfc3339_millis(from_unix_millis(ms)))
            .collect();
        assert_eq!(
            shown,
            [
                "2023-11-14T22:13:20.000Z",
                "2023-11-14T22:13:20.500Z",
                "2023-11-14T22:13:20.007Z"
            ]
        );
        // Finer than milliseconds: cut; another offset: written in UTC.
        let fine = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_999_999)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(to_rfc3339_millis(fine), "2023-11-14T22:13:20.123Z");
        // Parsed back by any RFC 3339 reader.
        let back = OffsetDateTime::parse(&to_rfc3339_millis(fine), &Rfc3339).unwrap();
        assert_eq!(to_unix_millis(back), 1_700_000_000_123);
        assert_eq!(
            to_rfc3339_millis(from_unix_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
