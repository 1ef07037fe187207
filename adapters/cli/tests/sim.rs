//! `gcbulk sim` and `gcbulk update --trace`: a run against the emulator records its answers,
//! and the comparison plays them back.

#![allow(clippy::unwrap_used, reason = "a test stops at the first surprise")]

mod support;

use gcbulk_sim::model::{StormWindow, ThrottleCause};
use gcbulk_sim::scenario::Replay;
use serde_json::Value;
use support::{fast_server, gcbulk, run, sample_sheet_head, sample_users, scratch, start};

#[test]
fn a_recorded_trace_replays_in_the_comparison() {
    // Half of the requests of the first second are refused, so the trace holds 429s.
    let mut server = fast_server();
    server.rate_limit.storms.push(StormWindow {
        start_secs: 0.0,
        end_secs: 1.0,
        refuse_fraction: 0.5,
        retry_after_min_secs: 1,
        retry_after_max_secs: 1,
    });
    let emulator = start(server, sample_users());
    let dir = scratch();
    std::fs::write(dir.path().join("reorg.csv"), sample_sheet_head(40)).unwrap();

    let updated = run(gcbulk(dir.path()).args([
        "update",
        "reorg.csv",
        "--api-base",
        &emulator.base_url(),
        "--trace",
        "storm.json",
    ]));
    assert!(updated.stderr.contains("trace: "), "{}", updated.stderr);
    let stats = emulator.stats();
    let storm = stats.throttled_by.get(&ThrottleCause::Storm).copied();
    assert!(storm.unwrap_or(0) > 0, "the run met the storm: {stats:?}");

    // The file is what the simulator replays: every non-token answer, in order of sending.
    let text = std::fs::read_to_string(dir.path().join("storm.json")).unwrap();
    let replay = Replay::from_json(&text).unwrap();
    let tokens = stats.count(gcbulk_sim::model::Endpoint::Token, 200);
    assert_eq!(replay.entries.len() as u64, stats.total() - tokens);
    let refused = replay.entries.iter().filter(|e| e.status == 429).count();
    assert_eq!(refused as u64, stats.throttled);
    assert!(replay.entries.windows(2).all(|w| w[0].at_s <= w[1].at_s));
    let first = replay.entries.iter().find(|e| e.status == 429).unwrap();
    assert_eq!(first.headers["retry-after"], "1");
    assert!(first.headers.contains_key("inin-ratelimit-count"));

    // Played back over the steady scenario, gcbulk meets exactly the recorded 429s.
    let compared = run(gcbulk(dir.path()).args([
        "sim",
        "compare",
        "--scenario",
        "storm.json",
        "--format",
        "json",
        "--plot",
        "storm.svg",
    ]));
    compared.expect_code(0);
    let comparison: Value = serde_json::from_str(&compared.stdout).unwrap();
    assert_eq!(comparison["scenario"], "storm");
    let gcbulk_row = &comparison["strategies"][0];
    assert_eq!(gcbulk_row["name"], "gcbulk");
    assert_eq!(gcbulk_row["throttled"], refused as u64, "{gcbulk_row}");
    assert_eq!(gcbulk_row["failed_items"], 0);
    let svg = std::fs::read_to_string(dir.path().join("storm.svg")).unwrap();
    assert!(svg.contains("Scenario storm (seed 1)"));
}

#[test]
fn the_list_names_every_scenario_and_an_unknown_one_is_a_usage_error() {
    let dir = scratch();
    let listed = run(gcbulk(dir.path()).args(["sim", "list"]));
    listed.expect_code(0);
    for name in ["steady", "storm", "shared", "daily-limit", "heroku"] {
        assert!(listed.stdout.contains(name), "{}", listed.stdout);
    }

    let unknown = run(gcbulk(dir.path()).args(["sim", "compare", "--scenario", "nope"]));
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("no scenario named"),
        "{}",
        unknown.stderr
    );
}
