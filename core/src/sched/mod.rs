//! The scheduler: many independent items, each a sequence of HTTP attempts, paced and retried.
//!
//! # Driving it
//!
//! The scheduler is a state machine. It never performs I/O or reads a clock: the driver tells it
//! the time in every call, performs the [`Action`]s it asks for, and reports back what happened.
//!
//! The drain contract:
//!
//! 1. Feed every event as it happens: [`Scheduler::handle_response`] or
//!    [`Scheduler::handle_transport_error`] for an attempt's result, [`Scheduler::push`] for new
//!    work, and [`Scheduler::handle_timeout`] when a wait ends.
//! 2. After feeding, call [`Scheduler::poll`] until it returns a waiting action
//!    ([`Action::WaitUntil`], [`Action::WaitForResponse`] or [`Action::Idle`]). Each
//!    [`Action::Send`] must be performed; each [`Action::Done`] ends one item, exactly once.
//! 3. Then wait for whichever comes first: a response to an attempt in flight, or the time given
//!    by `WaitUntil`. A response may arrive earlier than that time; feed it and poll again.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use gcbulk_core::sched::{Action, Config, Scheduler};
//! use gcbulk_core::Timestamp;
//!
//! let mut scheduler = Scheduler::new(Config::default(), 7);
//! let mut now = Timestamp::ZERO;
//! for id in 0..3 {
//!     let request = http::Request::get(format!("https://api.example/users/{id}"))
//!         .body(Bytes::new())
//!         .unwrap();
//!     scheduler.push(now, id, request);
//! }
//!
//! let mut finished = Vec::new();
//! loop {
//!     match scheduler.poll(now) {
//!         Action::Send(send) => {
//!             // A real driver performs the request; here the server always answers 200.
//!             now = now + Duration::from_millis(100);
//!             let response = http::Response::new(Bytes::from_static(b"{}"));
//!             scheduler.handle_response(now, send.attempt, response).unwrap();
//!         }
//!         Action::Done(done) => finished.push(done.key),
//!         Action::WaitUntil { at, .. } => {
//!             now = at;
//!             scheduler.handle_timeout(now);
//!         }
//!         Action::WaitForResponse => unreachable!("this driver answers every send at once"),
//!         Action::Idle => break,
//!         _ => unreachable!("no other action exists yet"),
//!     }
//! }
//! assert_eq!(finished, [0, 1, 2]);
//! ```
//!
//! # What it decides
//!
//! - **Classification** ([`Classifier`]): 429 is throttling, 502/503/504 are transient, everything
//!   else is final and handed back to the caller. Transport errors are transient.
//! - **Throttling** pauses the whole client (or the lane, see [`Lane`]) for `Retry-After` plus a
//!   little jitter; the refused item keeps its place at the head of the queue. A `Retry-After`
//!   above [`Config::give_up_after`] ends every item that would have to wait it out as
//!   [`GiveUpReason::RateLimitedTooLong`], so a run stops cleanly and can be resumed later.
//! - **Transient failures** back off per item ([`Backoff`]), within [`Config::max_attempts`],
//!   the item's deadline and the retry budget ([`BudgetConfig`]); when its wait is over, the item
//!   goes to the head of its lane's queue rather than behind everything queued meanwhile.
//! - **Pacing** ([`PacingConfig`]) spaces sends to a rate learned from the server; see the
//!   `pacer` module docs for the algorithm.

mod headers;
mod pacer;
mod policy;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};

pub use headers::{RateObservation, RetryAfter, rate_observation, retry_after};
pub use pacer::{PacingConfig, WaitReason};
pub use policy::{Backoff, BudgetConfig, Classifier, Jitter, Verdict};

use crate::Timestamp;
pub use crate::machine::{Action, Machine, Send};
use crate::rng::Rng;
use pacer::Limiter;

/// The scheduler's settings. Every field has a documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Most attempts in flight at once. Default: 8.
    pub max_in_flight: usize,
    /// The timeout the driver should give each attempt. Default: 30 s.
    pub request_timeout: Duration,
    /// Which statuses are retried.
    pub classifier: Classifier,
    /// Delays between retries of transient failures.
    pub backoff: Backoff,
    /// Most attempts an item gets for transient failures (throttling is counted apart).
    /// Default: 6.
    pub max_attempts: u32,
    /// Most 429s one item takes before giving up. Default: 30.
    pub max_throttled: u32,
    /// A `Retry-After` longer than this ends the item instead of waiting (Genesys' SDKs: 180 s).
    pub give_up_after: Duration,
    /// The retry budget.
    pub budget: BudgetConfig,
    /// How long one item may take from its push before it gives up. Default: none.
    pub item_deadline: Option<Duration>,
    /// The time after which nothing new is sent and queued items give up. Default: none.
    pub run_deadline: Option<Timestamp>,
    /// Pacing.
    pub pacing: PacingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            request_timeout: Duration::from_secs(30),
            classifier: Classifier::default(),
            backoff: Backoff::default(),
            max_attempts: 6,
            max_throttled: 30,
            give_up_after: Duration::from_secs(180),
            budget: BudgetConfig::default(),
            item_deadline: None,
            run_deadline: None,
            pacing: PacingConfig::default(),
        }
    }
}

/// A group of requests the server may limit separately (an endpoint with a limit of its own).
///
/// Every scheduler has [`Lane::DEFAULT`]; more come from [`Scheduler::add_lane`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane(u16);

impl Lane {
    /// The lane items join unless told otherwise.
    pub const DEFAULT: Self = Self(0);
}

/// Names one attempt: the scheduler's answer to a response for any other attempt is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptId(u64);

impl AttemptId {
    fn new(slot: u32, serial: u32) -> Self {
        Self(u64::from(slot) << 32 | u64::from(serial))
    }

    fn slot(self) -> usize {
        (self.0 >> 32) as usize
    }

    /// The raw value, for logs and traces.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// A failure of the transport rather than an answer from the server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection could not be made.
    #[error("connection failed")]
    Connect,
    /// No answer came within the attempt's timeout.
    #[error("timed out")]
    TimedOut,
    /// The connection was closed or reset before a full answer arrived.
    #[error("connection reset")]
    Reset,
    /// The answer was not valid HTTP.
    #[error("malformed response")]
    Protocol,
    /// The driver refused to send the request at all (for example plain HTTP to a remote host);
    /// never retried.
    #[error("request refused: {0}")]
    Refused(String),
}

impl TransportError {
    fn is_retryable(&self) -> bool {
        !matches!(self, Self::Refused(_))
    }
}

/// A driver's mistake: the scheduler rejects the call and its state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The attempt is not in flight: unknown, already answered, or its item has finished.
    #[error("attempt {0} is not in flight")]
    UnknownAttempt(AttemptId),
}

/// Why an item ended without a final answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The server asked for a longer wait than [`Config::give_up_after`]; resume later.
    RateLimitedTooLong {
        /// The wait that was asked for (or still left of it).
        retry_after: Duration,
    },
    /// Transient failures used up [`Config::max_attempts`].
    AttemptsExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// 429s used up [`Config::max_throttled`].
    ThrottledTooOften {
        /// 429s received.
        throttled: u32,
    },
    /// The item's deadline passed.
    ItemDeadline,
    /// The run's deadline passed.
    RunDeadline,
    /// The transport failed in a way retrying will not fix.
    Transport {
        /// What failed.
        error: String,
    },
    /// The caller cancelled it before it was sent.
    Cancelled,
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimitedTooLong { retry_after } => {
                write!(
                    f,
                    "rate limited for too long (asked to wait {} s)",
                    retry_after.as_secs()
                )
            }
            Self::AttemptsExhausted { attempts } => write!(f, "failed {attempts} attempts"),
            Self::ThrottledTooOften { throttled } => write!(f, "throttled {throttled} times"),
            Self::ItemDeadline => f.write_str("item deadline passed"),
            Self::RunDeadline => f.write_str("run deadline passed"),
            Self::Transport { error } => write!(f, "transport failed: {error}"),
            Self::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The last thing that went wrong for an item that gave up.
#[derive(Debug)]
pub enum LastFailure {
    /// A retryable status.
    Response(Response<Bytes>),
    /// A transport error.
    Transport(TransportError),
}

/// How an item ended.
#[derive(Debug)]
pub enum Outcome {
    /// The server's final answer: a success, or an error retrying will not fix.
    Response(Response<Bytes>),
    /// No final answer.
    GaveUp {
        /// Why.
        reason: GiveUpReason,
        /// The last failure seen, if any.
        last: Option<LastFailure>,
    },
}

/// An item that has ended.
#[derive(Debug)]
pub struct Done<K> {
    /// The key it was pushed with.
    pub key: K,
    /// How it ended.
    pub outcome: Outcome,
    /// The request, handed back so a caller can replay it (after renewing a token, say).
    pub request: Request<Bytes>,
    /// Attempts sent.
    pub attempts: u32,
    /// 429s received.
    pub throttled: u32,
    /// When it was pushed.
    pub pushed_at: Timestamp,
}

/// Running totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Items pushed.
    pub pushed: u64,
    /// Attempts sent.
    pub sent: u64,
    /// Responses received (any status).
    pub responses: u64,
    /// 429 responses.
    pub throttled: u64,
    /// Retryable non-429 failures: 5xx and transport errors.
    pub transient: u64,
    /// Items ended.
    pub done: u64,
    /// Items that gave up.
    pub gave_up: u64,
}

/// Per-item options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemOptions {
    /// The lane to queue in.
    pub lane: Option<Lane>,
    /// Go to the front of the lane's queue (for work that unblocks other work, like a token).
    pub urgent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Queued,
    Sleeping {
        until: Timestamp,
        reason: WaitReason,
    },
    InFlight(AttemptId),
}

#[derive(Debug)]
struct Item<K> {
    key: K,
    request: Request<Bytes>,
    state: State,
    lane: Lane,
    attempts: u32,
    failures: u32,
    throttled: u32,
    /// The attempt in flight is a retry that drew a token from the budget.
    charged: bool,
    last_delay: Duration,
    pushed_at: Timestamp,
    deadline: Timestamp,
    last_failure: Option<Box<LastFailure>>,
}

#[derive(Debug)]
struct LaneState {
    queue: VecDeque<u32>,
    limiter: Limiter,
}

/// The retry budget: a token bucket each retry draws from as it is sent.
///
/// A retry that succeeds (or is merely throttled) gets its token back, so once the server is well
/// again the retries queued during an outage flow at the pace of the run instead of trickling out
/// at the refill rate. Only retries that fail again keep their tokens spent: at most `balance`
/// retries are ever at risk against a failing server.
#[derive(Debug)]
struct Budget {
    config: BudgetConfig,
    balance: f64,
    updated: Timestamp,
}

impl Budget {
    fn refill(&mut self, now: Timestamp) {
        let dt = now.saturating_since(self.updated).as_secs_f64();
        self.updated = self.updated.max(now);
        self.balance =
            (self.balance + dt * self.config.refill_per_second).min(self.config.capacity);
    }

    /// When a retry may be sent: `now` while a whole token is left, else when time alone refills
    /// one (a success may bring that sooner).
    fn token_at(&mut self, now: Timestamp) -> Timestamp {
        self.refill(now);
        if self.balance >= 1.0 {
            return now;
        }
        let rate = self.config.refill_per_second;
        if rate > 0.0 {
            now + Duration::from_secs_f64((1.0 - self.balance) / rate)
        } else {
            Timestamp::FAR_FUTURE
        }
    }

    fn spend(&mut self, now: Timestamp) {
        self.refill(now);
        self.balance -= 1.0;
    }

    /// Returns a retry's token: the attempt did not fail.
    fn refund(&mut self, now: Timestamp) {
        self.refill(now);
        self.balance = (self.balance + 1.0).min(self.config.capacity);
    }

    fn earn(&mut self, now: Timestamp) {
        self.refill(now);
        self.balance = (self.balance + self.config.earn_per_success).min(self.config.capacity);
    }
}

/// Schedules attempts for many items against one rate-limited server. See the module docs.
#[derive(Debug)]
pub struct Scheduler<K> {
    config: Config,
    rng: Rng,
    slots: Vec<Option<Item<K>>>,
    free: Vec<u32>,
    lanes: Vec<LaneState>,
    next_lane: usize,
    global: Limiter,
    budget: Budget,
    /// Sleeping items by wake time; the counter breaks ties in push order.
    sleepers: BinaryHeap<Reverse<(Timestamp, u64, u32)>>,
    sleeper_counter: u64,
    finished: VecDeque<Done<K>>,
    in_flight: usize,
    live: usize,
    serial: u32,
    stats: Stats,
}

impl<K> Scheduler<K> {
    /// A scheduler with `config`, drawing all its randomness from `seed`.
    pub fn new(config: Config, seed: u64) -> Self {
        let default_lane = LaneState {
            queue: VecDeque::new(),
            limiter: Limiter::unlimited(&config.pacing),
        };
        let budget = Budget {
            balance: config.budget.capacity,
            config: config.budget.clone(),
            updated: Timestamp::ZERO,
        };
        Self {
            global: Limiter::new(&config.pacing),
            config,
            rng: Rng::from_seed(seed),
            slots: Vec::new(),
            free: Vec::new(),
            lanes: vec![default_lane],
            next_lane: 0,
            budget,
            sleepers: BinaryHeap::new(),
            sleeper_counter: 0,
            finished: VecDeque::new(),
            in_flight: 0,
            live: 0,
            serial: 0,
            stats: Stats::default(),
        }
    }

    /// Adds a lane: requests the server may limit apart from the rest.
    pub fn add_lane(&mut self) -> Lane {
        let lane = Lane(u16::try_from(self.lanes.len()).unwrap_or(u16::MAX));
        self.lanes.push(LaneState {
            queue: VecDeque::new(),
            limiter: Limiter::unlimited(&self.config.pacing),
        });
        lane
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Running totals.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Attempts in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Items pushed and not yet reported done.
    pub fn pending(&self) -> usize {
        self.live + self.finished.len()
    }

    /// The client-wide rate it paces to now, in requests a second (`None`: not paced yet).
    pub fn current_rate(&self) -> Option<f64> {
        self.global.rate()
    }

    /// Makes room for `additional` more items in `lane` at once, so a caller that knows its
    /// work up front pays for exactly that much memory instead of buffers grown by doubling.
    pub fn reserve(&mut self, lane: Lane, additional: usize) {
        let spare = self.free.len();
        self.slots.reserve_exact(additional.saturating_sub(spare));
        if let Some(lane) = self.lanes.get_mut(usize::from(lane.0)) {
            lane.queue.reserve_exact(additional);
        }
    }

    /// Queues an item in the default lane.
    pub fn push(&mut self, now: Timestamp, key: K, request: Request<Bytes>) {
        self.push_with(now, key, request, ItemOptions::default());
    }

    /// Queues an item with options.
    pub fn push_with(
        &mut self,
        now: Timestamp,
        key: K,
        request: Request<Bytes>,
        options: ItemOptions,
    ) {
        let lane = options
            .lane
            .filter(|lane| usize::from(lane.0) < self.lanes.len());
        let lane = lane.unwrap_or(Lane::DEFAULT);
        let deadline = self
            .config
            .item_deadline
            .map_or(Timestamp::FAR_FUTURE, |d| now + d);
        let item = Item {
            key,
            request,
            state: State::Queued,
            lane,
            attempts: 0,
            failures: 0,
            throttled: 0,
            charged: false,
            last_delay: Duration::ZERO,
            pushed_at: now,
            deadline,
            last_failure: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(item);
                slot
            }
            None => {
                self.slots.push(Some(item));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let queue = &mut self.lanes[usize::from(lane.0)].queue;
        if options.urgent {
            queue.push_front(slot);
        } else {
            queue.push_back(slot);
        }
        self.live += 1;
        self.stats.pushed += 1;
    }

    /// Hands over the server's answer to `attempt`.
    pub fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        let slot = self.take_in_flight(attempt)?;
        self.stats.responses += 1;

        let seen = rate_observation(response.headers());
        // Everything not in flight still has to be sent (this item too, unless it is done).
        self.global.set_backlog(self.live - self.in_flight);
        let lane = self.lane_mut(self.item(slot).lane);
        let queued = lane.queue.len();
        lane.limiter.set_backlog(queued);
        if !seen.is_empty() {
            self.global.observe(now, &seen, self.in_flight);
        }
        let verdict = self.config.classifier.classify(response.status());
        let charged = std::mem::take(&mut self.item_mut(slot).charged);
        if charged && verdict != Verdict::Transient {
            self.budget.refund(now);
        }
        match verdict {
            Verdict::Final => {
                self.budget.earn(now);
                self.global.on_accepted(now);
                let lane = self.item(slot).lane;
                self.lane_mut(lane).limiter.on_accepted(now);
                self.finish(slot, Outcome::Response(response));
            }
            Verdict::Throttled => self.on_throttled(now, slot, response, &seen),
            Verdict::Transient => {
                let wait = match retry_after(response.headers()) {
                    RetryAfter::Wait(wait) => Some(wait),
                    RetryAfter::Absent | RetryAfter::Invalid => None,
                };
                self.global.on_accepted(now);
                self.on_transient(now, slot, LastFailure::Response(response), wait);
            }
        }
        Ok(())
    }

    /// Hands over a transport failure of `attempt`.
    pub fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        let slot = self.take_in_flight(attempt)?;
        // A retry that failed again keeps its token spent.
        self.item_mut(slot).charged = false;
        if error.is_retryable() {
            self.on_transient(now, slot, LastFailure::Transport(error), None);
        } else {
            let reason = GiveUpReason::Transport {
                error: error.to_string(),
            };
            self.give_up(slot, reason, Some(LastFailure::Transport(error)));
        }
        Ok(())
    }

    /// Tells the scheduler the time has come for a wait it asked for. Calling [`Scheduler::poll`]
    /// with a later `now` has the same effect; this exists so drivers read naturally.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.wake_sleepers(now);
    }

    /// Ends every item that is not in flight with [`GiveUpReason::Cancelled`]; items in flight
    /// end when their answers arrive.
    pub fn cancel_queued(&mut self) {
        let queued: Vec<u32> = self
            .lanes
            .iter_mut()
            .flat_map(|lane| lane.queue.drain(..))
            .collect();
        for slot in queued {
            self.give_up(slot, GiveUpReason::Cancelled, None);
        }
        let sleeping: Vec<u32> = self
            .sleepers
            .drain()
            .map(|Reverse((_, _, slot))| slot)
            .collect();
        for slot in sleeping {
            if matches!(
                self.slots[slot as usize],
                Some(Item {
                    state: State::Sleeping { .. },
                    ..
                })
            ) {
                self.give_up(slot, GiveUpReason::Cancelled, None);
            }
        }
    }

    /// The next thing to do. See the module docs for the drain contract.
    pub fn poll(&mut self, now: Timestamp) -> Action<Done<K>> {
        self.wake_sleepers(now);
        if let Some(done) = self.finished.pop_front() {
            return Action::Done(done);
        }
        let mut earliest: Option<(Timestamp, WaitReason)> = None;
        if self.in_flight < self.config.max_in_flight {
            match self.next_send(now) {
                Ok(action) => return action,
                Err(wait) => earliest = wait,
            }
        }
        if let Some(Reverse((at, _, slot))) = self.sleepers.peek() {
            let reason = match self.slots[*slot as usize] {
                Some(Item {
                    state: State::Sleeping { reason, .. },
                    ..
                }) => reason,
                _ => WaitReason::Backoff,
            };
            earliest = Some(match earliest {
                Some((t, r)) if t <= *at => (t, r),
                _ => (*at, reason),
            });
        }
        if let Some(deadline) = self.config.run_deadline
            && self.live > 0
            && earliest.is_some_and(|(at, _)| at > deadline)
            && now < deadline
        {
            earliest = earliest.map(|(_, reason)| (deadline, reason));
        }
        match earliest {
            Some((at, reason)) => Action::WaitUntil {
                at: at.max(now),
                reason,
            },
            None if self.in_flight > 0 => Action::WaitForResponse,
            None if self.live == 0 => Action::Idle,
            // Items are queued behind the concurrency limit: a response will free a slot.
            None => Action::WaitForResponse,
        }
    }

    /// Finds an item that may be sent now, or the earliest time one may.
    fn next_send(
        &mut self,
        now: Timestamp,
    ) -> Result<Action<Done<K>>, Option<(Timestamp, WaitReason)>> {
        let (global_at, global_reason) = self.global.ready_at();
        let mut earliest: Option<(Timestamp, WaitReason)> = None;
        let lanes = self.lanes.len();
        for offset in 0..lanes {
            let lane = (self.next_lane + offset) % lanes;
            let Some(&slot) = self.lanes[lane].queue.front() else {
                continue;
            };
            // A probe after a refusal without Retry-After goes alone.
            let probing = self.global.is_probing() || self.lanes[lane].limiter.is_probing();
            if probing && self.in_flight > 0 {
                continue;
            }
            let (lane_at, lane_reason) = self.lanes[lane].limiter.ready_at();
            let (mut at, mut reason) = if lane_at > global_at {
                (lane_at, lane_reason)
            } else {
                (global_at, global_reason)
            };
            // A retry waits for a token; the lane waits behind it, so a failing server is not
            // fed fresh work either.
            if self.item(slot).failures > 0 {
                let token_at = self.budget.token_at(now);
                if token_at > at {
                    (at, reason) = (token_at, WaitReason::RetryBudget);
                }
            }

            let pause = self
                .global
                .pause_left(now)
                .max(self.lanes[lane].limiter.pause_left(now));
            let deadline = self.item(slot).deadline;
            let ending = if pause > self.config.give_up_after {
                Some(GiveUpReason::RateLimitedTooLong { retry_after: pause })
            } else if self.config.run_deadline.is_some_and(|d| at.max(now) >= d) {
                Some(GiveUpReason::RunDeadline)
            } else if at.max(now) > deadline {
                Some(GiveUpReason::ItemDeadline)
            } else if at == Timestamp::FAR_FUTURE && self.in_flight == 0 {
                // A retry budget that never refills, and no answer left to earn it a token.
                let attempts = self.item(slot).attempts;
                Some(GiveUpReason::AttemptsExhausted { attempts })
            } else {
                None
            };
            if let Some(reason) = ending {
                self.lanes[lane].queue.pop_front();
                self.give_up(slot, reason, None);
                if let Some(done) = self.finished.pop_front() {
                    return Ok(Action::Done(done));
                }
            }

            if at <= now {
                self.lanes[lane].queue.pop_front();
                self.next_lane = (lane + 1) % lanes;
                return Ok(Action::Send(self.send(now, slot)));
            }
            if earliest.is_none_or(|(t, _)| at < t) {
                earliest = Some((at, reason));
            }
        }
        Err(earliest)
    }

    fn send(&mut self, now: Timestamp, slot: u32) -> Send {
        self.serial = self.serial.wrapping_add(1);
        let attempt = AttemptId::new(slot, self.serial);
        self.global.on_send(now);
        let item = self.slots[slot as usize]
            .as_mut()
            .expect("queued slots hold items");
        item.state = State::InFlight(attempt);
        item.attempts += 1;
        if item.failures > 0 {
            item.charged = true;
            self.budget.spend(now);
        }
        let lane = item.lane;
        let request = item.request.clone();
        self.lane_mut(lane).limiter.on_send(now);
        self.in_flight += 1;
        self.stats.sent += 1;
        tracing::trace!(%attempt, attempt_no = self.item(slot).attempts, "send");
        Send {
            attempt,
            request,
            timeout: self.config.request_timeout,
        }
    }

    fn on_throttled(
        &mut self,
        now: Timestamp,
        slot: u32,
        response: Response<Bytes>,
        seen: &RateObservation,
    ) {
        self.stats.throttled += 1;
        let asked = retry_after(response.headers());
        let wait = match asked {
            RetryAfter::Wait(wait) => Some(wait),
            // With no usable Retry-After, an announced reset is the next best hint.
            RetryAfter::Absent | RetryAfter::Invalid => {
                seen.reset.filter(|_| seen.remaining == Some(0))
            }
        };
        // A budget with room left means this endpoint has a lower limit of its own.
        let lane = self.item(slot).lane;
        // With nothing announced, a refused sprint has reached the end of the client's budget.
        let blame_lane = lane != Lane::DEFAULT
            && (seen.remaining.is_some_and(|left| left > 0)
                || (seen.is_empty() && !self.global.is_sprinting()));
        if blame_lane {
            self.lanes[usize::from(lane.0)]
                .limiter
                .on_throttle(now, wait, &mut self.rng);
        } else {
            self.global.on_throttle(now, wait, &mut self.rng);
        }

        let item = self.slots[slot as usize]
            .as_mut()
            .expect("answered slots hold items");
        item.throttled += 1;
        let throttled = item.throttled;
        tracing::debug!(
            attempt = item.attempts,
            status = 429,
            retry_after_s = wait.map(|w| w.as_secs()),
            "throttled"
        );
        if wait.is_some_and(|wait| wait > self.config.give_up_after) {
            let retry_after = wait.unwrap_or_default();
            let reason = GiveUpReason::RateLimitedTooLong { retry_after };
            self.give_up(slot, reason, Some(LastFailure::Response(response)));
        } else if throttled >= self.config.max_throttled {
            let reason = GiveUpReason::ThrottledTooOften { throttled };
            self.give_up(slot, reason, Some(LastFailure::Response(response)));
        } else {
            item.last_failure = Some(Box::new(LastFailure::Response(response)));
            item.state = State::Queued;
            // The refused item keeps its place: it goes first when the pause ends.
            self.lanes[usize::from(lane.0)].queue.push_front(slot);
        }
    }

    fn on_transient(
        &mut self,
        now: Timestamp,
        slot: u32,
        failure: LastFailure,
        asked: Option<Duration>,
    ) {
        self.stats.transient += 1;
        let item = self.slots[slot as usize]
            .as_mut()
            .expect("answered slots hold items");
        item.failures += 1;
        if item.failures >= self.config.max_attempts {
            let reason = GiveUpReason::AttemptsExhausted {
                attempts: item.attempts,
            };
            self.give_up(slot, reason, Some(failure));
            return;
        }
        let backoff = self
            .config
            .backoff
            .delay(item.failures - 1, item.last_delay, &mut self.rng);
        let delay = asked
            .filter(|wait| *wait <= self.config.give_up_after)
            .unwrap_or(backoff);
        let wake = now + delay;
        tracing::debug!(
            attempt = item.attempts,
            delay_ms = delay.as_millis() as u64,
            "retrying after a transient failure"
        );
        let deadline = item
            .deadline
            .min(self.config.run_deadline.unwrap_or(Timestamp::FAR_FUTURE));
        if wake > deadline {
            let reason = if item.deadline <= deadline {
                GiveUpReason::ItemDeadline
            } else {
                GiveUpReason::RunDeadline
            };
            self.give_up(slot, reason, Some(failure));
            return;
        }
        item.last_delay = delay;
        item.last_failure = Some(Box::new(failure));
        item.state = State::Sleeping {
            until: wake,
            reason: WaitReason::Backoff,
        };
        self.sleeper_counter += 1;
        self.sleepers
            .push(Reverse((wake, self.sleeper_counter, slot)));
    }

    fn wake_sleepers(&mut self, now: Timestamp) {
        while let Some(Reverse((at, _, slot))) = self.sleepers.peek().copied() {
            if at > now {
                break;
            }
            self.sleepers.pop();
            let Some(item) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            if !matches!(item.state, State::Sleeping { until, .. } if until == at) {
                continue;
            }
            item.state = State::Queued;
            let lane = item.lane;
            // It has waited its backoff already; the queue behind it may be thousands long.
            self.lane_mut(lane).queue.push_front(slot);
        }
    }

    fn take_in_flight(&mut self, attempt: AttemptId) -> Result<u32, HandleError> {
        let slot = attempt.slot();
        match self.slots.get(slot) {
            Some(Some(item)) if item.state == State::InFlight(attempt) => {
                self.in_flight -= 1;
                Ok(slot as u32)
            }
            _ => Err(HandleError::UnknownAttempt(attempt)),
        }
    }

    fn give_up(&mut self, slot: u32, reason: GiveUpReason, last: Option<LastFailure>) {
        self.stats.gave_up += 1;
        let last = last.or_else(|| {
            let item = self.slots[slot as usize].as_mut()?;
            item.last_failure.take().map(|boxed| *boxed)
        });
        self.finish(slot, Outcome::GaveUp { reason, last });
    }

    fn finish(&mut self, slot: u32, outcome: Outcome) {
        let item = self.slots[slot as usize]
            .take()
            .expect("finishing slots hold items");
        self.free.push(slot);
        self.live -= 1;
        self.stats.done += 1;
        self.finished.push_back(Done {
            key: item.key,
            outcome,
            request: item.request,
            attempts: item.attempts,
            throttled: item.throttled,
            pushed_at: item.pushed_at,
        });
    }

    fn item(&self, slot: u32) -> &Item<K> {
        self.slots[slot as usize]
            .as_ref()
            .expect("live slots hold items")
    }

    fn item_mut(&mut self, slot: u32) -> &mut Item<K> {
        self.slots[slot as usize]
            .as_mut()
            .expect("live slots hold items")
    }

    fn lane_mut(&mut self, lane: Lane) -> &mut LaneState {
        &mut self.lanes[usize::from(lane.0)]
    }
}

impl<K> Machine for Scheduler<K> {
    type Output = Done<K>;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        Scheduler::handle_response(self, now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        Scheduler::handle_transport_error(self, now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        Scheduler::handle_timeout(self, now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<Done<K>> {
        Scheduler::poll(self, now)
    }
}

#[cfg(test)]
mod tests;
