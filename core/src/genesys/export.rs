//! Listing an organisation's users: a token, then `GET /api/v2/users` page by page.
//!
//! [`UserExport`] is a [`Machine`] like [`super::UserUpdate`]: it asks for a client-credentials
//! token, reads page 1 to learn how many pages there are, then keeps up to the scheduler's
//! `max_in_flight` pages in flight, paced like any other run. Each page is reported as an
//! [`ExportPage`] as it arrives; [`UserExport::finish`] gives the users in page order.
//!
//! Genesys refuses with a 400 to page past 10,000 inactive users. A 400 on a later page therefore
//! ends the listing cleanly: the pages before it are kept and [`ExportResult::truncated`] says
//! where and why it stopped.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;

use super::outcome::ErrorDetails;
use super::secret::Credentials;
use super::token::{AuthFailure, Bearer, TokenKeeper};
use crate::Timestamp;
use crate::machine::{Action, Machine};
use crate::sched::{
    self, AttemptId, Done, HandleError, ItemOptions, Outcome, Scheduler, TransportError,
};

/// Users per page: the most Genesys serves in one listing page.
pub const EXPORT_PAGE_SIZE: u32 = 500;

/// Which users to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateFilter {
    /// Users who can sign in (Genesys' default).
    #[default]
    Active,
    /// Deactivated users.
    Inactive,
    /// Both, and deleted users Genesys still lists.
    Any,
}

impl StateFilter {
    /// The value of the `state` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Any => "any",
        }
    }
}

/// Settings of an export.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The API's base URL, e.g. `https://api.mypurecloud.com`.
    pub api_base: String,
    /// The login host's base URL, e.g. `https://login.mypurecloud.com`.
    pub login_base: String,
    /// OAuth client credentials.
    pub credentials: Credentials,
    /// Retry and pacing.
    pub scheduler: sched::Config,
    /// Which users to list.
    pub state: StateFilter,
    /// Users per page. Default: [`EXPORT_PAGE_SIZE`].
    pub page_size: u32,
}

impl ExportConfig {
    /// An export of active users with Genesys' defaults, learning the rate from the headers.
    pub fn new(api_base: &str, login_base: &str, credentials: Credentials) -> Self {
        let mut scheduler = sched::Config::default();
        scheduler.pacing.initial_rate = Some(5.0);
        Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            login_base: login_base.trim_end_matches('/').to_owned(),
            credentials,
            scheduler,
            state: StateFilter::Active,
            page_size: EXPORT_PAGE_SIZE,
        }
    }
}

/// One page of users, reported as it arrives.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportPage {
    /// The 1-based page number.
    pub number: u32,
    /// Pages in the listing, once page 1 told.
    pub page_count: Option<u32>,
    /// Users on the page.
    pub users: usize,
}

/// Why the listing stopped before its last page, keeping what came before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The first page refused.
    pub page: u32,
    /// What the server said.
    pub message: String,
}

/// Why an export failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportFailure {
    /// The login host refused the credentials.
    Auth(AuthFailure),
    /// A page was refused, or never answered.
    Page {
        /// The page.
        page: u32,
        /// The status, when the server answered.
        status: Option<u16>,
        /// What went wrong.
        message: String,
        /// `ININ-Correlation-Id`, for Genesys support.
        correlation_id: Option<String>,
    },
}

/// What an export produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportResult {
    /// The users, in page order.
    pub users: Vec<Value>,
    /// The `total` page 1 announced.
    pub total: Option<u64>,
    /// Set when the listing stopped early on a 400 past the first page.
    pub truncated: Option<Truncation>,
    /// Set when the export failed; `users` then holds what arrived before.
    pub failure: Option<ExportFailure>,
}

/// What a request was for: a page, or the token when `page` is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExportKey {
    page: Option<u32>,
    replayed: bool,
}

/// Lists users page by page. A [`Machine`]: drive it like [`super::UserUpdate`].
#[derive(Debug)]
pub struct UserExport {
    config: ExportConfig,
    scheduler: Scheduler<ExportKey>,
    /// The token, and the pages waiting for it. Renewed only when a 401 says it is gone, never
    /// ahead of its expiry.
    token: TokenKeeper<ExportKey>,
    pages: BTreeMap<u32, Vec<Value>>,
    page_count: Option<u32>,
    next_page: u32,
    outstanding: usize,
    total: Option<u64>,
    truncated: Option<Truncation>,
    failure: Option<ExportFailure>,
    outputs: VecDeque<ExportPage>,
    started: bool,
}

impl UserExport {
    /// An export with `config`, drawing its jitter from `seed`.
    pub fn new(config: ExportConfig, seed: u64) -> Self {
        Self {
            scheduler: Scheduler::new(config.scheduler.clone(), seed),
            token: TokenKeeper::new(&config.login_base, config.credentials.clone(), None),
            config,
            pages: BTreeMap::new(),
            page_count: None,
            next_page: 1,
            outstanding: 0,
            total: None,
            truncated: None,
            failure: None,
            outputs: VecDeque::new(),
            started: false,
        }
    }

    /// The scheduler's totals (requests sent, 429s, retries).
    pub fn stats(&self) -> &sched::Stats {
        self.scheduler.stats()
    }

    /// Stops asking for pages; those in flight are still awaited.
    pub fn stop(&mut self) {
        self.token.drop_waiting();
        self.scheduler.cancel_queued();
        self.page_count = Some(self.next_page.saturating_sub(1));
    }

    /// The users listed, in page order, and how the listing ended.
    pub fn finish(self) -> ExportResult {
        ExportResult {
            users: self.pages.into_values().flatten().collect(),
            total: self.total,
            truncated: self.truncated,
            failure: self.failure,
        }
    }

    /// Queues the token request ahead of the pages waiting for it.
    fn request_token(&mut self, now: Timestamp) {
        match self.token.request() {
            Ok(None) => {}
            Ok(Some(request)) => {
                let key = ExportKey {
                    page: None,
                    replayed: false,
                };
                let options = ItemOptions {
                    lane: None,
                    urgent: true,
                };
                self.scheduler.push_with(now, key, request, options);
            }
            Err(failure) => self.fail_auth(failure),
        }
    }

    /// Asks for the next pages while the listing has more and the window has room.
    fn fill(&mut self, now: Timestamp) {
        let window = self.config.scheduler.max_in_flight.max(1);
        while self.failure.is_none() && self.truncated.is_none() && self.outstanding < window {
            let more = match self.page_count {
                Some(count) => self.next_page <= count,
                // Until page 1 says how many there are, ask for it alone.
                None => self.next_page == 1,
            };
            if !more {
                return;
            }
            let key = ExportKey {
                page: Some(self.next_page),
                replayed: false,
            };
            self.next_page += 1;
            self.outstanding += 1;
            self.submit(now, key);
        }
    }

    fn submit(&mut self, now: Timestamp, key: ExportKey) {
        let token = match self.token.bearer(now) {
            Bearer::Ready(token) => token,
            Bearer::Failed => return,
            Bearer::Pending => {
                self.token.wait(key);
                self.request_token(now);
                return;
            }
        };
        let Some(page) = key.page else { return };
        let uri = format!(
            "{}/api/v2/users?pageSize={}&pageNumber={page}&state={}",
            self.config.api_base,
            self.config.page_size,
            self.config.state.as_str()
        );
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            .header(header::ACCEPT, "application/json")
            .body(Bytes::new());
        match request {
            Ok(request) => self.scheduler.push(now, key, request),
            Err(error) => {
                self.failure = Some(ExportFailure::Page {
                    page,
                    status: None,
                    message: format!("the API URL is not valid: {error}"),
                    correlation_id: None,
                });
            }
        }
    }

    /// No token will come: the export ends with the reason, keeping the pages already read.
    fn fail_auth(&mut self, failure: AuthFailure) {
        self.scheduler.cancel_queued();
        self.failure = Some(ExportFailure::Auth(failure));
    }

    fn on_done(&mut self, now: Timestamp, done: Done<ExportKey>) {
        let Done { key, outcome, .. } = done;
        let Some(page) = key.page else {
            return self.on_token(now, outcome);
        };
        self.outstanding = self.outstanding.saturating_sub(1);
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::GaveUp { reason, .. } => {
                if self.failure.is_none() && self.truncated.is_none() {
                    self.failure = Some(ExportFailure::Page {
                        page,
                        status: None,
                        message: format!("gave up: {reason}"),
                        correlation_id: None,
                    });
                }
                return;
            }
        };
        let status = response.status();
        if self.token.replay_after(status, key.replayed) {
            // The token expired or was revoked: replay the page with a new one.
            self.outstanding += 1;
            return self.submit(
                now,
                ExportKey {
                    page: Some(page),
                    replayed: true,
                },
            );
        }
        if status.is_success() {
            self.on_page(page, &response);
        } else {
            self.on_refused(page, &response);
        }
        self.fill(now);
    }

    fn on_token(&mut self, now: Timestamp, outcome: Outcome) {
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::GaveUp { reason, .. } => {
                let failure = self
                    .token
                    .fail(None, format!("could not get a token: {reason}"));
                return self.fail_auth(failure);
            }
        };
        match self.token.on_answer(now, &response) {
            Ok(waiting) => {
                for key in waiting {
                    self.submit(now, key);
                }
            }
            Err(failure) => self.fail_auth(failure),
        }
    }

    fn on_page(&mut self, page: u32, response: &Response<Bytes>) {
        let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        let Some(entities) = body.get("entities").and_then(Value::as_array) else {
            self.failure = Some(ExportFailure::Page {
                page,
                status: Some(response.status().as_u16()),
                message: "the answer had no entities".into(),
                correlation_id: ErrorDetails::from_response(response).correlation_id,
            });
            return;
        };
        if page == 1 {
            let size = u64::from(self.config.page_size.max(1));
            self.total = body.get("total").and_then(Value::as_u64);
            let count = body
                .get("pageCount")
                .and_then(Value::as_u64)
                .or_else(|| self.total.map(|total| total.div_ceil(size)));
            // Without either, follow the pages until one comes back short.
            self.page_count =
                Some(count.map_or(u32::MAX, |c| u32::try_from(c).unwrap_or(u32::MAX)));
        }
        if entities.len() < self.config.page_size as usize {
            // A short page is the last, whatever page 1 announced.
            let last = self.page_count.map_or(page, |count| count.min(page));
            self.page_count = Some(last);
        }
        self.outputs.push_back(ExportPage {
            number: page,
            page_count: self.page_count,
            users: entities.len(),
        });
        self.pages.insert(page, entities.clone());
    }

    fn on_refused(&mut self, page: u32, response: &Response<Bytes>) {
        let details = ErrorDetails::from_response(response);
        let message = details
            .message
            .or(details.code)
            .unwrap_or_else(|| format!("HTTP {}", response.status().as_u16()));
        if response.status() == StatusCode::BAD_REQUEST && page > 1 {
            // Genesys' limit on paging through inactive users: keep the pages before it.
            tracing::warn!(page, message = %message, "the listing stopped early");
            let first = self.truncated.as_ref().map_or(page, |t| t.page.min(page));
            self.truncated = Some(Truncation {
                page: first,
                message,
            });
            self.page_count = Some(first - 1);
            self.pages.retain(|&number, _| number < first);
            return;
        }
        if self.failure.is_none() {
            tracing::warn!(
                page,
                status = response.status().as_u16(),
                correlation_id = details.correlation_id.as_deref().unwrap_or(""),
                "listing users failed"
            );
            self.failure = Some(ExportFailure::Page {
                page,
                status: Some(response.status().as_u16()),
                message,
                correlation_id: details.correlation_id,
            });
        }
    }
}

impl Machine for UserExport {
    type Output = ExportPage;

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

    fn poll(&mut self, now: Timestamp) -> Action<ExportPage> {
        if !self.started {
            self.started = true;
            self.fill(now);
        }
        loop {
            if let Some(page) = self.outputs.pop_front() {
                return Action::Done(page);
            }
            match self.scheduler.poll(now) {
                Action::Done(done) => self.on_done(now, done),
                Action::Send(send) => return Action::Send(send),
                Action::WaitUntil { at, reason } => return Action::WaitUntil { at, reason },
                Action::WaitForResponse => return Action::WaitForResponse,
                _ => return Action::Idle,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::genesys::Secret;

    fn config() -> ExportConfig {
        let credentials = Credentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
        };
        let mut config =
            ExportConfig::new("https://api.example", "https://login.example", credentials);
        config.page_size = 2;
        config.scheduler.pacing.initial_rate = None;
        config
    }

    fn answer(status: u16, body: Value) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(body.to_string()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
    }

    /// Drives the export against `serve`, which answers each request by its URI.
    fn drive(export: &mut UserExport, serve: impl Fn(&str) -> Response<Bytes>) -> Vec<u32> {
        let mut now = Timestamp::ZERO;
        let mut pages = Vec::new();
        for _ in 0..1000 {
            match export.poll(now) {
                Action::Send(send) => {
                    let uri = send.request.uri().to_string();
                    assert!(send.request.headers().contains_key(header::AUTHORIZATION));
                    now = now + Duration::from_millis(10);
                    export
                        .handle_response(now, send.attempt, serve(&uri))
                        .unwrap();
                }
                Action::Done(page) => pages.push(page.number),
                Action::WaitUntil { at, .. } => {
                    now = at;
                    export.handle_timeout(now);
                }
                Action::WaitForResponse => panic!("every send is answered at once"),
                _ => return pages,
            }
        }
        panic!("the export did not end")
    }

    fn user(n: u32) -> Value {
        json!({"id": format!("u{n}"), "name": format!("User {n}"), "version": 1})
    }

    fn page(uri: &str, total: u32) -> Response<Bytes> {
        let number: u32 = uri
            .split("pageNumber=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let users: Vec<Value> = (number * 2 - 1..=number * 2)
            .filter(|n| *n <= total)
            .map(user)
            .collect();
        answer(
            200,
            json!({"entities": users, "total": total, "pageCount": total.div_ceil(2)}),
        )
    }

    fn token() -> Response<Bytes> {
        answer(200, json!({"access_token": "t", "expires_in": 86400}))
    }

    #[test]
    fn every_page_is_read_once_in_order() {
        let mut export = UserExport::new(config(), 1);
        let mut pages = drive(&mut export, |uri| {
            if uri.ends_with("/oauth/token") {
                token()
            } else {
                page(uri, 7)
            }
        });
        pages.sort_unstable();
        assert_eq!(pages, [1, 2, 3, 4]);
        let result = export.finish();
        let ids: Vec<&str> = result
            .users
            .iter()
            .map(|u| u["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["u1", "u2", "u3", "u4", "u5", "u6", "u7"]);
        assert_eq!(result.total, Some(7));
        assert!(result.failure.is_none() && result.truncated.is_none());
    }

    #[test]
    fn a_400_past_the_first_page_stops_the_listing_cleanly() {
        let mut config = config();
        config.state = StateFilter::Inactive;
        let mut export = UserExport::new(config, 1);
        drive(&mut export, |uri| {
            if uri.ends_with("/oauth/token") {
                token()
            } else if uri.contains("pageNumber=1&") || uri.contains("pageNumber=2&") {
                page(uri, 9)
            } else {
                answer(
                    400,
                    json!({"message": "limited to the first 4 results", "status": 400}),
                )
            }
        });
        let result = export.finish();
        assert_eq!(result.users.len(), 4);
        let truncated = result.truncated.unwrap();
        assert_eq!(truncated.page, 3);
        assert!(
            truncated.message.contains("first 4"),
            "{}",
            truncated.message
        );
        assert!(result.failure.is_none());
    }

    #[test]
    fn refused_credentials_end_the_export() {
        let mut export = UserExport::new(config(), 1);
        drive(&mut export, |_| {
            answer(
                401,
                json!({"error": "invalid_client", "description": "bad secret"}),
            )
        });
        let result = export.finish();
        match result.failure {
            Some(ExportFailure::Auth(failure)) => {
                assert_eq!(failure.status, Some(401));
                assert!(failure.message.contains("bad secret"));
            }
            other => panic!("{other:?}"),
        }
    }
}
