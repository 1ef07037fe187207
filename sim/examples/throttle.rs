//! The rate_throttle_client experiment on the model, one line per strategy:
//! `cargo run --release -p gcbulk-sim --example throttle -- [SEED]`.
#![allow(
    clippy::print_stdout,
    reason = "a command-line example writes its result"
)]

use gcbulk_sim::baseline::ThrottleStrategy;
use gcbulk_sim::experiment::ThrottleExperiment;

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1);
    let experiment = ThrottleExperiment::default();
    println!(
        "{:<50} {:>9} {:>7} {:>11} {:>17}",
        "strategy", "requests", "429s", "retry rate", "accepted/process"
    );
    for strategy in ThrottleStrategy::ALL {
        let result = experiment.run(strategy, seed);
        let accepted: Vec<String> = result
            .accepted_by_process
            .iter()
            .map(u64::to_string)
            .collect();
        println!(
            "{:<50} {:>9} {:>7} {:>10.1}% {:>17}",
            strategy.name(),
            result.requests,
            result.throttled,
            result.retry_rate * 100.0,
            accepted.join(" / ")
        );
    }
}
