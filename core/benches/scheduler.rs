//! Scheduler throughput: events a second with 100,000 items queued.
//!
//! Each iteration pushes 100,000 clones of one shared request into a fresh scheduler and drives
//! it until idle against an in-memory server that answers at once (see `common`). The throughput
//! is in events, counted as
//!
//! - pushes (one per item),
//! - sends (one per attempt, retries included),
//! - responses handed back (one per attempt), and
//! - dones (one per item),
//!
//! so a run where every attempt succeeds handles 4 × 100,000 events. Polls that only return a
//! wait are not counted, though their cost is in the time. Building the 100,000 request clones
//! is set-up and not timed; building the server's responses and dropping each `Done` is timed.
//!
//! Two server mixes:
//!
//! - `all_ok`: every attempt gets 200;
//! - `flaky`: about 5% 503 (retried after a jittered backoff) and 1% 429 with `Retry-After: 1`
//!   (pausing the whole client); virtual time moves on only when the scheduler asks to wait.
//!
//! Run with `cargo bench -p gcbulk-core --bench scheduler`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

use common::{ITEMS, Mix};

fn scheduler_events(c: &mut Criterion) {
    let request = common::shared_request();
    let mut group = c.benchmark_group(format!("scheduler_{ITEMS}_items"));
    // One iteration is a whole run of 100,000 items (tens of milliseconds): flat sampling with
    // few samples keeps the bench to seconds while still averaging dozens of runs.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));

    for (name, mix) in [("all_ok", Mix::AllOk), ("flaky", Mix::Flaky)] {
        // The server is seeded, so every run handles exactly the events of this one.
        let stats = common::run(common::clones(&request), mix);
        group.throughput(Throughput::Elements(common::events(&stats)));
        group.bench_function(name, |b| {
            b.iter_batched(
                || common::clones(&request),
                |requests| black_box(common::run(requests, mix)),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, scheduler_events);
criterion_main!(benches);
