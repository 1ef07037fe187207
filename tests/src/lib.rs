//! Cross-crate integration tests for gcbulk; the tests live in `tests/`.
