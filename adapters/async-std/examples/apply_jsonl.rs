//! Applies a JSONL change file to Genesys Cloud users from an async program: by default to an
//! emulated organisation it starts on loopback, or to the API at `--api-base`.
//!
//! ```sh
//! cargo run -p gcbulk-async-std --example apply_jsonl -- [CHANGES.jsonl] [--api-base URL]
//!     [--login-base URL] [--org USERS.jsonl]
//! ```
//!
//! Without a file it applies `examples/changes.jsonl` beside this one; without `--api-base` it
//! serves the organisation in `--org` (default: the workspace's `examples/org.jsonl`) with
//! Genesys' usual limit of 300 requests a minute. Against a real organisation, the OAuth client
//! comes from `GCBULK_CLIENT_ID` and `GCBULK_CLIENT_SECRET`. One report per row is printed as a
//! JSON line; a summary goes to standard error.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program talks to its user on the terminal"
)]

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use gcbulk::input::{ReadOptions, read_changes};
use gcbulk_async_std::{Driver, DriverOptions};
use gcbulk_core::genesys::{Credentials, Secret, UserUpdate, WorkflowConfig};
use gcbulk_sim::emulator::{Emulator, EmulatorConfig};
use gcbulk_sim::model::{ServerConfig, load_users_file};

/// What the command line asks for.
struct Args {
    changes: PathBuf,
    api_base: Option<String>,
    login_base: Option<String>,
    org: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    async_std::task::block_on(apply(args))
}

async fn apply(args: Args) -> Result<(), Box<dyn Error>> {
    let bytes = std::fs::read(&args.changes)?;
    let input = read_changes(
        &args.changes.display().to_string(),
        &bytes,
        &ReadOptions::default(),
    )?;
    for error in &input.row_errors {
        eprintln!("skipped {}: {}", error.source, error.message);
    }

    // Started here, the emulator serves until the end of `apply`.
    let (emulator, api_base, login_base, credentials) = match args.api_base {
        Some(api_base) => {
            let login_base = args
                .login_base
                .unwrap_or_else(|| api_base.replacen("//api.", "//login.", 1));
            (None, api_base, login_base, credentials_from_env()?)
        }
        None => {
            let emulator = Emulator::start(EmulatorConfig {
                server: ServerConfig::default(),
                users: load_users_file(&args.org)?,
                ..EmulatorConfig::default()
            })?;
            let base = emulator.base_url();
            eprintln!("emulated Genesys Cloud at {base}");
            let credentials = Credentials {
                client_id: "gcbulk-emulator".into(),
                client_secret: Secret::new("emulator-secret"),
            };
            (Some(emulator), base.clone(), base, credentials)
        }
    };

    let config = WorkflowConfig::new(&api_base, &login_base, credentials);
    let mut update = UserUpdate::new(config, input.rows, 0x009c_b01c);
    let driver = Driver::new(DriverOptions::default())?;
    let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    let stats = driver
        .run(&mut update, |_, report| {
            *kinds.entry(report.outcome.kind()).or_default() += 1;
            match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(error) => eprintln!("{}: cannot print the report: {error}", report.source),
            }
        })
        .await?;

    if let Some(failure) = update.auth_failure() {
        eprintln!("authentication failed: {}", failure.message);
    }
    let summary: Vec<String> = kinds
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    eprintln!(
        "{} in {:.1} s: {} requests, {} throttled",
        summary.join(", "),
        stats.elapsed.as_secs_f64(),
        stats.sent,
        update.stats().throttled
    );
    if let Some(emulator) = emulator {
        emulator.shutdown();
    }
    Ok(())
}

fn credentials_from_env() -> Result<Credentials, Box<dyn Error>> {
    let id = std::env::var("GCBULK_CLIENT_ID").map_err(|_| "GCBULK_CLIENT_ID is not set")?;
    let secret =
        std::env::var("GCBULK_CLIENT_SECRET").map_err(|_| "GCBULK_CLIENT_SECRET is not set")?;
    Ok(Credentials {
        client_id: id,
        client_secret: Secret::new(secret),
    })
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        changes: here.join("examples/changes.jsonl"),
        api_base: None,
        login_base: None,
        org: here.join("../../examples/org.jsonl"),
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || given.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--api-base" => args.api_base = Some(value()?),
            "--login-base" => args.login_base = Some(value()?),
            "--org" => args.org = PathBuf::from(value()?),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}").into()),
            path => args.changes = PathBuf::from(path),
        }
    }
    Ok(args)
}
