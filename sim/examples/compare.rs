//! Runs the comparison of one scenario (or all of them) and prints it, with the wall-clock time
//! each took: `cargo run --release -p gcbulk-sim --example compare -- --scenario steady`.
//!
//! Options: `--scenario NAME|FILE|all` (default `all`), `--seed N` (default 1),
//! `--format table|json` (default `table`), `--plot PATH` (with one scenario, the SVG file to
//! write; with `all`, a folder that gets one `NAME.svg` per scenario), `--list`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line example writes its result"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the example reports how long each simulation took on this machine"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use gcbulk_sim::baseline::Strategy;
use gcbulk_sim::compare::{Format, compare_and_plot, list_cli, run_one};
use gcbulk_sim::scenario;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut name = "all".to_owned();
    let mut seed = 1;
    let mut format = Format::Table;
    let mut only: Option<String> = None;
    let mut plot: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--list" => {
                print!("{}", list_cli());
                return ExitCode::SUCCESS;
            }
            "--scenario" | "--seed" | "--format" | "--strategy" | "--plot" => args.next(),
            other => {
                eprintln!("unknown argument {other:?}");
                return ExitCode::FAILURE;
            }
        };
        let Some(value) = value else {
            eprintln!("{arg} needs a value");
            return ExitCode::FAILURE;
        };
        match arg.as_str() {
            "--scenario" => name = value,
            "--strategy" => only = Some(value),
            "--plot" => plot = Some(PathBuf::from(value)),
            "--seed" => match value.parse() {
                Ok(n) => seed = n,
                Err(_) => {
                    eprintln!("--seed takes a number");
                    return ExitCode::FAILURE;
                }
            },
            _ => match value.parse() {
                Ok(f) => format = f,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            },
        }
    }

    let all = name == "all";
    let names: Vec<String> = if all {
        scenario::names()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    } else {
        vec![name]
    };
    if let Some(only) = only {
        // One strategy at a time, timed: for finding what is slow.
        for name in names {
            let Some(scenario) = scenario::by_name(&name) else {
                eprintln!("no scenario {name:?}");
                return ExitCode::FAILURE;
            };
            for strategy in Strategy::ALL {
                if only != "all" && strategy.name() != only {
                    continue;
                }
                let started = Instant::now();
                match run_one(&scenario, strategy, seed) {
                    Ok(row) => println!(
                        "{name} {:<24} {:>8.0}s req {:>6} 429 {:>6} failed {:>5} passes {} p99 {:.1} fair {:.3} ({:.2} s wall)",
                        row.name,
                        row.makespan_s,
                        row.requests,
                        row.throttled,
                        row.failed_items,
                        row.passes,
                        row.p99_item_s,
                        row.fairness,
                        started.elapsed().as_secs_f64()
                    ),
                    Err(error) => println!("{name} {strategy}: {error}"),
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    for name in names {
        let started = Instant::now();
        match compare_and_plot(&name, seed, format, plot.is_some()) {
            Ok((text, picture)) => {
                print!("{text}");
                if let (Some(plot), Some(picture)) = (&plot, picture) {
                    let path = if all {
                        plot.join(format!("{name}.svg"))
                    } else {
                        plot.clone()
                    };
                    if let Err(error) = write(&path, &picture) {
                        eprintln!("cannot write {}: {error}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        }
        eprintln!(
            "({name}: {:.1} s wall-clock)",
            started.elapsed().as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}
