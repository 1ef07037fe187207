//! gcbulk-sim: Genesys Cloud modelled in virtual time, and served over loopback HTTP.
//!
//! - [`model`]: a sans-IO, seeded model of the parts of Genesys Cloud that a bulk user update
//!   meets: OAuth client-credentials tokens, the users API (list by id, get, PATCH with version,
//!   search by e-mail), rate limits as Genesys announces and enforces them, 429 storms, daily
//!   limits, server errors, connection resets, latency and concurrent editors. It reads no clock
//!   and draws its dice from a seed, so a run is the same every time.
//! - [`emulator`]: the same model behind a real HTTP/1.1 server on 127.0.0.1, in wall-clock time
//!   (optionally compressed), for the demo and the adapters' integration tests.
//!
//! It is not Genesys Cloud: only the behaviour above is modelled, and where the real API's
//! behaviour is unconfirmed (the status of a bad client secret, the text of some errors), the
//! model picks one and makes it configurable.
#![forbid(unsafe_code)]

pub mod baseline;
pub mod drive;
pub mod emulator;
pub mod model;
pub mod scenario;
