//! The change-file readers against the shipped example and against the ways spreadsheets and
//! scripts really write files.
#![allow(
    clippy::unwrap_used,
    reason = "a test should stop at the first thing it did not expect"
)]

use gcbulk::input::{
    Format, IgnoreReason, IgnoredColumn, Input, InputError, ReadOptions, RowError, read_changes,
};
use gcbulk_core::change::{ChangeRow, ManagerRef, UserKey, UserState};
use proptest::prelude::*;

const REORG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/reorg.csv");

fn read(name: &str, text: &str) -> Input {
    read_with(name, text.as_bytes(), &ReadOptions::default())
}

fn read_with(name: &str, bytes: &[u8], options: &ReadOptions) -> Input {
    match read_changes(name, bytes, options) {
        Ok(input) => input,
        Err(error) => panic!("{name}: {error}"),
    }
}

fn read_err(name: &str, bytes: &[u8]) -> InputError {
    match read_changes(name, bytes, &ReadOptions::default()) {
        Ok(input) => panic!("{name} was read: {input:?}"),
        Err(error) => error,
    }
}

fn lines(errors: &[RowError]) -> Vec<u64> {
    errors.iter().map(|e| e.source.line).collect()
}

fn lines_of(rows: &[ChangeRow]) -> Vec<u64> {
    rows.iter().map(|r| r.source.line).collect()
}

fn row_at(input: &Input, line: u64) -> &ChangeRow {
    match input.rows.iter().find(|row| row.source.line == line) {
        Some(row) => row,
        None => panic!("no row at line {line}: {:?}", input.row_errors),
    }
}

fn email(text: &str) -> UserKey {
    UserKey::Email(text.to_owned())
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> u64 {
    let index = text.lines().position(|line| line.contains(needle));
    index
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("{needle:?} is not in the file"))
}

mod reorg_example {
    use super::*;

    fn load() -> (String, Input) {
        let bytes = std::fs::read(REORG).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        (
            text,
            read_with("reorg.csv", &bytes, &ReadOptions::default()),
        )
    }

    #[test]
    fn every_data_row_is_either_read_or_reported() {
        let (text, input) = load();
        assert!(
            text.starts_with('\u{feff}'),
            "the example keeps its byte order mark"
        );
        assert!(
            text.contains("\r\n"),
            "the example keeps its CRLF line ends"
        );

        // No record in the example spans lines, so its data rows are its non-blank lines.
        assert!(text.lines().all(|line| line.matches('"').count() % 2 == 0));
        let data_rows = text
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count();

        let mut bad_lines = lines(&input.row_errors);
        bad_lines.dedup();
        assert_eq!(input.rows.len() + bad_lines.len(), data_rows);
        assert_eq!(input.format, Format::Csv);
    }

    #[test]
    fn the_bad_rows_are_named_by_line_and_field() {
        let (text, input) = load();
        let no_email = text
            .lines()
            .position(|line| line.split(',').nth(1) == Some(""))
            .map(|i| i as u64 + 1)
            .unwrap();
        let bad_phone = line_of(&text, "call me maybe");

        let found: Vec<_> = input
            .row_errors
            .iter()
            .map(|e| (e.source.line, e.field.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (10, Some("email")),
                (bad_phone, Some("phone_work")),
                (no_email, None)
            ]
        );

        assert_eq!(
            input.row_errors[0].to_string(),
            r#"reorg.csv:10: email: "jane.doe@@acme-contact.example" is not a valid e-mail address"#
        );
        assert_eq!(
            input.row_errors[2].to_string(),
            format!("reorg.csv:{no_email}: no user: the row has neither id nor email")
        );
    }

    #[test]
    fn quoted_cells_keep_their_commas_and_quotes() {
        let (text, input) = load();

        let smith = row_at(&input, line_of(&text, "\"Smith, Jr., Robert\""));
        assert_eq!(smith.desired.name.as_deref(), Some("Smith, Jr., Robert"));
        assert_eq!(smith.key, email("smith.robert@acme-contact.example"));

        let renee = row_at(&input, line_of(&text, "Dubois"));
        assert_eq!(renee.desired.name.as_deref(), Some("Renée \"Rae\" Dubois"));
        assert_eq!(renee.desired.department.as_deref(), Some("IT"));

        let siobhan = row_at(&input, line_of(&text, "Siobhán O'Brien"));
        assert_eq!(siobhan.desired.name.as_deref(), Some("Siobhán O'Brien"));
        assert_eq!(siobhan.desired.title.as_deref(), Some("Director, Billing"));
    }

    #[test]
    fn a_full_row_maps_to_every_applied_field() {
        let (_, input) = load();
        let first = &input.rows[0];
        assert_eq!(first.source.line, 2);
        assert_eq!(first.key, email("matthew.ward@acme-contact.example"));
        assert_eq!(first.desired.name.as_deref(), Some("Matthew Ward"));
        assert_eq!(first.desired.phone_work.as_deref(), Some("+1 984 529 6192"));
        assert_eq!(first.desired.extension.as_deref(), Some("5790"));
        assert_eq!(first.desired.title.as_deref(), Some("Contact Center Agent"));
        assert_eq!(
            first.desired.department.as_deref(),
            Some("Quality Assurance")
        );
        let manager = ManagerRef::Email("david.carter@acme-contact.example".into());
        assert_eq!(first.desired.manager, Some(manager));
        assert_eq!(
            first.desired.email, None,
            "a row keyed by e-mail does not set it"
        );
    }

    #[test]
    fn emails_are_trimmed_and_keep_their_case() {
        let (text, input) = load();
        let spaced = row_at(&input, line_of(&text, "  jesse.howard@"));
        assert_eq!(spaced.key, email("jesse.howard@acme-contact.example"));

        let shouting = row_at(&input, line_of(&text, "JONATHAN.MARKS@"));
        assert_eq!(shouting.key, email("JONATHAN.MARKS@ACME-CONTACT.EXAMPLE"));
    }

    #[test]
    fn the_location_column_is_reported_as_not_applied() {
        let (text, input) = load();
        let with_location = text.lines().skip(1).filter(|l| !l.ends_with(',')).count();
        let expected = IgnoredColumn {
            name: "location_work".into(),
            reason: IgnoreReason::NotApplied,
            values: with_location,
        };
        assert_eq!(input.ignored_columns, [expected]);
    }
}

mod csv_shapes {
    use super::*;

    #[test]
    fn a_byte_order_mark_and_crlf_are_invisible() {
        let plain = read("t.csv", "email,title\na@acme.example,Lead\n");
        let marked = read("t.csv", "\u{feff}email,title\r\na@acme.example,Lead\r\n");
        assert_eq!(plain.rows, marked.rows);
    }

    #[test]
    fn a_quoted_newline_keeps_the_record_on_its_first_line() {
        let text =
            "email,title\r\na@acme.example,\"Lead,\r\nNight \"\"Owl\"\"\"\r\nb@acme.example,x\r\n";
        let input = read("t.csv", text);
        let found: Vec<_> = input.rows.iter().map(|r| r.source.line).collect();
        assert_eq!(found, [2, 4]);
        assert_eq!(
            input.rows[0].desired.title.as_deref(),
            Some("Lead,\r\nNight \"Owl\"")
        );
    }

    #[test]
    fn an_unterminated_quote_is_an_error_at_its_line_and_sends_nothing_after_it() {
        let text = concat!(
            "email,title\r\n",
            "a@acme.example,Lead\r\n",
            "b@acme.example,\"Night\r\n",
            "c@acme.example,x\r\n",
            "d@acme.example,y\r\n",
        );
        let input = read("t.csv", text);
        assert_eq!(lines_of(&input.rows), [2], "the row before it is read");
        let messages: Vec<_> = input.row_errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with(
                "t.csv:3: unterminated quote: the quoted cell starting here runs to the end of \
                 the file"
            ),
            "{messages:?}"
        );
    }

    #[test]
    fn an_unterminated_quote_is_found_on_the_line_it_opens() {
        // The record starts on line 2 with a closed multi-line cell; the open quote is on line 3.
        let text = "email,title,name\na@acme.example,\"ok\nstill\",\"Jo\nb@acme.example,x,y\n";
        let input = read("t.csv", text);
        assert!(input.rows.is_empty());
        assert_eq!(lines(&input.row_errors), [3]);

        let closed = "email,notes\na@acme.example,\"a \"\"quoted\"\"\nword\"\n";
        assert_eq!(read("t.csv", closed).rows.len(), 1);
        let in_the_middle = "email,title\na@acme.example,5\" screen\n";
        assert_eq!(read("t.csv", in_the_middle).rows.len(), 1);
    }

    #[test]
    fn an_unterminated_quote_in_the_header_is_a_file_error() {
        let err = read_err("t.csv", b"email,\"title\na@acme.example,x\n");
        assert_eq!(
            err.to_string(),
            "t.csv:1: unterminated quote: the quoted cell starting here runs to the end of the \
             file; close it with \""
        );
    }

    #[test]
    fn blank_lines_do_not_shift_line_numbers() {
        let input = read("t.csv", "\r\nemail\r\n\r\n\r\na@acme.example\r\n\nbad\n");
        assert_eq!(input.rows[0].source.line, 5);
        assert_eq!(lines(&input.row_errors), [7]);
    }

    #[test]
    fn rows_of_empty_cells_are_skipped() {
        let input = read("t.csv", "email,title\na@acme.example,x\n,\n , \n");
        assert_eq!(input.rows.len(), 1);
        assert!(input.row_errors.is_empty());
    }

    #[test]
    fn ragged_rows_are_row_errors() {
        let text = concat!(
            "name,email,title\n",
            "Smith, Jr.,s@acme.example,Lead\n",
            "Short,s@acme.example\n",
            "Ok,o@acme.example,x\n",
        );
        let input = read("t.csv", text);
        assert_eq!(lines(&input.row_errors), [2, 3]);
        assert!(input.row_errors.iter().all(|e| e.field.is_none()));
        assert_eq!(
            input.row_errors[0].message,
            "the row has 4 cells but the header has 3; quote values that contain ','"
        );
        assert_eq!(input.rows.len(), 1);
    }

    #[test]
    fn counts_in_messages_agree_with_their_number() {
        let input = read("t.csv", "email,title\na@acme.example\n");
        assert_eq!(
            input.row_errors[0].message,
            "the row has 1 cell but the header has 2; quote values that contain ','"
        );

        let input = read("t.csv", "email,skills,queues\na@acme.example,x:1,\n");
        let shown: Vec<_> = input
            .ignored_columns
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "column \"skills\" is not applied by gcbulk (1 value)",
                "column \"queues\" is not applied by gcbulk (0 values)",
            ]
        );
    }

    #[test]
    fn unknown_columns_are_listed_and_ignored() {
        let input = read(
            "t.csv",
            "Notes,email,skills,\nhi,a@acme.example,,\n,b@acme.example,x:1,\n",
        );
        assert_eq!(input.rows.len(), 2);
        let found: Vec<_> = input
            .ignored_columns
            .iter()
            .map(|c| (c.name.as_str(), c.reason, c.values))
            .collect();
        assert_eq!(
            found,
            [
                ("Notes", IgnoreReason::Unknown, 1),
                ("skills", IgnoreReason::NotApplied, 1),
                ("(column 4)", IgnoreReason::Unknown, 0),
            ]
        );
    }

    #[test]
    fn header_names_ignore_case_and_spaces() {
        let input = read(
            "t.csv",
            " EMAIL ,Phone Work,Preferred_Name,STATE\na@acme.example,555 0100 99,Al,Inactive\n",
        );
        let desired = &input.rows[0].desired;
        assert_eq!(desired.phone_work.as_deref(), Some("555 0100 99"));
        assert_eq!(desired.preferred_name.as_deref(), Some("Al"));
        assert_eq!(desired.state, Some(UserState::Inactive));
    }

    #[test]
    fn a_column_given_twice_is_a_file_error() {
        let err = read_err(
            "t.csv",
            b"Email,title,email \na@acme.example,x,b@acme.example\n",
        );
        assert_eq!(
            err.to_string(),
            "t.csv:1: column \"email\" appears twice, as columns 1 and 3"
        );

        let err = read_err("t.csv", b"email,email_manager,Manager Email\n");
        assert!(
            matches!(
                err,
                InputError::DuplicateColumn {
                    first: 2,
                    second: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_spoils_only_its_row() {
        let mut bytes = b"email,name\na@acme.example,Ren".to_vec();
        bytes.extend([0xE9, b'e', b'\n']); // "Renée" as Windows-1252 writes it
        bytes.extend(b"b@acme.example,Bo\n");
        let input = read_with("t.csv", &bytes, &ReadOptions::default());

        assert_eq!(input.rows.len(), 1);
        assert_eq!(input.row_errors.len(), 1);
        assert_eq!(
            input.row_errors[0].to_string(),
            "t.csv:2: name: is not UTF-8 text; save the sheet as \"CSV UTF-8\""
        );
    }

    #[test]
    fn an_invalid_utf8_header_is_a_file_error() {
        let err = read_err("t.csv", b"email,n\xE9\na@acme.example,x\n");
        assert!(
            matches!(err, InputError::HeaderEncoding { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_a_file_error() {
        for bytes in [&b""[..], b"  \r\n\n", b"\xEF\xBB\xBF", b"\xFF\xFE"] {
            let err = read_err("t.csv", bytes);
            assert_eq!(err.to_string(), "t.csv: the file is empty");
        }
    }

    #[test]
    fn a_header_alone_reads_as_no_rows() {
        let input = read("t.csv", "name,email\r\n");
        assert!(input.rows.is_empty() && input.row_errors.is_empty());
    }

    #[test]
    fn a_file_without_header_or_key_column_is_refused() {
        let err = read_err("t.csv", b"Jo,jo@acme.example\n");
        assert_eq!(
            err.to_string(),
            "t.csv:1: the first line is not a header: it names no known column"
        );

        let err = read_err("t.csv", b"name,title\nJo,Lead\n");
        assert_eq!(
            err.to_string(),
            "t.csv:1: the header has no \"email\" or \"id\" column"
        );
    }

    #[test]
    fn utf16_in_both_byte_orders_reads_like_utf8() {
        let text = "\u{feff}name,email\r\n\"Zoë, Å\",zoe@acme.example\r\nŁukasz,bad@\r\n";
        let utf8 = read("t.csv", text);
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();

        for bytes in [le, be] {
            let utf16 = read_with("t.csv", &bytes, &ReadOptions::default());
            assert_eq!(utf16.rows, utf8.rows);
            assert_eq!(utf16.row_errors, utf8.row_errors);
        }
        assert_eq!(utf8.rows[0].desired.name.as_deref(), Some("Zoë, Å"));
    }

    #[test]
    fn semicolons_tabs_and_excel_sep_lines() {
        let semicolon = read(
            "t.csv",
            "name;email;title\n\"Smith; Jr.\";s@acme.example;Lead, Night\n",
        );
        assert_eq!(
            semicolon.rows[0].desired.name.as_deref(),
            Some("Smith; Jr.")
        );
        assert_eq!(
            semicolon.rows[0].desired.title.as_deref(),
            Some("Lead, Night")
        );

        let tab = read("t.txt", "name\temail\nSmith, Jr.\ts@acme.example\n");
        assert_eq!(tab.rows[0].desired.name.as_deref(), Some("Smith, Jr."));

        let sep = read("t.csv", "sep=;\r\nname;email\r\nA, B;a@acme.example\r\n");
        assert_eq!(sep.rows[0].desired.name.as_deref(), Some("A, B"));
        assert_eq!(sep.rows[0].source.line, 3);
    }
}

mod cells {
    use super::*;

    #[test]
    fn formula_cells_are_row_errors() {
        let text = concat!(
            "email,title,department\n",
            "a@acme.example,\"=HYPERLINK(\"\"http://x\"\",\"\"go\"\")\",Sales\n",
            "b@acme.example,Lead,=CONCAT(A1;B1)\n",
            "c@acme.example,@SUM(A1),x\n",
            "d@acme.example,-2+3+cmd|' /C calc'!A0,x\n",
        );
        let input = read("t.csv", text);
        assert!(input.rows.is_empty());
        let found: Vec<_> = input
            .row_errors
            .iter()
            .map(|e| (e.source.line, e.field.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (2, Some("title")),
                (3, Some("department")),
                (4, Some("title")),
                (5, Some("title"))
            ]
        );
        assert!(
            input.row_errors[0]
                .message
                .contains("looks like a spreadsheet formula")
        );
    }

    #[test]
    fn phones_numbers_and_escaped_text_are_not_formulas() {
        let text = concat!(
            "email,phone_work,title,department,name\n",
            "a@acme.example,+1 317 555 0100,'=not a formula,-,'-- Interim --\n",
        );
        let desired = &read("t.csv", text).rows[0].desired;
        assert_eq!(desired.phone_work.as_deref(), Some("+1 317 555 0100"));
        assert_eq!(desired.title.as_deref(), Some("=not a formula"));
        assert_eq!(desired.department.as_deref(), Some("-"));
        assert_eq!(desired.name.as_deref(), Some("-- Interim --"));
    }

    #[test]
    fn an_apostrophe_before_plain_text_is_kept() {
        let input = read("t.csv", "email,name\na@acme.example,'Ohana\n");
        assert_eq!(input.rows[0].desired.name.as_deref(), Some("'Ohana"));
    }

    #[test]
    fn email_case_and_stray_spaces() {
        let text = concat!(
            "email,email_manager\n",
            "  Jo.Doe@Acme.Example \t, BOSS@ACME.EXAMPLE\n",
            "jo doe@acme.example,\n",
        );
        let input = read("t.csv", text);
        assert_eq!(input.rows[0].key, email("Jo.Doe@Acme.Example"));
        assert_eq!(
            input.rows[0].desired.manager,
            Some(ManagerRef::Email("BOSS@ACME.EXAMPLE".into()))
        );
        assert_eq!(input.row_errors[0].field.as_deref(), Some("email"));
    }

    #[test]
    fn a_bad_state_names_its_field() {
        let input = read(
            "t.csv",
            "email,state\na@acme.example,retired\nb@acme.example, DELETED \n",
        );
        assert_eq!(
            input.row_errors[0].to_string(),
            "t.csv:2: state: \"retired\" is not a user state (active, inactive or deleted)"
        );
        assert_eq!(input.rows[0].desired.state, Some(UserState::Deleted));
    }

    #[test]
    fn empty_cells_leave_fields_alone_by_default() {
        let input = read(
            "t.csv",
            "email,name,title,email_manager,extension\na@acme.example,,,,\n",
        );
        assert!(input.rows[0].desired.is_empty());
    }

    #[test]
    fn clear_empty_clears_what_genesys_lets_be_cleared() {
        let text = concat!(
            "id,email,name,title,department,email_manager,manager_id,phone_work,extension,",
            "username,preferred_name,state\n",
            "u-1,,,,,,,,,,,\n",
        );
        let options = ReadOptions {
            clear_empty: true,
            format: None,
        };
        let input = read_with("t.csv", text.as_bytes(), &options);

        let desired = &input.rows[0].desired;
        assert_eq!(input.rows[0].key, UserKey::Id("u-1".into()));
        for cleared in [
            &desired.title,
            &desired.department,
            &desired.phone_work,
            &desired.extension,
            &desired.preferred_name,
        ] {
            assert_eq!(cleared.as_deref(), Some(""));
        }
        assert_eq!(desired.manager, Some(ManagerRef::Clear));
        for kept in [&desired.name, &desired.email, &desired.username] {
            assert_eq!(*kept, None);
        }
        assert_eq!(desired.state, None);
    }

    #[test]
    fn a_set_manager_wins_over_an_empty_one_when_clearing() {
        let options = ReadOptions {
            clear_empty: true,
            format: None,
        };
        let text = "email,email_manager,manager_id\na@acme.example,,m-1\n";
        let input = read_with("t.csv", text.as_bytes(), &options);
        assert_eq!(
            input.rows[0].desired.manager,
            Some(ManagerRef::Id("m-1".into()))
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = format!("{}@@acme.example", "x".repeat(200));
        let input = read("t.csv", &format!("email\n{long}\n"));
        let message = &input.row_errors[0].message;
        assert!(message.len() < 80 && message.contains('…'), "{message}");
    }
}

mod jsonl {
    use super::*;

    #[test]
    fn good_lines_map_to_rows() {
        let text = concat!(
            r#"{"email": " jo@acme.example ", "title": "Lead", "managerEmail": "b@acme.example"}"#,
            "\n\n",
            r#"{"id": "u-2", "email": "new@acme.example", "preferredName": "Al","#,
            r#" "phoneWork": "+1 317 555 0100", "state": "inactive"}"#,
            "\r\n",
            r#"{"email": "c@acme.example", "department": null, "manager_id": null,"#,
            r#" "extension": ""}"#,
            "\n",
            r#"{"email": "d@acme.example", "managerId": "m-1", "username": "dee", "name": "Dee"}"#,
            "\n",
        );
        let input = read("changes.jsonl", text);
        assert_eq!(input.format, Format::Jsonl);
        assert!(input.row_errors.is_empty(), "{:?}", input.row_errors);

        let found: Vec<_> = input.rows.iter().map(|r| r.source.line).collect();
        assert_eq!(found, [1, 3, 4, 5]);

        let jo = &input.rows[0];
        assert_eq!(jo.key, email("jo@acme.example"));
        assert_eq!(
            jo.desired.manager,
            Some(ManagerRef::Email("b@acme.example".into()))
        );

        let u2 = &input.rows[1].desired;
        assert_eq!(input.rows[1].key, UserKey::Id("u-2".into()));
        assert_eq!(u2.email.as_deref(), Some("new@acme.example"));
        assert_eq!(u2.preferred_name.as_deref(), Some("Al"));
        assert_eq!(u2.phone_work.as_deref(), Some("+1 317 555 0100"));
        assert_eq!(u2.state, Some(UserState::Inactive));

        let c = &input.rows[2].desired;
        assert_eq!(c.department, None, "null is an empty cell");
        assert_eq!(c.manager, None, "null is an empty cell");
        assert_eq!(c.extension, None, "an empty string is an empty cell");

        let d = &input.rows[3].desired;
        assert_eq!(d.manager, Some(ManagerRef::Id("m-1".into())));
        assert_eq!(d.username.as_deref(), Some("dee"));
    }

    #[test]
    fn bad_lines_are_row_errors_with_line_and_field() {
        let text = concat!(
            "{\"email\": \"a@acme.example\"}\n",
            "not json\n",
            "[\"a@acme.example\"]\n",
            "{\"email\": \"b@acme.example\", \"version\": 3}\n",
            "{\"email\": \"c@acme.example\", \"extension\": 1234}\n",
            "{\"email\": \"d@acme.example\", \"phone_work\": \"1\", \"phoneWork\": \"2\"}\n",
            "{\"email\": \"e@acme.example\", \"name\": null}\n",
            "{\"email\": \"f@acme.example\"\n",
            "{\"title\": \"Lead\"}\n",
        );
        let input = read("t.jsonl", text);
        // Line 7's `null` name is an empty cell, so that line is a row that leaves the name.
        assert_eq!(lines_of(&input.rows), [1, 7]);
        assert_eq!(input.rows[1].desired.name, None);

        let found: Vec<_> = input
            .row_errors
            .iter()
            .map(|e| (e.source.line, e.field.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (2, None),
                (3, None),
                (4, Some("version")),
                (5, Some("extension")),
                (6, Some("phone_work")),
                (8, None),
                (9, None),
            ]
        );
        let messages: Vec<_> = input.row_errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages[0],
            "t.jsonl:2: the line is not JSON: expected ident at column 2"
        );
        assert_eq!(
            messages[1],
            "t.jsonl:3: the line is an array, not a JSON object"
        );
        assert_eq!(
            messages[2],
            "t.jsonl:4: version: is not a field gcbulk knows"
        );
        assert_eq!(
            messages[3],
            "t.jsonl:5: extension: must be a string or null, not a number"
        );
    }

    #[test]
    fn null_and_empty_strings_are_empty_cells() {
        let text = concat!(
            r#"{"email": "a@acme.example", "title": null, "department": "", "#,
            r#""manager_id": null, "email_manager": " ", "phone_work": null, "name": null, "#,
            r#""username": "", "state": null, "preferredName": null, "extension": ""}"#,
            "\n",
        );

        let kept = read("t.jsonl", text);
        assert!(kept.row_errors.is_empty(), "{:?}", kept.row_errors);
        assert!(
            kept.rows[0].desired.is_empty(),
            "without --clear-empty nothing changes: {:?}",
            kept.rows[0].desired
        );

        let options = ReadOptions {
            clear_empty: true,
            format: None,
        };
        let cleared = read_with("t.jsonl", text.as_bytes(), &options);
        assert!(cleared.row_errors.is_empty(), "{:?}", cleared.row_errors);
        let desired = &cleared.rows[0].desired;
        for field in [
            &desired.title,
            &desired.department,
            &desired.phone_work,
            &desired.extension,
            &desired.preferred_name,
        ] {
            assert_eq!(field.as_deref(), Some(""));
        }
        assert_eq!(desired.manager, Some(ManagerRef::Clear));
        assert_eq!((&desired.name, &desired.username), (&None, &None));
        assert_eq!(desired.state, None);
    }

    #[test]
    fn a_null_not_applied_key_is_not_counted_as_a_value() {
        let input = read(
            "t.jsonl",
            "{\"email\": \"a@acme.example\", \"skills\": null, \"queues\": \"\"}\n",
        );
        let values: Vec<_> = input.ignored_columns.iter().map(|c| c.values).collect();
        assert_eq!(values, [0, 0]);
    }

    #[test]
    fn not_applied_keys_are_listed() {
        let input = read(
            "t.jsonl",
            "{\"email\": \"a@acme.example\", \"skills\": \"x:1\"}\n",
        );
        assert_eq!(input.rows.len(), 1);
        assert_eq!(input.ignored_columns[0].reason, IgnoreReason::NotApplied);
    }

    #[test]
    fn the_first_brace_selects_jsonl_and_options_override() {
        let input = read("changes.txt", "\u{feff}\n{\"email\": \"a@acme.example\"}\n");
        assert_eq!(input.format, Format::Jsonl);
        assert_eq!(input.rows[0].source.line, 2);

        let options = ReadOptions {
            clear_empty: false,
            format: Some(Format::Csv),
        };
        let err = read_changes("changes.jsonl", b"{\"email\": \"a\"}\n", &options).unwrap_err();
        assert!(matches!(err, InputError::NoHeader { .. }), "{err}");
    }

    #[test]
    fn a_json_array_file_is_refused() {
        let err = read_err("t.jsonl", b"[{\"email\": \"a@acme.example\"}]");
        assert_eq!(
            err.to_string(),
            "t.jsonl: a JSON array is not JSON lines; write one object per line"
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_are_read_or_refused_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        jsonl in any::<Option<bool>>(),
        clear_empty in any::<bool>(),
    ) {
        let format = jsonl.map(|j| if j { Format::Jsonl } else { Format::Csv });
        let _ = read_changes("fuzz", &bytes, &ReadOptions { clear_empty, format });
    }

    #[test]
    fn csv_like_bytes_are_read_or_refused_without_panic(
        body in "(email|id|name|state|,|;|\t|\"|\r|\n|'|=|\\+|@|a|1| |é|\u{feff}){0,80}",
        clear_empty in any::<bool>(),
    ) {
        let text = format!("email,id,name,state,manager_id,email_manager\n{body}");
        let options = ReadOptions { clear_empty, format: None };
        if let Ok(input) = read_changes("t.csv", text.as_bytes(), &options) {
            let lines = text.matches('\n').count() as u64 + 1;
            for row in &input.rows {
                prop_assert!((2..=lines).contains(&row.source.line));
            }
        }
    }
}
