//! A scenario from a file, with a recorded trace replayed over the model, through the entry point
//! the command line calls; and the JSON it writes, in the shape scripts rely on.

use gcbulk_sim::compare::{Format, compare_cli, list_cli};
use serde_json::Value;

const SCENARIO: &str = r#"{
    "name": "replayed-storm",
    "description": "a small org, and three 429s someone recorded",
    "org": {"users": 30, "changed": 20},
    "server": {"latency": {"kind": "fixed", "ms": 50}},
    "replay": [
        {"at_s": 0.0, "status": 429, "headers": {"retry-after": "2"}},
        {"at_s": 0.0, "status": 429, "headers": {"retry-after": "2"}},
        {"at_s": 2.0, "status": 503}
    ]
}"#;

#[test]
fn a_scenario_file_with_a_replayed_trace_compares_and_writes_the_agreed_json() {
    let path = std::env::temp_dir().join(format!("gcbulk-scenario-{}.json", std::process::id()));
    std::fs::write(&path, SCENARIO).unwrap();
    let json = compare_cli(path.to_str().unwrap(), 7, Format::Json).unwrap();
    std::fs::remove_file(&path).unwrap();

    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["scenario"], "replayed-storm");
    assert_eq!(value["seed"], 7);
    assert!(value["lower_bound_s"].is_f64());
    let rows = value["strategies"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "gcbulk");
    for row in rows {
        for key in ["makespan_s", "ratio", "p99_item_s", "fairness"] {
            assert!(row[key].is_f64(), "{key} in {row}");
        }
        for key in ["requests", "throttled", "failed_items"] {
            assert!(row[key].is_u64(), "{key} in {row}");
        }
        assert!(row["name"].is_string());
    }

    // The replayed 429s reached gcbulk, which waited them out and finished.
    let gcbulk = &rows[0];
    assert_eq!(gcbulk["throttled"], 2, "{gcbulk}");
    assert!(gcbulk["makespan_s"].as_f64().unwrap() > 2.0, "{gcbulk}");
    assert_eq!(gcbulk["failed_items"], 0);
}

#[test]
fn an_unknown_scenario_is_an_error_and_the_list_names_every_preset() {
    let unknown = compare_cli("no-such-scenario", 1, Format::Table);
    assert!(unknown.is_err());

    let list = list_cli();
    for name in [
        "steady",
        "storm",
        "shared",
        "endpoint-limit",
        "no-headers",
        "editors",
        "daily-limit",
        "heroku",
    ] {
        assert!(list.lines().any(|line| line.starts_with(name)), "{name}");
    }
}

#[test]
fn a_scenario_too_big_to_run_is_refused_naming_its_file() {
    let dir = std::env::temp_dir();
    for (name, text, said) in [
        ("workers", r#"{"workers": 100000000}"#, "at most 64"),
        ("clients", r#"{"clients": 100000}"#, "at most 64"),
        (
            "users",
            r#"{"org": {"users": 10000000, "changed": 1}}"#,
            "200,000 users",
        ),
        ("broken", r#"{"org": "#, "not a scenario"),
    ] {
        let path = dir.join(format!("gcbulk-big-{name}-{}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let error = compare_cli(path.to_str().unwrap(), 1, Format::Table)
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(error.contains(said), "{name}: {error}");
        assert!(error.contains(path.to_str().unwrap()), "{name}: {error}");
    }
}
