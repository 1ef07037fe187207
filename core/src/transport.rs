//! What a request must be before a driver may send it, and what a failed socket means to the
//! machine: the rules every driver applies alike, written once so that no two drivers can come to
//! disagree about where a bearer token may go.
//!
//! Nothing here resolves a name or touches the network: a host is judged by how it is written.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::Uri;

use crate::sched::TransportError;

/// The refusal for plain HTTP to anything but loopback: a bearer token must never cross a network
/// in clear text.
pub const PLAIN_HTTP_REMOTE: &str = "plain http is only allowed to loopback";

/// The refusal for plain HTTP when the driver's options forbid it even to loopback.
pub const PLAIN_HTTP_OFF: &str = "plain http is not allowed";

/// Where a request is going, once [`admit`] has let it through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This machine (`localhost`, 127.0.0.0/8 or `::1`): never to be sent through a proxy.
    Loopback,
    /// Anywhere else, over HTTPS.
    Remote,
}

/// Checks that a request to `uri` may be sent at all, before any connection is made: HTTPS goes
/// anywhere, plain HTTP only to loopback and only when `allow_loopback_http` is set.
///
/// A refusal is [`TransportError::Refused`], which the machine never retries.
pub fn admit(uri: &Uri, allow_loopback_http: bool) -> Result<Target, TransportError> {
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

/// What a socket failure of this kind means to the machine: no connection, a timeout, bytes that
/// are not HTTP, or (anything else) a connection that broke before the whole answer came.
pub fn io_failure(kind: io::ErrorKind) -> TransportError {
    use io::ErrorKind as K;

    match kind {
        K::ConnectionRefused
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable
        | K::AddrInUse
        | K::NotConnected => TransportError::Connect,
        K::TimedOut | K::WouldBlock => TransportError::TimedOut,
        K::InvalidData => TransportError::Protocol,
        _ => TransportError::Reset,
    }
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
        assert_eq!(
            admit_str("/api/v2/users", true),
            refused("the request url has no host")
        );
        assert_eq!(
            admit_str("ftp://127.0.0.1/", true),
            refused("only http and https urls are supported")
        );
    }

    #[test]
    fn socket_failures_map_to_what_the_machine_understands() {
        let kinds = [
            (io::ErrorKind::ConnectionRefused, TransportError::Connect),
            (io::ErrorKind::NetworkUnreachable, TransportError::Connect),
            (io::ErrorKind::TimedOut, TransportError::TimedOut),
            (io::ErrorKind::WouldBlock, TransportError::TimedOut),
            (io::ErrorKind::ConnectionReset, TransportError::Reset),
            (io::ErrorKind::UnexpectedEof, TransportError::Reset),
            (io::ErrorKind::BrokenPipe, TransportError::Reset),
            (io::ErrorKind::InvalidData, TransportError::Protocol),
        ];
        for (kind, expected) in kinds {
            assert_eq!(io_failure(kind), expected, "{kind:?}");
        }
    }
}
