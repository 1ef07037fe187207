//! gcbulk-async-std: drives any gcbulk [`Machine`] from one async task, with every attempt the
//! machine asks for in flight at once.
//!
//! [`Driver::run`] polls the machine until it waits, starts each [`Send`](gcbulk_core::Send) as a
//! future of its own, reports each output to a callback, and then awaits whichever comes first:
//! the next answer, or the time the machine asked to be woken (one async timer, moved to each new
//! wake-up). It never spins and never polls on an interval. Wall-clock time reaches the machine
//! as a [`Timestamp`]: the time since the driver was built.
//!
//! Requests go through a [`Transport`], a one-method trait, so an application can send through
//! the HTTP client it already has. The crate ships [`HttpTransport`]: hyper's HTTP/1.1 client
//! connections over async-net sockets, rustls (ring, Mozilla roots) for HTTPS, and a small pool
//! of keep-alive connections per origin. What a transport guarantees the machine:
//!
//! - every final answer, whatever its status, comes back as a response for the machine to
//!   classify;
//! - redirects are never followed: a 3xx is the final answer, so a bearer token never travels to
//!   a host a `Location` names;
//! - plain `http://` goes to loopback only (127.0.0.0/8, `::1`, `localhost`: the emulator);
//!   anything else is refused by the driver before any transport sees it, as
//!   [`TransportError::Refused`](gcbulk_core::sched::TransportError::Refused);
//! - each attempt gets the timeout its `Send` carries, connecting and body included, and a
//!   response body is bounded by [`HttpOptions::max_body_bytes`].
//!
//! # Runtimes
//!
//! async-std is deprecated upstream in favour of smol. This crate uses no part of either runtime:
//! only async-io (the reactor and timers both of them run on), async-net sockets and the `futures`
//! traits. It spawns nothing, so the run future can be awaited under async-std, under smol, or
//! with `async_io::block_on`; the tests run it under async-std and under smol. Moving off
//! async-std needs no change here.
//!
//! It is not a retry layer (the machine decides what is retried, and when), and it holds no
//! credentials: requests arrive with their headers set. Request headers are never logged.
//!
//! ```no_run
//! use bytes::Bytes;
//! use gcbulk_async_std::{Driver, DriverOptions};
//! use gcbulk_core::sched::{Config, Outcome, Scheduler};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async_std::task::block_on(async {
//!     let driver = Driver::new(DriverOptions::default())?;
//!     let mut scheduler = Scheduler::new(Config::default(), 42);
//!     for id in ["0a1b", "2c3d"] {
//!         let url = format!("https://api.mypurecloud.com/api/v2/users/{id}");
//!         let request = http::Request::get(url)
//!             .header("authorization", "Bearer <token>")
//!             .body(Bytes::new())?;
//!         scheduler.push(driver.now(), id, request);
//!     }
//!
//!     let stats = driver
//!         .run(&mut scheduler, |_, done| match done.outcome {
//!             Outcome::Response(response) => println!("{}: {}", done.key, response.status()),
//!             Outcome::GaveUp { reason, .. } => println!("{}: {reason}", done.key),
//!             _ => {}
//!         })
//!         .await?;
//!     println!("{} attempts, {} at most at once", stats.sent, stats.peak_in_flight);
//!     Ok(())
//! })
//! # }
//! ```
//!
//! To stop on Ctrl-C, give [`DriverOptions::stop`] a [`StopSignal`] and raise it from the
//! handler: the run wakes at once, sends nothing new, waits for the attempts in flight, reports
//! them and returns. Implement [`Observer`] to cancel queued work at that moment, or to show
//! waits on a progress bar.
//!
//! [`Machine`]: gcbulk_core::Machine
//! [`Timestamp`]: gcbulk_core::Timestamp
#![forbid(unsafe_code)]

mod client;
mod clock;
mod driver;
mod error;
mod stop;
mod transport;

pub use client::{HttpOptions, HttpTransport};
pub use driver::{Driver, DriverOptions, Observer, RunStats};
pub use error::DriverError;
pub use stop::StopSignal;
pub use transport::Transport;
