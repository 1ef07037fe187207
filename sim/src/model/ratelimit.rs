//! The limiters: fixed windows (Genesys) and a generic cell rate algorithm (Heroku).
//!
//! A limiter is asked first and told after: [`check`](FixedWindow::check) says whether one more
//! request fits, [`commit`](FixedWindow::commit) counts it. The server commits only when every
//! limiter agreed, so a refused request counts against none of them.

use std::collections::HashMap;
use std::time::Duration;

use gcbulk_core::Timestamp;
use http::header::{HeaderName, HeaderValue};
use rand_core::RngCore;

use super::config::{ClientLimit, RateLimitConfig};
use super::wire::{RATELIMIT_ALLOWED, RATELIMIT_COUNT, RATELIMIT_REMAINING, RATELIMIT_RESET};
use super::{Endpoint, ThrottleCause, dice};

/// `limit` requests per window; a window starts with the first request after the last one ended.
#[derive(Clone, Debug)]
pub(crate) struct FixedWindow {
    limit: u32,
    window: Duration,
    start: Option<Timestamp>,
    count: u32,
}

impl FixedWindow {
    pub(crate) fn new(limit: u32, window_secs: u64) -> Self {
        Self {
            limit,
            window: Duration::from_secs(window_secs.max(1)),
            start: None,
            count: 0,
        }
    }

    /// `Err(wait)` when the window is full; `wait` is the time until it resets.
    pub(crate) fn check(&mut self, now: Timestamp) -> Result<(), Duration> {
        self.roll(now);
        if self.count >= self.limit {
            Err(self.reset_in(now))
        } else {
            Ok(())
        }
    }

    pub(crate) fn commit(&mut self, now: Timestamp) {
        self.roll(now);
        self.start.get_or_insert(now);
        self.count += 1;
    }

    /// Requests counted in the current window.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Time until the current window resets; a whole window when none has started.
    pub(crate) fn reset_in(&self, now: Timestamp) -> Duration {
        match self.start {
            Some(start) => (start + self.window).saturating_since(now),
            None => self.window,
        }
    }

    fn roll(&mut self, now: Timestamp) {
        if self.start.is_some_and(|start| now >= start + self.window) {
            self.start = None;
            self.count = 0;
        }
    }
}

/// The generic cell rate algorithm: one request per `interval` on average, bursts up to `burst`.
#[derive(Clone, Debug)]
pub(crate) struct Gcra {
    interval: Duration,
    burst: u32,
    /// The theoretical arrival time: when the bucket would be empty again.
    tat: Timestamp,
}

impl Gcra {
    pub(crate) fn new(limit: u32, period_secs: u64) -> Self {
        let limit = limit.max(1);
        let interval = Duration::from_secs(period_secs.max(1)) / limit;
        Self {
            interval,
            burst: limit,
            tat: Timestamp::ZERO,
        }
    }

    /// `Err(wait)` when the bucket is full; `wait` is the time until one more request fits.
    pub(crate) fn check(&self, now: Timestamp) -> Result<(), Duration> {
        let next_tat = self.tat.max(now) + self.interval;
        let allowed_at = next_tat - self.interval * self.burst;
        if now < allowed_at {
            Err(allowed_at.saturating_since(now))
        } else {
            Ok(())
        }
    }

    pub(crate) fn commit(&mut self, now: Timestamp) {
        self.tat = self.tat.max(now) + self.interval;
    }

    /// How many more requests would fit right now.
    pub(crate) fn remaining(&self, now: Timestamp) -> u32 {
        let used = self.tat.saturating_since(now).as_micros();
        let capacity = (self.interval * self.burst).as_micros();
        let interval = self.interval.as_micros().max(1);
        u32::try_from(capacity.saturating_sub(used) / interval).unwrap_or(u32::MAX)
    }
}

/// Whole seconds, rounded up, at least one: how Genesys states a wait.
pub(crate) fn ceil_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Every limit of the organisation, keyed by the OAuth client that owns each token.
#[derive(Debug)]
pub(crate) struct Limits {
    config: RateLimitConfig,
    clients: HashMap<String, ClientLimiter>,
    /// Keyed by client and the index of the limit in the configuration.
    endpoints: HashMap<(String, usize), FixedWindow>,
    org: Option<FixedWindow>,
    /// Requests admitted so far, all clients together, for the daily limit.
    admitted: u64,
}

/// A request refused with a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) cause: ThrottleCause,
    pub(crate) retry_after: Duration,
}

#[derive(Clone, Debug)]
enum ClientLimiter {
    Window(FixedWindow),
    Gcra(Gcra),
    Unlimited,
}

impl Limits {
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        let org = config
            .org_limit
            .map(|l| FixedWindow::new(l.limit, l.window_secs));
        Self {
            config,
            clients: HashMap::new(),
            endpoints: HashMap::new(),
            org,
            admitted: 0,
        }
    }

    /// Admits the request and counts it everywhere, or refuses it and counts it nowhere.
    ///
    /// The daily limit and storms come first: they refuse whatever the budgets say.
    pub(crate) fn admit(
        &mut self,
        now: Timestamp,
        owner: &str,
        endpoint: Endpoint,
        rng: &mut impl RngCore,
    ) -> Result<(), Refusal> {
        if let Some(daily) = self.config.daily_limit {
            let spent = daily.after_requests.is_some_and(|n| self.admitted >= n);
            let closed = daily.during.is_some_and(|during| during.contains(now));
            if spent || closed {
                let retry_after = Duration::from_secs(daily.retry_after_secs);
                return Err(Refusal {
                    cause: ThrottleCause::Daily,
                    retry_after,
                });
            }
        }

        for storm in self
            .config
            .storms
            .iter()
            .filter(|storm| storm.contains(now))
        {
            if dice::chance(rng, storm.refuse_fraction) {
                let secs =
                    dice::between(rng, storm.retry_after_min_secs, storm.retry_after_max_secs);
                let retry_after = Duration::from_secs(secs);
                return Err(Refusal {
                    cause: ThrottleCause::Storm,
                    retry_after,
                });
            }
        }

        if let Some(org) = &mut self.org {
            org.check(now).map_err(|wait| Refusal {
                cause: ThrottleCause::Org,
                retry_after: wait,
            })?;
        }
        let per_client = self.config.per_client;
        let client = self
            .clients
            .entry(owner.to_owned())
            .or_insert_with(|| ClientLimiter::new(per_client));
        client.check(now).map_err(|wait| Refusal {
            cause: ThrottleCause::Client,
            retry_after: wait,
        })?;

        let mut applicable = Vec::new();
        for (index, limit) in self.config.endpoint_limits.iter().enumerate() {
            if limit.endpoint != endpoint {
                continue;
            }
            let window = self
                .endpoints
                .entry((owner.to_owned(), index))
                .or_insert_with(|| FixedWindow::new(limit.limit, limit.window_secs));
            window.check(now).map_err(|wait| Refusal {
                cause: ThrottleCause::Endpoint,
                retry_after: wait,
            })?;
            applicable.push(index);
        }

        // Every limiter agreed: only now does the request count.
        if let Some(org) = &mut self.org {
            org.commit(now);
        }
        client.commit(now);
        for index in applicable {
            if let Some(window) = self.endpoints.get_mut(&(owner.to_owned(), index)) {
                window.commit(now);
            }
        }
        self.admitted += 1;
        Ok(())
    }

    /// The headers that announce `owner`'s budget, as it stands after this request.
    pub(crate) fn announce(&self, now: Timestamp, owner: &str) -> Vec<(HeaderName, HeaderValue)> {
        let fresh;
        let limiter = match self.clients.get(owner) {
            Some(limiter) => limiter,
            None => {
                fresh = ClientLimiter::new(self.config.per_client);
                &fresh
            }
        };

        match limiter {
            ClientLimiter::Window(window) => vec![
                (RATELIMIT_COUNT, HeaderValue::from(window.count())),
                (RATELIMIT_ALLOWED, HeaderValue::from(window.limit())),
                (
                    RATELIMIT_RESET,
                    HeaderValue::from(ceil_secs(window.reset_in(now))),
                ),
            ],
            ClientLimiter::Gcra(gcra) => {
                vec![(RATELIMIT_REMAINING, HeaderValue::from(gcra.remaining(now)))]
            }
            ClientLimiter::Unlimited => Vec::new(),
        }
    }

    /// The per-client budget in words, for the pre-2021 429 message.
    pub(crate) fn describe(&self) -> Option<(u32, u64)> {
        match self.config.per_client {
            ClientLimit::FixedWindow { limit, window_secs } => Some((limit, window_secs)),
            ClientLimit::Gcra { limit, period_secs } => Some((limit, period_secs)),
            ClientLimit::Unlimited => None,
        }
    }
}

impl ClientLimiter {
    fn new(limit: ClientLimit) -> Self {
        match limit {
            ClientLimit::FixedWindow { limit, window_secs } => {
                Self::Window(FixedWindow::new(limit, window_secs))
            }
            ClientLimit::Gcra { limit, period_secs } => Self::Gcra(Gcra::new(limit, period_secs)),
            ClientLimit::Unlimited => Self::Unlimited,
        }
    }

    fn check(&mut self, now: Timestamp) -> Result<(), Duration> {
        match self {
            Self::Window(window) => window.check(now),
            Self::Gcra(gcra) => gcra.check(now),
            Self::Unlimited => Ok(()),
        }
    }

    fn commit(&mut self, now: Timestamp) {
        match self {
            Self::Window(window) => window.commit(now),
            Self::Gcra(gcra) => gcra.commit(now),
            Self::Unlimited => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::model::config::{EndpointLimit, WindowLimit};

    #[test]
    fn a_fixed_window_fills_then_resets_a_window_after_its_first_request() {
        let mut window = FixedWindow::new(2, 60);
        let t0 = Timestamp::from_secs(5);

        window.check(t0).unwrap();
        window.commit(t0);
        window.commit(Timestamp::from_secs(6));
        assert_eq!(
            window.check(Timestamp::from_secs(20)),
            Err(Duration::from_secs(45))
        );

        // At 65 s the window that started at 5 s is over; the next starts at the next request.
        window.check(Timestamp::from_secs(65)).unwrap();
        window.commit(Timestamp::from_secs(70));
        assert_eq!(window.count(), 1);
        assert_eq!(
            window.reset_in(Timestamp::from_secs(70)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let mut gcra = Gcra::new(3, 3);
        let t0 = Timestamp::ZERO;
        for _ in 0..3 {
            gcra.check(t0).unwrap();
            gcra.commit(t0);
        }
        assert_eq!(gcra.remaining(t0), 0);
        assert_eq!(gcra.check(t0), Err(Duration::from_secs(1)));

        let t1 = Timestamp::from_secs(1);
        gcra.check(t1).unwrap();
        gcra.commit(t1);
        assert_eq!(gcra.remaining(Timestamp::from_secs(3)), 2);
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(41_001)), 42);
        assert_eq!(ceil_secs(Duration::from_secs(42)), 42);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }

    #[test]
    fn a_refused_request_counts_against_no_limit() {
        let config = RateLimitConfig {
            per_client: ClientLimit::FixedWindow {
                limit: 5,
                window_secs: 60,
            },
            endpoint_limits: vec![EndpointLimit {
                endpoint: Endpoint::PatchUser,
                limit: 1,
                window_secs: 60,
            }],
            org_limit: Some(WindowLimit {
                limit: 100,
                window_secs: 60,
            }),
            ..RateLimitConfig::default()
        };
        let mut limits = Limits::new(config);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let now = Timestamp::ZERO;

        limits
            .admit(now, "a", Endpoint::PatchUser, &mut rng)
            .unwrap();
        let refusal = limits
            .admit(now, "a", Endpoint::PatchUser, &mut rng)
            .unwrap_err();
        assert_eq!(refusal.cause, ThrottleCause::Endpoint);

        // The refused PATCH did not use the client's budget: 1 of 5, then 2 with a GET.
        let count = |limits: &Limits| limits.announce(now, "a")[0].1.clone();
        assert_eq!(count(&limits), "1");
        limits.admit(now, "a", Endpoint::GetUser, &mut rng).unwrap();
        assert_eq!(count(&limits), "2");

        // Another client has a budget and an endpoint window of its own.
        limits
            .admit(now, "b", Endpoint::PatchUser, &mut rng)
            .unwrap();
    }
}
