//! The journal's format: its records, how each line is written, and reading a journal back.
//!
//! A journal is JSON lines. The first is a header naming the input (path, SHA-256, rows), the
//! target and the options:
//!
//! ```text
//! {"type":"header","version":1,"command":"update","input":{"path":"reorg.csv","sha256":"…",
//!  "rows":1508},"target":"https://api.mypurecloud.de","login":"https://login.mypurecloud.de",
//!  "options":{…},"started_at":"2026-01-05T09:00:00Z"}
//! ```
//!
//! then one line per row as its outcome arrives, with the outcome's fields (before and after
//! values, versions, the server's error) beside the row's line and key (and, before each PATCH
//! goes out, a `patch` line with the user, the version and the changes it makes, for `revert`
//! to use should the answer never arrive):
//!
//! ```text
//! {"type":"row","line":12,"key":{"email":"jane@example.com"},"outcome":"updated",
//!  "user_id":"…","changes":[{"field":"title","before":"Agent","after":"Team Lead"}],
//!  "version_before":4,"version_after":5}
//! ```
//!
//! A PATCH the server refuses (a 4xx) gets a `patch_refused` line with the user, the version and
//! the status; a `patch` line that neither an `updated` row nor a refusal answers is a write whose
//! answer was lost, which [`Unanswered`] tracks. A resumed run appends a `resumed` line, then its
//! rows; the last line for a row is the one that counts. Writing the file (one write per line, syncing, cutting a torn line) is the command's
//! business; this module only knows what the lines say, so the reader can be tested and fuzzed
//! on bytes alone.

use std::collections::BTreeMap;

use gcbulk_core::change::UserKey;
use gcbulk_core::genesys::{FieldChange, RowOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The journal format's version.
pub const VERSION: u32 = 1;

/// The first line of a journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`VERSION`].
    pub version: u32,
    /// `update` or `revert`.
    pub command: String,
    /// The file the rows came from.
    pub input: InputInfo,
    /// The API base URL written to.
    pub target: String,
    /// The login base URL.
    pub login: String,
    /// The options that shape what the rows mean.
    pub options: JournalOptions,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
}

/// The input a journal belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputInfo {
    /// As the user named it.
    pub path: String,
    /// The SHA-256 of its bytes, in hex: a resume refuses a file that changed.
    pub sha256: String,
    /// Data rows in it, errors included.
    pub rows: u64,
}

/// The options a run was started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalOptions {
    /// Empty cells cleared their fields.
    pub clear_empty: bool,
    /// Most requests in flight.
    pub concurrency: u16,
    /// The rate cap, if any.
    pub max_rate: Option<f64>,
}

/// A finished row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowRecord {
    /// The row's line in the input.
    pub line: u64,
    /// The user it named.
    pub key: UserKey,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: RowOutcome,
}

/// A PATCH about to be sent: what it changes, from which version. If the crash comes before its
/// answer, this is what `revert` puts back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchIntent {
    /// The user.
    pub user_id: String,
    /// The version the PATCH carries; applied, it makes the next one.
    pub version: u64,
    /// Each field's value before and as the PATCH sets it.
    pub changes: Vec<FieldChange>,
}

/// A PATCH the server refused (a 4xx: a version conflict, a throttle, a bad request): nothing of
/// it was written. It answers the latest `patch` line for the same user and version before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRefused {
    /// The user.
    pub user_id: String,
    /// The version the PATCH carried.
    pub version: u64,
    /// The status the server answered.
    pub status: u16,
}

/// One line of a journal, as it is written.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry<'a> {
    /// The first line.
    Header(&'a Header),
    /// A row's outcome.
    Row(&'a RowRecord),
    /// A PATCH about to go out.
    Patch(&'a PatchIntent),
    /// A PATCH the server refused.
    PatchRefused(&'a PatchRefused),
    /// A resumed run starts here.
    Resumed {
        /// When it started, RFC 3339 in UTC.
        started_at: &'a str,
    },
}

impl Entry<'_> {
    /// The line's bytes, line break included, to be written in one go.
    pub fn to_line(&self) -> serde_json::Result<Vec<u8>> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        Ok(line)
    }
}

/// A row's last record and where it stands in the journal.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The journal's own 1-based line.
    pub journal_line: u64,
    /// The record.
    pub record: RowRecord,
}

/// A journal as read back.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The header.
    pub header: Header,
    /// Each input line's last record.
    pub rows: BTreeMap<u64, Recorded>,
    /// Every PATCH announced, with its journal line.
    pub patches: Vec<(u64, PatchIntent)>,
    /// Every PATCH the server refused, with its journal line.
    pub refused: Vec<(u64, PatchRefused)>,
    /// Whether a torn last line was found (a crash mid-write); it is not part of the journal.
    pub torn: bool,
    whole: u64,
    unterminated: bool,
}

impl Loaded {
    /// Bytes up to the end of the last whole line: what is left once a torn line is cut off.
    pub fn whole_len(&self) -> u64 {
        self.whole
    }

    /// Whether the last whole line lacks its line break, which an append must add first.
    pub fn unterminated(&self) -> bool {
        self.unterminated
    }

    /// The PATCHes announced that the server did not refuse: each may have been written.
    pub fn patches_not_refused(&self) -> impl Iterator<Item = &(u64, PatchIntent)> {
        let mut refused = vec![false; self.patches.len()];
        for (line, refusal) in &self.refused {
            let answered =
                self.patches
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(index, (announced, patch))| {
                        announced < line
                            && !refused[*index]
                            && patch.user_id == refusal.user_id
                            && patch.version == refusal.version
                    });
            if let Some((index, _)) = answered {
                refused[index] = true;
            }
        }
        self.patches
            .iter()
            .zip(refused)
            .filter_map(|(patch, refused)| (!refused).then_some(patch))
    }
}

/// The PATCHes a run sent whose answers were never recorded: neither confirmed by an updated
/// row nor refused. A kill, or a connection cut after the PATCH went out, leaves them so.
///
/// When a row then finds its user already as it asks, at the version such PATCHes lead to, the
/// change is the run's own: [`Unanswered::settle`] reports it updated (with
/// `answer_lost`) rather than unchanged, once.
#[derive(Clone, Debug, Default)]
pub struct Unanswered {
    open: Vec<PatchIntent>,
}

impl Unanswered {
    /// What a journal leaves unanswered, its rows' outcomes applied in the journal's order.
    pub fn from_journal(loaded: &Loaded) -> Self {
        let mut ledger = Self::default();
        let mut events: Vec<(u64, Option<&RowOutcome>, Option<&PatchIntent>)> = loaded
            .patches_not_refused()
            .map(|(line, patch)| (*line, None, Some(patch)))
            .collect();
        events.extend(
            loaded
                .rows
                .values()
                .map(|r| (r.journal_line, Some(&r.record.outcome), None)),
        );
        events.sort_by_key(|(line, ..)| *line);
        for event in events {
            match event {
                (_, _, Some(patch)) => ledger.announced(patch.clone()),
                (_, Some(RowOutcome::Unchanged { user_id, version }), _) => {
                    // An earlier run counted it unchanged: not to be claimed again.
                    ledger.take_chain(user_id, *version, None);
                }
                (_, Some(outcome), _) => {
                    ledger.settle(outcome.clone());
                }
                _ => {}
            }
        }
        ledger
    }

    /// A PATCH was sent.
    pub fn announced(&mut self, patch: PatchIntent) {
        self.open.push(patch);
    }

    /// The server refused the latest PATCH sent for `user_id` at `version`.
    pub fn refused(&mut self, user_id: &str, version: u64) {
        if let Some(index) = self
            .open
            .iter()
            .rposition(|p| p.user_id == user_id && p.version == version)
        {
            self.open.remove(index);
        }
    }

    /// A row's outcome, seen against the PATCHes without answers: an updated row answers those
    /// it covers; an unchanged one at the version they lead to is the run's own write, reported
    /// updated with `answer_lost`. Anything else is returned as it is.
    pub fn settle(&mut self, outcome: RowOutcome) -> RowOutcome {
        match outcome {
            RowOutcome::Updated {
                ref user_id,
                version_before,
                version_after,
                ..
            } => {
                self.open.retain(|p| {
                    p.user_id != *user_id || !(version_before..version_after).contains(&p.version)
                });
                outcome
            }
            RowOutcome::Unchanged { user_id, version } => {
                let chain = self.take_chain(&user_id, version, None);
                if chain.is_empty() {
                    return RowOutcome::Unchanged { user_id, version };
                }
                lost_update(user_id, chain, version)
            }
            // Reverting, the user is past the version the revert expects only by the revert's
            // own PATCHes, whose answers were lost: it is as the row asks.
            RowOutcome::ChangedSince {
                user_id,
                expected_version,
                version,
            } => {
                let chain = self.take_chain(&user_id, version, Some(expected_version));
                if chain.is_empty() {
                    return RowOutcome::ChangedSince {
                        user_id,
                        expected_version,
                        version,
                    };
                }
                lost_update(user_id, chain, version)
            }
            other => other,
        }
    }

    /// Removes and returns, earliest first, the unanswered PATCHes of `user_id` that lead one
    /// to the next up to `version`; with `from`, only if they lead there from that version.
    fn take_chain(&mut self, user_id: &str, version: u64, from: Option<u64>) -> Vec<PatchIntent> {
        let mut chain = Vec::new();
        let mut at = version;
        while from.is_none_or(|from| at > from)
            && let Some(index) = self
                .open
                .iter()
                .rposition(|p| p.user_id == user_id && p.version.checked_add(1) == Some(at))
        {
            chain.push(index);
            at = self.open[index].version;
        }
        if from.is_some_and(|from| at != from) {
            return Vec::new();
        }
        let taken: Vec<PatchIntent> = chain.iter().rev().map(|&i| self.open[i].clone()).collect();
        // Versions fall along the chain, so each index is another PATCH: remove the highest first.
        chain.sort_unstable();
        for index in chain.into_iter().rev() {
            self.open.remove(index);
        }
        taken
    }
}

/// The update a chain of PATCHes made, earliest first, their answers lost.
fn lost_update(user_id: String, chain: Vec<PatchIntent>, version: u64) -> RowOutcome {
    let version_before = chain.first().map_or(version, |p| p.version);
    let mut changes: Vec<FieldChange> = Vec::new();
    for change in chain.into_iter().flat_map(|p| p.changes) {
        match changes.iter_mut().find(|c| c.field == change.field) {
            Some(earlier) => earlier.after = change.after,
            None => changes.push(change),
        }
    }
    RowOutcome::Updated {
        user_id,
        changes,
        version_before,
        version_after: version,
        answer_lost: true,
    }
}

/// Why bytes are not a journal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A line before the last is damaged, or is not a line gcbulk writes.
    #[error("{line}: not a gcbulk journal line: {message}")]
    Line {
        /// The journal's 1-based line.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// There is no header line.
    #[error("the journal is empty")]
    Empty,
}

/// Reads a journal from its bytes, tolerating a torn last line.
///
/// Only the last line may be damaged, and only if it lacks its line break: that is what a crash
/// mid-write leaves. Anything else damaged (a middle line, bytes that are not UTF-8, a second
/// header) is an error naming the line, since acting on a journal that lies could revert users
/// to values they never had.
pub fn parse(bytes: &[u8]) -> Result<Loaded, ReadError> {
    let mut header = None;
    let mut rows = BTreeMap::new();
    let mut patches = Vec::new();
    let mut refused = Vec::new();
    let mut offset = 0usize;
    let mut whole = 0u64;
    let mut unterminated = false;
    let mut torn = false;
    let mut number = 0u64;
    while offset < bytes.len() {
        number += 1;
        let rest = &bytes[offset..];
        let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], true),
            None => (rest, false),
        };
        offset += line.len() + usize::from(terminated);
        let parsed = std::str::from_utf8(line)
            .map_err(|error| format!("the line is not UTF-8 text: {error}"))
            .and_then(|text| {
                if text.trim().is_empty() {
                    Ok(None)
                } else {
                    parse_line(text, header.is_none()).map(Some)
                }
            });
        let entry = match parsed {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                // A blank last line without its break still needs one before anything is
                // appended, or the next record would share its line.
                whole = offset as u64;
                unterminated = !terminated;
                continue;
            }
            // A crash while writing the last line leaves it torn: everything before it stands.
            Err(_) if !terminated && header.is_some() => {
                torn = true;
                break;
            }
            Err(message) => {
                return Err(ReadError::Line {
                    line: number,
                    message,
                });
            }
        };
        match entry {
            Parsed::Header(h) => header = Some(h),
            Parsed::Row(record) => {
                let recorded = Recorded {
                    journal_line: number,
                    record,
                };
                rows.insert(recorded.record.line, recorded);
            }
            Parsed::Patch(intent) => patches.push((number, intent)),
            Parsed::PatchRefused(refusal) => refused.push((number, refusal)),
            Parsed::Other => {}
        }
        whole = offset as u64;
        unterminated = !terminated;
    }

    let header = header.ok_or(ReadError::Empty)?;
    Ok(Loaded {
        header,
        rows,
        patches,
        refused,
        torn,
        whole,
        unterminated,
    })
}

enum Parsed {
    Header(Header),
    Row(RowRecord),
    Patch(PatchIntent),
    PatchRefused(PatchRefused),
    Other,
}

fn parse_line(text: &str, first: bool) -> Result<Parsed, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let kind = value.get("type").and_then(Value::as_str);
    match (first, kind) {
        (true, Some("header")) => {
            let header: Header = serde_json::from_value(value).map_err(|e| e.to_string())?;
            if header.version != VERSION {
                return Err(format!(
                    "journal version {} is not the {VERSION} this gcbulk writes",
                    header.version
                ));
            }
            Ok(Parsed::Header(header))
        }
        (true, _) => Err("the first line is not a journal header".to_owned()),
        (false, Some("row")) => serde_json::from_value(value)
            .map(Parsed::Row)
            .map_err(|e| e.to_string()),
        (false, Some("patch")) => serde_json::from_value(value)
            .map(Parsed::Patch)
            .map_err(|e| e.to_string()),
        (false, Some("patch_refused")) => serde_json::from_value(value)
            .map(Parsed::PatchRefused)
            .map_err(|e| e.to_string()),
        (false, Some("header")) => Err("a second header".to_owned()),
        // Lines of kinds a later version adds are read past; a line without a kind is damage.
        (false, Some(_)) => Ok(Parsed::Other),
        (false, None) => Err("the line has no \"type\"".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = concat!(
        r#"{"type":"header","version":1,"command":"update","input":{"path":"s.csv","#,
        r#""sha256":"00","rows":2},"target":"http://127.0.0.1:1","login":"http://127.0.0.1:1","#,
        r#""options":{"clear_empty":false,"concurrency":8,"max_rate":null},"#,
        r#""started_at":"2026-01-05T09:00:00Z"}"#
    );
    const ROW: &str = concat!(
        r#"{"type":"row","line":2,"key":{"email":"ren\u00e9e@acme.example"},"#,
        r#""outcome":"unchanged","user_id":"u1","version":4}"#
    );

    #[test]
    fn windows_line_breaks_read_like_unix_ones() {
        let loaded = parse(format!("{HEADER}\r\n{ROW}\r\n").as_bytes()).unwrap();
        assert_eq!(
            loaded.rows[&2].record.key,
            UserKey::Email("renée@acme.example".into())
        );
        assert!(!loaded.torn && !loaded.unterminated());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_damage_unless_in_a_torn_last_line() {
        // Read lossily, "René" would come back "Ren\u{FFFD}" and a revert would write that.
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend(br#"{"type":"row","line":2,"key":{"email":"ren"#);
        bytes.extend([0xE9, b'@']);
        let torn = parse(&bytes).unwrap();
        assert!(torn.torn);
        assert_eq!(torn.whole_len(), HEADER.len() as u64 + 1);

        bytes.extend(b"\n");
        bytes.extend(ROW.as_bytes());
        let error = parse(&bytes).unwrap_err();
        assert!(
            matches!(&error, ReadError::Line { line: 2, message } if message.contains("UTF-8")),
            "{error}"
        );
    }

    #[test]
    fn a_line_without_a_type_is_damage_and_an_unknown_type_is_read_past() {
        let untyped = format!("{HEADER}\n{{\"line\":3}}\n{ROW}\n");
        assert!(matches!(
            parse(untyped.as_bytes()),
            Err(ReadError::Line { line: 2, .. })
        ));
        let newer = format!("{HEADER}\n{{\"type\":\"checkpoint\"}}\n{ROW}\n");
        assert_eq!(parse(newer.as_bytes()).unwrap().rows.len(), 1);
    }

    #[test]
    fn a_blank_last_line_without_its_break_gets_one_before_an_append() {
        // U+2028 is blank to `trim` but not JSON whitespace: a record appended on the same line
        // would be unreadable.
        let loaded = parse(format!("{HEADER}\n{ROW}\n\u{2028}").as_bytes()).unwrap();
        assert!(!loaded.torn);
        assert!(loaded.unterminated());
    }

    fn title(version: u64, before: &str, after: &str) -> PatchIntent {
        PatchIntent {
            user_id: "u1".into(),
            version,
            changes: vec![FieldChange {
                field: gcbulk_core::genesys::Field::Title,
                before: before.into(),
                after: after.into(),
            }],
        }
    }

    fn unchanged(version: u64) -> RowOutcome {
        RowOutcome::Unchanged {
            user_id: "u1".into(),
            version,
        }
    }

    #[test]
    fn a_patch_whose_answer_was_lost_makes_an_unchanged_row_updated_once() {
        let mut ledger = Unanswered::default();
        ledger.announced(title(4, "Agent", "Lead"));
        // Someone else's user, and a version the PATCH does not lead to, are not its doing.
        let other = RowOutcome::Unchanged {
            user_id: "u2".into(),
            version: 5,
        };
        assert_eq!(ledger.settle(other.clone()), other);
        assert_eq!(ledger.settle(unchanged(6)), unchanged(6));

        let RowOutcome::Updated {
            user_id,
            changes,
            version_before,
            version_after,
            answer_lost,
        } = ledger.settle(unchanged(5))
        else {
            panic!("not updated");
        };
        assert_eq!(user_id, "u1");
        assert_eq!((version_before, version_after, answer_lost), (4, 5, true));
        assert_eq!(changes, title(4, "Agent", "Lead").changes);
        // A second row for the same user claims nothing more.
        assert_eq!(ledger.settle(unchanged(5)), unchanged(5));
    }

    #[test]
    fn a_refused_or_confirmed_patch_is_no_lost_write() {
        // Refused: someone else made the change first, so the row is rightly unchanged.
        let mut ledger = Unanswered::default();
        ledger.announced(title(4, "Agent", "Lead"));
        ledger.refused("u1", 4);
        assert_eq!(ledger.settle(unchanged(5)), unchanged(5));

        // Confirmed by one row: another row asking the same is unchanged.
        let mut ledger = Unanswered::default();
        ledger.announced(title(4, "Agent", "Lead"));
        let updated = RowOutcome::Updated {
            user_id: "u1".into(),
            changes: title(4, "Agent", "Lead").changes,
            version_before: 4,
            version_after: 5,
            answer_lost: false,
        };
        assert_eq!(ledger.settle(updated.clone()), updated);
        assert_eq!(ledger.settle(unchanged(5)), unchanged(5));

        // Sent, its answer lost, sent again and refused as a conflict: the first one wrote.
        let mut ledger = Unanswered::default();
        ledger.announced(title(4, "Agent", "Lead"));
        ledger.announced(title(4, "Agent", "Lead"));
        ledger.refused("u1", 4);
        assert!(matches!(
            ledger.settle(unchanged(5)),
            RowOutcome::Updated {
                answer_lost: true,
                ..
            }
        ));
    }

    #[test]
    fn lost_writes_in_a_row_chain_into_one_update() {
        // The fields, then the state in a PATCH of its own: both answers lost.
        let mut ledger = Unanswered::default();
        ledger.announced(title(4, "Agent", "Lead"));
        let mut state = title(5, "active", "inactive");
        state.changes[0].field = gcbulk_core::genesys::Field::State;
        ledger.announced(state.clone());
        let RowOutcome::Updated {
            changes,
            version_before,
            version_after,
            ..
        } = ledger.settle(unchanged(6))
        else {
            panic!("not updated");
        };
        assert_eq!((version_before, version_after), (4, 6));
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[1], state.changes[0]);
    }

    #[test]
    fn a_revert_whose_answer_was_lost_is_no_change_by_someone_else() {
        // The revert expects the user at 5; its own PATCH, answer lost, took it to 6.
        let changed = |expected_version, version| RowOutcome::ChangedSince {
            user_id: "u1".into(),
            expected_version,
            version,
        };
        let mut ledger = Unanswered::default();
        ledger.announced(title(5, "Lead", "Agent"));
        // Not from the version expected: someone else's doing, and the PATCH stays unclaimed.
        assert_eq!(ledger.settle(changed(4, 6)), changed(4, 6));
        assert_eq!(ledger.settle(changed(5, 7)), changed(5, 7));
        assert!(matches!(
            ledger.settle(changed(5, 6)),
            RowOutcome::Updated {
                version_before: 5,
                version_after: 6,
                answer_lost: true,
                ..
            }
        ));
    }

    #[test]
    fn a_journal_read_back_knows_which_patches_were_answered() {
        let mut bytes = format!("{HEADER}\n").into_bytes();
        let refused = PatchRefused {
            user_id: "u1".into(),
            version: 4,
            status: 409,
        };
        let mut other = title(7, "Agent", "Lead");
        other.user_id = "u2".into();
        for entry in [
            Entry::Patch(&title(4, "Agent", "Lead")),
            Entry::Patch(&title(4, "Agent", "Lead")),
            Entry::PatchRefused(&refused),
            Entry::Patch(&other),
        ] {
            bytes.extend(entry.to_line().unwrap());
        }
        let loaded = parse(&bytes).unwrap();
        assert_eq!(loaded.refused, [(4, refused)]);
        let open: Vec<u64> = loaded
            .patches_not_refused()
            .map(|(line, _)| *line)
            .collect();
        assert_eq!(open, [2, 5], "the refusal answers the PATCH just before it");

        let mut ledger = Unanswered::from_journal(&loaded);
        assert!(matches!(
            ledger.settle(unchanged(5)),
            RowOutcome::Updated {
                answer_lost: true,
                ..
            }
        ));

        // A row an earlier run already journalled as unchanged keeps what it claimed.
        let record = RowRecord {
            line: 3,
            key: UserKey::Id("u2".into()),
            outcome: RowOutcome::Unchanged {
                user_id: "u2".into(),
                version: 8,
            },
        };
        bytes.extend(Entry::Row(&record).to_line().unwrap());
        let mut ledger = Unanswered::from_journal(&parse(&bytes).unwrap());
        let again = record.outcome.clone();
        assert_eq!(ledger.settle(again.clone()), again);
    }

    #[test]
    fn what_is_written_reads_back() {
        let record = RowRecord {
            line: 7,
            key: UserKey::Id("u7".into()),
            outcome: RowOutcome::NotFound,
        };
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend(Entry::Row(&record).to_line().unwrap());
        assert_eq!(parse(&bytes).unwrap().rows[&7].record, record);
        assert!(matches!(parse(b"\n\n"), Err(ReadError::Empty)));
    }
}
