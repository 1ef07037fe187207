//! Properties of whole runs, over random small scenarios and seeds, with the real core driving:
//! every row ends exactly once; every row that ended updated or unchanged holds what it asked
//! for; gcbulk sends nothing on a lane whose `Retry-After` is pending; a run is a function of its
//! seed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use gcbulk_core::Timestamp;
use gcbulk_core::genesys::RowOutcome;
use gcbulk_sim::baseline::Strategy as Retry;
use gcbulk_sim::compare::{Outcome, simulate_traced};
use gcbulk_sim::model::{
    ClientLimit, DailyLimit, EditorEdit, EditorsConfig, Endpoint, EndpointLimit, Latency,
    ServerConfig, StormWindow,
};
use gcbulk_sim::scenario::{OrgSpec, Scenario};
use proptest::prelude::*;

/// The model answers every request this long after it arrives.
const LATENCY: Duration = Duration::from_millis(50);

fn scenario() -> impl Strategy<Value = Scenario> {
    let org = (3usize..40).prop_flat_map(|users| (Just(users), 1..=users));
    let limit = prop_oneof![
        (3u32..40, 5u64..40)
            .prop_map(|(limit, window_secs)| ClientLimit::FixedWindow { limit, window_secs }),
        (3u32..40, 5u64..40)
            .prop_map(|(limit, period_secs)| ClientLimit::Gcra { limit, period_secs }),
    ];
    let storm = proptest::option::of((0.0..60.0f64, 5.0..40.0f64, 0.2..0.95f64));
    let faults = (0.0..0.1f64, 0.0..0.05f64, 0.0..=1.0f64);
    let editors = proptest::option::of(0.0..0.4f64);
    let endpoint = proptest::option::of((2u32..20, 5u64..30));
    let daily = proptest::option::of(5u64..150);
    (
        org,
        1usize..=3,
        limit,
        any::<(bool, bool)>(),
        storm,
        faults,
        editors,
        (endpoint, daily),
    )
        .prop_map(
            |(
                (users, changed),
                clients,
                per_client,
                (headers, retry_after),
                storm,
                (errors, resets, after_apply),
                editors,
                (endpoint, daily),
            )| {
                let mut server = ServerConfig {
                    latency: Latency::Fixed {
                        ms: LATENCY.as_secs_f64() * 1000.0,
                    },
                    ..ServerConfig::default()
                };
                let rate = &mut server.rate_limit;
                rate.per_client = per_client;
                rate.headers = headers;
                rate.retry_after = retry_after;
                if let Some((start, length, refuse)) = storm {
                    rate.storms.push(StormWindow {
                        start_secs: start,
                        end_secs: start + length,
                        refuse_fraction: refuse,
                        ..StormWindow::default()
                    });
                }
                if let Some((limit, window_secs)) = endpoint {
                    rate.endpoint_limits.push(EndpointLimit {
                        endpoint: Endpoint::PatchUser,
                        limit,
                        window_secs,
                    });
                }
                if let Some(after) = daily {
                    rate.daily_limit = Some(DailyLimit {
                        after_requests: Some(after),
                        ..DailyLimit::default()
                    });
                }
                server.faults.server_error_probability = errors;
                server.faults.reset_probability = resets;
                server.faults.reset_after_apply_fraction = after_apply;
                // Editors change only what gcbulk does not (skills, say): the rows still hold.
                server.editors = editors.map(|fraction| EditorsConfig {
                    fraction,
                    start_secs: 0.0,
                    end_secs: 120.0,
                    edit: EditorEdit::VersionOnly,
                });
                Scenario {
                    name: "random".to_owned(),
                    server,
                    org: OrgSpec { users, changed },
                    clients,
                    workers: 3,
                    horizon_secs: 6.0 * 3600.0,
                    ..Scenario::default()
                }
            },
        )
}

fn retry() -> impl Strategy<Value = Retry> {
    proptest::sample::select(Retry::ALL.to_vec())
}

fn run(scenario: &Scenario, strategy: Retry, seed: u64) -> Outcome {
    match simulate_traced(scenario, strategy, seed) {
        Ok(outcome) => outcome,
        Err(error) => panic!("{error}"),
    }
}

/// Every row of every client is reported exactly once.
fn every_row_ends_once(scenario: &Scenario, outcome: &Outcome) -> Result<(), TestCaseError> {
    for (client, rows) in scenario.rows().iter().enumerate() {
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        for (_, report) in outcome.harness.outputs(client) {
            *seen.entry(report.source.line).or_default() += 1;
        }
        let expected: BTreeMap<u64, usize> = rows.iter().map(|r| (r.source.line, 1)).collect();
        prop_assert_eq!(seen, expected, "client {}", client);
    }
    Ok(())
}

/// Every row reported updated or unchanged holds what it asked for on the server.
fn settled_rows_hold(scenario: &Scenario, outcome: &Outcome) -> Result<(), TestCaseError> {
    let server = outcome.harness.server();
    for client in 0..scenario.clients {
        for (_, report) in outcome.harness.outputs(client) {
            let user_id = match &report.outcome {
                RowOutcome::Updated { user_id, .. } | RowOutcome::Unchanged { user_id, .. } => {
                    user_id
                }
                _ => continue,
            };
            let index: usize = user_id[1..]
                .parse()
                .map_err(|_| TestCaseError::fail(format!("not a generated user id: {user_id}")))?;
            let desired = Scenario::desired(index);
            let Some(user) = server.user(user_id) else {
                return Err(TestCaseError::fail(format!("{user_id} is gone")));
            };
            prop_assert_eq!(&user.title, &desired.title, "{}", user_id);
            prop_assert_eq!(&user.department, &desired.department, "{}", user_id);
        }
    }
    Ok(())
}

/// The lane gcbulk's scheduler puts a request in.
fn lane(request: &str) -> &'static str {
    if request.starts_with("PATCH ") {
        "patch"
    } else if request.starts_with("POST /oauth/token") {
        "login"
    } else {
        "reads"
    }
}

/// After a 429 with `Retry-After: W` reaches a client, it sends nothing on that lane for W.
fn retry_after_is_honoured(outcome: &Outcome) -> Result<(), TestCaseError> {
    // Per client and lane: when the latest pause ends.
    let mut paused: HashMap<(usize, &str), (Timestamp, Timestamp)> = HashMap::new();
    let mut pending: Vec<(Timestamp, usize, &str, Duration)> = Vec::new();
    for line in outcome.harness.trace() {
        let lane = lane(&line.request);
        // Pauses whose 429 has arrived by now take effect.
        pending.retain(|&(arrives, client, pause_lane, wait)| {
            if arrives > line.at {
                return true;
            }
            let entry = paused
                .entry((client, pause_lane))
                .or_insert((arrives, arrives));
            if arrives + wait > entry.1 {
                *entry = (arrives, arrives + wait);
            }
            false
        });
        // A send at the very instant a 429 arrives may come before the client reads it: events
        // at one instant run in the order they were scheduled.
        if let Some(&(from, until)) = paused.get(&(line.client, lane)) {
            prop_assert!(
                line.at <= from || line.at >= until,
                "client {} sent {} at {} during a Retry-After pause from {} to {}",
                line.client,
                line.request,
                line.at,
                from,
                until
            );
        }
        if let Some(wait) = line
            .answer
            .strip_prefix("429 (retry-after ")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|secs| secs.parse::<u64>().ok())
        {
            pending.push((
                line.at + LATENCY,
                line.client,
                lane,
                Duration::from_secs(wait),
            ));
        }
    }
    Ok(())
}

/// A few dozen cases keep `cargo test` quick; `PROPTEST_CASES=2000` searches harder.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(32);
    ProptestConfig {
        cases,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

/// Found by the property below: a reset and several 429s answer one burst at the same instant;
/// the reset frees a slot and the next PATCH goes out at that instant, before the 429s are read.
#[test]
fn a_send_in_the_instant_a_429_arrives_is_not_inside_its_pause() {
    let mut scenario = Scenario {
        name: "random".to_owned(),
        org: OrgSpec {
            users: 17,
            changed: 17,
        },
        workers: 3,
        horizon_secs: 6.0 * 3600.0,
        ..Scenario::default()
    };
    let server = &mut scenario.server;
    server.latency = Latency::Fixed { ms: 50.0 };
    server.rate_limit.per_client = ClientLimit::FixedWindow {
        limit: 11,
        window_secs: 5,
    };
    server.rate_limit.endpoint_limits.push(EndpointLimit {
        endpoint: Endpoint::PatchUser,
        limit: 2,
        window_secs: 5,
    });
    server.faults.server_error_probability = 0.093;
    server.faults.reset_probability = 0.038;

    let outcome = run(&scenario, Retry::Gcbulk, 0);
    let same_instant = outcome
        .harness
        .trace()
        .windows(2)
        .any(|pair| pair[0].answer.starts_with("429") && pair[1].at == pair[0].at + LATENCY);
    assert!(
        same_instant,
        "the case no longer sends at the instant a 429 arrives"
    );
    every_row_ends_once(&scenario, &outcome).unwrap();
    settled_rows_hold(&scenario, &outcome).unwrap();
    retry_after_is_honoured(&outcome).unwrap();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_row_ends_exactly_once_and_settled_rows_hold(
        scenario in scenario(),
        strategy in retry(),
        seed in any::<u64>(),
    ) {
        let outcome = run(&scenario, strategy, seed);
        every_row_ends_once(&scenario, &outcome)?;
        settled_rows_hold(&scenario, &outcome)?;
    }

    #[test]
    fn gcbulk_sends_nothing_on_a_lane_while_its_retry_after_is_pending(
        scenario in scenario(),
        seed in any::<u64>(),
    ) {
        let outcome = run(&scenario, Retry::Gcbulk, seed);
        every_row_ends_once(&scenario, &outcome)?;
        settled_rows_hold(&scenario, &outcome)?;
        retry_after_is_honoured(&outcome)?;
    }

    #[test]
    fn a_run_is_a_function_of_its_seed(
        scenario in scenario(),
        strategy in retry(),
        seed in any::<u64>(),
    ) {
        let first = run(&scenario, strategy, seed);
        let second = run(&scenario, strategy, seed);
        prop_assert_eq!(first.harness.trace(), second.harness.trace());
        prop_assert_eq!(first.harness.server().stats(), second.harness.server().stats());
        for client in 0..scenario.clients {
            prop_assert_eq!(first.harness.outputs(client), second.harness.outputs(client));
        }
    }
}
