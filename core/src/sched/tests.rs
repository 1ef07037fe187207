use std::collections::{BTreeMap, BinaryHeap};

use proptest::prelude::*;

use super::*;

fn get(id: u32) -> Request<Bytes> {
    Request::get(format!("https://api.example/items/{id}"))
        .body(Bytes::new())
        .unwrap()
}

fn response(status: u16, headers: &[(&'static str, &str)]) -> Response<Bytes> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::new()).unwrap()
}

fn quiet_config() -> Config {
    Config {
        backoff: Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
            jitter: Jitter::None,
        },
        ..Config::default()
    }
}

fn expect_send<K: fmt::Debug>(action: Action<Done<K>>) -> Send {
    match action {
        Action::Send(send) => send,
        other => panic!("expected a send, got {other:?}"),
    }
}

fn expect_done<K: fmt::Debug>(action: Action<Done<K>>) -> Done<K> {
    match action {
        Action::Done(done) => done,
        other => panic!("expected done, got {other:?}"),
    }
}

fn status_of<K>(done: &Done<K>) -> Option<u16> {
    match &done.outcome {
        Outcome::Response(response) => Some(response.status().as_u16()),
        Outcome::GaveUp { .. } => None,
    }
}

#[test]
fn happy_path_ends_each_item_once_in_order() {
    let mut s = Scheduler::new(quiet_config(), 1);
    let t0 = Timestamp::ZERO;
    for id in 0..3 {
        s.push(t0, id, get(id));
    }
    let sends: Vec<Send> = (0..3).map(|_| expect_send(s.poll(t0))).collect();
    assert!(matches!(s.poll(t0), Action::WaitForResponse));
    for send in sends {
        s.handle_response(Timestamp::from_millis(50), send.attempt, response(200, &[]))
            .unwrap();
    }
    let keys: Vec<u32> = (0..3)
        .map(|_| expect_done(s.poll(Timestamp::from_millis(50))).key)
        .collect();
    assert_eq!(keys, [0, 1, 2]);
    assert!(matches!(s.poll(Timestamp::from_millis(50)), Action::Idle));
    assert_eq!(s.stats().sent, 3);
    assert_eq!(s.stats().done, 3);
}

#[test]
fn concurrency_limit_holds_items_back() {
    let config = Config {
        max_in_flight: 2,
        ..quiet_config()
    };
    let mut s = Scheduler::new(config, 1);
    for id in 0..5 {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let first = expect_send(s.poll(Timestamp::ZERO));
    let _second = expect_send(s.poll(Timestamp::ZERO));
    assert!(matches!(s.poll(Timestamp::ZERO), Action::WaitForResponse));
    assert_eq!(s.in_flight(), 2);
    s.handle_response(
        Timestamp::from_millis(10),
        first.attempt,
        response(200, &[]),
    )
    .unwrap();
    assert_eq!(expect_done(s.poll(Timestamp::from_millis(10))).key, 0);
    let _third = expect_send(s.poll(Timestamp::from_millis(10)));
}

#[test]
fn retry_after_pauses_every_item_and_the_refused_one_goes_first() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, "a", get(1));
    s.push(Timestamp::ZERO, "b", get(2));
    let a = expect_send(s.poll(Timestamp::ZERO));
    let b = expect_send(s.poll(Timestamp::ZERO));
    let t = Timestamp::from_secs(1);
    s.handle_response(t, a.attempt, response(429, &[("retry-after", "3")]))
        .unwrap();
    s.handle_response(t, b.attempt, response(200, &[])).unwrap();
    assert_eq!(expect_done(s.poll(t)).key, "b");

    let Action::WaitUntil { at, reason } = s.poll(t) else {
        panic!("expected a wait")
    };
    assert_eq!(reason, WaitReason::RetryAfter);
    assert!(
        at >= Timestamp::from_secs(4) && at <= Timestamp::from_millis(4_300),
        "{at}"
    );

    let retry = expect_send(s.poll(at));
    assert_eq!(retry.request.uri(), "https://api.example/items/1");
    s.handle_response(at, retry.attempt, response(200, &[]))
        .unwrap();
    let done = expect_done(s.poll(at));
    assert_eq!((done.key, done.attempts, done.throttled), ("a", 2, 1));
}

#[test]
fn transient_failures_back_off_exactly_without_jitter() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let mut now = Timestamp::ZERO;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let send = expect_send(s.poll(now));
        s.handle_response(now, send.attempt, response(503, &[]))
            .unwrap();
        let Action::WaitUntil { at, reason } = s.poll(now) else {
            panic!("expected a wait")
        };
        assert_eq!(reason, WaitReason::Backoff);
        waits.push(at.saturating_since(now).as_secs());
        now = at;
    }
    assert_eq!(waits, [1, 2, 4]);
    let send = expect_send(s.poll(now));
    s.handle_response(now, send.attempt, response(200, &[]))
        .unwrap();
    assert_eq!(status_of(&expect_done(s.poll(now))), Some(200));
}

#[test]
fn a_503_retry_after_is_honoured_per_item() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let send = expect_send(s.poll(Timestamp::ZERO));
    let answer = response(503, &[("retry-after", "7")]);
    s.handle_response(Timestamp::ZERO, send.attempt, answer)
        .unwrap();
    let Action::WaitUntil { at, reason } = s.poll(Timestamp::ZERO) else {
        panic!()
    };
    assert_eq!((at, reason), (Timestamp::from_secs(7), WaitReason::Backoff));
}

#[test]
fn attempts_are_capped_and_the_last_failure_is_kept() {
    let config = Config {
        max_attempts: 2,
        ..quiet_config()
    };
    let mut s = Scheduler::new(config, 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let mut now = Timestamp::ZERO;
    let done = loop {
        match s.poll(now) {
            Action::Send(send) => {
                s.handle_response(now, send.attempt, response(502, &[]))
                    .unwrap();
            }
            Action::WaitUntil { at, .. } => now = at,
            Action::Done(done) => break done,
            other => panic!("{other:?}"),
        }
    };
    let Outcome::GaveUp { reason, last } = done.outcome else {
        panic!("expected a give-up")
    };
    assert_eq!(reason, GiveUpReason::AttemptsExhausted { attempts: 2 });
    assert!(matches!(last, Some(LastFailure::Response(r)) if r.status() == 502));
}

#[test]
fn final_statuses_are_handed_back_untouched() {
    for status in [400, 401, 404, 409, 500, 501] {
        let mut s = Scheduler::new(quiet_config(), 1);
        s.push(Timestamp::ZERO, 0, get(0));
        let send = expect_send(s.poll(Timestamp::ZERO));
        s.handle_response(Timestamp::ZERO, send.attempt, response(status, &[]))
            .unwrap();
        let done = expect_done(s.poll(Timestamp::ZERO));
        assert_eq!((status_of(&done), done.attempts), (Some(status), 1));
    }
}

#[test]
fn retry_500_is_a_setting() {
    let config = Config {
        classifier: Classifier { retry_500: true },
        ..quiet_config()
    };
    let mut s = Scheduler::new(config, 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let send = expect_send(s.poll(Timestamp::ZERO));
    s.handle_response(Timestamp::ZERO, send.attempt, response(500, &[]))
        .unwrap();
    assert!(matches!(
        s.poll(Timestamp::ZERO),
        Action::WaitUntil {
            reason: WaitReason::Backoff,
            ..
        }
    ));
}

#[test]
fn transport_errors_retry_but_refusals_do_not() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let send = expect_send(s.poll(Timestamp::ZERO));
    s.handle_transport_error(Timestamp::ZERO, send.attempt, TransportError::Reset)
        .unwrap();
    let Action::WaitUntil { at, .. } = s.poll(Timestamp::ZERO) else {
        panic!()
    };
    let send = expect_send(s.poll(at));
    let refusal = TransportError::Refused("plain http to a remote host".into());
    s.handle_transport_error(at, send.attempt, refusal).unwrap();
    let done = expect_done(s.poll(at));
    let Outcome::GaveUp { reason, .. } = done.outcome else {
        panic!()
    };
    assert!(matches!(reason, GiveUpReason::Transport { .. }));
}

#[test]
fn a_retry_after_too_long_to_count_gives_up_at_once_as_resumable() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let send = expect_send(s.poll(Timestamp::ZERO));
    let endless = response(429, &[("retry-after", "99999999999999999999")]);
    s.handle_response(Timestamp::ZERO, send.attempt, endless)
        .unwrap();
    let done = expect_done(s.poll(Timestamp::ZERO));
    let Outcome::GaveUp { reason, .. } = done.outcome else {
        panic!()
    };
    assert!(matches!(reason, GiveUpReason::RateLimitedTooLong { .. }));
    assert!(reason.to_string().starts_with("rate limited for too long"));
}

#[test]
fn long_retry_after_gives_up_every_waiting_item_as_resumable() {
    let mut s = Scheduler::new(quiet_config(), 1);
    for id in 0..3 {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let first = expect_send(s.poll(Timestamp::ZERO));
    let second = expect_send(s.poll(Timestamp::ZERO));
    let third = expect_send(s.poll(Timestamp::ZERO));
    let daily = response(429, &[("retry-after", "3600")]);
    s.handle_response(Timestamp::ZERO, first.attempt, daily)
        .unwrap();
    s.handle_response(Timestamp::ZERO, second.attempt, response(200, &[]))
        .unwrap();
    s.handle_response(Timestamp::ZERO, third.attempt, response(503, &[]))
        .unwrap();

    let mut reasons = BTreeMap::new();
    let mut now = Timestamp::ZERO;
    loop {
        match s.poll(now) {
            Action::Done(done) => {
                let reason = match done.outcome {
                    Outcome::GaveUp { reason, .. } => Some(reason),
                    Outcome::Response(_) => None,
                };
                reasons.insert(done.key, reason);
            }
            Action::WaitUntil { at, .. } => now = at,
            Action::Idle => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        reasons[&0],
        Some(GiveUpReason::RateLimitedTooLong {
            retry_after: Duration::from_secs(3600)
        })
    );
    assert_eq!(reasons[&1], None);
    assert!(matches!(
        reasons[&2],
        Some(GiveUpReason::RateLimitedTooLong { .. })
    ));
    assert!(
        now < Timestamp::from_secs(60),
        "gave up without waiting out the hour: {now}"
    );
}

#[test]
fn an_answer_for_an_unknown_or_finished_attempt_is_an_error() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let send = expect_send(s.poll(Timestamp::ZERO));
    let bogus = AttemptId::new(99, 99);
    assert_eq!(
        s.handle_response(Timestamp::ZERO, bogus, response(200, &[])),
        Err(HandleError::UnknownAttempt(bogus))
    );
    s.handle_response(Timestamp::ZERO, send.attempt, response(200, &[]))
        .unwrap();
    assert_eq!(
        s.handle_transport_error(Timestamp::ZERO, send.attempt, TransportError::Reset),
        Err(HandleError::UnknownAttempt(send.attempt))
    );
    assert_eq!(expect_done(s.poll(Timestamp::ZERO)).key, 0);
    assert!(matches!(s.poll(Timestamp::ZERO), Action::Idle));
}

#[test]
fn an_empty_retry_budget_makes_retries_wait() {
    let config = Config {
        budget: BudgetConfig {
            capacity: 1.0,
            earn_per_success: 0.0,
            refill_per_second: 0.25,
        },
        ..quiet_config()
    };
    let mut s = Scheduler::new(config, 1);
    for id in 0..3 {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let attempts: Vec<_> = (0..3)
        .map(|_| expect_send(s.poll(Timestamp::ZERO)).attempt)
        .collect();
    for attempt in attempts {
        s.handle_response(Timestamp::ZERO, attempt, response(503, &[]))
            .unwrap();
    }
    // Every retry waits its 1 s backoff; the first takes the only token.
    let Action::WaitUntil { at, reason } = s.poll(Timestamp::ZERO) else {
        panic!()
    };
    assert_eq!((at, reason), (Timestamp::from_secs(1), WaitReason::Backoff));
    let first = expect_send(s.poll(at));
    // The next needs a token that time alone refills in 4 s.
    let Action::WaitUntil { at, reason } = s.poll(at) else {
        panic!()
    };
    assert_eq!(
        (at, reason),
        (Timestamp::from_secs(5), WaitReason::RetryBudget)
    );
    // It fails again and keeps its token spent: after its own backoff it waits for the token too.
    let later = Timestamp::from_millis(1_100);
    s.handle_response(later, first.attempt, response(503, &[]))
        .unwrap();
    let Action::WaitUntil { at, reason } = s.poll(later) else {
        panic!()
    };
    assert_eq!(
        (at, reason),
        (Timestamp::from_millis(3_100), WaitReason::Backoff)
    );
    let Action::WaitUntil { at, reason } = s.poll(at) else {
        panic!()
    };
    assert_eq!(
        (at, reason),
        (Timestamp::from_secs(5), WaitReason::RetryBudget)
    );
    // A retry that succeeds hands its token back, so the one behind it goes at once.
    let again = expect_send(s.poll(at));
    s.handle_response(at, again.attempt, response(200, &[]))
        .unwrap();
    assert!(matches!(s.poll(at), Action::Done(_)));
    let next = expect_send(s.poll(at));
    assert_ne!(next.attempt.slot(), again.attempt.slot());
}

#[test]
fn a_retry_budget_that_never_refills_gives_up_rather_than_hang() {
    let config = Config {
        budget: BudgetConfig {
            capacity: 0.0,
            earn_per_success: 0.0,
            refill_per_second: 0.0,
        },
        ..quiet_config()
    };
    let mut s = Scheduler::new(config, 1);
    s.push(Timestamp::ZERO, 0, get(0));
    let send = expect_send(s.poll(Timestamp::ZERO));
    s.handle_response(Timestamp::ZERO, send.attempt, response(503, &[]))
        .unwrap();
    let at = Timestamp::from_secs(1);
    let done = expect_done(s.poll(at));
    assert!(matches!(
        done.outcome,
        Outcome::GaveUp {
            reason: GiveUpReason::AttemptsExhausted { attempts: 1 },
            ..
        }
    ));
}

#[test]
fn configured_rate_spaces_sends() {
    let mut config = quiet_config();
    config.pacing.initial_rate = Some(4.0);
    let mut s = Scheduler::new(config, 1);
    for id in 0..3 {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let mut now = Timestamp::ZERO;
    let mut sent_at = Vec::new();
    while sent_at.len() < 3 {
        match s.poll(now) {
            Action::Send(_) => sent_at.push(now.as_micros() / 1000),
            Action::WaitUntil { at, reason } => {
                assert_eq!(reason, WaitReason::Pacing);
                now = at;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent_at, [0, 250, 500]);
}

#[test]
fn a_spent_window_waits_for_its_reset() {
    let mut s = Scheduler::new(quiet_config(), 1);
    s.push(Timestamp::ZERO, 0, get(0));
    s.push(Timestamp::ZERO, 1, get(1));
    let a = expect_send(s.poll(Timestamp::ZERO));
    let spent = response(
        200,
        &[
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-count", "300"),
            ("inin-ratelimit-reset", "10"),
        ],
    );
    let t = Timestamp::from_secs(50);
    s.handle_response(t, a.attempt, spent).unwrap();
    assert_eq!(expect_done(s.poll(t)).key, 0);
    let Action::WaitUntil { at, reason } = s.poll(t) else {
        panic!()
    };
    assert_eq!(
        (at, reason),
        (Timestamp::from_millis(60_500), WaitReason::RateWindow)
    );
}

#[test]
fn a_429_with_budget_left_is_blamed_on_its_lane() {
    let mut s = Scheduler::new(quiet_config(), 1);
    let patch = s.add_lane();
    s.push_with(
        Timestamp::ZERO,
        "patch-1",
        get(1),
        ItemOptions {
            lane: Some(patch),
            urgent: false,
        },
    );
    s.push_with(
        Timestamp::ZERO,
        "patch-2",
        get(2),
        ItemOptions {
            lane: Some(patch),
            urgent: false,
        },
    );
    let refused = expect_send(s.poll(Timestamp::ZERO));
    let endpoint_limit = response(
        429,
        &[
            ("retry-after", "20"),
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-count", "12"),
            ("inin-ratelimit-reset", "40"),
        ],
    );
    s.handle_response(Timestamp::ZERO, refused.attempt, endpoint_limit)
        .unwrap();
    s.push(Timestamp::ZERO, "get", get(3));
    // The default lane is not paused by the PATCH lane's limit.
    let send = expect_send(s.poll(Timestamp::ZERO));
    assert_eq!(send.request.uri(), "https://api.example/items/3");
    let Action::WaitUntil { at, reason } = s.poll(Timestamp::ZERO) else {
        panic!()
    };
    assert_eq!(reason, WaitReason::RetryAfter);
    assert!(at >= Timestamp::from_secs(20));
}

#[test]
fn the_run_deadline_ends_queued_items() {
    let mut config = quiet_config();
    config.run_deadline = Some(Timestamp::from_secs(2));
    config.pacing.initial_rate = Some(1.0);
    let mut s = Scheduler::new(config, 1);
    for id in 0..5 {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let mut now = Timestamp::ZERO;
    let (mut ok, mut late) = (0, 0);
    loop {
        match s.poll(now) {
            Action::Send(send) => s
                .handle_response(now, send.attempt, response(200, &[]))
                .unwrap(),
            Action::Done(done) => match done.outcome {
                Outcome::Response(_) => ok += 1,
                Outcome::GaveUp { reason, .. } => {
                    assert_eq!(reason, GiveUpReason::RunDeadline);
                    late += 1;
                }
            },
            Action::WaitUntil { at, .. } => now = at,
            Action::Idle => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, late), (2, 3));
}

#[test]
fn cancelling_ends_queued_and_sleeping_items_but_not_those_in_flight() {
    let config = Config {
        max_in_flight: 1,
        ..quiet_config()
    };
    let mut s = Scheduler::new(config, 1);
    for id in 0..3 {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let flying = expect_send(s.poll(Timestamp::ZERO));
    s.cancel_queued();
    let cancelled: Vec<u32> = (0..2)
        .map(|_| expect_done(s.poll(Timestamp::ZERO)).key)
        .collect();
    assert_eq!(cancelled, [1, 2]);
    assert!(matches!(s.poll(Timestamp::ZERO), Action::WaitForResponse));
    s.handle_response(Timestamp::ZERO, flying.attempt, response(200, &[]))
        .unwrap();
    assert_eq!(status_of(&expect_done(s.poll(Timestamp::ZERO))), Some(200));
}

// ---- Properties over random servers -------------------------------------------------------

/// How the fake server answers one attempt.
#[derive(Clone, Debug)]
enum Answer {
    Ok,
    Throttle(Option<u64>),
    Unavailable,
    NotFound,
    Reset,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        6 => Just(Answer::Ok),
        2 => proptest::option::of(0u64..20).prop_map(Answer::Throttle),
        2 => Just(Answer::Unavailable),
        1 => Just(Answer::NotFound),
        1 => Just(Answer::Reset),
    ]
}

#[derive(Clone, Debug)]
struct Script {
    items: u32,
    max_in_flight: usize,
    jitter: Jitter,
    seed: u64,
    answers: Vec<(Answer, u64)>,
}

fn script() -> impl Strategy<Value = Script> {
    let jitter = prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        Just(Jitter::Additive),
    ];
    (
        1u32..40,
        1usize..6,
        jitter,
        any::<u64>(),
        prop::collection::vec((answer(), 1u64..800), 1..200),
    )
        .prop_map(|(items, max_in_flight, jitter, seed, answers)| Script {
            items,
            max_in_flight,
            jitter,
            seed,
            answers,
        })
}

/// What one run produced, for the properties to check.
#[derive(Debug, PartialEq)]
struct Trace {
    events: Vec<String>,
    done: BTreeMap<u32, u32>,
    max_in_flight_seen: usize,
    sends_during_pause: usize,
    attempts: BTreeMap<u32, u32>,
}

fn run(script: &Script) -> Trace {
    let config = Config {
        max_in_flight: script.max_in_flight,
        max_attempts: 4,
        max_throttled: 6,
        backoff: Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            jitter: script.jitter,
        },
        ..Config::default()
    };
    let mut s = Scheduler::new(config, script.seed);
    for id in 0..script.items {
        s.push(Timestamp::ZERO, id, get(id));
    }
    let mut now = Timestamp::ZERO;
    let mut pending: BinaryHeap<Reverse<(Timestamp, u64, AttemptId, u32)>> = BinaryHeap::new();
    let mut next_answer = 0usize;
    let mut trace = Trace {
        events: Vec::new(),
        done: BTreeMap::new(),
        max_in_flight_seen: 0,
        sends_during_pause: 0,
        attempts: BTreeMap::new(),
    };
    let mut paused_until = Timestamp::ZERO;
    let mut counter = 0;
    for _ in 0..100_000 {
        match s.poll(now) {
            Action::Send(send) => {
                if now < paused_until {
                    trace.sends_during_pause += 1;
                }
                let id: u32 = send
                    .request
                    .uri()
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                *trace.attempts.entry(id).or_default() += 1;
                trace.events.push(format!("{now} send {id}"));
                let (_, latency) = &script.answers[next_answer % script.answers.len()];
                counter += 1;
                pending.push(Reverse((
                    now + Duration::from_millis(*latency),
                    counter,
                    send.attempt,
                    next_answer as u32,
                )));
                next_answer += 1;
                trace.max_in_flight_seen = trace.max_in_flight_seen.max(s.in_flight());
            }
            Action::Done(done) => {
                trace
                    .events
                    .push(format!("{now} done {} {:?}", done.key, status_of(&done)));
                *trace.done.entry(done.key).or_default() += 1;
            }
            Action::WaitUntil { at, reason } => {
                let next = pending.peek().map(|Reverse((t, ..))| *t);
                match next {
                    Some(t) if t <= at => {
                        deliver(&mut s, &mut pending, script, &mut now, &mut paused_until)
                    }
                    _ => {
                        trace
                            .events
                            .push(format!("{now} wait {at} {}", reason.as_str()));
                        assert!(at >= now, "a wait into the past");
                        now = at;
                        s.handle_timeout(now);
                    }
                }
            }
            Action::WaitForResponse => {
                assert!(
                    !pending.is_empty(),
                    "waiting for a response while none is in flight"
                );
                deliver(&mut s, &mut pending, script, &mut now, &mut paused_until);
            }
            Action::Idle => return trace,
        }
    }
    panic!("livelock: the scheduler did not finish in 100,000 steps");
}

fn deliver(
    s: &mut Scheduler<u32>,
    pending: &mut BinaryHeap<Reverse<(Timestamp, u64, AttemptId, u32)>>,
    script: &Script,
    now: &mut Timestamp,
    paused_until: &mut Timestamp,
) {
    let Reverse((at, _, attempt, index)) = pending.pop().unwrap();
    *now = (*now).max(at);
    let (answer, _) = &script.answers[index as usize % script.answers.len()];
    let result = match answer {
        Answer::Ok => s.handle_response(*now, attempt, response(200, &[])),
        Answer::Throttle(Some(secs)) => {
            *paused_until = (*paused_until).max(*now + Duration::from_secs(*secs));
            s.handle_response(
                *now,
                attempt,
                response(429, &[("retry-after", &secs.to_string())]),
            )
        }
        Answer::Throttle(None) => s.handle_response(*now, attempt, response(429, &[])),
        Answer::Unavailable => s.handle_response(*now, attempt, response(503, &[])),
        Answer::NotFound => s.handle_response(*now, attempt, response(404, &[])),
        Answer::Reset => s.handle_transport_error(*now, attempt, TransportError::Reset),
    };
    result.unwrap();
    // A duplicate answer must be refused without disturbing anything.
    assert!(
        s.handle_response(*now, attempt, response(200, &[]))
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_item_ends_exactly_once(script in script()) {
        let trace = run(&script);
        prop_assert_eq!(trace.done.len() as u32, script.items);
        prop_assert!(trace.done.values().all(|count| *count == 1));
    }

    #[test]
    fn never_more_in_flight_than_the_limit(script in script()) {
        prop_assert!(run(&script).max_in_flight_seen <= script.max_in_flight);
    }

    #[test]
    fn nothing_is_sent_while_a_retry_after_is_pending(script in script()) {
        prop_assert_eq!(run(&script).sends_during_pause, 0);
    }

    #[test]
    fn attempts_stay_within_their_caps(script in script()) {
        let trace = run(&script);
        // Transient failures are capped at 4 attempts and 429s at 6, so 9 sends at most.
        prop_assert!(trace.attempts.values().all(|n| *n < 4 + 6), "{:?}", trace.attempts);
    }

    #[test]
    fn the_same_seed_and_inputs_give_the_same_trace(script in script()) {
        prop_assert_eq!(run(&script), run(&script));
    }
}
