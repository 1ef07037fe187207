//! The seam between the driver and an HTTP client. What a request must be before it may leave at
//! all is [`gcbulk_core::transport::admit`]'s to say, for this driver and the blocking one alike.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::sched::TransportError;
use http::{Request, Response};

/// An HTTP client the driver sends attempts through.
///
/// The crate ships one, [`HttpTransport`](crate::HttpTransport); implement this to send through
/// the client an application already has. What an implementation owes the machine:
///
/// - every answer the server gives, whatever its status, is `Ok`: the machine classifies it;
/// - redirects are not followed: a 3xx is the answer, so a bearer token never travels to a host a
///   `Location` names;
/// - the future finishes within `timeout` (the whole exchange, body included), or the run waits
///   for it: the driver sets no deadline of its own;
/// - a failure to get a full answer is one [`TransportError`]: `Connect` when no connection could
///   be made, `TimedOut`, `Reset` when the connection broke, `Protocol` for an answer that is not
///   HTTP or too large, and `Refused` (never retried) for a request that must not be sent.
///
/// The driver refuses plain `http://` to anything but loopback before it calls `send`, so an
/// implementation sees only HTTPS and, where allowed, loopback HTTP. The future must be `Send`,
/// so that a run can be spawned on a multi-threaded executor; it need not be `'static`.
pub trait Transport {
    /// Performs one exchange.
    fn send(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send {
        (**self).send(request, timeout)
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send {
        (**self).send(request, timeout)
    }
}
