//! gcbulk-sim: a model of Genesys Cloud in virtual time.
#![forbid(unsafe_code)]
