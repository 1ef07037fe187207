//! The change model: what one row of a spreadsheet asks of one user.
//!
//! Readers (CSV, JSONL) turn their input into [`ChangeRow`]s; [`crate::genesys::validate`] checks them
//! before any request is made. A row remembers where it came from so every error can name the
//! file and line.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a row came from: a file name and a 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The input file as the user named it.
    pub file: Arc<str>,
    /// The 1-based line on which the row starts.
    pub line: u64,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// How a row names the user it changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKey {
    /// The Genesys user id.
    Id(String),
    /// The user's e-mail address, resolved to an id by a search.
    Email(String),
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "id {id}"),
            Self::Email(email) => write!(f, "{email}"),
        }
    }
}

/// Who a row wants as the user's manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagerRef {
    /// A manager named by user id.
    Id(String),
    /// A manager named by e-mail, resolved by a search.
    Email(String),
    /// Remove the manager.
    Clear,
}

/// A user's state as Genesys Cloud stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// Can sign in.
    Active,
    /// Kept but cannot sign in.
    Inactive,
    /// Deleted.
    Deleted,
}

impl UserState {
    /// The value Genesys uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Deleted => "deleted",
        }
    }

    /// Parses the wire value, ignoring case and surrounding spaces.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// The fields a row wants to set. `None` leaves a field as it is; `Some("")` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Desired {
    /// Display name.
    pub name: Option<String>,
    /// E-mail address (only when the row is keyed by id).
    pub email: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Manager, by id or e-mail.
    pub manager: Option<ManagerRef>,
    /// The WORK phone number in `addresses`.
    pub phone_work: Option<String>,
    /// The extension of the WORK phone.
    pub extension: Option<String>,
    /// Sign-in name.
    pub username: Option<String>,
    /// Preferred name.
    pub preferred_name: Option<String>,
    /// State; Genesys requires it to be the only field in its PATCH.
    pub state: Option<UserState>,
}

impl Desired {
    /// True when the row asks for no change at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One row of input: which user, and what it should become.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRow {
    /// Where the row came from.
    pub source: Source,
    /// The user it changes.
    pub key: UserKey,
    /// What it wants.
    pub desired: Desired,
}
