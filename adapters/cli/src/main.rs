//! The `gcbulk` command: apply a spreadsheet of changes to many Genesys Cloud users at once.
//!
//! See `gcbulk --help`. The subcommands live in [`app`]; the change-file reader and the export
//! writer are the `gcbulk` library's.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod app;

fn main() -> ExitCode {
    let cli = app::args::Cli::parse();
    let bar = app::BarSlot::default();
    let output = &cli.output;
    let ui = app::Ui::new(output.quiet, bar.clone());
    if let Err(message) = app::logging::init(
        output.verbose,
        output.quiet,
        output.log_file.as_deref(),
        bar,
    ) {
        ui.error(&message);
        return ExitCode::from(app::Exit::Usage as u8);
    }
    let exit = app::main(cli, &ui);
    ExitCode::from(exit as u8)
}
