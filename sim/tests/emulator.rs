//! The emulator over real loopback HTTP, driven by a tiny HTTP/1.1 client.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gcbulk_sim::emulator::{Emulator, EmulatorConfig, EmulatorError};
use gcbulk_sim::model::{Latency, ServerConfig, ThrottleCause, User};
use serde_json::{Value, json};

/// Base64 of the default OAuth client's `gcbulk-emulator:emulator-secret`.
const BASIC: &str = "Z2NidWxrLWVtdWxhdG9yOmVtdWxhdG9yLXNlY3JldA==";

/// One keep-alive connection speaking just enough HTTP/1.1 for these tests.
struct Connection {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

impl Connection {
    fn open(emulator: &Emulator) -> Self {
        let stream = TcpStream::connect(emulator.local_addr()).expect("the emulator listens");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        Self {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, method: &str, path: &str, auth: &str, body: &str) -> io::Result<Answer> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;

        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);

        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let answer = Answer {
            status,
            headers,
            body: String::new(),
        };
        let length = answer.header("content-length").and_then(|v| v.parse().ok());
        let length: usize = length.expect("a content length");
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Answer {
            body: String::from_utf8(body).expect("a UTF-8 body"),
            ..answer
        })
    }

    fn token(&mut self) -> String {
        let answer = self
            .send(
                "POST",
                "/oauth/token",
                &format!("Basic {BASIC}"),
                "grant_type=client_credentials",
            )
            .expect("a token answer");
        assert_eq!(answer.status, 200, "{}", answer.body);
        format!(
            "Bearer {}",
            answer.json()["access_token"].as_str().expect("a token")
        )
    }
}

fn org() -> Vec<User> {
    (0..5)
        .map(|i| {
            User::new(
                format!("u{i}"),
                format!("User {i}"),
                format!("u{i}@example.com"),
            )
        })
        .collect()
}

fn start(server: ServerConfig, time_scale: f64) -> Emulator {
    let config = EmulatorConfig {
        server,
        users: org(),
        seed: 5,
        port: 0,
        time_scale,
    };
    Emulator::start(config).expect("the emulator starts")
}

fn instant_server() -> ServerConfig {
    ServerConfig {
        latency: Latency::Fixed { ms: 0.0 },
        ..ServerConfig::default()
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test measures and waits in wall-clock time"
)]
fn wall_clock() -> Instant {
    Instant::now()
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test waits out a compressed window"
)]
fn wait(duration: Duration) {
    std::thread::sleep(duration);
}

#[test]
fn a_token_a_listing_and_patches_on_one_connection() {
    let emulator = start(ServerConfig::default(), 1000.0);
    assert!(emulator.base_url().starts_with("http://127.0.0.1:"));
    let mut conn = Connection::open(&emulator);
    let token = conn.token();

    let answer = conn
        .send("GET", "/api/v2/users?id=u1&id=u3&pageSize=100", &token, "")
        .unwrap();
    assert_eq!(answer.status, 200);
    let entities = answer.json()["entities"].clone();
    assert_eq!(entities[0]["id"], "u1");
    assert_eq!(entities[1]["version"], 1);
    assert!(answer.header("inin-correlation-id").is_some());
    assert!(answer.header("date").unwrap().ends_with(" GMT"));
    assert_eq!(answer.header("inin-ratelimit-allowed"), Some("300"));

    let patch = json!({"version": 1, "title": "Team Lead"}).to_string();
    let answer = conn
        .send("PATCH", "/api/v2/users/u1", &token, &patch)
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["version"], 2);

    let answer = conn
        .send("PATCH", "/api/v2/users/u1", &token, &patch)
        .unwrap();
    assert_eq!(answer.status, 409);
    assert_eq!(answer.json()["code"], "general.conflict");

    let users = emulator.users();
    assert_eq!(users[1].title.as_deref(), Some("Team Lead"));
    assert_eq!(users[1].version, 2);
    assert_eq!(emulator.stats().total(), 4);
}

#[test]
fn a_small_budget_ends_in_a_429() {
    let emulator = start(instant_server().with_rate_limit_per_minute(3), 1.0);
    let mut conn = Connection::open(&emulator);
    let token = conn.token();

    for count in 1..=3 {
        let answer = conn.send("GET", "/api/v2/users/u0", &token, "").unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("inin-ratelimit-count"),
            Some(count.to_string().as_str())
        );
    }
    let answer = conn.send("GET", "/api/v2/users/u0", &token, "").unwrap();
    assert_eq!(answer.status, 429);
    let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(answer.json()["code"], "too.many.requests.retry.after");
    assert_eq!(emulator.stats().throttled_by[&ThrottleCause::Client], 1);
}

#[test]
fn compressed_time_resets_the_window_and_shortens_latency() {
    // A minute of virtual time is half a second of wall time.
    let mut server = instant_server().with_rate_limit_per_minute(1);
    server.latency = Latency::Fixed { ms: 2000.0 };
    let emulator = start(server, 120.0);
    let mut conn = Connection::open(&emulator);
    let token = conn.token();

    let sent = wall_clock();
    assert_eq!(
        conn.send("GET", "/api/v2/users/u0", &token, "")
            .unwrap()
            .status,
        200
    );
    let took = wall_clock() - sent;
    assert!(
        took >= Duration::from_micros(3300),
        "2 s of latency at 600x: {took:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");

    assert_eq!(
        conn.send("GET", "/api/v2/users/u0", &token, "")
            .unwrap()
            .status,
        429
    );
    wait(Duration::from_millis(600));
    assert_eq!(
        conn.send("GET", "/api/v2/users/u0", &token, "")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn a_reset_closes_the_connection_unanswered() {
    let mut server = instant_server();
    server.faults.reset_probability = 1.0;
    let emulator = start(server, 1.0);
    let mut conn = Connection::open(&emulator);
    let token = conn.token();

    let error = conn
        .send("GET", "/api/v2/users/u0", &token, "")
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    assert_eq!(emulator.stats().resets, 1);
}

#[test]
fn a_bad_secret_is_refused_over_http() {
    let emulator = start(instant_server(), 1.0);
    let mut conn = Connection::open(&emulator);
    let answer = conn
        .send(
            "POST",
            "/oauth/token",
            "Basic Zm9vOmJhcg==",
            "grant_type=client_credentials",
        )
        .unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"], "invalid_client");
}

#[test]
fn a_taken_port_is_a_bind_error_and_shutdown_frees_it() {
    let first = start(instant_server(), 1.0);
    let port = first.local_addr().port();
    let config = EmulatorConfig {
        port,
        ..EmulatorConfig::default()
    };
    assert!(matches!(
        Emulator::start(config.clone()),
        Err(EmulatorError::Bind { .. })
    ));

    first.shutdown();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let again = Emulator::start(config).unwrap();
    assert_eq!(again.local_addr().port(), port);
}

#[test]
fn the_example_org_is_searchable_by_email() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/org.jsonl");
    let users = gcbulk_sim::model::load_users_file(path).expect("the example org loads");
    let wanted = users[1].clone();
    let config = EmulatorConfig {
        users,
        time_scale: 1000.0,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).expect("the emulator starts");
    let mut conn = Connection::open(&emulator);
    let token = conn.token();

    let email = wanted.email.clone().expect("an e-mail").to_uppercase();
    let search = json!({
        "pageSize": 25,
        "pageNumber": 1,
        "query": [{"type": "EXACT", "fields": ["email"], "values": [email]}],
    });
    let answer = conn
        .send("POST", "/api/v2/users/search", &token, &search.to_string())
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["total"], 1);
    assert_eq!(answer.json()["results"][0]["id"], wanted.id.as_str());
    assert_eq!(answer.json()["results"][0]["version"], wanted.version);
}
