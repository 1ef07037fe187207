//! The CSV reader: header, separator, ragged rows, cells that are not UTF-8.

use std::collections::HashMap;
use std::sync::Arc;

use gcbulk_core::change::Source;

use super::{
    Cell, Field, Format, IgnoreReason, IgnoredTally, Input, InputError, Known, RawRow, ReadOptions,
    RowError, build_row, count,
};

/// What each column of the file is for.
#[derive(Debug)]
enum Slot {
    /// A field, with the column's name as the header writes it.
    Applied(Field, String),
    /// A column read past, by its index in the tally.
    Ignored(usize),
}

/// Reads a CSV file from UTF-8 bytes without a byte order mark.
pub(super) fn read(
    file: &Arc<str>,
    text: &[u8],
    options: &ReadOptions,
) -> Result<Input, InputError> {
    let (delimiter, sep_line) = sniff_delimiter(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text);
    let records = reader.byte_records().skip(usize::from(sep_line));
    let csv_error = |source| InputError::Csv {
        file: file.clone(),
        source,
    };

    // A quote that is never closed makes the parser read the rest of the file as one cell; find
    // it first so that the record holding it is refused instead of sent.
    let open_quote = unterminated_quote(text, delimiter);
    let mut records = records.peekable();

    let Some(header) = records.next().transpose().map_err(csv_error)? else {
        return Err(InputError::Empty { file: file.clone() });
    };
    let header_line = start_line(text, &header);
    if let Some(quote) = open_quote
        && records.peek().is_none()
    {
        return Err(InputError::UnterminatedQuote {
            file: file.clone(),
            line: line_at(text, quote),
        });
    }
    let mut ignored = IgnoredTally::default();
    let slots = layout(file, header_line, &header, &mut ignored)?;

    let mut rows = Vec::new();
    let mut row_errors = Vec::new();
    while let Some(record) = records.next() {
        let record = record.map_err(csv_error)?;
        let source = Source {
            file: file.clone(),
            line: start_line(text, &record),
        };

        if let Some(quote) = open_quote
            && records.peek().is_none()
        {
            let source = Source {
                file: file.clone(),
                line: line_at(text, quote),
            };
            row_errors.push(RowError::new(
                &source,
                None,
                "unterminated quote: the quoted cell starting here runs to the end of the file; \
                 close it with \" (and write a quote inside a cell as \"\")",
            ));
            continue;
        }

        // Spreadsheets pad the end of a sheet with rows of empty cells.
        if record
            .iter()
            .all(|cell| cell.iter().all(u8::is_ascii_whitespace))
        {
            continue;
        }

        if record.len() != slots.len() {
            let message = format!(
                "the row has {} but the header has {}; quote values that contain {:?}",
                count(record.len(), "cell", "cells"),
                slots.len(),
                char::from(delimiter),
            );
            row_errors.push(RowError::new(&source, None, message));
            continue;
        }

        let mut raw = RawRow::default();
        let mut bad_text = Vec::new();
        for (slot, bytes) in slots.iter().zip(record.iter()) {
            match slot {
                Slot::Applied(field, label) => match std::str::from_utf8(bytes) {
                    Ok(text) => {
                        raw.cells
                            .insert(*field, (label.as_str(), Cell::Text(text.trim().to_owned())));
                    }
                    Err(_) => bad_text.push(RowError::new(
                        &source,
                        Some(label),
                        "is not UTF-8 text; save the sheet as \"CSV UTF-8\"",
                    )),
                },
                Slot::Ignored(index) => {
                    if !bytes.iter().all(u8::is_ascii_whitespace) {
                        ignored.count_value(*index);
                    }
                }
            }
        }

        if !bad_text.is_empty() {
            row_errors.extend(bad_text);
            continue;
        }
        match build_row(source, raw, options.clear_empty) {
            Ok(row) => rows.push(row),
            Err(errors) => row_errors.extend(errors),
        }
    }

    Ok(Input {
        rows,
        row_errors,
        ignored_columns: ignored.columns,
        format: Format::Csv,
    })
}

/// Maps the header's columns, refusing a header without a key column or with a column twice.
fn layout(
    file: &Arc<str>,
    line: u64,
    header: &csv::ByteRecord,
    ignored: &mut IgnoredTally,
) -> Result<Vec<Slot>, InputError> {
    let mut slots = Vec::with_capacity(header.len());
    let mut seen: HashMap<Known, usize> = HashMap::new();
    for (index, bytes) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(bytes) else {
            return Err(InputError::HeaderEncoding {
                file: file.clone(),
                line,
            });
        };
        let name = name.trim();

        let Some(known) = Known::parse(name) else {
            let shown = if name.is_empty() {
                format!("(column {})", index + 1)
            } else {
                name.into()
            };
            slots.push(Slot::Ignored(ignored.note(&shown, IgnoreReason::Unknown)));
            continue;
        };
        if let Some(first) = seen.insert(known, index + 1) {
            return Err(InputError::DuplicateColumn {
                file: file.clone(),
                line,
                name: known.canonical(),
                first,
                second: index + 1,
            });
        }
        slots.push(match known {
            Known::Applied(field) => Slot::Applied(field, name.to_owned()),
            Known::NotApplied(_) => Slot::Ignored(ignored.note(name, IgnoreReason::NotApplied)),
        });
    }

    if seen.is_empty() {
        return Err(InputError::NoHeader {
            file: file.clone(),
            line,
        });
    }
    let has_key = [Field::Id, Field::Email]
        .iter()
        .any(|f| seen.contains_key(&Known::Applied(*f)));
    if !has_key {
        return Err(InputError::MissingKeyColumn {
            file: file.clone(),
            line,
        });
    }
    Ok(slots)
}

/// Picks the separator from the first line: Excel's `sep=X` line when there is one (it is then
/// skipped), else `;` or a tab when the header has it and no comma (spreadsheets in locales where
/// the comma is the decimal mark, and Excel's "Unicode Text"), else a comma.
fn sniff_delimiter(text: &[u8]) -> (u8, bool) {
    let start = text
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(text.len());
    let rest = &text[start..];
    let first = rest.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);

    if let [s, e, p, b'=', sep] = first
        && s.eq_ignore_ascii_case(&b's')
        && e.eq_ignore_ascii_case(&b'e')
        && p.eq_ignore_ascii_case(&b'p')
    {
        return (*sep, true);
    }

    let has = |b: u8| first.contains(&b);
    let delimiter = if has(b',') {
        b','
    } else if has(b';') {
        b';'
    } else if has(b'\t') {
        b'\t'
    } else {
        b','
    };
    (delimiter, false)
}

/// The line on which a record starts.
///
/// The parser places a record where the previous one ended, which is before any blank lines it
/// skipped; counting those line breaks gives the line a person sees the record on.
fn start_line(text: &[u8], record: &csv::ByteRecord) -> u64 {
    let Some(position) = record.position() else {
        return 0;
    };
    let mut line = position.line();
    let from = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    for byte in text.iter().skip(from) {
        match byte {
            b'\n' => line += 1,
            b'\r' => {}
            _ => break,
        }
    }
    line
}

/// Where the quote that opens a quoted cell never closed, if one does not: the byte offset of
/// that quote.
///
/// Follows the parser's rules: a quote opens a quoted cell only at the start of a cell, `""`
/// inside one is a quote, and text after the closing quote joins the cell.
fn unterminated_quote(text: &[u8], delimiter: u8) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum State {
        Start,
        Unquoted,
        Quoted(usize),
        AfterQuote(usize),
    }

    let mut state = State::Start;
    for (at, &byte) in text.iter().enumerate() {
        let ends_cell = byte == delimiter || matches!(byte, b'\n' | b'\r');
        state = match state {
            State::Start if byte == b'"' => State::Quoted(at),
            State::Quoted(open) if byte == b'"' => State::AfterQuote(open),
            State::Quoted(open) => State::Quoted(open),
            State::AfterQuote(open) if byte == b'"' => State::Quoted(open),
            _ if ends_cell => State::Start,
            _ => State::Unquoted,
        };
    }
    match state {
        State::Quoted(open) => Some(open),
        _ => None,
    }
}

/// The 1-based line of a byte offset.
fn line_at(text: &[u8], at: usize) -> u64 {
    let breaks = text.iter().take(at).filter(|b| **b == b'\n').count();
    breaks as u64 + 1
}
