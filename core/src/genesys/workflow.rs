//! The user-update machine: token, batched reads, diff, PATCH with version, conflicts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::outcome::{ErrorDetails, RowOutcome, RowReport};
use super::secret::{Credentials, Secret};
use super::token::{AuthFailure, Bearer, TokenKeeper};
use super::user::{CurrentUser, Field, FieldChange, manager_target};
use super::validate;
use crate::Timestamp;
use crate::change::{ChangeRow, ManagerRef, UserKey};
use crate::machine::{Action, Machine};
use crate::sched::{
    self, AttemptId, Done, GiveUpReason, HandleError, ItemOptions, Lane, Outcome, Scheduler,
    TransportError, WaitReason,
};

/// Characters kept as they are in a path segment or query value.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The most ids in one `GET /api/v2/users?id=…` and e-mails in one search.
pub const MAX_BATCH: usize = 100;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct WorkflowConfig {
    /// The API's base URL, e.g. `https://api.mypurecloud.com`.
    pub api_base: String,
    /// The login host's base URL, e.g. `https://login.mypurecloud.com`.
    pub login_base: String,
    /// OAuth client credentials.
    pub credentials: Credentials,
    /// Retry and pacing.
    pub scheduler: sched::Config,
    /// Ids per batched read and e-mails per search, at most [`MAX_BATCH`].
    pub batch_size: usize,
    /// Version conflicts tolerated per user before giving up. Default: 3.
    pub max_conflicts: u32,
    /// Renew the token this long before it expires. Default: 60 s.
    pub renew_before: Duration,
    /// Read and compare, but write nothing: rows end as [`RowOutcome::WouldUpdate`].
    pub dry_run: bool,
}

impl WorkflowConfig {
    /// Settings for a target with Genesys' defaults: 300 requests a minute to start with,
    /// learned from the headers from then on.
    pub fn new(api_base: &str, login_base: &str, credentials: Credentials) -> Self {
        let mut scheduler = sched::Config::default();
        scheduler.pacing.initial_rate = Some(5.0);
        Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            login_base: login_base.trim_end_matches('/').to_owned(),
            credentials,
            scheduler,
            batch_size: MAX_BATCH,
            max_conflicts: 3,
            renew_before: Duration::from_secs(60),
            dry_run: false,
        }
    }
}

/// What a request was for; the scheduler's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// The client-credentials token request.
    Token,
    /// A search resolving a batch of e-mails.
    Search(u32),
    /// A batched read of users by id.
    Read(u32),
    /// A read of one row's user after a version conflict.
    Reread(u32),
    /// One row's PATCH.
    Patch(u32),
}

/// A job and whether it is already a replay after a 401.
#[derive(Clone, Debug)]
pub struct Key {
    job: Job,
    replayed: bool,
}

/// Who waits for an e-mail's resolution.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    Row(u32),
    Manager(u32),
}

#[derive(Debug)]
struct Row {
    change: ChangeRow,
    user: Option<CurrentUser>,
    /// The manager's id once resolved (`Some("")` clears); `None` while unresolved or unasked.
    manager: Option<String>,
    manager_pending: bool,
    conflicts: u32,
    applied: Vec<FieldChange>,
    version_before: Option<u64>,
    done: bool,
}

/// Counts of the requests a run made, by purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// Token requests.
    pub token: u32,
    /// E-mail searches.
    pub search: u32,
    /// Batched and single reads.
    pub read: u32,
    /// PATCHes.
    pub patch: u32,
}

/// Applies change rows to Genesys Cloud users. A [`Machine`]: drive it like the scheduler.
///
/// For each row it finds the user (a batched read by id or a batched search by e-mail, which also
/// resolves managers' e-mails), compares, and PATCHes only the fields that differ, carrying the
/// version it read. A version conflict (409, or a 400 saying the version does not match) reads the
/// user again and recomputes the change; if the other writer already made it, the row is
/// unchanged. A `state` change goes in a PATCH of its own, after the other fields, as Genesys
/// requires. A 401 renews the token once and replays the request.
///
/// Every e-mail (a row's key or a manager's) is resolved against the organisation as it is before
/// the run, as a dry run sees it: a PATCH that changes someone's e-mail waits until every search
/// has answered, so a manager named by the e-mail a row gives a user is not found, and one named
/// by the e-mail the user had is, however the requests interleave.
#[derive(Debug)]
pub struct UserUpdate {
    config: WorkflowConfig,
    scheduler: Scheduler<Key>,
    reads: Lane,
    patches: Lane,
    logins: Lane,
    rows: Vec<Row>,
    searches: Vec<Vec<String>>,
    /// Searches not yet answered (nor given up).
    searches_open: usize,
    /// Rows whose PATCH changes an e-mail, held until every search has answered: see
    /// [`UserUpdate`] on resolving e-mails against the organisation as it was.
    deferred: Vec<(u32, bool)>,
    waiters: HashMap<String, Vec<Waiter>>,
    read_batches: Vec<Vec<u32>>,
    /// The token, and the jobs waiting for it.
    token: TokenKeeper<Key>,
    outputs: VecDeque<RowReport>,
    expected_versions: HashMap<String, u64>,
    auth_failure: Option<AuthFailure>,
    counts: RequestCounts,
    open_rows: usize,
    started: bool,
}

impl UserUpdate {
    /// A run over `rows`, checked first ([`validate::check`]); rows refused there are reported
    /// before anything is sent.
    pub fn new(config: WorkflowConfig, rows: Vec<ChangeRow>, seed: u64) -> Self {
        let mut scheduler = Scheduler::new(config.scheduler.clone(), seed);
        let patches = scheduler.add_lane();
        let logins = scheduler.add_lane();
        let checked = validate::check(rows);
        let mut outputs = VecDeque::new();
        for (row, rejection) in checked.rejected {
            let outcome = RowOutcome::Rejected {
                field: rejection.field,
                reason: rejection.reason,
            };
            outputs.push_back(RowReport {
                source: row.source,
                key: row.key,
                outcome,
            });
        }
        for (row, first) in checked.duplicates {
            let outcome = RowOutcome::Duplicate {
                of_line: first.line,
            };
            outputs.push_back(RowReport {
                source: row.source,
                key: row.key,
                outcome,
            });
        }
        let rows: Vec<Row> = checked
            .accepted
            .into_iter()
            .map(|change| Row {
                manager_pending: matches!(change.desired.manager, Some(ManagerRef::Email(_))),
                change,
                user: None,
                manager: None,
                conflicts: 0,
                applied: Vec::new(),
                version_before: None,
                done: false,
            })
            .collect();
        let mut update = Self {
            scheduler,
            reads: Lane::DEFAULT,
            patches,
            logins,
            open_rows: rows.len(),
            rows,
            searches: Vec::new(),
            searches_open: 0,
            deferred: Vec::new(),
            waiters: HashMap::new(),
            read_batches: Vec::new(),
            token: TokenKeeper::new(
                &config.login_base,
                config.credentials.clone(),
                Some(config.renew_before),
            ),
            outputs,
            expected_versions: HashMap::new(),
            auth_failure: None,
            counts: RequestCounts::default(),
            started: false,
            config,
        };
        update.plan_lookups();
        update
    }

    /// Reverting: leave alone any user whose version is no longer the one given here (someone
    /// else changed it since), reporting [`RowOutcome::ChangedSince`].
    pub fn expect_versions(&mut self, versions: HashMap<String, u64>) {
        self.expected_versions = versions;
    }

    /// Set when the login host refused the credentials; every open row then ended as failed.
    pub fn auth_failure(&self) -> Option<&AuthFailure> {
        self.auth_failure.as_ref()
    }

    /// Requests made so far, by purpose.
    pub fn request_counts(&self) -> RequestCounts {
        self.counts
    }

    /// The scheduler's totals (requests sent, 429s, retries).
    pub fn stats(&self) -> &sched::Stats {
        self.scheduler.stats()
    }

    /// The rate the run paces itself to now, in requests a second.
    pub fn current_rate(&self) -> Option<f64> {
        self.scheduler.current_rate()
    }

    /// Rows not yet reported.
    pub fn open_rows(&self) -> usize {
        self.open_rows + self.outputs.len()
    }

    /// Stops sending: every row not yet finished ends as given up ("stopped"), after the
    /// requests in flight are answered.
    pub fn stop(&mut self) {
        self.token.drop_waiting();
        self.scheduler.cancel_queued();
        for (row, _) in std::mem::take(&mut self.deferred) {
            let user_id = self.rows[row as usize].user.as_ref().map(|u| u.id.clone());
            let reason = "stopped".to_owned();
            let outcome = RowOutcome::GaveUp {
                user_id,
                reason,
                retry_after_s: None,
            };
            self.finish(row, outcome);
        }
    }

    /// Groups the lookups: e-mails (row keys and managers) into searches, ids into reads.
    fn plan_lookups(&mut self) {
        let mut emails: Vec<String> = Vec::new();
        let mut ids: Vec<u32> = Vec::new();
        for (index, row) in self.rows.iter().enumerate() {
            let index = index as u32;
            match &row.change.key {
                UserKey::Id(_) => ids.push(index),
                UserKey::Email(email) => {
                    let email = email.trim().to_lowercase();
                    let waiters = self.waiters.entry(email.clone()).or_default();
                    if waiters.is_empty() {
                        emails.push(email);
                    }
                    waiters.push(Waiter::Row(index));
                }
            }
            if let Some(ManagerRef::Email(manager)) = &row.change.desired.manager {
                let manager = manager.trim().to_lowercase();
                let waiters = self.waiters.entry(manager.clone()).or_default();
                if waiters.is_empty() {
                    emails.push(manager);
                }
                waiters.push(Waiter::Manager(index));
            }
        }
        let size = self.config.batch_size.clamp(1, MAX_BATCH);
        self.searches = emails.chunks(size).map(<[String]>::to_vec).collect();
        self.searches_open = self.searches.len();
        self.read_batches = ids.chunks(size).map(<[u32]>::to_vec).collect();
    }

    fn start(&mut self, now: Timestamp) {
        self.started = true;
        if self.rows.is_empty() {
            return;
        }
        for batch in 0..self.searches.len() as u32 {
            self.submit(
                now,
                Key {
                    job: Job::Search(batch),
                    replayed: false,
                },
            );
        }
        for batch in 0..self.read_batches.len() as u32 {
            self.submit(
                now,
                Key {
                    job: Job::Read(batch),
                    replayed: false,
                },
            );
        }
    }

    /// Queues a job: at once when a token is at hand, else after the token arrives.
    fn submit(&mut self, now: Timestamp, key: Key) {
        let token = match self.token.bearer(now) {
            Bearer::Ready(token) => token,
            Bearer::Failed => {
                self.fail_job(&key.job, |user_id| RowOutcome::GaveUp {
                    user_id,
                    reason: "authentication failed".into(),
                    retry_after_s: None,
                });
                return;
            }
            Bearer::Pending => {
                self.token.wait(key);
                self.request_token(now);
                return;
            }
        };
        let (request, lane) = match self.build(&key.job, &token) {
            Some(built) => built,
            None => {
                if let Job::Search(batch) = key.job {
                    self.search_settled(now, batch);
                }
                return;
            }
        };
        match key.job {
            Job::Token => self.counts.token += 1,
            Job::Search(_) => self.counts.search += 1,
            Job::Read(_) | Job::Reread(_) => self.counts.read += 1,
            Job::Patch(_) => self.counts.patch += 1,
        }
        self.scheduler.push_with(
            now,
            key,
            request,
            ItemOptions {
                lane: Some(lane),
                urgent: false,
            },
        );
    }

    /// Queues the token request on the login lane, ahead of the jobs waiting for it.
    fn request_token(&mut self, now: Timestamp) {
        match self.token.request() {
            Ok(None) => {}
            Ok(Some(request)) => {
                self.counts.token += 1;
                let options = ItemOptions {
                    lane: Some(self.logins),
                    urgent: true,
                };
                self.scheduler.push_with(
                    now,
                    Key {
                        job: Job::Token,
                        replayed: false,
                    },
                    request,
                    options,
                );
            }
            Err(failure) => self.fail_auth(failure),
        }
    }

    /// Builds the request for a job, or ends its rows when it cannot be built.
    fn build(&mut self, job: &Job, token: &Secret) -> Option<(Request<Bytes>, Lane)> {
        let api = &self.config.api_base;
        let (method, uri, body, lane) = match job {
            Job::Token => return None,
            Job::Search(batch) => {
                let emails = &self.searches[*batch as usize];
                let body = json!({
                    "pageSize": emails.len(),
                    "pageNumber": 1,
                    "query": [{"type": "EXACT", "fields": ["email"], "values": emails}],
                });
                (
                    Method::POST,
                    format!("{api}/api/v2/users/search"),
                    Some(body),
                    self.reads,
                )
            }
            Job::Read(batch) => {
                let rows = &self.read_batches[*batch as usize];
                let mut uri = format!("{api}/api/v2/users?pageSize={}&state=any", rows.len());
                for &row in rows {
                    if let UserKey::Id(id) = &self.rows[row as usize].change.key {
                        uri.push_str("&id=");
                        uri.extend(utf8_percent_encode(id.trim(), UNRESERVED));
                    }
                }
                (Method::GET, uri, None, self.reads)
            }
            Job::Reread(row) => {
                let id = self.rows[*row as usize]
                    .user
                    .as_ref()
                    .map(|u| u.id.clone())?;
                let uri = format!(
                    "{api}/api/v2/users/{}",
                    utf8_percent_encode(&id, UNRESERVED)
                );
                (Method::GET, uri, None, self.reads)
            }
            Job::Patch(row) => {
                let (uri, body) = self.patch_for(*row)?;
                (Method::PATCH, uri, Some(body), self.patches)
            }
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        match builder.body(body) {
            Ok(request) => Some((request, lane)),
            Err(error) => {
                let reason = format!("the API URL is not valid: {error}");
                self.fail_job(job, |user_id| RowOutcome::GaveUp {
                    user_id,
                    reason: reason.clone(),
                    retry_after_s: None,
                });
                None
            }
        }
    }

    /// The next PATCH for a row: its other fields first, `state` on its own after them.
    fn patch_for(&self, row: u32) -> Option<(String, Value)> {
        let row = &self.rows[row as usize];
        let user = row.user.as_ref()?;
        let changes = user.diff(&row.change.desired, row.manager.as_deref());
        let (state, fields): (Vec<FieldChange>, Vec<FieldChange>) =
            changes.into_iter().partition(|c| c.field == Field::State);
        let body = if fields.is_empty() {
            user.patch_body(&state)
        } else {
            user.patch_body(&fields)
        };
        let uri = format!(
            "{}/api/v2/users/{}",
            self.config.api_base,
            utf8_percent_encode(&user.id, UNRESERVED)
        );
        Some((uri, body))
    }

    fn on_done(&mut self, now: Timestamp, done: Done<Key>) {
        let Done { key, outcome, .. } = done;
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::GaveUp { reason, .. } => {
                self.on_gave_up(&key.job, &reason);
                if let Job::Search(batch) = key.job {
                    self.search_settled(now, batch);
                }
                return;
            }
        };
        if key.job == Job::Token {
            return self.on_token(now, &response);
        }
        if self.token.replay_after(response.status(), key.replayed) {
            // The token expired or was revoked: replay with a new one.
            self.submit(
                now,
                Key {
                    job: key.job,
                    replayed: true,
                },
            );
            return;
        }
        match key.job {
            Job::Token => {}
            Job::Search(batch) => {
                self.on_search(now, batch, &response);
                self.search_settled(now, batch);
            }
            Job::Read(batch) => self.on_read(now, batch, &response),
            Job::Reread(row) => self.on_reread(now, row, &response),
            Job::Patch(row) => self.on_patch(now, row, &response),
        }
    }

    fn on_token(&mut self, now: Timestamp, response: &Response<Bytes>) {
        match self.token.on_answer(now, response) {
            Ok(waiting) => {
                for key in waiting {
                    self.submit(now, key);
                }
            }
            Err(failure) => self.fail_auth(failure),
        }
    }

    /// Authentication failed for good (credentials refused, no token in the answer, a login URL
    /// that makes no request): every open row fails with the reason.
    fn fail_auth(&mut self, failure: AuthFailure) {
        self.scheduler.cancel_queued();
        let status = failure.status.unwrap_or(0);
        for index in 0..self.rows.len() as u32 {
            self.finish(
                index,
                RowOutcome::Failed {
                    user_id: None,
                    status,
                    code: Some("authentication".into()),
                    message: Some(failure.message.clone()),
                    correlation_id: None,
                },
            );
        }
        self.auth_failure = Some(failure);
    }

    fn on_gave_up(&mut self, job: &Job, reason: &GiveUpReason) {
        if *job == Job::Token {
            // The login host never answered (or kept failing): nothing says the credentials are
            // wrong, so the rows are left for a resumed run rather than failed as refused.
            let reason = format!("could not reach the login host for a token: {reason}");
            tracing::error!(reason = %reason, "no token");
            self.token.give_up();
            self.scheduler.cancel_queued();
            for index in 0..self.rows.len() as u32 {
                self.finish(
                    index,
                    RowOutcome::GaveUp {
                        user_id: None,
                        reason: reason.clone(),
                        retry_after_s: None,
                    },
                );
            }
            return;
        }
        let retry_after_s = match reason {
            GiveUpReason::RateLimitedTooLong { retry_after } => Some(retry_after.as_secs()),
            _ => None,
        };
        let reason = if *reason == GiveUpReason::Cancelled {
            "stopped".to_owned()
        } else {
            reason.to_string()
        };
        tracing::warn!(reason = %reason, "request gave up");
        self.fail_job(job, |user_id| RowOutcome::GaveUp {
            user_id,
            reason: reason.clone(),
            retry_after_s,
        });
    }

    /// Ends every open row a job was for.
    fn fail_job(&mut self, job: &Job, outcome: impl Fn(Option<String>) -> RowOutcome) {
        let rows: Vec<u32> = match job {
            Job::Token => (0..self.rows.len() as u32).collect(),
            Job::Search(batch) => {
                let emails = self.searches[*batch as usize].clone();
                emails
                    .iter()
                    .flat_map(|email| self.waiters.get(email).cloned().unwrap_or_default())
                    .map(|waiter| match waiter {
                        Waiter::Row(row) | Waiter::Manager(row) => row,
                    })
                    .collect()
            }
            Job::Read(batch) => self.read_batches[*batch as usize].clone(),
            Job::Reread(row) | Job::Patch(row) => vec![*row],
        };
        for row in rows {
            let user_id = self.rows[row as usize].user.as_ref().map(|u| u.id.clone());
            self.finish(row, outcome(user_id));
        }
    }

    fn on_search(&mut self, now: Timestamp, batch: u32, response: &Response<Bytes>) {
        if !response.status().is_success() {
            let failure = RowOutcome::failed(None, response);
            log_failure(&failure, "search");
            return self.fail_job(&Job::Search(batch), |_| failure.clone());
        }
        // Genesys leaves `results` out when nothing matched, but says `total`: an answer with
        // neither is not a search result, and reading it as one would call every user not found.
        let body = serde_json::from_slice::<Value>(response.body())
            .ok()
            .filter(|body| body.get("results").is_some() || body.get("total").is_some());
        let Some(body) = body else {
            let status = response.status().as_u16();
            let failure = RowOutcome::Failed {
                user_id: None,
                status,
                code: Some("unreadable.user".into()),
                message: Some("the search answer could not be read".into()),
                correlation_id: ErrorDetails::from_response(response).correlation_id,
            };
            log_failure(&failure, "search");
            return self.fail_job(&Job::Search(batch), |_| failure.clone());
        };
        let mut found: HashMap<String, CurrentUser> = HashMap::new();
        let results = body
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut unreadable = None;
        for user in &results {
            match CurrentUser::from_json(user) {
                Ok(user) => {
                    if let Some(email) = user.email() {
                        found.insert(email.trim().to_lowercase(), user);
                    }
                }
                Err(error) => unreadable = Some(error),
            }
        }
        let emails = self.searches[batch as usize].clone();
        for email in emails {
            let user = found.get(&email);
            for waiter in self.waiters.get(&email).cloned().unwrap_or_default() {
                match (waiter, user) {
                    (Waiter::Row(row), Some(user)) => self.set_user(row, user.clone()),
                    (Waiter::Row(row), None) => {
                        let outcome = match &unreadable {
                            Some(error) => RowOutcome::Failed {
                                user_id: None,
                                status: response.status().as_u16(),
                                code: Some("unreadable.user".into()),
                                message: Some(error.to_string()),
                                correlation_id: None,
                            },
                            None => RowOutcome::NotFound,
                        };
                        self.finish(row, outcome);
                    }
                    (Waiter::Manager(row), Some(manager)) => {
                        let slot = &mut self.rows[row as usize];
                        slot.manager = Some(manager.id.clone());
                        slot.manager_pending = false;
                    }
                    (Waiter::Manager(row), None) => {
                        let reason = format!("no user has the manager's e-mail {email:?}");
                        let field = Some("email_manager".to_owned());
                        self.finish(row, RowOutcome::Rejected { field, reason });
                    }
                }
            }
        }
        let rows: HashSet<u32> = self.searches[batch as usize]
            .iter()
            .flat_map(|email| self.waiters.get(email).cloned().unwrap_or_default())
            .map(|waiter| match waiter {
                Waiter::Row(row) | Waiter::Manager(row) => row,
            })
            .collect();
        let mut rows: Vec<u32> = rows.into_iter().collect();
        rows.sort_unstable();
        for row in rows {
            self.try_plan(now, row, false);
        }
    }

    /// A search has its final answer: once none is left, the PATCHes that change e-mails go.
    fn search_settled(&mut self, now: Timestamp, batch: u32) {
        if batch as usize >= self.searches.len() {
            return;
        }
        self.searches_open = self.searches_open.saturating_sub(1);
        if self.searches_open > 0 {
            return;
        }
        for (row, after_conflict) in std::mem::take(&mut self.deferred) {
            self.try_plan(now, row, after_conflict);
        }
    }

    fn set_user(&mut self, row: u32, user: CurrentUser) {
        let slot = &mut self.rows[row as usize];
        if slot.done {
            return;
        }
        slot.version_before.get_or_insert(user.version);
        slot.user = Some(user);
    }

    fn on_read(&mut self, now: Timestamp, batch: u32, response: &Response<Bytes>) {
        if !response.status().is_success() {
            let failure = RowOutcome::failed(None, response);
            log_failure(&failure, "read");
            return self.fail_job(&Job::Read(batch), |_| failure.clone());
        }
        let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        let mut found: HashMap<String, CurrentUser> = HashMap::new();
        let mut unreadable = None;
        for user in body
            .get("entities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match CurrentUser::from_json(user) {
                Ok(user) => {
                    found.insert(user.id.clone(), user);
                }
                Err(error) => unreadable = Some(error.to_string()),
            }
        }
        if body.get("entities").is_none() {
            unreadable = Some("the answer had no entities".to_owned());
        }
        for row in self.read_batches[batch as usize].clone() {
            let UserKey::Id(id) = &self.rows[row as usize].change.key else {
                continue;
            };
            match found.remove(id.trim()) {
                Some(user) => {
                    self.set_user(row, user);
                    self.try_plan(now, row, false);
                }
                None => {
                    let outcome = match &unreadable {
                        Some(message) => RowOutcome::Failed {
                            user_id: Some(id.trim().to_owned()),
                            status: response.status().as_u16(),
                            code: Some("unreadable.user".into()),
                            message: Some(message.clone()),
                            correlation_id: None,
                        },
                        None => RowOutcome::NotFound,
                    };
                    self.finish(row, outcome);
                }
            }
        }
    }

    fn on_reread(&mut self, now: Timestamp, row: u32, response: &Response<Bytes>) {
        let user_id = self.rows[row as usize].user.as_ref().map(|u| u.id.clone());
        if response.status() == StatusCode::NOT_FOUND {
            return self.finish(row, RowOutcome::NotFound);
        }
        let user = serde_json::from_slice(response.body())
            .ok()
            .and_then(|value: Value| CurrentUser::from_json(&value).ok());
        match user {
            Some(user) if response.status().is_success() => {
                self.rows[row as usize].user = Some(user);
                self.try_plan(now, row, true);
            }
            None if response.status().is_success() => {
                let failure = RowOutcome::Failed {
                    user_id,
                    status: response.status().as_u16(),
                    code: Some("unreadable.user".into()),
                    message: Some("the user could not be read".into()),
                    correlation_id: ErrorDetails::from_response(response).correlation_id,
                };
                log_failure(&failure, "read");
                self.finish(row, failure);
            }
            _ => {
                let failure = RowOutcome::failed(user_id, response);
                log_failure(&failure, "read");
                self.finish(row, failure);
            }
        }
    }

    fn on_patch(&mut self, now: Timestamp, row: u32, response: &Response<Bytes>) {
        let status = response.status();
        let user_id = self.rows[row as usize].user.as_ref().map(|u| u.id.clone());
        if status.is_success() {
            let sent = self.rows[row as usize].user.clone();
            let answered = serde_json::from_slice(response.body())
                .ok()
                .and_then(|value: Value| CurrentUser::from_json(&value).ok());
            let Some(sent) = sent else {
                let outcome = RowOutcome::Failed {
                    user_id,
                    status: status.as_u16(),
                    code: Some("unreadable.user".into()),
                    message: Some("the PATCH was accepted for a user never read".into()),
                    correlation_id: ErrorDetails::from_response(response).correlation_id,
                };
                return self.finish(row, outcome);
            };
            let slot = &mut self.rows[row as usize];
            let changes = sent.diff(&slot.change.desired, slot.manager.as_deref());
            let state_only = changes.iter().all(|c| c.field == Field::State);
            let applied: Vec<FieldChange> = if state_only {
                changes
            } else {
                changes
                    .into_iter()
                    .filter(|c| c.field != Field::State)
                    .collect()
            };
            slot.applied.extend(applied);
            let Some(answered) = answered else {
                // Accepted, so the change is made; only the new version is unknown. Reading the
                // user again learns it (and plans a `state` PATCH still owed), where calling the
                // row failed would hide a write from the report and from `revert`.
                tracing::info!(
                    user_id = user_id.as_deref().unwrap_or(""),
                    "the PATCH was accepted but its answer could not be read; reading the user"
                );
                return self.submit(
                    now,
                    Key {
                        job: Job::Reread(row),
                        replayed: false,
                    },
                );
            };
            slot.user = Some(answered);
            // Only a `state` change may follow: it had to wait for a PATCH of its own.
            let pending_state = !state_only
                && slot.change.desired.state.is_some()
                && slot.user.as_ref().is_some_and(|user| {
                    let wanted = slot
                        .change
                        .desired
                        .state
                        .map(|s| s.as_str())
                        .unwrap_or_default();
                    !super::user::same(Field::State, &user.get(Field::State), wanted)
                });
            if pending_state {
                self.submit(
                    now,
                    Key {
                        job: Job::Patch(row),
                        replayed: false,
                    },
                );
            } else {
                self.finish_updated(row);
            }
            return;
        }
        if is_version_conflict(response) {
            let slot = &mut self.rows[row as usize];
            slot.conflicts += 1;
            tracing::info!(
                user_id = user_id.as_deref().unwrap_or(""),
                conflicts = slot.conflicts,
                "version conflict"
            );
            if slot.conflicts > self.config.max_conflicts {
                let conflicts = slot.conflicts;
                let outcome = RowOutcome::ConflictGaveUp {
                    user_id: user_id.unwrap_or_default(),
                    conflicts,
                };
                return self.finish(row, outcome);
            }
            return self.submit(
                now,
                Key {
                    job: Job::Reread(row),
                    replayed: false,
                },
            );
        }
        if status == StatusCode::NOT_FOUND {
            return self.finish(row, RowOutcome::NotFound);
        }
        let failure = RowOutcome::failed(user_id, response);
        log_failure(&failure, "patch");
        self.finish(row, failure);
    }

    /// Decides what a row needs once its user (and manager) are known.
    fn try_plan(&mut self, now: Timestamp, row: u32, after_conflict: bool) {
        let slot = &self.rows[row as usize];
        if slot.done || slot.manager_pending {
            return;
        }
        let Some(user) = &slot.user else { return };
        let manager = manager_target(&slot.change.desired, slot.manager.as_deref());
        if manager.as_deref() == Some(user.id.as_str()) {
            let field = Some(match slot.change.desired.manager {
                Some(ManagerRef::Id(_)) => "manager_id".to_owned(),
                _ => "email_manager".to_owned(),
            });
            let reason = "a user cannot manage themselves".to_owned();
            return self.finish(row, RowOutcome::Rejected { field, reason });
        }
        if !after_conflict
            && let Some(&expected) = self.expected_versions.get(&user.id)
            && expected != user.version
        {
            let outcome = RowOutcome::ChangedSince {
                user_id: user.id.clone(),
                expected_version: expected,
                version: user.version,
            };
            return self.finish(row, outcome);
        }
        let changes = user.diff(&slot.change.desired, manager.as_deref());
        let (user_id, version) = (user.id.clone(), user.version);
        if changes.is_empty() {
            if slot.applied.is_empty() {
                return self.finish(row, RowOutcome::Unchanged { user_id, version });
            }
            return self.finish_updated(row);
        }
        if self.config.dry_run {
            return self.finish(
                row,
                RowOutcome::WouldUpdate {
                    user_id,
                    changes,
                    version,
                },
            );
        }
        if self.searches_open > 0 && changes.iter().any(|c| c.field == Field::Email) {
            self.deferred.push((row, after_conflict));
            return;
        }
        self.rows[row as usize].manager = manager;
        self.submit(
            now,
            Key {
                job: Job::Patch(row),
                replayed: false,
            },
        );
    }

    fn finish_updated(&mut self, row: u32) {
        let slot = &mut self.rows[row as usize];
        let Some(user) = &slot.user else { return };
        let outcome = RowOutcome::Updated {
            user_id: user.id.clone(),
            changes: std::mem::take(&mut slot.applied),
            version_before: slot.version_before.unwrap_or(user.version),
            version_after: user.version,
            answer_lost: false,
        };
        self.finish(row, outcome);
    }

    fn finish(&mut self, row: u32, outcome: RowOutcome) {
        let slot = &mut self.rows[row as usize];
        if slot.done {
            return;
        }
        slot.done = true;
        self.open_rows -= 1;
        let report = RowReport {
            source: slot.change.source.clone(),
            key: slot.change.key.clone(),
            outcome,
        };
        self.outputs.push_back(report);
    }

    /// When the token is due for renewal, while rows still need it.
    fn renew_at(&self) -> Option<Timestamp> {
        self.token.renew_at().filter(|_| self.open_rows > 0)
    }
}

fn is_version_conflict(response: &Response<Bytes>) -> bool {
    match response.status() {
        StatusCode::CONFLICT => true,
        StatusCode::BAD_REQUEST => {
            let message = ErrorDetails::from_response(response)
                .message
                .unwrap_or_default();
            message
                .to_lowercase()
                .contains("does not match the current version")
        }
        _ => false,
    }
}

fn log_failure(outcome: &RowOutcome, request: &str) {
    if let RowOutcome::Failed {
        user_id,
        status,
        code,
        correlation_id,
        ..
    } = outcome
    {
        tracing::warn!(
            request,
            user_id = user_id.as_deref().unwrap_or(""),
            status,
            code = code.as_deref().unwrap_or(""),
            correlation_id = correlation_id.as_deref().unwrap_or(""),
            "request failed"
        );
    }
}

impl Machine for UserUpdate {
    type Output = RowReport;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        self.scheduler.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        self.scheduler.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.scheduler.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<RowReport> {
        if !self.started {
            self.start(now);
        }
        loop {
            if let Some(report) = self.outputs.pop_front() {
                return Action::Done(report);
            }
            if self.renew_at().is_some_and(|renew| now >= renew) {
                self.token.forget();
                self.request_token(now);
            }
            match self.scheduler.poll(now) {
                Action::Done(done) => self.on_done(now, done),
                Action::Send(send) => return Action::Send(send),
                Action::WaitUntil { at, reason } => {
                    return match self.renew_at() {
                        Some(renew) if renew < at => Action::WaitUntil {
                            at: renew,
                            reason: WaitReason::TokenRenewal,
                        },
                        _ => Action::WaitUntil { at, reason },
                    };
                }
                Action::WaitForResponse => {
                    return match self.renew_at() {
                        Some(renew) => Action::WaitUntil {
                            at: renew,
                            reason: WaitReason::TokenRenewal,
                        },
                        None => Action::WaitForResponse,
                    };
                }
                Action::Idle => {
                    if self.open_rows == 0 {
                        return Action::Idle;
                    }
                    // Nothing queued and nothing in flight, yet rows are open: only a bug gets
                    // here. End them rather than hang.
                    for row in 0..self.rows.len() as u32 {
                        let user_id = self.rows[row as usize].user.as_ref().map(|u| u.id.clone());
                        self.finish(
                            row,
                            RowOutcome::GaveUp {
                                user_id,
                                reason: "internal: the row was left without a request".into(),
                                retry_after_s: None,
                            },
                        );
                    }
                }
            }
        }
    }
}
