//! What both benchmarks share: the request, the settings, an in-memory server and the driving
//! loop from the `sched` module docs.
//!
//! Virtual time stands still while the server answers: it moves only when the scheduler asks to
//! wait ([`Action::WaitUntil`]) and nothing is in flight, so the wall-clock time measured is the
//! scheduler's own work (plus building the server's responses), never a wait.

use bytes::Bytes;
use gcbulk_core::Timestamp;
use gcbulk_core::sched::{Action, AttemptId, Config, PacingConfig, Scheduler, Stats};
use http::{Request, Response, StatusCode};

/// Items queued in every run.
pub(crate) const ITEMS: u64 = 100_000;

/// One realistic update request. Its URI and body live in shared buffers, so clones of it cost a
/// copy of the `Request` struct and two reference counts, not the request's bytes.
pub(crate) fn shared_request() -> Request<Bytes> {
    let body = Bytes::from(
        r#"{"name":"Ada Lovelace","title":"Analyst","department":"Research","version":7}"#
            .to_owned(),
    );
    let request = Request::patch(
        "https://api.mypurecloud.com/api/v2/users/6f1c9a52-8a43-4a0e-9d1c-2b3c4d5e6f70",
    )
    .body(body)
    .expect("the request is well formed");

    // The first clone of a freshly built `Bytes` moves it into shared storage (one allocation);
    // do it here so that every later clone, measured or not, is the same.
    drop(request.clone());
    request
}

/// Settings that measure the machine rather than virtual waiting: 64 attempts in flight, no
/// pacing, and no rate learning from 429s (a 429 still pauses the client for its Retry-After).
pub(crate) fn bench_config() -> Config {
    Config {
        max_in_flight: 64,
        pacing: PacingConfig {
            initial_rate: None,
            max_rate: None,
            adaptive: false,
            ..PacingConfig::default()
        },
        ..Config::default()
    }
}

/// How the in-memory server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mix {
    /// Every attempt gets 200 at once.
    AllOk,
    /// About 5% of attempts get 503 and about 1% get 429 with `Retry-After: 1`; the rest 200.
    Flaky,
}

/// An in-memory server: answers every attempt at the instant it was sent, by a fixed seed.
#[derive(Debug)]
struct Server {
    mix: Mix,
    /// SplitMix64 state: a tiny, fixed stream so every run sees the same failures.
    state: u64,
}

impl Server {
    fn new(mix: Mix) -> Self {
        Self { mix, state: 0x5EED }
    }

    fn answer(&mut self) -> Response<Bytes> {
        if self.mix == Mix::AllOk {
            return Response::new(Bytes::new());
        }
        match self.next() % 100 {
            0..=4 => status(StatusCode::SERVICE_UNAVAILABLE),
            5 => {
                let mut response = status(StatusCode::TOO_MANY_REQUESTS);
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                response
            }
            _ => Response::new(Bytes::new()),
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn status(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
}

/// Pushes every request, then drives the scheduler until it is idle, answering from `mix`.
///
/// Sends are collected until the scheduler has nothing more to send (its in-flight limit is
/// reached, or it asks to wait); then every attempt in flight is answered, oldest first, at the
/// same instant. Returns the scheduler's totals.
pub(crate) fn run(requests: Vec<Request<Bytes>>, mix: Mix) -> Stats {
    let mut scheduler = Scheduler::new(bench_config(), 7);
    let mut now = Timestamp::ZERO;
    for (key, request) in (0_u64..).zip(requests) {
        scheduler.push(now, key, request);
    }

    let mut server = Server::new(mix);
    let mut in_flight: Vec<AttemptId> = Vec::with_capacity(bench_config().max_in_flight);
    let mut ok = 0_u64;
    loop {
        match scheduler.poll(now) {
            Action::Send(send) => in_flight.push(send.attempt),
            Action::Done(done) => {
                ok += u64::from(matches!(
                    &done.outcome,
                    gcbulk_core::sched::Outcome::Response(r) if r.status() == StatusCode::OK
                ));
            }
            waiting => {
                if !in_flight.is_empty() {
                    for attempt in in_flight.drain(..) {
                        scheduler
                            .handle_response(now, attempt, server.answer())
                            .expect("every attempt is answered once");
                    }
                    continue;
                }
                match waiting {
                    Action::WaitUntil { at, .. } => {
                        now = at;
                        scheduler.handle_timeout(now);
                    }
                    Action::Idle => break,
                    other => panic!("stuck with nothing in flight: {other:?}"),
                }
            }
        }
    }

    let stats = *scheduler.stats();
    assert_eq!(ok, stats.pushed, "every item ends with a 200");
    stats
}

/// The events a run handles: pushes, sends, responses and dones. Polls that only say "wait" are
/// not counted, though their cost is in the time measured.
pub(crate) fn events(stats: &Stats) -> u64 {
    stats.pushed + stats.sent + stats.responses + stats.done
}

/// `ITEMS` clones of `request`, held in a vector of exactly that length.
pub(crate) fn clones(request: &Request<Bytes>) -> Vec<Request<Bytes>> {
    (0..ITEMS).map(|_| request.clone()).collect()
}
