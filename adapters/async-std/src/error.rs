//! What can stop a run.

use gcbulk_core::sched::HandleError;

/// Why the driver could not be built or a run could not finish.
///
/// Failures of single attempts are not among them: those go to the machine as responses or
/// [`TransportError`](gcbulk_core::sched::TransportError)s, and it decides what they mean.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The user agent cannot be sent as a header value.
    #[error("the user agent is not a valid header value")]
    UserAgent,
    /// The default TLS settings could not be built.
    #[error("cannot set up tls: {0}")]
    Tls(String),
    /// The machine refused a result the driver handed it: a bug in the driver or the machine.
    #[error("the machine rejected a result")]
    Rejected(#[from] HandleError),
    /// The machine waits for an answer, but nothing is in flight, so none will come.
    #[error("the machine waits for a response but none is in flight")]
    Stalled,
    /// The machine asked for an action this driver does not know how to perform.
    #[error("the machine asked for an action this driver does not know")]
    UnknownAction,
}
