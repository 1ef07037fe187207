//! Client-side pacing that learns the server's allowance.
//!
//! Each [`Limiter`] is a GCRA (virtual scheduling) rate limiter with a pause. What sets its rate:
//!
//! 1. **Announced windows.** When responses say how many requests remain in the current window
//!    and when it resets (`inin-ratelimit-*`, `RateLimit`, `X-RateLimit-*`), the limiter keeps the
//!    window's end as tightly as the responses bound it: each says `reset` in whole seconds
//!    rounded up, so the earliest `now + reset` seen in a window is the closest bound that is
//!    never early. The rate becomes `(remaining − our requests in flight) / time to that end`. One
//!    client alone spreads the window's budget evenly over it and spends its last request just
//!    before the end; several clients sharing one budget each slow down as the shared remainder
//!    shrinks, so together they use it all without overshooting. When nothing remains, the
//!    limiter pauses until the end: half a second past it when a single response announced it
//!    (absorbing the header's rounding), 5 ms past it once several responses have bounded it.
//! 2. **Announced remainders without a reset** (a `RateLimit-Remaining` of a GCRA or token-bucket
//!    server): the rate becomes `(remaining − in flight) / 10 s`. The remainder then settles where
//!    the server's refill matches our rate, a few requests above zero, with no 429 and without
//!    knowing the refill rate; clients sharing the budget settle at equal shares.
//! 3. **The last of the work.** When the scheduler's backlog (items queued or backing off) fits
//!    in what the server announced as available, the limiter stops spacing sends (a "sprint"):
//!    the budget is there, and spreading the tail of a job over the rest of a window only makes
//!    it finish later. With nothing announced, it sprints once its rate has gone a whole
//!    `default_window` without a refusal and the backlog is at most a window's worth at that
//!    rate; a refused sprint has found the end of the budget, not a rate, so it pauses (probing
//!    every one to two seconds when there is no `Retry-After`) and goes on unspaced.
//! 4. **429s with a `Retry-After` and nothing announced** (an endpoint with a limit of its own,
//!    or a storm): the limiter pauses as asked and does not guess a rate. When two such 429s end
//!    their waits a whole number of windows apart (`default_window`), the limit is a fixed window,
//!    and the requests accepted since the refusing window began are its size: the rate becomes
//!    that count per window, a fraction under, so sends spread over the window instead of
//!    bursting into a 429 at its end. A rate learned this way is the limit and is not probed
//!    beyond; should the limit fall, the next pair of refusals teaches it again. Random refusals
//!    (a storm) do not end their waits a window apart, so they teach nothing.
//! 5. **429s with nothing announced and no `Retry-After`.** The rate is cut to 70% of the rate that
//!    was refused, which is remembered as the ceiling; it then climbs back to within 1% of that
//!    ceiling quickly (time constant 4 s) and beyond it only slowly (0.2% a second), so refusals
//!    stay rare instead of recurring every cycle as with plain additive increase. Meanwhile it
//!    pauses for an equal-jitter backoff that grows while refusals continue, and then sends one
//!    request alone to probe: nothing else goes until it is answered.
//! 6. **Retry-After.** A 429 pauses the limiter until the time asked plus a small jitter (up to
//!    10% of the wait, at most one second), so clients sharing a budget do not return in step.
//!
//! The scheduler keeps one limiter for the whole client and one per lane (an endpoint with limits
//! of its own). A 429 that arrives while the announced budget still has room is blamed on the
//! lane, and so is one with nothing announced, unless the client is sprinting; otherwise it is
//! blamed on the whole client.

use std::collections::VecDeque;
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
const SPRINT_THROTTLE_CAP: Duration = Duration::from_secs(2);
/// The span over which the actual send rate is measured.
const MEASURE_SPAN: Duration = Duration::from_secs(5);
/// Past a window's end, once one response announced it (the header is rounded to seconds).
const WINDOW_MARGIN: Duration = Duration::from_millis(500);
/// Past a window's end, once several responses bounded it.
const TIGHT_WINDOW_MARGIN: Duration = Duration::from_millis(5);
/// An announced end this much later than the one known belongs to the next window.
const NEXT_WINDOW: Duration = Duration::from_secs(2);
/// The shortest time over which an announced budget is spread.
const MIN_HORIZON: Duration = Duration::from_millis(50);
/// An announced remainder without a reset is spent over this long.
const REMAINDER_HORIZON: Duration = Duration::from_secs(10);
/// A rate learned from a fixed window's refusals is this share of the window's size.
const LEARNED_SHARE: f64 = 0.998;
/// Within this share of the ceiling, the climb back is over and probing begins.
const NEAR_CEILING: f64 = 0.99;

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
    /// The announced window's end, as tightly as the responses bound it.
    window_end: Option<Timestamp>,
    /// How many responses bounded it.
    window_bounds: u32,
    /// Items waiting to be sent (queued or backing off), when the scheduler says.
    backlog: Option<usize>,
    /// When requests were accepted, over the last `default_window`.
    accepted: VecDeque<Timestamp>,
    /// When the wait of the last unannounced 429 with `Retry-After` ended.
    refused_window_end: Option<Timestamp>,
    /// The ceiling was learned from a fixed window's size, not from a refused rate.
    learned: bool,
    /// Sending unspaced: the backlog fits in what the server allows.
    sprinting: bool,
    /// Since when sends have gone without a refusal.
    quiet_since: Option<Timestamp>,
    /// The last refusal said nothing about when to come back.
    blind: bool,
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
            window_end: None,
            window_bounds: 0,
            backlog: None,
            accepted: VecDeque::new(),
            refused_window_end: None,
            learned: false,
            sprinting: false,
            quiet_since: None,
            blind: false,
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

    /// Whether it sends unspaced because the backlog fits in what the server allows.
    pub(crate) fn is_sprinting(&self) -> bool {
        self.sprinting
    }

    /// Whether the next send is a probe: after a refusal that gave no `Retry-After`, one request
    /// finds out whether the server accepts again, and nothing else goes until it is answered.
    pub(crate) fn is_probing(&self) -> bool {
        self.blind && self.refusals_in_a_row > 0
    }

    /// How much longer the current pause lasts.
    pub(crate) fn pause_left(&self, now: Timestamp) -> Duration {
        self.paused_until.saturating_since(now)
    }

    pub(crate) fn on_send(&mut self, now: Timestamp) {
        self.quiet_since.get_or_insert(now);
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

    /// Tells the limiter how many items wait to be sent, so it can stop spacing the last of them.
    pub(crate) fn set_backlog(&mut self, backlog: usize) {
        self.backlog = Some(backlog);
    }

    /// Learns from the rate-limit headers of a response; `in_flight` is how many of our requests
    /// the server may not have counted yet.
    pub(crate) fn observe(&mut self, now: Timestamp, seen: &RateObservation, in_flight: usize) {
        if !self.adaptive {
            return;
        }
        let available = seen
            .remaining
            .map(|remaining| remaining.saturating_sub(in_flight as u64));
        match (available, seen.reset) {
            (Some(available), Some(reset)) => self.observe_window(now, available, reset),
            (Some(available), None) => {
                self.announced = true;
                if self.backlog_fits(available) {
                    self.sprint();
                } else {
                    let horizon = REMAINDER_HORIZON.as_secs_f64();
                    self.set_rate(available.max(1) as f64 / horizon);
                }
            }
            (None, _) => {
                if let Some(limit) = seen.limit {
                    let window = seen.window.unwrap_or(self.default_window);
                    self.announced = true;
                    self.set_rate(limit as f64 / window.as_secs_f64().max(1.0));
                }
            }
        }
    }

    fn observe_window(&mut self, now: Timestamp, available: u64, reset: Duration) {
        self.announced = true;
        let end = now + reset;
        let end = match self.window_end {
            Some(known) if end <= known + NEXT_WINDOW => {
                self.window_bounds += 1;
                known.min(end)
            }
            _ => {
                self.window_bounds = 1;
                end
            }
        };
        self.window_end = Some(end);

        if available == 0 {
            let margin = if self.window_bounds > 1 {
                TIGHT_WINDOW_MARGIN
            } else {
                WINDOW_MARGIN
            };
            self.pause(end + margin, WaitReason::RateWindow);
            return;
        }
        if self.backlog_fits(available) {
            self.sprint();
            return;
        }
        let horizon = end.saturating_since(now).max(MIN_HORIZON).as_secs_f64();
        self.set_rate(available as f64 / horizon);
    }

    fn backlog_fits(&self, available: u64) -> bool {
        self.backlog
            .is_some_and(|backlog| backlog as u64 <= available)
    }

    /// No spacing (or only the configured cap): what is left fits in the budget.
    fn sprint(&mut self) {
        self.rate = self.max_rate;
        self.sprinting = true;
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
        self.quiet_since = Some(now);
        self.blind = retry_after.is_none();
        match retry_after {
            Some(wait) => {
                let spread = wait.mul_f64(PAUSE_JITTER_SHARE).min(PAUSE_JITTER_CAP);
                let jitter = rng.duration_between(Duration::ZERO, spread);
                self.pause(now + wait + jitter, WaitReason::RetryAfter);
            }
            None => {
                let shift = (self.refusals_in_a_row - 1).min(16);
                // A refused sprint probes more often: the budget comes back all at once.
                let cap = if self.sprinting {
                    SPRINT_THROTTLE_CAP
                } else {
                    THROTTLE_CAP
                };
                let ceiling = THROTTLE_BASE.saturating_mul(1 << shift).min(cap);
                let wait = ceiling / 2 + rng.duration_between(Duration::ZERO, ceiling / 2);
                self.pause(now + wait, WaitReason::Throttled);
            }
        }
        // A sprint refused has found the end of the budget, not a rate: it resumes after the wait.
        if !self.adaptive || self.announced || self.sprinting {
            return;
        }
        if let Some(wait) = retry_after {
            self.learn_window(now, wait);
            return;
        }
        let refused = self
            .rate
            .unwrap_or(self.previous_rate_seen)
            .max(self.min_rate);
        // Further refusals before a request is accepted again say nothing new about the rate.
        if self.refusals_in_a_row == 1 {
            self.ceiling = Some(refused);
            self.learned = false;
            self.rate = Some((refused * DECREASE).max(self.min_rate));
            self.last_growth = now;
        }
    }

    /// An unannounced 429 whose wait ends a whole number of windows after the last one's is a
    /// fixed window that is full: what it accepted is its size.
    fn learn_window(&mut self, now: Timestamp, wait: Duration) {
        let window = self.default_window;
        if wait > window {
            return;
        }
        let end = now + wait;
        let Some(previous) = self.refused_window_end else {
            self.refused_window_end = Some(end);
            return;
        };
        let apart = end.saturating_since(previous).as_secs_f64();
        if apart < NEXT_WINDOW.as_secs_f64() {
            // Another refusal of the same window, by a request that was in flight.
            return;
        }
        self.refused_window_end = Some(end);

        let windows = (apart / window.as_secs_f64()).round();
        let tolerance = 1.0 + 0.5 * windows;
        if windows < 1.0 || (apart - windows * window.as_secs_f64()).abs() > tolerance {
            return;
        }
        // After the last refusal we waited for its window to end, so the refusing window began
        // with our first request after that: everything accepted since is in it. Several windows
        // later, the start is known only to within the header's rounding, so the count can only
        // fall short, and only raises what was learned.
        let since = if windows == 1.0 {
            previous
        } else {
            end - window
        };
        let size = self.accepted.iter().filter(|at| **at > since).count();
        let mut rate = size as f64 / window.as_secs_f64() * LEARNED_SHARE;
        if windows > 1.0
            && self.learned
            && let Some(ceiling) = self.ceiling
        {
            rate = rate.max(ceiling);
        }
        if rate <= 0.0 {
            return;
        }
        self.ceiling = Some(rate);
        self.learned = true;
        self.last_growth = now;
        self.rate = Some(
            self.rate
                .map_or(rate, |current| current.min(rate))
                .max(self.min_rate),
        );
    }

    /// A response that was not a 429: the pace was acceptable; climb carefully.
    pub(crate) fn on_accepted(&mut self, now: Timestamp) {
        self.refusals_in_a_row = 0;
        if !self.adaptive || self.announced {
            return;
        }
        self.accepted.push_back(now);
        while let Some(&first) = self.accepted.front() {
            if now.saturating_since(first) <= self.default_window + NEXT_WINDOW {
                break;
            }
            self.accepted.pop_front();
        }
        if let Some(rate) = self.rate
            && self
                .quiet_since
                .is_some_and(|since| now.saturating_since(since) >= self.default_window)
            && self
                .backlog
                .is_some_and(|backlog| backlog as f64 <= rate * self.default_window.as_secs_f64())
        {
            // A window's worth of work is left at a rate that has gone a whole window without a
            // refusal: send it as fast as the server takes it, pausing only when it refuses.
            self.sprint();
            return;
        }
        let (Some(rate), Some(ceiling)) = (self.rate, self.ceiling) else {
            return;
        };
        let dt = now.saturating_since(self.last_growth).as_secs_f64();
        self.last_growth = now;
        // The climb back is asymptotic: close enough to the ceiling, probing takes over. A rate
        // learned from a fixed window's size is not probed: it is the limit.
        let grown = if rate < ceiling * NEAR_CEILING {
            ceiling - (ceiling - rate) * (-dt / APPROACH.as_secs_f64()).exp()
        } else if self.learned {
            return;
        } else {
            rate * (1.0 + PROBE_PER_SECOND * dt)
        };
        self.set_rate(grown);
    }

    fn set_rate(&mut self, rate: f64) {
        self.sprinting = false;
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

    fn window(remaining: u64, reset_secs: u64) -> RateObservation {
        RateObservation {
            limit: Some(300),
            remaining: Some(remaining),
            reset: Some(Duration::from_secs(reset_secs)),
            window: None,
        }
    }

    #[test]
    fn the_window_end_tightens_to_the_earliest_bound() {
        let mut limiter = Limiter::new(&config(None));
        limiter.set_backlog(10_000);
        // The true end is 60.2 s: at 10.3 s "50" is rounded up from 49.9, at 10.9 s from 49.3.
        limiter.observe(Timestamp::from_millis(10_300), &window(200, 50), 0);
        limiter.observe(Timestamp::from_millis(10_900), &window(199, 50), 0);
        assert_eq!(limiter.window_end, Some(Timestamp::from_millis(60_300)));

        // Spent: wait until just past the tightest bound, not half a second past the last one.
        limiter.observe(Timestamp::from_secs(59), &window(0, 2), 0);
        assert_eq!(
            limiter.ready_at(),
            (Timestamp::from_millis(60_305), WaitReason::RateWindow)
        );

        // The next window's first answer starts a new bound.
        limiter.observe(Timestamp::from_millis(60_500), &window(299, 60), 0);
        assert_eq!(limiter.window_end, Some(Timestamp::from_millis(120_500)));
    }

    #[test]
    fn the_last_of_the_work_goes_unspaced_when_the_budget_covers_it() {
        let mut limiter = Limiter::new(&config(Some(5.0)));
        limiter.set_backlog(40);
        limiter.observe(Timestamp::from_secs(1), &window(100, 30), 0);
        assert_eq!(limiter.rate(), None);
        assert!(limiter.is_sprinting());

        // More work than the budget: paced again, over what is left of the window (to 31 s).
        limiter.set_backlog(400);
        limiter.observe(Timestamp::from_secs(2), &window(90, 30), 0);
        assert_eq!(limiter.rate(), Some(90.0 / 29.0));
        assert!(!limiter.is_sprinting());
    }

    #[test]
    fn a_remainder_without_a_reset_is_spent_over_ten_seconds() {
        let mut limiter = Limiter::new(&config(None));
        limiter.set_backlog(1000);
        let seen = RateObservation {
            remaining: Some(52),
            ..RateObservation::default()
        };
        limiter.observe(Timestamp::ZERO, &seen, 2);
        assert_eq!(limiter.rate(), Some(5.0));
    }

    /// Accepts `count` requests evenly from `from` over `span`.
    fn accept(limiter: &mut Limiter, from: Timestamp, span: Duration, count: u32) {
        for i in 0..count {
            let at = from + span.mul_f64(f64::from(i) / f64::from(count));
            limiter.on_send(at);
            limiter.on_accepted(at);
        }
    }

    #[test]
    fn refusals_a_window_apart_teach_the_window_size() {
        let mut limiter = Limiter::unlimited(&config(None));
        let mut rng = Rng::from_seed(2);
        accept(&mut limiter, Timestamp::ZERO, Duration::from_secs(20), 100);
        // Full after 20 s: the window ends 40 s later.
        limiter.on_throttle(
            Timestamp::from_secs(20),
            Some(Duration::from_secs(40)),
            &mut rng,
        );
        assert_eq!(limiter.rate(), None, "one refusal teaches nothing yet");

        accept(
            &mut limiter,
            Timestamp::from_secs(61),
            Duration::from_secs(20),
            100,
        );
        limiter.on_throttle(
            Timestamp::from_secs(81),
            Some(Duration::from_secs(40)),
            &mut rng,
        );
        let learned = limiter.rate().unwrap();
        assert!(
            (learned - 100.0 / 60.0 * LEARNED_SHARE).abs() < 1e-9,
            "{learned}"
        );

        // It is the limit: no probing beyond it.
        limiter.on_accepted(Timestamp::from_secs(300));
        assert_eq!(limiter.rate(), Some(learned));
    }

    #[test]
    fn random_refusals_teach_nothing() {
        let mut limiter = Limiter::unlimited(&config(None));
        let mut rng = Rng::from_seed(3);
        let mut now = Timestamp::ZERO;
        for wait in [3, 1, 5, 2, 4, 1, 3, 5, 2, 2, 4, 1, 3, 5] {
            accept(&mut limiter, now, Duration::from_secs(1), 2);
            limiter.on_throttle(
                now + Duration::from_secs(1),
                Some(Duration::from_secs(wait)),
                &mut rng,
            );
            now = now + Duration::from_secs(wait + 2);
        }
        assert_eq!(limiter.rate(), None);
    }

    #[test]
    fn after_a_refusal_without_retry_after_the_next_send_is_a_probe() {
        let mut limiter = Limiter::new(&config(Some(10.0)));
        let mut rng = Rng::from_seed(4);
        limiter.on_throttle(Timestamp::ZERO, Some(Duration::from_secs(1)), &mut rng);
        assert!(
            !limiter.is_probing(),
            "a Retry-After says when to come back"
        );
        limiter.on_throttle(Timestamp::ZERO, None, &mut rng);
        assert!(limiter.is_probing());
        limiter.on_accepted(Timestamp::from_secs(2));
        assert!(!limiter.is_probing());
    }
}
