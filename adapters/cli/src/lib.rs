//! gcbulk: the library behind the `gcbulk` command (input readers, journal, report).
#![forbid(unsafe_code)]
