//! What happened to each row: the facts the journal, the report and `revert` are built from.

use std::fmt;

use bytes::Bytes;
use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::user::FieldChange;
use crate::change::{Source, UserKey};

/// How one row ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RowOutcome {
    /// The server confirmed the change.
    Updated {
        /// The user.
        user_id: String,
        /// Each field's value before and after.
        changes: Vec<FieldChange>,
        /// The version the first PATCH carried.
        version_before: u64,
        /// The version the server answered with.
        version_after: u64,
        /// The change was made by a PATCH whose answer was lost (a run killed, a connection cut,
        /// after it was sent): a later read found the user at the version that PATCH made, as
        /// the row asks. This machine never sets it; a driver that records the PATCHes it sends
        /// does, on what would otherwise be reported unchanged.
        #[serde(default, skip_serializing_if = "is_false")]
        answer_lost: bool,
    },
    /// Dry run: what would change.
    WouldUpdate {
        /// The user.
        user_id: String,
        /// Each field's value now and as the row wants it.
        changes: Vec<FieldChange>,
        /// The version read.
        version: u64,
    },
    /// The user already matched the row (perhaps because someone else made the same change);
    /// nothing was written.
    Unchanged {
        /// The user.
        user_id: String,
        /// The version read.
        version: u64,
    },
    /// The same as an earlier row for the same user; counted there.
    Duplicate {
        /// The earlier row's line.
        of_line: u64,
    },
    /// No user has that id or e-mail.
    NotFound,
    /// The row was refused; nothing was written for it.
    Rejected {
        /// The column at fault, when one is.
        field: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Reverting: the user was changed by someone else since the run being reverted, so it was
    /// left alone.
    ChangedSince {
        /// The user.
        user_id: String,
        /// The version the run left behind.
        expected_version: u64,
        /// The version found.
        version: u64,
    },
    /// Someone else kept writing the user; gcbulk stopped retrying.
    ConflictGaveUp {
        /// The user.
        user_id: String,
        /// Version conflicts met.
        conflicts: u32,
    },
    /// The server refused the change.
    Failed {
        /// The user, when known.
        user_id: Option<String>,
        /// The HTTP status.
        status: u16,
        /// Genesys' error `code`.
        code: Option<String>,
        /// Genesys' error `message`.
        message: Option<String>,
        /// `ININ-Correlation-Id`, for Genesys support.
        correlation_id: Option<String>,
    },
    /// No final answer: rate limited for too long, the server kept failing, or the run stopped.
    /// Resuming the run retries the row.
    GaveUp {
        /// The user, when known.
        user_id: Option<String>,
        /// Why.
        reason: String,
        /// The wait the server asked for, when that was the reason.
        retry_after_s: Option<u64>,
    },
}

impl RowOutcome {
    /// The outcome's name as reports and the journal spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Updated { .. } => "updated",
            Self::WouldUpdate { .. } => "would_update",
            Self::Unchanged { .. } => "unchanged",
            Self::Duplicate { .. } => "duplicate",
            Self::NotFound => "not_found",
            Self::Rejected { .. } => "rejected",
            Self::ChangedSince { .. } => "changed_since",
            Self::ConflictGaveUp { .. } => "conflict_gave_up",
            Self::Failed { .. } => "failed",
            Self::GaveUp { .. } => "gave_up",
        }
    }

    /// True when the row needs nothing more: re-running the same sheet would not change it.
    /// Resuming skips these rows.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Updated { .. }
                | Self::Unchanged { .. }
                | Self::Duplicate { .. }
                | Self::NotFound
                | Self::Rejected { .. }
                | Self::ChangedSince { .. }
        )
    }

    /// The user id, when the row got as far as finding one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::Updated { user_id, .. }
            | Self::WouldUpdate { user_id, .. }
            | Self::Unchanged { user_id, .. }
            | Self::ChangedSince { user_id, .. }
            | Self::ConflictGaveUp { user_id, .. } => Some(user_id),
            Self::Failed { user_id, .. } | Self::GaveUp { user_id, .. } => user_id.as_deref(),
            Self::Duplicate { .. } | Self::NotFound | Self::Rejected { .. } => None,
        }
    }

    /// A failure built from a Genesys error answer.
    pub(crate) fn failed(user_id: Option<String>, response: &Response<Bytes>) -> Self {
        let details = ErrorDetails::from_response(response);
        Self::Failed {
            user_id,
            status: response.status().as_u16(),
            code: details.code,
            message: details.message,
            correlation_id: details.correlation_id,
        }
    }
}

impl fmt::Display for RowOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Updated {
                changes,
                answer_lost,
                ..
            } => {
                write!(f, "updated {} field(s)", changes.len())?;
                if *answer_lost {
                    f.write_str(" by the interrupted run (its answer was lost)")?;
                }
                Ok(())
            }
            Self::WouldUpdate { changes, .. } => {
                write!(f, "would update {} field(s)", changes.len())
            }
            Self::Unchanged { .. } => f.write_str("unchanged"),
            Self::Duplicate { of_line } => write!(f, "same as line {of_line}"),
            Self::NotFound => f.write_str("no such user"),
            Self::Rejected {
                field: Some(field),
                reason,
            } => write!(f, "{field}: {reason}"),
            Self::Rejected {
                field: None,
                reason,
            } => f.write_str(reason),
            Self::ChangedSince {
                expected_version,
                version,
                ..
            } => write!(
                f,
                "changed by someone else since (version {version}, expected {expected_version})"
            ),
            Self::ConflictGaveUp { conflicts, .. } => {
                write!(f, "gave up after {conflicts} version conflicts")
            }
            Self::Failed {
                status,
                code,
                message,
                correlation_id,
                ..
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, " {code}")?;
                }
                if let Some(message) = message {
                    write!(f, ": {message}")?;
                }
                if let Some(id) = correlation_id {
                    write!(f, " (correlation id {id})")?;
                }
                Ok(())
            }
            Self::GaveUp { reason, .. } => write!(f, "gave up: {reason}"),
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One row's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowReport {
    /// Where the row came from.
    pub source: Source,
    /// The user it named.
    pub key: UserKey,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: RowOutcome,
}

/// What a Genesys error answer says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorDetails {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) correlation_id: Option<String>,
}

impl ErrorDetails {
    pub(crate) fn from_response(response: &Response<Bytes>) -> Self {
        let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(clip);
        Self {
            code: text("code").or_else(|| text("error")),
            message: text("message")
                .or_else(|| text("error_description"))
                .or_else(|| text("description")),
            correlation_id: response
                .headers()
                .get("inin-correlation-id")
                .and_then(|v| v.to_str().ok())
                .map(clip),
        }
    }
}

/// Error texts come from the server; keep reports readable if one is enormous.
fn clip(text: &str) -> String {
    const MAX: usize = 500;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
