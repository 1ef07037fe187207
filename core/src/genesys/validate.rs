//! Checks made before any request: a rejected row never causes one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::change::{ChangeRow, ManagerRef, Source, UserKey};

/// The longest text gcbulk sends for one field. Genesys does not publish its limits; this is far
/// above any real name or title and far below what a runaway cell (a pasted document) holds.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// Why a row was refused before anything was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The column at fault, when one is.
    pub field: Option<String>,
    /// What is wrong and what to do about it.
    pub reason: String,
}

impl Rejection {
    fn new(field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

/// The result of checking a sheet.
#[derive(Debug, Default)]
pub struct Checked {
    /// Rows to work on, in input order.
    pub accepted: Vec<ChangeRow>,
    /// Rows refused, with the reason.
    pub rejected: Vec<(ChangeRow, Rejection)>,
    /// Rows identical to an earlier row for the same user, with that row's source; they count
    /// once.
    pub duplicates: Vec<(ChangeRow, Source)>,
}

/// Checks every row on its own, then the rows against each other.
pub fn check(rows: Vec<ChangeRow>) -> Checked {
    let mut checked = Checked::default();
    let mut valid = Vec::with_capacity(rows.len());
    for row in rows {
        match check_row(&row) {
            Ok(()) => valid.push(row),
            Err(rejection) => checked.rejected.push((row, rejection)),
        }
    }

    // Group by the user each row names; rows that disagree about one user are all refused.
    let mut by_user: HashMap<UserKey, Vec<usize>> = HashMap::new();
    for (index, row) in valid.iter().enumerate() {
        by_user.entry(normal_key(&row.key)).or_default().push(index);
    }
    let mut verdicts: Vec<Option<Result<(), Rejection>>> = vec![None; valid.len()];
    let mut duplicate_of: Vec<Option<Source>> = vec![None; valid.len()];
    for indexes in by_user.values().filter(|indexes| indexes.len() > 1) {
        let first = &valid[indexes[0]];
        let agree = indexes.iter().all(|&i| valid[i].desired == first.desired);
        if agree {
            for &i in &indexes[1..] {
                duplicate_of[i] = Some(first.source.clone());
            }
            continue;
        }
        let lines: Vec<String> = indexes
            .iter()
            .map(|&i| valid[i].source.line.to_string())
            .collect();
        let reason = format!(
            "lines {} change this user in different ways; keep one row for it",
            lines.join(", ")
        );
        for &i in indexes {
            verdicts[i] = Some(Err(Rejection::new(None, reason.clone())));
        }
    }
    for ((row, verdict), duplicate) in valid.into_iter().zip(verdicts).zip(duplicate_of) {
        match (verdict, duplicate) {
            (Some(Err(rejection)), _) => checked.rejected.push((row, rejection)),
            (_, Some(first)) => checked.duplicates.push((row, first)),
            _ => checked.accepted.push(row),
        }
    }
    checked.rejected.sort_by_key(|(row, _)| row.source.line);
    checked
}

fn normal_key(key: &UserKey) -> UserKey {
    match key {
        UserKey::Id(id) => UserKey::Id(id.trim().to_owned()),
        UserKey::Email(email) => UserKey::Email(email.trim().to_lowercase()),
    }
}

fn check_row(row: &ChangeRow) -> Result<(), Rejection> {
    match &row.key {
        UserKey::Id(id) if id.trim().is_empty() => {
            return Err(Rejection::new(Some("id"), "no user: the id is empty"));
        }
        UserKey::Email(email) if email.trim().is_empty() => {
            return Err(Rejection::new(
                Some("email"),
                "no user: the row has neither id nor email",
            ));
        }
        UserKey::Email(email) => check_email("email", email)?,
        UserKey::Id(_) => {}
    }
    let desired = &row.desired;
    if let Some(email) = desired.email.as_deref().filter(|e| !e.trim().is_empty()) {
        check_email("email", email)?;
    }
    if let Some(phone) = desired
        .phone_work
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        check_phone(phone)?;
    }
    if let Some(extension) = desired
        .extension
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
        && !extension.bytes().all(|b| b.is_ascii_digit())
    {
        let reason = format!("{extension:?} is not an extension: use digits only");
        return Err(Rejection::new(Some("extension"), reason));
    }
    let texts = [
        ("name", &desired.name),
        ("email", &desired.email),
        ("title", &desired.title),
        ("department", &desired.department),
        ("phone_work", &desired.phone_work),
        ("extension", &desired.extension),
        ("username", &desired.username),
        ("preferred_name", &desired.preferred_name),
    ];
    for (field, value) in texts {
        let Some(value) = value.as_deref() else {
            continue;
        };
        if value.chars().count() > MAX_TEXT_CHARS {
            let reason = format!(
                "{} characters is too long (at most {MAX_TEXT_CHARS})",
                value.chars().count()
            );
            return Err(Rejection::new(Some(field), reason));
        }
        if value.chars().any(char::is_control) {
            let reason = "contains a control character (a line break, tab or escape); \
                          remove it from the cell";
            return Err(Rejection::new(Some(field), reason));
        }
    }
    for (field, value) in [("name", &desired.name), ("username", &desired.username)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            let reason = format!("{field} cannot be cleared: Genesys requires one");
            return Err(Rejection::new(Some(field), reason));
        }
    }
    match (&desired.manager, &row.key) {
        (Some(ManagerRef::Email(manager)), UserKey::Email(email)) => {
            check_email("email_manager", manager)?;
            if manager.trim().eq_ignore_ascii_case(email.trim()) {
                return Err(Rejection::new(
                    Some("email_manager"),
                    "a user cannot manage themselves",
                ));
            }
        }
        (Some(ManagerRef::Email(manager)), UserKey::Id(_)) => {
            check_email("email_manager", manager)?
        }
        (Some(ManagerRef::Id(manager)), UserKey::Id(id)) if manager.trim() == id.trim() => {
            return Err(Rejection::new(
                Some("manager_id"),
                "a user cannot manage themselves",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// A light syntax check: one `@`, something before it, a dotted domain after it, no spaces.
pub fn is_email(text: &str) -> bool {
    let text = text.trim();
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && text.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_email(field: &str, email: &str) -> Result<(), Rejection> {
    if is_email(email) {
        Ok(())
    } else {
        Err(Rejection::new(
            Some(field),
            format!("{:?} is not a valid e-mail address", email.trim()),
        ))
    }
}

fn check_phone(phone: &str) -> Result<(), Rejection> {
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if allowed && (7..=15).contains(&digits) {
        Ok(())
    } else {
        let reason = format!("{:?} is not a phone number (7 to 15 digits)", phone.trim());
        Err(Rejection::new(Some("phone_work"), reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Desired;

    fn row(line: u64, key: UserKey, desired: Desired) -> ChangeRow {
        ChangeRow {
            source: Source {
                file: "sheet.csv".into(),
                line,
            },
            key,
            desired,
        }
    }

    fn email(e: &str) -> UserKey {
        UserKey::Email(e.into())
    }

    fn title(t: &str) -> Desired {
        Desired {
            title: Some(t.into()),
            ..Desired::default()
        }
    }

    #[test]
    fn emails() {
        for good in ["a@b.co", " Zoe.Angstrom@Acme.example ", "o'brien@x.example"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "jane.doe@@acme.example",
            "no-at.example",
            "@x.example",
            "a@b",
            "a b@c.de",
            "a@.b",
            "a@b..c",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let rows = vec![
            row(2, email("jane.doe@@acme.example"), title("x")),
            row(
                3,
                email("ok@acme.example"),
                Desired {
                    phone_work: Some("call me".into()),
                    ..Desired::default()
                },
            ),
            row(4, email(""), title("x")),
            row(
                5,
                email("me@acme.example"),
                Desired {
                    manager: Some(ManagerRef::Email("ME@acme.example".into())),
                    ..Desired::default()
                },
            ),
            row(
                6,
                email("ok2@acme.example"),
                Desired {
                    extension: Some("12a".into()),
                    ..Desired::default()
                },
            ),
            row(
                7,
                email("ok3@acme.example"),
                Desired {
                    name: Some(String::new()),
                    ..Desired::default()
                },
            ),
        ];
        let checked = check(rows);
        let fields: Vec<(u64, Option<&str>)> = checked
            .rejected
            .iter()
            .map(|(r, why)| (r.source.line, why.field.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                (2, Some("email")),
                (3, Some("phone_work")),
                (4, Some("email")),
                (5, Some("email_manager")),
                (6, Some("extension")),
                (7, Some("name")),
            ]
        );
        assert!(checked.accepted.is_empty());
    }

    #[test]
    fn runaway_cells_and_control_characters_are_refused() {
        let huge = Desired {
            title: Some("x".repeat(MAX_TEXT_CHARS + 1)),
            ..Desired::default()
        };
        let newline = Desired {
            title: Some("Line1\nLine2".into()),
            ..Desired::default()
        };
        let escape = Desired {
            department: Some("\u{1b}[31mRED".into()),
            ..Desired::default()
        };
        let longest = Desired {
            title: Some("é".repeat(MAX_TEXT_CHARS)),
            ..Desired::default()
        };
        let rows = vec![
            row(2, email("a@x.example"), huge),
            row(3, email("b@x.example"), newline),
            row(4, email("c@x.example"), escape),
            row(5, email("d@x.example"), longest),
        ];
        let checked = check(rows);
        let fields: Vec<(u64, Option<&str>)> = checked
            .rejected
            .iter()
            .map(|(r, why)| (r.source.line, why.field.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                (2, Some("title")),
                (3, Some("title")),
                (4, Some("department"))
            ]
        );
        assert_eq!(checked.accepted.len(), 1);
    }

    #[test]
    fn disagreeing_rows_for_one_user_are_all_refused_and_identical_ones_count_once() {
        let rows = vec![
            row(2, email("a@x.example"), title("Lead")),
            row(3, email(" A@X.example"), title("Supervisor")),
            row(4, email("b@x.example"), title("Lead")),
            row(5, email("b@x.example"), title("Lead")),
            row(6, email("c@x.example"), title("Lead")),
        ];
        let checked = check(rows);
        let rejected: Vec<u64> = checked
            .rejected
            .iter()
            .map(|(r, _)| r.source.line)
            .collect();
        assert_eq!(rejected, [2, 3]);
        assert!(checked.rejected[0].1.reason.contains("lines 2, 3"));
        assert_eq!(checked.duplicates.len(), 1);
        assert_eq!(
            (
                checked.duplicates[0].0.source.line,
                checked.duplicates[0].1.line
            ),
            (5, 4)
        );
        let accepted: Vec<u64> = checked.accepted.iter().map(|r| r.source.line).collect();
        assert_eq!(accepted, [4, 6]);
    }
}
