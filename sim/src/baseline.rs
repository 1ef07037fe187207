//! The retry and pacing strategies people use today, each rebuilt from its published description,
//! to run side by side with gcbulk on exactly the same work.
//!
//! Every baseline runs gcbulk's own Genesys workflow ([`UserUpdate`]: token, batched reads, PATCH
//! with version, re-read on a conflict), so only retry and pacing differ. The workflow is set up as
//! a transparent source of requests (no pacing, no retries of its own, everything at once) and
//! wrapped in [`Workers`]: a pool of worker threads, each taking the next request, sending it and
//! retrying it as its [`Policy`] says, then resting before the next. That is how the scripts and
//! SDK-based tools below behave; the scheduler's own handling of a 429 (a pause of the whole
//! client) is gcbulk's, so no baseline could be expressed as a scheduler configuration alone.
//!
//! A request the policy gives up on reaches the workflow as a 503, which the workflow (allowed a
//! single attempt) reports as given up; the row can then be resumed.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::change::ChangeRow;
use gcbulk_core::genesys::{RowReport, UserUpdate, WorkflowConfig};
use gcbulk_core::rng::Rng;
use gcbulk_core::sched::{
    self, AttemptId, HandleError, Jitter, PacingConfig, TransportError, WaitReason,
    rate_observation,
};
use gcbulk_core::{Action, Machine, Send, Timestamp};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::model::ClientLimit;

/// A worker's answer: what came back for the request it sent.
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// An HTTP response.
    Response(&'a Response<Bytes>),
    /// The transport failed.
    Transport(&'a TransportError),
}

impl Answer<'_> {
    fn status(&self) -> Option<u16> {
        match self {
            Self::Response(response) => Some(response.status().as_u16()),
            Self::Transport(_) => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Response(response) => match sched::retry_after(response.headers()) {
                sched::RetryAfter::Wait(wait) => Some(wait),
                _ => None,
            },
            Self::Transport(_) => None,
        }
    }
}

/// What a worker does with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hand it to the workflow.
    Final,
    /// Send the same request again after this long.
    Retry(Duration),
    /// Stop trying: the row is given up.
    GiveUp,
}

/// A request's history so far, as a policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Tries {
    /// Tries made, the one just answered included (1 after the first answer).
    pub made: u32,
    /// When the first try was sent.
    pub first_sent: Timestamp,
}

/// A retry policy, and any pacing a client applies of its own.
pub trait Policy: fmt::Debug {
    /// Every answer a worker receives, successes included.
    fn decide(
        &mut self,
        now: Timestamp,
        tries: Tries,
        answer: Answer<'_>,
        rng: &mut Rng,
    ) -> Decision;

    /// How long a worker rests after finishing a request, before taking the next.
    fn rest(&mut self, _now: Timestamp, _rng: &mut Rng) -> Duration {
        Duration::ZERO
    }

    /// A client-side rate limiter: `Ok` takes a send permit now, `Err(at)` says when one frees.
    fn admit(&mut self, _now: Timestamp) -> Result<(), Timestamp> {
        Ok(())
    }
}

/// Which answers a [`Rules`] policy retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryOn {
    /// 429.
    pub throttled: bool,
    /// 502, 503 and 504.
    pub unavailable: bool,
    /// 500 as well.
    pub internal_error: bool,
    /// Connection failures.
    pub transport: bool,
}

/// How long a [`Rules`] policy waits before retry number `n` (0 for the first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delay {
    /// `base·2ⁿ` capped, spread as the jitter says (gcbulk's own [`sched::Backoff`]).
    Exponential(sched::Backoff),
    /// Always the same.
    Fixed(Duration),
    /// The Genesys Java SDK's steps for server errors: 3 s for five retries, 9 s for five
    /// more, 27 s after that.
    Steps,
}

/// How a [`Rules`] policy treats `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfterUse {
    /// It does not read it.
    Ignore,
    /// It waits what it says on a 429, else its own delay.
    OnThrottle,
    /// It waits what it says on a 429, or this long when it says nothing.
    OnThrottleOr(Duration),
    /// It waits what it says on a 429 or a 503, else its own delay (go-retryablehttp).
    OnThrottleAndUnavailable,
}

/// A retry policy made of the usual parts: what is retried, how long to wait, how often.
#[derive(Clone, Debug)]
pub struct Rules {
    /// What is retried; everything else goes to the workflow as it is.
    pub retry_on: RetryOn,
    /// Retries allowed per request.
    pub max_retries: u32,
    /// The wait before each retry of a 429.
    pub throttle_delay: Delay,
    /// The wait before each retry of anything else.
    pub error_delay: Delay,
    /// Whether and when `Retry-After` replaces the delay.
    pub retry_after: RetryAfterUse,
    /// A `Retry-After` longer than this gives up instead (the SDKs' 180 s).
    pub give_up_above: Option<Duration>,
    /// Retrying stops once the next wait would end this long after the first try.
    pub max_elapsed: Option<Duration>,
}

impl Rules {
    fn delay(&self, delay: &Delay, retry: u32, rng: &mut Rng) -> Duration {
        match delay {
            Delay::Exponential(backoff) => backoff.delay(retry, Duration::ZERO, rng),
            Delay::Fixed(wait) => *wait,
            Delay::Steps => Duration::from_secs(match retry {
                0..5 => 3,
                5..10 => 9,
                _ => 27,
            }),
        }
    }
}

impl Policy for Rules {
    fn decide(
        &mut self,
        now: Timestamp,
        tries: Tries,
        answer: Answer<'_>,
        rng: &mut Rng,
    ) -> Decision {
        let status = answer.status();
        let retryable = match status {
            None => self.retry_on.transport,
            Some(429) => self.retry_on.throttled,
            Some(502..=504) => self.retry_on.unavailable,
            Some(500) => self.retry_on.internal_error,
            Some(_) => false,
        };
        if !retryable {
            return Decision::Final;
        }
        if tries.made > self.max_retries {
            return Decision::GiveUp;
        }

        let retry = tries.made - 1;
        let asked = match (self.retry_after, status) {
            (RetryAfterUse::Ignore, _) => None,
            (RetryAfterUse::OnThrottle, Some(429)) => answer.retry_after(),
            (RetryAfterUse::OnThrottleOr(default), Some(429)) => {
                Some(answer.retry_after().unwrap_or(default))
            }
            (RetryAfterUse::OnThrottleAndUnavailable, Some(429 | 503)) => answer.retry_after(),
            _ => None,
        };
        if let (Some(asked), Some(limit)) = (asked, self.give_up_above)
            && asked > limit
        {
            return Decision::GiveUp;
        }
        let own = if status == Some(429) {
            &self.throttle_delay
        } else {
            &self.error_delay
        };
        let wait = asked.unwrap_or_else(|| self.delay(own, retry, rng));
        if let Some(limit) = self.max_elapsed
            && (now + wait).saturating_since(tries.first_sent) > limit
        {
            return Decision::GiveUp;
        }
        Decision::Retry(wait)
    }
}

/// The retry quota of the AWS SDKs' standard mode: 500 tokens, a retry costs 5 (10 after a
/// timeout), a success refunds what its retries cost or earns one.
#[derive(Clone, Debug)]
struct RetryQuota {
    tokens: u32,
}

impl RetryQuota {
    const CAPACITY: u32 = 500;
    const COST: u32 = 5;
    const TIMEOUT_COST: u32 = 10;

    fn try_spend(&mut self, cost: u32) -> bool {
        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }

    fn on_success(&mut self, retried_cost: u32) {
        let refund = if retried_cost > 0 { retried_cost } else { 1 };
        self.tokens = (self.tokens + refund).min(Self::CAPACITY);
    }
}

/// The AWS SDKs' standard retry mode, and with `adaptive` its client-side rate limiter.
///
/// From the AWS SDKs and Tools Reference Guide ("Retry behavior") and botocore's
/// `retries/standard.py` and `retries/adaptive.py`: at most 3 attempts; a retry waits
/// `U(0, 1) · min(2ⁿ s, 20 s)`; 429, 500, 502, 503, 504 and connection errors are retried while
/// the retry quota lasts; `Retry-After` is not read. Adaptive mode adds a token bucket whose fill
/// rate follows CUBIC: on a throttle it drops to 0.7 of the measured send rate, then grows back as
/// `0.4·(t − K)³ + W_max`, never above twice the measured rate; it is switched on by the first
/// throttle.
#[derive(Debug)]
pub struct Aws {
    quota: RetryQuota,
    /// Adaptive mode's client-side rate limiter.
    limiter: Option<Cubic>,
}

impl Aws {
    /// Standard mode.
    pub fn standard() -> Self {
        Self {
            quota: RetryQuota {
                tokens: RetryQuota::CAPACITY,
            },
            limiter: None,
        }
    }

    /// Adaptive mode.
    pub fn adaptive() -> Self {
        Self {
            limiter: Some(Cubic::new()),
            ..Self::standard()
        }
    }
}

impl Policy for Aws {
    fn decide(
        &mut self,
        now: Timestamp,
        tries: Tries,
        answer: Answer<'_>,
        rng: &mut Rng,
    ) -> Decision {
        let status = answer.status();
        if let Some(limiter) = &mut self.limiter {
            limiter.on_response(now, status == Some(429));
        }
        let retryable = matches!(status, None | Some(429 | 500 | 502 | 503 | 504));
        if !retryable {
            if status.is_some_and(|s| s < 500) {
                let spent = (tries.made - 1) * RetryQuota::COST;
                self.quota.on_success(spent);
            }
            return Decision::Final;
        }
        if tries.made >= 3 {
            return Decision::GiveUp;
        }
        let cost = match answer {
            Answer::Transport(TransportError::TimedOut) => RetryQuota::TIMEOUT_COST,
            _ => RetryQuota::COST,
        };
        if !self.quota.try_spend(cost) {
            return Decision::GiveUp;
        }
        let ceiling = Duration::from_secs(1u64 << (tries.made - 1).min(5)).min(MAX_AWS_BACKOFF);
        Decision::Retry(ceiling.mul_f64(rng.unit()))
    }

    fn admit(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        match &mut self.limiter {
            Some(limiter) => limiter.acquire(now),
            None => Ok(()),
        }
    }
}

const MAX_AWS_BACKOFF: Duration = Duration::from_secs(20);

/// botocore's adaptive client rate limiter: a token bucket with a CUBIC fill rate.
#[derive(Debug)]
struct Cubic {
    enabled: bool,
    // The token bucket.
    fill_rate: f64,
    capacity: f64,
    tokens: f64,
    last_refill: Option<Timestamp>,
    // The rate clocker: sends per half-second bucket, smoothed.
    measured_rate: f64,
    bucket: f64,
    count: f64,
    // CUBIC.
    last_max_rate: f64,
    last_failure: f64,
    k: f64,
}

impl Cubic {
    const MIN_RATE: f64 = 0.5;
    const SMOOTHING: f64 = 0.8;
    const BUCKET: f64 = 0.5;
    const SCALE: f64 = 0.4;
    const BETA: f64 = 0.7;
    const MAX_ADJUST: f64 = 2.0;

    fn new() -> Self {
        Self {
            enabled: false,
            fill_rate: Self::MIN_RATE,
            capacity: 1.0,
            tokens: 0.0,
            last_refill: None,
            measured_rate: 0.0,
            bucket: 0.0,
            count: 0.0,
            last_max_rate: Self::MIN_RATE,
            last_failure: 0.0,
            k: 0.0,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        if let Some(last) = self.last_refill {
            let dt = now.saturating_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.fill_rate).min(self.capacity);
        }
        self.last_refill = Some(now);
    }

    fn set_max_rate(&mut self, now: Timestamp, rate: f64) {
        self.refill(now);
        self.fill_rate = rate.max(Self::MIN_RATE);
        self.capacity = rate.max(1.0);
        self.tokens = self.tokens.min(self.capacity);
    }

    fn acquire(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        if !self.enabled {
            return Ok(());
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        // Whole microseconds, rounded up: a wait that rounds to nothing would never end.
        let wait = ((1.0 - self.tokens) / self.fill_rate * 1e6).ceil().max(1.0);
        Err(now + Duration::from_micros(wait as u64))
    }

    fn on_response(&mut self, now: Timestamp, throttled: bool) {
        let t = now.as_secs_f64();
        let bucket = (t / Self::BUCKET).floor() * Self::BUCKET;
        self.count += 1.0;
        if bucket > self.bucket {
            let rate = self.count / (bucket - self.bucket);
            self.measured_rate =
                rate * Self::SMOOTHING + self.measured_rate * (1.0 - Self::SMOOTHING);
            self.count = 0.0;
            self.bucket = bucket;
        }

        let new_rate = if throttled {
            let rate = if self.enabled {
                self.measured_rate.min(self.fill_rate)
            } else {
                self.measured_rate
            };
            self.last_max_rate = rate;
            self.k = (rate * (1.0 - Self::BETA) / Self::SCALE).cbrt();
            self.last_failure = t;
            self.enabled = true;
            rate * Self::BETA
        } else {
            let dt = t - self.last_failure;
            Self::SCALE * (dt - self.k).powi(3) + self.last_max_rate
        };
        let rate = new_rate.min(Self::MAX_ADJUST * self.measured_rate);
        self.set_max_rate(now, rate);
    }
}

/// The rate_throttle_client strategies (zombocom/rate_throttle_client, "Writing a rate limited
/// API client"), from their published description: a client sleeps before each request; a 429
/// is retried until it succeeds. The client is told the limit it works under (4,500 an hour for
/// Heroku's API); `m` below is one request's share of the limit's period (0.8 s at 4,500 an
/// hour).
///
/// - `ExponentialBackoff`: no sleep between requests; the n-th retry of a request waits
///   `m · 1.2ⁿ⁻¹`.
/// - The others share one sleep value per process: a 429 multiplies it by 1.2 (from `m` when it
///   was zero); a success decreases it by a constant `0.35·m` (`GradualDecrease`), by 1/200 of
///   itself (`ProportionalDecrease`), or by the share of itself that `8 · RateLimit-Remaining`
///   is of the limit (`ProportionalRemainingDecrease`, the published winner).
///
/// Every sleep adds up to 10% jitter. The description fixes the multiplicative increase but not
/// the three decrease constants: those were calibrated on [`crate::experiment`] against the
/// published retry rates (41%, 3.7%, 3.1%). Plain exponential backoff has no such constant and
/// reproduces its published 80% as it is.
#[derive(Clone, Debug)]
pub struct Throttle {
    strategy: ThrottleStrategy,
    /// One request's share of the limit's period, in seconds.
    min_sleep: f64,
    /// The limit the client is told to expect.
    limit: f64,
    sleep: f64,
}

/// The rate_throttle_client strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleStrategy {
    /// Plain exponential backoff.
    ExponentialBackoff,
    /// Exponential increase, gradual (constant) decrease.
    GradualDecrease,
    /// Exponential increase, proportional decrease.
    ProportionalDecrease,
    /// Exponential increase, decrease proportional to the remaining capacity.
    ProportionalRemainingDecrease,
}

impl ThrottleStrategy {
    /// Every strategy, in the order the published table lists them.
    pub const ALL: [Self; 4] = [
        Self::ExponentialBackoff,
        Self::GradualDecrease,
        Self::ProportionalDecrease,
        Self::ProportionalRemainingDecrease,
    ];

    /// The published name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ExponentialBackoff => "ExponentialBackoff",
            Self::GradualDecrease => "ExponentialIncreaseGradualDecrease",
            Self::ProportionalDecrease => "ExponentialIncreaseProportionalDecrease",
            Self::ProportionalRemainingDecrease => {
                "ExponentialIncreaseProportionalRemainingDecrease"
            }
        }
    }
}

impl Throttle {
    const MULTIPLIER: f64 = 1.2;
    /// The gradual decrease takes this share of `m` off the sleep.
    const GRADUAL_SHARE: f64 = 0.35;
    /// The proportional decrease takes a 1/`DIVISOR` share of the sleep.
    const DIVISOR: f64 = 200.0;
    /// The remaining-proportional decrease takes `REMAINING_WEIGHT · remaining / limit` of it.
    const REMAINING_WEIGHT: f64 = 8.0;

    /// A client told to expect `limit` requests per `period`, with a fresh (zero) sleep.
    pub fn new(strategy: ThrottleStrategy, limit: u32, period: Duration) -> Self {
        let limit = f64::from(limit.max(1));
        Self {
            strategy,
            min_sleep: period.as_secs_f64() / limit,
            limit,
            sleep: 0.0,
        }
    }

    /// The sleep before the next request, in seconds (without jitter).
    pub fn sleep(&self) -> f64 {
        self.sleep
    }

    fn jittered(value: f64, rng: &mut Rng) -> Duration {
        let value = value.clamp(0.0, 86_400.0);
        Duration::from_secs_f64(value * (1.0 + 0.1 * rng.unit()))
    }
}

impl Policy for Throttle {
    fn decide(
        &mut self,
        _now: Timestamp,
        tries: Tries,
        answer: Answer<'_>,
        rng: &mut Rng,
    ) -> Decision {
        let Answer::Response(response) = answer else {
            return Decision::Final;
        };
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            if self.strategy == ThrottleStrategy::ExponentialBackoff {
                let exponent = f64::from(tries.made.saturating_sub(1).min(60));
                let wait = self.min_sleep * Self::MULTIPLIER.powf(exponent);
                return Decision::Retry(Self::jittered(wait, rng));
            }
            self.sleep = (self.sleep * Self::MULTIPLIER).max(self.min_sleep);
            return Decision::Retry(Self::jittered(self.sleep, rng));
        }
        let decrease = match self.strategy {
            ThrottleStrategy::ExponentialBackoff => 0.0,
            ThrottleStrategy::GradualDecrease => self.min_sleep * Self::GRADUAL_SHARE,
            ThrottleStrategy::ProportionalDecrease => self.sleep / Self::DIVISOR,
            ThrottleStrategy::ProportionalRemainingDecrease => {
                // Without the header the published client reads zero: no decrease.
                let remaining = rate_observation(response.headers()).remaining.unwrap_or(0);
                let share = Self::REMAINING_WEIGHT * remaining as f64 / self.limit;
                self.sleep * share.min(1.0)
            }
        };
        self.sleep = (self.sleep - decrease).max(0.0);
        Decision::Final
    }

    fn rest(&mut self, _now: Timestamp, rng: &mut Rng) -> Duration {
        Self::jittered(self.sleep, rng)
    }
}

/// A request a worker holds: the workflow's attempt, re-sent until the policy is satisfied.
#[derive(Debug)]
struct Job {
    attempt: AttemptId,
    request: Request<Bytes>,
    timeout: Duration,
    tries: u32,
    first_sent: Option<Timestamp>,
    /// Reading the user first, as the seed script does before each PATCH.
    reading: bool,
}

#[derive(Debug)]
enum Slot {
    Free { at: Timestamp },
    InFlight(Job),
    Sleeping { until: Timestamp, job: Job },
}

/// A pool of worker threads between a workflow and the server. See the module docs.
pub struct Workers<M> {
    inner: M,
    policy: Box<dyn Policy>,
    slots: Vec<Slot>,
    queue: VecDeque<Job>,
    rng: Rng,
    inner_wake: Option<(Timestamp, WaitReason)>,
    inner_idle: bool,
    /// Read each user before its PATCH (the seed script as written).
    read_first: bool,
    /// Nothing is retried or started after this: what is left is given up.
    deadline: Timestamp,
}

impl<M: fmt::Debug> fmt::Debug for Workers<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("policy", &self.policy)
            .field("workers", &self.slots.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Workers<M> {
    /// `workers` threads running `policy` for the requests of `inner`.
    pub fn new(inner: M, policy: Box<dyn Policy>, workers: usize, seed: u64) -> Self {
        Self {
            inner,
            policy,
            slots: (0..workers.max(1))
                .map(|_| Slot::Free {
                    at: Timestamp::ZERO,
                })
                .collect(),
            queue: VecDeque::new(),
            rng: Rng::from_seed(seed),
            inner_wake: None,
            inner_idle: false,
            read_first: false,
            deadline: Timestamp::FAR_FUTURE,
        }
    }

    /// Reads each user with a GET before its PATCH, taking the version from it.
    pub fn read_before_write(mut self) -> Self {
        self.read_first = true;
        self
    }

    /// Gives up whatever is left at `deadline`.
    pub fn stop_at(mut self, deadline: Timestamp) -> Self {
        self.deadline = deadline;
        self
    }

    /// The machine the workers serve.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    fn give_up(&mut self, now: Timestamp, attempt: AttemptId) {
        let response = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("x-gcbulk-sim", "gave-up")
            .body(Bytes::from_static(
                br#"{"message":"The client gave up retrying.","code":"gave.up","status":503}"#,
            ))
            .unwrap_or_default();
        // The workflow was told only about this attempt; it cannot refuse it.
        let _ = self.inner.handle_response(now, attempt, response);
    }

    fn send(&mut self, now: Timestamp, index: usize, mut job: Job) -> Send {
        job.first_sent.get_or_insert(now);
        let request = if job.reading {
            read_request(&job.request)
        } else {
            job.request.clone()
        };
        let send = Send {
            attempt: job.attempt,
            request,
            timeout: job.timeout,
        };
        self.slots[index] = Slot::InFlight(job);
        send
    }

    /// A slot that may send now, and the job it would send.
    fn ready_slot(&mut self, now: Timestamp) -> Option<usize> {
        self.slots.iter().position(|slot| match slot {
            Slot::Sleeping { until, .. } => *until <= now,
            Slot::Free { at } => *at <= now && !self.queue.is_empty(),
            Slot::InFlight(_) => false,
        })
    }

    fn answer(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        answer: Result<Response<Bytes>, TransportError>,
    ) -> Result<(), HandleError> {
        let Some(index) = self
            .slots
            .iter()
            .position(|slot| matches!(slot, Slot::InFlight(job) if job.attempt == attempt))
        else {
            return Err(HandleError::UnknownAttempt(attempt));
        };
        let Slot::InFlight(mut job) =
            std::mem::replace(&mut self.slots[index], Slot::Free { at: now })
        else {
            unreachable!("the slot was found in flight");
        };
        job.tries += 1;
        let tries = Tries {
            made: job.tries,
            first_sent: job.first_sent.unwrap_or(now),
        };
        let view = match &answer {
            Ok(response) => Answer::Response(response),
            Err(error) => Answer::Transport(error),
        };
        let mut decision = self.policy.decide(now, tries, view, &mut self.rng);
        let throttled =
            matches!(view, Answer::Response(r) if r.status() == StatusCode::TOO_MANY_REQUESTS);
        if decision == Decision::Final && throttled {
            decision = Decision::GiveUp;
        }
        if let Decision::Retry(wait) = decision
            && now + wait > self.deadline
        {
            decision = Decision::GiveUp;
        }

        match decision {
            Decision::Retry(wait) => {
                self.slots[index] = Slot::Sleeping {
                    until: now + wait,
                    job,
                };
                return Ok(());
            }
            Decision::Final if job.reading => {
                if let Ok(response) = &answer
                    && response.status().is_success()
                {
                    // Carry the version just read into the PATCH, then send it at once.
                    job.request = with_version(job.request, response);
                    job.reading = false;
                    job.tries = 0;
                    job.first_sent = Some(now);
                    self.slots[index] = Slot::Sleeping { until: now, job };
                    return Ok(());
                }
                // A failed read is the row's answer: the PATCH is never sent.
                match answer {
                    Ok(response) => self.inner.handle_response(now, job.attempt, response)?,
                    Err(error) => self.inner.handle_transport_error(now, job.attempt, error)?,
                }
            }
            Decision::Final => match answer {
                Ok(response) => self.inner.handle_response(now, job.attempt, response)?,
                Err(error) => self.inner.handle_transport_error(now, job.attempt, error)?,
            },
            Decision::GiveUp => self.give_up(now, job.attempt),
        }
        let rest = self.policy.rest(now, &mut self.rng);
        self.slots[index] = Slot::Free { at: now + rest };
        Ok(())
    }

    /// Past the deadline: give up everything queued or sleeping.
    fn stop(&mut self, now: Timestamp) -> bool {
        let mut stopped = Vec::new();
        stopped.extend(self.queue.drain(..).map(|job| job.attempt));
        for slot in &mut self.slots {
            if let Slot::Sleeping { job, .. } = slot {
                stopped.push(job.attempt);
                *slot = Slot::Free { at: now };
            }
        }
        let any = !stopped.is_empty();
        for attempt in stopped {
            self.give_up(now, attempt);
        }
        any
    }
}

impl<M: Machine> Machine for Workers<M> {
    type Output = M::Output;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        self.answer(now, attempt, Ok(response))
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.answer(now, attempt, Err(error))
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.inner.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<M::Output> {
        loop {
            self.inner_idle = false;
            self.inner_wake = None;
            loop {
                match self.inner.poll(now) {
                    Action::Send(send) => self.queue.push_back(Job {
                        reading: self.read_first && send.request.method() == Method::PATCH,
                        attempt: send.attempt,
                        request: send.request,
                        timeout: send.timeout,
                        tries: 0,
                        first_sent: None,
                    }),
                    Action::Done(output) => return Action::Done(output),
                    Action::WaitUntil { at, reason } => {
                        self.inner_wake = Some((at, reason));
                        break;
                    }
                    Action::Idle => {
                        self.inner_idle = true;
                        break;
                    }
                    _ => break,
                }
            }
            if now >= self.deadline && self.stop(now) {
                // The workflow has answers to digest, and perhaps rows to report.
                continue;
            }
            break;
        }

        let mut blocked = None;
        if let Some(index) = self.ready_slot(now) {
            match self.policy.admit(now) {
                Ok(()) => {
                    let job =
                        match std::mem::replace(&mut self.slots[index], Slot::Free { at: now }) {
                            Slot::Sleeping { job, .. } => job,
                            _ => match self.queue.pop_front() {
                                Some(job) => job,
                                None => unreachable!("a free slot is ready only with work queued"),
                            },
                        };
                    return Action::Send(self.send(now, index, job));
                }
                Err(at) => blocked = Some((at, WaitReason::Pacing)),
            }
        }

        let mut earliest = blocked;
        // Slots ready now are held back by the rate limiter: only later times count.
        let mut consider = |at: Timestamp, reason: WaitReason| {
            if at > now && earliest.is_none_or(|(t, _)| at < t) {
                earliest = Some((at, reason));
            }
        };
        if let Some((at, reason)) = self.inner_wake {
            consider(at, reason);
        }
        let mut in_flight = false;
        for slot in &self.slots {
            match slot {
                Slot::Sleeping { until, .. } => consider(*until, WaitReason::Backoff),
                Slot::Free { at } if !self.queue.is_empty() => consider(*at, WaitReason::Pacing),
                Slot::InFlight(_) => in_flight = true,
                Slot::Free { .. } => {}
            }
        }
        if blocked.is_none()
            && let Some((at, _)) = earliest
            && at > self.deadline
            && now < self.deadline
        {
            earliest = Some((self.deadline, WaitReason::Backoff));
        }
        match earliest {
            Some((at, reason)) => Action::WaitUntil {
                at: at.max(now),
                reason,
            },
            None if in_flight => Action::WaitForResponse,
            None if self.inner_idle && self.queue.is_empty() => Action::Idle,
            None => Action::WaitForResponse,
        }
    }
}

/// `GET` of the user a PATCH is for, with the same authorization.
fn read_request(patch: &Request<Bytes>) -> Request<Bytes> {
    let mut request = Request::new(Bytes::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = patch.uri().clone();
    if let Some(auth) = patch.headers().get(http::header::AUTHORIZATION) {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, auth.clone());
    }
    request
}

/// The PATCH with the version of the user just read.
fn with_version(mut patch: Request<Bytes>, read: &Response<Bytes>) -> Request<Bytes> {
    let version = serde_json::from_slice::<serde_json::Value>(read.body())
        .ok()
        .and_then(|user| user.get("version")?.as_u64());
    let body = serde_json::from_slice::<serde_json::Value>(patch.body()).ok();
    if let (Some(version), Some(mut body)) = (version, body) {
        body["version"] = version.into();
        *patch.body_mut() = Bytes::from(body.to_string());
    }
    patch
}

/// Every strategy the comparison runs, gcbulk first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// gcbulk itself, with its default settings.
    Gcbulk,
    /// The seed tutorial's script on our workflow.
    SeedScript,
    /// The seed tutorial's script as written: a GET before every PATCH.
    SeedScriptAsWritten,
    /// The Genesys Java SDK's retry.
    JavaSdk,
    /// The Genesys Go SDK and `gc` CLI.
    GoSdk,
    /// Genesys' Terraform provider.
    Terraform,
    /// Exponential backoff with full jitter.
    FullJitter,
    /// The AWS SDKs' standard retry mode.
    AwsStandard,
    /// The AWS SDKs' adaptive retry mode.
    AwsAdaptive,
    /// rate_throttle_client's best strategy.
    Heroku,
    /// A fixed 45-second sleep on every 429.
    Fixed45,
}

impl Strategy {
    /// Every strategy, in the order the tables list them.
    pub const ALL: [Self; 11] = [
        Self::Gcbulk,
        Self::SeedScript,
        Self::SeedScriptAsWritten,
        Self::JavaSdk,
        Self::GoSdk,
        Self::Terraform,
        Self::FullJitter,
        Self::AwsStandard,
        Self::AwsAdaptive,
        Self::Heroku,
        Self::Fixed45,
    ];

    /// The row's name in a comparison.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gcbulk => "gcbulk",
            Self::SeedScript => "seed-script",
            Self::SeedScriptAsWritten => "seed-script-as-written",
            Self::JavaSdk => "java-sdk",
            Self::GoSdk => "go-sdk",
            Self::Terraform => "terraform",
            Self::FullJitter => "full-jitter",
            Self::AwsStandard => "aws-standard",
            Self::AwsAdaptive => "aws-adaptive",
            Self::Heroku => "heroku-eiprd",
            Self::Fixed45 => "fixed-45s",
        }
    }

    /// The retry policy of a baseline; `None` for gcbulk.
    ///
    /// Sources, by strategy:
    /// - seed script: the seed tutorial's Python script (5 workers; on a 429 wait `Retry-After`,
    ///   else `min(60, 2ⁿ) + U(0, min(60, 2ⁿ))` s; only 429 retried; 5 retries);
    /// - Java SDK: MyPureCloud/platform-client-sdk-java, `ApiClient` retry configuration (429:
    ///   `Retry-After` or 3 s; 502/503/504: 3 s, 9 s, 27 s steps; give up past a `Retry-After`
    ///   beyond the maximum retry time, configured here as 180 s);
    /// - Go SDK and `gc` CLI: MyPureCloud/platform-client-sdk-go and hashicorp/go-retryablehttp
    ///   (`DefaultRetryPolicy`, `DefaultBackoff`: 5 s doubling to 60 s, 20 retries, `Retry-After`
    ///   on 429 and 503, 500 retried, give up past 180 s);
    /// - Terraform: MyPureCloud/terraform-provider-genesyscloud (the Go SDK's client with 1 s,
    ///   30 s, 20 retries);
    /// - full jitter: Marc Brooker, "Exponential Backoff And Jitter" (AWS Architecture Blog):
    ///   `U(0, min(cap, base·2ⁿ))`, here 1 s base, 60 s cap, 10 retries, `Retry-After` unread;
    /// - AWS: see [`Aws`]; Heroku: see [`Throttle`];
    /// - fixed 45 s: the anti-pattern from the Genesys developer forum (sleep 45 s on every 429,
    ///   here up to 10 times; nothing else retried).
    pub fn policy(self, limit: ClientLimit) -> Option<Box<dyn Policy>> {
        let only_429 = RetryOn {
            throttled: true,
            unavailable: false,
            internal_error: false,
            transport: false,
        };
        let all = RetryOn {
            throttled: true,
            unavailable: true,
            internal_error: true,
            transport: true,
        };
        let exponential = |base: u64, cap: u64, jitter: Jitter| {
            Delay::Exponential(sched::Backoff {
                base: Duration::from_secs(base),
                cap: Duration::from_secs(cap),
                jitter,
            })
        };
        let go = |base: u64, cap: u64| Rules {
            retry_on: all,
            max_retries: 20,
            throttle_delay: exponential(base, cap, Jitter::None),
            error_delay: exponential(base, cap, Jitter::None),
            retry_after: RetryAfterUse::OnThrottleAndUnavailable,
            give_up_above: Some(Duration::from_secs(180)),
            max_elapsed: None,
        };
        let policy: Box<dyn Policy> = match self {
            Self::Gcbulk => return None,
            Self::SeedScript | Self::SeedScriptAsWritten => Box::new(Rules {
                retry_on: only_429,
                max_retries: 5,
                throttle_delay: exponential(1, 60, Jitter::Additive),
                error_delay: Delay::Fixed(Duration::ZERO),
                retry_after: RetryAfterUse::OnThrottle,
                give_up_above: None,
                max_elapsed: None,
            }),
            Self::JavaSdk => Box::new(Rules {
                retry_on: RetryOn {
                    internal_error: false,
                    ..all
                },
                max_retries: u32::MAX,
                throttle_delay: Delay::Fixed(Duration::from_secs(3)),
                error_delay: Delay::Steps,
                retry_after: RetryAfterUse::OnThrottleOr(Duration::from_secs(3)),
                give_up_above: None,
                max_elapsed: Some(Duration::from_secs(180)),
            }),
            Self::GoSdk => Box::new(go(5, 60)),
            Self::Terraform => Box::new(go(1, 30)),
            Self::FullJitter => Box::new(Rules {
                retry_on: all,
                max_retries: 10,
                throttle_delay: exponential(1, 60, Jitter::Full),
                error_delay: exponential(1, 60, Jitter::Full),
                retry_after: RetryAfterUse::Ignore,
                give_up_above: None,
                max_elapsed: None,
            }),
            Self::AwsStandard => Box::new(Aws::standard()),
            Self::AwsAdaptive => Box::new(Aws::adaptive()),
            Self::Heroku => {
                let (limit, period) = match limit {
                    ClientLimit::FixedWindow { limit, window_secs } => (limit, window_secs),
                    ClientLimit::Gcra { limit, period_secs } => (limit, period_secs),
                    ClientLimit::Unlimited => (4500, 3600),
                };
                Box::new(Throttle::new(
                    ThrottleStrategy::ProportionalRemainingDecrease,
                    limit,
                    Duration::from_secs(period),
                ))
            }
            Self::Fixed45 => Box::new(Rules {
                retry_on: only_429,
                max_retries: 10,
                throttle_delay: Delay::Fixed(Duration::from_secs(45)),
                error_delay: Delay::Fixed(Duration::ZERO),
                retry_after: RetryAfterUse::Ignore,
                give_up_above: None,
                max_elapsed: None,
            }),
        };
        Some(policy)
    }

    /// A client running this strategy over `rows`.
    pub fn client(
        self,
        setup: &Setup,
        rows: Vec<ChangeRow>,
        seed: u64,
    ) -> Box<dyn Machine<Output = RowReport>> {
        let mut rng = Rng::from_seed(seed);
        let Some(policy) = self.policy(setup.limit) else {
            let mut config = setup.config.clone();
            config.scheduler.run_deadline = Some(setup.deadline);
            return Box::new(UserUpdate::new(config, rows, rng.next_u64()));
        };
        let inner = UserUpdate::new(transparent(setup.config.clone()), rows, rng.next_u64());
        let workers =
            Workers::new(inner, policy, setup.workers, rng.next_u64()).stop_at(setup.deadline);
        if self == Self::SeedScriptAsWritten {
            Box::new(workers.read_before_write())
        } else {
            Box::new(workers)
        }
    }
}

/// What a client is set up with, whatever its strategy.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The workflow's settings (credentials, hosts; gcbulk's own scheduler settings).
    pub config: WorkflowConfig,
    /// A baseline's worker threads.
    pub workers: usize,
    /// The limit a baseline that must be told one is told (rate_throttle_client).
    pub limit: ClientLimit,
    /// Whatever is left then is given up: someone stops the run.
    pub deadline: Timestamp,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The workflow as a plain source of requests: everything at once, unpaced, one attempt each.
pub fn transparent(mut config: WorkflowConfig) -> WorkflowConfig {
    config.scheduler = sched::Config {
        max_in_flight: usize::MAX / 2,
        max_attempts: 1,
        max_throttled: 1,
        give_up_after: Duration::from_secs(u64::MAX / 4),
        pacing: PacingConfig {
            initial_rate: None,
            max_rate: None,
            adaptive: false,
            ..PacingConfig::default()
        },
        ..config.scheduler
    };
    config
}
