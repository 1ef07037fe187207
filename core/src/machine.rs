//! The driving contract every gcbulk state machine shares, so one driver runs them all.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

use crate::Timestamp;
use crate::sched::{AttemptId, HandleError, TransportError, WaitReason};

/// One request to perform.
#[derive(Debug)]
#[must_use = "a send must be performed and its result handed back"]
pub struct Send {
    /// Hand the result back tagged with this.
    pub attempt: AttemptId,
    /// What to send.
    pub request: Request<Bytes>,
    /// How long to wait for the answer.
    pub timeout: Duration,
}

/// What the driver should do next.
#[derive(Debug)]
#[must_use = "every action must be performed"]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "actions are drained one at a time and moved straight on; boxing would cost an \
              allocation per send"
)]
pub enum Action<O> {
    /// Perform this attempt.
    Send(Send),
    /// A piece of work has ended (an item, a row): report it.
    Done(O),
    /// Nothing to do until `at` (call [`Machine::handle_timeout`] then) or until a response.
    WaitUntil {
        /// When to wake.
        at: Timestamp,
        /// Why the wait.
        reason: WaitReason,
    },
    /// Nothing to do until an attempt in flight is answered.
    WaitForResponse,
    /// No work at all: everything has been reported done.
    Idle,
}

/// A sans-IO state machine that a driver runs: feed it events with the time, drain its actions.
///
/// Drivers (the ureq and async-std adapters, the simulator) are written once against this trait.
/// The drain contract is the one in [`crate::sched`]: after every event, poll until a waiting
/// action, perform every send, report every output.
pub trait Machine {
    /// What [`Action::Done`] carries.
    type Output;

    /// The answer to `attempt`.
    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError>;

    /// A transport failure of `attempt`.
    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError>;

    /// A wait the machine asked for has ended.
    fn handle_timeout(&mut self, now: Timestamp);

    /// The next action.
    fn poll(&mut self, now: Timestamp) -> Action<Self::Output>;
}
