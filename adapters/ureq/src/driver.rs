//! The driving loop: the machine on the caller's thread, HTTP calls on a pool of workers.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use gcbulk_core::sched::{TransportError, WaitReason};
use gcbulk_core::transport::{Target, admit};
use gcbulk_core::{Action, Machine, Send, Timestamp};

use crate::DriverError;
use crate::clock::Clock;
use crate::transport::{Completion, Transport};

/// How often a blocked run looks at the stop flag, when there is one.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// The refusal handed to the machine for a send it asks for after the stop flag was raised.
const STOPPED: &str = "run stopped";

/// How a [`Driver`] behaves. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Worker threads, hence the most HTTP calls at once; match the machine's own limit on
    /// attempts in flight (the scheduler's `max_in_flight`). Default: 8.
    pub workers: usize,
    /// The `User-Agent` of requests that do not set one. Default: `gcbulk/<version>`.
    pub user_agent: String,
    /// The largest response body accepted; a longer one fails the attempt as
    /// [`TransportError::Protocol`]. Default: 16 MiB.
    pub max_body_bytes: u64,
    /// Allow plain `http://` to loopback (127.0.0.0/8, `::1`, `localhost`), for the emulator.
    /// Plain HTTP anywhere else is always refused. Default: true.
    pub allow_loopback_http: bool,
    /// Raised (by a Ctrl-C handler, say) to ask a run to stop: no new attempt is sent, the ones
    /// in flight are awaited and reported, then the run returns. Default: none.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            workers: 8,
            user_agent: concat!("gcbulk/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_body_bytes: 16 * 1024 * 1024,
            allow_loopback_http: true,
            stop: None,
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

    /// The stop flag was raised; nothing new will be sent. Cancel queued work here (the
    /// scheduler's `cancel_queued`) so that it is reported as cancelled instead of refused or
    /// left pending.
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
    /// Attempts handed to the workers.
    pub sent: u64,
    /// Answers received, whatever their status.
    pub responses: u64,
    /// Attempts that failed in transport after they were handed to a worker.
    pub transport_errors: u64,
    /// Attempts refused before any connection (plain HTTP to a remote host, or after a stop).
    pub refused: u64,
    /// Outputs reported.
    pub outputs: u64,
    /// Distinct waits the machine asked for.
    pub waits: u64,
    /// True when the run ended because the stop flag was raised.
    pub stopped: bool,
    /// Wall-clock time the run took.
    pub elapsed: Duration,
}

/// A blocking driver for any [`Machine`]. See the crate docs.
#[derive(Debug)]
pub struct Driver {
    transport: Transport,
    options: DriverOptions,
    clock: Clock,
}

impl Driver {
    /// A driver with `options`. Its clock starts now: every [`Timestamp`] it gives a machine is
    /// the time since this call, so one machine may be driven through several runs.
    pub fn new(options: DriverOptions) -> Result<Self, DriverError> {
        if options.workers == 0 {
            return Err(DriverError::NoWorkers);
        }
        if http::HeaderValue::from_str(&options.user_agent).is_err() {
            return Err(DriverError::UserAgent);
        }
        Ok(Self {
            transport: Transport::new(&options),
            options,
            clock: Clock::start(),
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> &DriverOptions {
        &self.options
    }

    /// The time now on the driver's clock: what to pass a machine when giving it work.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs `machine` until it is idle, reporting every output to `on_output`.
    ///
    /// Returns when the machine is idle, or when the stop flag was raised and nothing is in
    /// flight any more.
    pub fn run<M, F>(&self, machine: &mut M, on_output: F) -> Result<RunStats, DriverError>
    where
        M: Machine,
        F: FnMut(&mut M, M::Output),
    {
        self.run_with(machine, &mut OnOutput(on_output))
    }

    /// Runs `machine` until it is idle, reporting to `observer`.
    ///
    /// On an error the run waits for the workers' calls in progress (each bounded by its
    /// timeout) before it returns; attempts not yet started are dropped.
    pub fn run_with<M, O>(&self, machine: &mut M, observer: &mut O) -> Result<RunStats, DriverError>
    where
        M: Machine,
        O: Observer<M>,
    {
        let span = tracing::info_span!("run", workers = self.options.workers);
        let _entered = span.enter();
        let started = self.clock.now();

        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Mutex::new(job_rx);
        let (result_tx, result_rx) = mpsc::channel();
        let abandon = AtomicBool::new(false);

        let outcome = thread::scope(|scope| {
            // Owning the job sender, the run closes the queue when it ends: the workers then exit.
            let mut run = Run::new(self, job_tx, result_rx);
            for index in 0..self.options.workers {
                let worker = Worker {
                    transport: &self.transport,
                    jobs: &job_rx,
                    results: result_tx.clone(),
                    abandon: &abandon,
                };
                let span = &span;
                let spawned = thread::Builder::new()
                    .name(format!("gcbulk-http-{index}"))
                    .spawn_scoped(scope, move || span.in_scope(|| worker.work()));
                if let Err(error) = spawned {
                    return Err(DriverError::Spawn(error));
                }
            }
            drop(result_tx);

            let outcome = run.drive(machine, observer);
            // After a failure, attempts still queued must not go out behind the caller's back.
            abandon.store(true, Ordering::Relaxed);
            outcome.map(|()| run.stats)
        });

        let mut stats = outcome?;
        stats.elapsed = self.clock.now().saturating_since(started);
        tracing::debug!(
            sent = stats.sent,
            responses = stats.responses,
            transport_errors = stats.transport_errors,
            refused = stats.refused,
            outputs = stats.outputs,
            stopped = stats.stopped,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            "run ended"
        );
        Ok(stats)
    }

    fn stop_requested(&self) -> bool {
        self.options
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::Relaxed))
    }
}

/// An attempt on its way to a worker.
#[derive(Debug)]
struct Job {
    send: Send,
    target: Target,
}

/// One worker thread's share of the pool.
struct Worker<'a> {
    transport: &'a Transport,
    jobs: &'a Mutex<Receiver<Job>>,
    results: Sender<Completion>,
    abandon: &'a AtomicBool,
}

impl Worker<'_> {
    /// Performs jobs until the queue closes or nobody listens for results.
    fn work(self) {
        loop {
            let job = match self.jobs.lock() {
                Ok(jobs) => jobs.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else {
                return;
            };
            if self.abandon.load(Ordering::Relaxed) {
                continue;
            }

            let attempt = job.send.attempt;
            let performed = panic::catch_unwind(AssertUnwindSafe(|| {
                self.transport.perform(job.send, job.target)
            }));
            // A panic must still answer the attempt, or the run would wait for it forever.
            let completion = performed.unwrap_or_else(|_| {
                tracing::error!(%attempt, "the http client panicked during an attempt");
                Completion {
                    attempt,
                    result: Err(TransportError::Protocol),
                }
            });
            if self.results.send(completion).is_err() {
                return;
            }
        }
    }
}

/// What the machine waits for once it has nothing more to do at once.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    Until(Timestamp, WaitReason),
    Response,
    Idle,
}

/// The machine thread's side of one run.
struct Run<'a> {
    driver: &'a Driver,
    jobs: Sender<Job>,
    results: Receiver<Completion>,
    in_flight: usize,
    stopping: bool,
    last_wait: Option<(Timestamp, WaitReason)>,
    stats: RunStats,
}

impl<'a> Run<'a> {
    fn new(driver: &'a Driver, jobs: Sender<Job>, results: Receiver<Completion>) -> Self {
        Self {
            driver,
            jobs,
            results,
            in_flight: 0,
            stopping: false,
            last_wait: None,
            stats: RunStats::default(),
        }
    }

    /// The loop: feed what has arrived, drain the machine, then wait for what it waits for.
    fn drive<M: Machine, O: Observer<M>>(
        &mut self,
        machine: &mut M,
        observer: &mut O,
    ) -> Result<(), DriverError> {
        loop {
            while let Ok(completion) = self.results.try_recv() {
                self.feed(machine, completion)?;
            }

            let waiting = self.drain(machine, observer)?;
            let quiet = self.in_flight == 0;
            match waiting {
                // While stopping, timers are not honoured: what they would start is not wanted.
                _ if quiet && (self.stopping || matches!(waiting, Waiting::Idle)) => return Ok(()),
                Waiting::Until(at, reason) if !self.stopping => {
                    self.wait_until(machine, observer, at, reason)?;
                }
                _ if quiet => return Err(DriverError::Stalled),
                _ => {
                    if let Some(completion) = self.next_result(None)? {
                        self.feed(machine, completion)?;
                    }
                }
            }
        }
    }

    /// Polls the machine until it waits, performing sends and reporting outputs.
    fn drain<M: Machine, O: Observer<M>>(
        &mut self,
        machine: &mut M,
        observer: &mut O,
    ) -> Result<Waiting, DriverError> {
        loop {
            if !self.stopping && self.driver.stop_requested() {
                self.stopping = true;
                self.stats.stopped = true;
                tracing::info!(
                    in_flight = self.in_flight,
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

    /// Hands a send to the workers, or refuses it at once without touching the network.
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

        match admitted {
            Ok(target) => {
                self.jobs
                    .send(Job { send, target })
                    .map_err(|_| DriverError::WorkersLost)?;
                self.in_flight += 1;
                self.stats.sent += 1;
            }
            Err(refusal) => {
                tracing::debug!(attempt = %send.attempt, error = %refusal, "attempt refused");
                self.stats.refused += 1;
                machine.handle_transport_error(now, send.attempt, refusal)?;
            }
        }
        Ok(())
    }

    /// Waits for a result or until `at`, whichever comes first.
    fn wait_until<M: Machine, O: Observer<M>>(
        &mut self,
        machine: &mut M,
        observer: &mut O,
        at: Timestamp,
        reason: WaitReason,
    ) -> Result<(), DriverError> {
        if self.last_wait != Some((at, reason)) {
            self.last_wait = Some((at, reason));
            self.stats.waits += 1;
            let now = self.driver.clock.now();
            tracing::trace!(until = %at, reason = reason.as_str(), "waiting");
            observer.wait(now, at, reason);
        }

        let left = at.saturating_since(self.driver.clock.now());
        if !left.is_zero() {
            match self.next_result(Some(left))? {
                Some(completion) => return self.feed(machine, completion),
                // Woken early to look at the stop flag: the wait goes on.
                None if self.driver.clock.now() < at => return Ok(()),
                None => {}
            }
        }
        machine.handle_timeout(self.driver.clock.now());
        Ok(())
    }

    /// Blocks for the next result, at most `limit` (and at most [`STOP_CHECK`] when a stop flag
    /// must be watched). `None` when the time ran out first.
    fn next_result(&mut self, limit: Option<Duration>) -> Result<Option<Completion>, DriverError> {
        let limit = match (limit, self.driver.options.stop.is_some()) {
            (Some(limit), true) => Some(limit.min(STOP_CHECK)),
            (None, true) => Some(STOP_CHECK),
            (limit, false) => limit,
        };
        let Some(limit) = limit else {
            return self
                .results
                .recv()
                .map(Some)
                .map_err(|_| DriverError::WorkersLost);
        };
        match self.results.recv_timeout(limit) {
            Ok(completion) => Ok(Some(completion)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(DriverError::WorkersLost),
        }
    }

    /// Hands one result to the machine.
    fn feed<M: Machine>(
        &mut self,
        machine: &mut M,
        completion: Completion,
    ) -> Result<(), DriverError> {
        self.in_flight -= 1;
        let now = self.driver.clock.now();
        match completion.result {
            Ok(response) => {
                self.stats.responses += 1;
                machine.handle_response(now, completion.attempt, response)?;
            }
            Err(error) => {
                self.stats.transport_errors += 1;
                machine.handle_transport_error(now, completion.attempt, error)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let no_workers = DriverOptions {
            workers: 0,
            ..DriverOptions::default()
        };
        assert!(matches!(
            Driver::new(no_workers),
            Err(DriverError::NoWorkers)
        ));

        let bad_agent = DriverOptions {
            user_agent: "gcbulk\n".to_owned(),
            ..DriverOptions::default()
        };
        assert!(matches!(
            Driver::new(bad_agent),
            Err(DriverError::UserAgent)
        ));
    }

    #[test]
    fn the_default_user_agent_names_the_product() {
        let options = DriverOptions::default();
        assert!(options.user_agent.starts_with("gcbulk/"));
        assert_eq!(options.max_body_bytes, 16 << 20);
    }
}
