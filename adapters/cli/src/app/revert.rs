//! `gcbulk revert JOURNAL`: put back the before-values of every user a run updated.
//!
//! Each updated row of the journal becomes a row keyed by the user's id whose wishes are the
//! values the run replaced (a manager by id, an empty value cleared). The run expects each user
//! at the version the journal says the run left it at, so a user someone changed since is
//! reported as changed since and left alone rather than overwritten.

use std::collections::HashMap;
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
    let default_journal = {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
        path.with_file_name(format!("{stem}.revert.jsonl"))
    };
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
        journal: args.run.journal.clone().unwrap_or(default_journal),
        report: args.run.report.clone(),
        concurrency: args.run.concurrency,
        max_rate: args.run.max_rate,
        clear_empty: false,
    };
    run::run(job, ui)
}

/// One row per updated user, named by the journal line that records the update, and the version
/// each user must still be at.
fn revert_rows(file: &str, loaded: &Loaded) -> (Vec<ChangeRow>, HashMap<String, u64>) {
    let file: Arc<str> = Arc::from(file);
    let mut rows = Vec::new();
    let mut versions = HashMap::new();
    for recorded in loaded.rows.values() {
        let RowOutcome::Updated {
            user_id,
            changes,
            version_after,
            ..
        } = &recorded.record.outcome
        else {
            continue;
        };
        rows.push(ChangeRow {
            source: Source {
                file: file.clone(),
                line: recorded.journal_line,
            },
            key: UserKey::Id(user_id.clone()),
            desired: before_values(changes),
        });
        versions.insert(user_id.clone(), *version_after);
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
    use super::*;

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
