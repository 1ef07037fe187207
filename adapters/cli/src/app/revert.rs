//! `gcbulk revert JOURNAL`: put back the before-values of every user a run updated.
//!
//! Each updated row of the journal becomes a row keyed by the user's id whose wishes are the
//! values the run replaced (a manager by id, an empty value cleared). The run expects each user
//! at the version the journal says the run left it at, so a user someone changed since is
//! reported as changed since and left alone rather than overwritten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gcbulk_core::change::{ChangeRow, Desired, ManagerRef, Source, UserKey, UserState};
use gcbulk_core::genesys::{Field, FieldChange, RowOutcome};

use super::args::RevertArgs;
use super::journal::{self, InputInfo, Loaded, sha256_hex};
use super::run::{self, Job};
use super::target::{self, Environment, Target};
use super::{Exit, Failure, Ui};

/// Reverts the run whose journal `args` names.
pub(crate) fn revert(args: &RevertArgs, env: &Environment, ui: &Ui) -> Result<Exit, Failure> {
    let path = &args.journal_to_revert;
    let shown = path.display().to_string();
    // An update still writing this journal would add users the revert never sees.
    let _held = match args.run.dry_run {
        true => None,
        false => Some(journal::Lock::take(path)?),
    };
    let bytes = std::fs::read(path)
        .map_err(|error| Failure::usage(format!("cannot read {shown}: {error}")))?;
    let loaded = journal::read(path)?;

    let recorded = Target {
        api_base: loaded.header.target.clone(),
        login_base: loaded.header.login.clone(),
    };
    let connection = target::connect(&args.target, env, Some(recorded.clone()), ui)?;
    if connection.target.api_base != recorded.api_base {
        return Err(Failure::usage(format!(
            "{shown} records a run against {}, not {}: a revert goes to the organisation the run \
             changed",
            recorded.api_base, connection.target.api_base
        )));
    }

    let (rows, expect_versions) = revert_rows(&shown, &loaded);
    if rows.is_empty() {
        ui.note(&format!(
            "{shown} records no updated user: nothing to revert"
        ));
        return Ok(Exit::Applied);
    }
    let job = Job {
        command: "revert",
        input: InputInfo {
            path: shown,
            sha256: sha256_hex(&bytes),
            rows: rows.len() as u64,
        },
        rows,
        row_errors: Vec::new(),
        expect_versions,
        connection,
        dry_run: args.run.dry_run,
        resume: args.run.resume,
        journal: args
            .run
            .journal
            .clone()
            .unwrap_or_else(|| default_journal(path)),
        report: args.run.report.clone(),
        concurrency: args.run.concurrency,
        max_rate: args.run.max_rate,
        clear_empty: false,
    };
    run::run(job, ui)
}

/// Where a revert keeps its own journal unless told: beside the journal it reverts, `.jsonl`
/// replaced by `.revert.jsonl` (`reorg.csv.journal.jsonl` → `reorg.csv.journal.revert.jsonl`).
/// The help text of `--journal` says so (`args::REVERT_JOURNAL_HELP`).
pub(crate) fn default_journal(reverted: &Path) -> PathBuf {
    let name = reverted.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    reverted.with_file_name(format!("{stem}.revert.jsonl"))
}

/// A write the journal shows, or announces: from one version of a user to a later one.
#[derive(Debug)]
struct Write<'a> {
    from: u64,
    to: u64,
    changes: &'a [FieldChange],
    journal_line: u64,
    confirmed: bool,
}

/// One row per user the run wrote, named by the journal line of its last write, and the version
/// each user must still be at.
///
/// A user's writes are the updates the journal confirms and the PATCHes it announced (whose
/// answers a crash may have lost). Walking back from the latest, each write that ends at the
/// version the next one started from belongs to the run; the values before the earliest of them
/// are what the user goes back to, and the latest one's version is the one to expect. Users whose
/// last outcome says the server refused the write (a 4xx) are left out: nothing of theirs
/// landed.
fn revert_rows(file: &str, loaded: &Loaded) -> (Vec<ChangeRow>, HashMap<String, u64>) {
    let file: Arc<str> = Arc::from(file);
    let mut writes: HashMap<&str, Vec<Write<'_>>> = HashMap::new();
    let mut refused: HashMap<&str, bool> = HashMap::new();
    let mut last_line: HashMap<&str, u64> = HashMap::new();
    for recorded in loaded.rows.values() {
        let outcome = &recorded.record.outcome;
        if let RowOutcome::Updated {
            user_id,
            changes,
            version_before,
            version_after,
            ..
        } = outcome
        {
            writes.entry(user_id).or_default().push(Write {
                from: *version_before,
                to: *version_after,
                changes,
                journal_line: recorded.journal_line,
                confirmed: true,
            });
        }
        if let Some(user_id) = outcome.user_id() {
            let line = last_line.entry(user_id).or_default();
            if recorded.journal_line > *line {
                *line = recorded.journal_line;
                // A 4xx (or a conflict every time) refused the write; a 2xx or a 5xx may have
                // made it, and the version each revert expects leaves alone a user it did not.
                let no_write = matches!(
                    outcome,
                    RowOutcome::Failed {
                        status: 400..=499,
                        ..
                    } | RowOutcome::ConflictGaveUp { .. }
                );
                refused.insert(user_id, no_write);
            }
        }
    }
    // A PATCH the server refused wrote nothing; one without an answer may have written.
    for (journal_line, patch) in loaded.patches_not_refused() {
        writes.entry(&patch.user_id).or_default().push(Write {
            from: patch.version,
            // A journal is a file anyone can edit: a version at the end of the range is damage,
            // not a reason to overflow.
            to: patch.version.saturating_add(1),
            changes: &patch.changes,
            journal_line: *journal_line,
            confirmed: false,
        });
    }

    let mut rows = Vec::new();
    let mut versions = HashMap::new();
    for (user_id, mut writes) in writes {
        let confirmed = writes.iter().any(|w| w.confirmed);
        if !confirmed && refused.get(user_id).copied().unwrap_or(false) {
            continue;
        }
        // Latest first; a confirmed update before an announcement of the same end.
        writes.sort_by_key(|w| std::cmp::Reverse((w.to, w.confirmed, w.journal_line)));
        let latest = &writes[0];
        let mut before: Vec<FieldChange> = latest.changes.to_vec();
        let mut at = latest.from;
        while let Some(earlier) = writes.iter().find(|w| w.to == at && w.from < at) {
            for change in earlier.changes {
                before.retain(|c| c.field != change.field);
                before.push(change.clone());
            }
            at = earlier.from;
        }
        if before.is_empty() {
            continue;
        }
        rows.push(ChangeRow {
            source: Source {
                file: file.clone(),
                line: latest.journal_line,
            },
            key: UserKey::Id(user_id.to_owned()),
            desired: before_values(&before),
        });
        versions.insert(user_id.to_owned(), latest.to);
    }
    rows.sort_by_key(|row| row.source.line);
    (rows, versions)
}

/// The values `changes` replaced, as wishes.
fn before_values(changes: &[FieldChange]) -> Desired {
    let mut desired = Desired::default();
    for change in changes {
        let before = Some(change.before.clone());
        match change.field {
            Field::Name => desired.name = before,
            Field::Email => desired.email = before,
            Field::Title => desired.title = before,
            Field::Department => desired.department = before,
            Field::PhoneWork => desired.phone_work = before,
            Field::Extension => desired.extension = before,
            Field::Username => desired.username = before,
            Field::PreferredName => desired.preferred_name = before,
            Field::Manager if change.before.is_empty() => desired.manager = Some(ManagerRef::Clear),
            Field::Manager => desired.manager = Some(ManagerRef::Id(change.before.clone())),
            Field::State => desired.state = UserState::parse(&change.before),
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use gcbulk_core::genesys::RowOutcome;

    use super::super::journal::{
        Header, InputInfo, Journal, JournalOptions, PatchIntent, PatchRefused, RowRecord, VERSION,
    };
    use super::*;

    fn journal_with(lines: &[Line]) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let header = Header {
            version: VERSION,
            command: "update".into(),
            input: InputInfo {
                path: "s.csv".into(),
                sha256: String::new(),
                rows: 1,
            },
            target: "http://127.0.0.1:1".into(),
            login: "http://127.0.0.1:1".into(),
            options: JournalOptions {
                clear_empty: false,
                concurrency: 1,
                max_rate: None,
            },
            started_at: String::new(),
        };
        let mut journal = Journal::create(&path, &header).unwrap();
        for line in lines {
            match line {
                Line::Patch(patch) => journal.append_patch(patch).unwrap(),
                Line::Row(record) => journal.append_row(record).unwrap(),
                Line::Refused(refusal) => journal.append_patch_refused(refusal).unwrap(),
            }
        }
        let loaded = journal::read(&path).unwrap();
        (dir, loaded)
    }

    enum Line {
        Patch(PatchIntent),
        Row(RowRecord),
        Refused(PatchRefused),
    }

    fn refused(version: u64, status: u16) -> Line {
        Line::Refused(PatchRefused {
            user_id: "u1".into(),
            version,
            status,
        })
    }

    fn patch(version: u64, field: Field, before: &str, after: &str) -> Line {
        Line::Patch(PatchIntent {
            user_id: "u1".into(),
            version,
            changes: vec![change(field, before, after)],
        })
    }

    fn row(outcome: RowOutcome) -> Line {
        Line::Row(RowRecord {
            line: 2,
            key: UserKey::Email("a@example.com".into()),
            outcome,
        })
    }

    #[test]
    fn a_patch_whose_answer_was_lost_is_reverted_from_its_announcement() {
        // Killed after the PATCH landed; the resumed run found the user already as asked.
        let (_dir, loaded) = journal_with(&[
            patch(4, Field::Title, "Agent", "Lead"),
            row(RowOutcome::Unchanged {
                user_id: "u1".into(),
                version: 5,
            }),
        ]);
        let (rows, versions) = revert_rows("j.jsonl", &loaded);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].desired.title.as_deref(), Some("Agent"));
        assert_eq!(versions["u1"], 5);
    }

    #[test]
    fn a_write_reported_updated_by_the_interrupted_run_is_reverted_once() {
        // Sent, its answer lost to a cut connection, sent again and refused as a conflict; the
        // row then found the user as asked and was reported updated by the interrupted run.
        let (_dir, loaded) = journal_with(&[
            patch(4, Field::Title, "Agent", "Lead"),
            patch(4, Field::Title, "Agent", "Lead"),
            refused(4, 409),
            row(RowOutcome::Updated {
                user_id: "u1".into(),
                changes: vec![change(Field::Title, "Agent", "Lead")],
                version_before: 4,
                version_after: 5,
                answer_lost: true,
            }),
        ]);
        let (rows, versions) = revert_rows("j.jsonl", &loaded);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].desired.title.as_deref(), Some("Agent"));
        assert_eq!(versions["u1"], 5);
    }

    #[test]
    fn a_patch_refused_as_a_conflict_is_someone_elses_write() {
        // Someone else made the same change first: the row is unchanged, and reverting it would
        // undo their work.
        let (_dir, loaded) = journal_with(&[
            patch(4, Field::Title, "Agent", "Lead"),
            refused(4, 409),
            row(RowOutcome::Unchanged {
                user_id: "u1".into(),
                version: 5,
            }),
        ]);
        let (rows, _) = revert_rows("j.jsonl", &loaded);
        assert!(rows.is_empty(), "{rows:?}");
    }

    #[test]
    fn writes_split_by_a_crash_are_chained_back_to_the_first() {
        // The fields landed, the crash came, the resumed run made the state change alone.
        let (_dir, loaded) = journal_with(&[
            patch(4, Field::Title, "Agent", "Lead"),
            patch(5, Field::State, "active", "inactive"),
            row(RowOutcome::Updated {
                user_id: "u1".into(),
                changes: vec![change(Field::State, "active", "inactive")],
                version_before: 5,
                version_after: 6,
                answer_lost: false,
            }),
        ]);
        let (rows, versions) = revert_rows("j.jsonl", &loaded);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].desired.title.as_deref(), Some("Agent"));
        assert_eq!(rows[0].desired.state, Some(UserState::Active));
        assert_eq!(versions["u1"], 6);
    }

    #[test]
    fn a_refused_patch_is_not_reverted() {
        let (_dir, loaded) = journal_with(&[
            patch(4, Field::Title, "Agent", "Lead"),
            row(RowOutcome::Failed {
                user_id: Some("u1".into()),
                status: 400,
                code: Some("bad.request".into()),
                message: None,
                correlation_id: None,
            }),
        ]);
        let (rows, _) = revert_rows("j.jsonl", &loaded);
        assert!(rows.is_empty());
    }

    #[test]
    fn a_patch_accepted_with_an_unreadable_answer_is_reverted() {
        // A 2xx the machine could not read, or a 5xx, may have made the change: the version the
        // revert expects decides, not the outcome.
        for status in [200, 503] {
            let (_dir, loaded) = journal_with(&[
                patch(4, Field::Title, "Agent", "Lead"),
                row(RowOutcome::Failed {
                    user_id: Some("u1".into()),
                    status,
                    code: Some("unreadable.user".into()),
                    message: None,
                    correlation_id: None,
                }),
            ]);
            let (rows, versions) = revert_rows("j.jsonl", &loaded);
            assert_eq!(rows.len(), 1, "{status}");
            assert_eq!(rows[0].desired.title.as_deref(), Some("Agent"));
            assert_eq!(versions["u1"], 5);
        }
    }

    #[test]
    fn a_version_at_the_end_of_the_range_is_no_overflow() {
        let (_dir, loaded) = journal_with(&[patch(u64::MAX, Field::Title, "Agent", "Lead")]);
        let (rows, versions) = revert_rows("j.jsonl", &loaded);
        assert_eq!(rows.len(), 1);
        assert_eq!(versions["u1"], u64::MAX);
    }

    fn change(field: Field, before: &str, after: &str) -> FieldChange {
        FieldChange {
            field,
            before: before.into(),
            after: after.into(),
        }
    }

    #[test]
    fn before_values_become_the_wishes() {
        let desired = before_values(&[
            change(Field::Title, "Agent", "Team Lead"),
            change(Field::Manager, "", "m2"),
            change(Field::Extension, "", "1234"),
            change(Field::State, "active", "inactive"),
        ]);
        assert_eq!(desired.title.as_deref(), Some("Agent"));
        assert_eq!(desired.manager, Some(ManagerRef::Clear));
        assert_eq!(desired.extension.as_deref(), Some(""));
        assert_eq!(desired.state, Some(UserState::Active));
        assert_eq!(desired.department, None);

        let desired = before_values(&[change(Field::Manager, "m1", "m2")]);
        assert_eq!(desired.manager, Some(ManagerRef::Id("m1".into())));
    }
}
