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

/// Reads arbitrary bytes as a journal and checks what a resume relies on: only a torn last line
/// is left out, what was read reads the same when written anew, and a journal cut and appended
/// to the way a resumed run does it reads back whole, the new record last.
pub fn journal(data: &[u8]) {
    use gcbulk::journal::{Entry, RowRecord, parse};
    use gcbulk_core::change::UserKey;
    use gcbulk_core::genesys::RowOutcome;

    let Ok(loaded) = parse(data) else {
        return;
    };
    let whole = usize::try_from(loaded.whole_len()).unwrap_or(usize::MAX);
    assert!(whole <= data.len(), "the whole lines end past the file");
    assert_eq!(
        loaded.torn,
        whole < data.len(),
        "only a torn line is left out"
    );
    for (number, recorded) in &loaded.rows {
        assert_eq!(
            *number, recorded.record.line,
            "a row filed under another line"
        );
        assert!(recorded.journal_line >= 2, "a row before the header");
    }

    // Written anew, what was read reads the same.
    let mut again = Vec::new();
    let mut push = |entry: Entry<'_>| match entry.to_line() {
        Ok(line) => again.extend(line),
        Err(error) => panic!("a record read cannot be written: {error}"),
    };
    push(Entry::Header(&loaded.header));
    for (_, patch) in &loaded.patches {
        push(Entry::Patch(patch));
    }
    for (_, refusal) in &loaded.refused {
        push(Entry::PatchRefused(refusal));
    }
    for recorded in loaded.rows.values() {
        push(Entry::Row(&recorded.record));
    }
    let reread = match parse(&again) {
        Ok(reread) => reread,
        Err(error) => panic!("a journal written from what was read is refused: {error}"),
    };
    let mut header = loaded.header.clone();
    let rate = |h: &gcbulk::journal::Header| h.options.max_rate;
    // A float may come back a unit in the last place off; anything more is a real difference.
    if let (Some(a), Some(b)) = (rate(&header), rate(&reread.header)) {
        assert!(
            (a - b).abs() <= a.abs() * 1e-12,
            "max_rate {a} read back as {b}"
        );
        header.options.max_rate = Some(b);
    }
    assert_eq!(header, reread.header);
    let records = |l: &gcbulk::journal::Loaded| -> Vec<RowRecord> {
        l.rows.values().map(|r| r.record.clone()).collect()
    };
    assert_eq!(records(&loaded), records(&reread));
    let patches =
        |l: &gcbulk::journal::Loaded| l.patches.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>();
    assert_eq!(patches(&loaded), patches(&reread));
    let refused =
        |l: &gcbulk::journal::Loaded| l.refused.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>();
    assert_eq!(refused(&loaded), refused(&reread));

    // What a resume makes of PATCHes without answers: each claimed at most once.
    assert!(loaded.patches_not_refused().count() <= loaded.patches.len());
    let mut unanswered = gcbulk::journal::Unanswered::from_journal(&loaded);
    let mut claimed = 0;
    for (_, patch) in &loaded.patches {
        let found = RowOutcome::Unchanged {
            user_id: patch.user_id.clone(),
            version: patch.version.saturating_add(1),
        };
        claimed += usize::from(matches!(
            unanswered.settle(found),
            RowOutcome::Updated { .. }
        ));
    }
    assert!(claimed <= loaded.patches.len());

    // A resume cuts the torn line, ends the last one, then appends: all of it must read back.
    let mut resumed = data[..whole].to_vec();
    if loaded.unterminated() {
        resumed.push(b'\n');
    }
    let record = RowRecord {
        line: u64::MAX,
        key: UserKey::Id("fuzz".into()),
        outcome: RowOutcome::NotFound,
    };
    for entry in [
        Entry::Resumed {
            started_at: "2026-01-05T09:00:00Z",
        },
        Entry::Row(&record),
    ] {
        match entry.to_line() {
            Ok(line) => resumed.extend(line),
            Err(error) => panic!("{error}"),
        }
    }
    let after = match parse(&resumed) {
        Ok(after) => after,
        Err(error) => panic!("a journal appended to as a resume does is refused: {error}"),
    };
    assert!(!after.torn, "an appended journal reads as torn");
    assert_eq!(after.header, loaded.header);
    assert_eq!(after.rows.get(&u64::MAX).map(|r| &r.record), Some(&record));
    assert_eq!(
        after.rows.len(),
        loaded.rows.len() + usize::from(!loaded.rows.contains_key(&u64::MAX))
    );
    assert_eq!(after.patches.len(), loaded.patches.len());
}
