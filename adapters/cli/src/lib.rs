//! gcbulk: the library behind the `gcbulk` command: reading the change file, exporting users as
//! a spreadsheet the change file can start from, and the journal's format.
//!
//! It holds no request logic: what to send and when is the business of `gcbulk-core`.
#![forbid(unsafe_code)]

pub mod export;
pub mod input;
pub mod journal;

mod cell;
