//! The rules one spreadsheet cell follows on its way in and out: the formula guard, the `'`
//! escape that lets a value start like a formula, and the light syntax checks of the readers.
//!
//! A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula. Such text is
//! refused on the way in, since it usually means a formula was exported instead of its value
//! (and storing it would hand the formula to whoever exports the users next). A `+` or `-` that
//! leads a number or a phone number is not a formula: it cannot call anything. Spreadsheet users
//! already know the escape: a leading `'` means "this text as it is"; the reader drops it and the
//! export adds it.

use std::borrow::Cow;

/// The characters that make a spreadsheet read a cell as a formula.
const FORMULA_LEADS: [char; 4] = ['=', '+', '-', '@'];

/// The spreadsheet's "text as it is" mark.
const ESCAPE: char = '\'';

/// The longest part of a value quoted back in an error message, in characters.
const SHOWN_CHARS: usize = 40;

/// Removes the `'` escape, returning the value and whether it was escaped.
///
/// Only a `'` before a formula lead (or before another `'`) is an escape, so a name such as
/// `'Ohana` keeps its apostrophe.
pub(crate) fn unescape(cell: &str) -> (&str, bool) {
    match cell.strip_prefix(ESCAPE) {
        Some(rest) if rest.starts_with(|c| FORMULA_LEADS.contains(&c) || c == ESCAPE) => {
            (rest, true)
        }
        _ => (cell, false),
    }
}

/// Adds the `'` escape where [`unescape`] would otherwise change the value or a spreadsheet
/// would run it.
pub(crate) fn escape(value: &str) -> Cow<'_, str> {
    if looks_like_formula(value) || unescape(value).1 {
        Cow::Owned(format!("{ESCAPE}{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// True when a spreadsheet would run the text as a formula that can call a function.
pub(crate) fn looks_like_formula(value: &str) -> bool {
    let mut chars = value.chars();
    let Some(lead) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    if !FORMULA_LEADS.contains(&lead) || rest.trim().is_empty() {
        return false;
    }

    match lead {
        '+' | '-' => !is_number_or_phone(rest),
        _ => true,
    }
}

/// True for digits with the punctuation phone numbers are written with, and at least one digit.
fn is_number_or_phone(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit()) && text.chars().all(is_phone_char)
}

fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.')
}

/// Checks the shape of an e-mail address: one `@`, both sides non-empty, a dot inside the
/// domain, no spaces. Whether the mailbox exists is the server's business.
pub(crate) fn check_email(value: &str) -> Result<(), String> {
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };

    if valid {
        Ok(())
    } else {
        Err(format!("{} is not a valid e-mail address", shown(value)))
    }
}

/// Checks the shape of a phone number: 7 to 15 digits (the E.164 maximum) and only the
/// punctuation people write phone numbers with.
pub(crate) fn check_phone(value: &str) -> Result<(), String> {
    if !value.chars().all(is_phone_char) {
        return Err(format!(
            "{} is not a phone number: only digits, spaces and + - ( ) . are allowed",
            shown(value)
        ));
    }

    let digits = value.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return Err(format!(
            "{} is not a phone number: it has {digits} digits, not 7 to 15",
            shown(value)
        ));
    }
    Ok(())
}

/// Checks that an extension is digits only.
pub(crate) fn check_extension(value: &str) -> Result<(), String> {
    if value.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "{} is not an extension: only digits are allowed",
            shown(value)
        ))
    }
}

/// Checks that a user id is one word: Genesys ids are UUIDs, and a space means two were pasted.
pub(crate) fn check_id(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "{} is not a user id: it contains spaces",
            shown(value)
        ))
    } else {
        Ok(())
    }
}

/// Quotes a value for an error message, cut short so one long cell cannot swamp the report.
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}", format!("{}…", &value[..cut])),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_told_from_phones_and_numbers() {
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "=CONCAT(A1,B1)",
            "@SUM(A1)",
            "+A1",
            "-cmd|x",
        ] {
            assert!(looks_like_formula(formula), "{formula}");
        }
        for plain in [
            "+1 317 555 0100",
            "+44 (20) 7946-0958",
            "-5",
            "-",
            "=",
            "+",
            "a=b",
            "",
        ] {
            assert!(!looks_like_formula(plain), "{plain}");
        }
    }

    #[test]
    fn escape_and_unescape_are_inverse() {
        for value in [
            "=x",
            "'=x",
            "''",
            "'",
            "'Ohana",
            "-",
            "+1 317 555 0100",
            "@x",
            "plain",
        ] {
            let escaped = escape(value);
            assert_eq!(unescape(&escaped).0, value, "{value} -> {escaped}");
        }
        assert_eq!(escape("=x"), "'=x");
        assert_eq!(escape("+1 317 555 0100"), "+1 317 555 0100");
        assert_eq!(unescape("'Ohana"), ("'Ohana", false));
    }

    #[test]
    fn email_shape() {
        assert!(check_email("jane.doe@acme.example").is_ok());
        for bad in [
            "jane.doe@@acme.example",
            "jane doe@acme.example",
            "@acme.example",
            "jane@",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email("jane@localhost").is_err());
        assert!(check_email("jane@acme.").is_err());
    }

    #[test]
    fn phone_and_extension_shape() {
        assert!(check_phone("+1 (317) 555-0100").is_ok());
        assert!(check_phone("+353 1.592.6900").is_ok());
        assert!(check_phone("call me maybe").is_err());
        assert!(check_phone("12345").is_err());
        assert!(check_phone("1234567890123456").is_err());
        assert!(check_extension("5790").is_ok());
        assert!(check_extension("57 90").is_err());
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "é".repeat(100);
        let text = shown(&long);
        assert_eq!(text.chars().count(), SHOWN_CHARS + 3);
        assert!(text.ends_with("…\""));
        assert_eq!(shown("a\"b"), r#""a\"b""#);
    }
}
