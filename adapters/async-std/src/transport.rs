//! The seam between the driver and an HTTP client, and what a request must be before it may
//! leave at all.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::sched::TransportError;
use http::{Request, Response, Uri};

/// The refusal for plain HTTP to anything but loopback: a bearer token must never cross a network
/// in clear text.
pub(crate) const PLAIN_HTTP_REMOTE: &str = "plain http is only allowed to loopback";

/// The refusal for plain HTTP when the options forbid it even to loopback.
pub(crate) const PLAIN_HTTP_OFF: &str = "plain http is not allowed";

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

/// Where a request is going, once it has been let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// This machine.
    Loopback,
    /// Anywhere else, over HTTPS.
    Remote,
}

/// Checks that a request may be sent at all, before any connection is made.
pub(crate) fn admit(uri: &Uri, allow_loopback_http: bool) -> Result<Target, TransportError> {
    let refuse = |why: &str| Err(TransportError::Refused(why.to_owned()));
    let Some(host) = uri.host() else {
        return refuse("the request url has no host");
    };
    let target = if is_loopback(host) {
        Target::Loopback
    } else {
        Target::Remote
    };

    match uri.scheme_str() {
        Some("https") => Ok(target),
        Some("http") if target == Target::Loopback && allow_loopback_http => Ok(target),
        Some("http") if allow_loopback_http => refuse(PLAIN_HTTP_REMOTE),
        Some("http") => refuse(PLAIN_HTTP_OFF),
        _ => refuse("only http and https urls are supported"),
    }
}

/// True for `localhost`, 127.0.0.0/8 and `::1`: names that cannot leave this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit_str(url: &str, allow: bool) -> Result<Target, TransportError> {
        admit(&url.parse::<Uri>().unwrap(), allow)
    }

    fn refused(why: &str) -> Result<Target, TransportError> {
        Err(TransportError::Refused(why.to_owned()))
    }

    #[test]
    fn plain_http_reaches_loopback_only() {
        for url in [
            "http://127.0.0.1:8080/api",
            "http://127.9.8.7/",
            "http://localhost/",
            "http://LocalHost.:3000/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(admit_str(url, true), Ok(Target::Loopback), "{url}");
        }
        for url in [
            "http://192.0.2.1/",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://[::2]/",
            "http://[::ffff:127.0.0.1]/",
            "http://api.mypurecloud.com/api/v2/users",
        ] {
            assert_eq!(admit_str(url, true), refused(PLAIN_HTTP_REMOTE), "{url}");
        }
    }

    #[test]
    fn plain_http_can_be_turned_off_even_for_loopback() {
        assert_eq!(
            admit_str("http://127.0.0.1/", false),
            refused(PLAIN_HTTP_OFF)
        );
        assert_eq!(admit_str("https://127.0.0.1/", false), Ok(Target::Loopback));
    }

    #[test]
    fn https_goes_anywhere() {
        assert_eq!(
            admit_str("https://api.mypurecloud.com/api/v2/users", true),
            Ok(Target::Remote)
        );
        assert_eq!(admit_str("https://localhost/", true), Ok(Target::Loopback));
    }

    #[test]
    fn urls_without_a_host_or_with_another_scheme_are_refused() {
        assert!(matches!(
            admit_str("/api/v2/users", true),
            Err(TransportError::Refused(_))
        ));
        assert!(matches!(
            admit_str("ftp://127.0.0.1/", true),
            Err(TransportError::Refused(_))
        ));
    }
}
