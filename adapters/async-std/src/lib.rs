//! gcbulk-async-std: drives the gcbulk core from one async task with many requests in flight.
#![forbid(unsafe_code)]
