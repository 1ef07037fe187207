//! The whole Genesys workflow (token, batched reads and searches, PATCHes, managers by e-mail)
//! through the async adapter, against the emulator over loopback, under async-std and under smol.

mod support;

use gcbulk_sim::model::FaultPreset;
use support::{apply_async, apply_ureq, assert_org_changed, emulator, expected_kinds, kinds};

#[test]
fn the_change_file_applies_under_async_std_on_a_spawned_task() {
    let emulator = emulator(FaultPreset::None, 1);
    let emulator = std::sync::Arc::new(emulator);

    // Spawned rather than only blocked on: the run future must be `Send` for that.
    let serving = std::sync::Arc::clone(&emulator);
    let (reports, stats, opened) = async_std::task::block_on(async_std::task::spawn(async move {
        apply_async(&serving, 7).await
    }));

    assert_eq!(kinds(&reports), expected_kinds());
    assert_org_changed(&emulator);
    assert_eq!(stats.transport_errors, 0);
    // Keep-alive: the connections are reused, never one per request.
    assert!(stats.peak_in_flight > 1, "{stats:?}");
    assert!(
        opened <= stats.peak_in_flight as u64 && opened < stats.sent,
        "{opened} connections for {stats:?}"
    );
}

#[test]
fn the_change_file_applies_under_smol() {
    let emulator = emulator(FaultPreset::None, 2);
    let (reports, stats, _) = smol::block_on(apply_async(&emulator, 7));

    assert_eq!(kinds(&reports), expected_kinds());
    assert_org_changed(&emulator);
    assert_eq!(stats.responses, stats.sent);
}

#[test]
fn a_429_storm_is_waited_out_under_async_std() {
    let emulator = emulator(FaultPreset::Storm, 3);
    let (reports, stats, _) = async_std::task::block_on(apply_async(&emulator, 7));

    assert_eq!(kinds(&reports), expected_kinds());
    assert_org_changed(&emulator);
    let served = emulator.stats();
    assert!(
        served.throttled > 0,
        "the storm refused nothing: {served:?}"
    );
    assert!(stats.waits > 0, "{stats:?}");
}

#[test]
fn a_429_storm_is_waited_out_under_smol() {
    let emulator = emulator(FaultPreset::Storm, 4);
    let (reports, stats, _) = smol::block_on(apply_async(&emulator, 7));

    assert_eq!(kinds(&reports), expected_kinds());
    assert_org_changed(&emulator);
    assert!(stats.waits > 0, "{stats:?}");
    assert!(emulator.stats().throttled > 0, "{:?}", emulator.stats());
}

#[test]
fn the_async_and_blocking_adapters_reach_the_same_outcomes() {
    // The same seed, scenario and input for both, each against an emulator of its own; the two
    // runs go on at once, as they spend most of their time waiting out the storm.
    let seed = 5;
    let blocking = std::thread::spawn(move || {
        let emulator = emulator(FaultPreset::Storm, seed);
        let reports = apply_ureq(&emulator, 7);
        (reports, emulator.stats().throttled)
    });
    let emulator = emulator(FaultPreset::Storm, seed);
    let (async_reports, _, _) = smol::block_on(apply_async(&emulator, 7));
    let (ureq_reports, ureq_throttled) = blocking.join().expect("the ureq run ends");

    assert_eq!(kinds(&async_reports), kinds(&ureq_reports));
    assert_eq!(kinds(&async_reports), expected_kinds());
    assert!(emulator.stats().throttled > 0 && ureq_throttled > 0);
}
