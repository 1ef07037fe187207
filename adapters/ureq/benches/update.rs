//! How the wall time of a real update grows with the work: the user-update machine driven by the
//! blocking driver against the emulator over loopback, for 1,000, 10,000 and 100,000 changed
//! users, with the rate limit off and no server latency, so that only the cost of gcbulk (and of
//! the emulator, in the same process) is left.
//!
//! Pacing is off too: a server without a limit announces none, and gcbulk would otherwise start
//! at Genesys' documented 300 requests a minute and measure that instead. Eight requests in
//! flight, the command's default. Each size needs one read per hundred users and one PATCH per
//! user.
//!
//! `cargo bench -p gcbulk-ureq --bench update`; `GCBULK_BENCH_USERS` (default
//! "1000,10000,100000") changes the sizes.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark without a harness reports on standard output"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time"
)]

use std::time::Instant;

use gcbulk_core::genesys::{Credentials, RowOutcome, Secret, UserUpdate, WorkflowConfig};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{ClientLimit, Latency, OAuthClient, ServerConfig};
use gcbulk_sim::scenario::{self, OrgSpec};
use gcbulk_ureq::{Driver, DriverOptions};

/// Requests in flight, and the driver's workers: `gcbulk update`'s default.
const IN_FLIGHT: usize = 8;

fn main() {
    let sizes: Vec<usize> = std::env::var("GCBULK_BENCH_USERS")
        .unwrap_or_else(|_| "1000,10000,100000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!("{IN_FLIGHT} in flight, rate limit, pacing and server latency off");
    println!("| users | requests | wall time (s) | users/s | µs per user |");
    println!("|---|---|---|---|---|");
    for users in sizes {
        let (requests, secs) = run(users);
        println!(
            "| {users} | {requests} | {secs:.2} | {:.0} | {:.0} |",
            users as f64 / secs,
            secs * 1e6 / users as f64
        );
    }
}

/// Updates `users` users; returns the requests sent and the seconds it took.
fn run(users: usize) -> (u64, f64) {
    let scenario = scenario::Scenario {
        org: OrgSpec {
            users,
            changed: users,
        },
        ..scenario::steady()
    };
    let mut server = ServerConfig {
        latency: Latency::Fixed { ms: 0.0 },
        ..ServerConfig::default()
    };
    server.rate_limit.per_client = ClientLimit::Unlimited;
    let emulator = Emulator::start(EmulatorConfig {
        server,
        users: scenario.users(),
        seed: 1,
        ..EmulatorConfig::default()
    })
    .expect("the emulator starts");

    let client = OAuthClient::default();
    let credentials = Credentials {
        client_id: client.id,
        client_secret: Secret::new(client.secret),
    };
    let base = emulator.base_url();
    let mut config = WorkflowConfig::new(&base, &base, credentials);
    config.scheduler.max_in_flight = IN_FLIGHT;
    config.scheduler.pacing.initial_rate = None;
    config.scheduler.pacing.adaptive = false;
    let rows = scenario.rows().into_iter().flatten().collect();
    let mut machine = UserUpdate::new(config, rows, 1);
    let driver = Driver::new(DriverOptions {
        workers: IN_FLIGHT,
        ..DriverOptions::default()
    })
    .expect("valid options");

    let started = Instant::now();
    let mut updated = 0;
    let stats = driver
        .run(&mut machine, |_, report| {
            updated += usize::from(matches!(report.outcome, RowOutcome::Updated { .. }));
        })
        .expect("the run ends");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(updated, users, "every user updated");
    (stats.sent, secs)
}
