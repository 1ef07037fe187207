//! The driving loop: the machine and every attempt in flight on one task.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use async_io::Timer;
use bytes::Bytes;
use futures_util::future::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use gcbulk_core::sched::{AttemptId, TransportError, WaitReason};
use gcbulk_core::transport::admit;
use gcbulk_core::{Action, Machine, Send, Timestamp};
use http::{Method, Response};
use tracing::Instrument as _;

use crate::client::{HttpOptions, HttpTransport};
use crate::clock::Clock;
use crate::transport::Transport;
use crate::{DriverError, StopSignal};

/// The refusal handed to the machine for a send it asks for after a stop was requested.
const STOPPED: &str = "run stopped";

/// The header Genesys Cloud puts on every answer; support asks for it.
const CORRELATION_ID: &str = "inin-correlation-id";

/// How a [`Driver`] behaves. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Allow plain `http://` to loopback (127.0.0.0/8, `::1`, `localhost`), for the emulator.
    /// Plain HTTP anywhere else is always refused, whatever the transport. Default: true.
    pub allow_loopback_http: bool,
    /// Raised (by a Ctrl-C handler, say) to ask a run to stop: no new attempt is sent, the ones
    /// in flight are awaited and reported, then the run returns. Default: none.
    pub stop: Option<StopSignal>,
    /// The settings of the shipped transport that [`Driver::new`] builds; a transport given to
    /// [`Driver::with_transport`] has settings of its own.
    pub http: HttpOptions,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            allow_loopback_http: true,
            stop: None,
            http: HttpOptions::default(),
        }
    }
}

/// What a run reports to its caller while it goes on.
///
/// [`Driver::run`] takes a closure for the outputs alone; implement this to see waits (for a
/// progress bar that shows throttling) or to act on a stop.
pub trait Observer<M: Machine> {
    /// A piece of work has ended. The machine is lent so more work can be given to it.
    fn output(&mut self, machine: &mut M, output: M::Output);

    /// The machine has nothing to send before `until`, because of `reason`. Called once per
    /// distinct wait, not on every wake-up.
    fn wait(&mut self, now: Timestamp, until: Timestamp, reason: WaitReason) {
        let _ = (now, until, reason);
    }

    /// A stop was requested; nothing new will be sent. Cancel queued work here (the scheduler's
    /// `cancel_queued`, the workflow's `stop`) so that it is reported as cancelled instead of
    /// refused or left pending.
    fn stop(&mut self, machine: &mut M) {
        let _ = machine;
    }
}

/// Adapts a closure to [`Observer`] for [`Driver::run`].
struct OnOutput<F>(F);

impl<M: Machine, F: FnMut(&mut M, M::Output)> Observer<M> for OnOutput<F> {
    fn output(&mut self, machine: &mut M, output: M::Output) {
        (self.0)(machine, output);
    }
}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Attempts handed to the transport.
    pub sent: u64,
    /// Answers received, whatever their status.
    pub responses: u64,
    /// Attempts that failed in transport after they were handed to it.
    pub transport_errors: u64,
    /// Attempts refused before any connection (plain HTTP to a remote host, or after a stop).
    pub refused: u64,
    /// Outputs reported.
    pub outputs: u64,
    /// Distinct waits the machine asked for.
    pub waits: u64,
    /// The most attempts that were in flight at once.
    pub peak_in_flight: usize,
    /// True when the run ended because a stop was requested.
    pub stopped: bool,
    /// Wall-clock time the run took.
    pub elapsed: Duration,
}

/// An async driver for any [`Machine`], over a [`Transport`]. See the crate docs.
#[derive(Debug)]
pub struct Driver<T = HttpTransport> {
    transport: T,
    options: DriverOptions,
    clock: Clock,
}

impl Driver<HttpTransport> {
    /// A driver over the shipped transport, built from [`DriverOptions::http`]. Its clock starts
    /// now: every [`Timestamp`] it gives a machine is the time since this call.
    pub fn new(options: DriverOptions) -> Result<Self, DriverError> {
        let transport = HttpTransport::new(options.http.clone())?;
        Ok(Self::with_transport(transport, options))
    }
}

impl<T: Transport> Driver<T> {
    /// A driver over an application's own `transport`; [`DriverOptions::http`] is not used.
    pub fn with_transport(transport: T, options: DriverOptions) -> Self {
        Self {
            transport,
            options,
            clock: Clock::start(),
        }
    }

    /// The options it was built with.
    pub fn options(&self) -> &DriverOptions {
        &self.options
    }

    /// The transport it sends through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The time now on the driver's clock: what to pass a machine when giving it work.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs `machine` until it is idle, reporting every output to `on_output`.
    ///
    /// Returns when the machine is idle, or when a stop was requested and nothing is in flight
    /// any more.
    pub async fn run<M, F>(&self, machine: &mut M, on_output: F) -> Result<RunStats, DriverError>
    where
        M: Machine,
        F: FnMut(&mut M, M::Output),
    {
        self.run_with(machine, &mut OnOutput(on_output)).await
    }

    /// Runs `machine` until it is idle, reporting to `observer`.
    ///
    /// On an error the attempts still in flight are dropped, which closes their connections.
    pub async fn run_with<M, O>(
        &self,
        machine: &mut M,
        observer: &mut O,
    ) -> Result<RunStats, DriverError>
    where
        M: Machine,
        O: Observer<M>,
    {
        let span = tracing::info_span!("run");
        async {
            let started = self.clock.now();
            let mut run = Run::new(self);
            run.drive(machine, observer).await?;

            let mut stats = run.stats;
            stats.elapsed = self.clock.now().saturating_since(started);
            tracing::debug!(
                sent = stats.sent,
                responses = stats.responses,
                transport_errors = stats.transport_errors,
                refused = stats.refused,
                outputs = stats.outputs,
                peak_in_flight = stats.peak_in_flight,
                stopped = stats.stopped,
                elapsed_ms = stats.elapsed.as_millis() as u64,
                "run ended"
            );
            Ok(stats)
        }
        .instrument(span)
        .await
    }
}

/// One attempt's exchange, boxed so that attempts of every transport share one collection.
type InFlight<'a> = Pin<Box<dyn Future<Output = Completion> + std::marker::Send + 'a>>;

/// The result of one attempt, with what its log lines need.
#[derive(Debug)]
struct Completion {
    attempt: AttemptId,
    method: Method,
    path: String,
    result: Result<Response<Bytes>, TransportError>,
}

/// What the machine waits for once it has nothing more to do at once.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    Until(Timestamp, WaitReason),
    Response,
    Idle,
}

/// What ended a wait.
#[derive(Debug)]
enum Event {
    Completed(Completion),
    Timer,
    Stop,
}

/// The state of one run.
struct Run<'a, T> {
    driver: &'a Driver<T>,
    in_flight: FuturesUnordered<InFlight<'a>>,
    /// One timer for the run, moved to each new wake-up rather than made afresh.
    timer: Timer,
    timer_at: Option<Timestamp>,
    stopping: bool,
    last_wait: Option<(Timestamp, WaitReason)>,
    stats: RunStats,
}

impl<'a, T: Transport> Run<'a, T> {
    fn new(driver: &'a Driver<T>) -> Self {
        Self {
            driver,
            in_flight: FuturesUnordered::new(),
            timer: Timer::never(),
            timer_at: None,
            stopping: false,
            last_wait: None,
            stats: RunStats::default(),
        }
    }

    /// The loop: drain the machine, wait for what it waits for, feed what came, again.
    async fn drive<M: Machine, O: Observer<M>>(
        &mut self,
        machine: &mut M,
        observer: &mut O,
    ) -> Result<(), DriverError> {
        loop {
            let waiting = self.drain(machine, observer)?;
            let quiet = self.in_flight.is_empty();
            let wake_at = match waiting {
                // While stopping, timers are not honoured: what they would start is not wanted.
                _ if quiet && (self.stopping || matches!(waiting, Waiting::Idle)) => return Ok(()),
                Waiting::Until(at, reason) if !self.stopping => {
                    self.note_wait(observer, at, reason);
                    let now = self.driver.clock.now();
                    if at <= now {
                        machine.handle_timeout(now);
                        continue;
                    }
                    Some(at)
                }
                _ if quiet => return Err(DriverError::Stalled),
                _ => None,
            };

            match self.next_event(wake_at).await {
                Event::Completed(completion) => {
                    self.feed(machine, completion)?;
                    // Answers that came in meanwhile are fed before the machine is drained, so
                    // one drain serves them all.
                    while let Some(Some(completion)) = self.in_flight.next().now_or_never() {
                        self.feed(machine, completion)?;
                    }
                }
                Event::Timer => machine.handle_timeout(self.driver.clock.now()),
                // The next drain sees the signal and stops sending.
                Event::Stop => {}
            }
        }
    }

    /// Polls the machine until it waits, starting sends and reporting outputs.
    fn drain<M: Machine, O: Observer<M>>(
        &mut self,
        machine: &mut M,
        observer: &mut O,
    ) -> Result<Waiting, DriverError> {
        loop {
            if !self.stopping && self.stop_requested() {
                self.stopping = true;
                self.stats.stopped = true;
                tracing::info!(
                    in_flight = self.in_flight.len(),
                    "stop requested: no new attempt is sent"
                );
                observer.stop(machine);
            }

            let now = self.driver.clock.now();
            match machine.poll(now) {
                Action::Send(send) => self.dispatch(machine, now, send)?,
                Action::Done(output) => {
                    self.stats.outputs += 1;
                    observer.output(machine, output);
                }
                Action::WaitUntil { at, reason } => return Ok(Waiting::Until(at, reason)),
                Action::WaitForResponse => return Ok(Waiting::Response),
                Action::Idle => return Ok(Waiting::Idle),
                _ => return Err(DriverError::UnknownAction),
            }
        }
    }

    /// Starts a send, or refuses it at once without touching the network.
    fn dispatch<M: Machine>(
        &mut self,
        machine: &mut M,
        now: Timestamp,
        send: Send,
    ) -> Result<(), DriverError> {
        let admitted = if self.stopping {
            Err(TransportError::Refused(STOPPED.to_owned()))
        } else {
            let allow_http = self.driver.options.allow_loopback_http;
            admit(send.request.uri(), allow_http)
        };
        if let Err(refusal) = admitted {
            tracing::debug!(attempt = %send.attempt, error = %refusal, "attempt refused");
            self.stats.refused += 1;
            machine.handle_transport_error(now, send.attempt, refusal)?;
            return Ok(());
        }

        let Send {
            attempt,
            request,
            timeout,
        } = send;
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let exchange = AssertUnwindSafe(self.driver.transport.send(request, timeout));
        let completion = exchange.catch_unwind().map(move |performed| {
            // A panic must still answer the attempt, or the run would wait for it forever.
            let result = performed.unwrap_or_else(|_| {
                tracing::error!(%attempt, "the transport panicked during an attempt");
                Err(TransportError::Protocol)
            });
            Completion {
                attempt,
                method,
                path,
                result,
            }
        });
        self.in_flight.push(Box::pin(completion));
        self.stats.sent += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight.len());
        Ok(())
    }

    /// Tells the observer about a wait it has not heard of yet.
    fn note_wait<M: Machine, O: Observer<M>>(
        &mut self,
        observer: &mut O,
        at: Timestamp,
        reason: WaitReason,
    ) {
        if self.last_wait == Some((at, reason)) {
            return;
        }
        self.last_wait = Some((at, reason));
        self.stats.waits += 1;
        tracing::trace!(until = %at, reason = reason.as_str(), "waiting");
        observer.wait(self.driver.clock.now(), at, reason);
    }

    /// Waits for whichever comes first: an answer, the wake-up at `wake_at`, or a stop.
    async fn next_event(&mut self, wake_at: Option<Timestamp>) -> Event {
        let timer_armed = match wake_at {
            Some(at) => {
                if self.timer_at != Some(at) {
                    self.timer_at = Some(at);
                    match self.driver.clock.instant_of(at) {
                        Some(instant) => self.timer.set_at(instant),
                        None => self.timer = Timer::never(),
                    }
                }
                true
            }
            None => false,
        };
        let stop = if self.stopping {
            None
        } else {
            self.driver.options.stop.as_ref()
        };

        let in_flight = &mut self.in_flight;
        let timer = &mut self.timer;
        let timer_at = &mut self.timer_at;
        poll_fn(|cx| {
            if let Poll::Ready(Some(completion)) = in_flight.poll_next_unpin(cx) {
                return Poll::Ready(Event::Completed(completion));
            }
            if timer_armed && timer.poll_unpin(cx).is_ready() {
                // A fired timer must be set again before it is awaited again.
                *timer_at = None;
                return Poll::Ready(Event::Timer);
            }
            if let Some(stop) = stop
                && stop.poll_raised(cx).is_ready()
            {
                return Poll::Ready(Event::Stop);
            }
            Poll::Pending
        })
        .await
    }

    /// Hands one result to the machine.
    fn feed<M: Machine>(
        &mut self,
        machine: &mut M,
        completion: Completion,
    ) -> Result<(), DriverError> {
        let Completion {
            attempt,
            method,
            path,
            result,
        } = completion;
        let now = self.driver.clock.now();
        match result {
            Ok(response) => {
                log_status(attempt, &method, &path, &response);
                self.stats.responses += 1;
                machine.handle_response(now, attempt, response)?;
            }
            Err(error) => {
                tracing::debug!(%attempt, %method, path, %error, "attempt failed in transport");
                self.stats.transport_errors += 1;
                machine.handle_transport_error(now, attempt, error)?;
            }
        }
        Ok(())
    }

    fn stop_requested(&self) -> bool {
        self.driver
            .options
            .stop
            .as_ref()
            .is_some_and(StopSignal::is_raised)
    }
}

/// Logs an answer that is not a success. Request headers are never logged: they carry the token.
fn log_status(attempt: AttemptId, method: &Method, path: &str, response: &Response<Bytes>) {
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
