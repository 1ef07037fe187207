//! The bodies of the fuzz targets, shared by `fuzz/` (cargo-fuzz, nightly) and by an ordinary
//! test that replays the committed seed corpus on stable Rust.
//!
//! Each function must never panic, whatever bytes it is given, except where it checks an
//! invariant of the code under test.

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use gcbulk_core::Timestamp;
use gcbulk_core::sched::{
    Action, AttemptId, Config, Done, ItemOptions, Scheduler, TransportError, rate_observation,
    retry_after,
};
use http::{HeaderMap, HeaderName, HeaderValue, Response};

/// One thing that can happen to a scheduler.
#[derive(Arbitrary, Debug)]
enum Op {
    /// New work, in the default lane or a second one.
    Push { second_lane: bool },
    /// An answer to the `nth` attempt in flight (or to a stale one).
    Respond {
        nth: u8,
        status: u16,
        headers: Vec<(HeaderPick, String)>,
    },
    /// A transport failure of the `nth` attempt in flight.
    Fail { nth: u8, kind: u8 },
    /// Time passes.
    Tick { millis: u16 },
    /// Drain actions.
    Poll,
    /// An answer for an attempt the scheduler never issued.
    Bogus { raw: u64 },
    /// Stop everything queued.
    Cancel,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum HeaderPick {
    RetryAfter,
    Date,
    IninCount,
    IninAllowed,
    IninReset,
    RateLimit,
    RateLimitPolicy,
    RateLimitRemaining,
    XRateLimitReset,
}

impl HeaderPick {
    fn name(self) -> &'static str {
        match self {
            Self::RetryAfter => "retry-after",
            Self::Date => "date",
            Self::IninCount => "inin-ratelimit-count",
            Self::IninAllowed => "inin-ratelimit-allowed",
            Self::IninReset => "inin-ratelimit-reset",
            Self::RateLimit => "ratelimit",
            Self::RateLimitPolicy => "ratelimit-policy",
            Self::RateLimitRemaining => "ratelimit-remaining",
            Self::XRateLimitReset => "x-ratelimit-reset",
        }
    }
}

fn header_map(pairs: &[(HeaderPick, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (pick, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(HeaderName::from_static(pick.name()), value);
        }
    }
    map
}

/// Drives a scheduler with an arbitrary sequence of operations and checks its promises: every
/// item ends exactly once, never more in flight than allowed, misuse is an error not a panic.
pub fn scheduler_ops(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let max_in_flight = usize::from(input.arbitrary::<u8>().unwrap_or(4) % 8) + 1;
    let config = Config {
        max_in_flight,
        ..Config::default()
    };
    let mut scheduler: Scheduler<u32> = Scheduler::new(config, 1);
    let lane = scheduler.add_lane();
    let mut now = Timestamp::ZERO;
    let mut in_flight: Vec<AttemptId> = Vec::new();
    let mut pushed = 0u32;
    let mut done: HashMap<u32, u32> = HashMap::new();
    let request = http::Request::get("https://api.example/x")
        .body(Bytes::new())
        .unwrap_or_default();

    // An exhausted `Unstructured` keeps yielding defaults, so stop when the data runs out.
    for _ in 0..10_000 {
        if input.is_empty() {
            break;
        }
        let Ok(op) = input.arbitrary::<Op>() else {
            break;
        };
        match op {
            Op::Push { second_lane } => {
                let options = ItemOptions {
                    lane: second_lane.then_some(lane),
                    urgent: false,
                };
                scheduler.push_with(now, pushed, request.clone(), options);
                pushed += 1;
            }
            Op::Respond {
                nth,
                status,
                headers,
            } => {
                if in_flight.is_empty() {
                    continue;
                }
                let attempt = in_flight.remove(usize::from(nth) % in_flight.len());
                let status = http::StatusCode::from_u16(status.clamp(100, 999)).unwrap_or_default();
                let mut response = Response::new(Bytes::new());
                *response.status_mut() = status;
                *response.headers_mut() = header_map(&headers);
                assert!(scheduler.handle_response(now, attempt, response).is_ok());
            }
            Op::Fail { nth, kind } => {
                if in_flight.is_empty() {
                    continue;
                }
                let attempt = in_flight.remove(usize::from(nth) % in_flight.len());
                let error = match kind % 5 {
                    0 => TransportError::Connect,
                    1 => TransportError::TimedOut,
                    2 => TransportError::Reset,
                    3 => TransportError::Protocol,
                    _ => TransportError::Refused("fuzz".into()),
                };
                assert!(
                    scheduler
                        .handle_transport_error(now, attempt, error)
                        .is_ok()
                );
            }
            Op::Tick { millis } => {
                now = now + Duration::from_millis(u64::from(millis));
                scheduler.handle_timeout(now);
            }
            Op::Poll => drain(
                &mut scheduler,
                now,
                &mut in_flight,
                &mut done,
                max_in_flight,
            ),
            Op::Bogus { raw } => {
                let Ok(attempt) = serde_json::from_value::<AttemptId>(raw.into()) else {
                    continue;
                };
                if !in_flight.contains(&attempt) {
                    let answer =
                        scheduler.handle_response(now, attempt, Response::new(Bytes::new()));
                    assert!(
                        answer.is_err(),
                        "an answer for an unknown attempt was accepted"
                    );
                }
            }
            Op::Cancel => scheduler.cancel_queued(),
        }
    }

    // Answer everything still in flight and let time run out: every item must end.
    for _ in 0..100_000 {
        drain(
            &mut scheduler,
            now,
            &mut in_flight,
            &mut done,
            max_in_flight,
        );
        if let Some(attempt) = in_flight.pop() {
            let _ = scheduler.handle_response(now, attempt, Response::new(Bytes::new()));
            continue;
        }
        match scheduler.poll(now) {
            Action::WaitUntil { at, .. } => {
                now = at;
                scheduler.handle_timeout(now);
            }
            Action::Idle => break,
            Action::Done(Done { key, .. }) => *done.entry(key).or_default() += 1,
            Action::Send(send) => in_flight.push(send.attempt),
            _ => break,
        }
    }
    assert_eq!(done.len() as u32, pushed, "an item never ended");
    assert!(done.values().all(|n| *n == 1), "an item ended twice");
}

fn drain(
    scheduler: &mut Scheduler<u32>,
    now: Timestamp,
    in_flight: &mut Vec<AttemptId>,
    done: &mut HashMap<u32, u32>,
    max_in_flight: usize,
) {
    for _ in 0..10_000 {
        match scheduler.poll(now) {
            Action::Send(send) => {
                in_flight.push(send.attempt);
                assert!(
                    scheduler.in_flight() <= max_in_flight,
                    "more in flight than allowed"
                );
            }
            Action::Done(Done { key, .. }) => *done.entry(key).or_default() += 1,
            _ => return,
        }
    }
    panic!("poll kept returning actions: a livelock");
}

/// Parses arbitrary header values with every header parser.
pub fn headers(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let pairs: Vec<(HeaderPick, String)> = input.arbitrary().unwrap_or_default();
    let map = header_map(&pairs);
    let _ = retry_after(&map);
    let seen = rate_observation(&map);
    // When Genesys' own headers parse, they win, and remaining is derived from the limit, so it
    // can never exceed it. (Other families report remaining as sent, however odd.)
    let whole = |name: &str| {
        map.get(name)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
    };
    if let (Some(allowed), Some(_)) = (
        whole("inin-ratelimit-allowed"),
        whole("inin-ratelimit-count"),
    ) {
        assert_eq!(seen.limit, Some(allowed));
        assert!(seen.remaining.is_some_and(|remaining| remaining <= allowed));
    }
}

/// Reads arbitrary bytes as a change file, both as CSV and as JSONL.
pub fn input(data: &[u8]) {
    use gcbulk::input::{Format, ReadOptions, read_changes};
    for format in [None, Some(Format::Csv), Some(Format::Jsonl)] {
        let options = ReadOptions {
            clear_empty: data.first().is_some_and(|b| b % 2 == 0),
            format,
        };
        if let Ok(input) = read_changes("fuzz.csv", data, &options) {
            for error in &input.row_errors {
                assert!(error.source.line >= 1, "a row error without a line");
            }
        }
    }
}
