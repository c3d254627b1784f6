//! Timestamps on the wire: RFC 3339, UTC, whole seconds, `Z` (as the Xray seed shows).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats milliseconds since the Unix epoch; out-of-range values clamp to the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let at = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_in_utc_with_z() {
        assert_eq!(rfc3339_ms(1_704_110_400_999), "2024-01-01T12:00:00Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
    }
}
