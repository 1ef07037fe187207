//! Virtual time: the core never reads a clock, so every instant is handed in by the driver.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in microseconds since an origin the driver chooses (usually the start of a run).
///
/// Adapters map their wall clock onto it (`start.elapsed()`); the simulator advances it by itself.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Self = Self(0);

    /// Later than any time a run will reach; used as "never".
    pub const FAR_FUTURE: Self = Self(u64::MAX / 2);

    /// The instant `offset` after the origin.
    pub fn from_offset(offset: Duration) -> Self {
        Self(
            u64::try_from(offset.as_micros())
                .unwrap_or(u64::MAX)
                .min(Self::FAR_FUTURE.0),
        )
    }

    /// The instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// The instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1000))
    }

    /// The instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time since the origin.
    pub const fn since_origin(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// Seconds since the origin, as a float for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// How long after `earlier` this is, or zero when it is not after it.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Self;

    /// Saturates at [`Timestamp::FAR_FUTURE`] rather than overflowing on a huge delay.
    fn add(self, rhs: Duration) -> Self {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(micros).min(Self::FAR_FUTURE.0))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;

    fn sub(self, rhs: Duration) -> Self {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_huge_delay_saturates_instead_of_overflowing() {
        let t = Timestamp::from_secs(5) + Duration::from_secs(u64::MAX);
        assert_eq!(t, Timestamp::FAR_FUTURE);
    }

    #[test]
    fn display_shows_seconds_with_microseconds() {
        assert_eq!(Timestamp::from_micros(3_000_042).to_string(), "3.000042s");
    }

    #[test]
    fn saturating_since_is_zero_backwards() {
        let a = Timestamp::from_secs(1);
        let b = Timestamp::from_secs(2);
        assert_eq!(b.saturating_since(a), Duration::from_secs(1));
        assert_eq!(a.saturating_since(b), Duration::ZERO);
    }
}
