//! The wall clock, mapped onto the machine's [`Timestamp`]s and back onto timer deadlines.

use std::time::Instant;

use gcbulk_core::Timestamp;

/// Wall-clock time as microseconds since an origin fixed when the clock starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub(crate) fn start() -> Self {
        Self {
            origin: Self::read(),
        }
    }

    /// Time since the origin.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_offset(Self::read().saturating_duration_since(self.origin))
    }

    /// The instant a timer must fire for the machine to see `at`; `None` when `at` is so far
    /// off that no timer could hold it (the machine's "never").
    pub(crate) fn instant_of(&self, at: Timestamp) -> Option<Instant> {
        self.origin.checked_add(at.since_origin())
    }

    /// The one read of the wall clock in this crate.
    #[expect(
        clippy::disallowed_methods,
        reason = "the driver is where wall-clock time enters the machine, as `now`"
    )]
    fn read() -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn time_starts_near_the_origin_and_never_goes_back() {
        let clock = Clock::start();
        let first = clock.now();
        let second = clock.now();
        assert!(first < Timestamp::from_secs(1));
        assert!(second >= first);
    }

    #[test]
    fn a_timestamp_maps_back_onto_the_instant_it_came_from() {
        let clock = Clock::start();
        let at = Timestamp::from_millis(1500);
        let instant = clock.instant_of(at).unwrap();
        assert_eq!(
            instant.duration_since(clock.origin),
            Duration::from_millis(1500)
        );
    }
}
