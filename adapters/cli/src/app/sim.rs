//! `gcbulk sim`: gcbulk's pacing against the retry strategies people use, on the same work, in
//! the simulated Genesys Cloud and in virtual time.

use std::path::Path;

use gcbulk_sim::compare::{self, Error, Format};

use super::args::{FormatArg, SimArgs, SimCommand, SimCompareArgs};
use super::{Exit, Failure, Ui};

/// Runs `gcbulk sim list` or `gcbulk sim compare`.
pub(crate) fn sim(args: &SimArgs, ui: &Ui) -> Result<Exit, Failure> {
    match &args.command {
        SimCommand::List => {
            ui.out(compare::list_cli().trim_end());
            Ok(Exit::Applied)
        }
        SimCommand::Compare(args) => compare(args, ui),
    }
}

fn compare(args: &SimCompareArgs, ui: &Ui) -> Result<Exit, Failure> {
    let format = match args.format {
        FormatArg::Table => Format::Table,
        FormatArg::Json => Format::Json,
    };
    let (text, picture) =
        compare::compare_and_plot(&args.scenario, args.seed, format, args.plot.is_some()).map_err(
            |error| match error {
                Error::Scenario(_) | Error::Format(_) => Failure::usage(error.to_string()),
                _ => Failure::run(error.to_string()),
            },
        )?;
    ui.out(text.trim_end());
    if let (Some(path), Some(picture)) = (&args.plot, picture) {
        write(path, &picture)
            .map_err(|error| Failure::run(format!("cannot write {}: {error}", path.display())))?;
        ui.note(&format!("plot: {}", path.display()));
    }
    Ok(Exit::Applied)
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}
