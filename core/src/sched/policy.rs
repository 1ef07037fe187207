//! Retry policies: which answers are retried, how long to wait, and how much retrying is allowed.

use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Which statuses are retried. Defaults follow Genesys' guidance: retry 429 and 502/503/504, never
/// 501, and leave 500 alone (their Java and .NET SDKs and resiliency guide say a 500 is a bug to
/// report, not a blip to retry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classifier {
    /// Retry 500 Internal Server Error. Default: false.
    pub retry_500: bool,
}

/// What a response means for the attempt that got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A final answer for the caller: success or an error retrying will not fix.
    Final,
    /// The server is limiting our rate: wait, then try again.
    Throttled,
    /// A transient server failure: back off, then try again.
    Transient,
}

impl Classifier {
    /// Classifies a status.
    pub fn classify(&self, status: StatusCode) -> Verdict {
        match status.as_u16() {
            429 => Verdict::Throttled,
            502..=504 => Verdict::Transient,
            500 if self.retry_500 => Verdict::Transient,
            _ => Verdict::Final,
        }
    }
}

/// How a backoff delay is spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// No spread: `min(cap, base·2ⁿ)`. Clients that failed together retry together.
    None,
    /// `U(0, min(cap, base·2ⁿ))`, "full jitter".
    Full,
    /// `d/2 + U(0, d/2)` with `d = min(cap, base·2ⁿ)`, "equal jitter".
    Equal,
    /// `U(base, min(cap, 3·previous))`, "decorrelated jitter".
    Decorrelated,
    /// `d + U(0, d)` with `d = min(cap, base·2ⁿ)`, as common retry scripts do; may reach `2·cap`.
    Additive,
}

/// An exponential backoff with jitter.
///
/// The cap is applied *before* the random draw, so at the cap delays still spread over a range
/// instead of collapsing onto the cap itself (which would put clients back into lockstep).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The first delay's ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
    /// How the delay is spread below its ceiling.
    pub jitter: Jitter,
}

impl Default for Backoff {
    /// 500 ms doubling to 30 s, full jitter.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first retry); `previous` is the last
    /// delay this item waited, used by decorrelated jitter.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => rng.duration_between(Duration::ZERO, ceiling),
            Jitter::Equal => ceiling / 2 + rng.duration_between(Duration::ZERO, ceiling / 2),
            Jitter::Decorrelated => {
                let high = previous.saturating_mul(3).min(self.cap).max(self.base);
                rng.duration_between(self.base.min(high), high)
            }
            Jitter::Additive => ceiling + rng.duration_between(Duration::ZERO, ceiling),
        }
    }

    /// `min(cap, base·2ⁿ)`, without overflow for any `n`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// A token bucket that limits retries: each retry takes a token as it is sent and gets it back
/// unless it fails again; each success earns a fraction of one, and time refills it slowly. When
/// it is empty, the retry at the head of its lane waits for a token (and the lane behind it), so a
/// failing server sees a trickle of retries instead of a flood, while a server that is well again
/// gets them back at full pace. Throttling (429) is not charged: it is paced by the server's own
/// `Retry-After`. With `refill_per_second` at zero, a retry that finds the bucket empty with
/// nothing in flight gives up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetConfig {
    /// The most tokens the bucket holds (and starts with).
    pub capacity: f64,
    /// Tokens a success earns.
    pub earn_per_success: f64,
    /// Tokens time adds per second.
    pub refill_per_second: f64,
}

impl Default for BudgetConfig {
    /// 20 tokens, a tenth per success, one every two seconds.
    fn default() -> Self {
        Self {
            capacity: 20.0,
            earn_per_success: 0.1,
            refill_per_second: 0.5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
            jitter,
        }
    }

    #[test]
    fn classification_follows_genesys_guidance() {
        let c = Classifier::default();
        assert_eq!(
            c.classify(StatusCode::TOO_MANY_REQUESTS),
            Verdict::Throttled
        );
        for s in [502, 503, 504] {
            assert_eq!(
                c.classify(StatusCode::from_u16(s).unwrap()),
                Verdict::Transient
            );
        }
        for s in [200, 400, 401, 404, 409, 500, 501, 505] {
            assert_eq!(
                c.classify(StatusCode::from_u16(s).unwrap()),
                Verdict::Final,
                "{s}"
            );
        }
        let lenient = Classifier { retry_500: true };
        assert_eq!(
            lenient.classify(StatusCode::INTERNAL_SERVER_ERROR),
            Verdict::Transient
        );
        assert_eq!(
            lenient.classify(StatusCode::NOT_IMPLEMENTED),
            Verdict::Final
        );
    }

    #[test]
    fn ceilings_double_then_cap_without_overflow() {
        let b = backoff(Jitter::None);
        let secs: Vec<u64> = (0..6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn seeded_jitter_is_exact() {
        let mut rng = Rng::from_seed(42);
        let first = backoff(Jitter::Full).delay(2, Duration::ZERO, &mut rng);
        let mut again = Rng::from_seed(42);
        assert_eq!(
            backoff(Jitter::Full).delay(2, Duration::ZERO, &mut again),
            first
        );
        assert!(first <= Duration::from_secs(4));
    }

    #[test]
    fn each_jitter_stays_in_its_range() {
        let mut rng = Rng::from_seed(3);
        for retry in 0..10 {
            let ceiling = backoff(Jitter::None).ceiling(retry);
            let full = backoff(Jitter::Full).delay(retry, Duration::ZERO, &mut rng);
            assert!(full <= ceiling);
            let equal = backoff(Jitter::Equal).delay(retry, Duration::ZERO, &mut rng);
            assert!(equal >= ceiling / 2 && equal <= ceiling);
            let additive = backoff(Jitter::Additive).delay(retry, Duration::ZERO, &mut rng);
            assert!(additive >= ceiling && additive <= ceiling * 2);
            let previous = Duration::from_secs(u64::from(retry));
            let decorrelated = backoff(Jitter::Decorrelated).delay(retry, previous, &mut rng);
            assert!(
                decorrelated >= Duration::from_secs(1) && decorrelated <= Duration::from_secs(8)
            );
        }
    }

    #[test]
    fn jitter_survives_the_cap() {
        // Deep into the retries every ceiling is the cap; the delays must still spread out.
        for jitter in [
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Additive,
        ] {
            let mut rng = Rng::from_seed(9);
            let b = backoff(jitter);
            let delays: Vec<Duration> = (0..200)
                .map(|_| b.delay(30, Duration::from_secs(8), &mut rng))
                .collect();
            let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
            assert!(
                distinct.len() > 150,
                "{jitter:?} collapsed to {} values",
                distinct.len()
            );
            let at_cap = delays.iter().filter(|d| **d == b.cap).count();
            assert!(
                at_cap < 5,
                "{jitter:?} put {at_cap} of 200 delays exactly on the cap"
            );
        }
    }
}
