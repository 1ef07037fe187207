//! Client-side pacing that learns the server's allowance.
//!
//! Each [`Limiter`] is a GCRA (virtual scheduling) rate limiter with a pause. What sets its rate:
//!
//! 1. **Announced budgets.** When a response says how many requests remain in the current window
//!    and when it resets (`inin-ratelimit-*`, `RateLimit`, `X-RateLimit-*`), the rate becomes
//!    `(remaining − our requests in flight) / time to reset`. One client alone then spreads the
//!    window's budget evenly over it; several clients sharing one budget each slow down as the
//!    shared remainder shrinks, so together they use it all without overshooting. When nothing
//!    remains, the limiter pauses until the reset.
//! 2. **429s with nothing announced.** The rate is cut to 70% of the rate that was refused, which
//!    is remembered as the ceiling; it then climbs back towards that ceiling quickly (time
//!    constant 4 s) and beyond it only slowly (0.2% a second), so refusals stay rare instead of
//!    recurring every cycle as with plain additive increase.
//! 3. **Retry-After.** A 429 pauses the limiter until the time asked plus a small jitter (up to
//!    10% of the wait, at most one second), so clients sharing a budget do not return in step.
//!    A 429 without `Retry-After` pauses for an equal-jitter backoff that grows while refusals
//!    continue.
//!
//! The scheduler keeps one limiter for the whole client and one per lane (an endpoint with limits
//! of its own). A 429 that arrives while the announced budget still has room is blamed on the
//! lane; otherwise on the whole client.

use std::time::Duration;

use super::headers::RateObservation;
use crate::Timestamp;
use crate::rng::Rng;

/// Why a send is being held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitReason {
    /// Honouring a server's `Retry-After`.
    RetryAfter,
    /// A 429 without `Retry-After`: waiting out a backoff before probing again.
    Throttled,
    /// The announced window's budget is spent; waiting for it to reset.
    RateWindow,
    /// Spacing requests to the learned or configured rate.
    Pacing,
    /// Backing off before retrying a failed attempt.
    Backoff,
    /// The retry budget is empty; waiting for it to refill.
    RetryBudget,
    /// The access token is about to expire and is renewed first.
    TokenRenewal,
}

impl WaitReason {
    /// A short name for logs and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAfter => "retry-after",
            Self::Throttled => "throttled",
            Self::RateWindow => "rate-window",
            Self::Pacing => "pacing",
            Self::Backoff => "backoff",
            Self::RetryBudget => "retry-budget",
            Self::TokenRenewal => "token-renewal",
        }
    }
}

/// Pacing settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PacingConfig {
    /// The rate to start at, in requests a second; `None` starts unpaced and learns.
    pub initial_rate: Option<f64>,
    /// A rate never to exceed, whatever the server announces (`--max-rate`).
    pub max_rate: Option<f64>,
    /// The slowest rate adaptation may fall to.
    pub min_rate: f64,
    /// Requests that may go back to back before pacing spaces them.
    pub burst: u32,
    /// The window length assumed when headers give a limit but not a window (Genesys: a minute).
    pub default_window: Duration,
    /// Learn from rate-limit headers and 429s; when false, only `initial_rate` and `max_rate` pace.
    pub adaptive: bool,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            initial_rate: None,
            max_rate: None,
            min_rate: 0.05,
            burst: 1,
            default_window: Duration::from_secs(60),
            adaptive: true,
        }
    }
}

/// Cut to this share of the refused rate on a 429.
const DECREASE: f64 = 0.7;
/// Time constant of the climb back towards the last refused rate.
const APPROACH: Duration = Duration::from_secs(4);
/// Relative growth per second above the last refused rate.
const PROBE_PER_SECOND: f64 = 0.002;
/// A pause's jitter: this share of it, capped by [`PAUSE_JITTER_CAP`].
const PAUSE_JITTER_SHARE: f64 = 0.1;
const PAUSE_JITTER_CAP: Duration = Duration::from_secs(1);
/// Bounds of the growing pause after 429s without `Retry-After`.
const THROTTLE_BASE: Duration = Duration::from_secs(1);
const THROTTLE_CAP: Duration = Duration::from_secs(30);
/// The span over which the actual send rate is measured.
const MEASURE_SPAN: Duration = Duration::from_secs(5);

/// A rate limiter with a pause, learning its rate from what the server says.
#[derive(Clone, Debug)]
pub(crate) struct Limiter {
    rate: Option<f64>,
    max_rate: Option<f64>,
    min_rate: f64,
    burst: u32,
    adaptive: bool,
    default_window: Duration,
    /// GCRA's theoretical arrival time of the next request.
    next_send: Timestamp,
    paused_until: Timestamp,
    pause_reason: WaitReason,
    /// The rate last refused with a 429, when no budget was announced.
    ceiling: Option<f64>,
    last_growth: Timestamp,
    refusals_in_a_row: u32,
    /// True once a response announced a budget; 429 adaptation then defers to the budget.
    announced: bool,
    measure_start: Timestamp,
    measured_sends: u32,
    previous_rate_seen: f64,
}

impl Limiter {
    pub(crate) fn new(config: &PacingConfig) -> Self {
        let rate = match (config.initial_rate, config.max_rate) {
            (Some(initial), Some(max)) => Some(initial.min(max)),
            (initial, max) => initial.or(max),
        };
        Self {
            rate,
            max_rate: config.max_rate,
            min_rate: config.min_rate,
            burst: config.burst.max(1),
            adaptive: config.adaptive,
            default_window: config.default_window,
            next_send: Timestamp::ZERO,
            paused_until: Timestamp::ZERO,
            pause_reason: WaitReason::Pacing,
            ceiling: None,
            last_growth: Timestamp::ZERO,
            refusals_in_a_row: 0,
            announced: false,
            measure_start: Timestamp::ZERO,
            measured_sends: 0,
            previous_rate_seen: 0.0,
        }
    }

    /// A limiter that never holds anything back (a lane nobody has throttled yet).
    pub(crate) fn unlimited(config: &PacingConfig) -> Self {
        Self::new(&PacingConfig {
            initial_rate: None,
            max_rate: None,
            ..config.clone()
        })
    }

    /// The current rate in requests a second, if any.
    pub(crate) fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// When a send may go, and what holds it back until then.
    pub(crate) fn ready_at(&self) -> (Timestamp, WaitReason) {
        let paced = match self.rate {
            Some(rate) => {
                let tolerance = interval(rate) * (self.burst - 1);
                self.next_send - tolerance
            }
            None => Timestamp::ZERO,
        };
        if self.paused_until >= paced {
            (self.paused_until, self.pause_reason)
        } else {
            (paced, WaitReason::Pacing)
        }
    }

    /// How much longer the current pause lasts.
    pub(crate) fn pause_left(&self, now: Timestamp) -> Duration {
        self.paused_until.saturating_since(now)
    }

    pub(crate) fn on_send(&mut self, now: Timestamp) {
        if let Some(rate) = self.rate {
            self.next_send = self.next_send.max(now) + interval(rate);
        }
        if now.saturating_since(self.measure_start) >= MEASURE_SPAN {
            let span = now.saturating_since(self.measure_start).as_secs_f64();
            self.previous_rate_seen = f64::from(self.measured_sends) / span;
            self.measure_start = now;
            self.measured_sends = 0;
        }
        self.measured_sends += 1;
    }

    /// Learns from the rate-limit headers of a response; `in_flight` is how many of our requests
    /// the server may not have counted yet.
    pub(crate) fn observe(&mut self, now: Timestamp, seen: &RateObservation, in_flight: usize) {
        if !self.adaptive {
            return;
        }
        let (Some(remaining), Some(reset)) = (seen.remaining, seen.reset) else {
            if let Some(limit) = seen.limit {
                let window = seen.window.unwrap_or(self.default_window);
                self.announced = true;
                self.set_rate(limit as f64 / window.as_secs_f64().max(1.0));
            }
            return;
        };
        self.announced = true;
        let available = remaining.saturating_sub(in_flight as u64);
        if available == 0 {
            // Half a second past the announced reset absorbs the header's whole-second rounding.
            let until = now + reset + Duration::from_millis(500);
            self.pause(until, WaitReason::RateWindow);
            return;
        }
        let horizon = reset.max(Duration::from_secs(1)).as_secs_f64();
        self.set_rate(available as f64 / horizon);
    }

    /// A 429: pause for `Retry-After` (or a growing backoff), and slow down if nothing announced
    /// the budget.
    pub(crate) fn on_throttle(
        &mut self,
        now: Timestamp,
        retry_after: Option<Duration>,
        rng: &mut Rng,
    ) {
        self.refusals_in_a_row = self.refusals_in_a_row.saturating_add(1);
        match retry_after {
            Some(wait) => {
                let spread = wait.mul_f64(PAUSE_JITTER_SHARE).min(PAUSE_JITTER_CAP);
                let jitter = rng.duration_between(Duration::ZERO, spread);
                self.pause(now + wait + jitter, WaitReason::RetryAfter);
            }
            None => {
                let shift = (self.refusals_in_a_row - 1).min(16);
                let ceiling = THROTTLE_BASE.saturating_mul(1 << shift).min(THROTTLE_CAP);
                let wait = ceiling / 2 + rng.duration_between(Duration::ZERO, ceiling / 2);
                self.pause(now + wait, WaitReason::Throttled);
            }
        }
        if !self.adaptive || self.announced {
            return;
        }
        let refused = self
            .rate
            .unwrap_or(self.previous_rate_seen)
            .max(self.min_rate);
        // Further refusals before a request is accepted again say nothing new about the rate.
        if self.refusals_in_a_row == 1 {
            self.ceiling = Some(refused);
            self.rate = Some((refused * DECREASE).max(self.min_rate));
            self.last_growth = now;
        }
    }

    /// A response that was not a 429: the pace was acceptable; climb carefully.
    pub(crate) fn on_accepted(&mut self, now: Timestamp) {
        self.refusals_in_a_row = 0;
        if !self.adaptive || self.announced {
            return;
        }
        let (Some(rate), Some(ceiling)) = (self.rate, self.ceiling) else {
            return;
        };
        let dt = now.saturating_since(self.last_growth).as_secs_f64();
        self.last_growth = now;
        let grown = if rate < ceiling {
            ceiling - (ceiling - rate) * (-dt / APPROACH.as_secs_f64()).exp()
        } else {
            rate * (1.0 + PROBE_PER_SECOND * dt)
        };
        self.set_rate(grown);
    }

    fn set_rate(&mut self, rate: f64) {
        let capped = self.max_rate.map_or(rate, |max| rate.min(max));
        let rate = capped.max(self.min_rate);
        if let Some(old) = self.rate {
            // Re-anchor the schedule so a faster rate applies now, not after the old interval.
            if rate > old {
                let pending = self.next_send;
                let shorter = interval(rate);
                self.next_send = pending.min(pending - interval(old) + shorter);
            }
        }
        self.rate = Some(rate);
    }

    fn pause(&mut self, until: Timestamp, reason: WaitReason) {
        if until > self.paused_until {
            self.paused_until = until;
            self.pause_reason = reason;
        }
    }
}

fn interval(rate: f64) -> Duration {
    if rate.is_finite() && rate > 0.0 {
        Duration::from_secs_f64((1.0 / rate).min(86_400.0))
    } else {
        Duration::from_secs(86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(initial: Option<f64>) -> PacingConfig {
        PacingConfig {
            initial_rate: initial,
            ..PacingConfig::default()
        }
    }

    #[test]
    fn paces_at_the_configured_rate() {
        let mut limiter = Limiter::new(&config(Some(5.0)));
        let now = Timestamp::from_secs(10);
        assert_eq!(limiter.ready_at().0, Timestamp::ZERO);
        limiter.on_send(now);
        assert_eq!(
            limiter.ready_at(),
            (Timestamp::from_millis(10_200), WaitReason::Pacing)
        );
    }

    #[test]
    fn announced_budget_spreads_over_the_window() {
        let mut limiter = Limiter::new(&config(None));
        let seen = RateObservation {
            limit: Some(300),
            remaining: Some(250),
            reset: Some(Duration::from_secs(50)),
            window: None,
        };
        limiter.observe(Timestamp::from_secs(1), &seen, 0);
        assert_eq!(limiter.rate(), Some(5.0));
        limiter.observe(Timestamp::from_secs(1), &seen, 50);
        assert_eq!(limiter.rate(), Some(4.0));
    }

    #[test]
    fn spent_budget_pauses_until_the_reset() {
        let mut limiter = Limiter::new(&config(None));
        let seen = RateObservation {
            limit: Some(300),
            remaining: Some(2),
            reset: Some(Duration::from_secs(12)),
            window: None,
        };
        limiter.observe(Timestamp::from_secs(48), &seen, 2);
        assert_eq!(
            limiter.ready_at(),
            (Timestamp::from_millis(60_500), WaitReason::RateWindow)
        );
    }

    #[test]
    fn retry_after_pauses_with_bounded_jitter() {
        let mut limiter = Limiter::new(&config(Some(5.0)));
        let mut rng = Rng::from_seed(1);
        limiter.on_throttle(
            Timestamp::from_secs(100),
            Some(Duration::from_secs(3)),
            &mut rng,
        );
        let (at, why) = limiter.ready_at();
        assert_eq!(why, WaitReason::RetryAfter);
        assert!(
            at >= Timestamp::from_secs(103) && at <= Timestamp::from_millis(103_300),
            "{at}"
        );
    }

    #[test]
    fn unannounced_429_cuts_the_rate_then_climbs_back_slowly() {
        let mut limiter = Limiter::new(&config(Some(10.0)));
        let mut rng = Rng::from_seed(1);
        limiter.on_throttle(Timestamp::from_secs(10), None, &mut rng);
        assert_eq!(limiter.rate(), Some(7.0));
        assert_eq!(limiter.ready_at().1, WaitReason::Throttled);

        limiter.on_accepted(Timestamp::from_secs(14));
        let after_one_tau = limiter.rate().unwrap();
        assert!((after_one_tau - (10.0 - 3.0 / std::f64::consts::E)).abs() < 1e-9);

        limiter.on_accepted(Timestamp::from_secs(60));
        let near = limiter.rate().unwrap();
        assert!(near < 10.0 && near > 9.99, "{near}");
        limiter.on_accepted(Timestamp::from_secs(160));
        let beyond = limiter.rate().unwrap();
        assert!(beyond > 9.99 && beyond < 10.0 * 1.21, "{beyond}");
    }

    #[test]
    fn max_rate_caps_what_the_server_announces() {
        let mut limiter = Limiter::new(&PacingConfig {
            max_rate: Some(2.0),
            ..PacingConfig::default()
        });
        let seen = RateObservation {
            limit: Some(300),
            remaining: Some(300),
            reset: Some(Duration::from_secs(60)),
            window: None,
        };
        limiter.observe(Timestamp::ZERO, &seen, 0);
        assert_eq!(limiter.rate(), Some(2.0));
    }

    #[test]
    fn repeated_unannounced_429s_pause_longer() {
        let mut limiter = Limiter::new(&config(Some(10.0)));
        let mut rng = Rng::from_seed(5);
        let mut pauses = Vec::new();
        for _ in 0..5 {
            limiter.on_throttle(Timestamp::ZERO, None, &mut rng);
            pauses.push(limiter.pause_left(Timestamp::ZERO));
        }
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert!(pauses[4] >= Duration::from_secs(8));
    }
}
