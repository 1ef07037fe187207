//! Replays the committed fuzz seed corpus on stable Rust, so CI checks every target's inputs even
//! where cargo-fuzz and nightly are missing.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a readable corpus file");
        run(&data);
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn scheduler_ops_corpus() {
    replay("scheduler_ops", gcbulk_tests::fuzz::scheduler_ops);
}

#[test]
fn headers_corpus() {
    replay("headers", gcbulk_tests::fuzz::headers);
}

#[test]
fn input_corpus() {
    replay("input", gcbulk_tests::fuzz::input);
}

#[test]
fn journal_corpus() {
    replay("journal", gcbulk_tests::fuzz::journal);
}
