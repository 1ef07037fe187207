//! The server: one request in, one reply out, in virtual time.

mod auth;
mod users;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gcbulk_core::Timestamp;
use http::header::{CONTENT_TYPE, DATE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::config::{EditorEdit, Latency, ServerConfig, secs_to_timestamp};
use super::ratelimit::{Limits, Refusal, ceil_secs};
use super::wire::{Answer, CORRELATION_ID, text_header};
use super::{ClientId, Endpoint, ServerStats, TimelineEvent, User, dice};

/// Genesys Cloud in virtual time: OAuth, the users API, rate limits, faults and editors.
///
/// It is sans-IO: a harness hands it each request with the time it arrives and delivers the
/// [`Reply`] `latency` later. It never reads a clock; its dice come from the seed.
///
/// What a request goes through, in order:
/// 1. background edits due by `now` happen (as if [`handle_timeout`](Self::handle_timeout) ran);
/// 2. `POST /oauth/token` is answered by the login service, with no rate limit and no faults;
/// 3. a reset may cut the connection before an API request arrives ([`Reply::Reset`]);
/// 4. an API request needs a live bearer token (401 otherwise);
/// 5. the daily limit, storms, the organisation's budget, the client's budget and the
///    endpoint's own limit may refuse it with a 429; a refused request counts against none;
/// 6. a server error (burst or chance) may answer it with a 5xx; it still counted;
/// 7. the users API answers it; a reset may then lose the answer although the change was made.
pub struct Server {
    config: ServerConfig,
    users: Vec<User>,
    by_id: HashMap<String, usize>,
    tokens: HashMap<String, Token>,
    limits: Limits,
    /// A burst of server errors lasts until then.
    burst_until: Option<Timestamp>,
    /// Pending concurrent edits, earliest first: when, and which user.
    edits: VecDeque<(Timestamp, usize)>,
    /// Separate streams, so that turning one fault on does not reshuffle the others.
    ids: ChaCha8Rng,
    faults: ChaCha8Rng,
    latency: ChaCha8Rng,
    stats: ServerStats,
}

/// What the server does with one request.
#[must_use]
#[derive(Debug)]
pub enum Reply {
    /// Answer with `response`, `latency` after the request arrived.
    Respond {
        /// The answer.
        response: Response<Bytes>,
        /// How long the server took.
        latency: Duration,
    },
    /// Close the connection without an answer, `after` the request arrived.
    Reset {
        /// When, relative to the request.
        after: Duration,
    },
}

impl Reply {
    /// The response, unless the connection was reset.
    pub fn response(&self) -> Option<&Response<Bytes>> {
        match self {
            Self::Respond { response, .. } => Some(response),
            Self::Reset { .. } => None,
        }
    }

    /// How long after the request the reply happens.
    pub fn delay(&self) -> Duration {
        match self {
            Self::Respond { latency, .. } => *latency,
            Self::Reset { after } => *after,
        }
    }
}

/// An issued access token.
#[derive(Clone, Debug)]
struct Token {
    /// The OAuth client it was issued to, which owns the rate-limit budget.
    owner: String,
    expires_at: Timestamp,
}

/// Where a reset cuts the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    /// Before the request reached the service: nothing happened.
    BeforeApply,
    /// After the service acted: the change is made, the answer is lost.
    AfterApply,
}

impl Server {
    /// A server holding `users`, behaving as `config` says, its dice drawn from `seed`.
    ///
    /// Out-of-range settings are used as given; call [`ServerConfig::validate`] first to catch
    /// them.
    pub fn new(config: ServerConfig, users: Vec<User>, seed: u64) -> Self {
        let stream = |n| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(n);
            rng
        };
        let mut editor_dice = stream(4);

        let mut edits = Vec::new();
        if let Some(editors) = &config.editors {
            let start = secs_to_timestamp(editors.start_secs);
            let span = secs_to_timestamp(editors.end_secs).saturating_since(start);
            for index in 0..users.len() {
                if dice::chance(&mut editor_dice, editors.fraction) {
                    let at = start + span.mul_f64(dice::uniform(&mut editor_dice));
                    edits.push((at, index));
                }
            }
            edits.sort_unstable();
        }

        let by_id = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        Self {
            limits: Limits::new(config.rate_limit.clone()),
            config,
            users,
            by_id,
            tokens: HashMap::new(),
            burst_until: None,
            edits: edits.into(),
            ids: stream(1),
            faults: stream(2),
            latency: stream(3),
            stats: ServerStats::default(),
        }
    }

    /// The server receives `request` at `now` on the connection of `client`.
    ///
    /// The reply is due `latency` (or `after`) later; the state changes at `now`.
    pub fn handle_request(
        &mut self,
        now: Timestamp,
        client: ClientId,
        request: Request<Bytes>,
    ) -> Reply {
        self.handle_timeout(now);

        let endpoint = Endpoint::route(request.method(), request.uri().path());
        let correlation_id = dice::uuid(&mut self.ids);
        let latency = self.draw_latency();
        // The login service is modelled as reliable: faults hit the API only.
        let reset = if endpoint == Endpoint::Token {
            None
        } else {
            self.draw_reset()
        };

        if reset == Some(Reset::BeforeApply) {
            self.record(now, client, endpoint, None, None);
            return Reply::Reset { after: latency };
        }

        let answer = match endpoint {
            Endpoint::Token => self.token(now, &request),
            _ => self.api(now, endpoint, &request, &correlation_id),
        };
        let status = answer.status.as_u16();
        tracing::debug!(client = client.0, ?endpoint, status, %now, "answered");

        if reset == Some(Reset::AfterApply) {
            self.record(now, client, endpoint, None, None);
            return Reply::Reset { after: latency };
        }
        self.record(now, client, endpoint, Some(status), answer.throttle);

        let response = self.finish(now, answer, &correlation_id);
        Reply::Respond { response, latency }
    }

    /// Lets the concurrent editors act, up to and including `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&(at, index)) = self.edits.front() {
            if at > now {
                break;
            }
            self.edits.pop_front();

            let Some(edit) = self.config.editors.as_ref().map(|e| e.edit.clone()) else {
                break;
            };
            if let Some(user) = self.users.get_mut(index) {
                if let EditorEdit::SetTitle(title) = edit {
                    user.title = Some(title);
                }
                user.version += 1;
                self.stats.editor_edits += 1;
                tracing::debug!(user_id = %user.id, version = user.version, %at, "edited");
            }
        }
    }

    /// When the next concurrent edit is due, if any is left.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.edits.front().map(|&(at, _)| at)
    }

    /// Every user, in the order they were loaded: the final state, for assertions.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.iter()
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.by_id.get(id).and_then(|&i| self.users.get(i))
    }

    /// What the server answered so far.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// An API request: authenticate, limit, maybe fail, then serve.
    fn api(
        &mut self,
        now: Timestamp,
        endpoint: Endpoint,
        request: &Request<Bytes>,
        correlation_id: &str,
    ) -> Answer {
        let owner = match self.authenticate(now, request, correlation_id) {
            Ok(owner) => owner,
            Err(answer) => return answer,
        };

        let mut answer = match self.limits.admit(now, &owner, endpoint, &mut self.faults) {
            Err(refusal) => self.throttled(refusal, correlation_id),
            Ok(()) if self.server_error(now) => self.unavailable(correlation_id),
            Ok(()) => self.serve(endpoint, request, correlation_id),
        };

        if self.config.rate_limit.headers {
            answer.headers.extend(self.limits.announce(now, &owner));
        }
        answer
    }

    fn serve(
        &mut self,
        endpoint: Endpoint,
        request: &Request<Bytes>,
        correlation_id: &str,
    ) -> Answer {
        let query = request.uri().query().unwrap_or("");
        let id = request.uri().path().rsplit('/').next().unwrap_or("");
        match endpoint {
            Endpoint::ListUsers => self.list_users(query, correlation_id),
            Endpoint::GetUser => self.get_user(id, query, correlation_id),
            Endpoint::PatchUser => self.patch_user(id, request.body(), correlation_id),
            Endpoint::SearchUsers if request.method() == http::Method::GET => {
                self.search_users_q64(query, correlation_id)
            }
            Endpoint::SearchUsers => self.search_users(request.body(), correlation_id),
            Endpoint::Token | Endpoint::Other => Answer::error(
                StatusCode::NOT_FOUND,
                "not.found",
                "The requested resource was not found.",
                correlation_id,
            ),
        }
    }

    /// The 429, in today's normalized form or the pre-2021 one.
    fn throttled(&self, refusal: Refusal, correlation_id: &str) -> Answer {
        let secs = ceil_secs(refusal.retry_after);
        tracing::debug!(cause = ?refusal.cause, retry_after = secs, "throttled");

        let mut answer = if self.config.rate_limit.retry_after {
            let message =
                format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds");
            Answer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                &message,
                correlation_id,
            )
            .with_header(RETRY_AFTER, HeaderValue::from(secs))
        } else {
            let message = match self.limits.describe() {
                Some((limit, secs)) => format!(
                    "Rate limit exceeded the maximum [{limit}] requests within [{secs}] seconds"
                ),
                None => "Rate limit exceeded the maximum.".to_owned(),
            };
            Answer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                &message,
                correlation_id,
            )
        };
        answer.throttle = Some(refusal.cause);
        answer
    }

    /// Whether this request meets a server error: inside a burst, starting one, or by chance.
    fn server_error(&mut self, now: Timestamp) -> bool {
        if self.burst_until.is_some_and(|until| now < until) {
            return true;
        }
        let faults = self.config.faults;
        if dice::chance(&mut self.faults, faults.burst_probability) {
            let ms = dice::between(&mut self.faults, faults.burst_min_ms, faults.burst_max_ms);
            self.burst_until = Some(now + Duration::from_millis(ms));
            return true;
        }
        dice::chance(&mut self.faults, faults.server_error_probability)
    }

    fn unavailable(&self, correlation_id: &str) -> Answer {
        let status = StatusCode::from_u16(self.config.faults.server_error_status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let (code, message) = match status.as_u16() {
            500 => (
                "internal.server.error",
                "The server encountered an unexpected condition.",
            ),
            502 => (
                "bad.gateway",
                "The server received an invalid response from upstream.",
            ),
            504 => (
                "gateway.timeout",
                "The server did not receive a timely response.",
            ),
            _ => (
                "service.unavailable",
                "The service is currently unavailable.",
            ),
        };
        Answer::error(status, code, message, correlation_id)
    }

    fn draw_latency(&mut self) -> Duration {
        let ms = match self.config.latency {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min_ms, max_ms } => {
                min_ms + (max_ms - min_ms) * dice::uniform(&mut self.latency)
            }
            Latency::LogNormal {
                median_ms,
                sigma,
                max_ms,
            } => (median_ms * (sigma * dice::normal(&mut self.latency)).exp()).min(max_ms),
        };
        Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::ZERO)
    }

    fn draw_reset(&mut self) -> Option<Reset> {
        let faults = self.config.faults;
        if !dice::chance(&mut self.faults, faults.reset_probability) {
            return None;
        }
        if dice::chance(&mut self.faults, faults.reset_after_apply_fraction) {
            Some(Reset::AfterApply)
        } else {
            Some(Reset::BeforeApply)
        }
    }

    fn record(
        &mut self,
        at: Timestamp,
        client: ClientId,
        endpoint: Endpoint,
        status: Option<u16>,
        throttle: Option<super::ThrottleCause>,
    ) {
        let event = TimelineEvent {
            at,
            client,
            endpoint,
            status,
            throttle,
        };
        self.stats.record(event, self.config.record_timeline);
    }

    /// Adds what every answer carries: content type, correlation id and date.
    fn finish(&self, now: Timestamp, answer: Answer, correlation_id: &str) -> Response<Bytes> {
        let mut response = Response::new(answer.body);
        *response.status_mut() = answer.status;

        let date = SystemTime::UNIX_EPOCH
            + Duration::from_secs(self.config.epoch_unix_secs)
            + now.since_origin();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CORRELATION_ID, text_header(correlation_id));
        headers.insert(DATE, text_header(&httpdate::fmt_http_date(date)));
        for (name, value) in answer.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl fmt::Debug for Server {
    /// Counts only: users are many, and tokens are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("users", &self.users.len())
            .field("tokens", &self.tokens.len())
            .field("pending_edits", &self.edits.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
