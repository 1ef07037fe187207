//! Heap bytes per queued item, and a quick events-a-second figure.
//!
//! A counting allocator (`dhat` in testing mode) measures the heap a scheduler holds after
//! 100,000 pushes, less what the 100,000 requests themselves hold (measured the same way: 100,000
//! clones of the same request in a vector of exactly that length). What is left, divided by
//! 100,000, is what the scheduler spends per queued item: its slot, its queue entry and the spare
//! capacity its growable buffers keep. The allocator's own per-block overhead is not counted.
//!
//! Exits non-zero when an item costs more than [`BUDGET_BYTES`].
//!
//! Run with `cargo bench -p gcbulk-core --bench memory`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark's report is its output"
)]

mod common;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gcbulk_core::Timestamp;
use gcbulk_core::sched::{Lane, Scheduler};

use common::{ITEMS, Mix};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The most heap one queued item may cost, excluding its request.
const BUDGET_BYTES: u64 = 256;

/// Runs timed for the quick throughput figure; the best is reported.
const QUICK_RUNS: usize = 5;

fn main() -> ExitCode {
    let request = common::shared_request();

    let profiler = dhat::Profiler::builder().testing().build();
    let per_item = bytes_per_item(&request, ITEMS, false);
    // Just past a power of two, growable buffers have doubled and stand almost half empty: the
    // worst case for the same number of items, unless the caller reserves room up front (as the
    // Genesys workflow does, knowing its rows).
    let worst_items = ITEMS.next_power_of_two() + 1;
    let worst_per_item = bytes_per_item(&request, worst_items, false);
    let reserved_per_item = bytes_per_item(&request, worst_items, true);
    drop(profiler);

    println!(
        "request: {} bytes inline (its URI and body are shared by all clones)",
        size_of::<http::Request<bytes::Bytes>>(),
    );
    println!("memory per queued item: {per_item} bytes (excluding the request)");
    println!(
        "memory per queued item with {worst_items} items (buffers just grown): \
         {worst_per_item} bytes (excluding the request)"
    );
    println!(
        "memory per queued item with {worst_items} items reserved up front: \
         {reserved_per_item} bytes (excluding the request)"
    );

    for (name, mix) in [("all 200", Mix::AllOk), ("5% 503, 1% 429", Mix::Flaky)] {
        let (wall, cpu) = quick_events_per_second(&request, mix);
        let cpu = cpu.map_or(String::new(), |cpu| {
            format!(", {:.2} million on-CPU", cpu / 1e6)
        });
        println!(
            "events per second ({ITEMS} items, {name}, best of {QUICK_RUNS}): \
             {:.2} million wall-clock{cpu}",
            wall / 1e6
        );
    }

    if per_item.max(reserved_per_item) > BUDGET_BYTES {
        eprintln!("memory per queued item is over the budget of {BUDGET_BYTES} bytes");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Heap bytes a scheduler holds per queued item with `items` pushed, less the requests' own.
fn bytes_per_item(request: &http::Request<bytes::Bytes>, items: u64, reserve: bool) -> u64 {
    let requests_alone = heap_held_by(|| (0..items).map(|_| request.clone()).collect::<Vec<_>>());
    let with_scheduler = heap_held_by(|| {
        let mut scheduler = Scheduler::new(common::bench_config(), 7);
        if reserve {
            scheduler.reserve(Lane::DEFAULT, items as usize);
        }
        for key in 0..items {
            scheduler.push(Timestamp::ZERO, key, request.clone());
        }
        scheduler
    });
    with_scheduler.saturating_sub(requests_alone) / items
}

/// Heap bytes the value built by `build` holds.
fn heap_held_by<T>(build: impl FnOnce() -> T) -> u64 {
    let before = dhat::HeapStats::get().curr_bytes;
    let value = build();
    let after = dhat::HeapStats::get().curr_bytes;
    drop(black_box(value));
    (after - before) as u64
}

/// Events a second over whole runs, best of [`QUICK_RUNS`]: a quick check beside the criterion
/// bench. Runs after the profiler has stopped, so `dhat` only forwards each allocation.
///
/// Returns the wall-clock figure and, where Linux reports it, the figure over the time this
/// thread was on a CPU, which other work sharing the cores cannot inflate.
#[allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; the scheduler still never reads it"
)]
fn quick_events_per_second(request: &http::Request<bytes::Bytes>, mix: Mix) -> (f64, Option<f64>) {
    let mut best_wall = f64::MAX;
    let mut best_cpu: Option<f64> = None;
    let mut events = 0;
    for _ in 0..QUICK_RUNS {
        let requests = common::clones(request);
        let cpu_start = on_cpu();
        let start = Instant::now();
        let stats = black_box(common::run(requests, mix));
        best_wall = best_wall.min(start.elapsed().as_secs_f64());
        if let (Some(before), Some(after)) = (cpu_start, on_cpu()) {
            let secs = after.saturating_sub(before).as_secs_f64();
            best_cpu = Some(best_cpu.map_or(secs, |best| best.min(secs)));
        }
        events = common::events(&stats);
    }
    let events = events as f64;
    (events / best_wall, best_cpu.map(|secs| events / secs))
}

/// Time this thread has spent on a CPU, user and kernel, from `/proc/thread-self/schedstat`.
fn on_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
