//! Seeded randomness: every random draw in the core comes from one generator built from a seed.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::Duration;

/// A deterministic generator; the same seed gives the same draws on every platform.
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A generator seeded from `seed`.
    pub fn from_seed(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A child generator whose stream is drawn from this one, for a machine built inside another.
    pub fn child(&mut self) -> Self {
        Self::from_seed(self.0.next_u64())
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform duration in `[low, high]` (or `low` when the range is empty).
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let span = (high - low).as_micros() as f64;
        low + Duration::from_micros((self.unit() * span) as u64)
    }

    /// A raw 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws() {
        let mut a = Rng::from_seed(7);
        let mut b = Rng::from_seed(7);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::from_seed(8).next_u64(), xs[0]);
    }

    #[test]
    fn durations_stay_in_range() {
        let mut rng = Rng::from_seed(1);
        let (low, high) = (Duration::from_millis(10), Duration::from_millis(20));
        for _ in 0..1000 {
            let d = rng.duration_between(low, high);
            assert!(d >= low && d <= high, "{d:?}");
        }
        assert_eq!(rng.duration_between(high, low), high);
    }
}
