//! gcbulk: the library behind the `gcbulk` command: reading the change file and exporting users
//! as a spreadsheet the change file can start from.
//!
//! It holds no request logic: what to send and when is the business of `gcbulk-core`.
#![forbid(unsafe_code)]

pub mod export;
pub mod input;

mod cell;
