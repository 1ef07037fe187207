//! One attempt over HTTP: what a worker thread does with a [`Send`] that
//! [`admit`](gcbulk_core::transport::admit) let through, and what a ureq failure means to the
//! machine.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::Send;
use gcbulk_core::sched::{AttemptId, TransportError};
use gcbulk_core::transport::{Target, io_failure};
use http::{Request, Response, Uri};
use ureq::config::{Config, IpFamily};
use ureq::unversioned::resolver::{self, DefaultResolver, ResolvedSocketAddrs};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::DriverOptions;

/// The header Genesys Cloud puts on every answer; support asks for it.
const CORRELATION_ID: &str = "inin-correlation-id";

/// The result of one attempt, on its way back to the machine's thread.
#[derive(Debug)]
pub(crate) struct Completion {
    /// The attempt it answers.
    pub(crate) attempt: AttemptId,
    /// The answer, or how the transport failed.
    pub(crate) result: Result<Response<Bytes>, TransportError>,
}

/// Performs attempts with one shared ureq agent, so connections are reused across workers.
#[derive(Debug)]
pub(crate) struct Transport {
    agent: ureq::Agent,
    max_body_bytes: u64,
}

impl Transport {
    /// A transport for `options`; the user agent must already be validated.
    pub(crate) fn new(options: &DriverOptions) -> Self {
        // Idle connections are kept for every worker, so a full pool never reconnects.
        let idle = options.workers.max(1);
        let config = ureq::Agent::config_builder()
            // Non-2xx answers are the machine's to classify, not errors.
            .http_status_as_error(false)
            // A redirect goes back to the machine as the final answer: the token in the request
            // must never travel to whatever host a Location names.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(options.user_agent.as_str())
            .max_idle_connections(idle.max(10))
            .max_idle_connections_per_host(idle)
            .build();
        Self {
            agent: ureq::Agent::with_parts(
                config,
                DefaultConnector::default(),
                Resolver::default(),
            ),
            max_body_bytes: options.max_body_bytes,
        }
    }

    /// Performs one attempt that [`admit`](gcbulk_core::transport::admit) let through and logs what went wrong, if anything.
    pub(crate) fn perform(&self, send: Send, target: Target) -> Completion {
        let attempt = send.attempt;
        let method = send.request.method().clone();
        let path = send.request.uri().path().to_owned();

        let result = self.exchange(send.request, send.timeout, target);
        let result = match result {
            Ok(response) => {
                log_status(attempt, &method, &path, &response);
                Ok(response)
            }
            Err(error) => {
                let mapped = transport_error(&error);
                tracing::debug!(
                    %attempt,
                    %method,
                    path,
                    error = %mapped,
                    cause = %error,
                    "attempt failed in transport"
                );
                Err(mapped)
            }
        };
        Completion { attempt, result }
    }

    fn exchange(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
        target: Target,
    ) -> Result<Response<Bytes>, ureq::Error> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.as_ref());

        // The timeout covers the whole exchange, body included, as `Send::timeout` promises.
        let mut config = self
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout));
        if target == Target::Loopback {
            // A proxy from the environment must not turn a loopback call into network traffic.
            config = config.proxy(None);
        }
        let response = self.agent.run(config.build())?;

        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(self.max_body_bytes)
            .read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

/// Finds where to connect. ureq asks on every call, before it looks for a pooled connection, and
/// its own resolver, when the call has a timeout (every attempt has one), runs each lookup on a
/// thread of its own so that it can be abandoned: a thread spawned per attempt, even for a url that
/// names an IP address. Such an address is taken as written here; a name goes to ureq's resolver.
#[derive(Debug, Default)]
struct Resolver(DefaultResolver);

impl resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match ip_address(uri) {
            // ureq's resolver keeps only the addresses of the configured family; the agent's is any.
            Some(address) if config.ip_family() == IpFamily::Any => {
                let mut addresses = self.empty();
                addresses.push(address);
                Ok(addresses)
            }
            _ => self.0.resolve(uri, config, timeout),
        }
    }
}

/// The socket address of a url whose host is an IP address, with the scheme's port by default.
fn ip_address(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = host.parse::<IpAddr>().ok()?;
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("https")) => 443,
        (None, Some("http")) => 80,
        (None, _) => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Logs an answer that is not a success. Request headers are never logged: they carry the token.
fn log_status(attempt: AttemptId, method: &http::Method, path: &str, response: &Response<Bytes>) {
    let status = response.status();
    if status.is_success() || status.is_informational() {
        tracing::trace!(%attempt, status = status.as_u16(), "attempt answered");
        return;
    }
    let correlation_id = response
        .headers()
        .get(CORRELATION_ID)
        .and_then(|value| value.to_str().ok());
    let message = if status.is_redirection() {
        "attempt answered with a redirect, which is not followed"
    } else {
        "attempt answered with an error status"
    };
    tracing::debug!(
        %attempt,
        %method,
        path,
        status = status.as_u16(),
        correlation_id,
        message
    );
}

/// What a ureq failure means to the machine.
pub(crate) fn transport_error(error: &ureq::Error) -> TransportError {
    use ureq::Error as E;

    match error {
        E::Io(io) => io_error(io),
        E::Timeout(_) => TransportError::TimedOut,
        E::HostNotFound
        | E::ConnectionFailed
        | E::ConnectProxyFailed(_)
        | E::Tls(_)
        | E::Pem(_)
        | E::Rustls(_)
        | E::TlsRequired => TransportError::Connect,
        E::BadUri(_) | E::Http(_) | E::InvalidProxyUrl | E::RequireHttpsOnly(_) => {
            TransportError::Refused(error.to_string())
        }
        E::BodyStalled => TransportError::Reset,
        // Bad HTTP, an oversized header or body, or a redirect ureq was told not to follow.
        _ => TransportError::Protocol,
    }
}

fn io_error(error: &io::Error) -> TransportError {
    // ureq hands some of its own errors back wrapped in an io::Error (the body limit, say).
    if let Some(inner) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return transport_error(inner);
    }
    io_failure(error.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_address_in_the_url_needs_no_lookup() {
        let address = |url: &str| ip_address(&url.parse::<Uri>().unwrap());
        assert_eq!(
            address("http://127.0.0.1:8080/api"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            address("https://192.0.2.1/"),
            Some("192.0.2.1:443".parse().unwrap())
        );
        assert_eq!(address("http://[::1]/"), Some("[::1]:80".parse().unwrap()));
        assert_eq!(address("https://api.mypurecloud.com/api/v2/users"), None);
        assert_eq!(address("http://localhost:8080/"), None);
    }

    #[test]
    fn io_failures_map_as_the_core_maps_socket_failures() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::TimedOut,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::InvalidData,
        ] {
            let error = ureq::Error::Io(io::Error::from(kind));
            assert_eq!(transport_error(&error), io_failure(kind), "{kind:?}");
        }
    }

    #[test]
    fn an_oversized_body_is_a_protocol_error_even_wrapped() {
        let error = ureq::Error::BodyExceedsLimit(10);
        assert_eq!(transport_error(&error), TransportError::Protocol);
        let wrapped = ureq::Error::Io(ureq::Error::BodyExceedsLimit(10).into_io());
        assert_eq!(transport_error(&wrapped), TransportError::Protocol);
    }

    #[test]
    fn timeouts_of_any_phase_are_timeouts() {
        let error = ureq::Error::Timeout(ureq::Timeout::Global);
        assert_eq!(transport_error(&error), TransportError::TimedOut);
    }
}
