//! The transport shipped with the crate: hyper's HTTP/1.1 client connections over async-net
//! sockets, rustls for HTTPS, and a small pool of keep-alive connections per origin.
//!
//! hyper's connection API splits a connection in two: a handle that sends requests and a future
//! that does the reading and writing. Nothing here spawns that future: the exchange that holds a
//! connection drives it alongside its own request, and a connection goes back to the pool when
//! its answer has been read. So the transport needs no executor, only async-io's reactor and
//! timers, which async-std and smol both run.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::Timer;
use async_net::TcpStream;
use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::ServerName;
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use gcbulk_core::sched::TransportError;
use gcbulk_core::transport::{admit, io_failure};
use http::header::{CONTENT_LENGTH, HOST, HeaderValue, USER_AGENT};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::rt::ReadBufCursor;

use crate::DriverError;
use crate::transport::Transport;

/// Bytes read from a socket at a time before hyper takes them.
const READ_CHUNK: usize = 16 * 1024;

/// Settings of the shipped transport. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The `User-Agent` of requests that do not set one. Default: `gcbulk/<version>`.
    pub user_agent: String,
    /// The largest response body accepted; a longer one fails the attempt as
    /// [`TransportError::Protocol`]. Default: 16 MiB.
    pub max_body_bytes: u64,
    /// Idle keep-alive connections kept per origin (scheme, host, port); match the machine's
    /// limit on attempts in flight so a full pipeline never reconnects. Default: 64.
    pub max_idle_per_host: usize,
    /// The TLS settings for HTTPS, for a private root or a client certificate; ALPN must offer
    /// `http/1.1` or nothing. Default: none, meaning the Mozilla roots (webpki-roots) with
    /// rustls' safe defaults on the ring provider.
    pub tls: Option<Arc<ClientConfig>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            user_agent: concat!("gcbulk/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_body_bytes: 16 * 1024 * 1024,
            max_idle_per_host: 64,
            tls: None,
        }
    }
}

/// The shipped [`Transport`]: HTTP/1.1 with keep-alive over async-net, HTTPS with rustls.
///
/// It follows no redirect, refuses plain `http://` to anything but loopback, bounds every
/// exchange by its timeout (connecting and the body included) and every body by
/// [`HttpOptions::max_body_bytes`]. A request that finds its pooled connection closed by the
/// server before it was written is sent again on a new connection; one that was written is never
/// sent twice (the machine decides that).
#[derive(Debug)]
pub struct HttpTransport {
    user_agent: HeaderValue,
    max_body_bytes: u64,
    max_idle_per_host: usize,
    tls: Arc<ClientConfig>,
    pool: Mutex<HashMap<Origin, Vec<Connection>>>,
    opened: AtomicU64,
}

impl HttpTransport {
    /// A transport with `options`.
    pub fn new(options: HttpOptions) -> Result<Self, DriverError> {
        let user_agent =
            HeaderValue::from_str(&options.user_agent).map_err(|_| DriverError::UserAgent)?;
        let tls = match options.tls {
            Some(config) => config,
            None => default_tls()?,
        };
        Ok(Self {
            user_agent,
            max_body_bytes: options.max_body_bytes,
            max_idle_per_host: options.max_idle_per_host,
            tls,
            pool: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
        })
    }

    /// Connections opened so far: with keep-alive, far fewer than requests sent.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Idle connections in the pool now, all origins together.
    pub fn idle_connections(&self) -> usize {
        self.pool().values().map(Vec::len).sum()
    }

    /// One exchange, without the timeout.
    async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let origin = Origin::of(request.uri())?;
        let mut request = self.prepare(request, &origin)?;
        loop {
            let (mut connection, pooled) = match self.checkout(&origin) {
                Some(connection) => (connection, true),
                None => (self.connect(&origin).await?, false),
            };
            match connection.round_trip(request, self.max_body_bytes).await {
                Ok(response) => {
                    self.checkin(origin, connection);
                    return Ok(response);
                }
                // The server closed an idle connection; the request never left, so it may go again.
                Err(RoundTripError::NotSent(unsent)) if pooled => request = *unsent,
                Err(RoundTripError::NotSent(_)) => return Err(TransportError::Reset),
                Err(RoundTripError::Failed(error)) => return Err(error),
            }
        }
    }

    /// The request as it goes on the wire: origin-form target, `Host` and `User-Agent` set.
    fn prepare(
        &self,
        request: Request<Bytes>,
        origin: &Origin,
    ) -> Result<Request<Full<Bytes>>, TransportError> {
        let (mut parts, body) = request.into_parts();
        if !parts.headers.contains_key(HOST) {
            let host = match parts.uri.port_u16() {
                Some(port) => format!("{}:{port}", origin.host),
                None => origin.host.clone(),
            };
            let host = HeaderValue::from_str(&host)
                .map_err(|_| TransportError::Refused("the host is not a valid header".into()))?;
            parts.headers.insert(HOST, host);
        }
        if !parts.headers.contains_key(USER_AGENT) {
            parts.headers.insert(USER_AGENT, self.user_agent.clone());
        }

        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(target)
            .map_err(|_| TransportError::Refused("the request target is not valid".into()))?;
        Ok(Request::from_parts(parts, Full::new(body)))
    }

    /// A new connection to `origin`, TLS included for HTTPS.
    async fn connect(&self, origin: &Origin) -> Result<Connection, TransportError> {
        let host = origin.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, origin.port))
            .await
            .map_err(|error| {
                tracing::debug!(host, port = origin.port, %error, "cannot connect");
                TransportError::Connect
            })?;
        // Requests are small and written whole: waiting to coalesce them only adds latency.
        let _ = tcp.set_nodelay(true);

        let stream = if origin.tls {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| TransportError::Refused("the host is not a valid tls name".into()))?;
            let connector = TlsConnector::from(Arc::clone(&self.tls));
            let tls = connector.connect(name, tcp).await.map_err(|error| {
                tracing::debug!(host, %error, "tls handshake failed");
                TransportError::Connect
            })?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };

        let io = Io {
            stream,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        };
        let (sender, driver) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|error| hyper_error(&error))?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Connection {
            sender,
            driver: Box::pin(driver),
            ended: false,
        })
    }

    /// An idle connection to `origin`, the most recently used first (the likeliest to be open).
    fn checkout(&self, origin: &Origin) -> Option<Connection> {
        let mut pool = self.pool();
        let idle = pool.get_mut(origin)?;
        while let Some(connection) = idle.pop() {
            if connection.is_reusable() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for the next request to `origin`, if it is still open and there is room.
    fn checkin(&self, origin: Origin, connection: Connection) {
        if !connection.is_reusable() {
            return;
        }
        let mut pool = self.pool();
        let idle = pool.entry(origin).or_default();
        if idle.len() < self.max_idle_per_host {
            idle.push(connection);
        }
    }

    fn pool(&self) -> MutexGuard<'_, HashMap<Origin, Vec<Connection>>> {
        // The lock is never held across an await or a call that may panic mid-update.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send {
        within(timeout, self.exchange(request))
    }
}

/// `future`, or [`TransportError::TimedOut`] once `timeout` has passed. Dropping the exchange on
/// a timeout drops its connection too, so a late answer cannot be read as the next one's.
async fn within<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    let mut future = pin!(future);
    let mut timer = Timer::after(timeout);
    poll_fn(|cx| {
        if let Poll::Ready(result) = future.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(TransportError::TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The TLS settings used when none are given.
fn default_tls() -> Result<Arc<ClientConfig>, DriverError> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| DriverError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where connections go: scheme, host and port. Connections are pooled per origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    tls: bool,
    /// As the URL writes it, brackets of an IPv6 address included, lowercase.
    host: String,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Result<Self, TransportError> {
        // The driver has checked this already; a transport used alone checks it too.
        admit(uri, true)?;
        let tls = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { tls, host, port })
    }
}

/// One keep-alive connection: the handle that sends, and the future that does the I/O.
struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Pin<Box<http1::Connection<Io, Full<Bytes>>>>,
    /// The I/O future has finished: the connection is closed, and it must not be polled again.
    ended: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Why a round trip gave no answer.
enum RoundTripError {
    /// The connection closed before the request was written: it may be sent elsewhere.
    NotSent(Box<Request<Full<Bytes>>>),
    /// The exchange failed after the request may have reached the server.
    Failed(TransportError),
}

impl Connection {
    /// Sends `request` and reads its whole answer, driving the connection meanwhile.
    async fn round_trip(
        &mut self,
        request: Request<Full<Bytes>>,
        max_body: u64,
    ) -> Result<Response<Bytes>, RoundTripError> {
        let Self {
            sender,
            driver,
            ended,
        } = self;
        let exchange = async move {
            if poll_fn(|cx| sender.poll_ready(cx)).await.is_err() {
                return Err(RoundTripError::NotSent(Box::new(request)));
            }
            let response = match sender.try_send_request(request).await {
                Ok(response) => response,
                Err(mut error) => {
                    return Err(match error.take_message() {
                        Some(request) => RoundTripError::NotSent(Box::new(request)),
                        None => RoundTripError::Failed(hyper_error(&error.into_error())),
                    });
                }
            };
            read_body(response, max_body)
                .await
                .map_err(RoundTripError::Failed)
        };

        let mut exchange = pin!(exchange);
        poll_fn(|cx| {
            if !*ended && let Poll::Ready(result) = driver.as_mut().poll(cx) {
                *ended = true;
                if let Err(error) = result {
                    tracing::trace!(%error, "connection ended");
                }
            }
            exchange.as_mut().poll(cx)
        })
        .await
    }

    fn is_reusable(&self) -> bool {
        !self.ended && !self.sender.is_closed()
    }
}

/// Reads a response's body whole, refusing one longer than `max_body`.
async fn read_body(
    response: Response<Incoming>,
    max_body: u64,
) -> Result<Response<Bytes>, TransportError> {
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body) {
        tracing::debug!(declared, max_body, "response body too large");
        return Err(TransportError::Protocol);
    }

    let (parts, body) = response.into_parts();
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let collected = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|error| match error.downcast_ref::<hyper::Error>() {
            Some(error) => hyper_error(error),
            // The only other error is the length limit.
            None => TransportError::Protocol,
        })?;
    Ok(Response::from_parts(parts, collected.to_bytes()))
}

/// What a hyper failure means to the machine.
fn hyper_error(error: &hyper::Error) -> TransportError {
    if error.is_timeout() {
        return TransportError::TimedOut;
    }
    if error.is_parse() || error.is_parse_status() {
        return TransportError::Protocol;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io_failure(io.kind());
        }
        source = cause.source();
    }
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        return TransportError::Reset;
    }
    TransportError::Protocol
}

/// A socket, with TLS or without.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A socket seen through hyper's I/O traits.
///
/// Bytes are read into a buffer of its own and copied into hyper's: hyper hands out
/// uninitialised memory, which only `unsafe` code may read into directly, and the copy costs
/// little next to the system call that filled the buffer.
struct Io {
    stream: Stream,
    scratch: Box<[u8]>,
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = buf.remaining().min(this.scratch.len());
        let scratch = &mut this.scratch[..room];
        let read = match &mut this.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, scratch),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_read(cx, scratch),
        };
        match read {
            Poll::Ready(Ok(count)) => {
                buf.put_slice(&scratch[..count]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        // async-io writes vectors with one system call; through TLS, hyper's own flattening
        // into one buffer saves rustls a record per piece.
        matches!(self.stream, Stream::Plain(_))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_close(cx),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_default_their_ports_and_ignore_case() {
        let origin = Origin::of(&"https://API.Example.com/x".parse().unwrap()).unwrap();
        assert_eq!(
            origin,
            Origin {
                tls: true,
                host: "api.example.com".into(),
                port: 443
            }
        );
        let origin = Origin::of(&"http://[::1]:8080/".parse().unwrap()).unwrap();
        assert_eq!(origin.host, "[::1]");
        assert_eq!(origin.port, 8080);
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused_even_without_the_driver() {
        let transport = HttpTransport::new(HttpOptions::default()).unwrap();
        let request = Request::get("http://api.mypurecloud.com/api/v2/users")
            .body(Bytes::new())
            .unwrap();
        let result = async_io::block_on(transport.send(request, Duration::from_secs(1)));
        assert!(
            matches!(result, Err(TransportError::Refused(_))),
            "{result:?}"
        );
        assert_eq!(transport.connections_opened(), 0);
    }

    #[test]
    fn requests_go_out_in_origin_form_with_host_and_user_agent() {
        let transport = HttpTransport::new(HttpOptions::default()).unwrap();
        let request = Request::patch("http://127.0.0.1:8080/api/v2/users/u1?expand=x")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let origin = Origin::of(request.uri()).unwrap();
        let prepared = transport.prepare(request, &origin).unwrap();
        assert_eq!(prepared.uri(), "/api/v2/users/u1?expand=x");
        assert_eq!(prepared.headers()[HOST], "127.0.0.1:8080");
        assert!(
            prepared.headers()[USER_AGENT]
                .to_str()
                .unwrap()
                .starts_with("gcbulk/")
        );
    }

    #[test]
    fn an_invalid_user_agent_is_refused() {
        let options = HttpOptions {
            user_agent: "gcbulk\n".into(),
            ..HttpOptions::default()
        };
        assert!(matches!(
            HttpTransport::new(options),
            Err(DriverError::UserAgent)
        ));
    }
}
