//! The rate_throttle_client experiment (zombocom/rate_throttle_client), rebuilt on the model, to
//! check the simulator against a published table.
//!
//! The published set-up: a server limiting with GCRA to 4,500 requests an hour, announcing
//! `RateLimit-Remaining`; two processes of five threads each, every thread requesting in a loop
//! through one client per process, for 30 minutes; the retry rate is the share of requests
//! refused with a 429. Published rates: about 80% for plain exponential backoff, 41% for
//! exponential increase with gradual decrease, 3.7% for proportional decrease and 3.1% for
//! decrease proportional to the remaining capacity.
//!
//! Here each process is a [`Workers`] pool of five workers sharing one [`Throttle`] client, in
//! front of a source that keeps one request per worker outstanding.

use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::Timestamp;
use gcbulk_core::sched::{
    self, AttemptId, Done, HandleError, PacingConfig, Scheduler, TransportError,
};
use gcbulk_core::{Action, Machine};
use http::{Request, Response};

use crate::baseline::{Throttle, ThrottleStrategy, Workers};
use crate::drive::Harness;
use crate::model::{ClientId, ClientLimit, Latency, Server, ServerConfig, User};

/// The experiment's set-up; [`Default`] is the published one.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleExperiment {
    /// Client processes sharing the server's budget.
    pub processes: usize,
    /// Threads per process, each with one request outstanding.
    pub threads: usize,
    /// How long the clients run.
    pub duration: Duration,
    /// The GCRA limit: requests per period.
    pub limit: u32,
    /// The GCRA period.
    pub period: Duration,
    /// How long the server takes to answer.
    pub latency: Latency,
    /// Whether the budget is spent when the clients start, as on a server that has been busy.
    /// The published rates are those of clients that find it so: with a full bucket, the first
    /// 4,500 requests of each run would pass unrefused and dilute every rate.
    pub drained: bool,
}

impl Default for ThrottleExperiment {
    fn default() -> Self {
        Self {
            processes: 2,
            threads: 5,
            duration: Duration::from_secs(30 * 60),
            limit: 4500,
            period: Duration::from_secs(3600),
            latency: Latency::Uniform {
                min_ms: 20.0,
                max_ms: 80.0,
            },
            drained: true,
        }
    }
}

/// What one strategy did in the experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleResult {
    /// The strategy.
    pub strategy: ThrottleStrategy,
    /// Requests the server received.
    pub requests: u64,
    /// Of those, refused with a 429.
    pub throttled: u64,
    /// `throttled / requests`.
    pub retry_rate: f64,
    /// Requests each process had accepted.
    pub accepted_by_process: Vec<u64>,
}

impl ThrottleExperiment {
    /// Runs `strategy` with the server's and clients' dice drawn from `seed`.
    pub fn run(&self, strategy: ThrottleStrategy, seed: u64) -> ThrottleResult {
        let mut config = ServerConfig {
            latency: self.latency,
            record_timeline: true,
            ..ServerConfig::default()
        };
        config.rate_limit.per_client = ClientLimit::Gcra {
            limit: self.limit,
            period_secs: self.period.as_secs(),
        };
        // Heroku's 429 says nothing about when to come back.
        config.rate_limit.retry_after = false;
        let users = vec![User::new("u1", "Ada Lovelace", "ada@example.com")];
        let mut server = Server::new(config, users, seed);
        let token = login(&mut server);
        let drained = if self.drained {
            drain(&mut server, &token)
        } else {
            0
        };

        let until = Timestamp::ZERO + self.duration;
        let mut harness = Harness::new(server);
        for process in 0..self.processes {
            let source = Source::new(&token, self.threads, until, seed ^ process as u64);
            let client = Throttle::new(strategy, self.limit, self.period);
            let workers = Workers::new(
                source,
                Box::new(client),
                self.threads,
                seed + process as u64,
            )
            .stop_at(until);
            harness.add_client(Box::new(workers), Timestamp::ZERO);
        }
        // Every event is a request or its answer; far fewer than this happen in half an hour.
        if let Err(livelock) = harness.drive_bounded(10_000_000) {
            unreachable!("the experiment ends at its deadline: {livelock}");
        }

        let stats = harness.server().stats();
        let mut requests = 0;
        let mut throttled = 0;
        let mut accepted_by_process = vec![0; self.processes];
        // Only the clients' requests count: not the token, not the draining.
        for event in &stats.timeline {
            let Some(count) = accepted_by_process.get_mut(event.client.0 as usize) else {
                continue;
            };
            requests += 1;
            match event.status {
                Some(429) => throttled += 1,
                Some(_) => *count += 1,
                None => {}
            }
        }
        debug_assert!(stats.total() >= drained + requests);
        ThrottleResult {
            strategy,
            requests,
            throttled,
            retry_rate: if requests > 0 {
                throttled as f64 / requests as f64
            } else {
                0.0
            },
            accepted_by_process,
        }
    }
}

/// A client-credentials token from the server, asked before the clients start (the login
/// service is not rate limited).
fn login(server: &mut Server) -> String {
    let request = Request::post("/oauth/token")
        .header(
            "authorization",
            "Basic Z2NidWxrLWVtdWxhdG9yOmVtdWxhdG9yLXNlY3JldA==",
        )
        .body(Bytes::from_static(b"grant_type=client_credentials"));
    let body = request
        .ok()
        .and_then(|request| {
            let reply = server.handle_request(Timestamp::ZERO, ClientId(u64::MAX), request);
            reply.response().map(|response| response.body().clone())
        })
        .unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value["access_token"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Spends the whole budget before the clients start; returns how many requests that took.
fn drain(server: &mut Server, token: &str) -> u64 {
    let mut spent = 0;
    loop {
        let request = Request::get("/api/v2/users/u1")
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new());
        let Ok(request) = request else { return spent };
        let reply = server.handle_request(Timestamp::ZERO, ClientId(u64::MAX), request);
        spent += 1;
        if reply.response().is_none_or(|r| r.status() == 429) || spent > 1_000_000 {
            return spent;
        }
    }
}

/// Keeps one request per thread outstanding until `until`: the threads' request loops.
#[derive(Debug)]
struct Source {
    scheduler: Scheduler<u64>,
    token: String,
    outstanding: usize,
    until: Timestamp,
    next: u64,
}

impl Source {
    fn new(token: &str, outstanding: usize, until: Timestamp, seed: u64) -> Self {
        let config = sched::Config {
            max_in_flight: usize::MAX / 2,
            max_attempts: 1,
            max_throttled: 1,
            pacing: PacingConfig {
                adaptive: false,
                ..PacingConfig::default()
            },
            ..sched::Config::default()
        };
        Self {
            scheduler: Scheduler::new(config, seed),
            token: token.to_owned(),
            outstanding,
            until,
            next: 0,
        }
    }

    fn top_up(&mut self, now: Timestamp) {
        while now < self.until && self.scheduler.pending() < self.outstanding {
            let request = Request::get("/api/v2/users/u1")
                .header("authorization", format!("Bearer {}", self.token))
                .body(Bytes::new());
            let Ok(request) = request else { return };
            self.scheduler.push(now, self.next, request);
            self.next += 1;
        }
    }
}

impl Machine for Source {
    type Output = Done<u64>;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        self.scheduler.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.scheduler.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.scheduler.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<Done<u64>> {
        self.top_up(now);
        let action = self.scheduler.poll(now);
        if let Action::Done(_) = &action {
            self.top_up(now);
        }
        action
    }
}
