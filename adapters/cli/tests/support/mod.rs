//! What the command's tests share: an emulator in the test process, the built `gcbulk` binary
//! run against it, the sample data, and a few bytes of HTTP to act as another admin.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    reason = "each test binary uses a part of the support code; a test stops at the first surprise"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{ClientLimit, Latency, OAuthClient, ServerConfig, User, load_users_file};
use serde_json::Value;

/// The sample organisation and sheet the demo uses.
pub const ORG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/org.jsonl");
pub const REORG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/reorg.csv");

/// The emulator's default OAuth client.
pub fn client() -> OAuthClient {
    OAuthClient::default()
}

/// The sample organisation's users.
pub fn sample_users() -> Vec<User> {
    load_users_file(ORG).unwrap()
}

/// The sample sheet's bytes.
pub fn sample_sheet() -> Vec<u8> {
    std::fs::read(REORG).unwrap()
}

/// The first `rows` data rows of the sample sheet, header and byte order mark kept.
pub fn sample_sheet_head(rows: usize) -> Vec<u8> {
    let text = String::from_utf8(sample_sheet()).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').take(rows + 1).collect();
    lines.concat().into_bytes()
}

/// A Genesys that answers quickly and allows a lot, so a test is short; limits still announced.
pub fn fast_server() -> ServerConfig {
    let mut server = ServerConfig::default();
    server.rate_limit.per_client = ClientLimit::FixedWindow {
        limit: 3000,
        window_secs: 10,
    };
    server.latency = Latency::Fixed { ms: 2.0 };
    server
}

/// An emulator on a free loopback port.
pub fn start(server: ServerConfig, users: Vec<User>) -> Emulator {
    Emulator::start(EmulatorConfig {
        server,
        users,
        seed: 42,
        port: 0,
        time_scale: 1.0,
    })
    .unwrap()
}

/// A scratch folder for sheets, journals, reports and logs.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The built binary, with the emulator's credentials in its environment and nothing else of
/// Genesys' there.
pub fn gcbulk(dir: &Path) -> Command {
    let client = client();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gcbulk"));
    command
        .current_dir(dir)
        .env_remove("GENESYSCLOUD_REGION")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", client.id)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", client.secret)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// Calls `ready` every 20 ms until it says yes (true) or `limit` passes (false).
#[expect(
    clippy::disallowed_methods,
    reason = "the test watches a real process in wall-clock time"
)]
pub fn poll_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Runs the command to its end.
pub fn run(command: &mut Command) -> Finished {
    let output = command.output().unwrap();
    Finished::from(output)
}

/// What a finished run printed and how it exited.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Finished {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Finished {
    /// Panics with everything printed unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Reads a JSON file.
pub fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A journal's records, torn last line left out.
pub fn journal_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Each sheet line's last journal record.
pub fn last_records(path: &Path) -> HashMap<u64, Value> {
    journal_records(path)
        .into_iter()
        .filter(|r| r["type"] == "row")
        .map(|r| (r["line"].as_u64().unwrap(), r))
        .collect()
}

/// Users by id.
pub fn by_id(users: Vec<User>) -> HashMap<String, User> {
    users.into_iter().map(|u| (u.id.clone(), u)).collect()
}

/// One HTTP/1.1 exchange with the emulator on a fresh connection: another admin at work.
pub fn http(
    emulator: &Emulator,
    method: &str,
    path: &str,
    authorization: &str,
    body: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(emulator.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A bearer token for `client`, the way any Genesys client gets one.
pub fn token(emulator: &Emulator, client: &OAuthClient) -> String {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", client.id, client.secret));
    let mut stream = TcpStream::connect(emulator.local_addr()).unwrap();
    let body = "grant_type=client_credentials";
    let request = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let value: Value = serde_json::from_str(body).unwrap();
    value["access_token"].as_str().unwrap().to_owned()
}
