//! A Genesys Cloud user as gcbulk reads it, and the comparison of what is with what a row wants.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::change::{Desired, ManagerRef, UserState};

/// A field gcbulk can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `name`.
    Name,
    /// `email`.
    Email,
    /// `title`.
    Title,
    /// `department`.
    Department,
    /// `manager` (a user id).
    Manager,
    /// The WORK phone number in `addresses`.
    PhoneWork,
    /// The WORK phone's extension.
    Extension,
    /// `username`.
    Username,
    /// `preferredName`.
    PreferredName,
    /// `state`.
    State,
}

impl Field {
    /// The column name used in spreadsheets and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Email => "email",
            Self::Title => "title",
            Self::Department => "department",
            Self::Manager => "manager",
            Self::PhoneWork => "phone_work",
            Self::Extension => "extension",
            Self::Username => "username",
            Self::PreferredName => "preferred_name",
            Self::State => "state",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field's value before and after a change. An empty string means "not set".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Which field.
    pub field: Field,
    /// The value before.
    pub before: String,
    /// The value after.
    pub after: String,
}

/// Why a user JSON could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The user has no `id`.
    #[error("user without an id")]
    MissingId,
    /// The user has no numeric `version`, so no safe PATCH can be built.
    #[error("user {0} has no version")]
    MissingVersion(String),
}

/// The parts of a Genesys user that gcbulk compares and writes.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentUser {
    /// The user id.
    pub id: String,
    /// The version a PATCH must carry.
    pub version: u64,
    /// `addresses` as the server sent it, kept whole so a PATCH preserves the other entries.
    addresses: Vec<Value>,
    raw: Map<String, Value>,
}

impl CurrentUser {
    /// Reads a user from its JSON.
    pub fn from_json(value: &Value) -> Result<Self, UserError> {
        let raw = value.as_object().cloned().unwrap_or_default();
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .ok_or(UserError::MissingId)?
            .to_owned();
        let version = raw
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| UserError::MissingVersion(id.clone()))?;
        let addresses = raw
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            id,
            version,
            addresses,
            raw,
        })
    }

    /// The user's e-mail, if any.
    pub fn email(&self) -> Option<&str> {
        self.text("email")
    }

    /// The current value of `field`, empty when unset.
    pub fn get(&self, field: Field) -> String {
        let value = match field {
            Field::Name => self.text("name"),
            Field::Email => self.text("email"),
            Field::Title => self.text("title"),
            Field::Department => self.text("department"),
            Field::Username => self.text("username"),
            Field::PreferredName => self.text("preferredName"),
            Field::State => self.text("state"),
            Field::Manager => self.manager_id(),
            Field::PhoneWork => self.work_phone().and_then(|a| a.get("address")?.as_str()),
            Field::Extension => self.work_phone().and_then(|a| a.get("extension")?.as_str()),
        };
        value.unwrap_or_default().to_owned()
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.raw.get(key).and_then(Value::as_str)
    }

    fn manager_id(&self) -> Option<&str> {
        match self.raw.get("manager")? {
            Value::String(id) => Some(id),
            Value::Object(manager) => manager.get("id")?.as_str(),
            _ => None,
        }
    }

    fn work_phone(&self) -> Option<&Map<String, Value>> {
        self.addresses
            .iter()
            .filter_map(Value::as_object)
            .find(|a| is_work_phone(a))
    }

    /// The changes `desired` asks for that this user does not already have, in field order.
    /// `manager_id` is the resolved manager (`Some("")` clears it), when the row names one.
    pub fn diff(&self, desired: &Desired, manager_id: Option<&str>) -> Vec<FieldChange> {
        let mut changes = Vec::new();
        let mut check = |field: Field, wanted: Option<&str>| {
            let Some(wanted) = wanted else { return };
            let wanted = wanted.trim();
            let before = self.get(field);
            if !same(field, &before, wanted) {
                changes.push(FieldChange {
                    field,
                    before,
                    after: wanted.to_owned(),
                });
            }
        };
        check(Field::Name, desired.name.as_deref());
        check(Field::Email, desired.email.as_deref());
        check(Field::Title, desired.title.as_deref());
        check(Field::Department, desired.department.as_deref());
        check(Field::Manager, manager_id);
        check(Field::PhoneWork, desired.phone_work.as_deref());
        check(Field::Extension, desired.extension.as_deref());
        check(Field::Username, desired.username.as_deref());
        check(Field::PreferredName, desired.preferred_name.as_deref());
        check(Field::State, desired.state.map(UserState::as_str));
        changes
    }

    /// The PATCH body that applies `changes` (none of them `state`) at this user's version.
    pub fn patch_body(&self, changes: &[FieldChange]) -> Value {
        let mut body = Map::new();
        body.insert("version".into(), json!(self.version));
        let mut phone_changed = false;
        for change in changes {
            let key = match change.field {
                Field::Name => "name",
                Field::Email => "email",
                Field::Title => "title",
                Field::Department => "department",
                Field::Manager => "manager",
                Field::Username => "username",
                Field::PreferredName => "preferredName",
                Field::State => "state",
                Field::PhoneWork | Field::Extension => {
                    phone_changed = true;
                    continue;
                }
            };
            body.insert(key.into(), json!(change.after));
        }
        if phone_changed {
            body.insert(
                "addresses".into(),
                Value::Array(self.addresses_with(changes)),
            );
        }
        Value::Object(body)
    }

    /// The whole `addresses` list with the WORK phone entry changed (or added, or removed when
    /// both its number and extension end up empty), so other entries survive the PATCH.
    fn addresses_with(&self, changes: &[FieldChange]) -> Vec<Value> {
        let wanted = |field: Field| {
            changes
                .iter()
                .find(|c| c.field == field)
                .map_or_else(|| self.get(field), |c| c.after.clone())
        };
        let (number, extension) = (wanted(Field::PhoneWork), wanted(Field::Extension));
        let mut addresses: Vec<Value> = Vec::with_capacity(self.addresses.len() + 1);
        let mut placed = false;
        for entry in &self.addresses {
            match entry.as_object() {
                Some(a) if is_work_phone(a) && !placed => {
                    placed = true;
                    if number.is_empty() && extension.is_empty() {
                        continue;
                    }
                    let mut a = a.clone();
                    a.insert("address".into(), json!(number));
                    if extension.is_empty() {
                        a.remove("extension");
                    } else {
                        a.insert("extension".into(), json!(extension));
                    }
                    // `display` is derived from the number by the server; a stale one misleads.
                    a.remove("display");
                    addresses.push(Value::Object(a));
                }
                _ => addresses.push(entry.clone()),
            }
        }
        let wants_phone = !number.is_empty() || !extension.is_empty();
        if !placed && wants_phone {
            let mut a = Map::new();
            a.insert("address".into(), json!(number));
            a.insert("mediaType".into(), json!("PHONE"));
            a.insert("type".into(), json!("WORK"));
            if !extension.is_empty() {
                a.insert("extension".into(), json!(extension));
            }
            addresses.push(Value::Object(a));
        }
        addresses
    }
}

fn is_work_phone(address: &Map<String, Value>) -> bool {
    address.get("mediaType").and_then(Value::as_str) == Some("PHONE")
        && address.get("type").and_then(Value::as_str) == Some("WORK")
}

/// Whether `before` already is `wanted`, the way Genesys compares the field: e-mail addresses and
/// usernames ignore case, phone numbers compare their digits, everything ignores outer spaces.
pub fn same(field: Field, before: &str, wanted: &str) -> bool {
    let (before, wanted) = (before.trim(), wanted.trim());
    match field {
        Field::Email | Field::Username | Field::State => before.eq_ignore_ascii_case(wanted),
        Field::PhoneWork => digits(before) == digits(wanted),
        _ => before == wanted,
    }
}

/// The digits of a phone number.
pub fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// The manager a row wants, as the id to write, when its e-mail (if any) has been resolved.
pub(crate) fn manager_target(desired: &Desired, resolved: Option<&str>) -> Option<String> {
    match desired.manager.as_ref()? {
        ManagerRef::Id(id) => Some(id.trim().to_owned()),
        ManagerRef::Email(_) => resolved.map(str::to_owned),
        ManagerRef::Clear => Some(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> CurrentUser {
        CurrentUser::from_json(&json!({
            "id": "u1", "version": 4, "name": "Zoë Ångström", "email": "Zoe@Acme.example",
            "title": "COO", "department": "Operations", "manager": {"id": "m1"},
            "addresses": [
                {"address": "+1 317 866 1791", "mediaType": "PHONE", "type": "WORK",
                 "extension": "9779", "display": "(317) 866-1791"},
                {"address": "+1 555 0100", "mediaType": "SMS", "type": "MOBILE"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn reads_fields_including_the_work_phone() {
        let u = user();
        assert_eq!(u.get(Field::PhoneWork), "+1 317 866 1791");
        assert_eq!(u.get(Field::Extension), "9779");
        assert_eq!(u.get(Field::Manager), "m1");
        assert_eq!(u.get(Field::PreferredName), "");
    }

    #[test]
    fn a_user_without_version_is_an_error() {
        let err = CurrentUser::from_json(&json!({"id": "u1", "name": "x"})).unwrap_err();
        assert_eq!(err, UserError::MissingVersion("u1".into()));
        assert_eq!(
            CurrentUser::from_json(&json!([])).unwrap_err(),
            UserError::MissingId
        );
    }

    #[test]
    fn comparisons_follow_what_genesys_stores() {
        let desired = Desired {
            email: Some("  zoe@acme.EXAMPLE ".into()),
            phone_work: Some("+1 (317) 866-1791".into()),
            title: Some(" COO ".into()),
            ..Desired::default()
        };
        assert!(user().diff(&desired, None).is_empty());
    }

    #[test]
    fn diff_lists_only_what_changes() {
        let desired = Desired {
            title: Some("Chief Operating Officer".into()),
            department: Some("Operations".into()),
            extension: Some("1234".into()),
            ..Desired::default()
        };
        let changes = user().diff(&desired, Some("m2"));
        let fields: Vec<Field> = changes.iter().map(|c| c.field).collect();
        assert_eq!(fields, [Field::Title, Field::Manager, Field::Extension]);
        assert_eq!(changes[1].before, "m1");
    }

    #[test]
    fn the_patch_keeps_other_addresses_and_carries_the_version() {
        let u = user();
        let changes = u.diff(
            &Desired {
                extension: Some("1234".into()),
                ..Desired::default()
            },
            None,
        );
        let body = u.patch_body(&changes);
        assert_eq!(body["version"], 4);
        let addresses = body["addresses"].as_array().unwrap();
        assert_eq!(addresses.len(), 2);
        assert_eq!(addresses[0]["extension"], "1234");
        assert_eq!(addresses[0]["address"], "+1 317 866 1791");
        assert!(addresses[0].get("display").is_none());
        assert_eq!(addresses[1]["mediaType"], "SMS");
    }

    #[test]
    fn clearing_the_phone_removes_the_entry_and_a_new_phone_adds_one() {
        let u = user();
        let clear = Desired {
            phone_work: Some(String::new()),
            extension: Some(String::new()),
            ..Desired::default()
        };
        let body = u.patch_body(&u.diff(&clear, None));
        assert_eq!(body["addresses"].as_array().unwrap().len(), 1);

        let bare = CurrentUser::from_json(&json!({"id": "u2", "version": 1})).unwrap();
        let add = Desired {
            phone_work: Some("+1 555 0199".into()),
            ..Desired::default()
        };
        let body = bare.patch_body(&bare.diff(&add, None));
        assert_eq!(body["addresses"][0]["type"], "WORK");
        assert_eq!(body["addresses"][0]["address"], "+1 555 0199");
    }
}
