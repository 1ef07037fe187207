//! What the integration tests share: an emulated organisation, a change file with every kind of
//! row, the workflow run through either adapter, and a small scripted HTTP server.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part of the support code"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use gcbulk::input::{ReadOptions, read_changes};
use gcbulk_async_std::{Driver, DriverOptions, RunStats};
use gcbulk_core::Timestamp;
use gcbulk_core::change::ChangeRow;
use gcbulk_core::genesys::{Credentials, RowReport, Secret, UserUpdate, WorkflowConfig};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{FaultPreset, Latency, ServerConfig, User};

/// Users in the test organisation.
pub const ORG_SIZE: usize = 40;

/// Virtual seconds per wall-clock second: the storm preset's first storm (30 s to 90 s of virtual
/// time) then starts 0.15 s after the emulator and lasts 0.3 s.
pub const TIME_SCALE: f64 = 200.0;

/// The manager that some rows give by e-mail: `u39`.
const MANAGER: &str = "user39@example.com";

/// The organisation: `u00` to `u39`, all agents in Support.
pub fn org() -> Vec<User> {
    (0..ORG_SIZE)
        .map(|i| {
            let mut user = User::new(
                format!("u{i:02}"),
                format!("User {i:02}"),
                format!("user{i:02}@example.com"),
            );
            user.title = Some("Agent".to_owned());
            user.department = Some("Support".to_owned());
            user
        })
        .collect()
}

/// The emulator over [`org`], with `preset` applied and time compressed by [`TIME_SCALE`].
///
/// Its budget is 3000 requests a (virtual) minute, which the workflow reads from the headers as
/// 50 a second. What the headers say is read as wall-clock time (a `Retry-After` of 3 s is
/// waited out for 3 s), but latency is compressed like the rest: 4 to 12 virtual seconds are 20
/// to 60 ms, so several requests are in flight at once.
///
/// With the storm preset it returns once the first storm has begun, so that a run started then
/// meets it however slowly a loaded machine lets it go.
pub fn emulator(preset: FaultPreset, seed: u64) -> Emulator {
    let mut server = ServerConfig {
        latency: Latency::Uniform {
            min_ms: 4000.0,
            max_ms: 12000.0,
        },
        ..ServerConfig::default()
    }
    .with_rate_limit_per_minute(3000);
    preset.apply(&mut server);
    let config = EmulatorConfig {
        server,
        users: org(),
        seed,
        time_scale: TIME_SCALE,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).expect("the emulator starts");

    if preset == FaultPreset::Storm {
        let storm = Timestamp::from_secs(31);
        let left = storm.saturating_since(emulator.now()).div_f64(TIME_SCALE);
        async_io::block_on(async_io::Timer::after(left));
    }
    emulator
}

/// A change file with every kind of row the workflow reports, as JSON lines.
///
/// Lines 1-30 change titles (half keyed by id, half by e-mail, some with a manager by e-mail);
/// then a user not found by id, one not found by e-mail, a row that changes nothing, a repeated
/// row, and two rows that disagree about one user.
pub fn changes_jsonl() -> String {
    let mut lines = Vec::new();
    for i in 0..30 {
        let line = match i % 3 {
            0 => format!(r#"{{"id": "u{i:02}", "title": "Team Lead"}}"#),
            1 => format!(r#"{{"email": "user{i:02}@example.com", "department": "Sales"}}"#),
            _ => format!(
                r#"{{"id": "u{i:02}", "title": "Senior Agent", "manager_email": "{MANAGER}"}}"#
            ),
        };
        lines.push(line);
    }
    lines.push(r#"{"id": "nobody", "title": "Ghost"}"#.to_owned());
    lines.push(r#"{"email": "nobody@example.com", "title": "Ghost"}"#.to_owned());
    lines.push(r#"{"id": "u30", "title": "Agent"}"#.to_owned());
    lines.push(r#"{"id": "u31", "title": "Coach"}"#.to_owned());
    lines.push(r#"{"id": "u31", "title": "Coach"}"#.to_owned());
    lines.push(r#"{"id": "u32", "title": "Coach"}"#.to_owned());
    lines.push(r#"{"id": "u32", "title": "Trainer"}"#.to_owned());
    lines.join("\n") + "\n"
}

/// The rows of [`changes_jsonl`], read as the command reads a change file.
pub fn rows() -> Vec<ChangeRow> {
    let text = changes_jsonl();
    let input = read_changes("changes.jsonl", text.as_bytes(), &ReadOptions::default())
        .expect("the change file reads");
    assert!(input.row_errors.is_empty(), "{:?}", input.row_errors);
    input.rows
}

/// The outcome kinds [`changes_jsonl`] must end with, by line.
pub fn expected_kinds() -> BTreeMap<u64, &'static str> {
    let mut kinds: BTreeMap<u64, &'static str> = (1..=30).map(|line| (line, "updated")).collect();
    kinds.insert(31, "not_found");
    kinds.insert(32, "not_found");
    kinds.insert(33, "unchanged");
    kinds.insert(34, "updated");
    kinds.insert(35, "duplicate");
    kinds.insert(36, "rejected");
    kinds.insert(37, "rejected");
    kinds
}

/// The workflow's settings against `emulator`, with the emulator's default OAuth client.
pub fn workflow_config(emulator: &Emulator) -> WorkflowConfig {
    let base = emulator.base_url();
    let credentials = Credentials {
        client_id: "gcbulk-emulator".into(),
        client_secret: Secret::new("emulator-secret"),
    };
    let mut config = WorkflowConfig::new(&base, &base, credentials);
    // Start at the rate the emulator's headers will announce, rather than learn it from 5 a second.
    config.scheduler.pacing.initial_rate = Some(50.0);
    config
}

/// Each report's kind, by line.
pub fn kinds(reports: &[RowReport]) -> BTreeMap<u64, &'static str> {
    let kinds: BTreeMap<u64, &'static str> = reports
        .iter()
        .map(|report| (report.source.line, report.outcome.kind()))
        .collect();
    assert_eq!(kinds.len(), reports.len(), "one report per line");
    kinds
}

/// Applies [`rows`] to `emulator` through the async adapter, on whatever runtime awaits it.
pub async fn apply_async(emulator: &Emulator, seed: u64) -> (Vec<RowReport>, RunStats, u64) {
    let driver = Driver::new(DriverOptions::default()).expect("valid options");
    let mut update = UserUpdate::new(workflow_config(emulator), rows(), seed);
    let mut reports = Vec::new();
    let stats = driver
        .run(&mut update, |_, report| reports.push(report))
        .await
        .expect("the run ends");
    assert!(update.auth_failure().is_none());
    (reports, stats, driver.transport().connections_opened())
}

/// Applies [`rows`] to `emulator` through the ureq adapter.
pub fn apply_ureq(emulator: &Emulator, seed: u64) -> Vec<RowReport> {
    let config = workflow_config(emulator);
    let driver = gcbulk_ureq::Driver::new(gcbulk_ureq::DriverOptions {
        workers: config.scheduler.max_in_flight,
        ..gcbulk_ureq::DriverOptions::default()
    })
    .expect("valid options");
    let mut update = UserUpdate::new(config, rows(), seed);
    let mut reports = Vec::new();
    driver
        .run(&mut update, |_, report| reports.push(report))
        .expect("the run ends");
    reports
}

/// Checks the organisation after [`changes_jsonl`] was applied.
pub fn assert_org_changed(emulator: &Emulator) {
    let users: BTreeMap<String, User> = emulator
        .users()
        .into_iter()
        .map(|user| (user.id.clone(), user))
        .collect();
    for i in 0..30 {
        let user = &users[&format!("u{i:02}")];
        match i % 3 {
            0 => assert_eq!(user.title.as_deref(), Some("Team Lead"), "{}", user.id),
            1 => assert_eq!(user.department.as_deref(), Some("Sales"), "{}", user.id),
            _ => {
                assert_eq!(user.title.as_deref(), Some("Senior Agent"), "{}", user.id);
                let manager = user.manager.as_ref().map(|m| m.id.as_str());
                assert_eq!(manager, Some("u39"), "{}", user.id);
            }
        }
    }
    assert_eq!(users["u31"].title.as_deref(), Some("Coach"));
    assert_eq!(users["u32"].title.as_deref(), Some("Agent"));
}

/// What the scripted server does with one request.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answers with a status, headers and a body.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Waits, then does the inner script.
    After(Duration, Box<Script>),
    /// Answers, then closes the connection a moment later (an idle timeout on the server).
    AnswerThenClose(Box<Script>),
}

impl Script {
    pub fn status(status: u16) -> Self {
        Self::Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Self::Answer { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    pub fn body(mut self, content: impl Into<Vec<u8>>) -> Self {
        if let Self::Answer { body, .. } = &mut self {
            *body = content.into();
        }
        self
    }
}

/// A request the scripted server read.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// An HTTP/1.1 server on loopback that answers from a script, on threads of its own.
///
/// It lives as long as the test process: its threads end when their connections close.
pub struct Scripted {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    connections: Arc<AtomicUsize>,
}

impl Scripted {
    /// Starts serving; `script` chooses the reply for each request.
    pub fn start(script: impl Fn(&Hit) -> Script + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("an address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);

        let (served, counted) = (Arc::clone(&hits), Arc::clone(&connections));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let (hits, script) = (Arc::clone(&served), Arc::clone(&script));
                thread::spawn(move || serve(stream, &hits, &*script));
            }
        });
        Self {
            addr,
            hits,
            connections,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("no panic while recording").clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, hits: &Mutex<Vec<Hit>>, script: &dyn Fn(&Hit) -> Script) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let Some(hit) = read_request(&mut reader) else {
            return;
        };
        hits.lock()
            .expect("no panic while recording")
            .push(hit.clone());
        let mut reply = script(&hit);
        let mut close = false;
        loop {
            match reply {
                Script::After(delay, inner) => {
                    pause(delay);
                    reply = *inner;
                }
                Script::AnswerThenClose(inner) => {
                    close = true;
                    reply = *inner;
                }
                Script::Answer { .. } => break,
            }
        }
        let Script::Answer {
            status,
            headers,
            body,
        } = reply
        else {
            unreachable!("the loop above ends on an answer");
        };
        let mut head = format!("HTTP/1.1 {status} Scripted\r\n");
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
        if close {
            pause(Duration::from_millis(20));
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Hit> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();

    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let hit = Hit {
        method,
        target,
        headers,
    };
    let length: usize = hit
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(hit)
}

#[expect(
    clippy::disallowed_methods,
    reason = "the scripted server stands for a slow remote peer, in wall-clock time"
)]
fn pause(delay: Duration) {
    thread::sleep(delay);
}
