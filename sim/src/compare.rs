//! Every strategy on the same scenario, side by side: makespan against the lower bound, requests,
//! 429s, failed rows, time per item and fairness across clients.
//!
//! Each strategy gets a fresh server built from the same scenario and seed. A run ends when every
//! client is idle. A row a run gives up on is not done, so a client re-runs the rows it did not
//! settle, as an operator would: once the last `Retry-After` it was given has passed, and not at
//! all when that wait was longer than [`LONG_WAIT`] (a daily limit: come back tomorrow). At most
//! [`MAX_PASSES`] passes are made, and none starts after the scenario's horizon. Rows still
//! unsettled at the end are the failed items: a makespan with failed items is the time a strategy
//! took to stop, not to finish the job.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::change::ChangeRow;
use gcbulk_core::genesys::{Credentials, RowOutcome, RowReport, Secret, WorkflowConfig};
use gcbulk_core::rng::Rng;
use gcbulk_core::sched::{
    AttemptId, HandleError, RetryAfter, TransportError, WaitReason, retry_after,
};
use gcbulk_core::{Action, Machine, Timestamp};
use http::{Method, Response};
use serde::{Deserialize, Serialize};

use crate::baseline::{Setup, Strategy};
use crate::drive::Harness;
use crate::model::OAuthClient;
use crate::plot::{self, Timeline};
use crate::scenario::{self, Replay, Scenario, ScenarioError};

/// Most passes a client makes over its rows.
pub const MAX_PASSES: u32 = 5;

/// A `Retry-After` longer than this ends the passes (the Genesys SDKs' give-up threshold).
pub const LONG_WAIT: Duration = Duration::from_secs(180);

/// Events a run may take before it is called a livelock.
const MAX_STEPS: u64 = 50_000_000;

/// The API base the clients are given; the model routes by path only.
const API: &str = "https://api.mypurecloud.com";
const LOGIN: &str = "https://login.mypurecloud.com";

/// Every strategy's result on one scenario and seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The scenario's name.
    pub scenario: String,
    /// The seed every run used.
    pub seed: u64,
    /// The least time in which the server admits what the job needs, in seconds.
    pub lower_bound_s: f64,
    /// One row per strategy, gcbulk first.
    pub strategies: Vec<StrategyResult>,
}

/// One strategy's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    /// The strategy (`gcbulk` for gcbulk's own).
    pub name: String,
    /// When the last client went idle, in seconds of virtual time.
    pub makespan_s: f64,
    /// Makespan over the lower bound (1 when the bound is zero).
    pub ratio: f64,
    /// Requests the clients sent, tokens included.
    pub requests: u64,
    /// Of those, refused with a 429.
    pub throttled: u64,
    /// `throttled / requests`.
    pub throttled_share: f64,
    /// Rows not settled at the end (given up, failed, or stopped at the horizon).
    pub failed_items: u64,
    /// Rows given up or failed in the first pass.
    pub first_pass_failed: u64,
    /// The most passes a client made.
    pub passes: u32,
    /// Median time from an item's first write request (or the read before it) to its last
    /// answer, in seconds.
    pub p50_item_s: f64,
    /// The 99th percentile of that time.
    pub p99_item_s: f64,
    /// Jain's index over the clients' throughputs (rows settled per second): 1 is even.
    pub fairness: f64,
}

/// How [`compare_cli`] writes its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A plain-text table.
    #[default]
    Table,
    /// The [`Comparison`] as JSON.
    Json,
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            _ => Err(Error::Format(text.to_owned())),
        }
    }
}

/// What stops a comparison.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario could not be found or read.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A run kept going without finishing.
    #[error("{strategy}: {source}")]
    Livelock {
        /// The strategy that did not finish.
        strategy: String,
        /// Where it was.
        source: crate::drive::Livelock,
    },
    /// An output format other than `table` or `json`.
    #[error("unknown format {0:?}: expected table or json")]
    Format(String),
    /// The result could not be written as JSON.
    #[error("cannot write the comparison: {0}")]
    Json(#[from] serde_json::Error),
    /// The plot could not be drawn.
    #[error("cannot draw the plot: {0}")]
    Plot(#[from] plot::PlotError),
}

/// `gcbulk sim compare`: the named preset (or scenario file) compared, written as asked.
pub fn compare_cli(scenario: &str, seed: u64, format: Format) -> Result<String, Error> {
    Ok(compare_and_plot(scenario, seed, format, false)?.0)
}

/// As [`compare_cli`], and with `plot` also the comparison drawn as an SVG picture
/// ([`plot::svg`]): the text, then the picture.
pub fn compare_and_plot(
    scenario: &str,
    seed: u64,
    format: Format,
    plot: bool,
) -> Result<(String, Option<String>), Error> {
    let scenario = find_scenario(scenario)?;
    let (comparison, timelines) = run_recorded(&scenario, seed, &Strategy::ALL, plot)?;
    let text = match format {
        Format::Table => comparison.table(),
        Format::Json => serde_json::to_string_pretty(&comparison)? + "\n",
    };
    let picture = match plot {
        true => Some(plot::svg(&scenario, &comparison, &timelines)?),
        false => None,
    };
    Ok((text, picture))
}

/// A preset by name, a scenario file, or a bare recorded trace (`[{"at_s", "status",
/// "headers"}]`, as `gcbulk update --trace` writes it), which is played back over `steady`.
pub fn find_scenario(name_or_path: &str) -> Result<Scenario, Error> {
    let error = match scenario::find(name_or_path) {
        Ok(scenario) => return Ok(scenario),
        Err(error) if error.is_parse() => error,
        Err(error) => return Err(error.into()),
    };
    let path = std::path::Path::new(name_or_path);
    let Ok(text) = std::fs::read_to_string(path) else {
        return Err(error.into());
    };
    let Ok(replay) = Replay::from_json(&text) else {
        return Err(error.into());
    };
    let mut scenario = scenario::steady();
    scenario.name = path.file_stem().map_or_else(
        || "trace".to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    scenario.description = format!(
        "steady, with the {} answers recorded in {} played back",
        replay.entries.len(),
        path.display()
    );
    scenario.replay = Some(replay);
    Ok(scenario)
}

/// `gcbulk sim list`: the presets, one a line, with what each shows.
pub fn list_cli() -> String {
    let mut text = String::new();
    for (name, description) in scenario::names() {
        let _ = writeln!(text, "{name:<15} {description}");
    }
    text
}

/// Runs every strategy on `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Comparison, Error> {
    run_strategies(scenario, seed, &Strategy::ALL)
}

/// Runs the given strategies on `scenario` with `seed`, spread over the machine's cores.
pub fn run_strategies(
    scenario: &Scenario,
    seed: u64,
    strategies: &[Strategy],
) -> Result<Comparison, Error> {
    Ok(run_recorded(scenario, seed, strategies, false)?.0)
}

/// As [`run_strategies`], with each strategy's [`Timeline`] when `record` is set (else the
/// timelines are empty), in the order of `strategies`.
pub fn run_recorded(
    scenario: &Scenario,
    seed: u64,
    strategies: &[Strategy],
    record: bool,
) -> Result<(Comparison, Vec<Timeline>), Error> {
    scenario.validate()?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(strategies.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<(StrategyResult, Timeline), Error>>> =
        (0..strategies.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);

    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&strategy) = strategies.get(index) else {
                        break;
                    };
                    let result = simulate_with(scenario, strategy, seed, false, record)
                        .map(|outcome| (outcome.result(strategy), outcome.timeline));
                    if let Ok(mut slots) = slots.lock() {
                        slots[index] = Some(result);
                    }
                }
            });
        }
    });

    let lower_bound_s = scenario.lower_bound_secs();
    let mut rows = Vec::new();
    let mut timelines = Vec::new();
    for (result, strategy) in results.into_iter().zip(strategies) {
        let (mut row, timeline) = match result {
            Some(result) => result?,
            None => unreachable!("every strategy was run: {strategy}"),
        };
        row.ratio = if lower_bound_s > 0.0 {
            row.makespan_s / lower_bound_s
        } else {
            1.0
        };
        rows.push(row);
        timelines.push(timeline);
    }
    let comparison = Comparison {
        scenario: scenario.name.clone(),
        seed,
        lower_bound_s,
        strategies: rows,
    };
    Ok((comparison, timelines))
}

/// Runs one strategy on `scenario`.
pub fn run_one(
    scenario: &Scenario,
    strategy: Strategy,
    seed: u64,
) -> Result<StrategyResult, Error> {
    Ok(simulate(scenario, strategy, seed)?.result(strategy))
}

/// A finished run, for the comparison and for tests that look closer.
#[derive(Debug)]
pub struct Outcome {
    /// The harness after the run: the server's final state and each client's reports.
    pub harness: Harness<RowReport>,
    /// Each item's first write request and last answer, all clients together.
    pub items: Vec<(Timestamp, Timestamp)>,
    /// Each client's passes.
    pub passes: Vec<u32>,
    /// Each client's rows that the first pass did not settle.
    pub first_pass_failed: Vec<u64>,
    /// Requests the clients sent, all together.
    pub requests: u64,
    /// 429s they received.
    pub throttled: u64,
    /// What was sent and answered when, all clients together; empty unless asked for.
    pub timeline: Timeline,
}

/// Runs one strategy on `scenario`, keeping everything for inspection.
pub fn simulate(scenario: &Scenario, strategy: Strategy, seed: u64) -> Result<Outcome, Error> {
    simulate_with(scenario, strategy, seed, false, false)
}

/// As [`simulate`], recording every request and answer in the harness's trace.
pub fn simulate_traced(
    scenario: &Scenario,
    strategy: Strategy,
    seed: u64,
) -> Result<Outcome, Error> {
    simulate_with(scenario, strategy, seed, true, false)
}

/// As [`simulate`], keeping the [`Timeline`] a plot draws.
pub fn simulate_timeline(
    scenario: &Scenario,
    strategy: Strategy,
    seed: u64,
) -> Result<Outcome, Error> {
    simulate_with(scenario, strategy, seed, false, true)
}

fn simulate_with(
    scenario: &Scenario,
    strategy: Strategy,
    seed: u64,
    trace: bool,
    timeline: bool,
) -> Result<Outcome, Error> {
    let mut rng = Rng::from_seed(seed ^ strategy_salt(strategy));
    let mut harness = Harness::new(scenario.server(seed));
    if trace {
        harness.record_trace();
    }
    if let Some(intercept) = scenario.intercept() {
        harness.intercept(intercept);
    }
    let horizon = Timestamp::from_offset(
        Duration::try_from_secs_f64(scenario.horizon_secs).unwrap_or(Duration::MAX),
    );

    let credentials = scenario
        .server
        .clients
        .first()
        .cloned()
        .unwrap_or_else(OAuthClient::default);
    let mut clocks = Vec::new();
    let mut records = Vec::new();
    for rows in scenario.rows() {
        let clock = Rc::new(RefCell::new(ItemClock {
            timeline: timeline.then(Timeline::default),
            ..ItemClock::default()
        }));
        let record = Rc::new(RefCell::new(PassRecord::default()));
        let setup = Setup {
            config: workflow_config(&credentials),
            workers: scenario.workers,
            limit: scenario.server.rate_limit.per_client,
            deadline: horizon,
        };
        let make = move |rows: Vec<ChangeRow>, seed: u64| strategy.client(&setup, rows, seed);
        let passes = Passes::new(
            Box::new(make),
            rows,
            horizon,
            rng.next_u64(),
            record.clone(),
        );
        let observer = Observer {
            inner: Box::new(passes),
            clock: clock.clone(),
            attempts: HashMap::new(),
        };
        harness.add_client(Box::new(observer), Timestamp::ZERO);
        clocks.push(clock);
        records.push(record);
    }

    harness
        .drive_bounded(MAX_STEPS)
        .map_err(|source| Error::Livelock {
            strategy: strategy.name().to_owned(),
            source,
        })?;

    let items = clocks
        .iter()
        .flat_map(|clock| {
            let clock = clock.borrow();
            clock
                .first
                .iter()
                .filter_map(|(user, first)| Some((*first, *clock.last.get(user)?)))
                .collect::<Vec<_>>()
        })
        .collect();
    let requests = clocks.iter().map(|clock| clock.borrow().sent).sum();
    let throttled = clocks.iter().map(|clock| clock.borrow().throttled).sum();
    let passes = records.iter().map(|r| r.borrow().passes).collect();
    let first_pass_failed = records
        .iter()
        .map(|r| r.borrow().first_pass_failed)
        .collect();
    let mut merged = Timeline::default();
    if timeline {
        for (client, clock) in clocks.iter().enumerate() {
            if let Some(recorded) = clock.borrow_mut().timeline.take() {
                merged.extend(recorded);
            }
            merged.updated.extend(
                harness
                    .outputs(client)
                    .iter()
                    .filter(|(_, report)| matches!(report.outcome, RowOutcome::Updated { .. }))
                    .map(|(at, _)| at.as_secs_f64()),
            );
        }
        merged.sort();
    }
    Ok(Outcome {
        harness,
        items,
        passes,
        first_pass_failed,
        requests,
        throttled,
        timeline: merged,
    })
}

impl Outcome {
    /// The comparison's row for this run (its ratio is filled in by [`run_strategies`]).
    pub fn result(&self, strategy: Strategy) -> StrategyResult {
        let clients = self.passes.len();
        let mut makespan = Timestamp::ZERO;
        let mut throughputs = Vec::new();
        let mut failed = 0;
        for client in 0..clients {
            let finished = self
                .harness
                .finished_at(client)
                .unwrap_or(self.harness.now());
            makespan = makespan.max(finished);
            let outputs = self.harness.outputs(client);
            let settled = outputs
                .iter()
                .filter(|(_, r)| r.outcome.is_settled())
                .count();
            failed += (outputs.len() - settled) as u64;
            let secs = finished.as_secs_f64();
            throughputs.push(if secs > 0.0 {
                settled as f64 / secs
            } else {
                0.0
            });
        }

        let requests = self.requests;
        let mut times: Vec<f64> = self
            .items
            .iter()
            .map(|(first, last)| last.saturating_since(*first).as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        StrategyResult {
            name: strategy.name().to_owned(),
            makespan_s: makespan.as_secs_f64(),
            ratio: 0.0,
            requests,
            throttled: self.throttled,
            throttled_share: if requests > 0 {
                self.throttled as f64 / requests as f64
            } else {
                0.0
            },
            failed_items: failed,
            first_pass_failed: self.first_pass_failed.iter().sum(),
            passes: self.passes.iter().copied().max().unwrap_or(0),
            p50_item_s: percentile(&times, 0.50),
            p99_item_s: percentile(&times, 0.99),
            fairness: jain(&throughputs),
        }
    }
}

/// Workflow settings every strategy starts from: the model's OAuth client, Genesys' defaults.
pub fn workflow_config(client: &OAuthClient) -> WorkflowConfig {
    let credentials = Credentials {
        client_id: client.id.clone(),
        client_secret: Secret::new(client.secret.clone()),
    };
    WorkflowConfig::new(API, LOGIN, credentials)
}

fn strategy_salt(strategy: Strategy) -> u64 {
    let index = Strategy::ALL
        .iter()
        .position(|s| *s == strategy)
        .unwrap_or(0) as u64;
    index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The value below which a share `q` of the sorted `values` lie (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Jain's fairness index: `(Σx)² / (n·Σx²)`, 1 when every `x` is equal.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || squares == 0.0 {
        return 1.0;
    }
    sum * sum / (values.len() as f64 * squares)
}

impl Comparison {
    /// The plain-text table.
    pub fn table(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "scenario {} (seed {}), lower bound {:.0} s",
            self.scenario, self.seed, self.lower_bound_s
        );
        let _ = writeln!(
            text,
            "{:<24} {:>10} {:>6} {:>8} {:>7} {:>6} {:>7} {:>6} {:>8} {:>8} {:>5}",
            "strategy",
            "makespan",
            "ratio",
            "requests",
            "429s",
            "429%",
            "failed",
            "passes",
            "p50 item",
            "p99 item",
            "fair"
        );
        for row in &self.strategies {
            let _ = writeln!(
                text,
                "{:<24} {:>9.0}s {:>6.3} {:>8} {:>7} {:>5.1}% {:>7} {:>6} {:>7.1}s {:>7.1}s {:>5.3}",
                row.name,
                row.makespan_s,
                row.ratio,
                row.requests,
                row.throttled,
                row.throttled_share * 100.0,
                row.failed_items,
                row.passes,
                row.p50_item_s,
                row.p99_item_s,
                row.fairness,
            );
        }
        text
    }

    /// gcbulk's row.
    pub fn gcbulk(&self) -> Option<&StrategyResult> {
        self.strategies.iter().find(|row| row.name == "gcbulk")
    }
}

/// What a client's passes came to.
#[derive(Debug, Default)]
struct PassRecord {
    passes: u32,
    first_pass_failed: u64,
}

type MakeClient = Box<dyn FnMut(Vec<ChangeRow>, u64) -> Box<dyn Machine<Output = RowReport>>>;

/// A client that re-runs the rows a pass did not settle, when the server allows.
struct Passes {
    make: MakeClient,
    current: Box<dyn Machine<Output = RowReport>>,
    rows: HashMap<u64, ChangeRow>,
    /// Unsettled reports of the current pass: reported only if no pass follows.
    held: Vec<RowReport>,
    deadline: Timestamp,
    rng: Rng,
    record: Rc<RefCell<PassRecord>>,
    flushing: VecDeque<RowReport>,
    /// When the last `Retry-After` received ends.
    retry_after_end: Timestamp,
    /// The rows of the next pass, and when it starts.
    next: Option<(Timestamp, Vec<ChangeRow>)>,
}

impl Passes {
    fn new(
        mut make: MakeClient,
        rows: Vec<ChangeRow>,
        deadline: Timestamp,
        seed: u64,
        record: Rc<RefCell<PassRecord>>,
    ) -> Self {
        let mut rng = Rng::from_seed(seed);
        let current = make(rows.clone(), rng.next_u64());
        record.borrow_mut().passes = 1;
        Self {
            make,
            current,
            rows: rows.into_iter().map(|row| (row.source.line, row)).collect(),
            held: Vec::new(),
            deadline,
            rng,
            record,
            flushing: VecDeque::new(),
            retry_after_end: Timestamp::ZERO,
            next: None,
        }
    }

    /// The pass is over with rows unsettled: plan another, or report them.
    fn end_pass(&mut self, now: Timestamp) {
        let mut record = self.record.borrow_mut();
        if record.passes == 1 {
            record.first_pass_failed = self.held.len() as u64;
        }
        let start = self.retry_after_end.max(now);
        let again = record.passes < MAX_PASSES
            && start.saturating_since(now) <= LONG_WAIT
            && start < self.deadline;
        if !again {
            self.flushing.extend(self.held.drain(..));
            return;
        }
        let rows = self
            .held
            .drain(..)
            .filter_map(|report| self.rows.get(&report.source.line).cloned())
            .collect();
        self.next = Some((start, rows));
    }
}

impl Machine for Passes {
    type Output = RowReport;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        if response.status() == http::StatusCode::TOO_MANY_REQUESTS
            && let RetryAfter::Wait(wait) = retry_after(response.headers())
        {
            self.retry_after_end = self.retry_after_end.max(now + wait);
        }
        self.current.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.current.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.current.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<RowReport> {
        loop {
            if let Some(report) = self.flushing.pop_front() {
                return Action::Done(report);
            }
            if let Some((at, _)) = &self.next {
                if now < *at {
                    return Action::WaitUntil {
                        at: *at,
                        reason: WaitReason::RetryAfter,
                    };
                }
                if let Some((_, rows)) = self.next.take() {
                    self.record.borrow_mut().passes += 1;
                    self.current = (self.make)(rows, self.rng.next_u64());
                }
            }
            match self.current.poll(now) {
                Action::Done(report) if report.outcome.is_settled() => {
                    return Action::Done(report);
                }
                Action::Done(report) => self.held.push(report),
                Action::Idle if self.held.is_empty() => return Action::Idle,
                Action::Idle => self.end_pass(now),
                other => return other,
            }
        }
    }
}

/// Each item's first write request and last answer, by user id, and what the client sent and
/// got back (counted at the client, so answers a replayed trace gave count too).
#[derive(Debug, Default)]
struct ItemClock {
    first: HashMap<String, Timestamp>,
    last: HashMap<String, Timestamp>,
    sent: u64,
    throttled: u64,
    /// Every send and answer, when a plot is wanted.
    timeline: Option<Timeline>,
}

/// Watches a client's requests to time each item: its PATCHes and single-user reads.
struct Observer {
    inner: Box<dyn Machine<Output = RowReport>>,
    clock: Rc<RefCell<ItemClock>>,
    attempts: HashMap<AttemptId, String>,
}

impl Observer {
    fn answered(&mut self, now: Timestamp, attempt: AttemptId) {
        if let Some(user) = self.attempts.remove(&attempt) {
            self.clock.borrow_mut().last.insert(user, now);
        }
    }
}

impl Machine for Observer {
    type Output = RowReport;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        self.answered(now, attempt);
        let status = response.status();
        let mut clock = self.clock.borrow_mut();
        if status == http::StatusCode::TOO_MANY_REQUESTS {
            clock.throttled += 1;
        }
        if let Some(timeline) = &mut clock.timeline {
            timeline.answered(now.as_secs_f64(), status.as_u16());
        }
        drop(clock);
        self.inner.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.answered(now, attempt);
        self.inner.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.inner.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<RowReport> {
        let action = self.inner.poll(now);
        if let Action::Send(send) = &action {
            let mut clock = self.clock.borrow_mut();
            clock.sent += 1;
            if let Some(timeline) = &mut clock.timeline {
                timeline.sent.push(now.as_secs_f64());
            }
            drop(clock);
            let path = send.request.uri().path();
            let single = path
                .strip_prefix("/api/v2/users/")
                .filter(|id| !id.is_empty() && !id.contains('/') && *id != "search");
            let method = send.request.method();
            if let Some(user) = single
                && (method == Method::PATCH || method == Method::GET)
            {
                self.clock
                    .borrow_mut()
                    .first
                    .entry(user.to_owned())
                    .or_insert(now);
                self.attempts.insert(send.attempt, user.to_owned());
            }
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_when_even_and_one_over_n_when_one_takes_all() {
        assert!((jain(&[2.0, 2.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<Format>().unwrap(), Format::Json);
        assert!("yaml".parse::<Format>().is_err());
    }
}
