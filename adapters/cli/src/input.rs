//! Reading a change file: CSV as a spreadsheet saves it, or JSON lines, into [`ChangeRow`]s.
//!
//! One bad row does not stop the file: it becomes a [`RowError`] naming its line and column, and
//! nothing is sent for it. Only a file that cannot be read as a whole (empty, no header, no key
//! column, a column given twice, text that is not what its byte order mark promised) is an
//! [`InputError`].
//!
//! # Text
//! UTF-8, with or without a byte order mark, and UTF-16 in either byte order (Excel's "Unicode
//! Text"); UTF-16 is decoded with `encoding_rs` and refused whole if malformed. Bytes that are
//! not UTF-8 in one row are an error for that row only. Lines may end in CRLF or LF.
//!
//! # CSV
//! The first line is the header; names are compared ignoring case, spaces, `_` and `-`, so
//! `phone_work`, `Phone Work` and `phoneWork` are one column. The separator is `,`, or `;` or a
//! tab when the header has those and no comma, or what an Excel `sep=` first line says. The
//! columns of the Genesys admin UI's bulk CSV are recognised
//! (`name,email,phone_work,extension,title,department,email_manager,location_work,
//! roles_divisions,queues,division,skills`), as are `id`, `manager_id`, `username`,
//! `preferred_name` and `state`. The admin UI's `location_work`, `roles_divisions`, `queues`,
//! `division` and `skills` are not applied by gcbulk, and other columns are unknown: both kinds
//! are listed in [`Input::ignored_columns`] so the user can be told.
//!
//! # JSON lines
//! One object per line with the same names as the CSV columns (`manager_email` or `managerEmail`
//! for `email_manager`, camelCase accepted throughout). Values are strings; `null` and `""` are an
//! empty cell. Blank lines are skipped; an unknown key is an error for that line.
//!
//! # Cells
//! Values are trimmed. A row is keyed by its `id` when it has one (its `email` is then a field to
//! set), else by its `email`. An empty cell leaves the field as it is, or clears it with
//! [`ReadOptions::clear_empty`]; Genesys requires a name, an e-mail, a username and a state, so
//! those are never cleared by an empty cell. A cell that starts like a spreadsheet formula is
//! refused unless it starts with the `'` escape, which is dropped. E-mail addresses, phone
//! numbers, extensions and states get a light syntax check; everything that needs the rest of the
//! file or the server (duplicates, a manager who is the user) is checked later, in the core.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use gcbulk_core::change::{ChangeRow, ManagerRef, Source, UserKey, UserState};

use crate::cell;

mod csv_file;
mod jsonl_file;

/// The syntax of a change file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Comma (or semicolon, or tab) separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// How to read a change file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Whether an empty cell clears the field (as the Genesys admin UI does) instead of leaving
    /// it as it is.
    pub clear_empty: bool,
    /// The syntax to read, or `None` to tell from the file name and the first byte.
    pub format: Option<Format>,
}

/// What a change file asks for, and what in it could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The rows that passed, in file order.
    pub rows: Vec<ChangeRow>,
    /// The problems of the rows left out, in file order; a row may have several.
    pub row_errors: Vec<RowError>,
    /// Columns (or JSON keys) that were read but change nothing, in file order.
    pub ignored_columns: Vec<IgnoredColumn>,
    /// The syntax the file was read as.
    pub format: Format,
}

/// A column of the input that gcbulk does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredColumn {
    /// The name as the file writes it.
    pub name: String,
    /// Why it is not applied.
    pub reason: IgnoreReason,
    /// How many rows had a value in it: the changes the user would miss.
    pub values: usize,
}

impl fmt::Display for IgnoredColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column {:?} {} ({})",
            self.name,
            self.reason,
            count(self.values, "value", "values")
        )
    }
}

/// A count with its noun: `1 cell`, `2 cells`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Why a column is not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// gcbulk does not know the name.
    Unknown,
    /// A column of the admin UI's bulk CSV that gcbulk does not change (locations, roles,
    /// queues, divisions, skills).
    NotApplied,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "is not a column gcbulk knows",
            Self::NotApplied => "is not applied by gcbulk",
        })
    }
}

/// A problem with one row; the row is left out and nothing is sent for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RowError {
    /// The file and the line on which the row starts.
    pub source: Source,
    /// The column (or JSON key) at fault, as the file names it, if it is one cell.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl RowError {
    fn new(source: &Source, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            source: source.clone(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {field}: {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for RowError {}

/// A problem that stops the whole file from being read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file holds nothing, or only blank space.
    #[error("{file}: the file is empty")]
    Empty {
        /// The file.
        file: Arc<str>,
    },
    /// The bytes are not the encoding their byte order mark (or their zero bytes) announce.
    #[error("{file}: the file is not valid {encoding} text")]
    Encoding {
        /// The file.
        file: Arc<str>,
        /// The encoding announced.
        encoding: &'static str,
    },
    /// The header line is not UTF-8.
    #[error("{file}:{line}: the header is not UTF-8 text; save the sheet as \"CSV UTF-8\"")]
    HeaderEncoding {
        /// The file.
        file: Arc<str>,
        /// The header's line.
        line: u64,
    },
    /// The first line names no column gcbulk knows, so it is data rather than a header.
    #[error("{file}:{line}: the first line is not a header: it names no known column")]
    NoHeader {
        /// The file.
        file: Arc<str>,
        /// The first line's number.
        line: u64,
    },
    /// The header has neither an `email` nor an `id` column, so no row can name its user.
    #[error("{file}:{line}: the header has no \"email\" or \"id\" column")]
    MissingKeyColumn {
        /// The file.
        file: Arc<str>,
        /// The header's line.
        line: u64,
    },
    /// A known column appears twice, so which cell counts would be a guess.
    #[error("{file}:{line}: column {name:?} appears twice, as columns {first} and {second}")]
    DuplicateColumn {
        /// The file.
        file: Arc<str>,
        /// The header's line.
        line: u64,
        /// The column's canonical name.
        name: &'static str,
        /// The 1-based position of the first one.
        first: usize,
        /// The 1-based position of the second one.
        second: usize,
    },
    /// The file is one JSON array rather than one object per line.
    #[error("{file}: a JSON array is not JSON lines; write one object per line")]
    JsonArray {
        /// The file.
        file: Arc<str>,
    },
    /// A quote opens a cell in the header and is never closed, so the whole file is that cell.
    #[error(
        "{file}:{line}: unterminated quote: the quoted cell starting here runs to the end of the \
         file; close it with \""
    )]
    UnterminatedQuote {
        /// The file.
        file: Arc<str>,
        /// The line on which the quote opens.
        line: u64,
    },
    /// The CSV parser gave up.
    #[error("{file}: unreadable CSV: {source}")]
    Csv {
        /// The file.
        file: Arc<str>,
        /// What the parser said.
        source: csv::Error,
    },
}

/// Reads a change file already loaded into memory.
///
/// `path_display` is the file as the user named it: it appears in every error and its extension
/// (`.jsonl`, `.ndjson`) selects JSON lines unless [`ReadOptions::format`] says otherwise.
pub fn read_changes(
    path_display: &str,
    bytes: &[u8],
    options: &ReadOptions,
) -> Result<Input, InputError> {
    let file: Arc<str> = Arc::from(path_display);
    let text = decode(&file, bytes)?;
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::Empty { file });
    }

    let format = options
        .format
        .unwrap_or_else(|| detect_format(path_display, &text));
    match format {
        Format::Csv => csv_file::read(&file, &text, options),
        Format::Jsonl => jsonl_file::read(&file, &text, options),
    }
}

/// Tells JSON lines from CSV by the file's extension, then by its first non-blank byte.
fn detect_format(path_display: &str, text: &[u8]) -> Format {
    let extension = path_display
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    if matches!(extension.as_deref(), Some("jsonl" | "ndjson")) {
        return Format::Jsonl;
    }

    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::Jsonl,
        _ => Format::Csv,
    }
}

/// Turns the file into UTF-8 bytes (which may still hold invalid sequences, reported per row)
/// without its byte order mark. Line breaks are kept, so line numbers stay those of the file.
fn decode<'a>(file: &Arc<str>, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, InputError> {
    use std::borrow::Cow;

    let (encoding, body) = match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => return Ok(Cow::Borrowed(rest)),
        [0xFF, 0xFE, rest @ ..] => (encoding_rs::UTF_16LE, rest),
        [0xFE, 0xFF, rest @ ..] => (encoding_rs::UTF_16BE, rest),
        // No mark, but ASCII text with every other byte zero is UTF-16 all the same.
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => (encoding_rs::UTF_16LE, bytes),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => (encoding_rs::UTF_16BE, bytes),
        _ => return Ok(Cow::Borrowed(bytes)),
    };

    match encoding.decode_without_bom_handling_and_without_replacement(body) {
        Some(text) => Ok(Cow::Owned(text.into_owned().into_bytes())),
        None => Err(InputError::Encoding {
            file: file.clone(),
            encoding: encoding.name(),
        }),
    }
}

/// A field gcbulk can set, or a key column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Field {
    Id,
    Email,
    Name,
    Title,
    Department,
    EmailManager,
    ManagerId,
    PhoneWork,
    Extension,
    Username,
    PreferredName,
    State,
}

impl Field {
    /// Whether an empty cell may clear it: Genesys requires the others.
    fn clearable(self) -> bool {
        !matches!(
            self,
            Self::Id | Self::Email | Self::Name | Self::Username | Self::State
        )
    }
}

/// A column name gcbulk recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Known {
    /// A column it applies.
    Applied(Field),
    /// An admin UI column it reads past.
    NotApplied(&'static str),
}

impl Known {
    /// Recognises a column name or JSON key, ignoring case, surrounding space, `_`, `-` and
    /// inner spaces.
    fn parse(name: &str) -> Option<Self> {
        let squashed: String = name
            .chars()
            .filter(|c| !matches!(c, '_' | '-') && !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();

        Some(match squashed.as_str() {
            "id" => Self::Applied(Field::Id),
            "email" => Self::Applied(Field::Email),
            "name" => Self::Applied(Field::Name),
            "title" => Self::Applied(Field::Title),
            "department" => Self::Applied(Field::Department),
            "emailmanager" | "manageremail" => Self::Applied(Field::EmailManager),
            "managerid" => Self::Applied(Field::ManagerId),
            "phonework" => Self::Applied(Field::PhoneWork),
            "extension" => Self::Applied(Field::Extension),
            "username" => Self::Applied(Field::Username),
            "preferredname" => Self::Applied(Field::PreferredName),
            "state" => Self::Applied(Field::State),
            "locationwork" => Self::NotApplied("location_work"),
            "rolesdivisions" => Self::NotApplied("roles_divisions"),
            "queues" => Self::NotApplied("queues"),
            "division" => Self::NotApplied("division"),
            "skills" => Self::NotApplied("skills"),
            _ => return None,
        })
    }

    /// The name the admin UI and this documentation use.
    fn canonical(self) -> &'static str {
        match self {
            Self::Applied(field) => match field {
                Field::Id => "id",
                Field::Email => "email",
                Field::Name => "name",
                Field::Title => "title",
                Field::Department => "department",
                Field::EmailManager => "email_manager",
                Field::ManagerId => "manager_id",
                Field::PhoneWork => "phone_work",
                Field::Extension => "extension",
                Field::Username => "username",
                Field::PreferredName => "preferred_name",
                Field::State => "state",
            },
            Self::NotApplied(name) => name,
        }
    }
}

/// One cell as a reader found it, before any rule is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cell {
    /// Text, already trimmed; empty for an empty cell or a JSON `null`.
    Text(String),
}

/// The cells of one row that map to fields, each with the name the file gives its column.
#[derive(Debug, Default)]
struct RawRow<'a> {
    cells: BTreeMap<Field, (&'a str, Cell)>,
}

/// What a row does to one field once the cell rules are applied.
enum Wanted {
    Leave,
    Clear,
    Set(String),
}

/// Applies the cell rules to a row and builds the change, or says everything wrong with it.
fn build_row(
    source: Source,
    raw: RawRow<'_>,
    clear_empty: bool,
) -> Result<ChangeRow, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut wanted = BTreeMap::new();
    let mut key_cell_failed = false;
    for (field, (label, cell)) in raw.cells {
        match want(field, cell, clear_empty) {
            Ok(value) => {
                wanted.insert(field, (label, value));
            }
            Err(message) => {
                key_cell_failed |= matches!(field, Field::Id | Field::Email);
                errors.push(RowError::new(&source, Some(label), message));
            }
        }
    }
    let mut take = |field| wanted.remove(&field).unwrap_or(("", Wanted::Leave));

    // A row names its user by id when it has one; its e-mail is then a value to set. `want`
    // never clears these two, so only `Set` and `Leave` reach here.
    let (key, email) = match (take(Field::Id).1, take(Field::Email).1) {
        (Wanted::Set(id), email) => (Some(UserKey::Id(id)), settable(email)),
        (_, Wanted::Set(email)) => (Some(UserKey::Email(email)), None),
        _ => (None, None),
    };

    let (manager_label, by_email) = take(Field::EmailManager);
    let (manager_id_label, by_id) = take(Field::ManagerId);
    let manager = match (by_email, by_id) {
        (Wanted::Set(_), Wanted::Set(_)) => {
            let message = format!("{manager_label} also names a manager; keep one of the two");
            errors.push(RowError::new(&source, Some(manager_id_label), message));
            None
        }
        (Wanted::Set(email), _) => Some(ManagerRef::Email(email)),
        (_, Wanted::Set(id)) => Some(ManagerRef::Id(id)),
        (Wanted::Clear, _) | (_, Wanted::Clear) => Some(ManagerRef::Clear),
        (Wanted::Leave, Wanted::Leave) => None,
    };

    let (state_label, state) = take(Field::State);
    let state = match settable(state) {
        Some(text) => match UserState::parse(&text) {
            Some(state) => Some(state),
            None => {
                let message = format!(
                    "{} is not a user state (active, inactive or deleted)",
                    cell::shown(&text)
                );
                errors.push(RowError::new(&source, Some(state_label), message));
                None
            }
        },
        None => None,
    };

    let desired = gcbulk_core::change::Desired {
        name: settable(take(Field::Name).1),
        email,
        title: settable(take(Field::Title).1),
        department: settable(take(Field::Department).1),
        manager,
        phone_work: settable(take(Field::PhoneWork).1),
        extension: settable(take(Field::Extension).1),
        username: settable(take(Field::Username).1),
        preferred_name: settable(take(Field::PreferredName).1),
        state,
    };

    match key {
        Some(key) if errors.is_empty() => Ok(ChangeRow {
            source,
            key,
            desired,
        }),
        Some(_) => Err(errors),
        // The key cell's own error already says why there is no user.
        None if key_cell_failed => Err(errors),
        None => {
            errors.push(RowError::new(
                &source,
                None,
                "no user: the row has neither id nor email",
            ));
            Err(errors)
        }
    }
}

/// `Some("")` to clear, `Some(text)` to set, `None` to leave.
fn settable(wanted: Wanted) -> Option<String> {
    match wanted {
        Wanted::Leave => None,
        Wanted::Clear => Some(String::new()),
        Wanted::Set(text) => Some(text),
    }
}

/// Applies the cell rules to one cell: emptiness, the formula guard, the syntax checks.
fn want(field: Field, cell: Cell, clear_empty: bool) -> Result<Wanted, String> {
    let text = match cell {
        Cell::Text(text) if text.is_empty() => {
            return Ok(if clear_empty && field.clearable() {
                Wanted::Clear
            } else {
                Wanted::Leave
            });
        }
        Cell::Text(text) => text,
    };

    let (value, escaped) = cell::unescape(&text);
    if !escaped && cell::looks_like_formula(value) {
        return Err(format!(
            "{} looks like a spreadsheet formula; start it with ' to mean the text itself",
            cell::shown(value)
        ));
    }

    match field {
        Field::Email | Field::EmailManager => cell::check_email(value)?,
        Field::PhoneWork => cell::check_phone(value)?,
        Field::Extension => cell::check_extension(value)?,
        Field::Id | Field::ManagerId => cell::check_id(value)?,
        _ => {}
    }
    Ok(Wanted::Set(value.to_owned()))
}

/// Gathers the ignored columns of a file, merging repeats of one name.
#[derive(Debug, Default)]
struct IgnoredTally {
    columns: Vec<IgnoredColumn>,
}

impl IgnoredTally {
    /// Notes a column by name; returns its index for [`Self::count_value`].
    fn note(&mut self, name: &str, reason: IgnoreReason) -> usize {
        if let Some(index) = self.columns.iter().position(|c| c.name == name) {
            return index;
        }
        self.columns.push(IgnoredColumn {
            name: name.to_owned(),
            reason,
            values: 0,
        });
        self.columns.len() - 1
    }

    /// Counts one row with a value in the column.
    fn count_value(&mut self, index: usize) {
        if let Some(column) = self.columns.get_mut(index) {
            column.values += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Input {
        read_changes("t.csv", text.as_bytes(), &ReadOptions::default()).unwrap()
    }

    #[test]
    fn format_follows_extension_then_first_byte() {
        assert_eq!(detect_format("a.JSONL", b"name,email"), Format::Jsonl);
        assert_eq!(detect_format("a.ndjson", b""), Format::Jsonl);
        assert_eq!(
            detect_format("a.txt", b"  \n{\"email\":\"a@b.c\"}"),
            Format::Jsonl
        );
        assert_eq!(detect_format("a.csv", b"email\n"), Format::Csv);
    }

    #[test]
    fn column_names_ignore_case_space_and_separators() {
        for name in ["phone_work", " Phone Work ", "phoneWork", "PHONE-WORK"] {
            assert_eq!(
                Known::parse(name),
                Some(Known::Applied(Field::PhoneWork)),
                "{name}"
            );
        }
        assert_eq!(
            Known::parse("manager_email"),
            Some(Known::Applied(Field::EmailManager))
        );
        assert_eq!(Known::parse("Skills"), Some(Known::NotApplied("skills")));
        assert_eq!(Known::parse("notes"), None);
    }

    #[test]
    fn id_key_makes_email_a_field() {
        let input = read("id,email,title\nu-1,new@acme.example,Lead\n");
        let row = &input.rows[0];
        assert_eq!(row.key, UserKey::Id("u-1".into()));
        assert_eq!(row.desired.email.as_deref(), Some("new@acme.example"));
        assert_eq!(row.desired.title.as_deref(), Some("Lead"));
    }

    #[test]
    fn empty_id_falls_back_to_email() {
        let input = read("id,email,title\n,jo@acme.example,Lead\n");
        assert_eq!(input.rows[0].key, UserKey::Email("jo@acme.example".into()));
        assert_eq!(input.rows[0].desired.email, None);
    }

    #[test]
    fn both_manager_columns_set_is_a_row_error() {
        let input = read("email,email_manager,manager_id\njo@acme.example,boss@acme.example,m-1\n");
        assert!(input.rows.is_empty());
        assert_eq!(input.row_errors[0].field.as_deref(), Some("manager_id"));
    }

    #[test]
    fn a_row_reports_every_bad_cell() {
        let input = read("email,phone_work,extension,state\n=1+1,call me,12a,gone\n");
        let fields: Vec<_> = input
            .row_errors
            .iter()
            .map(|e| e.field.as_deref())
            .collect();
        assert_eq!(
            fields,
            [
                Some("email"),
                Some("phone_work"),
                Some("extension"),
                Some("state")
            ]
        );
    }

    #[test]
    fn utf16_without_a_mark_is_recognised() {
        let bytes: Vec<u8> = "email\r\na@b.example\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let input = read_changes("t.txt", &bytes, &ReadOptions::default()).unwrap();
        assert_eq!(input.rows.len(), 1);
    }

    #[test]
    fn malformed_utf16_is_a_file_error() {
        let err = read_changes(
            "t.csv",
            &[0xFF, 0xFE, b'a', 0, b'b'],
            &ReadOptions::default(),
        );
        assert!(
            matches!(
                err,
                Err(InputError::Encoding {
                    encoding: "UTF-16LE",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
