//! Writing Genesys users as a CSV in the admin UI's column order, so an admin can edit the
//! sheet and feed it back to gcbulk.
//!
//! The columns are those of the admin UI's bulk CSV up to `location_work`, then `id`, so the
//! sheet read back is keyed by id and its e-mail column is a value like any other. A cell that a
//! spreadsheet would run as a formula gets the `'` escape, which the reader drops again. The file
//! starts with a UTF-8 byte order mark, without which Excel reads accented names as Latin-1.

use std::collections::HashMap;
use std::io::Write;

use serde_json::Value;

use crate::cell;

/// The header the export writes, in order.
pub const EXPORT_COLUMNS: [&str; 9] = [
    "name",
    "email",
    "phone_work",
    "extension",
    "title",
    "department",
    "email_manager",
    "location_work",
    "id",
];

/// A problem writing the export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An entry of the list is not a JSON object with a string `id`.
    #[error("entry {index} of the user list is not a user with an id")]
    NotAUser {
        /// Its 0-based position in the list.
        index: usize,
    },
    /// The CSV writer failed.
    #[error("cannot write the csv: {0}")]
    Csv(#[from] csv::Error),
    /// The output failed.
    #[error("cannot write the csv: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes `users` (Genesys user JSON, as `GET /api/v2/users` returns them) as a CSV.
///
/// A manager is written by e-mail when the manager is among `users`, and left empty otherwise.
/// The phone and extension come from the WORK phone in `addresses`, the location from the first
/// entry of `locations`.
pub fn write_users_csv<W: Write>(users: &[Value], mut out: W) -> Result<(), ExportError> {
    let mut email_by_id: HashMap<&str, String> = HashMap::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        let id = user
            .get("id")
            .and_then(Value::as_str)
            .ok_or(ExportError::NotAUser { index })?;
        email_by_id.insert(id, field(user, "email"));
    }

    out.write_all("\u{feff}".as_bytes())?;
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(EXPORT_COLUMNS)?;

    for user in users {
        let manager_id = match user.get("manager") {
            Some(Value::String(id)) => Some(id.as_str()),
            Some(manager) => manager.get("id").and_then(Value::as_str),
            None => None,
        };
        let email_manager = manager_id
            .and_then(|id| email_by_id.get(id))
            .cloned()
            .unwrap_or_default();
        let (phone_work, extension) = work_phone(user);
        let location = user
            .pointer("/locations/0/locationDefinition/name")
            .map(scalar);

        let cells = [
            field(user, "name"),
            field(user, "email"),
            phone_work,
            extension,
            field(user, "title"),
            field(user, "department"),
            email_manager,
            location.unwrap_or_default(),
            field(user, "id"),
        ];
        writer.write_record(cells.iter().map(|cell| cell::escape(cell).into_owned()))?;
    }

    writer.flush()?;
    Ok(())
}

/// The number and extension of the first address that is a WORK phone, or empty ones.
fn work_phone(user: &Value) -> (String, String) {
    let addresses = user.get("addresses").and_then(Value::as_array);
    let phone = addresses.into_iter().flatten().find(|address| {
        address.get("mediaType").and_then(Value::as_str) == Some("PHONE")
            && address.get("type").and_then(Value::as_str) == Some("WORK")
    });
    let Some(phone) = phone else {
        return (String::new(), String::new());
    };

    // `address` is the number itself; `display` is how the UI shows it, a fallback only.
    let mut number = field(phone, "address");
    if number.is_empty() {
        number = field(phone, "display");
    }
    (number, field(phone, "extension"))
}

/// The text of a key, or empty.
fn field(value: &Value, key: &str) -> String {
    value.get(key).map(scalar).unwrap_or_default()
}

/// A string as it is, a number or boolean as JSON writes it, anything else as empty.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn export(users: &[Value]) -> String {
        let mut out = Vec::new();
        write_users_csv(users, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_the_admin_columns_then_id() {
        let boss = json!({"id": "b", "name": "Boss", "email": "boss@acme.example"});
        let user = json!({
            "id": "u",
            "name": "Smith, Jr., Robert",
            "email": "rs@acme.example",
            "title": "=HYPERLINK(\"x\")",
            "department": "Sales",
            "manager": {"id": "b"},
            "addresses": [
                {"address": "+1 555 0100 99", "mediaType": "PHONE", "type": "HOME"},
                {
                    "address": "+1 317 555 0100",
                    "mediaType": "PHONE",
                    "type": "WORK",
                    "extension": "12"
                }
            ],
            "locations": [{"locationDefinition": {"name": "Raleigh"}}]
        });
        let text = export(&[boss, user]);

        let lines: Vec<_> = text.split("\r\n").collect();
        assert_eq!(lines[0], format!("\u{feff}{}", EXPORT_COLUMNS.join(",")));
        assert_eq!(lines[1], "Boss,boss@acme.example,,,,,,,b");
        assert_eq!(
            lines[2],
            concat!(
                r#""Smith, Jr., Robert",rs@acme.example,+1 317 555 0100,12,"#,
                r#""'=HYPERLINK(""x"")",Sales,boss@acme.example,Raleigh,u"#,
            )
        );
    }

    #[test]
    fn an_unknown_manager_is_left_empty() {
        let text = export(&[json!({"id": "u", "email": "u@acme.example", "manager": "gone"})]);
        assert!(text.ends_with(",u@acme.example,,,,,,,u\r\n"), "{text}");
    }

    #[test]
    fn an_entry_without_id_is_refused() {
        let err = write_users_csv(&[json!({"id": "u"}), json!({"name": "x"})], Vec::new());
        assert!(
            matches!(err, Err(ExportError::NotAUser { index: 1 })),
            "{err:?}"
        );
    }
}
