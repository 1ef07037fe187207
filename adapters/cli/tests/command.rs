//! The `gcbulk` binary against the emulator over loopback: what an admin would run, checked
//! against what the data says should happen.
#![allow(
    clippy::unwrap_used,
    reason = "a test should stop at the first thing it did not expect"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use gcbulk::input::{ReadOptions, read_changes};
use gcbulk_core::change::{ManagerRef, UserKey};
use gcbulk_core::genesys::validate;
use gcbulk_sim::model::{
    ClientLimit, Endpoint, FaultPreset, Latency, OAuthClient, ServerConfig, ThrottleCause, User,
};
use serde_json::Value;
use support::*;

/// The fields of a user that differ from what a row wants: (field, wanted value).
type Changes = Vec<(&'static str, String)>;

/// What the sheet should do to the organisation, worked out from the data alone.
#[derive(Debug, Default)]
struct Truth {
    /// Line → the user and the fields that differ.
    updated: BTreeMap<u64, (String, Changes)>,
    unchanged: BTreeSet<u64>,
    rejected: BTreeSet<u64>,
    not_found: BTreeSet<u64>,
    duplicates: BTreeSet<u64>,
}

impl Truth {
    fn rows(&self) -> usize {
        self.updated.len()
            + self.unchanged.len()
            + self.rejected.len()
            + self.not_found.len()
            + self.duplicates.len()
    }
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Reads the sheet, finds each row's user and manager in `users`, and compares field by field.
fn truth(name: &str, sheet: &[u8], users: &[User]) -> Truth {
    let input = read_changes(name, sheet, &ReadOptions::default()).unwrap();
    let mut truth = Truth::default();
    truth
        .rejected
        .extend(input.row_errors.iter().map(|e| e.source.line));
    let checked = validate::check(input.rows);
    truth
        .rejected
        .extend(checked.rejected.iter().map(|(row, _)| row.source.line));
    truth
        .duplicates
        .extend(checked.duplicates.iter().map(|(row, _)| row.source.line));

    let by_email: HashMap<String, &User> = users
        .iter()
        .filter_map(|u| Some((u.email.as_deref()?.to_lowercase(), u)))
        .collect();
    for row in checked.accepted {
        let line = row.source.line;
        let UserKey::Email(email) = &row.key else {
            panic!("the sample sheet is keyed by e-mail")
        };
        let Some(user) = by_email.get(&email.trim().to_lowercase()) else {
            truth.not_found.insert(line);
            continue;
        };
        let desired = &row.desired;
        let manager = match &desired.manager {
            None => None,
            Some(ManagerRef::Clear) => Some(String::new()),
            Some(ManagerRef::Id(id)) => Some(id.clone()),
            Some(ManagerRef::Email(m)) => match by_email.get(&m.trim().to_lowercase()) {
                Some(manager) => Some(manager.id.clone()),
                None => {
                    truth.rejected.insert(line);
                    continue;
                }
            },
        };
        if manager.as_deref() == Some(user.id.as_str()) {
            truth.rejected.insert(line);
            continue;
        }

        let phone = user.work_phone();
        let current_phone = phone.and_then(|p| p.address.clone()).unwrap_or_default();
        let current_extension = phone.and_then(|p| p.extension.clone()).unwrap_or_default();
        let current_manager = user.manager.as_ref().map(|m| m.id.clone());
        let mut changes = Vec::new();
        let mut compare =
            |field, wanted: Option<&String>, now: &str, same: fn(&str, &str) -> bool| {
                if let Some(wanted) = wanted
                    && !same(wanted.trim(), now.trim())
                {
                    changes.push((field, wanted.trim().to_owned()));
                }
            };
        let plain: fn(&str, &str) -> bool = |a, b| a == b;
        let phones: fn(&str, &str) -> bool = |a, b| digits(a) == digits(b);
        compare("name", desired.name.as_ref(), &user.name, plain);
        let title = user.title.clone().unwrap_or_default();
        compare("title", desired.title.as_ref(), &title, plain);
        let department = user.department.clone().unwrap_or_default();
        compare(
            "department",
            desired.department.as_ref(),
            &department,
            plain,
        );
        compare(
            "manager",
            manager.as_ref(),
            &current_manager.unwrap_or_default(),
            plain,
        );
        compare(
            "phone_work",
            desired.phone_work.as_ref(),
            &current_phone,
            phones,
        );
        compare(
            "extension",
            desired.extension.as_ref(),
            &current_extension,
            plain,
        );
        if changes.is_empty() {
            truth.unchanged.insert(line);
        } else {
            truth.updated.insert(line, (user.id.clone(), changes));
        }
    }
    truth
}

/// Every updated user has the values its row asks for, written once; every other user is as it
/// was.
fn assert_org_follows(truth: &Truth, before: &[User], after: Vec<User>) {
    let after = by_id(after);
    let mut touched = BTreeSet::new();
    for (line, (id, changes)) in &truth.updated {
        let user = &after[id];
        let old = before.iter().find(|u| &u.id == id).unwrap();
        assert_eq!(user.version, old.version + 1, "line {line}: written once");
        for (field, wanted) in changes {
            let phone = user.work_phone();
            let now = match *field {
                "name" => user.name.clone(),
                "title" => user.title.clone().unwrap_or_default(),
                "department" => user.department.clone().unwrap_or_default(),
                "manager" => user
                    .manager
                    .as_ref()
                    .map(|m| m.id.clone())
                    .unwrap_or_default(),
                "phone_work" => digits(&phone.and_then(|p| p.address.clone()).unwrap_or_default()),
                "extension" => phone.and_then(|p| p.extension.clone()).unwrap_or_default(),
                other => panic!("{other}"),
            };
            let wanted = if *field == "phone_work" {
                digits(wanted)
            } else {
                wanted.clone()
            };
            assert_eq!(now, wanted, "line {line}: {field}");
        }
        touched.insert(id.clone());
    }
    for old in before.iter().filter(|u| !touched.contains(&u.id)) {
        assert_eq!(
            &after[&old.id], old,
            "user {} was not to be touched",
            old.id
        );
    }
}

fn lines_with(report: &Value, outcome: &str) -> BTreeSet<u64> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == outcome)
        .map(|r| r["source"]["line"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_sample_reorganisation_is_applied_as_the_data_says() {
    let users = sample_users();
    let sheet = sample_sheet();
    let emulator = start(fast_server(), users.clone());
    let dir = scratch();
    write(dir.path(), "reorg.csv", &sheet);

    let finished = run(gcbulk(dir.path()).args([
        "update",
        "reorg.csv",
        "--api-base",
        &emulator.base_url(),
        "--report",
        "report.json",
    ]));
    // The sample has deliberate mistakes, so some rows are not applied.
    finished.expect_code(1);

    let truth = truth("reorg.csv", &sheet, &users);
    assert_eq!(truth.rows(), 1508, "every data row has a verdict");
    let report = json(&dir.path().join("report.json"));
    let summary = &report["summary"];
    assert_eq!(summary["updated"], truth.updated.len() as u64, "{summary}");
    assert_eq!(
        summary["unchanged"],
        truth.unchanged.len() as u64,
        "{summary}"
    );
    assert_eq!(
        summary["rejected"],
        truth.rejected.len() as u64,
        "{summary}"
    );
    assert_eq!(
        summary["not_found"],
        truth.not_found.len() as u64,
        "{summary}"
    );
    assert_eq!(
        summary["duplicates"],
        truth.duplicates.len() as u64,
        "{summary}"
    );
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["gave_up"], 0);
    assert_eq!(
        lines_with(&report, "updated"),
        truth.updated.keys().copied().collect()
    );
    assert_eq!(lines_with(&report, "not_found"), truth.not_found);

    // The rejected rows are named by line, on the terminal and in the report.
    let mut rejected = lines_with(&report, "rejected");
    for error in report["input_errors"].as_array().unwrap() {
        rejected.insert(error["line"].as_u64().unwrap());
    }
    assert_eq!(rejected, truth.rejected);
    for line in &truth.rejected {
        assert!(
            finished.stdout.contains(&format!("reorg.csv:{line}: ")),
            "line {line} is listed\n{}",
            finished.stdout
        );
    }

    // Each changed user was written once; nobody else was written at all.
    let stats = emulator.stats();
    assert_eq!(
        stats.count(Endpoint::PatchUser, 200),
        truth.updated.len() as u64
    );
    assert_eq!(
        stats.count_endpoint(Endpoint::PatchUser),
        truth.updated.len() as u64
    );
    assert_org_follows(&truth, &users, emulator.users());

    // The journal holds one settled line per row that reached the machine.
    let records = last_records(&dir.path().join("reorg.csv.journal.jsonl"));
    let unread = report["input_errors"].as_array().unwrap().len();
    assert_eq!(records.len() + unread, 1508);
}

#[test]
fn the_demo_reports_exactly_what_the_data_says() {
    let dir = scratch();
    let finished = run(gcbulk(dir.path()).args(["demo", "--dir", "."]));
    finished.expect_code(0);

    let truth = truth("reorg.csv", &sample_sheet(), &sample_users());
    let report = json(&dir.path().join("reorg-report.json"));
    let summary = &report["summary"];
    for (name, expected) in [
        ("updated", truth.updated.len()),
        ("unchanged", truth.unchanged.len()),
        ("rejected", truth.rejected.len()),
        ("not_found", truth.not_found.len()),
        ("duplicates", truth.duplicates.len()),
        ("failed", 0),
        ("gave_up", 0),
    ] {
        assert_eq!(summary[name], expected as u64, "{name}: {summary}");
    }
    let shown = format!("{:<14} {:>7}", "updated", truth.updated.len());
    assert!(finished.stdout.contains(&shown), "{}", finished.stdout);
    assert!(
        report["requests"]["throttled"].as_u64().unwrap() <= 20,
        "few 429s: {}",
        report["requests"]
    );
}

#[test]
fn a_dry_run_prints_the_diff_and_writes_nothing() {
    let users = sample_users();
    let sheet = sample_sheet_head(40);
    let emulator = start(fast_server(), users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sheet);

    let finished = run(gcbulk(dir.path()).args([
        "update",
        "head.csv",
        "--dry-run",
        "--api-base",
        &emulator.base_url(),
    ]));
    finished.expect_code(1);

    let truth = truth("head.csv", &sheet, &users);
    for (line, (_, changes)) in &truth.updated {
        let (field, wanted) = &changes[0];
        let shown = format!("line {line} ");
        let row = finished
            .stdout
            .lines()
            .find(|l| l.starts_with(&shown))
            .unwrap_or_else(|| panic!("line {line} is in the diff:\n{}", finished.stdout));
        assert!(row.contains(&format!("{field} ")), "{row}");
        if *field == "manager" {
            assert!(row.contains("→ \""), "{row}");
            assert!(row.contains(&format!("({wanted})")), "{row}");
        } else {
            assert!(row.contains(&format!("→ {wanted:?}")), "{row}");
        }
    }
    assert!(
        finished.stdout.contains("would update"),
        "{}",
        finished.stdout
    );
    assert_eq!(emulator.stats().count_endpoint(Endpoint::PatchUser), 0);
    assert!(!dir.path().join("head.csv.journal.jsonl").exists());
    assert_eq!(emulator.users(), users);
}

#[test]
fn a_dry_run_shows_managers_by_name_and_e_mail() {
    use gcbulk_core::change::UserState;

    let users = sample_users();
    let everyone = by_id(users.clone());
    let reachable = |u: &User| u.email.is_some() && u.state == UserState::Active;
    let managed_by = |u: &User| u.manager.as_ref().and_then(|m| everyone.get(&m.id));
    // A user whose manager the sheet replaces by e-mail, the manager they have (a row of the
    // sheet too, so the run reads them), the one they get, and someone given a manager by id.
    let user = users
        .iter()
        .find(|u| reachable(u) && managed_by(u).is_some_and(reachable))
        .unwrap();
    let old = managed_by(user).unwrap();
    let taken = [&user.id, &old.id];
    let new = users
        .iter()
        .find(|u| reachable(u) && !taken.contains(&&u.id))
        .unwrap();
    let taken = [&user.id, &old.id, &new.id];
    let other = users
        .iter()
        .find(|u| reachable(u) && !taken.contains(&&u.id) && u.manager.is_some())
        .unwrap();
    let taken = [&user.id, &old.id, &new.id, &other.id];
    let far = users
        .iter()
        .find(|u| !taken.contains(&&u.id) && other.manager.as_ref().is_none_or(|m| m.id != u.id))
        .unwrap();
    let email = |u: &User| u.email.clone().unwrap();
    // The new manager's e-mail as someone might type it.
    let typed = email(new).to_uppercase();
    let sheet = format!(
        "email,email_manager,manager_id\n{},{typed},\n{},,\n{},,{}\n",
        email(user),
        email(old),
        email(other),
        far.id
    );

    let emulator = start(fast_server(), users.clone());
    let dir = scratch();
    write(dir.path(), "managers.csv", sheet.as_bytes());
    let finished = run(gcbulk(dir.path()).args([
        "update",
        "managers.csv",
        "--dry-run",
        "--api-base",
        &emulator.base_url(),
    ]));
    finished.expect_code(0);
    let line = |n: u64| {
        let shown = format!("line {n} ");
        finished
            .stdout
            .lines()
            .find(|l| l.starts_with(&shown))
            .unwrap_or_else(|| panic!("line {n} is in the diff:\n{}", finished.stdout))
            .to_owned()
    };
    let replaced = line(2);
    let expected = format!(
        "manager \"{} <{}>\" ({}) → \"{} <{typed}>\" ({})",
        old.name,
        email(old),
        old.id,
        new.name,
        new.id
    );
    assert!(replaced.ends_with(&expected), "{replaced}\nnot {expected}");
    // Someone the run never read is shown by the id the sheet gave.
    let by_id_only = line(4);
    assert!(
        by_id_only.ends_with(&format!("→ ({})", far.id)),
        "{by_id_only}"
    );
    assert_eq!(emulator.users(), users);
}

#[test]
fn a_storm_ends_with_every_row_confirmed() {
    let users = sample_users();
    let sheet = sample_sheet();
    let mut server = fast_server();
    server.latency = Latency::Fixed { ms: 20.0 };
    FaultPreset::Storm.apply(&mut server);
    // The preset's storms (half the requests refused from 30 s to 90 s, nine in ten from 150 s to
    // 170 s), brought forward from minutes into the seconds this run lasts.
    for storm in &mut server.rate_limit.storms {
        storm.start_secs /= 60.0;
        storm.end_secs /= 60.0;
    }
    let emulator = start(server, users.clone());
    let dir = scratch();
    write(dir.path(), "reorg.csv", &sheet);

    let finished = run(gcbulk(dir.path()).args([
        "update",
        "reorg.csv",
        "--api-base",
        &emulator.base_url(),
        "--report",
        "report.json",
    ]));

    let stats = emulator.stats();
    assert!(
        stats
            .throttled_by
            .get(&ThrottleCause::Storm)
            .copied()
            .unwrap_or(0)
            > 0,
        "the run met the storm: {stats:?}"
    );
    let truth = truth("reorg.csv", &sheet, &users);
    let report = json(&dir.path().join("report.json"));
    assert_eq!(report["summary"]["gave_up"], 0, "{}", finished.stdout);
    assert_eq!(report["summary"]["failed"], 0, "{}", finished.stdout);
    assert_eq!(report["summary"]["updated"], truth.updated.len() as u64);
    assert_org_follows(&truth, &users, emulator.users());
    assert!(report["requests"]["throttled"].as_u64().unwrap() > 0);
}

#[test]
fn kill_9_then_resume_applies_every_row_once() {
    let users = sample_users();
    let sheet = sample_sheet_head(400);
    let mut server = fast_server();
    // Slow enough to be caught in the middle.
    server.rate_limit.per_client = ClientLimit::FixedWindow {
        limit: 300,
        window_secs: 10,
    };
    server.latency = Latency::Fixed { ms: 20.0 };
    let emulator = start(server, users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sheet);
    let journal = dir.path().join("head.csv.journal.jsonl");
    let url = emulator.base_url();
    let args = ["update", "head.csv", "--api-base", url.as_str()];

    let mut child = gcbulk(dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let truth = truth("head.csv", &sheet, &users);
    // Wait until some updates are journalled, but not all.
    let caught = poll_until(Duration::from_secs(60), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too soon"
        );
        let updated = last_records(&journal)
            .values()
            .filter(|r| r["outcome"] == "updated")
            .count();
        updated >= truth.updated.len() / 4
    });
    assert!(caught, "no progress in the journal");
    child.kill().unwrap();
    child.wait().unwrap();
    let before_resume = last_records(&journal);
    let updated_before = before_resume
        .values()
        .filter(|r| r["outcome"] == "updated")
        .count();
    assert!(updated_before < truth.updated.len(), "killed in the middle");

    let finished = run(gcbulk(dir.path())
        .args(args)
        .args(["--resume", "--report", "report.json"]));
    finished.expect_code(1);
    assert!(finished.stderr.contains("resuming"), "{}", finished.stderr);

    // Nothing lost: every row has a settled outcome, the org is as the sheet asks, and each
    // changed user was written exactly once (its version moved by one).
    let records = last_records(&journal);
    let report = json(&dir.path().join("report.json"));
    let unread = report["input_errors"].as_array().unwrap().len();
    assert_eq!(records.len() + unread, truth.rows());
    for (line, record) in &records {
        let outcome = record["outcome"].as_str().unwrap();
        assert!(
            !matches!(outcome, "gave_up" | "failed" | "conflict_gave_up"),
            "line {line}: {record}"
        );
    }
    assert_org_follows(&truth, &users, emulator.users());
    // Every changed row is journalled as updated, once: a row the kill caught after its PATCH
    // landed is found made on resume and reported updated by the interrupted run (at most the
    // requests in flight), not unchanged.
    let updated_lines: Vec<u64> = journal_records(&journal)
        .iter()
        .filter(|r| r["outcome"] == "updated")
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = updated_lines.iter().copied().collect();
    assert_eq!(distinct.len(), updated_lines.len(), "no row updated twice");
    let lines: BTreeSet<u64> = truth.updated.keys().copied().collect();
    assert_eq!(distinct, lines);
    let summary = &report["summary"];
    assert_eq!(summary["updated"], truth.updated.len() as u64);
    assert_eq!(summary["unchanged"], truth.unchanged.len() as u64);
    let in_flight = summary["updated_by_interrupted_run"].as_u64().unwrap();
    assert!(
        in_flight <= 8,
        "at most the requests in flight: {in_flight}"
    );

    // And the whole of it reverts, the PATCHes whose answers the kill lost included: the journal
    // announced each before sending it.
    let reverted = run(gcbulk(dir.path()).args(["revert", "head.csv.journal.jsonl"]));
    reverted.expect_code(0);
    let after = by_id(emulator.users());
    for old in &users {
        let mut now = after[&old.id].clone();
        now.version = old.version;
        assert_eq!(&now, old, "user {} is restored", old.id);
    }
}

#[test]
fn a_write_whose_answer_was_lost_counts_as_updated_on_resume_and_reverts_once() {
    let users = sample_users();
    let sheet = sample_sheet_head(40);
    let emulator = start(fast_server(), users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sheet);
    let url = emulator.base_url();
    let args = ["update", "head.csv", "--api-base", url.as_str()];
    run(gcbulk(dir.path()).args(args)).expect_code(1);
    let truth = truth("head.csv", &sheet, &users);
    assert!(truth.updated.len() > 5);

    // As if killed once every PATCH had gone out and landed but before any answer was
    // journalled: the announcements stay, the updated rows go.
    let journal = dir.path().join("head.csv.journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| !line.contains(r#""outcome":"updated""#))
        .collect();
    std::fs::write(&journal, kept).unwrap();
    let patched = emulator.stats().count_endpoint(Endpoint::PatchUser);
    assert_eq!(patched, truth.updated.len() as u64);

    let resumed = run(gcbulk(dir.path())
        .args(args)
        .args(["--resume", "--report", "report.json"]));
    resumed.expect_code(1);
    assert_eq!(
        emulator.stats().count_endpoint(Endpoint::PatchUser),
        patched,
        "nothing is written twice"
    );
    let report = json(&dir.path().join("report.json"));
    let summary = &report["summary"];
    let updated = truth.updated.len() as u64;
    assert_eq!(summary["updated"], updated, "{}", resumed.stdout);
    assert_eq!(summary["updated_by_interrupted_run"], updated);
    assert_eq!(summary["unchanged"], truth.unchanged.len() as u64);
    let lines: BTreeSet<u64> = truth.updated.keys().copied().collect();
    assert_eq!(lines_with(&report, "updated"), lines);
    let shown = format!("{:<14} {:>7}", "updated", truth.updated.len());
    assert!(resumed.stdout.contains(&shown), "{}", resumed.stdout);
    assert!(
        resumed.stdout.contains("updated by the interrupted run"),
        "{}",
        resumed.stdout
    );
    for line in &lines {
        assert_eq!(
            last_records(&journal)[line]["answer_lost"],
            true,
            "line {line}"
        );
    }

    // The revert undoes each of them, once; and a revert whose answers were lost in turn is
    // resumed as done, not as users someone else changed since.
    let revert = [
        "revert",
        "head.csv.journal.jsonl",
        "--report",
        "revert.json",
    ];
    let reverted = run(gcbulk(dir.path()).args(revert));
    reverted.expect_code(0);
    let report = json(&dir.path().join("revert.json"));
    assert_eq!(report["summary"]["updated"], updated, "{}", reverted.stdout);
    assert_eq!(
        emulator.stats().count_endpoint(Endpoint::PatchUser),
        patched + updated
    );
    let revert_journal = dir.path().join("head.csv.journal.revert.jsonl");
    let text = std::fs::read_to_string(&revert_journal).unwrap();
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| !line.contains(r#""outcome":"updated""#))
        .collect();
    std::fs::write(&revert_journal, kept).unwrap();
    let resumed = run(gcbulk(dir.path()).args(revert).arg("--resume"));
    resumed.expect_code(0);
    let report = json(&dir.path().join("revert.json"));
    let summary = &report["summary"];
    assert_eq!(summary["updated"], updated, "{}", resumed.stdout);
    assert_eq!(summary["updated_by_interrupted_run"], updated);
    assert_eq!(summary["changed_since"], 0);
    assert_eq!(
        emulator.stats().count_endpoint(Endpoint::PatchUser),
        patched + updated
    );
    let after = by_id(emulator.users());
    let written: BTreeSet<&String> = truth.updated.values().map(|(id, _)| id).collect();
    for old in &users {
        let mut now = after[&old.id].clone();
        let writes = if written.contains(&old.id) { 2 } else { 0 };
        assert_eq!(now.version, old.version + writes, "user {}", old.id);
        now.version = old.version;
        assert_eq!(&now, old, "user {} is restored", old.id);
    }
}

#[test]
fn a_write_whose_answer_a_cut_connection_lost_counts_as_updated() {
    let users = sample_users();
    let sheet = sample_sheet_head(60);
    let mut server = fast_server();
    // Some connections are cut after the server made the change: a retried PATCH then meets the
    // version its first attempt made.
    server.faults.reset_probability = 0.2;
    server.faults.reset_after_apply_fraction = 1.0;
    let emulator = start(server, users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sheet);
    let finished = run(gcbulk(dir.path()).args([
        "update",
        "head.csv",
        "--api-base",
        &emulator.base_url(),
        "--concurrency",
        "1",
        "--report",
        "report.json",
    ]));
    finished.expect_code(1);

    let truth = truth("head.csv", &sheet, &users);
    let stats = emulator.stats();
    assert!(
        stats.count(Endpoint::PatchUser, 409) > 0,
        "a retried PATCH met its own write: {stats:?}"
    );
    let report = json(&dir.path().join("report.json"));
    let summary = &report["summary"];
    assert_eq!(
        summary["updated"],
        truth.updated.len() as u64,
        "{}",
        finished.stdout
    );
    assert_eq!(summary["unchanged"], truth.unchanged.len() as u64);
    assert!(summary["updated_by_interrupted_run"].as_u64().unwrap() > 0);
    assert_org_follows(&truth, &users, emulator.users());

    let reverted = run(gcbulk(dir.path()).args(["revert", "head.csv.journal.jsonl"]));
    assert!(reverted.code == Some(0) || reverted.code == Some(1));
    let after = by_id(emulator.users());
    for old in &users {
        let mut now = after[&old.id].clone();
        now.version = old.version;
        assert_eq!(&now, old, "user {} is restored", old.id);
    }
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes_the_sheet() {
    let users = sample_users();
    let sheet = sample_sheet_head(200);
    let mut server = fast_server();
    // The sheet needs more requests than one window allows, so the run is still going when the
    // signal comes.
    server.rate_limit.per_client = ClientLimit::FixedWindow {
        limit: 100,
        window_secs: 4,
    };
    let emulator = start(server, users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sheet);
    let journal = dir.path().join("head.csv.journal.jsonl");
    let url = emulator.base_url();
    let args = ["update", "head.csv", "--api-base", url.as_str()];

    let child = gcbulk(dir.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = poll_until(Duration::from_secs(60), || {
        last_records(&journal)
            .values()
            .any(|r| r["outcome"] == "updated")
    });
    assert!(started, "no update in the journal");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let stopped = Finished::from(child.wait_with_output().unwrap());
    stopped.expect_code(1);
    assert!(stopped.stdout.contains("stopped:"), "{}", stopped.stdout);
    assert!(stopped.stdout.contains("--resume"), "{}", stopped.stdout);
    let left = last_records(&journal)
        .values()
        .filter(|r| r["outcome"] == "gave_up")
        .count();
    assert!(left > 0, "rows were left for --resume");

    let resumed = run(gcbulk(dir.path()).args(args).arg("--resume"));
    resumed.expect_code(1);
    let truth = truth("head.csv", &sheet, &users);
    assert_org_follows(&truth, &users, emulator.users());
}

#[test]
fn revert_restores_the_org_and_spares_users_changed_since() {
    let users = sample_users();
    let sheet = sample_sheet_head(120);
    let emulator = start(fast_server(), users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sheet);
    let url = emulator.base_url();
    run(gcbulk(dir.path()).args(["update", "head.csv", "--api-base", &url])).expect_code(1);
    let truth = truth("head.csv", &sheet, &users);
    assert!(truth.updated.len() > 10);

    // Someone else edits one of the updated users after the run.
    let (_, (edited, _)) = truth.updated.iter().next().unwrap();
    let bearer = format!("Bearer {}", token(&emulator, &client()));
    let current = &by_id(emulator.users())[edited];
    let body = format!(
        r#"{{"title":"Edited Elsewhere","version":{}}}"#,
        current.version
    );
    let (status, _) = http(
        &emulator,
        "PATCH",
        &format!("/api/v2/users/{edited}"),
        &bearer,
        &body,
    );
    assert_eq!(status, 200);

    let finished = run(gcbulk(dir.path()).args([
        "revert",
        "head.csv.journal.jsonl",
        "--report",
        "revert.json",
    ]));
    finished.expect_code(1);
    let report = json(&dir.path().join("revert.json"));
    assert_eq!(report["summary"]["changed_since"], 1, "{}", finished.stdout);
    assert_eq!(report["summary"]["updated"], truth.updated.len() as u64 - 1);
    assert!(
        finished.stdout.contains("changed by someone else"),
        "{}",
        finished.stdout
    );
    assert!(dir.path().join("head.csv.journal.revert.jsonl").exists());

    // Everyone but the edited user is exactly as before, versions apart.
    let after = by_id(emulator.users());
    for old in &users {
        let mut now = after[&old.id].clone();
        if &old.id == edited {
            assert_eq!(now.title.as_deref(), Some("Edited Elsewhere"));
            continue;
        }
        now.version = old.version;
        assert_eq!(&now, old, "user {} is restored", old.id);
    }
}

/// The text under `--journal <PATH>` in a subcommand's `--help`.
fn journal_help(dir: &std::path::Path, subcommand: &str) -> String {
    let help = run(gcbulk(dir).args([subcommand, "--help"]));
    help.expect_code(0);
    // The paragraph under the option, as one line however the terminal wrapped it.
    let words: Vec<&str> = help
        .stdout
        .lines()
        .skip_while(|l| !l.contains("--journal <PATH>"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    words.join(" ")
}

#[test]
fn the_help_names_the_journals_update_and_revert_write() {
    let emulator = start(fast_server(), sample_users());
    let url = emulator.base_url();
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(20));
    run(gcbulk(dir.path()).args(["update", "head.csv", "--api-base", &url]));
    run(gcbulk(dir.path()).args(["revert", "head.csv.journal.jsonl"])).expect_code(0);
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jsonl"))
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["head.csv.journal.jsonl", "head.csv.journal.revert.jsonl"]
    );

    // Each help names the path the command just used, X being head.csv.
    let update = journal_help(dir.path(), "update");
    assert!(update.contains("INPUT.journal.jsonl"), "{update}");
    let revert = journal_help(dir.path(), "revert");
    assert!(
        revert.contains("X.journal.jsonl → X.journal.revert.jsonl"),
        "{revert}"
    );
    assert!(!revert.contains("INPUT.journal.jsonl"), "{revert}");
}

#[test]
fn hostile_csvs_name_the_line_and_send_nothing_for_bad_rows() {
    let users = sample_users();
    let emulator = start(fast_server(), users.clone());
    let url = emulator.base_url();
    let dir = scratch();
    let good = |n: usize| users[n].email.clone().unwrap();
    let header = "name,email,title\r\n";

    // (file name, bytes, the error expected on stderr, PATCHes expected)
    let cases: Vec<(&str, Vec<u8>, String, u64)> = vec![
        (
            "bom_crlf.csv",
            format!("\u{feff}{header}x,{},Title A\r\ny,bad@@mail,Title B\r\n", good(1)).into_bytes(),
            "bom_crlf.csv:3: email: ".to_owned(),
            1,
        ),
        (
            "quoted.csv",
            format!(
                "name,email,title,location_work\n\"Doe, Jane\",{},\"Lead, \"\"Ops\"\"\",\"Floor 2\nDesk 9\"\nz,not-an-email,T,x\n",
                good(2)
            )
            .into_bytes(),
            // The quoted newline sits in a column gcbulk reads but does not apply (a line break
            // in a title would be refused); the next record starts on line 4.
            "quoted.csv:4: email: ".to_owned(),
            1,
        ),
        (
            "ragged.csv",
            format!("name,email,title\na,{},Title C\nb,{},Title D,extra\n", good(3), good(4))
                .into_bytes(),
            "ragged.csv:3: the row has 4 cells but the header has 3".to_owned(),
            1,
        ),
        (
            "unknown.csv",
            format!("name,email,title,favourite_colour\na,{},Title E,blue\n", good(5))
                .into_bytes(),
            "column \"favourite_colour\" is not a column gcbulk knows".to_owned(),
            1,
        ),
        (
            "utf8.csv",
            [
                format!("name,email,title\na,{},Title F\nb,{},", good(6), good(7)).into_bytes(),
                vec![0xff, 0xfe, b'x', b'\n'],
            ]
            .concat(),
            "utf8.csv:3: title: is not UTF-8 text".to_owned(),
            1,
        ),
        (
            "duplicate.csv",
            format!("name,email,title,Title\na,{},T,U\n", good(8)).into_bytes(),
            "duplicate.csv:1: column \"title\" appears twice".to_owned(),
            0,
        ),
        ("empty.csv", Vec::new(), "empty.csv: the file is empty".to_owned(), 0),
    ];

    for (name, bytes, expected, patches) in cases {
        write(dir.path(), name, &bytes);
        let sent_before = emulator.stats().total();
        let patched_before = emulator.stats().count_endpoint(Endpoint::PatchUser);
        let finished = run(gcbulk(dir.path()).args(["update", name, "--api-base", &url]));
        assert!(
            finished.stderr.contains(&expected),
            "{name}: expected {expected:?} in\n{}",
            finished.stderr
        );
        let stats = emulator.stats();
        assert_eq!(
            stats.count_endpoint(Endpoint::PatchUser) - patched_before,
            patches,
            "{name}: {}",
            finished.stdout
        );
        if patches == 0 {
            finished.expect_code(2);
            assert_eq!(
                stats.total(),
                sent_before,
                "{name}: a file error sends nothing"
            );
        }
    }
    // The bad rows' users were never written.
    let after = by_id(emulator.users());
    for n in [4, 7, 8] {
        assert_eq!(after[&users[n].id], users[n], "user {n}");
    }
    let quoted = &after[&users[2].id];
    assert_eq!(quoted.title.as_deref(), Some("Lead, \"Ops\""));
    assert_eq!(quoted.name, "Doe, Jane");
}

#[test]
fn a_wrong_secret_exits_3_with_one_clear_line() {
    let emulator = start(fast_server(), sample_users());
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let finished = run(gcbulk(dir.path())
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "not-the-secret")
        .args(["update", "head.csv", "--api-base", &emulator.base_url()]));
    finished.expect_code(3);
    let line = finished
        .stderr
        .lines()
        .find(|l| l.contains("authentication failed"))
        .unwrap_or_else(|| panic!("{}", finished.stderr));
    assert!(line.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"), "{line}");
    assert!(!finished.stderr.contains("not-the-secret"));
    assert_eq!(emulator.stats().count_endpoint(Endpoint::PatchUser), 0);
}

/// A login host that answers every request `200` with a body that holds no token, as a proxy or
/// a cut-off answer might; returns its base URL.
fn tokenless_login_host() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 8192];
            let _ = stream.read(&mut request);
            let body = r#"{"token_type":"bearer"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn a_token_answer_without_a_token_is_not_blamed_on_the_credentials() {
    let emulator = start(fast_server(), sample_users());
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let login = tokenless_login_host();
    let finished = run(gcbulk(dir.path()).args([
        "update",
        "head.csv",
        "--api-base",
        &emulator.base_url(),
        "--login-base",
        &login,
    ]));
    finished.expect_code(1);
    assert!(
        finished.stderr.contains("no access_token"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
        "{}",
        finished.stderr
    );
    assert_eq!(emulator.stats().count_endpoint(Endpoint::PatchUser), 0);

    // The export says the same.
    let exported = run(gcbulk(dir.path()).args([
        "export",
        "--out",
        "users.csv",
        "--api-base",
        &emulator.base_url(),
        "--login-base",
        &login,
    ]));
    exported.expect_code(1);
    assert!(
        exported.stderr.contains("could not sign in"),
        "{}",
        exported.stderr
    );
}

#[test]
fn the_secret_and_the_token_appear_nowhere() {
    let secret = "s3cr3t-Zq8v-never-print-me";
    let client = OAuthClient {
        id: "leak-check".to_owned(),
        secret: secret.to_owned(),
        token_lifetime_secs: None,
    };
    let mut server = fast_server();
    server.clients = vec![client.clone()];
    let users = sample_users();
    let emulator = start(server.clone(), users.clone());
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(60));
    let gcbulk = || {
        let mut command = gcbulk(dir.path());
        command
            .env("GENESYSCLOUD_OAUTHCLIENT_ID", &client.id)
            .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret);
        command
    };

    let update = run(gcbulk().args([
        "update",
        "head.csv",
        "--api-base",
        &emulator.base_url(),
        "-vv",
        "--log-file",
        "update.log",
        "--report",
        "update.json",
    ]));
    update.expect_code(1);

    // The model is seeded: replaying the run's first request on a twin gives the token it got.
    let token = first_token(server.clone(), users, &client);
    let works = |emulator: &gcbulk_sim::emulator::Emulator| {
        let bearer = format!("Bearer {token}");
        let (status, _) = http(emulator, "GET", "/api/v2/users?pageSize=1", &bearer, "");
        assert_eq!(status, 200, "the twin's token is the one the run was given");
    };
    works(&emulator);

    // Export and revert each meet an emulator of their own, started as the first was, so the
    // first token each is given is that same one. The revert's is the organisation as the update
    // left it, and the journal is pointed at it.
    let exporting = start(server.clone(), emulator.users());
    let export = run(gcbulk().args([
        "export",
        "--api-base",
        &exporting.base_url(),
        "--out",
        "users.csv",
        "-vv",
        "--log-file",
        "export.log",
    ]));
    export.expect_code(0);
    works(&exporting);

    let reverting = start(server, emulator.users());
    let journal_path = dir.path().join("head.csv.journal.jsonl");
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    std::fs::write(
        &journal_path,
        journal.replace(&emulator.base_url(), &reverting.base_url()),
    )
    .unwrap();
    let revert = run(gcbulk().args([
        "revert",
        "head.csv.journal.jsonl",
        "-vv",
        "--log-file",
        "revert.log",
        "--report",
        "revert.json",
    ]));
    revert.expect_code(0);
    works(&reverting);
    assert!(reverting.stats().count_endpoint(Endpoint::PatchUser) > 0);

    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", client.id))
    };
    let mut shown = vec![
        ("update stdout", update.stdout),
        ("update stderr", update.stderr),
        ("export stdout", export.stdout),
        ("export stderr", export.stderr),
        ("revert stdout", revert.stdout),
        ("revert stderr", revert.stderr),
    ];
    for name in [
        "update.log",
        "export.log",
        "revert.log",
        "head.csv.journal.jsonl",
        "head.csv.journal.revert.jsonl",
        "update.json",
        "revert.json",
        "users.csv",
    ] {
        shown.push((name, read(name)));
    }
    for log in ["update.log", "export.log", "revert.log"] {
        assert!(
            read(log).contains("TRACE"),
            "{log} is as verbose as it gets"
        );
    }
    for (name, text) in shown {
        for needle in [secret, token.as_str(), basic.as_str()] {
            assert!(!text.contains(needle), "{name} shows a secret");
        }
    }
}

/// The token the emulator issues first, from a twin of its model fed the same first request.
fn first_token(server: ServerConfig, users: Vec<User>, client: &OAuthClient) -> String {
    use base64::Engine as _;
    use gcbulk_core::Timestamp;
    use gcbulk_sim::model::{ClientId, Server};

    let mut twin = Server::new(server, users, 42);
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", client.id, client.secret));
    let login = http::Request::post("/oauth/token")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bytes::Bytes::from_static(b"grant_type=client_credentials"))
        .unwrap();
    let reply = twin.handle_request(Timestamp::ZERO, ClientId(0), login);
    let body: Value = serde_json::from_slice(reply.response().unwrap().body()).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn a_journal_is_never_overwritten_nor_resumed_for_another_sheet() {
    let emulator = start(fast_server(), sample_users());
    let url = emulator.base_url();
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let args = ["update", "head.csv", "--api-base", url.as_str()];
    run(gcbulk(dir.path()).args(args));

    let again = run(gcbulk(dir.path()).args(args));
    again.expect_code(2);
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);

    // Another sheet pointed at this journal is told whose journal it is, and the way on.
    write(dir.path(), "other.csv", &sample_sheet_head(7));
    let other = run(gcbulk(dir.path()).args([
        "update",
        "other.csv",
        "--api-base",
        &url,
        "--journal",
        "head.csv.journal.jsonl",
        "--resume",
    ]));
    other.expect_code(2);
    assert!(
        other
            .stderr
            .contains("belongs to another sheet: it is the journal of head.csv, not other.csv"),
        "{}",
        other.stderr
    );
    assert!(
        other
            .stderr
            .contains("gcbulk update head.csv --resume --journal head.csv.journal.jsonl"),
        "{}",
        other.stderr
    );
    assert!(!other.stderr.contains("has changed"), "{}", other.stderr);

    // The same sheet edited since is told it has changed, however it is named.
    write(dir.path(), "head.csv", &sample_sheet_head(6));
    let changed = run(gcbulk(dir.path()).args(args).arg("--resume"));
    changed.expect_code(2);
    assert!(changed.stderr.contains("has changed"), "{}", changed.stderr);
    assert!(
        !changed.stderr.contains("another sheet"),
        "{}",
        changed.stderr
    );
    let spelled = run(gcbulk(dir.path()).args([
        "update",
        "./head.csv",
        "--api-base",
        &url,
        "--journal",
        "head.csv.journal.jsonl",
        "--resume",
    ]));
    spelled.expect_code(2);
    assert!(spelled.stderr.contains("has changed"), "{}", spelled.stderr);

    // And the sheet as it was resumes.
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let resumed = run(gcbulk(dir.path()).args(args).arg("--resume"));
    assert_ne!(resumed.code, Some(2), "{}", resumed.stderr);
}

#[test]
fn an_export_reads_back_as_a_sheet_with_nothing_to_change() {
    let users = sample_users();
    let emulator = start(fast_server(), users.clone());
    let url = emulator.base_url();
    let dir = scratch();
    run(gcbulk(dir.path()).args(["export", "--api-base", &url, "--out", "users.csv"]))
        .expect_code(0);
    let active = users
        .iter()
        .filter(|u| u.state == gcbulk_core::change::UserState::Active)
        .count();
    let sheet = std::fs::read(dir.path().join("users.csv")).unwrap();
    let input = read_changes("users.csv", &sheet, &ReadOptions::default()).unwrap();
    assert_eq!(input.rows.len() + input.row_errors.len(), active);

    let finished = run(gcbulk(dir.path()).args([
        "update",
        "users.csv",
        "--api-base",
        &url,
        "--report",
        "report.json",
    ]));
    let report = json(&dir.path().join("report.json"));
    assert_eq!(report["summary"]["updated"], 0, "{}", finished.stdout);
    assert_eq!(emulator.stats().count_endpoint(Endpoint::PatchUser), 0);
}

#[test]
fn exporting_inactive_users_stops_cleanly_at_the_listing_limit() {
    let mut users = sample_users();
    for user in &mut users {
        user.state = gcbulk_core::change::UserState::Inactive;
    }
    let mut server = fast_server();
    server.inactive_listing_limit = 1000;
    let emulator = start(server, users);
    let dir = scratch();
    let finished = run(gcbulk(dir.path()).args([
        "export",
        "--state",
        "inactive",
        "--api-base",
        &emulator.base_url(),
        "--out",
        "inactive.csv",
    ]));
    finished.expect_code(0);
    assert!(
        finished.stderr.contains("10,000 inactive"),
        "{}",
        finished.stderr
    );
    let sheet = std::fs::read(dir.path().join("inactive.csv")).unwrap();
    let input = read_changes("inactive.csv", &sheet, &ReadOptions::default()).unwrap();
    assert_eq!(input.rows.len() + input.row_errors.len(), 1000);
}

#[test]
fn a_second_run_on_a_journal_in_use_stops_before_sending_anything() {
    let emulator = start(fast_server(), sample_users());
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(20));
    let url = emulator.base_url();
    let args = ["update", "head.csv", "--api-base", url.as_str()];
    run(gcbulk(dir.path()).args(args));
    // As if that run was stopped before any row was settled, so a resume has users to read.
    let journal = dir.path().join("head.csv.journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| !line.contains(r#""type":"row""#))
        .collect();
    std::fs::write(&journal, &kept).unwrap();
    let written = std::fs::read(&journal).unwrap();

    // Another gcbulk run holding the journal, as this process does now.
    let held = std::fs::File::open(&journal).unwrap();
    held.try_lock().unwrap();
    let sent_before = emulator.stats().total();
    let second = run(gcbulk(dir.path()).args(args).arg("--resume"));
    second.expect_code(2);
    assert!(
        second
            .stderr
            .contains("head.csv.journal.jsonl is in use by another gcbulk run"),
        "{}",
        second.stderr
    );
    assert_eq!(emulator.stats().total(), sent_before);
    assert_eq!(std::fs::read(&journal).unwrap(), written);

    drop(held);
    let resumed = run(gcbulk(dir.path()).args(args).arg("--resume"));
    assert!(
        resumed.code == Some(0) || resumed.code == Some(1),
        "{resumed:?}"
    );
    assert!(emulator.stats().total() > sent_before);
}

#[test]
fn a_revert_waits_for_no_run_still_writing_its_journal() {
    let emulator = start(fast_server(), sample_users());
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let url = emulator.base_url();
    run(gcbulk(dir.path()).args(["update", "head.csv", "--api-base", url.as_str()]));
    let journal = dir.path().join("head.csv.journal.jsonl");

    // The update that wrote it, still running.
    let held = std::fs::File::open(&journal).unwrap();
    held.try_lock().unwrap();
    let sent_before = emulator.stats().total();
    let revert = [
        "revert",
        "head.csv.journal.jsonl",
        "--api-base",
        url.as_str(),
    ];
    let refused = run(gcbulk(dir.path()).args(revert));
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("is in use by another gcbulk run"),
        "{}",
        refused.stderr
    );
    assert_eq!(emulator.stats().total(), sent_before);

    drop(held);
    run(gcbulk(dir.path()).args(revert)).expect_code(0);
}

#[test]
fn no_output_may_overwrite_the_sheet_or_the_journal() {
    let emulator = start(fast_server(), sample_users());
    let url = emulator.base_url();
    let dir = scratch();
    let sheet = sample_sheet_head(5);
    write(dir.path(), "head.csv", &sheet);
    let refused = |extra: &[&str], named: &str| {
        let finished = run(gcbulk(dir.path())
            .args(["update", "head.csv", "--api-base", &url])
            .args(extra));
        finished.expect_code(2);
        assert!(finished.stderr.contains(named), "{}", finished.stderr);
        assert!(finished.stderr.contains("same file"), "{}", finished.stderr);
    };
    refused(&["--report", "head.csv"], "head.csv");
    refused(&["--report", "./head.csv"], "./head.csv");
    refused(&["--trace", "head.csv"], "head.csv");
    refused(&["--journal", "head.csv"], "head.csv");
    assert_eq!(std::fs::read(dir.path().join("head.csv")).unwrap(), sheet);
    assert_eq!(emulator.stats().count_endpoint(Endpoint::PatchUser), 0);

    run(gcbulk(dir.path()).args(["update", "head.csv", "--api-base", &url]));
    let journal = std::fs::read(dir.path().join("head.csv.journal.jsonl")).unwrap();
    refused(
        &["--resume", "--report", "head.csv.journal.jsonl"],
        "head.csv.journal.jsonl",
    );
    assert_eq!(
        std::fs::read(dir.path().join("head.csv.journal.jsonl")).unwrap(),
        journal
    );
}

#[test]
fn an_unwritable_report_is_refused_before_anything_is_sent() {
    let emulator = start(fast_server(), sample_users());
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let finished = run(gcbulk(dir.path()).args([
        "update",
        "head.csv",
        "--api-base",
        &emulator.base_url(),
        "--report",
        "no-such-folder/report.json",
    ]));
    finished.expect_code(2);
    assert!(
        finished.stderr.contains("no-such-folder/report.json"),
        "{}",
        finished.stderr
    );
    assert_eq!(emulator.stats().count_endpoint(Endpoint::PatchUser), 0);
    assert!(!dir.path().join("head.csv.journal.jsonl").exists());
}

#[test]
fn a_refused_login_names_no_journal_it_removed() {
    let emulator = start(fast_server(), sample_users());
    let dir = scratch();
    write(dir.path(), "auth.csv", &sample_sheet_head(5));
    let finished = run(gcbulk(dir.path())
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "not-the-secret")
        .args([
            "update",
            "auth.csv",
            "--api-base",
            &emulator.base_url(),
            "--report",
            "report.json",
        ]));
    finished.expect_code(3);
    assert!(!dir.path().join("auth.csv.journal.jsonl").exists());
    let report = json(&dir.path().join("report.json"));
    assert_eq!(report["journal"], Value::Null, "{report}");
    assert!(!finished.stdout.contains("journal:"), "{}", finished.stdout);
}

#[test]
fn a_dry_run_says_only_what_is_true_of_its_journal() {
    let emulator = start(fast_server(), sample_users());
    let url = emulator.base_url();
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    let dry = run(gcbulk(dir.path()).args(["update", "head.csv", "--dry-run", "--api-base", &url]));
    assert!(!dry.stdout.contains("--resume"), "{}", dry.stdout);

    run(gcbulk(dir.path()).args(["update", "head.csv", "--api-base", &url]));
    let resumed = run(gcbulk(dir.path()).args([
        "update",
        "head.csv",
        "--dry-run",
        "--resume",
        "--api-base",
        &url,
    ]));
    assert!(!resumed.stdout.contains("--resume"), "{}", resumed.stdout);
    let counted: u64 = resumed
        .stdout
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    assert!(counted >= 5, "{}", resumed.stdout);
}

#[test]
fn a_domain_that_is_not_a_bare_name_is_refused_before_anything_is_sent() {
    let dir = scratch();
    write(dir.path(), "head.csv", &sample_sheet_head(5));
    for (domain, says) in [
        (
            "http://mypurecloud.de",
            "give the domain alone: mypurecloud.de",
        ),
        (
            "api.mypurecloud.de",
            "give the domain alone: mypurecloud.de",
        ),
        ("", "--domain is empty"),
    ] {
        let finished = run(gcbulk(dir.path()).args(["update", "head.csv", "--domain", domain]));
        finished.expect_code(2);
        assert!(
            finished.stderr.contains(says),
            "{domain}: {}",
            finished.stderr
        );
    }
    assert!(!dir.path().join("head.csv.journal.jsonl").exists());
}

#[test]
fn a_sheet_is_checked_before_credentials_are_asked_for() {
    let dir = scratch();
    write(
        dir.path(),
        "bad.csv",
        b"email,title\nalice@example.com,Lead\nnot-an-email,Lead\n",
    );
    let finished = run(gcbulk(dir.path())
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET")
        .args([
            "update",
            "bad.csv",
            "--api-base",
            "http://127.0.0.1:9",
            "--dry-run",
        ]));
    finished.expect_code(2);
    let row = finished
        .stderr
        .find("bad.csv:3: email")
        .unwrap_or_else(|| panic!("{}", finished.stderr));
    let credentials = finished
        .stderr
        .find("no OAuth client id")
        .unwrap_or_else(|| panic!("{}", finished.stderr));
    assert!(row < credentials, "{}", finished.stderr);
}
