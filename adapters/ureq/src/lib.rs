//! gcbulk-ureq: drives any gcbulk [`Machine`] with blocking HTTP calls on a pool of worker threads.
//!
//! The machine runs on the calling thread. [`Driver::run`] polls it until it waits, hands each
//! [`Send`](gcbulk_core::Send) to a bounded pool of workers that share one [`ureq`] agent (so
//! connections are reused), reports each output to a callback, and blocks, without spinning,
//! until an answer arrives or the time the machine asked to be woken comes. Wall-clock time
//! reaches the machine as a [`Timestamp`]: the time since the driver was built.
//!
//! What the transport guarantees the machine:
//!
//! - every final answer, whatever its status, comes back as a response for the machine to
//!   classify;
//! - redirects are never followed: a 3xx is the final answer, so a bearer token never travels to
//!   a host a `Location` names;
//! - plain `http://` goes to loopback only (127.0.0.0/8, `::1`, `localhost`: the emulator);
//!   anything else is refused before any connection, as
//!   [`TransportError::Refused`](gcbulk_core::sched::TransportError::Refused);
//! - each attempt gets the timeout its `Send` carries, body included, and a response body is
//!   bounded by [`DriverOptions::max_body_bytes`];
//! - response headers reach the machine as the server sent them, repeated ones included (no
//!   decompression rewrites them).
//!
//! It is not a retry layer (the machine decides what is retried, and when), not an async runtime
//! (see `gcbulk-async-std`), and it holds no credentials: requests arrive with their headers set.
//! Request headers are never logged.
//!
//! ```no_run
//! use bytes::Bytes;
//! use gcbulk_core::sched::{Config, Outcome, Scheduler};
//! use gcbulk_ureq::{Driver, DriverOptions};
//!
//! let config = Config::default();
//! let driver = Driver::new(DriverOptions {
//!     workers: config.max_in_flight,
//!     ..DriverOptions::default()
//! })?;
//!
//! let mut scheduler = Scheduler::new(config, 42);
//! for id in ["0a1b", "2c3d"] {
//!     let request = http::Request::get(format!("https://api.mypurecloud.com/api/v2/users/{id}"))
//!         .header("authorization", "Bearer <token>")
//!         .body(Bytes::new())?;
//!     scheduler.push(driver.now(), id, request);
//! }
//!
//! let stats = driver.run(&mut scheduler, |_, done| match done.outcome {
//!     Outcome::Response(response) => println!("{}: {}", done.key, response.status()),
//!     Outcome::GaveUp { reason, .. } => println!("{}: {reason}", done.key),
//!     _ => {}
//! })?;
//! println!("{} attempts in {:?}", stats.sent, stats.elapsed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! To stop on Ctrl-C, give [`DriverOptions::stop`] a flag the handler raises: the run then sends
//! nothing new, waits for the attempts in flight, reports them and returns. Implement
//! [`Observer`] to cancel queued work at that moment, or to show waits on a progress bar.
//!
//! [`Machine`]: gcbulk_core::Machine
//! [`Timestamp`]: gcbulk_core::Timestamp
#![forbid(unsafe_code)]

mod clock;
mod driver;
mod error;
mod transport;

pub use driver::{Driver, DriverOptions, Observer, RunStats};
pub use error::DriverError;
