//! A Genesys Cloud user as the users API shows it, and loading an organisation from JSON lines.

use std::io::BufRead;

use gcbulk_core::change::UserState;
use serde::{Deserialize, Serialize};

/// A user, in the shape of the Genesys `User` entity.
///
/// The fields the bulk workflow reads and writes are typed; anything else the input carries
/// (`chat`, `images`, `biography`, ...) is kept in [`User::extra`] and shown back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user id (a UUID in Genesys).
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Sign-in name (usually the e-mail address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Active, inactive or deleted.
    #[serde(default = "active")]
    pub state: UserState,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The version a PATCH must name; every change bumps it by one.
    pub version: u64,
    /// The division the user belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<Division>,
    /// Phone numbers and other contact addresses, one per media type and type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Work locations, kept as Genesys shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<serde_json::Value>,
    /// The user's manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<UserRef>,
    /// Preferred name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_name: Option<String>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn active() -> UserState {
    UserState::Active
}

impl User {
    /// A minimal active user at version 1, for tests and small scenarios.
    pub fn new(id: impl Into<String>, name: impl Into<String>, email: impl Into<String>) -> Self {
        let email = email.into();
        Self {
            id: id.into(),
            name: name.into(),
            username: Some(email.clone()),
            email: Some(email),
            state: UserState::Active,
            title: None,
            department: None,
            version: 1,
            division: None,
            addresses: Vec::new(),
            locations: Vec::new(),
            manager: None,
            preferred_name: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The path of this user in the API, as Genesys shows it in `selfUri`.
    pub fn self_uri(&self) -> String {
        format!("/api/v2/users/{}", self.id)
    }

    /// The WORK phone entry, if the user has one.
    pub fn work_phone(&self) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.media_type == "PHONE" && a.kind == "WORK")
    }
}

/// A division, as a reference with its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Division {
    /// The division id.
    pub id: String,
    /// The division name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A reference to another user, as in `manager`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    /// The user id.
    pub id: String,
}

/// One contact address of a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// The number or address itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// PHONE, EMAIL or SMS.
    pub media_type: String,
    /// WORK, WORK2, HOME, MOBILE, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The extension, for phones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// The country code, for phones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

/// An organisation file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadUsersError {
    /// The file could not be read.
    #[error("cannot read the organisation: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a user.
    #[error("line {line}: not a user: {source}")]
    Parse {
        /// The 1-based line number.
        line: usize,
        /// What was wrong with it.
        source: serde_json::Error,
    },
    /// Two lines carry the same id.
    #[error("line {line}: user id {id} appears twice")]
    DuplicateId {
        /// The 1-based line number of the second one.
        line: usize,
        /// The id.
        id: String,
    },
}

/// Reads an organisation as JSON lines, one user a line; blank lines are skipped.
pub fn load_users_jsonl(reader: impl BufRead) -> Result<Vec<User>, LoadUsersError> {
    let mut users = Vec::new();
    let mut seen = std::collections::HashSet::new();

    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut user: User =
            serde_json::from_str(&line).map_err(|source| LoadUsersError::Parse {
                line: index + 1,
                source,
            })?;

        // The server writes its own selfUri; one read from a saved answer would be a duplicate.
        user.extra.remove("selfUri");
        if !seen.insert(user.id.clone()) {
            return Err(LoadUsersError::DuplicateId {
                line: index + 1,
                id: user.id,
            });
        }
        users.push(user);
    }
    Ok(users)
}

/// Reads an organisation file of JSON lines, such as `examples/org.jsonl`.
pub fn load_users_file(path: impl AsRef<std::path::Path>) -> Result<Vec<User>, LoadUsersError> {
    let file = std::fs::File::open(path)?;
    load_users_jsonl(std::io::BufReader::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = concat!(
        r#"{"id": "u1", "name": "Zoë Ångström", "email": "zoe@example.com", "#,
        r#""username": "zoe@example.com", "state": "active", "title": "COO", "#,
        r#""department": "Operations", "version": 5, "division": {"id": "d1", "name": "Home"}, "#,
        r#""addresses": [{"address": "+1 317 866 1791", "mediaType": "PHONE", "type": "WORK", "#,
        r#""extension": "9779"}], "#,
        r#""locations": [{"locationDefinition": {"name": "Indianapolis"}}], "#,
        r#""manager": {"id": "u0"}, "chat": {"jabberId": "x@y"}}"#,
    );

    #[test]
    fn a_genesys_user_round_trips() {
        let user: User = serde_json::from_str(LINE).unwrap();

        assert_eq!(user.version, 5);
        assert_eq!(
            user.work_phone().unwrap().extension.as_deref(),
            Some("9779")
        );
        assert_eq!(user.manager, Some(UserRef { id: "u0".into() }));
        assert!(user.extra.contains_key("chat"));

        let again: User = serde_json::from_str(&serde_json::to_string(&user).unwrap()).unwrap();
        assert_eq!(again, user);
    }

    #[test]
    fn loading_names_the_bad_line() {
        let text = format!("{LINE}\n\n{{\"id\": 3}}\n");
        let error = load_users_jsonl(text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, LoadUsersError::Parse { line: 3, .. }),
            "{error}"
        );

        let text = format!("{LINE}\n{LINE}\n");
        let error = load_users_jsonl(text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, LoadUsersError::DuplicateId { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn the_example_organisation_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/org.jsonl");
        let users = load_users_file(path).unwrap();
        assert_eq!(users.len(), 2000);
        assert!(users.iter().all(|u| u.work_phone().is_some()));
    }
}
