//! `gcbulk demo`: the sample reorganisation, applied by `gcbulk update` to an emulator started
//! in this process.
//!
//! The emulator serves the bundled sample org with a binding but compressed rate limit: Genesys'
//! 300 requests a minute per OAuth client with the minute ten times shorter (300 requests per
//! 6-second window, so 3,000 a minute). A few seconds in, a colleague's script on the same OAuth
//! client spends most of a window's budget in a burst, so the run meets a handful of 429s and
//! waits for the window to reset, as it would in an organisation where several tools share a
//! client. The run is told none of this: it learns the rate from the answers' headers, as it
//! would from Genesys. The sheet is written to a folder so its journal and report land beside it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use gcbulk_core::sched::{self, Outcome, Scheduler};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{ClientLimit, OAuthClient, ServerConfig};
use gcbulk_ureq::{Driver, DriverOptions};

use super::args::{DemoArgs, RunArgs, TargetArgs, UpdateArgs};
use super::emulator::sample_org;
use super::target::{ENV_CLIENT_ID, ENV_CLIENT_SECRET, Environment};
use super::update::{beside, update};
use super::{Exit, Failure, Ui};

/// The sample reorganisation: 1,508 rows, some of them deliberately wrong.
const SAMPLE_SHEET: &[u8] = include_bytes!("../../../../examples/reorg.csv");

/// Requests each OAuth client may make per window: Genesys' figure...
const WINDOW_LIMIT: u32 = 300;
/// ...per window ten times shorter than Genesys' minute.
const WINDOW_SECS: u64 = 6;
/// When the colleague's burst starts, after the emulator.
const BURST_AFTER: Duration = Duration::from_secs(8);
/// How many requests the burst makes: most of a window's budget.
const BURST_REQUESTS: usize = 260;

/// Runs the demo.
pub(crate) fn demo(args: &DemoArgs, ui: &Ui) -> Result<Exit, Failure> {
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|error| {
                Failure::usage(format!("cannot create {}: {error}", dir.display()))
            })?;
            dir.clone()
        }
        None => fresh_dir()?,
    };
    let sheet = dir.join("reorg.csv");
    let report = dir.join("reorg-report.json");
    // A demo folder used before holds the last demo's journal: this is a new run.
    let _ = std::fs::remove_file(beside(&sheet, ".journal.jsonl"));
    std::fs::write(&sheet, SAMPLE_SHEET)
        .map_err(|error| Failure::usage(format!("cannot write {}: {error}", sheet.display())))?;

    let users = sample_org()?;
    let user_count = users.len();
    let emulator = Emulator::start(EmulatorConfig {
        server: demo_server(),
        users,
        seed: 7,
        port: 0,
        time_scale: 1.0,
    })
    .map_err(|error| Failure::run(format!("cannot start the emulator: {error}")))?;
    let url = emulator.base_url();
    ui.note(&format!(
        "gcbulk demo: an emulated Genesys Cloud organisation of {user_count} users is serving at \
         {url}.\nIt allows {WINDOW_LIMIT} requests per {WINDOW_SECS} s (Genesys' minute, ten times \
         shorter), and {} s in, another script on the same OAuth client\nspends most of a \
         window's budget. gcbulk learns the limit from the answers' headers.\n\
         The sample sheet is {}.\n",
        BURST_AFTER.as_secs(),
        sheet.display()
    ));

    let client = OAuthClient::default();
    let (cancel_burst, cancelled) = mpsc::channel::<()>();
    let burst = colleague_burst(emulator.base_url(), client.clone(), cancelled);
    let env = Environment::with(&[
        (ENV_CLIENT_ID, client.id.as_str()),
        (ENV_CLIENT_SECRET, client.secret.as_str()),
    ]);
    let update_args = UpdateArgs {
        file: sheet.clone(),
        clear_empty: false,
        target: TargetArgs {
            api_base: Some(url),
            ..TargetArgs::default()
        },
        run: RunArgs {
            report: Some(report.clone()),
            ..RunArgs::default()
        },
        trace: None,
    };
    let exit = update(&update_args, &env, ui);
    drop(cancel_burst);
    let _ = burst.join();

    let stats = emulator.stats();
    emulator.shutdown();
    let exit = exit?;
    let ours = std::fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|report| report["requests"]["throttled"].as_u64())
        .unwrap_or(0);
    ui.note(&format!(
        "\nThe emulator answered {} requests, {} of them with 429: {ours} to gcbulk, the rest to \
         the other script, which does not pace itself.",
        stats.total(),
        stats.throttled
    ));
    if exit == Exit::NotApplied && !ui.stopped() {
        ui.note(
            "The rows not applied are the sample's deliberate mistakes (bad e-mails, unknown users \
             and managers), each named by its line above.",
        );
    }
    ui.note(&format!(
        "Next: `gcbulk emulator --port 8080` serves the same organisation until Ctrl-C (it prints \
         the credentials to export). Then `gcbulk update {} --api-base http://127.0.0.1:8080 \
         --journal try.journal.jsonl --dry-run`, the same without --dry-run, and `gcbulk revert \
         try.journal.jsonl --api-base http://127.0.0.1:8080`. A journal belongs to the server it \
         ran against, and the emulator forgets its changes when it stops.",
        sheet.display()
    ));
    // The demo did what it shows; the sheet's own mistakes are not a failure of the demo.
    Ok(if ui.stopped() {
        Exit::NotApplied
    } else {
        Exit::Applied
    })
}

/// The demo's Genesys: the usual one with a window ten times shorter.
fn demo_server() -> ServerConfig {
    let mut server = ServerConfig::default();
    server.rate_limit.per_client = ClientLimit::FixedWindow {
        limit: WINDOW_LIMIT,
        window_secs: WINDOW_SECS,
    };
    server
}

/// Another script on the demo's OAuth client: [`BURST_AFTER`] in, it takes a token and reads
/// [`BURST_REQUESTS`] pages of users as fast as 16 connections allow, heedless of the budget it
/// shares (it gives up at its first 429). Nothing happens if `cancelled` hangs up first.
fn colleague_burst(
    url: String,
    client: OAuthClient,
    cancelled: mpsc::Receiver<()>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        if !matches!(
            cancelled.recv_timeout(BURST_AFTER),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        let mut config = sched::Config {
            max_in_flight: 16,
            max_throttled: 1,
            ..sched::Config::default()
        };
        config.pacing.adaptive = false;
        let Ok(driver) = Driver::new(DriverOptions {
            workers: 16,
            ..DriverOptions::default()
        }) else {
            return;
        };
        let mut scheduler: Scheduler<usize> = Scheduler::new(config, 11);

        let pair = format!("{}:{}", client.id, client.secret);
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        let login = http::Request::post(format!("{url}/oauth/token"))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"grant_type=client_credentials"));
        let Ok(login) = login else { return };
        scheduler.push(driver.now(), 0, login);
        let mut token = None;
        let _ = driver.run(&mut scheduler, |_, done| {
            if let Outcome::Response(response) = done.outcome {
                let body: serde_json::Value =
                    serde_json::from_slice(response.body()).unwrap_or_default();
                token = body["access_token"].as_str().map(str::to_owned);
            }
        });
        let Some(token) = token else { return };

        for page in 1..=BURST_REQUESTS {
            let read =
                http::Request::get(format!("{url}/api/v2/users?pageSize=1&pageNumber={page}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(Bytes::new());
            if let Ok(read) = read {
                scheduler.push(driver.now(), page, read);
            }
        }
        let _ = driver.run(&mut scheduler, |_, _| {});
        tracing::debug!("the colleague's burst is over");
    })
}

/// A new folder in the system's temporary folder.
fn fresh_dir() -> Result<PathBuf, Failure> {
    let base = std::env::temp_dir();
    for attempt in 0..1000u32 {
        let dir = base.join(format!("gcbulk-demo-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(cannot_create(&dir, &error)),
        }
    }
    Err(Failure::run(format!(
        "cannot find a free folder name in {}",
        base.display()
    )))
}

fn cannot_create(dir: &Path, error: &std::io::Error) -> Failure {
    Failure::run(format!("cannot create {}: {error}", dir.display()))
}
