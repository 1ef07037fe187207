//! One run of the user-update machine: the path `update`, `revert` and `demo` all take.
//!
//! The order of events for each row is fixed: its outcome goes to the journal first, then into
//! the tallies, the progress bar and the report. A run that is killed therefore never claims a
//! row the journal does not hold. Each PATCH is journalled before it is sent ([`Recorder`]).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gcbulk::input::RowError;
use gcbulk_core::Timestamp;
use gcbulk_core::change::{ChangeRow, ManagerRef, Source};
use gcbulk_core::genesys::{Field, RowOutcome, RowReport, UserUpdate, WorkflowConfig, validate};
use gcbulk_core::sched::WaitReason;
use gcbulk_ureq::{Driver, DriverOptions, Observer};

use super::journal::{self, Header, InputInfo, Journal, JournalOptions, RowRecord, Unanswered};
use super::outputs::{self, Named};
use super::progress::Progress;
use super::record::Recorder;
use super::report::{self, People, Requests, Summary};
use super::target::Connection;
use super::trace::{Forward, Trace, Traced};
use super::{Exit, Failure, Ui};

/// Whether a row gave up only because the run was asked to stop: the core cancels what is
/// queued ("stopped"), and the driver refuses what the machine still asks to send.
pub(crate) fn left_by_stop(reason: &str) -> bool {
    reason == "stopped" || reason.ends_with("run stopped")
}

/// Everything one run needs.
#[derive(Debug)]
pub(crate) struct Job {
    /// `update` or `revert`, as the journal records it.
    pub(crate) command: &'static str,
    /// The input and its hash.
    pub(crate) input: InputInfo,
    /// The rows that were read.
    pub(crate) rows: Vec<ChangeRow>,
    /// The rows that could not be read; never sent.
    pub(crate) row_errors: Vec<RowError>,
    /// Reverting: the version each user must still be at.
    pub(crate) expect_versions: HashMap<String, u64>,
    /// Where, and as whom.
    pub(crate) connection: Connection,
    /// Write nothing; show the diff.
    pub(crate) dry_run: bool,
    /// Carry on the run the journal records.
    pub(crate) resume: bool,
    /// The journal's path.
    pub(crate) journal: PathBuf,
    /// The report's path, if one is wanted.
    pub(crate) report: Option<PathBuf>,
    /// Most requests in flight.
    pub(crate) concurrency: u16,
    /// The rate cap, in requests a second.
    pub(crate) max_rate: Option<f64>,
    /// Whether empty cells cleared fields (recorded in the journal).
    pub(crate) clear_empty: bool,
}

/// Runs `job` to the end and prints what happened.
pub(crate) fn run(job: Job, ui: &Ui) -> Result<Exit, Failure> {
    run_traced(job, None, ui)
}

/// As [`run`], recording every answer to `trace` when one is given ([`Trace`]).
pub(crate) fn run_traced(
    job: Job,
    trace: Option<&std::path::Path>,
    ui: &Ui,
) -> Result<Exit, Failure> {
    check_files(&job, trace)?;
    let source_file: Arc<str> = Arc::from(job.input.path.as_str());
    let (mut journal, earlier, fresh, unanswered) = open_journal(&job, ui)?;

    // Rows the journal shows settled are not run again; their outcomes still count.
    let settled: HashSet<u64> = earlier.iter().map(|r| r.source.line).collect();
    let mut reports: Vec<RowReport> = earlier;
    let resumed_rows = reports.len();
    let (to_run, preflight) = if settled.is_empty() {
        (job.rows.clone(), Vec::new())
    } else {
        split_for_resume(&job.rows, &settled)
    };

    let mut config = WorkflowConfig::new(
        &job.connection.target.api_base,
        &job.connection.target.login_base,
        job.connection.credentials.clone(),
    );
    config.dry_run = job.dry_run;
    config.scheduler.max_in_flight = usize::from(job.concurrency);
    config.scheduler.pacing.max_rate = job.max_rate;
    let mut machine = UserUpdate::new(config, to_run.clone(), RandomState::new().hash_one(0u8));
    machine.expect_versions(job.expect_versions.clone());

    let pending = to_run.len() + preflight.len();
    announce(&job, ui, pending, resumed_rows, journal.as_ref());
    let journal_path = journal.as_ref().map(|j| j.path().to_owned());

    let mut recorder = Recorder::new(machine, journal.as_mut(), unanswered);
    let mut watcher = Watcher {
        file: source_file,
        reports: &mut reports,
        progress: Progress::new(ui, pending as u64, "rows"),
        write_failure: None,
        ui,
    };
    for report in preflight {
        watcher.record(&mut recorder, report);
        watcher.progress.done(0);
    }
    if let Some(failure) = watcher.write_failure.take() {
        watcher.progress.finish();
        return Err(failure);
    }
    let driver = Driver::new(DriverOptions {
        workers: usize::from(job.concurrency),
        stop: Some(ui.stop_flag()),
        ..DriverOptions::default()
    })
    .map_err(|error| Failure::run(format!("cannot start the HTTP workers: {error}")))?;
    let mut answers = trace.map(|_| Trace::default());
    let ran = match &mut answers {
        Some(answers) => driver.run_with(
            &mut Traced::new(&mut recorder, answers),
            &mut Forward(&mut watcher),
        ),
        None => driver.run_with(&mut recorder, &mut watcher),
    };
    if let (Some(path), Some(answers)) = (trace, answers) {
        let count = answers.len();
        match answers.write(path) {
            Ok(()) => ui.note(&format!("trace: {count} answers in {}", path.display())),
            Err(error) => ui.warn(&format!(
                "cannot write the trace {}: {error}",
                path.display()
            )),
        }
    }
    let Watcher {
        progress,
        mut write_failure,
        ..
    } = watcher;
    progress.finish();
    if let Some(error) = recorder.take_failure()
        && let Some(journal) = recorder.journal()
    {
        write_failure.get_or_insert(journal.write_failure(&error));
    }
    let people = if job.dry_run {
        people(&recorder, &reports, &job.rows)
    } else {
        People::default()
    };
    let machine = recorder.inner;
    let stats = ran.map_err(|error| Failure::run(format!("the run failed: {error}")))?;

    reports.sort_by_key(|r| r.source.line);
    // A journal this run started that holds no PATCH has nothing to revert or resume when
    // signing in failed: let the next try start afresh instead of asking for --resume, and name
    // no journal that is gone.
    let mut journal_path = journal_path;
    if machine.auth_failure().is_some()
        && let Some(journal) = &journal
        && fresh
        && !journal.records_patches()
        && std::fs::remove_file(journal.path()).is_ok()
    {
        journal_path = None;
    }
    let summary = Summary {
        command: job.command,
        input: &job.input,
        target: &job.connection.target.api_base,
        reports: &reports,
        row_errors: &job.row_errors,
        requests: Requests::of(&machine, &stats),
        elapsed: stats.elapsed,
        journal: journal_path,
        report: job.report.clone(),
        resumed_rows,
        stopped: stats.stopped,
        dry_run: job.dry_run,
        people,
    };
    let report_failure = match &job.report {
        Some(path) => report::write_report(path, &summary).err(),
        None => None,
    };
    if let Some(failure) = write_failure {
        return Err(failure);
    }
    if let Some(auth) = machine.auth_failure() {
        return Err(Failure::sign_in(auth));
    }
    if !ui.quiet() {
        report::print_summary(ui, &summary, report_failure.is_none());
    }
    if let Some(failure) = report_failure {
        return Err(failure);
    }
    Ok(if summary.tally().not_applied() > 0 || stats.stopped {
        Exit::NotApplied
    } else {
        Exit::Applied
    })
}

/// Refuses, before anything is sent, a report, trace or journal that would overwrite the sheet,
/// the journal or each other, and a report or trace that cannot be written.
fn check_files(job: &Job, trace: Option<&std::path::Path>) -> Result<(), Failure> {
    let input_what = if job.command == "revert" {
        "the journal it reverts"
    } else {
        "the sheet"
    };
    let sheet = Named {
        what: input_what,
        path: std::path::Path::new(&job.input.path),
    };
    let journal = Named {
        what: "the journal",
        path: &job.journal,
    };
    let mut outputs = Vec::new();
    if let Some(path) = &job.report {
        outputs.push(Named {
            what: "the --report",
            path,
        });
    }
    if let Some(path) = trace {
        outputs.push(Named {
            what: "the --trace",
            path,
        });
    }
    outputs::check_distinct(&[journal], std::slice::from_ref(&sheet))?;
    let journal = Named {
        what: "the journal",
        path: &job.journal,
    };
    outputs::check_distinct(&outputs, &[sheet, journal])?;
    for output in &outputs {
        outputs::check_writable(output.what.trim_start_matches("the "), output.path)?;
    }
    Ok(())
}

/// The journal a run appends to, the rows it shows settled, whether this run started it, and the
/// PATCHes it shows sent without an answer.
type Opened = (Option<Journal>, Vec<RowReport>, bool, Unanswered);

/// The managers a dry run's diff names: each as the run read them, and as each row named them.
fn people(recorder: &Recorder<'_>, reports: &[RowReport], rows: &[ChangeRow]) -> People {
    let mut people = People::default();
    let managers = reports
        .iter()
        .filter_map(|report| match &report.outcome {
            RowOutcome::WouldUpdate { changes, .. } => Some(changes),
            _ => None,
        })
        .flatten()
        .filter(|change| change.field == Field::Manager)
        .flat_map(|change| [&change.before, &change.after]);
    for id in managers {
        if let Some(person) = recorder.person(id) {
            people.by_id.insert(id.clone(), person);
        }
    }
    for row in rows {
        if let Some(ManagerRef::Email(email)) = &row.desired.manager {
            people
                .named
                .insert(row.source.line, email.trim().to_owned());
        }
    }
    people
}

/// Opens (or, resuming, reopens) the journal, and reads back the rows it shows settled and the
/// PATCHes whose answers it lacks.
fn open_journal(job: &Job, ui: &Ui) -> Result<Opened, Failure> {
    let path = &job.journal;
    let file: Arc<str> = Arc::from(job.input.path.as_str());
    let mut earlier = Vec::new();
    let exists = path.exists();
    let mut lock = None;

    let loaded = if job.resume && exists {
        // Held from before the read, so another run cannot act on what this one reads.
        lock = (!job.dry_run)
            .then(|| journal::Lock::take(path))
            .transpose()?;
        let loaded = journal::read(path)?;
        check_same_run(job, &loaded.header, path)?;
        if loaded.torn {
            ui.warn(&format!(
                "the last line of {} was cut short by a crash; that row will be run again",
                path.display()
            ));
        }
        for recorded in loaded.rows.values() {
            let record = &recorded.record;
            if record.outcome.is_settled() {
                earlier.push(RowReport {
                    source: Source {
                        file: file.clone(),
                        line: record.line,
                    },
                    key: record.key.clone(),
                    outcome: record.outcome.clone(),
                });
            }
        }
        Some(loaded)
    } else {
        if job.resume && !job.dry_run {
            ui.note(&format!(
                "no journal at {} yet: this run starts one",
                path.display()
            ));
        }
        None
    };

    if job.dry_run {
        return Ok((None, earlier, false, Unanswered::default()));
    }
    let unanswered = loaded
        .as_ref()
        .map(Unanswered::from_journal)
        .unwrap_or_default();
    let started_at = journal::now_rfc3339();
    let journal = match &loaded {
        Some(loaded) => Journal::reopen(path, loaded, &started_at, lock.take())?,
        None => {
            let header = Header {
                version: journal::VERSION,
                command: job.command.to_owned(),
                input: job.input.clone(),
                target: job.connection.target.api_base.clone(),
                login: job.connection.target.login_base.clone(),
                options: JournalOptions {
                    clear_empty: job.clear_empty,
                    concurrency: job.concurrency,
                    max_rate: job.max_rate,
                },
                started_at,
            };
            Journal::create(path, &header)?
        }
    };
    Ok((Some(journal), earlier, loaded.is_none(), unanswered))
}

/// Refuses to resume a journal written for another sheet, organisation or command.
fn check_same_run(job: &Job, header: &Header, path: &std::path::Path) -> Result<(), Failure> {
    let shown = path.display();
    let (recorded, given) = (&header.input.path, &job.input.path);
    if header.input.sha256 != job.input.sha256 && !same_sheet(recorded, given, path) {
        return Err(Failure::usage(format!(
            "{shown} belongs to another sheet: it is the journal of {recorded}, not {given}. To \
             carry that run on, resume it with its own sheet: gcbulk {} {recorded} --resume \
             --journal {shown}. To run {given}, give it a journal of its own: leave --journal \
             out for the one beside it, or name a new --journal PATH",
            header.command
        )));
    }
    if header.input.sha256 != job.input.sha256 {
        return Err(Failure::usage(format!(
            "{shown} is the journal of {recorded} as it was when that run started, and {given} \
             has changed since (its SHA-256 differs). Resuming would mix two versions of the \
             sheet: to carry that run on, put the sheet back as it was; to apply the edited \
             sheet, run it with another --journal PATH (after `gcbulk revert {shown}` if the \
             first run should be undone)"
        )));
    }
    if header.target != job.connection.target.api_base {
        return Err(Failure::usage(format!(
            "{shown} records a run against {}, not {}: resume it against the same organisation",
            header.target, job.connection.target.api_base
        )));
    }
    if header.command != job.command {
        return Err(Failure::usage(format!(
            "{shown} is the journal of a `gcbulk {}` run, not of `gcbulk {}`",
            header.command, job.command
        )));
    }
    Ok(())
}

/// Whether the sheet a journal records (`recorded`, as that run was given it) is the file named
/// `given` now: the same name, or the same file once resolved, from here or from the journal's
/// folder (where the sheet's journal goes by default), since a relative path was relative to
/// wherever that run started.
fn same_sheet(recorded: &str, given: &str, journal: &std::path::Path) -> bool {
    if recorded == given {
        return true;
    }
    let Ok(given) = std::fs::canonicalize(given) else {
        return false;
    };
    let recorded = std::path::Path::new(recorded);
    let beside_journal = journal
        .parent()
        .zip(recorded.file_name())
        .map(|(folder, name)| folder.join(name));
    std::iter::once(recorded.to_path_buf())
        .chain(beside_journal)
        .any(|candidate| std::fs::canonicalize(candidate).is_ok_and(|found| found == given))
}

/// Splits the rows a resumed run still owes: those to send, and those whose outcome the sheet
/// alone decides (refused, or a duplicate of another line), checked against the whole sheet as
/// the first run checked them, so two lines that disagree about a user stay refused even when
/// the journal holds only one of them.
fn split_for_resume(
    rows: &[ChangeRow],
    settled: &HashSet<u64>,
) -> (Vec<ChangeRow>, Vec<RowReport>) {
    let checked = validate::check(rows.to_vec());
    let open = |row: &ChangeRow| !settled.contains(&row.source.line);
    let mut preflight = Vec::new();
    for (row, rejection) in checked.rejected.into_iter().filter(|(row, _)| open(row)) {
        preflight.push(RowReport {
            source: row.source,
            key: row.key,
            outcome: RowOutcome::Rejected {
                field: rejection.field,
                reason: rejection.reason,
            },
        });
    }
    for (row, first) in checked.duplicates.into_iter().filter(|(row, _)| open(row)) {
        preflight.push(RowReport {
            source: row.source,
            key: row.key,
            outcome: RowOutcome::Duplicate {
                of_line: first.line,
            },
        });
    }
    let to_run = checked
        .accepted
        .into_iter()
        .filter(|row| open(row))
        .collect();
    (to_run, preflight)
}

fn announce(job: &Job, ui: &Ui, pending: usize, resumed: usize, journal: Option<&Journal>) {
    let verb = match (job.command, job.dry_run) {
        ("revert", true) => "Checking what reverting would change for",
        ("revert", false) => "Reverting",
        (_, true) => "Dry run: comparing",
        (_, false) => "Applying",
    };
    ui.note(&format!(
        "{verb} {} of {} against {}",
        report::rows_of(pending),
        job.input.path,
        job.connection.target.api_base
    ));
    if resumed > 0 {
        ui.note(&format!(
            "resuming: {resumed} rows the journal shows finished are skipped"
        ));
    }
    if let Some(journal) = journal {
        ui.note(&format!("journal: {}", journal.path().display()));
    }
}

/// Sees each row's outcome as the driver reports it.
struct Watcher<'a> {
    file: Arc<str>,
    reports: &'a mut Vec<RowReport>,
    progress: Progress,
    write_failure: Option<Failure>,
    ui: &'a Ui,
}

impl Watcher<'_> {
    fn record(&mut self, machine: &mut Recorder<'_>, mut report: RowReport) {
        report.outcome = machine.settle(report.outcome);
        // The journal first: nothing counts a row the journal does not hold.
        if self.write_failure.is_none()
            && let Some(journal) = machine.journal()
        {
            let record = RowRecord {
                line: report.source.line,
                key: report.key.clone(),
                outcome: report.outcome.clone(),
            };
            if let Err(error) = journal.append_row(&record) {
                tracing::error!(%error, "cannot write the journal; stopping");
                self.write_failure = Some(journal.write_failure(&error));
                machine.inner.stop();
                return;
            }
        }
        log_outcome(&self.file, &report);
        self.reports.push(report);
    }
}

impl<'j> Observer<Recorder<'j>> for Watcher<'_> {
    fn output(&mut self, machine: &mut Recorder<'j>, report: RowReport) {
        let throttled = machine.inner.stats().throttled;
        self.record(machine, report);
        self.progress.done(throttled);
    }

    fn wait(&mut self, now: Timestamp, until: Timestamp, reason: WaitReason) {
        let wait = until.saturating_since(now);
        let worth_saying = !matches!(reason, WaitReason::Pacing | WaitReason::TokenRenewal);
        if wait >= Duration::from_secs(5) && worth_saying {
            tracing::info!(
                wait_s = wait.as_secs_f64(),
                reason = reason.as_str(),
                "waiting"
            );
        }
        self.progress.waiting(wait, reason);
    }

    fn stop(&mut self, machine: &mut Recorder<'j>) {
        self.ui.note(
            "stopping: waiting for the requests in flight, then the rest is left for --resume \
             (Ctrl-C again quits at once)",
        );
        machine.inner.stop();
    }
}

/// Logs a row that did not go through, with what support needs to trace it.
fn log_outcome(file: &str, report: &RowReport) {
    let line = report.source.line;
    let key = report.key.to_string();
    match &report.outcome {
        // Refused credentials end every row alike; the run reports that once, itself.
        RowOutcome::Failed { code, .. } if code.as_deref() == Some("authentication") => {
            tracing::debug!(file, line, user = %key, "row not sent: authentication failed");
        }
        RowOutcome::Failed {
            user_id,
            status,
            code,
            message,
            correlation_id,
        } => tracing::warn!(
            file,
            line,
            user = %key,
            user_id = user_id.as_deref().unwrap_or(""),
            status,
            code = code.as_deref().unwrap_or(""),
            said = message.as_deref().unwrap_or(""),
            correlation_id = correlation_id.as_deref().unwrap_or(""),
            "row failed"
        ),
        // Stopped on request: the summary says so once, and --resume picks them up.
        RowOutcome::GaveUp { reason, .. } if left_by_stop(reason) => {
            tracing::debug!(file, line, user = %key, "row left for --resume");
        }
        RowOutcome::GaveUp {
            user_id,
            reason,
            retry_after_s,
        } => tracing::info!(
            file,
            line,
            user = %key,
            user_id = user_id.as_deref().unwrap_or(""),
            reason = %reason,
            retry_after_s,
            "row gave up"
        ),
        RowOutcome::ConflictGaveUp { user_id, conflicts } => tracing::warn!(
            file,
            line,
            user = %key,
            user_id = %user_id,
            conflicts,
            "row gave up after version conflicts"
        ),
        outcome => tracing::debug!(
            file,
            line,
            user = %key,
            outcome = outcome.kind(),
            "row finished"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_is_the_same_however_a_run_named_it() {
        let dir = tempfile::tempdir().unwrap();
        let sheet = dir.path().join("head.csv");
        let other = dir.path().join("other.csv");
        std::fs::write(&sheet, "email\n").unwrap();
        std::fs::write(&other, "email\n").unwrap();
        let journal = dir.path().join("head.csv.journal.jsonl");
        let shown = |path: &std::path::Path| path.display().to_string();

        assert!(same_sheet("head.csv", "head.csv", &journal));
        // Started from the sheet's folder, resumed from elsewhere: found beside the journal.
        assert!(same_sheet("head.csv", &shown(&sheet), &journal));
        let dotted = dir.path().join(".").join("head.csv");
        assert!(same_sheet(&shown(&sheet), &shown(&dotted), &journal));

        assert!(!same_sheet("head.csv", &shown(&other), &journal));
        assert!(!same_sheet(&shown(&sheet), &shown(&other), &journal));
        assert!(!same_sheet(
            "gone.csv",
            &shown(&dir.path().join("gone.csv")),
            &journal
        ));
    }
}
