//! What the server saw: answers by endpoint and status, 429s by cause, an optional timeline.

use std::collections::BTreeMap;

use gcbulk_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ClientId, Endpoint};

/// Counts of everything the server answered, for assertions and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Answers by endpoint, then by status. Resets are not answers and are counted apart.
    pub answers: BTreeMap<Endpoint, BTreeMap<u16, u64>>,
    /// 429s answered, all causes together.
    pub throttled: u64,
    /// 429s by what caused them.
    pub throttled_by: BTreeMap<ThrottleCause, u64>,
    /// Connections reset instead of answered.
    pub resets: u64,
    /// Edits made by the modelled concurrent editors.
    pub editor_edits: u64,
    /// Every answer and reset in order, when the configuration asks for it.
    pub timeline: Vec<TimelineEvent>,
}

impl ServerStats {
    /// Answers with this status from this endpoint.
    pub fn count(&self, endpoint: Endpoint, status: u16) -> u64 {
        self.answers
            .get(&endpoint)
            .and_then(|by| by.get(&status))
            .copied()
            .unwrap_or(0)
    }

    /// Answers with this status from any endpoint.
    pub fn count_status(&self, status: u16) -> u64 {
        self.answers.values().filter_map(|by| by.get(&status)).sum()
    }

    /// Answers from this endpoint, any status.
    pub fn count_endpoint(&self, endpoint: Endpoint) -> u64 {
        self.answers
            .get(&endpoint)
            .map_or(0, |by| by.values().sum())
    }

    /// Every answer.
    pub fn total(&self) -> u64 {
        self.answers.values().flat_map(|by| by.values()).sum()
    }

    pub(crate) fn record(&mut self, event: TimelineEvent, keep: bool) {
        match event.status {
            Some(status) => {
                *self
                    .answers
                    .entry(event.endpoint)
                    .or_default()
                    .entry(status)
                    .or_default() += 1;
            }
            None => self.resets += 1,
        }
        if let Some(cause) = event.throttle {
            self.throttled += 1;
            *self.throttled_by.entry(cause).or_default() += 1;
        }
        if keep {
            self.timeline.push(event);
        }
    }
}

/// One answer or reset, for plots of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When the request arrived, in virtual time.
    pub at: Timestamp,
    /// The connection it came from.
    pub client: ClientId,
    /// What it asked for.
    pub endpoint: Endpoint,
    /// The status answered, or `None` when the connection was reset.
    pub status: Option<u16>,
    /// Why it was refused with a 429, if it was.
    pub throttle: Option<ThrottleCause>,
}

/// Why a request was refused with a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleCause {
    /// The OAuth client's budget (the one the headers announce).
    Client,
    /// An endpoint's own limit.
    Endpoint,
    /// The organisation's budget.
    Org,
    /// A 429 storm.
    Storm,
    /// The daily limit.
    Daily,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_resets_stand_apart() {
        let mut stats = ServerStats::default();
        let event = |status, throttle| TimelineEvent {
            at: Timestamp::ZERO,
            client: ClientId(0),
            endpoint: Endpoint::PatchUser,
            status,
            throttle,
        };
        stats.record(event(Some(200), None), true);
        stats.record(event(Some(429), Some(ThrottleCause::Storm)), true);
        stats.record(event(None, None), false);

        assert_eq!(stats.count(Endpoint::PatchUser, 200), 1);
        assert_eq!(stats.count_status(429), 1);
        assert_eq!(stats.count_endpoint(Endpoint::PatchUser), 2);
        assert_eq!(stats.total(), 2);
        assert_eq!(stats.resets, 1);
        assert_eq!(stats.throttled_by[&ThrottleCause::Storm], 1);
        assert_eq!(stats.timeline.len(), 2);
    }

    #[test]
    fn stats_serialize_to_json() {
        let mut stats = ServerStats::default();
        stats
            .answers
            .entry(Endpoint::GetUser)
            .or_default()
            .insert(404, 2);
        let json = serde_json::to_string(&stats).unwrap();
        assert!(json.contains(r#""get_user":{"404":2}"#), "{json}");
    }
}
