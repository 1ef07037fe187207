//! The journal file: created or reopened, appended to row by row, read back for a resume or a
//! revert. What its lines say is the `gcbulk::journal` format's business.
//!
//! Each line goes to the file in one write before the row is counted anywhere else, so a
//! `kill -9` loses at most rows that were never confirmed; a line recording a write to Genesys
//! (its before-values are what `revert` needs) is also synced to the disk, so not even a power
//! cut loses it. A torn last line (a crash mid-write) is tolerated when reading and cut off
//! before a resumed run appends.
//!
//! A run holds an exclusive advisory lock on its journal from before it reads it until the
//! process ends (the system drops it on any exit, `kill -9` included), so a second run on the same
//! journal stops at once instead of patching the same users again.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use gcbulk::journal::{Entry, ReadError, parse};
pub(crate) use gcbulk::journal::{
    Header, InputInfo, JournalOptions, Loaded, PatchIntent, PatchRefused, RowRecord, Unanswered,
    VERSION,
};
use gcbulk_core::genesys::RowOutcome;
use sha2::{Digest, Sha256};

use super::Failure;

/// An exclusive advisory lock on a journal file, held while it lives.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Locks the journal at `path`, refusing at once if another run holds it.
    pub(crate) fn take(path: &Path) -> Result<Self, Failure> {
        let file = OpenOptions::new().read(true).open(path).map_err(|error| {
            Failure::usage(format!(
                "cannot open the journal {}: {error}",
                path.display()
            ))
        })?;
        Self::hold(file, path)
    }

    fn hold(file: File, path: &Path) -> Result<Self, Failure> {
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Failure::usage(format!(
                "{} is in use by another gcbulk run: wait for that run to finish (or stop it), \
                 then run this again",
                path.display()
            ))),
            Err(TryLockError::Error(error)) => Err(Failure::usage(format!(
                "cannot lock the journal {}: {error}",
                path.display()
            ))),
        }
    }
}

/// An open journal, appended to row by row.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Held for as long as the journal is open (in practice, until the process ends).
    _lock: Lock,
    /// PATCHes recorded through this handle: once there is one, the journal is needed to revert.
    patches: u64,
}

impl Journal {
    /// Starts a new journal at `path`; refuses if one is there already.
    pub(crate) fn create(path: &Path, header: &Header) -> Result<Self, Failure> {
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(path)
            .map_err(|error| match error.kind() {
                io::ErrorKind::AlreadyExists => Failure::usage(format!(
                    "{} already exists: it is the journal of an earlier run of this sheet. Add \
                     --resume to carry that run on (finished rows are skipped), or give another \
                     --journal PATH to start afresh",
                    path.display()
                )),
                _ => Failure::usage(format!(
                    "cannot create the journal {}: {error}",
                    path.display()
                )),
            })?;
        let lock = Lock::hold(file.try_clone().map_err(cannot_lock(path))?, path)?;
        let mut journal = Self {
            path: path.to_owned(),
            file,
            _lock: lock,
            patches: 0,
        };
        journal
            .append(&Entry::Header(header))
            .map_err(|error| journal.write_failure(&error))?;
        Ok(journal)
    }

    /// Reopens a journal read by [`read`] to append to it, cutting off a torn last line first.
    /// `lock` is the one taken before reading it (taken here if there is none).
    pub(crate) fn reopen(
        path: &Path,
        loaded: &Loaded,
        started_at: &str,
        lock: Option<Lock>,
    ) -> Result<Self, Failure> {
        let lock = match lock {
            Some(lock) => lock,
            None => Lock::take(path)?,
        };
        let failure = |error: io::Error| {
            Failure::run(format!(
                "cannot append to the journal {}: {error}",
                path.display()
            ))
        };
        let file = OpenOptions::new().write(true).open(path).map_err(failure)?;
        if loaded.torn {
            file.set_len(loaded.whole_len()).map_err(failure)?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(failure)?;
        if loaded.unterminated() {
            file.write_all(b"\n").map_err(failure)?;
        }
        let mut journal = Self {
            path: path.to_owned(),
            file,
            _lock: lock,
            patches: 0,
        };
        journal
            .append(&Entry::Resumed { started_at })
            .map_err(|error| journal.write_failure(&error))?;
        Ok(journal)
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records a finished row before anything else counts it; a row the server changed is
    /// synced to the disk as well.
    pub(crate) fn append_row(&mut self, record: &RowRecord) -> io::Result<()> {
        self.append(&Entry::Row(record))?;
        if matches!(record.outcome, RowOutcome::Updated { .. }) {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Records a PATCH before it is sent.
    pub(crate) fn append_patch(&mut self, intent: &PatchIntent) -> io::Result<()> {
        self.patches += 1;
        self.append(&Entry::Patch(intent))
    }

    /// Whether it records a PATCH, so that it must be kept whatever became of the run.
    pub(crate) fn records_patches(&self) -> bool {
        self.patches > 0
    }

    /// Records a PATCH the server refused.
    pub(crate) fn append_patch_refused(&mut self, refusal: &PatchRefused) -> io::Result<()> {
        self.append(&Entry::PatchRefused(refusal))
    }

    /// The message for a failed write.
    pub(crate) fn write_failure(&self, error: &io::Error) -> Failure {
        Failure::run(format!(
            "cannot write the journal {}: {error}; the run stopped, and --resume will carry it on",
            self.path.display()
        ))
    }

    fn append(&mut self, entry: &Entry<'_>) -> io::Result<()> {
        let line = entry.to_line().map_err(io::Error::other)?;
        // One write per line, so a crash tears at most the last one.
        self.file.write_all(&line)
    }
}

fn cannot_lock(path: &Path) -> impl Fn(io::Error) -> Failure {
    move |error| {
        Failure::usage(format!(
            "cannot lock the journal {}: {error}",
            path.display()
        ))
    }
}

/// Reads a journal, tolerating a torn last line.
pub(crate) fn read(path: &Path) -> Result<Loaded, Failure> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|error| Failure::usage(format!("cannot read the journal {shown}: {error}")))?;
    parse(&bytes).map_err(|error| match error {
        ReadError::Line { .. } => Failure::usage(format!("{shown}:{error}")),
        _ => Failure::usage(format!("{shown}: {error}")),
    })
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The time now in RFC 3339, UTC, to the second.
pub(crate) fn now_rfc3339() -> String {
    #[expect(
        clippy::disallowed_methods,
        reason = "the journal records the wall-clock time a run started, for people to read"
    )]
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (the civil-from-days algorithm).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use gcbulk_core::change::UserKey;
    use gcbulk_core::genesys::{Field, FieldChange};

    use super::*;

    fn header() -> Header {
        Header {
            version: VERSION,
            command: "update".into(),
            input: InputInfo {
                path: "reorg.csv".into(),
                sha256: sha256_hex(b"x"),
                rows: 3,
            },
            target: "http://127.0.0.1:1".into(),
            login: "http://127.0.0.1:1".into(),
            options: JournalOptions {
                clear_empty: false,
                concurrency: 8,
                max_rate: None,
            },
            started_at: now_rfc3339(),
        }
    }

    fn updated(line: u64) -> RowRecord {
        RowRecord {
            line,
            key: UserKey::Email(format!("u{line}@example.com")),
            outcome: RowOutcome::Updated {
                user_id: format!("id-{line}"),
                changes: vec![FieldChange {
                    field: Field::Title,
                    before: "Agent".into(),
                    after: "Team Lead".into(),
                }],
                version_before: 4,
                version_after: 5,
                answer_lost: false,
            },
        }
    }

    #[test]
    fn rows_round_trip_and_the_last_record_of_a_line_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut journal = Journal::create(&path, &header()).unwrap();
        let gave_up = RowRecord {
            line: 2,
            key: UserKey::Id("id-2".into()),
            outcome: RowOutcome::GaveUp {
                user_id: None,
                reason: "stopped".into(),
                retry_after_s: None,
            },
        };
        journal.append_row(&gave_up).unwrap();
        journal.append_row(&updated(2)).unwrap();
        journal
            .append_row(&RowRecord {
                line: 3,
                key: UserKey::Id("x".into()),
                outcome: RowOutcome::NotFound,
            })
            .unwrap();
        drop(journal);

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(r#"{"type":"header","version":1,"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"{"type":"row","line":2,"key":{"email":"u2@example.com"},"outcome":"updated","#
            ),
            "{text}"
        );

        let loaded = read(&path).unwrap();
        assert_eq!(loaded.header, header_with(&loaded.header.started_at));
        assert_eq!(loaded.rows[&2].record, updated(2));
        assert_eq!(loaded.rows[&2].journal_line, 3);
        assert_eq!(loaded.rows[&3].record.outcome, RowOutcome::NotFound);
    }

    fn header_with(started_at: &str) -> Header {
        Header {
            started_at: started_at.to_owned(),
            ..header()
        }
    }

    #[test]
    fn an_existing_journal_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        Journal::create(&path, &header()).unwrap();
        let error = Journal::create(&path, &header()).unwrap_err();
        assert!(error.to_string().contains("--resume"), "{error}");
    }

    #[test]
    fn a_journal_is_held_by_one_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let journal = Journal::create(&path, &header()).unwrap();
        let in_use = |error: Failure| {
            let text = error.to_string();
            assert!(text.contains("in use by another gcbulk run"), "{text}");
            assert_eq!(error.exit, super::super::Exit::Usage);
        };
        in_use(Lock::take(&path).unwrap_err());
        drop(journal);

        let loaded = read(&path).unwrap();
        let lock = Lock::take(&path).unwrap();
        in_use(Journal::reopen(&path, &loaded, "2026-01-05T09:00:00Z", None).unwrap_err());
        let journal = Journal::reopen(&path, &loaded, "2026-01-05T09:00:00Z", Some(lock)).unwrap();
        in_use(Lock::take(&path).unwrap_err());
        drop(journal);
        drop(Lock::take(&path).unwrap());
    }

    #[test]
    fn a_torn_last_line_is_tolerated_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut journal = Journal::create(&path, &header()).unwrap();
        journal.append_row(&updated(1)).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"type":"row","line":2,"key":{"em"#)
            .unwrap();
        drop(file);

        let loaded = read(&path).unwrap();
        assert!(loaded.torn);
        assert_eq!(loaded.rows.len(), 1);

        let mut journal = Journal::reopen(&path, &loaded, "2026-01-05T09:00:00Z", None).unwrap();
        journal.append_row(&updated(2)).unwrap();
        drop(journal);
        let loaded = read(&path).unwrap();
        assert!(!loaded.torn);
        assert_eq!(loaded.rows.keys().copied().collect::<Vec<_>>(), [1, 2]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#"{"type":"resumed","started_at":"2026-01-05T09:00:00Z"}"#));
    }

    #[test]
    fn a_damaged_middle_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut journal = Journal::create(&path, &header()).unwrap();
        journal.append_row(&updated(1)).unwrap();
        drop(journal);
        let original = std::fs::read_to_string(&path).unwrap();
        let row = original.lines().nth(1).unwrap();
        let text = format!("{original}garbage\n{row}\n");
        std::fs::write(&path, text).unwrap();
        let error = read(&path).unwrap_err();
        assert!(error.to_string().contains("j.jsonl:3:"), "{error}");

        std::fs::write(&path, "{\"type\":\"row\"}\n").unwrap();
        assert!(read(&path).is_err());
    }

    #[test]
    fn hashes_and_dates_are_the_usual_ones() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_603_600), "2026-01-05T09:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
