//! A tiny HTTP/1.1 server on loopback that answers from a script, and a machine wrapper that
//! records what the driver told it.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part of the support code"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gcbulk_core::sched::{AttemptId, HandleError, TransportError};
use gcbulk_core::{Action, Machine, Timestamp};
use http::{Response, StatusCode};

/// How long a connection may sit idle before the server drops it; longer than any test.
const IDLE: Duration = Duration::from_secs(5);

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Hit {
    /// When it had been read in full.
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Hit {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the server does with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answers.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Waits, then does the inner reply.
    After(Duration, Box<Reply>),
    /// Closes the connection without a word.
    Close,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self::Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Self::Answer { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    pub fn body(mut self, content: impl Into<Vec<u8>>) -> Self {
        if let Self::Answer { body, .. } = &mut self {
            *body = content.into();
        }
        self
    }

    pub fn after(self, delay: Duration) -> Self {
        Self::After(delay, Box::new(self))
    }
}

/// Chooses the reply to a request, given how many earlier requests had the same path.
type Script = dyn Fn(&Hit, usize) -> Reply + Send + Sync;

/// The server; it stops when dropped.
pub struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    done: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(script: impl Fn(&Hit, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);

        let accept = {
            let (hits, done) = (hits.clone(), done.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (hits, script) = (hits.clone(), script.clone());
                    thread::spawn(move || serve(stream, &*script, &hits));
                }
            })
        };
        Self {
            addr,
            hits,
            done,
            accept: Some(accept),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(stream: TcpStream, script: &Script, hits: &Mutex<Vec<Hit>>) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some(hit) = read_request(&mut reader) {
        let earlier = {
            let mut hits = hits.lock().expect("hits lock");
            let earlier = hits.iter().filter(|h| h.path == hit.path).count();
            hits.push(hit.clone());
            earlier
        };
        if !write_reply(&mut writer, script(&hit, earlier)) {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Hit> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();

    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;

    Some(Hit {
        at: wall_clock(),
        method,
        path,
        headers,
        body,
    })
}

fn write_reply(writer: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::After(delay, inner) => {
            pause(delay);
            write_reply(writer, *inner)
        }
        Reply::Close => {
            let _ = writer.shutdown(Shutdown::Both);
            false
        }
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Whatever");
            let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            writer.write_all(head.as_bytes()).is_ok()
                && writer.write_all(&body).is_ok()
                && writer.flush().is_ok()
        }
    }
}

/// The wall clock, for timing what the server saw.
#[expect(
    clippy::disallowed_methods,
    reason = "the test server measures real arrival times"
)]
pub fn wall_clock() -> Instant {
    Instant::now()
}

/// Blocks the calling thread.
#[expect(
    clippy::disallowed_methods,
    reason = "the test server plays a slow peer, and tests play a person pressing Ctrl-C"
)]
pub fn pause(delay: Duration) {
    thread::sleep(delay);
}

/// Passes everything to the machine inside, keeping the transport errors it was handed.
#[derive(Debug)]
pub struct Recording<M> {
    pub inner: M,
    pub transport_errors: Vec<TransportError>,
}

impl<M> Recording<M> {
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            transport_errors: Vec::new(),
        }
    }
}

impl<M: Machine> Machine for Recording<M> {
    type Output = M::Output;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        self.inner.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.transport_errors.push(error.clone());
        self.inner.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.inner.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<Self::Output> {
        self.inner.poll(now)
    }
}
