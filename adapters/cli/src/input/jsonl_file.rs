//! The JSON lines reader: one object per line, strings or `null` as values.
//!
//! `null` is an empty cell, as is `""`: it leaves the field as it is unless
//! [`ReadOptions::clear_empty`] is set, exactly as an empty CSV cell does.

use std::collections::BTreeMap;
use std::sync::Arc;

use gcbulk_core::change::Source;
use serde_json::Value;

use super::{
    Cell, Field, Format, IgnoreReason, IgnoredTally, Input, InputError, Known, RawRow, ReadOptions,
    RowError, build_row,
};

/// Reads JSON lines from UTF-8 bytes without a byte order mark.
pub(super) fn read(
    file: &Arc<str>,
    text: &[u8],
    options: &ReadOptions,
) -> Result<Input, InputError> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(InputError::JsonArray { file: file.clone() });
    }

    let mut ignored = IgnoredTally::default();
    let mut rows = Vec::new();
    let mut row_errors = Vec::new();
    for (index, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let source = Source {
            file: file.clone(),
            line: index as u64 + 1,
        };

        let object = match parse_object(line) {
            Ok(object) => object,
            Err(message) => {
                row_errors.push(RowError::new(&source, None, message));
                continue;
            }
        };

        match raw_row(&source, &object, &mut ignored) {
            Ok(raw) => match build_row(source, raw, options.clear_empty) {
                Ok(row) => rows.push(row),
                Err(errors) => row_errors.extend(errors),
            },
            Err(errors) => row_errors.extend(errors),
        }
    }

    Ok(Input {
        rows,
        row_errors,
        ignored_columns: ignored.columns,
        format: Format::Jsonl,
    })
}

/// Parses one line as a JSON object, or says why it is not one.
fn parse_object(line: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err("the line is not UTF-8 text".to_owned());
    };

    match serde_json::from_str(line) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!("the line is {}, not a JSON object", kind(&other))),
        Err(error) => {
            // serde_json speaks of "line 1" of the one line it was given: keep only the column.
            let text = error.to_string();
            let what = text.split(" at line ").next().unwrap_or(&text);
            Err(format!(
                "the line is not JSON: {what} at column {}",
                error.column()
            ))
        }
    }
}

/// Maps an object's keys to fields, noting keys that are read past.
fn raw_row<'a>(
    source: &Source,
    object: &'a serde_json::Map<String, Value>,
    ignored: &mut IgnoredTally,
) -> Result<RawRow<'a>, Vec<RowError>> {
    let mut raw = RawRow::default();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<Field, &str> = BTreeMap::new();
    for (key, value) in object {
        let field = match Known::parse(key) {
            Some(Known::Applied(field)) => field,
            Some(Known::NotApplied(_)) => {
                let index = ignored.note(key, IgnoreReason::NotApplied);
                let empty = match value {
                    Value::Null => true,
                    Value::String(text) => text.trim().is_empty(),
                    _ => false,
                };
                if !empty {
                    ignored.count_value(index);
                }
                continue;
            }
            None => {
                errors.push(RowError::new(
                    source,
                    Some(key),
                    "is not a field gcbulk knows",
                ));
                continue;
            }
        };

        if let Some(other) = seen.insert(field, key) {
            let message = format!("is given twice, as {other:?} and {key:?}");
            errors.push(RowError::new(source, Some(key), message));
            continue;
        }
        let cell = match value {
            Value::String(text) => Cell::Text(text.trim().to_owned()),
            // An empty cell, never a request to clear: only --clear-empty clears.
            Value::Null => Cell::Text(String::new()),
            other => {
                let message = format!("must be a string or null, not {}", kind(other));
                errors.push(RowError::new(source, Some(key), message));
                continue;
            }
        };
        raw.cells.insert(field, (key.as_str(), cell));
    }

    if errors.is_empty() {
        Ok(raw)
    } else {
        Err(errors)
    }
}

/// Names a JSON value's type for a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
