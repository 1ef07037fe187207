//! The export read back by the change-file reader: what goes out comes back in.
#![allow(
    clippy::unwrap_used,
    reason = "a test should stop at the first thing it did not expect"
)]

use std::collections::HashMap;

use gcbulk::export::write_users_csv;
use gcbulk::input::{IgnoreReason, ReadOptions, read_changes};
use gcbulk_core::change::{ChangeRow, ManagerRef, UserKey};
use proptest::prelude::*;
use serde_json::{Value, json};

const ORG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/org.jsonl");

fn export(users: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    write_users_csv(users, &mut out).unwrap();
    out
}

fn read_back(bytes: &[u8]) -> Vec<ChangeRow> {
    let input = read_changes("export.csv", bytes, &ReadOptions::default()).unwrap();
    assert!(input.row_errors.is_empty(), "{:?}", input.row_errors);
    input.rows
}

fn text(user: &Value, pointer: &str) -> Option<String> {
    user.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[test]
fn the_example_org_round_trips() {
    let users: Vec<Value> = std::fs::read_to_string(ORG)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let bytes = export(&users);
    let input = read_changes("org.csv", &bytes, &ReadOptions::default()).unwrap();
    assert!(input.row_errors.is_empty(), "{:?}", &input.row_errors[..3]);
    assert_eq!(input.rows.len(), users.len());

    let location = &input.ignored_columns[0];
    assert_eq!(
        (location.name.as_str(), location.reason),
        ("location_work", IgnoreReason::NotApplied)
    );

    let email_by_id: HashMap<_, _> = users
        .iter()
        .map(|u| (text(u, "/id").unwrap(), text(u, "/email").unwrap()))
        .collect();
    for (user, row) in users.iter().zip(&input.rows) {
        assert_eq!(row.key, UserKey::Id(text(user, "/id").unwrap()));

        let desired = &row.desired;
        assert_eq!(desired.name, text(user, "/name"));
        assert_eq!(desired.email, text(user, "/email"));
        assert_eq!(desired.title, text(user, "/title"));
        assert_eq!(desired.department, text(user, "/department"));
        assert_eq!(desired.phone_work, text(user, "/addresses/0/address"));
        assert_eq!(desired.extension, text(user, "/addresses/0/extension"));

        let manager =
            text(user, "/manager/id").map(|id| ManagerRef::Email(email_by_id[&id].clone()));
        assert_eq!(desired.manager, manager);
        assert_eq!(
            (&desired.username, &desired.preferred_name, desired.state),
            (&None, &None, None)
        );
    }
}

#[test]
fn awkward_text_round_trips() {
    let names = [
        "Smith, Jr., Robert",
        "Renée \"Rae\" Dubois",
        "=HYPERLINK(\"http://x\")",
        "'=already escaped",
        "-- Interim --",
        "@handle",
        "'Ohana",
        "Two\nLines",
    ];
    let users: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (id, email) = (format!("u-{i}"), format!("u{i}@acme.example"));
            json!({"id": id, "email": email, "name": name})
        })
        .collect();

    let rows = read_back(&export(&users));
    let found: Vec<_> = rows
        .iter()
        .map(|row| row.desired.name.as_deref().unwrap())
        .collect();
    assert_eq!(found, names);
}

proptest! {
    #[test]
    fn any_trimmed_text_round_trips(
        name in any::<String>()
            .prop_map(|s| s.trim().to_owned())
            .prop_filter("a name", |s| !s.is_empty()),
        title in "[=+@' -]?[a-z0-9 ,;\"'()=+-]{0,12}".prop_map(|s| s.trim().to_owned()),
    ) {
        let user = json!({"id": "u-1", "email": "u@acme.example", "name": name, "title": title});
        let rows = read_back(&export(&[user]));
        prop_assert_eq!(rows.len(), 1);
        prop_assert_eq!(rows[0].desired.name.as_deref(), Some(name.as_str()));
        let title = if title.is_empty() { None } else { Some(title.as_str()) };
        prop_assert_eq!(rows[0].desired.title.as_deref(), title);
    }
}
