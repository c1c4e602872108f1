//! [`Timestamp`]: a point in time with nanosecond resolution.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch (UTC). Totally ordered; the timestamp of
/// every MVCC version, prepare and commit in Meridian.
///
/// Spanner timestamps are physical, and so are these: uniqueness among the
/// timestamps one leader issues comes from issuing strictly increasing values
/// (see [`Timestamp::next`]), not from a logical counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch, the smallest timestamp.
    pub const MIN: Timestamp = Timestamp(0);
    /// The largest timestamp (year 2554), used as "read everything".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The timestamp `nanos` nanoseconds after the Unix epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The next timestamp, one nanosecond later (saturating at `MAX`).
    pub const fn next(self) -> Self {
        Timestamp(self.0.saturating_add(1))
    }

    /// The previous timestamp, one nanosecond earlier (saturating at `MIN`).
    pub const fn prev(self) -> Self {
        Timestamp(self.0.saturating_sub(1))
    }

    /// `self + d`, saturating at `MAX`.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at `MIN`.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Big-endian bytes: byte order equals timestamp order.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Inverse of [`Timestamp::to_be_bytes`].
    pub const fn from_be_bytes(bytes: [u8; 8]) -> Self {
        Timestamp(u64::from_be_bytes(bytes))
    }

    /// The wall-clock time this timestamp names.
    pub fn to_datetime(self) -> DateTime<Utc> {
        let secs = (self.0 / 1_000_000_000) as i64;
        let nanos = (self.0 % 1_000_000_000) as u32;
        DateTime::from_timestamp(secs, nanos).expect("every u64 of nanoseconds is a valid date")
    }

    /// The timestamp of a wall-clock time; `None` before 1970 or after `MAX`.
    pub fn from_datetime(dt: DateTime<Utc>) -> Option<Self> {
        // Not `timestamp_nanos_opt`: its i64 ends in 2262, a u64 in 2554.
        let secs = u64::try_from(dt.timestamp()).ok()?;
        let nanos = secs
            .checked_mul(1_000_000_000)?
            .checked_add(u64::from(dt.timestamp_subsec_nanos()))?;
        Some(Timestamp(nanos))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Prints RFC 3339 in UTC with nanoseconds, e.g. `2026-11-24T03:18:23.000000001Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Nanos, true),
        )
    }
}

/// Parses RFC 3339 (any offset), or a bare integer of nanoseconds since the epoch.
impl FromStr for Timestamp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(nanos) = s.parse::<u64>() {
            return Ok(Timestamp(nanos));
        }
        let dt =
            DateTime::parse_from_rfc3339(s).map_err(|e| format!("invalid timestamp {s:?}: {e}"))?;
        Timestamp::from_datetime(dt.with_timezone(&Utc))
            .ok_or_else(|| format!("timestamp {s:?} is outside 1970..2554"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_as_wall_clock_with_nanoseconds() {
        let t = Timestamp::from_nanos(1_795_000_000_000_000_001);
        assert_eq!(t.to_string(), "2026-11-18T11:06:40.000000001Z");
        assert_eq!(Timestamp::MIN.to_string(), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn parses_rfc3339_and_nanos() {
        let t: Timestamp = "2026-11-18T11:06:40.000000001Z".parse().unwrap();
        assert_eq!(t.as_nanos(), 1_795_000_000_000_000_001);
        let shifted: Timestamp = "2026-11-18T12:06:40.000000001+01:00".parse().unwrap();
        assert_eq!(shifted, t);
        assert_eq!(
            "42".parse::<Timestamp>().unwrap(),
            Timestamp::from_nanos(42)
        );
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("1969-12-31T23:59:59Z".parse::<Timestamp>().is_err());
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp::MAX.next(), Timestamp::MAX);
        assert_eq!(Timestamp::MIN.prev(), Timestamp::MIN);
        assert_eq!(
            Timestamp::MIN.saturating_sub(Duration::from_secs(1)),
            Timestamp::MIN
        );
        assert_eq!(Timestamp::MAX.saturating_add(Duration::MAX), Timestamp::MAX);
        let t = Timestamp::from_nanos(10);
        assert_eq!(
            t.duration_since(Timestamp::from_nanos(4)),
            Duration::from_nanos(6)
        );
        assert_eq!(Timestamp::from_nanos(4).duration_since(t), Duration::ZERO);
    }

    #[test]
    fn serializes_as_plain_nanos() {
        let t = Timestamp::from_nanos(123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "123");
        assert_eq!(serde_json::from_str::<Timestamp>("123").unwrap(), t);
    }

    proptest! {
        #[test]
        fn byte_order_is_timestamp_order(a: u64, b: u64) {
            let (ta, tb) = (Timestamp::from_nanos(a), Timestamp::from_nanos(b));
            prop_assert_eq!(ta.cmp(&tb), ta.to_be_bytes().cmp(&tb.to_be_bytes()));
            prop_assert_eq!(Timestamp::from_be_bytes(ta.to_be_bytes()), ta);
        }

        #[test]
        fn display_round_trips(nanos: u64) {
            let t = Timestamp::from_nanos(nanos);
            prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }
}
