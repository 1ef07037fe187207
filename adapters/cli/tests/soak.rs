//! A soak: 5,000 users changed through the `gcbulk` binary while the emulator misbehaves in every
//! way it knows (503 bursts, connection resets before and after the change, other admins editing
//! users, a 429 storm), with the process killed by SIGKILL at seeded random points and resumed
//! each time.
//!
//! At the end every row is applied exactly once: each user's version moved by what the sheet
//! needed plus the edits of the other admins, and not one more; the organisation is what the
//! sheet asks; the journal holds each row settled once. It takes about 20 s on two cores in a
//! debug build. `SOAK_SEED=n` picks other kill points, users and changes; `SOAK_LOG=1` keeps a
//! `-vv` log of each run in the scratch folder it names.
#![allow(
    clippy::unwrap_used,
    reason = "a test should stop at the first thing it did not expect"
)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use gcbulk::journal::{Loaded, parse};
use gcbulk_core::genesys::RowOutcome;
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{
    ClientLimit, EditorEdit, EditorsConfig, Endpoint, FaultPreset, Latency, ServerConfig,
    StormWindow, ThrottleCause, User, UserRef,
};
use support::{Finished, gcbulk, poll_until, scratch, write};

const USERS: usize = 5_000;
const KILLS: usize = 5;
/// Longest a resumed run may take; one takes a few seconds.
const RESUME_LIMIT: Duration = Duration::from_secs(180);
const TITLES: [&str; 6] = [
    "Agent",
    "Senior Agent",
    "Team Lead",
    "Supervisor",
    "Quality Analyst",
    "Workforce Planner",
];
const DEPARTMENTS: [&str; 5] = ["Sales", "Support", "Billing", "Retention", "Onboarding"];

/// A small seeded generator (SplitMix64): the test needs no more than repeatable dice.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn email(n: usize) -> String {
    format!("user{n:05}@soak.example")
}

fn organisation(dice: &mut Dice) -> Vec<User> {
    (0..USERS)
        .map(|n| {
            let mut user = User::new(format!("u{n:05}"), format!("User {n}"), email(n));
            user.title = Some(TITLES[dice.below(TITLES.len())].to_owned());
            user.department = Some(DEPARTMENTS[dice.below(DEPARTMENTS.len())].to_owned());
            user.version = 1 + dice.next() % 40;
            if n > 0 {
                user.manager = Some(UserRef {
                    id: format!("u{:05}", dice.below(n)),
                });
            }
            user
        })
        .collect()
}

/// What one row asks of its user.
#[derive(Clone, Debug)]
struct Wish {
    title: String,
    department: String,
    manager: Option<usize>,
}

/// A row for every user: most change the title, some the department or the manager, some ask
/// for what is already there. Returns the sheet and each user's wish.
fn sheet(dice: &mut Dice, users: &[User]) -> (Vec<u8>, Vec<Wish>) {
    let mut text = String::from("email,title,department,email_manager\r\n");
    let mut wishes = Vec::with_capacity(users.len());
    for (n, user) in users.iter().enumerate() {
        let mut wish = Wish {
            title: user.title.clone().unwrap_or_default(),
            department: user.department.clone().unwrap_or_default(),
            manager: None,
        };
        if !dice.chance(5) {
            wish.title = TITLES[dice.below(TITLES.len())].to_owned();
            if dice.chance(20) {
                wish.department = DEPARTMENTS[dice.below(DEPARTMENTS.len())].to_owned();
            }
            if n > 1 && dice.chance(10) {
                wish.manager = Some(dice.below(n));
            }
        }
        let manager = wish.manager.map(email).unwrap_or_default();
        // Some e-mails as people type them: another case, stray spaces.
        let key = if dice.chance(3) {
            format!(" {} ", email(n).to_uppercase())
        } else {
            email(n)
        };
        text.push_str(&format!(
            "{key},{},{},{manager}\r\n",
            wish.title, wish.department
        ));
        wishes.push(wish);
    }
    (text.into_bytes(), wishes)
}

/// The user as the sheet wants it.
fn wanted(user: &User, wish: &Wish) -> User {
    let mut user = user.clone();
    user.title = Some(wish.title.clone());
    user.department = Some(wish.department.clone());
    if let Some(manager) = wish.manager {
        user.manager = Some(UserRef {
            id: format!("u{manager:05}"),
        });
    }
    user
}

/// Genesys at its worst short of an outage, with budget to spare so the soak stays short.
fn hostile_server() -> ServerConfig {
    let mut server = ServerConfig::default();
    server.rate_limit.per_client = ClientLimit::FixedWindow {
        limit: 30_000,
        window_secs: 60,
    };
    server.latency = Latency::Uniform {
        min_ms: 1.0,
        max_ms: 4.0,
    };
    FaultPreset::Flaky.apply(&mut server);
    // The preset's chances are per request, set for Genesys' 300 a minute; at a hundred times
    // that rate its bursts would overlap into an outage. A few bursts a run, each hundreds of
    // requests long at this rate, and more of the single faults, so each kind shows up.
    server.faults.burst_probability = 0.000_5;
    server.faults.burst_min_ms = 200;
    server.faults.burst_max_ms = 1_000;
    server.faults.server_error_probability = 0.02;
    server.faults.reset_probability = 0.01;
    server.faults.reset_after_apply_fraction = 0.5;
    server.editors = Some(EditorsConfig {
        fraction: 0.05,
        start_secs: 0.0,
        end_secs: 15.0,
        // A version bump alone: the organisation stays comparable with what the sheet asks.
        edit: EditorEdit::VersionOnly,
    });
    server.rate_limit.storms.push(StormWindow {
        start_secs: 3.0,
        end_secs: 8.0,
        refuse_fraction: 0.6,
        retry_after_min_secs: 1,
        retry_after_max_secs: 2,
    });
    server
}

/// Lines in the journal so far: a cheap measure of progress to kill at.
fn journal_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
}

/// A running `gcbulk`, killed should the test stop before it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a run; its stderr is kept only for a run that is waited for, since an unread pipe that
/// fills up would stall the process.
fn spawn(dir: &Path, url: &str, resume: bool, keep_stderr: bool) -> Running {
    let mut command = gcbulk(dir);
    command
        .args([
            "update",
            "soak.csv",
            "--api-base",
            url,
            "--concurrency",
            "16",
        ])
        .stdout(Stdio::null())
        .stderr(if keep_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    if std::env::var_os("SOAK_LOG").is_some() {
        let n = std::fs::read_dir(dir).unwrap().count();
        command.args(["-vv", "--log-file", &format!("run{n}.log")]);
    }
    if resume {
        command.arg("--resume");
    }
    Running(command.spawn().unwrap())
}

fn read_journal(path: &Path) -> Loaded {
    parse(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("the journal: {e}"))
}

#[test]
fn killed_and_resumed_under_every_fault_each_row_is_applied_once() {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut dice = Dice(seed);
    let users = organisation(&mut dice);
    let (bytes, wishes) = sheet(&mut dice, &users);
    let emulator = Emulator::start(EmulatorConfig {
        server: hostile_server(),
        users: users.clone(),
        seed,
        port: 0,
        time_scale: 1.0,
    })
    .unwrap();
    let url = emulator.base_url();
    let dir = scratch();
    if std::env::var_os("SOAK_LOG").is_some() {
        eprintln!("soak: in {}", dir.path().display());
    }
    write(dir.path(), "soak.csv", &bytes);
    let journal = dir.path().join("soak.csv.journal.jsonl");

    // Kill points: a share of the journal lines a whole run writes (a row line each, and a
    // patch line for most), spread over the run, one of them early.
    let expected_lines = USERS * 2;
    let mut points: Vec<usize> = (0..KILLS)
        .map(|k| {
            let low = expected_lines * k / KILLS;
            let high = expected_lines * (k + 1) / KILLS * 9 / 10;
            (low + dice.below(high.max(low + 2) - low)).max(2)
        })
        .collect();
    points.sort_unstable();

    let mut killed = 0;
    for (run, point) in points.iter().enumerate() {
        let mut running = spawn(dir.path(), &url, run > 0, false);
        let child = &mut running.0;
        let mut ended = None;
        let reached = poll_until(Duration::from_secs(120), || {
            if let Some(status) = child.try_wait().unwrap() {
                ended = Some(status);
                return true;
            }
            journal_lines(&journal) >= *point
        });
        assert!(reached, "run {run} made no progress to line {point}");
        if ended.is_none() {
            // SIGKILL: no handler runs, whatever was being written is torn.
            child.kill().unwrap();
            child.wait().unwrap();
            killed += 1;
        }
        eprintln!(
            "soak: run {run} {} at journal line {}",
            if ended.is_none() { "killed" } else { "ended" },
            journal_lines(&journal)
        );
    }
    assert!(killed >= KILLS - 1, "only {killed} kills landed mid-run");

    // Resume until every row is settled: a row given up on (a 503 burst longer than its
    // retries) is tried again, as an admin would.
    let mut finished = None;
    for _ in 0..5 {
        let mut running = spawn(dir.path(), &url, true, true);
        let pipe = running.0.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut stderr = String::new();
            if let Some(mut pipe) = pipe {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
            }
            stderr
        });
        // A run that never ends is a bug of its own; fail with what it said instead of hanging.
        let mut status = None;
        let ended = poll_until(RESUME_LIMIT, || {
            status = running.0.try_wait().unwrap();
            status.is_some()
        });
        if !ended {
            running.0.kill().unwrap();
            running.0.wait().unwrap();
        }
        let stderr = reader.join().unwrap();
        assert!(
            ended,
            "a resumed run was still going after {RESUME_LIMIT:?}:\n{stderr}"
        );
        let done = Finished {
            code: status.and_then(|status| status.code()),
            stdout: String::new(),
            stderr,
        };
        eprintln!("soak: resumed run ended with {:?}", done.code);
        if done.code == Some(0) {
            finished = Some(done);
            break;
        }
        assert_eq!(done.code, Some(1), "{}", done.stderr);
    }
    assert!(finished.is_some(), "rows still unsettled after 5 resumes");

    let after = emulator.users();
    let stats = emulator.stats();
    eprintln!(
        "soak: {} answers, {} of them 503, {} resets, {} 429s ({:?}), {} edits by others",
        stats.total(),
        stats.count_status(503),
        stats.resets,
        stats.throttled,
        stats.throttled_by,
        stats.editor_edits
    );
    // The faults happened.
    assert!(stats.resets > 0, "{stats:?}");
    assert!(stats.count_status(503) > 0, "{stats:?}");
    assert!(stats.editor_edits > 0, "{stats:?}");
    assert!(
        stats
            .throttled_by
            .get(&ThrottleCause::Storm)
            .is_some_and(|n| *n > 0),
        "{stats:?}"
    );

    // Each user is as the sheet asks, and was written once if it needed a change, never more:
    // a user's version moves by its one write and by the other admins' edits, which are one
    // per edited user.
    let mut extra_versions = 0;
    for ((before, now), wish) in users.iter().zip(&after).zip(&wishes) {
        let mut want = wanted(before, wish);
        let needed = u64::from(want != *before);
        want.version = now.version;
        assert_eq!(*now, want, "user {}", before.id);
        let moved = now.version - before.version;
        assert!(
            (needed..=needed + 1).contains(&moved),
            "user {}: version {} -> {} for {needed} change",
            before.id,
            before.version,
            now.version
        );
        extra_versions += moved - needed;
    }
    assert_eq!(
        extra_versions, stats.editor_edits,
        "every version beyond the sheet's is another admin's edit"
    );
    let accepted = stats.count(Endpoint::PatchUser, 200);
    let needed = users
        .iter()
        .zip(&wishes)
        .filter(|(u, w)| wanted(u, w) != **u)
        .count() as u64;
    assert!(
        accepted <= needed,
        "{accepted} PATCHes accepted for {needed} users to change"
    );

    // The journal: whole, every sheet line settled, and settled once across all the runs.
    let loaded = read_journal(&journal);
    assert!(!loaded.torn);
    assert_eq!(loaded.rows.len(), USERS);
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut settled: BTreeMap<u64, usize> = BTreeMap::new();
    let mut resumed = 0;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        match value["type"].as_str() {
            Some("row") => {
                let record: gcbulk::journal::RowRecord = serde_json::from_value(value).unwrap();
                if record.outcome.is_settled() {
                    *settled.entry(record.line).or_default() += 1;
                }
            }
            Some("resumed") => resumed += 1,
            _ => {}
        }
    }
    assert_eq!(settled.len(), USERS, "every row settled");
    let twice: Vec<_> = settled.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "settled more than once: {twice:?}");
    assert!(resumed >= killed, "{resumed} resumes for {killed} kills");
    let outcomes: HashMap<&str, usize> =
        loaded
            .rows
            .values()
            .fold(HashMap::new(), |mut counts, recorded| {
                let kind = match &recorded.record.outcome {
                    RowOutcome::Updated { .. } => "updated",
                    RowOutcome::Unchanged { .. } => "unchanged",
                    other => panic!("line {}: {other:?}", recorded.record.line),
                };
                *counts.entry(kind).or_default() += 1;
                counts
            });
    assert_eq!(outcomes.values().sum::<usize>(), USERS, "{outcomes:?}");
}
