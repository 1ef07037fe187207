//! Journalling each PATCH before it is sent.
//!
//! A row's outcome reaches the journal once Genesys has answered. A PATCH that Genesys applied
//! but whose answer never arrived (a `kill -9`, a connection reset after the write) would
//! otherwise leave no trace: the resumed run finds the user already as the sheet asks, reports it
//! unchanged, and `revert` would not know what the user had before. So [`Recorder`] wraps the
//! user-update machine, keeps the last copy of each user that the reads and writes brought back,
//! and writes a `patch` line with the before and after values of every PATCH before handing it
//! to the driver. A PATCH whose line cannot be written is not sent.
//!
//! A PATCH the server refuses (any 4xx) gets a `patch_refused` line when its answer arrives, so
//! that what is left without an answer is what may have been written unseen. When a row then
//! finds its user already as it asks, at the version those PATCHes lead to, it is reported
//! updated by the interrupted run rather than unchanged ([`Unanswered`]).

use std::collections::{HashMap, HashSet};
use std::io;

use bytes::Bytes;
use gcbulk_core::genesys::{CurrentUser, Field, FieldChange, RowOutcome, RowReport, UserUpdate};
use gcbulk_core::sched::{AttemptId, HandleError, TransportError};
use gcbulk_core::{Action, Machine, Timestamp};
use http::{Method, Request, Response};
use serde_json::Value;

use super::journal::{Journal, PatchIntent, PatchRefused, Unanswered};
use super::report::Person;

/// Every field a PATCH may change.
const FIELDS: [Field; 10] = [
    Field::Name,
    Field::Email,
    Field::Title,
    Field::Department,
    Field::Manager,
    Field::PhoneWork,
    Field::Extension,
    Field::Username,
    Field::PreferredName,
    Field::State,
];

/// The user-update machine, with each PATCH journalled before it goes out.
#[derive(Debug)]
pub(crate) struct Recorder<'j> {
    /// The machine itself.
    pub(crate) inner: UserUpdate,
    journal: Option<&'j mut Journal>,
    /// Attempts whose answers carry users.
    reading: HashSet<AttemptId>,
    /// The last copy of each user seen, by id.
    known: HashMap<String, Value>,
    /// PATCHes journalled and in flight: the user and the version each carries.
    patching: HashMap<AttemptId, (String, u64)>,
    /// PATCHes sent, by this run or those before it, whose answers are not recorded.
    unanswered: Unanswered,
    failure: Option<io::Error>,
}

impl<'j> Recorder<'j> {
    /// Wraps `inner`; without a journal (a dry run) it only passes things through.
    /// `unanswered` holds what the journal shows sent without an answer, when resuming.
    pub(crate) fn new(
        inner: UserUpdate,
        journal: Option<&'j mut Journal>,
        unanswered: Unanswered,
    ) -> Self {
        Self {
            inner,
            journal,
            reading: HashSet::new(),
            known: HashMap::new(),
            patching: HashMap::new(),
            unanswered,
            failure: None,
        }
    }

    /// The name and e-mail of a user the run read, by id.
    pub(crate) fn person(&self, id: &str) -> Option<Person> {
        let user = self.known.get(id)?;
        let text = |key: &str| {
            user.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        Some(Person {
            name: text("name"),
            email: text("email"),
        })
    }

    /// A row's outcome as it is to be journalled and reported: unchanged becomes updated when
    /// the run's own PATCH, its answer lost, made the change ([`Unanswered::settle`]).
    pub(crate) fn settle(&mut self, outcome: RowOutcome) -> RowOutcome {
        self.unanswered.settle(outcome)
    }

    /// Journals a refused PATCH, so that no later run takes it for a write whose answer was
    /// lost.
    fn answered(&mut self, attempt: AttemptId, status: http::StatusCode) {
        let Some((user_id, version)) = self.patching.remove(&attempt) else {
            return;
        };
        if !status.is_client_error() {
            return;
        }
        self.unanswered.refused(&user_id, version);
        let refusal = PatchRefused {
            user_id,
            version,
            status: status.as_u16(),
        };
        if let Some(journal) = self.journal.as_deref_mut()
            && let Err(error) = journal.append_patch_refused(&refusal)
        {
            tracing::error!(%error, "cannot write the journal; stopping");
            self.failure.get_or_insert(error);
            self.inner.stop();
        }
    }

    /// The journal, for the rows' own lines.
    pub(crate) fn journal(&mut self) -> Option<&mut Journal> {
        self.journal.as_deref_mut()
    }

    /// The first journal write that failed, if one did.
    pub(crate) fn take_failure(&mut self) -> Option<io::Error> {
        self.failure.take()
    }

    fn learn(&mut self, response: &Response<Bytes>) {
        if !response.status().is_success() {
            return;
        }
        let Ok(body) = serde_json::from_slice::<Value>(response.body()) else {
            return;
        };
        let listed = ["entities", "results"]
            .iter()
            .find_map(|key| body.get(key).and_then(Value::as_array));
        let users: Vec<&Value> = match listed {
            Some(users) => users.iter().collect(),
            None => vec![&body],
        };
        for user in users {
            let id = user.get("id").and_then(Value::as_str);
            if let Some(id) = id
                && user.get("version").is_some_and(Value::is_u64)
            {
                self.known.insert(id.to_owned(), user.clone());
            }
        }
    }

    /// What a PATCH changes, measured against the last copy of its user.
    fn intent(&self, request: &Request<Bytes>) -> Option<PatchIntent> {
        let id = request.uri().path().rsplit('/').next()?;
        let body: Value = serde_json::from_slice(request.body()).ok()?;
        let version = body.get("version")?.as_u64()?;
        let known = self.known.get(id)?;
        let mut merged = known.as_object()?.clone();
        for (key, value) in body.as_object()? {
            merged.insert(key.clone(), value.clone());
        }
        let before = CurrentUser::from_json(known).ok()?;
        let after = CurrentUser::from_json(&Value::Object(merged)).ok()?;
        let changes = FIELDS
            .into_iter()
            .filter_map(|field| {
                let (was, will) = (before.get(field), after.get(field));
                (was != will).then_some(FieldChange {
                    field,
                    before: was,
                    after: will,
                })
            })
            .collect();
        Some(PatchIntent {
            user_id: id.to_owned(),
            version,
            changes,
        })
    }
}

impl Machine for Recorder<'_> {
    type Output = RowReport;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        if self.reading.remove(&attempt) {
            self.learn(&response);
        }
        self.answered(attempt, response.status());
        self.inner.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.reading.remove(&attempt);
        // No answer: the PATCH stays unanswered, as it may have been written.
        self.patching.remove(&attempt);
        self.inner.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.inner.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<RowReport> {
        loop {
            let send = match self.inner.poll(now) {
                Action::Send(send) => send,
                other => return other,
            };
            let request = &send.request;
            if !request.uri().path().contains("/api/v2/users") {
                return Action::Send(send);
            }
            self.reading.insert(send.attempt);
            if request.method() != Method::PATCH || self.journal.is_none() {
                return Action::Send(send);
            }

            let written = match (self.intent(request), self.journal.as_deref_mut()) {
                (Some(intent), Some(journal)) => {
                    let written = journal.append_patch(&intent);
                    if written.is_ok() {
                        self.patching
                            .insert(send.attempt, (intent.user_id.clone(), intent.version));
                        self.unanswered.announced(intent);
                    }
                    written
                }
                _ => {
                    tracing::debug!("a PATCH for a user not read first: not journalled");
                    Ok(())
                }
            };
            match written {
                Ok(()) => return Action::Send(send),
                Err(error) => {
                    tracing::error!(%error, "cannot write the journal; stopping");
                    self.failure.get_or_insert(error);
                    self.reading.remove(&send.attempt);
                    self.inner.stop();
                    let refused = TransportError::Refused("the journal cannot be written".into());
                    if let Err(error) =
                        self.inner
                            .handle_transport_error(now, send.attempt, refused)
                    {
                        tracing::error!(%error, "the machine refused its own attempt");
                    }
                }
            }
        }
    }
}
