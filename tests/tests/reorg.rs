//! The sample reorganisation sheet against the sample org, in virtual time: the outcomes must
#![allow(
    clippy::unwrap_used,
    reason = "a test helper that meets the unexpected should panic"
)]
//! count exactly what the sheet asks, computed here from the data itself.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use gcbulk::input::{ReadOptions, read_changes};
use gcbulk_core::change::{ChangeRow, ManagerRef, UserKey};
use gcbulk_core::genesys::{RowOutcome, RowReport};
use gcbulk_sim::model::{Endpoint, ServerConfig, load_users_file};
use gcbulk_tests::{harness, workflow_config};
use serde_json::Value;

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

/// What the sheet asks of one row, judged directly from the org's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expected {
    Updated,
    Unchanged,
    NotFound,
    Rejected,
}

fn text<'a>(user: &'a Value, key: &str) -> &'a str {
    user.get(key).and_then(Value::as_str).unwrap_or("")
}

fn work_phone(user: &Value) -> (String, String) {
    let phone = user["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["mediaType"] == "PHONE" && a["type"] == "WORK");
    let field = |key: &str| phone.and_then(|p| p[key].as_str()).unwrap_or("").to_owned();
    (field("address"), field("extension"))
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn expected(rows: &[ChangeRow], org: &[Value]) -> BTreeMap<u64, Expected> {
    let by_email: HashMap<String, &Value> = org
        .iter()
        .map(|u| (text(u, "email").to_lowercase(), u))
        .collect();
    let key = |row: &ChangeRow| match &row.key {
        UserKey::Email(e) => e.trim().to_lowercase(),
        UserKey::Id(id) => id.clone(),
    };
    let mut per_user: HashMap<String, Vec<&ChangeRow>> = HashMap::new();
    for row in rows {
        per_user.entry(key(row)).or_default().push(row);
    }
    let mut verdicts = BTreeMap::new();
    for row in rows {
        let same_user = &per_user[&key(row)];
        let verdict = if same_user.iter().any(|other| other.desired != row.desired) {
            Expected::Rejected
        } else if let Some(user) = by_email.get(&key(row)) {
            let d = &row.desired;
            let (phone, extension) = work_phone(user);
            let manager_now = user["manager"]["id"].as_str().unwrap_or("");
            let manager_ok = match &d.manager {
                Some(ManagerRef::Email(m)) => by_email
                    .get(&m.trim().to_lowercase())
                    .map(|m| text(m, "id")),
                _ => Some(manager_now),
            };
            let manages_self = matches!(&d.manager, Some(ManagerRef::Email(m)) if m.trim().eq_ignore_ascii_case(text(user, "email")));
            match manager_ok {
                None => Expected::Rejected,
                Some(_) if manages_self => Expected::Rejected,
                Some(manager) => {
                    let differs = |wanted: &Option<String>, now: &str| {
                        wanted.as_deref().is_some_and(|w| w.trim() != now)
                    };
                    let changed = differs(&d.name, text(user, "name"))
                        || differs(&d.title, text(user, "title"))
                        || differs(&d.department, text(user, "department"))
                        || differs(&d.extension, &extension)
                        || d.phone_work
                            .as_deref()
                            .is_some_and(|p| digits(p) != digits(&phone))
                        || manager != manager_now;
                    if changed {
                        Expected::Updated
                    } else {
                        Expected::Unchanged
                    }
                }
            }
        } else {
            Expected::NotFound
        };
        verdicts.insert(row.source.line, verdict);
    }
    verdicts
}

#[test]
fn the_sample_sheet_does_exactly_what_it_asks() {
    let sheet = std::fs::read(examples().join("reorg.csv")).unwrap();
    let input = read_changes("reorg.csv", &sheet, &ReadOptions::default()).unwrap();
    let org_json: Vec<Value> = std::fs::read_to_string(examples().join("org.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut want = expected(&input.rows, &org_json);
    for error in &input.row_errors {
        want.insert(error.source.line, Expected::Rejected);
    }

    let users = load_users_file(examples().join("org.jsonl")).unwrap();
    let server = gcbulk_sim::model::Server::new(ServerConfig::default(), users, 11);
    let mut h = harness(server, workflow_config(), input.rows.clone(), 3);
    h.drive_bounded(1_000_000).unwrap();

    let mut got: BTreeMap<u64, Expected> = BTreeMap::new();
    for error in &input.row_errors {
        got.insert(error.source.line, Expected::Rejected);
    }
    let reports: Vec<&RowReport> = h.outputs(0).iter().map(|(_, r)| r).collect();
    for report in &reports {
        let verdict = match &report.outcome {
            RowOutcome::Updated { .. } => Expected::Updated,
            RowOutcome::Unchanged { .. } => Expected::Unchanged,
            RowOutcome::NotFound => Expected::NotFound,
            RowOutcome::Rejected { .. } => Expected::Rejected,
            other => panic!("line {}: unexpected {other}", report.source.line),
        };
        assert!(
            got.insert(report.source.line, verdict).is_none(),
            "line {} twice",
            report.source.line
        );
    }
    let mismatches: Vec<String> = want
        .iter()
        .filter(|(line, verdict)| got.get(line) != Some(verdict))
        .map(|(line, verdict)| format!("line {line}: want {verdict:?}, got {:?}", got.get(line)))
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(got.len(), want.len());

    // Each changed user was written exactly once; unchanged ones not at all.
    let updated = want.values().filter(|v| **v == Expected::Updated).count() as u64;
    let stats = h.server().stats();
    assert_eq!(stats.count(Endpoint::PatchUser, 200), updated);
    assert_eq!(stats.count_endpoint(Endpoint::PatchUser), updated);

    // And each one now holds what its row asked.
    for report in reports {
        if let RowOutcome::Updated {
            user_id, changes, ..
        } = &report.outcome
        {
            let user = h.server().user(user_id).unwrap();
            let now = serde_json::to_value(user).unwrap();
            for change in changes {
                let value = match change.field.as_str() {
                    "title" => text(&now, "title").to_owned(),
                    "department" => text(&now, "department").to_owned(),
                    "manager" => now["manager"]["id"].as_str().unwrap_or("").to_owned(),
                    "phone_work" => work_phone(&now).0,
                    "extension" => work_phone(&now).1,
                    "name" => text(&now, "name").to_owned(),
                    other => panic!("the sheet does not touch {other}"),
                };
                assert_eq!(value, change.after, "{user_id} {}", change.field);
            }
        }
    }

    let counts = h.outputs(0).len() + input.row_errors.len();
    assert_eq!(counts, want.len());
}
