//! Throughput of the async adapter with 64 requests in flight on one task, against the ureq
//! adapter with 64 worker threads, both against the emulator over loopback with its rate limit
//! off.
//!
//! Each round sends the same reads (`GET /api/v2/users/{id}`) through the scheduler with pacing
//! off, first through one adapter then the other, each against an emulator of its own; the
//! figure is the median of the rounds. Two server latencies are measured: none, where the
//! client's own cost shows, and 5 ms, closer to a real server.
//!
//! `cargo bench -p gcbulk-async-std --bench throughput`; `GCBULK_BENCH_REQUESTS` (default 4000)
//! and `GCBULK_BENCH_ROUNDS` (default 5) change the size.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark without a harness reports on standard output"
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use gcbulk_async_std::{Driver, DriverOptions, HttpOptions};
use gcbulk_core::sched::{Config, Done, Outcome, PacingConfig, Scheduler};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{ClientLimit, Latency, OAuthClient, ServerConfig, User};
use http::Request;

/// Requests in flight at once, and the ureq adapter's workers.
const IN_FLIGHT: usize = 64;

/// Users in the organisation; the reads go round them.
const USERS: usize = 500;

fn main() {
    let requests = env_or("GCBULK_BENCH_REQUESTS", 4000);
    let rounds = env_or("GCBULK_BENCH_ROUNDS", 5);
    println!("{requests} reads per run, {IN_FLIGHT} in flight, median of {rounds} rounds");
    println!("| server latency | async (req/s) | ureq (req/s) | async / ureq |");
    println!("|---|---|---|---|");

    for latency_ms in [0.0, 5.0] {
        let mut async_rates = Vec::new();
        let mut ureq_rates = Vec::new();
        for _ in 0..rounds {
            async_rates.push(run_async(latency_ms, requests));
            ureq_rates.push(run_ureq(latency_ms, requests));
        }
        let (async_rate, ureq_rate) = (median(&mut async_rates), median(&mut ureq_rates));
        println!(
            "| {latency_ms} ms | {async_rate:.0} | {ureq_rate:.0} | {:.0}% |",
            100.0 * async_rate / ureq_rate
        );
    }
}

/// Requests a second through the async adapter.
fn run_async(latency_ms: f64, requests: usize) -> f64 {
    let emulator = emulator(latency_ms);
    let options = DriverOptions {
        http: HttpOptions {
            max_idle_per_host: IN_FLIGHT,
            ..HttpOptions::default()
        },
        ..DriverOptions::default()
    };
    let driver = Driver::new(options).expect("valid options");

    smol::block_on(async {
        let mut login = scheduler();
        login.push(driver.now(), 0, token_request(&emulator));
        let mut token = None;
        driver
            .run(&mut login, |_, done| token = Some(access_token(&done)))
            .await
            .expect("the token run ends");
        let token = token.expect("a token");

        let mut machine = scheduler();
        push_reads(&mut machine, driver.now(), &emulator, &token, requests);
        let mut ok = 0;
        let stats = driver
            .run(&mut machine, |_, done| ok += usize::from(is_ok(&done)))
            .await
            .expect("the run ends");
        assert_eq!(ok, requests);
        assert_eq!(stats.peak_in_flight, IN_FLIGHT);
        requests as f64 / stats.elapsed.as_secs_f64()
    })
}

/// Requests a second through the ureq adapter.
fn run_ureq(latency_ms: f64, requests: usize) -> f64 {
    let emulator = emulator(latency_ms);
    let driver = gcbulk_ureq::Driver::new(gcbulk_ureq::DriverOptions {
        workers: IN_FLIGHT,
        ..gcbulk_ureq::DriverOptions::default()
    })
    .expect("valid options");

    let mut login = scheduler();
    login.push(driver.now(), 0, token_request(&emulator));
    let mut token = None;
    driver
        .run(&mut login, |_, done| token = Some(access_token(&done)))
        .expect("the token run ends");
    let token = token.expect("a token");

    let mut machine = scheduler();
    push_reads(&mut machine, driver.now(), &emulator, &token, requests);
    let mut ok = 0;
    let stats = driver
        .run(&mut machine, |_, done| ok += usize::from(is_ok(&done)))
        .expect("the run ends");
    assert_eq!(ok, requests);
    requests as f64 / stats.elapsed.as_secs_f64()
}

/// The emulator with no rate limit, no faults and a fixed latency.
fn emulator(latency_ms: f64) -> Emulator {
    let mut server = ServerConfig {
        latency: Latency::Fixed { ms: latency_ms },
        ..ServerConfig::default()
    };
    server.rate_limit.per_client = ClientLimit::Unlimited;
    let users = (0..USERS)
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
        seed: 1,
        ..EmulatorConfig::default()
    };
    Emulator::start(config).expect("the emulator starts")
}

/// A scheduler that keeps [`IN_FLIGHT`] requests going, unpaced.
fn scheduler() -> Scheduler<usize> {
    let config = Config {
        max_in_flight: IN_FLIGHT,
        pacing: PacingConfig {
            adaptive: false,
            ..PacingConfig::default()
        },
        ..Config::default()
    };
    Scheduler::new(config, 7)
}

fn token_request(emulator: &Emulator) -> Request<Bytes> {
    let client = OAuthClient::default();
    let basic = STANDARD.encode(format!("{}:{}", client.id, client.secret));
    Request::post(format!("{}/oauth/token", emulator.base_url()))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(b"grant_type=client_credentials"))
        .expect("a valid request")
}

fn access_token(done: &Done<usize>) -> String {
    let Outcome::Response(response) = &done.outcome else {
        panic!("no token: {:?}", done.outcome);
    };
    let body: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
    body["access_token"].as_str().expect("a token").to_owned()
}

fn push_reads(
    machine: &mut Scheduler<usize>,
    now: gcbulk_core::Timestamp,
    emulator: &Emulator,
    token: &str,
    requests: usize,
) {
    let base = emulator.base_url();
    for i in 0..requests {
        let request = Request::get(format!("{base}/api/v2/users/u{}", i % USERS))
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new())
            .expect("a valid request");
        machine.push(now, i, request);
    }
}

fn is_ok(done: &Done<usize>) -> bool {
    matches!(&done.outcome, Outcome::Response(response) if response.status() == 200)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
