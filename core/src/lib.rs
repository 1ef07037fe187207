//! gcbulk-core: a sans-IO state machine that decides when to send, when to wait and when to give
//! up, for any rate-limited HTTP API, and the Genesys Cloud bulk user-update workflow built on it.
//!
//! It is not an HTTP client: it performs no I/O, reads no clock and draws no randomness except
//! from the seed it was built with. A driver (the `gcbulk-ureq` or `gcbulk-async-std` adapter,
//! or the simulator) feeds it the time, responses and transport errors, and performs the actions
//! it asks for.
#![forbid(unsafe_code)]

pub mod change;
pub mod genesys;
pub mod machine;
pub mod rng;
pub mod sched;
pub mod time;
pub mod transport;

pub use machine::{Action, Machine, Send};
pub use time::Timestamp;
