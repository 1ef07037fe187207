//! How the simulator's cost grows with the work: gcbulk alone on the `steady` scenario's shape
//! (one client, 300 requests a minute, every user changed) for 1,000, 10,000 and 100,000 users,
//! with the wall time and the peak resident memory of each run.
//!
//! Each size runs in a process of its own (this example, started again with `--users N`), so
//! that the peak memory (`VmHWM` in `/proc/self/status`) is that run's and not an earlier,
//! larger one's. `cargo run --release -p gcbulk-sim --example scale`; `--sizes 1000,5000`
//! changes the sizes.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line example writes its result"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the example reports how long each simulation took on this machine"
)]

use std::process::{Command, ExitCode};
use std::time::Instant;

use gcbulk_sim::baseline::Strategy;
use gcbulk_sim::compare::simulate;
use gcbulk_sim::scenario::{self, OrgSpec, Scenario};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, users] if flag == "--users" => match users.parse() {
            Ok(users) => one(users),
            Err(_) => usage(),
        },
        [flag, sizes] if flag == "--sizes" => all(sizes),
        [] => all("1000,10000,100000"),
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: scale [--sizes N,N,...] | --users N");
    ExitCode::FAILURE
}

/// Runs each size in a child process and prints the table.
fn all(sizes: &str) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("cannot find this program to start it again");
        return ExitCode::FAILURE;
    };
    println!("gcbulk alone, steady's shape (300 requests a minute), seed 1");
    println!(
        "| users | requests | virtual makespan (s) | wall time (s) | µs per user | \
         peak RSS (MiB) | RSS at start (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in sizes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let output = match Command::new(&exe).args(["--users", size]).output() {
            Ok(output) if output.status.success() => output,
            Ok(output) => {
                eprintln!("{size}: {}", String::from_utf8_lossy(&output.stderr));
                return ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!("cannot start a run of {size}: {error}");
                return ExitCode::FAILURE;
            }
        };
        let line = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<f64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let &[users, requests, makespan, wall, peak_kib, start_kib] = fields.as_slice() else {
            eprintln!("{size}: unexpected output {line:?}");
            return ExitCode::FAILURE;
        };
        println!(
            "| {users:.0} | {requests:.0} | {makespan:.0} | {wall:.2} | {:.1} | {:.1} | {:.1} |",
            wall * 1e6 / users,
            peak_kib / 1024.0,
            start_kib / 1024.0
        );
    }
    ExitCode::SUCCESS
}

/// One run, printed as `users requests makespan_s wall_s peak_kib start_kib`.
fn one(users: usize) -> ExitCode {
    let start_kib = high_water_kib();
    let scenario = Scenario {
        org: OrgSpec {
            users,
            changed: users,
        },
        ..scenario::steady()
    };
    let started = Instant::now();
    let outcome = match simulate(&scenario, Strategy::Gcbulk, 1) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let row = outcome.result(Strategy::Gcbulk);
    if row.failed_items > 0 {
        eprintln!("{} rows not settled", row.failed_items);
        return ExitCode::FAILURE;
    }
    println!(
        "{users} {} {:.1} {wall:.4} {} {start_kib}",
        row.requests,
        row.makespan_s,
        high_water_kib()
    );
    ExitCode::SUCCESS
}

/// The process's peak resident memory so far, in KiB (0 where `/proc` does not say).
fn high_water_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
