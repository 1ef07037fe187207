//! Drawing from a seeded generator: uniform numbers, ranges, normal deviates, ids.

use rand_core::RngCore;

/// A uniform float in `[0, 1)`.
pub(crate) fn uniform(rng: &mut impl RngCore) -> f64 {
    // 53 random bits fill an f64 mantissa exactly.
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// True with probability `p`; draws nothing when `p` is zero, so an unused fault costs no dice.
pub(crate) fn chance(rng: &mut impl RngCore, p: f64) -> bool {
    p > 0.0 && uniform(rng) < p
}

/// A uniform integer in `lo..=hi` (`lo` when the range is empty).
pub(crate) fn between(rng: &mut impl RngCore, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = u128::from(hi - lo) + 1;
    // Multiply-shift maps 64 random bits onto the span without a modulo's bias toward low values.
    let offset = (u128::from(rng.next_u64()) * span) >> 64;
    lo + u64::try_from(offset).unwrap_or(0)
}

/// A standard normal deviate (Box-Muller).
pub(crate) fn normal(rng: &mut impl RngCore) -> f64 {
    let u1 = 1.0 - uniform(rng); // in (0, 1], so the logarithm is finite
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A random UUID (version 4), the shape of Genesys ids and correlation ids.
pub(crate) fn uuid(rng: &mut impl RngCore) -> String {
    let high = rng.next_u64();
    let low = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        ((low >> 48) & 0x3fff) | 0x8000,
        low & 0xffff_ffff_ffff,
    )
}

/// A random opaque token of `len` URL-safe characters.
pub(crate) fn token(rng: &mut impl RngCore, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| char::from(ALPHABET[(rng.next_u32() & 63) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn draws_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..1000 {
            let u = uniform(&mut rng);
            assert!((0.0..1.0).contains(&u));
            assert!((3..=5).contains(&between(&mut rng, 3, 5)));
        }
        assert_eq!(between(&mut rng, 9, 2), 9);
        assert!(!chance(&mut rng, 0.0));
    }

    #[test]
    fn normal_deviates_centre_on_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mean = (0..10_000).map(|_| normal(&mut rng)).sum::<f64>() / 10_000.0;
        assert!(mean.abs() < 0.05, "{mean}");
    }

    #[test]
    fn uuids_look_like_uuids() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let id = uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(
            matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
    }
}
