//! The scheduler driven through the emulated Genesys Cloud: a token, then PATCHes, over real
//! loopback HTTP with server errors and connection resets thrown in.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use gcbulk_core::sched::{Backoff, Config, Done, Jitter, Outcome, Scheduler, TransportError};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{Latency, OAuthClient, ServerConfig, User};
use gcbulk_ureq::{Driver, DriverOptions};
use http::Request;
use support::Recording;

fn emulator() -> Emulator {
    // A generous budget: the scheduler paces to the announced rate, and 300 a minute would
    // make this test take seconds.
    let mut server = ServerConfig {
        latency: Latency::Fixed { ms: 5.0 },
        ..ServerConfig::default()
    }
    .with_rate_limit_per_minute(6000);
    server.faults.server_error_probability = 0.2;
    server.faults.reset_probability = 0.2;
    let users = (0..8)
        .map(|i| {
            User::new(
                format!("u{i}"),
                format!("User {i}"),
                format!("u{i}@example.com"),
            )
        })
        .collect();
    let config = EmulatorConfig {
        server,
        users,
        seed: 11,
        ..EmulatorConfig::default()
    };
    Emulator::start(config).expect("the emulator starts")
}

fn body<K>(done: &Done<K>) -> serde_json::Value {
    let Outcome::Response(response) = &done.outcome else {
        panic!("gave up: {:?}", done.outcome);
    };
    assert_eq!(response.status(), 200, "{:?}", response.body());
    serde_json::from_slice(response.body()).expect("a JSON body")
}

#[test]
fn a_token_then_patches_survive_errors_and_resets() {
    let emulator = emulator();
    let base = emulator.base_url();
    let driver = Driver::new(DriverOptions {
        workers: 4,
        ..DriverOptions::default()
    })
    .expect("valid options");
    let config = Config {
        max_in_flight: 4,
        max_attempts: 10,
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            jitter: Jitter::Full,
        },
        ..Config::default()
    };
    let mut machine = Recording::new(Scheduler::new(config, 12));

    let client = OAuthClient::default();
    let basic = STANDARD.encode(format!("{}:{}", client.id, client.secret));
    let login = Request::post(format!("{base}/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(b"grant_type=client_credentials"))
        .expect("a valid request");
    let now = driver.now();
    machine.inner.push(now, "token".to_owned(), login);
    let mut outputs = Vec::new();
    driver
        .run(&mut machine, |_, done| outputs.push(done))
        .expect("the token run ends");
    let token = body(&outputs[0])["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();

    // The same machine again: the driver's clock carries on from the first run.
    outputs.clear();
    for i in 0..8 {
        let patch = Request::patch(format!("{base}/api/v2/users/u{i}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Bytes::from(r#"{"version":1,"title":"Team Lead"}"#))
            .expect("a valid request");
        let now = driver.now();
        machine.inner.push(now, format!("u{i}"), patch);
    }
    let stats = driver
        .run(&mut machine, |_, done| outputs.push(done))
        .expect("the patch run ends");

    assert_eq!(outputs.len(), 8);
    for done in &outputs {
        assert_eq!(body(done)["version"], 2, "{}", done.key);
    }
    assert!(
        emulator
            .users()
            .iter()
            .all(|u| u.title.as_deref() == Some("Team Lead"))
    );

    // The faults did happen, and the driver reported each reset as one.
    let served = emulator.stats();
    assert!(
        served.resets > 0 && served.count_status(503) > 0,
        "{served:?}"
    );
    let resets = machine
        .transport_errors
        .iter()
        .filter(|e| **e == TransportError::Reset)
        .count() as u64;
    assert_eq!(resets, served.resets, "{:?}", machine.transport_errors);
    assert!(stats.sent > 8);
}
