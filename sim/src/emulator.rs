//! The model served over real HTTP/1.1 on loopback, in wall-clock time, optionally compressed.
//!
//! The [`Emulator`] binds 127.0.0.1 (never anything else), runs its own single-threaded tokio
//! runtime on a background thread, and answers every request from one [`Server`] behind a mutex:
//! virtual time is the wall time elapsed since start multiplied by
//! [`time_scale`](EmulatorConfig::time_scale), and each answer is held back for the model's
//! latency divided by the same factor. A [`Reply::Reset`] closes the connection with a TCP reset
//! and no answer. Both the API and the login paths are served at [`Emulator::base_url`].
//!
//! This is the one part of the crate that reads the wall clock, in one small function.
//!
//! A command-line front end maps its flags onto the configuration like this:
//!
//! ```no_run
//! use gcbulk_sim::emulator::{EmulatorConfig, serve_blocking};
//! use gcbulk_sim::model::{FaultPreset, ServerConfig, load_users_file};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // gcbulk emulator --org examples/org.jsonl --port 8080 --rate-limit 300 --time-scale 10 \
//! //     --faults storm
//! let mut server = ServerConfig::default().with_rate_limit_per_minute(300);
//! "storm".parse::<FaultPreset>()?.apply(&mut server);
//! let config = EmulatorConfig {
//!     server,
//!     users: load_users_file("examples/org.jsonl")?,
//!     seed: 1,
//!     port: 8080,
//!     time_scale: 10.0,
//! };
//! let stats = serve_blocking(config, |emulator| {
//!     eprintln!("serving Genesys Cloud at {} (Ctrl-C stops)", emulator.base_url());
//! })?;
//! eprintln!("{} answers, {} of them 429", stats.total(), stats.throttled);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gcbulk_core::Timestamp;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::model::{ClientId, ConfigError, Reply, Server, ServerConfig, ServerStats, User};

/// The largest request body the emulator reads (a PATCH or a search is a few kilobytes).
const MAX_BODY: usize = 1 << 20;

/// What to serve, and how fast time runs.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// How the modelled server behaves.
    pub server: ServerConfig,
    /// The organisation's users.
    pub users: Vec<User>,
    /// The seed of the model's dice.
    pub seed: u64,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Virtual seconds per wall-clock second: 60 runs a minute of rate-limit window in a second.
    pub time_scale: f64,
}

impl Default for EmulatorConfig {
    /// Genesys as usual, no users, seed 0, a free port, real time.
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            users: Vec::new(),
            seed: 0,
            port: 0,
            time_scale: 1.0,
        }
    }
}

/// The emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The server configuration cannot describe a server.
    #[error("invalid server configuration: {0}")]
    Config(#[from] ConfigError),
    /// The time scale is not a positive number.
    #[error("the time scale must be a positive number, not {0}")]
    TimeScale(f64),
    /// The address is not a loopback address; the emulator speaks plain HTTP to this machine only.
    #[error("refusing to listen on {0}: the emulator serves loopback only")]
    NotLoopback(IpAddr),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address it tried.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// The runtime or its thread could not start, or waiting for Ctrl-C failed.
    #[error("cannot run the emulator: {0}")]
    Runtime(#[source] io::Error),
}

/// A running emulator; it stops on [`shutdown`](Self::shutdown) or when dropped.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

/// What the serving thread and the handle share.
#[derive(Debug)]
struct Shared {
    server: Mutex<Server>,
    clock: VirtualClock,
}

impl Shared {
    fn server(&self) -> MutexGuard<'_, Server> {
        // A panic while holding the lock leaves the model as it was between two requests.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wall-clock time mapped onto the model's virtual time.
#[derive(Clone, Copy, Debug)]
struct VirtualClock {
    start: Instant,
    scale: f64,
}

impl VirtualClock {
    fn now(&self) -> Timestamp {
        let elapsed = wall_clock().saturating_duration_since(self.start);
        Timestamp::from_offset(elapsed.mul_f64(self.scale))
    }

    /// How long a virtual delay lasts on the wall clock.
    fn wall(&self, delay: Duration) -> Duration {
        delay.div_f64(self.scale)
    }
}

impl Emulator {
    /// Binds 127.0.0.1 and starts serving on a background thread.
    pub fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        config.server.validate()?;
        let scale = config.time_scale;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(EmulatorError::TimeScale(scale));
        }

        let listener = bind_loopback(IpAddr::V4(Ipv4Addr::LOCALHOST), config.port)?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.port),
                source,
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(EmulatorError::Runtime)?;

        let server = Server::new(config.server, config.users, config.seed);
        let clock = VirtualClock {
            start: wall_clock(),
            scale,
        };
        let shared = Arc::new(Shared {
            server: Mutex::new(server),
            clock,
        });
        let (stop, stopped) = watch::channel(false);

        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("gcbulk-emulator".to_owned())
            .spawn(move || runtime.block_on(accept(listener, serving, stopped)))
            .map_err(EmulatorError::Runtime)?;

        tracing::info!(%addr, time_scale = scale, "emulator listening");
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it serves both the API and the login paths: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The model's virtual time now.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// A snapshot of the organisation, with the edits due by now made.
    pub fn users(&self) -> Vec<User> {
        let now = self.now();
        let mut server = self.shared.server();
        server.handle_timeout(now);
        server.users().cloned().collect()
    }

    /// What it answered so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.server().stats().clone()
    }

    /// Waits until the process gets Ctrl-C (SIGINT), serving meanwhile.
    pub fn wait_for_ctrl_c(&self) -> Result<(), EmulatorError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(EmulatorError::Runtime)?;
        runtime
            .block_on(tokio::signal::ctrl_c())
            .map_err(EmulatorError::Runtime)
    }

    /// Stops serving: open connections are closed, the background thread ends.
    pub fn shutdown(mut self) {
        self.stop_serving();
    }

    fn stop_serving(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the emulator thread panicked");
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

/// Serves in the foreground until Ctrl-C, then returns what was answered.
///
/// `on_ready` runs once the port is bound, to tell the user where to point their client.
pub fn serve_blocking(
    config: EmulatorConfig,
    on_ready: impl FnOnce(&Emulator),
) -> Result<ServerStats, EmulatorError> {
    let emulator = Emulator::start(config)?;
    on_ready(&emulator);
    emulator.wait_for_ctrl_c()?;

    let stats = emulator.stats();
    emulator.shutdown();
    Ok(stats)
}

/// Binds `ip:port` if `ip` is a loopback address, and refuses anything else.
fn bind_loopback(ip: IpAddr, port: u16) -> Result<std::net::TcpListener, EmulatorError> {
    if !ip.is_loopback() {
        return Err(EmulatorError::NotLoopback(ip));
    }
    let addr = SocketAddr::new(ip, port);
    let bind = || {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    bind().map_err(|source| EmulatorError::Bind { addr, source })
}

/// The emulator's one reading of the wall clock.
#[expect(
    clippy::disallowed_methods,
    reason = "the emulator serves real clients in wall-clock time; virtual time derives from this"
)]
fn wall_clock() -> Instant {
    Instant::now()
}

/// Accepts connections until told to stop; each gets a [`ClientId`] in the order it came.
async fn accept(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "emulator cannot listen");
            return;
        }
    };

    let mut next_client = 0;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let client = ClientId(next_client);
                    next_client += 1;
                    tracing::debug!(client = client.0, %peer, "connection opened");
                    tokio::spawn(connection(stream, client, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Out of descriptors, most likely: give the open connections time to end.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // Returning drops the runtime's tasks, closing every open connection.
}

/// Serves one keep-alive connection.
async fn connection(stream: TcpStream, client: ClientId, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResettableStream {
        stream,
        reset: Arc::clone(&reset),
    });

    let service = service_fn(move |request| {
        respond(Arc::clone(&shared), client, Arc::clone(&reset), request)
    });
    if let Err(error) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await
    {
        tracing::debug!(client = client.0, %error, "connection ended");
    }
}

/// The model was asked to reset the connection: the service fails, and hyper drops it unanswered.
#[derive(Debug, thiserror::Error)]
#[error("the modelled server reset the connection")]
struct ConnectionReset;

/// Hands one request to the model and holds the answer back for its latency.
async fn respond(
    shared: Arc<Shared>,
    client: ClientId,
    reset: Arc<AtomicBool>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ConnectionReset> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(client = client.0, %error, "request body refused");
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(response);
        }
    };

    let reply = {
        let now = shared.clock.now();
        shared
            .server()
            .handle_request(now, client, Request::from_parts(parts, body))
    };
    match reply {
        Reply::Respond { response, latency } => {
            tokio::time::sleep(shared.clock.wall(latency)).await;
            Ok(response.map(Full::new))
        }
        Reply::Reset { after } => {
            tokio::time::sleep(shared.clock.wall(after)).await;
            reset.store(true, Ordering::Relaxed);
            Err(ConnectionReset)
        }
    }
}

/// A TCP stream that, once marked, closes with a reset (RST) rather than an orderly FIN.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            // A zero linger makes the close abortive: the peer sees "connection reset".
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_bound() {
        let error = bind_loopback(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap_err();
        assert!(matches!(error, EmulatorError::NotLoopback(_)), "{error}");
        assert!(bind_loopback(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).is_ok());
    }

    #[test]
    fn a_bad_time_scale_is_refused() {
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let config = EmulatorConfig {
                time_scale: scale,
                ..EmulatorConfig::default()
            };
            assert!(matches!(
                Emulator::start(config),
                Err(EmulatorError::TimeScale(_))
            ));
        }
    }

    #[test]
    fn virtual_time_runs_at_the_scale() {
        let clock = VirtualClock {
            start: wall_clock(),
            scale: 60.0,
        };
        assert_eq!(clock.wall(Duration::from_secs(60)), Duration::from_secs(1));
        assert!(clock.now() < Timestamp::from_secs(60));
    }
}
