//! The end of a run: the summary a person reads, and the JSON report a program reads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gcbulk::input::{RowError, count};
use gcbulk_core::genesys::{Field, FieldChange, RequestCounts, RowOutcome, RowReport, UserUpdate};
use gcbulk_ureq::RunStats;
use serde::Serialize;
use serde_json::json;

use super::journal::InputInfo;
use super::run::left_by_stop;
use super::{Failure, Ui};

/// At most this many rows of each kind are listed on the terminal; the report has them all.
const LISTED: usize = 30;

/// Rows by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Tally {
    /// Changed and confirmed by the server.
    pub(crate) updated: u64,
    /// Of `updated`, those whose PATCH lost its answer (a kill, a cut connection) and were found
    /// made when the row was run again.
    pub(crate) updated_by_interrupted_run: u64,
    /// Dry run: would change.
    pub(crate) would_update: u64,
    /// Already as the row asks.
    pub(crate) unchanged: u64,
    /// Refused before sending: by the reader or by the checks.
    pub(crate) rejected: u64,
    /// No such user.
    pub(crate) not_found: u64,
    /// Refused by the server.
    pub(crate) failed: u64,
    /// No final answer, or too many version conflicts; `--resume` retries them.
    pub(crate) gave_up: u64,
    /// Of `gave_up`, those that met a concurrent editor too often.
    pub(crate) conflict_gave_up: u64,
    /// The same as an earlier row.
    pub(crate) duplicates: u64,
    /// Reverting: changed by someone else since, so left alone.
    pub(crate) changed_since: u64,
}

impl Tally {
    fn add(&mut self, outcome: &RowOutcome) {
        match outcome {
            RowOutcome::Updated { answer_lost, .. } => {
                self.updated += 1;
                self.updated_by_interrupted_run += u64::from(*answer_lost);
            }
            RowOutcome::WouldUpdate { .. } => self.would_update += 1,
            RowOutcome::Unchanged { .. } => self.unchanged += 1,
            RowOutcome::Duplicate { .. } => self.duplicates += 1,
            RowOutcome::NotFound => self.not_found += 1,
            RowOutcome::Rejected { .. } => self.rejected += 1,
            RowOutcome::ChangedSince { .. } => self.changed_since += 1,
            RowOutcome::ConflictGaveUp { .. } => {
                self.gave_up += 1;
                self.conflict_gave_up += 1;
            }
            RowOutcome::Failed { .. } => self.failed += 1,
            RowOutcome::GaveUp { .. } => self.gave_up += 1,
            _ => self.failed += 1,
        }
    }

    /// Rows that did not get what they asked for.
    pub(crate) fn not_applied(&self) -> u64 {
        self.rejected + self.not_found + self.failed + self.gave_up + self.changed_since
    }
}

/// The requests a run made.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Requests {
    /// Requests that went out on the network.
    pub(crate) total: u64,
    /// Answered 429.
    pub(crate) throttled: u64,
    /// Answered 5xx or lost in transport, and retried.
    pub(crate) transient: u64,
    /// The requests the run asked for, by purpose (a stop refuses some of them unsent).
    pub(crate) by_purpose: RequestCounts,
}

impl Requests {
    /// What `machine` asked for and the driver sent.
    pub(crate) fn of(machine: &UserUpdate, run: &RunStats) -> Self {
        let stats = machine.stats();
        Self {
            total: run.sent,
            throttled: stats.throttled,
            transient: stats.transient,
            by_purpose: machine.request_counts(),
        }
    }
}

/// Someone a run read: what a person recognises them by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) name: Option<String>,
    pub(crate) email: Option<String>,
}

/// The managers a dry run's diff names, as far as the run knows them: the users it read, by id,
/// and the e-mail each sheet line named its manager by.
#[derive(Clone, Debug, Default)]
pub(crate) struct People {
    pub(crate) by_id: HashMap<String, Person>,
    pub(crate) named: HashMap<u64, String>,
}

impl People {
    /// A manager as a person reads it: `"Ada Lovelace <ada@example.com>" (id)`, the e-mail as
    /// the sheet wrote it when `line` named them so; `(id)` for someone the run never read, and
    /// `(none)` for no manager.
    fn manager(&self, id: &str, line: Option<u64>) -> String {
        if id.is_empty() {
            return "(none)".to_owned();
        }
        let known = self.by_id.get(id).cloned().unwrap_or_default();
        let email = line
            .and_then(|line| self.named.get(&line).cloned())
            .or(known.email);
        let shown = match (known.name, email) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (Some(name), None) => name,
            (None, Some(email)) => email,
            (None, None) => return format!("({id})"),
        };
        format!("{shown:?} ({id})")
    }
}

/// Everything the end of a run reports.
#[derive(Debug)]
pub(crate) struct Summary<'a> {
    pub(crate) command: &'a str,
    pub(crate) input: &'a InputInfo,
    pub(crate) target: &'a str,
    /// Every row's outcome, this run's and (resuming) the earlier runs', by line.
    pub(crate) reports: &'a [RowReport],
    pub(crate) row_errors: &'a [RowError],
    pub(crate) requests: Requests,
    pub(crate) elapsed: Duration,
    pub(crate) journal: Option<PathBuf>,
    pub(crate) report: Option<PathBuf>,
    /// Rows an earlier run finished.
    pub(crate) resumed_rows: usize,
    pub(crate) stopped: bool,
    pub(crate) dry_run: bool,
    /// Whom a dry run's manager changes name.
    pub(crate) people: People,
}

impl Summary<'_> {
    /// The rows by outcome; rows the reader refused count as rejected, once per line.
    pub(crate) fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for report in self.reports {
            tally.add(&report.outcome);
        }
        tally.rejected += self.unreadable_rows();
        tally
    }

    /// Rows the reader refused (a row may have several errors, all on its first line).
    fn unreadable_rows(&self) -> u64 {
        let mut lines: Vec<u64> = self.row_errors.iter().map(|e| e.source.line).collect();
        lines.dedup();
        lines.len() as u64
    }
}

/// Writes the JSON report.
pub(crate) fn write_report(path: &Path, summary: &Summary<'_>) -> Result<(), Failure> {
    let tally = summary.tally();
    let input_errors: Vec<_> = summary
        .row_errors
        .iter()
        .map(|e| {
            json!({
                "file": &*e.source.file,
                "line": e.source.line,
                "field": e.field,
                "message": e.message,
            })
        })
        .collect();
    let report = json!({
        "summary": tally,
        "requests": summary.requests,
        "elapsed_s": summary.elapsed.as_secs_f64(),
        "command": summary.command,
        "input": summary.input,
        "target": summary.target,
        "dry_run": summary.dry_run,
        "stopped": summary.stopped,
        "resumed_rows": summary.resumed_rows,
        "journal": summary.journal,
        "rows": summary.reports,
        "input_errors": input_errors,
    });
    let text = serde_json::to_string_pretty(&report)
        .map_err(|error| Failure::run(format!("cannot write the report: {error}")))?;
    std::fs::write(path, text + "\n").map_err(|error| {
        Failure::run(format!(
            "cannot write the report {}: {error}",
            path.display()
        ))
    })
}

/// Prints the summary (and a dry run's diff) on stdout.
pub(crate) fn print_summary(ui: &Ui, summary: &Summary<'_>, report_written: bool) {
    let mut text = String::new();
    if summary.dry_run {
        diff(&mut text, summary.reports, &summary.people);
    }
    let tally = summary.tally();
    let rows = summary.reports.len() as u64 + summary.unreadable_rows();
    let _ = writeln!(
        text,
        "\n{} of {} against {}, in {:.1} s{}",
        rows_of(rows as usize),
        summary.input.path,
        summary.target,
        summary.elapsed.as_secs_f64(),
        if summary.stopped { " (stopped)" } else { "" }
    );
    let mut count = |label: &str, n: u64, always: bool| {
        if always || n > 0 {
            let _ = writeln!(text, "  {label:<14} {n:>7}");
        }
    };
    if summary.dry_run {
        count("would update", tally.would_update, true);
        // Rows an earlier run updated, read back from its journal when resuming.
        count("updated", tally.updated, false);
    } else {
        count("updated", tally.updated, true);
    }
    count("unchanged", tally.unchanged, true);
    count("rejected", tally.rejected, true);
    count("not found", tally.not_found, true);
    count("failed", tally.failed, true);
    count("gave up", tally.gave_up, true);
    count("duplicates", tally.duplicates, false);
    count("changed since", tally.changed_since, false);
    let requests = summary.requests;
    let _ = writeln!(
        text,
        "requests: {} sent this run, {} answered 429 (throttled){}",
        requests.total,
        requests.throttled,
        if requests.transient > 0 {
            format!(
                ", {} retried after server or network errors",
                requests.transient
            )
        } else {
            String::new()
        }
    );
    if tally.updated_by_interrupted_run > 0 {
        let _ = writeln!(
            text,
            "updated by the interrupted run: {} of the updated rows, whose PATCH was sent but \
             whose answer was lost (a crash, a kill or a cut connection); each user now holds \
             what its row asks",
            tally.updated_by_interrupted_run
        );
    }
    if summary.resumed_rows > 0 {
        let _ = writeln!(
            text,
            "resumed: {} finished by an earlier run and counted above",
            rows_of(summary.resumed_rows)
        );
    }
    if let Some(journal) = &summary.journal {
        let _ = writeln!(text, "journal: {}", journal.display());
    }
    if let Some(report) = &summary.report
        && report_written
    {
        let _ = writeln!(text, "report:  {}", report.display());
    }
    lists(&mut text, summary);
    ui.out(text.trim_end());
}

/// A dry run's changes, one line per user: `line 12 jane@x: title "Agent" → "Team Lead"`.
fn diff(text: &mut String, reports: &[RowReport], people: &People) {
    let mut any = false;
    for report in reports {
        let RowOutcome::WouldUpdate { changes, .. } = &report.outcome else {
            continue;
        };
        any = true;
        let line = report.source.line;
        let fields: Vec<String> = changes
            .iter()
            .map(|change| describe_change(change, line, people))
            .collect();
        let _ = writeln!(
            text,
            "line {} {}: {}",
            report.source.line,
            report.key,
            fields.join("; ")
        );
    }
    if any {
        text.push('\n');
    }
}

/// One field's change; a manager by name and e-mail, the id beside it.
fn describe_change(change: &FieldChange, line: u64, people: &People) -> String {
    if change.field == Field::Manager {
        return format!(
            "{} {} → {}",
            change.field,
            people.manager(&change.before, None),
            people.manager(&change.after, Some(line))
        );
    }
    format!("{} {:?} → {:?}", change.field, change.before, change.after)
}

/// The rows that need a person's attention, by kind.
fn lists(text: &mut String, summary: &Summary<'_>) {
    let mut rejected: Vec<(u64, String)> = summary
        .row_errors
        .iter()
        .map(|e| (e.source.line, e.to_string()))
        .collect();
    rejected.extend(
        summary
            .reports
            .iter()
            .filter(|r| matches!(r.outcome, RowOutcome::Rejected { .. }))
            .map(|r| (r.source.line, format!("{}: {}", r.source, r.outcome))),
    );
    rejected.sort_by_key(|(line, _)| *line);
    let rejected: Vec<String> = rejected.into_iter().map(|(_, text)| text).collect();
    section(text, "rejected (not sent)", &rejected);

    let of = |keep: fn(&RowOutcome) -> bool| -> Vec<String> {
        summary
            .reports
            .iter()
            .filter(|r| keep(&r.outcome))
            .map(|r| format!("{}: {}: {}", r.source, r.key, r.outcome))
            .collect()
    };
    section(
        text,
        "not found",
        &of(|o| matches!(o, RowOutcome::NotFound)),
    );
    section(
        text,
        "failed",
        &of(|o| matches!(o, RowOutcome::Failed { .. })),
    );
    section(
        text,
        "changed by someone else since (left alone)",
        &of(|o| matches!(o, RowOutcome::ChangedSince { .. })),
    );
    let gave_up = of(|o| match o {
        RowOutcome::GaveUp { reason, .. } => !left_by_stop(reason),
        RowOutcome::ConflictGaveUp { .. } => true,
        _ => false,
    });
    let gave_up_title = if summary.dry_run {
        "gave up (run the dry run again to retry them)"
    } else {
        "gave up (run again with --resume to retry them)"
    };
    section(text, gave_up_title, &gave_up);

    let left = summary
        .reports
        .iter()
        .filter(|r| matches!(&r.outcome, RowOutcome::GaveUp { reason, .. } if left_by_stop(reason)))
        .count();
    if left > 0 && summary.dry_run {
        let _ = writeln!(
            text,
            "\nstopped: {} not compared; a dry run writes no journal, so run it again to see \
             them all",
            rows_of(left)
        );
    } else if left > 0 {
        let _ = writeln!(
            text,
            "\nstopped: {} not finished; run the same command again with --resume to carry on \
             where this run stopped",
            rows_of(left)
        );
    }
}

fn section(text: &mut String, title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(text, "\n{title}:");
    for line in lines.iter().take(LISTED) {
        let _ = writeln!(text, "  {line}");
    }
    if lines.len() > LISTED {
        let _ = writeln!(
            text,
            "  … and {} more (--report FILE lists them all)",
            lines.len() - LISTED
        );
    }
}

/// "1 row", "2 rows".
pub(crate) fn rows_of(n: usize) -> String {
    count(n, "row", "rows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_count_agrees_with_its_number() {
        assert_eq!(rows_of(0), "0 rows");
        assert_eq!(rows_of(1), "1 row");
        assert_eq!(rows_of(2), "2 rows");
    }

    #[test]
    fn a_manager_is_shown_by_name_and_e_mail_with_the_id_beside() {
        let mut people = People::default();
        let ada = Person {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
        };
        people.by_id.insert("m1".into(), ada);
        let grace = Person {
            name: Some("Grace Hopper".into()),
            email: Some("grace@example.com".into()),
        };
        people.by_id.insert("m2".into(), grace);
        people.named.insert(12, "Grace@Example.com".into());
        let change = |before: &str, after: &str| FieldChange {
            field: Field::Manager,
            before: before.into(),
            after: after.into(),
        };

        assert_eq!(
            describe_change(&change("m1", "m2"), 12, &people),
            r#"manager "Ada Lovelace <ada@example.com>" (m1) → "Grace Hopper <Grace@Example.com>" (m2)"#
        );
        assert_eq!(
            describe_change(&change("", "m2"), 13, &people),
            r#"manager (none) → "Grace Hopper <grace@example.com>" (m2)"#
        );
        assert_eq!(
            describe_change(&change("m9", ""), 13, &people),
            "manager (m9) → (none)"
        );
        let title = FieldChange {
            field: Field::Title,
            before: "Agent".into(),
            after: "Lead".into(),
        };
        assert_eq!(
            describe_change(&title, 12, &people),
            r#"title "Agent" → "Lead""#
        );
    }
}
