//! Structured logs: `tracing` events from every gcbulk crate, to stderr or `--log-file`.
//!
//! Only gcbulk's own crates log below warnings; the HTTP and TLS libraries are held at warnings,
//! whatever `-v` says, so no request header (the bearer token travels in one) can reach a log.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::BarSlot;

/// The crates whose events `-v` turns up.
const OWN_CRATES: [&str; 3] = ["gcbulk_core", "gcbulk_ureq", "gcbulk_sim"];
/// This command's own events (the library and the binary share the name).
const COMMAND: &str = "gcbulk";

/// Starts logging; `verbose` counts `-v`s.
pub(crate) fn init(
    verbose: u8,
    quiet: bool,
    log_file: Option<&Path>,
    bar: BarSlot,
) -> Result<(), String> {
    // On a terminal without -v the command's own output (the bar, the row errors, the summary)
    // says what matters; only its warnings about rows that failed are logged beside it.
    let (own, others) = match (verbose, quiet, log_file.is_some()) {
        (0, _, true) => (LevelFilter::INFO, LevelFilter::INFO),
        (0, true, false) => (LevelFilter::ERROR, LevelFilter::OFF),
        (0, false, false) => (LevelFilter::WARN, LevelFilter::OFF),
        (1, _, _) => (LevelFilter::DEBUG, LevelFilter::DEBUG),
        _ => (LevelFilter::TRACE, LevelFilter::TRACE),
    };
    let filter = OWN_CRATES
        .iter()
        .fold(Targets::new().with_default(Level::WARN), |f, name| {
            f.with_target(*name, others)
        })
        .with_target(COMMAND, own);

    let (writer, ansi) = match log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| format!("cannot open the log file {}: {error}", path.display()))?;
            (BoxMakeWriter::new(Mutex::new(file)), false)
        }
        None => {
            let color = io::stderr().is_terminal() && !no_color();
            (BoxMakeWriter::new(AroundBar(bar)), color)
        }
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(verbose > 0);
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .map_err(|error| format!("cannot start logging: {error}"))
}

/// Whether the `NO_COLOR` convention asks for no colour.
pub(crate) fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

/// Writes each log line to stderr with the progress bar lifted out of the way.
struct AroundBar(BarSlot);

impl<'a> MakeWriter<'a> for AroundBar {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            bar: &self.0,
            line: Vec::new(),
        }
    }
}

/// Gathers one event, then prints it in one go when dropped.
struct LineWriter<'a> {
    bar: &'a BarSlot,
    line: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let print = || {
            let _ = io::stderr().lock().write_all(&self.line);
        };
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
