//! `gcbulk export`: the organisation's users as a CSV that `gcbulk update` reads back.

use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufWriter, Write};

use gcbulk::export::write_users_csv;
use gcbulk_core::Timestamp;
use gcbulk_core::genesys::export::{
    ExportConfig, ExportFailure, ExportPage, StateFilter, UserExport,
};
use gcbulk_core::sched::WaitReason;
use gcbulk_ureq::{Driver, DriverOptions, Observer};

use super::args::{ExportArgs, StateArg};
use super::progress::Progress;
use super::target::{self, Environment};
use super::{Exit, Failure, Ui};

/// Lists the users and writes them out.
pub(crate) fn export(args: &ExportArgs, env: &Environment, ui: &Ui) -> Result<Exit, Failure> {
    let connection = target::connect(&args.target, env, None, ui)?;
    let mut config = ExportConfig::new(
        &connection.target.api_base,
        &connection.target.login_base,
        connection.credentials,
    );
    config.state = match args.state {
        StateArg::Active => StateFilter::Active,
        StateArg::Inactive => StateFilter::Inactive,
        StateArg::Any => StateFilter::Any,
    };
    config.scheduler.max_in_flight = usize::from(args.concurrency);
    config.scheduler.pacing.max_rate = args.max_rate;
    let mut machine = UserExport::new(config, RandomState::new().hash_one(1u8));

    ui.note(&format!(
        "Listing {} users of {}",
        config_state(args.state),
        connection.target.api_base
    ));
    let driver = Driver::new(DriverOptions {
        workers: usize::from(args.concurrency),
        stop: Some(ui.stop_flag()),
        ..DriverOptions::default()
    })
    .map_err(|error| Failure::run(format!("cannot start the HTTP workers: {error}")))?;
    let mut watcher = PageWatcher {
        progress: Progress::new(ui, 1, "pages"),
    };
    let ran = driver.run_with(&mut machine, &mut watcher);
    watcher.progress.finish();
    let stats = ran.map_err(|error| Failure::run(format!("the export failed: {error}")))?;
    let requests = stats.sent;
    let throttled = machine.stats().throttled;
    let result = machine.finish();

    match result.failure {
        Some(ExportFailure::Auth(auth)) => return Err(Failure::sign_in(&auth)),
        Some(ExportFailure::Page {
            page,
            status,
            message,
            correlation_id,
        }) => {
            let status = status.map(|s| format!("HTTP {s}: ")).unwrap_or_default();
            let id = correlation_id
                .map(|id| format!(" (correlation id {id})"))
                .unwrap_or_default();
            return Err(Failure::run(format!(
                "listing page {page} failed: {status}{message}{id}; nothing was written"
            )));
        }
        None => {}
    }
    if stats.stopped {
        return Err(Failure::run(
            "stopped before the last page; nothing was written",
        ));
    }
    if let Some(truncated) = &result.truncated {
        ui.warn(&format!(
            "the listing stopped at page {} ({}): Genesys pages through at most 10,000 inactive \
             users. The {} users before it are written.",
            truncated.page,
            truncated.message,
            result.users.len()
        ));
    }

    let written = match &args.out {
        Some(path) => {
            let file = File::create(path).map_err(|error| {
                Failure::run(format!("cannot create {}: {error}", path.display()))
            })?;
            write_csv(&result.users, BufWriter::new(file))?;
            path.display().to_string()
        }
        None => {
            write_csv(&result.users, BufWriter::new(std::io::stdout().lock()))?;
            "standard output".to_owned()
        }
    };
    ui.note(&format!(
        "exported {} users to {written} in {:.1} s ({requests} requests, {throttled} answered 429)",
        result.users.len(),
        stats.elapsed.as_secs_f64()
    ));
    Ok(Exit::Applied)
}

fn config_state(state: StateArg) -> &'static str {
    match state {
        StateArg::Active => "active",
        StateArg::Inactive => "inactive",
        StateArg::Any => "all",
    }
}

fn write_csv(users: &[serde_json::Value], mut out: impl Write) -> Result<(), Failure> {
    write_users_csv(users, &mut out).map_err(|error| Failure::run(error.to_string()))?;
    out.flush()
        .map_err(|error| Failure::run(format!("cannot write the csv: {error}")))
}

/// Moves the progress bar page by page.
struct PageWatcher {
    progress: Progress,
}

impl Observer<UserExport> for PageWatcher {
    fn output(&mut self, machine: &mut UserExport, page: ExportPage) {
        if let Some(count) = page.page_count {
            self.progress.set_total(u64::from(count.max(1)));
        }
        self.progress.done(machine.stats().throttled);
    }

    fn wait(&mut self, now: Timestamp, until: Timestamp, reason: WaitReason) {
        self.progress.waiting(until.saturating_since(now), reason);
    }

    fn stop(&mut self, machine: &mut UserExport) {
        machine.stop();
    }
}
