//! The `gcbulk` command: its subcommands, what they print, and how they end.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gcbulk_core::genesys::AuthFailure;
use indicatif::ProgressBar;

pub(crate) mod args;
mod demo;
mod emulator;
mod export;
mod journal;
pub(crate) mod logging;
mod outputs;
mod progress;
mod record;
mod report;
mod revert;
mod run;
mod sim;
mod target;
mod trace;
mod update;

use args::{Cli, Command};
use target::{ENV_CLIENT_ID, ENV_CLIENT_SECRET};

/// How a command ended, as the process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Every row applied, or nothing to do.
    Applied = 0,
    /// Some rows were not applied.
    NotApplied = 1,
    /// A usage or input error: nothing was sent.
    Usage = 2,
    /// The login host refused the credentials.
    Auth = 3,
}

/// Why a command could not do its work, with the message a person sees.
#[derive(Debug)]
pub(crate) struct Failure {
    exit: Exit,
    message: String,
}

impl Failure {
    /// A bad option or input: exit 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// Refused credentials: exit 3.
    pub(crate) fn auth(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Auth,
            message: message.into(),
        }
    }

    /// Signing in failed: exit 3 with a hint about the credentials when the login host refused
    /// them, else exit 1, as for any other run that could not go on.
    pub(crate) fn sign_in(auth: &AuthFailure) -> Self {
        let status = auth
            .status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default();
        if auth.credentials_refused() {
            return Self::auth(format!(
                "authentication failed{status}: {}. Check the OAuth client id and secret \
                 ({ENV_CLIENT_ID}, {ENV_CLIENT_SECRET} or --credentials) and the region",
                auth.message
            ));
        }
        Self::run(format!(
            "could not sign in{status}: {}. The credentials were not refused; try again later",
            auth.message
        ))
    }

    /// The run could not go on (a journal that cannot be written, a driver fault): exit 1.
    pub(crate) fn run(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::NotApplied,
            message: message.into(),
        }
    }

    /// The exit status it ends the process with.
    pub(crate) fn exit(&self) -> Exit {
        self.exit
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The progress bar on screen, if any; log lines and notes are printed around it.
pub(crate) type BarSlot = Arc<Mutex<Option<ProgressBar>>>;

/// Where a command's words go: notes and warnings to stderr, results to stdout, each printed
/// around the progress bar so neither garbles the other.
#[derive(Clone, Debug)]
pub(crate) struct Ui {
    quiet: bool,
    bars: bool,
    bar: BarSlot,
    /// Raised by Ctrl-C.
    stop: Arc<AtomicBool>,
}

impl Ui {
    /// The terminal's: bars only when stderr is a terminal and not `--quiet`.
    pub(crate) fn new(quiet: bool, bar: BarSlot) -> Self {
        Self {
            quiet,
            bars: !quiet && std::io::stderr().is_terminal(),
            bar,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Says nothing but errors; for tests.
    #[cfg(test)]
    pub(crate) fn silent() -> Self {
        Self::new(true, BarSlot::default())
    }

    /// Whether only errors are printed.
    pub(crate) fn quiet(&self) -> bool {
        self.quiet
    }

    /// The flag Ctrl-C raises.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Whether Ctrl-C was pressed.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether a progress bar may be drawn.
    pub(crate) fn bars(&self) -> bool {
        self.bars
    }

    /// The slot the progress bar goes in while it is drawn.
    pub(crate) fn bar_slot(&self) -> &BarSlot {
        &self.bar
    }

    /// A line of information on stderr, unless quiet.
    pub(crate) fn note(&self, text: &str) {
        if !self.quiet {
            self.stderr(text);
        }
    }

    /// A warning on stderr, even when quiet.
    pub(crate) fn warn(&self, text: &str) {
        self.stderr(&format!("gcbulk: warning: {text}"));
    }

    /// An error on stderr.
    pub(crate) fn error(&self, text: &str) {
        self.stderr(&format!("gcbulk: {text}"));
    }

    /// A line on stderr as it is, even when quiet: `file:line: column: message`.
    pub(crate) fn error_line(&self, text: &str) {
        self.stderr(text);
    }

    /// Lines on stdout: the summary, a dry run's diff, the emulator's address.
    pub(crate) fn out(&self, text: &str) {
        self.around_bar(|| {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`gcbulk ... | head`) is not worth a panic.
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        });
    }

    fn stderr(&self, text: &str) {
        self.around_bar(|| {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        });
    }

    fn around_bar(&self, print: impl FnOnce()) {
        let bar = self
            .bar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

/// Runs the command the line asks for.
pub(crate) fn main(cli: Cli, ui: &Ui) -> Exit {
    let env = target::Environment::from_process();
    let result = match cli.command {
        Command::Update(args) => {
            watch_ctrl_c(ui);
            update::update(&args, &env, ui)
        }
        Command::Revert(args) => {
            watch_ctrl_c(ui);
            revert::revert(&args, &env, ui)
        }
        Command::Export(args) => {
            watch_ctrl_c(ui);
            export::export(&args, &env, ui)
        }
        // The emulator waits for Ctrl-C itself.
        Command::Emulator(args) => emulator::emulator(&args, ui),
        Command::Demo(args) => {
            watch_ctrl_c(ui);
            demo::demo(&args, ui)
        }
        Command::Sim(args) => sim::sim(&args, ui),
    };
    match result {
        Ok(exit) => exit,
        Err(failure) => {
            ui.error(&failure.to_string());
            failure.exit()
        }
    }
}

/// The first Ctrl-C asks the run to stop cleanly; the second ends the process at once (the
/// journal then still holds every row that finished).
fn watch_ctrl_c(ui: &Ui) {
    let stop = ui.stop_flag();
    let installed = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    });
    if let Err(error) = installed {
        tracing::debug!(%error, "cannot watch for Ctrl-C");
    }
}
