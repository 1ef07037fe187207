//! What the driver costs: its throughput against a bare ureq loop with as many threads, both
//! reading users from the emulator over loopback with the rate limit off and no server latency,
//! where the client's own cost is all there is to see.
//!
//! The driver runs the scheduler (pacing off, as many attempts in flight as it has workers) with
//! one `GET /api/v2/users/{id}` per item; the loop hands out the same reads to its threads from
//! an atomic counter, each thread calling one shared agent configured as the driver's is and
//! reading every body in full. Each round runs both, one after the other, against an emulator of
//! its own; the figure is the median of the rounds, and the target a ratio of at least 0.8.
//!
//! `cargo bench -p gcbulk-ureq --bench overhead`; `GCBULK_BENCH_REQUESTS` (default 20000),
//! `GCBULK_BENCH_ROUNDS` (default 5) and `GCBULK_BENCH_WORKERS` (default "8,16") change it.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark without a harness reports on standard output"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use gcbulk_core::sched::{Config, Outcome, PacingConfig, Scheduler};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{ClientLimit, Latency, OAuthClient, ServerConfig, User};
use gcbulk_ureq::{Driver, DriverOptions};
use http::Request;

/// Users in the organisation; the reads go round them.
const USERS: usize = 500;

fn main() {
    let requests = env_or("GCBULK_BENCH_REQUESTS", 20_000);
    let rounds = env_or("GCBULK_BENCH_ROUNDS", 5);
    let workers: Vec<usize> = std::env::var("GCBULK_BENCH_WORKERS")
        .unwrap_or_else(|_| "8,16".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "{requests} reads per run, no server latency, rate limit off, median of {rounds} rounds"
    );
    println!("| threads | driver (req/s) | bare ureq (req/s) | driver / bare |");
    println!("|---|---|---|---|");

    for threads in workers {
        let mut driven = Vec::new();
        let mut bare = Vec::new();
        for _ in 0..rounds {
            driven.push(run_driver(threads, requests));
            bare.push(run_bare(threads, requests));
        }
        let (driven, bare) = (median(&mut driven), median(&mut bare));
        println!(
            "| {threads} | {driven:.0} | {bare:.0} | {:.2} |",
            driven / bare
        );
    }
}

/// Requests a second through the driver and the scheduler.
fn run_driver(workers: usize, requests: usize) -> f64 {
    let emulator = emulator();
    let token = token(&emulator);
    let driver = Driver::new(DriverOptions {
        workers,
        ..DriverOptions::default()
    })
    .expect("valid options");

    let mut machine = Scheduler::new(
        Config {
            max_in_flight: workers,
            pacing: PacingConfig {
                adaptive: false,
                ..PacingConfig::default()
            },
            ..Config::default()
        },
        7,
    );
    let base = emulator.base_url();
    let now = driver.now();
    for i in 0..requests {
        let request = Request::get(format!("{base}/api/v2/users/u{}", i % USERS))
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new())
            .expect("a valid request");
        machine.push(now, i, request);
    }

    let mut ok = 0;
    let stats = driver
        .run(&mut machine, |_, done| {
            ok += usize::from(matches!(
                &done.outcome,
                Outcome::Response(response) if response.status() == 200
            ));
        })
        .expect("the run ends");
    assert_eq!(ok, requests);
    requests as f64 / stats.elapsed.as_secs_f64()
}

/// Requests a second from `threads` threads calling ureq in a loop.
fn run_bare(threads: usize, requests: usize) -> f64 {
    let emulator = emulator();
    let token = token(&emulator);
    let agent = agent(threads);
    let base = emulator.base_url();
    let authorization = format!("Bearer {token}");
    let next = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);

    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return;
                    }
                    let mut response = agent
                        .get(format!("{base}/api/v2/users/u{}", i % USERS))
                        .header("authorization", &authorization)
                        .call()
                        .expect("an answer");
                    let body = response.body_mut().read_to_vec().expect("a body");
                    if response.status() == 200 && !body.is_empty() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(ok.into_inner(), requests);
    requests as f64 / elapsed.as_secs_f64()
}

/// An agent set up as the driver's: statuses are answers, no redirects, a pooled connection
/// per thread, no proxy.
fn agent(threads: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(threads.max(10))
        .max_idle_connections_per_host(threads)
        .proxy(None)
        .build()
        .new_agent()
}

/// The emulator with no rate limit, no faults and no latency.
fn emulator() -> Emulator {
    let mut server = ServerConfig {
        latency: Latency::Fixed { ms: 0.0 },
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
    Emulator::start(EmulatorConfig {
        server,
        users,
        seed: 1,
        ..EmulatorConfig::default()
    })
    .expect("the emulator starts")
}

fn token(emulator: &Emulator) -> String {
    let client = OAuthClient::default();
    let basic = STANDARD.encode(format!("{}:{}", client.id, client.secret));
    let mut response = agent(1)
        .post(format!("{}/oauth/token", emulator.base_url()))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send("grant_type=client_credentials")
        .expect("a token answer");
    let body: serde_json::Value =
        serde_json::from_slice(&response.body_mut().read_to_vec().expect("a body")).expect("json");
    body["access_token"].as_str().expect("a token").to_owned()
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
