//! The harness: client machines and the server model, wired together in virtual time.
//!
//! Every client is a [`Machine`] (gcbulk's own workflow, or a baseline strategy); the server is
//! the [`Server`] model. The harness performs each client's sends by handing them to the server,
//! delivers the replies after their latency, and wakes clients when they asked to be woken.
//! Events at the same instant run in the order they were scheduled (a counter breaks ties), so a
//! run is a pure function of its inputs and seeds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use bytes::Bytes;
use gcbulk_core::sched::{AttemptId, TransportError};
use gcbulk_core::{Action, Machine, Timestamp};
use http::{Request, Response};

use crate::model::{ClientId, Reply, Server};

/// Answers a request instead of the server when it returns a reply: scripted faults for tests.
/// It may also change the server first (a concurrent editor writing the user, say) and return
/// `None` to let the server answer.
pub type Intercept = Box<dyn FnMut(&mut Server, Timestamp, &Request<Bytes>) -> Option<Reply>>;

/// One line of a run's trace: a request and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// When the request was sent.
    pub at: Timestamp,
    /// Which client sent it.
    pub client: usize,
    /// `METHOD path?query`.
    pub request: String,
    /// The request body, when it had one.
    pub body: Option<String>,
    /// The status, or `reset` for a cut connection.
    pub answer: String,
}

/// The harness gave up: the clients kept acting without finishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no end after {steps} steps (virtual time {at}): a livelock")]
pub struct Livelock {
    /// Steps taken.
    pub steps: u64,
    /// Virtual time reached.
    pub at: Timestamp,
}

/// What a client produced, with when.
pub type Outputs<O> = Vec<(Timestamp, O)>;

struct Client<O> {
    machine: Box<dyn Machine<Output = O>>,
    outputs: Outputs<O>,
    /// The wake-up the client last asked for; older scheduled wakes are stale.
    wake: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

enum Event {
    Deliver {
        client: usize,
        attempt: AttemptId,
        reply: Reply,
    },
    Wake {
        client: usize,
        at: Timestamp,
    },
    Start {
        client: usize,
    },
}

/// Clients and a server in virtual time. See the module docs.
pub struct Harness<O> {
    server: Server,
    clients: Vec<Client<O>>,
    queue: BinaryHeap<Reverse<(Timestamp, u64, usize)>>,
    events: Vec<Option<Event>>,
    free: Vec<usize>,
    counter: u64,
    now: Timestamp,
    trace: Option<Vec<TraceLine>>,
    intercept: Option<Intercept>,
    steps: u64,
}

impl<O> std::fmt::Debug for Harness<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("clients", &self.clients.len())
            .field("now", &self.now)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<O> Harness<O> {
    /// A harness around `server`, with no clients yet.
    pub fn new(server: Server) -> Self {
        Self {
            server,
            clients: Vec::new(),
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            counter: 0,
            now: Timestamp::ZERO,
            trace: None,
            intercept: None,
            steps: 0,
        }
    }

    /// Adds a client that starts at `start`; returns its index.
    pub fn add_client(&mut self, machine: Box<dyn Machine<Output = O>>, start: Timestamp) -> usize {
        let client = self.clients.len();
        self.clients.push(Client {
            machine,
            outputs: Vec::new(),
            wake: None,
            finished_at: None,
        });
        self.schedule(start, Event::Start { client });
        client
    }

    /// Records every request and answer (for snapshots).
    pub fn record_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// Scripts faults: see [`Intercept`].
    pub fn intercept(&mut self, intercept: Intercept) {
        self.intercept = Some(intercept);
    }

    /// Runs until every client is idle.
    pub fn drive(&mut self) -> Result<(), Livelock> {
        self.drive_bounded(u64::MAX)
    }

    /// Runs until every client is idle, or fails after `max_steps` events.
    pub fn drive_bounded(&mut self, max_steps: u64) -> Result<(), Livelock> {
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            self.steps += 1;
            if self.steps > max_steps {
                return Err(Livelock {
                    steps: self.steps,
                    at: self.now,
                });
            }
            let Some(event) = self.events[index].take() else {
                continue;
            };
            self.free.push(index);
            // A wake the client no longer wants is dropped without moving the clock.
            if let Event::Wake { client, at } = event
                && self.clients[client].wake != Some(at)
            {
                continue;
            }
            self.now = self.now.max(at);
            let now = self.now;
            let client = match event {
                Event::Start { client } => client,
                Event::Wake { client, .. } => {
                    self.clients[client].wake = None;
                    self.clients[client].machine.handle_timeout(now);
                    client
                }
                Event::Deliver {
                    client,
                    attempt,
                    reply,
                } => {
                    let machine = &mut self.clients[client].machine;
                    let handled = match reply {
                        Reply::Respond { response, .. } => {
                            machine.handle_response(now, attempt, response)
                        }
                        Reply::Reset { .. } => {
                            machine.handle_transport_error(now, attempt, TransportError::Reset)
                        }
                    };
                    if let Err(error) = handled {
                        panic!("the harness delivered an answer the client refused: {error}");
                    }
                    client
                }
            };
            self.drain(client);
        }
        Ok(())
    }

    /// Polls a client until it waits, performing its sends.
    fn drain(&mut self, client: usize) {
        let now = self.now;
        loop {
            match self.clients[client].machine.poll(now) {
                Action::Send(send) => {
                    let reply = self.answer(client, &send.request);
                    if let Some(trace) = &mut self.trace {
                        trace.push(trace_line(now, client, &send.request, &reply));
                    }
                    let at = now + reply.delay();
                    self.schedule(
                        at,
                        Event::Deliver {
                            client,
                            attempt: send.attempt,
                            reply,
                        },
                    );
                }
                Action::Done(output) => self.clients[client].outputs.push((now, output)),
                Action::WaitUntil { at, .. } => {
                    let at = at.max(now);
                    if self.clients[client].wake != Some(at) {
                        self.clients[client].wake = Some(at);
                        self.schedule(at, Event::Wake { client, at });
                    }
                    return;
                }
                // The latest answer supersedes any wake asked for before.
                Action::WaitForResponse => {
                    self.clients[client].wake = None;
                    return;
                }
                Action::Idle => {
                    self.clients[client].wake = None;
                    self.clients[client].finished_at.get_or_insert(now);
                    return;
                }
                _ => return,
            }
        }
    }

    fn answer(&mut self, client: usize, request: &Request<Bytes>) -> Reply {
        if let Some(intercept) = &mut self.intercept
            && let Some(reply) = intercept(&mut self.server, self.now, request)
        {
            return reply;
        }
        self.server
            .handle_request(self.now, ClientId(client as u64), request.clone())
    }

    fn schedule(&mut self, at: Timestamp, event: Event) {
        self.counter += 1;
        let index = match self.free.pop() {
            Some(index) => {
                self.events[index] = Some(event);
                index
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        self.queue.push(Reverse((at, self.counter, index)));
    }

    /// The server, to inspect the final state.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The server, to change it between runs.
    pub fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }

    /// What client `client` produced.
    pub fn outputs(&self, client: usize) -> &Outputs<O> {
        &self.clients[client].outputs
    }

    /// Takes what client `client` produced.
    pub fn take_outputs(&mut self, client: usize) -> Outputs<O> {
        std::mem::take(&mut self.clients[client].outputs)
    }

    /// When client `client` went idle.
    pub fn finished_at(&self, client: usize) -> Option<Timestamp> {
        self.clients[client].finished_at
    }

    /// The trace, if recorded.
    pub fn trace(&self) -> &[TraceLine] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// The trace as text, one request a line, for snapshots.
    pub fn trace_text(&self) -> String {
        let mut text = String::new();
        for line in self.trace() {
            let _ = write!(
                text,
                "{} c{} {} -> {}",
                line.at, line.client, line.request, line.answer
            );
            if let Some(body) = &line.body {
                let _ = write!(text, "\n    {body}");
            }
            text.push('\n');
        }
        text
    }

    /// Virtual time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}

fn trace_line(at: Timestamp, client: usize, request: &Request<Bytes>, reply: &Reply) -> TraceLine {
    let uri = request.uri();
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.to_string());
    let body = (!request.body().is_empty()).then(|| {
        let text = String::from_utf8_lossy(request.body());
        // Token requests carry nothing worth a snapshot but the grant type.
        text.into_owned()
    });
    let answer = match reply.response() {
        Some(response) => status_text(response),
        None => "reset".to_owned(),
    };
    TraceLine {
        at,
        client,
        request: format!("{} {target}", request.method()),
        body,
        answer,
    }
}

fn status_text(response: &Response<Bytes>) -> String {
    let status = response.status().as_u16();
    match response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
    {
        Some(wait) => format!("{status} (retry-after {wait})"),
        None => status.to_string(),
    }
}
