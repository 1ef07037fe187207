//! `gcbulk update FILE`: read the change file, then run it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gcbulk::input::{ReadOptions, read_changes};

use super::args::UpdateArgs;
use super::journal::{InputInfo, sha256_hex};
use super::run::{self, Job};
use super::target::{self, Environment};
use super::{Exit, Failure, Ui};

/// Applies the change file `args` names. The demo calls this too, with its own environment.
pub(crate) fn update(args: &UpdateArgs, env: &Environment, ui: &Ui) -> Result<Exit, Failure> {
    let shown = args.file.display().to_string();
    let bytes = std::fs::read(&args.file)
        .map_err(|error| Failure::usage(format!("cannot read {shown}: {error}")))?;
    let options = ReadOptions {
        clear_empty: args.clear_empty,
        format: None,
    };
    let input = read_changes(&shown, &bytes, &options)
        .map_err(|error| Failure::usage(error.to_string()))?;

    for column in &input.ignored_columns {
        ui.warn(&format!("{shown}: {column}"));
    }
    for error in &input.row_errors {
        ui.error_line(&error.to_string());
    }
    let mut error_lines: Vec<u64> = input.row_errors.iter().map(|e| e.source.line).collect();
    error_lines.dedup();
    let rows = input.rows.len() + error_lines.len();
    if !input.row_errors.is_empty() {
        ui.note(&format!(
            "{} of {rows} rows have errors and will not be sent; the others will",
            error_lines.len()
        ));
    }
    if rows == 0 {
        ui.note(&format!("{shown}: no rows, nothing to do"));
        return Ok(Exit::Applied);
    }
    // After the sheet: its mistakes are worth seeing before any credentials are at hand.
    let connection = target::connect(&args.target, env, None, ui)?;

    let job = Job {
        command: "update",
        input: InputInfo {
            path: shown,
            sha256: sha256_hex(&bytes),
            rows: rows as u64,
        },
        rows: input.rows,
        row_errors: input.row_errors,
        expect_versions: HashMap::new(),
        connection,
        dry_run: args.run.dry_run,
        resume: args.run.resume,
        journal: args
            .run
            .journal
            .clone()
            .unwrap_or_else(|| beside(&args.file, ".journal.jsonl")),
        report: args.run.report.clone(),
        concurrency: args.run.concurrency,
        max_rate: args.run.max_rate,
        clear_empty: args.clear_empty,
    };
    run::run_traced(job, args.trace.as_deref(), ui)
}

/// `path` with `suffix` added to its file name: `reorg.csv` → `reorg.csv.journal.jsonl`.
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_goes_beside_the_input() {
        assert_eq!(
            beside(Path::new("/data/reorg.csv"), ".journal.jsonl"),
            Path::new("/data/reorg.csv.journal.jsonl")
        );
        assert_eq!(
            beside(Path::new("reorg.csv"), ".journal.jsonl"),
            Path::new("reorg.csv.journal.jsonl")
        );
    }
}
