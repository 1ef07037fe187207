//! gcbulk-ureq: drives the gcbulk core with blocking HTTP calls on a pool of worker threads.
#![forbid(unsafe_code)]
