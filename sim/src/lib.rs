//! gcbulk-sim: Genesys Cloud modelled in virtual time, and served over loopback HTTP.
//!
//! - [`model`]: a sans-IO, seeded model of the parts of Genesys Cloud that a bulk user update
//!   meets: OAuth client-credentials tokens, the users API (list by id, get, PATCH with version,
//!   search by e-mail), rate limits as Genesys announces and enforces them, 429 storms, daily
//!   limits, server errors, connection resets, latency and concurrent editors. It reads no clock
//!   and draws its dice from a seed, so a run is the same every time.
//! - [`emulator`]: the same model behind a real HTTP/1.1 server on 127.0.0.1, in wall-clock time
//!   (optionally compressed), for the demo and the adapters' integration tests.
//! - [`drive`]: the harness that runs client machines against the model in virtual time.
//! - [`scenario`]: named presets (and scenario files): a server, an organisation, the change rows
//!   and the clients that share them; a recorded trace can be replayed over the model.
//! - [`baseline`]: the retry strategies people use today, rebuilt from their published
//!   descriptions, running gcbulk's own workflow so that only retry and pacing differ.
//! - [`compare`]: every strategy on one scenario, side by side (`gcbulk sim compare`).
//! - [`plot`]: a comparison drawn as one SVG picture, a panel per strategy (`--plot`).
//! - [`experiment`]: a published experiment (rate_throttle_client's) rebuilt on the model, to
//!   check the simulator against its table.
//!
//! It is not Genesys Cloud: only the behaviour above is modelled, and where the real API's
//! behaviour is unconfirmed (the status of a bad client secret, the text of some errors), the
//! model picks one and makes it configurable.
#![forbid(unsafe_code)]

pub mod baseline;
pub mod compare;
pub mod drive;
pub mod emulator;
pub mod experiment;
pub mod model;
pub mod plot;
pub mod scenario;
