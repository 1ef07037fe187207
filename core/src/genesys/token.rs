//! The client-credentials token every API request carries, kept in one place for both machines.
//!
//! [`TokenKeeper`] builds the token request, reads the login host's answer, says when the token is
//! due for renewal, forgets it when a 401 says it is gone, and holds the requests that wait for
//! one. It sends nothing itself: the machine that owns it queues the token request on its own
//! scheduler, under its own key and lane, and hands the answer back, so the update and the export
//! authenticate the same way while each keeps its own idea of what a failure ends.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;

use super::outcome::ErrorDetails;
use super::secret::{Credentials, Secret};
use crate::Timestamp;

/// The lifetime assumed when the answer gives no `expires_in`: Genesys' default. A token that
/// dies sooner still ends in a 401, which renews it.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// Why a run could not authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    /// The HTTP status, when the login host answered.
    pub status: Option<u16>,
    /// What it said, or what went wrong.
    pub message: String,
}

impl AuthFailure {
    /// Whether the login host refused the credentials (it answered 4xx). Otherwise it answered
    /// without a usable token (a cut-off or unreadable body, say), which is no fault of the
    /// credentials and may pass if tried again later.
    pub fn credentials_refused(&self) -> bool {
        self.status
            .is_some_and(|status| (400..500).contains(&status))
    }
}

/// What a request can go out with at a given moment.
#[derive(Debug)]
pub(super) enum Bearer {
    /// The token to send.
    Ready(Secret),
    /// None yet, or the one held is due for renewal: hold the request with
    /// [`TokenKeeper::wait`] and ask for a token.
    Pending,
    /// Authentication failed: the request will never go out.
    Failed,
}

#[derive(Debug)]
enum State {
    Missing,
    Requesting,
    Valid {
        token: Secret,
        /// When to stop sending it and ask for the next; `None` keeps it until a 401.
        renew_at: Option<Timestamp>,
    },
    Failed,
}

/// Obtains and renews the client-credentials token, and holds the requests (`K`, the owner's
/// scheduler keys) that wait for it.
///
/// Its `Debug` shows neither the client secret nor the token: both are [`Secret`]s.
#[derive(Debug)]
pub(super) struct TokenKeeper<K> {
    login_base: String,
    credentials: Credentials,
    renew_before: Option<Duration>,
    state: State,
    /// Requests waiting for a token, in the order they asked.
    waiting: Vec<K>,
}

impl<K> TokenKeeper<K> {
    /// A keeper for `credentials` at `login_base`. With `renew_before`, a token is renewed that
    /// long before it expires (at the latest halfway through its life); without, it is kept until
    /// a 401 says it is gone.
    pub(super) fn new(
        login_base: &str,
        credentials: Credentials,
        renew_before: Option<Duration>,
    ) -> Self {
        Self {
            login_base: login_base.to_owned(),
            credentials,
            renew_before,
            state: State::Missing,
            waiting: Vec::new(),
        }
    }

    /// The token a request sent at `now` should carry, if there is one to send.
    pub(super) fn bearer(&self, now: Timestamp) -> Bearer {
        match &self.state {
            State::Valid { token, renew_at } if renew_at.is_none_or(|at| now < at) => {
                Bearer::Ready(token.clone())
            }
            State::Failed => Bearer::Failed,
            _ => Bearer::Pending,
        }
    }

    /// Holds a request until the token arrives; [`TokenKeeper::on_answer`] hands it back.
    pub(super) fn wait(&mut self, key: K) {
        self.waiting.push(key);
    }

    /// Forgets the requests waiting for a token: the run is stopping and they will not be sent.
    pub(super) fn drop_waiting(&mut self) {
        self.waiting.clear();
    }

    /// The token request to queue, unless one is already out or authentication failed (`None`).
    ///
    /// # Errors
    ///
    /// When the login URL cannot make a request: authentication has then failed for good.
    pub(super) fn request(&mut self) -> Result<Option<Request<Bytes>>, AuthFailure> {
        if matches!(self.state, State::Requesting | State::Failed) {
            return Ok(None);
        }
        self.state = State::Requesting;
        let pair = format!(
            "{}:{}",
            self.credentials.client_id,
            self.credentials.client_secret.expose()
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/oauth/token", self.login_base))
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Bytes::from_static(b"grant_type=client_credentials"));
        match request {
            Ok(request) => Ok(Some(request)),
            // `http::Error` names what is wrong with the URL, not the URL or the headers, so the
            // Basic credentials cannot reach the message.
            Err(error) => Err(self.fail(None, format!("the login URL is not valid: {error}"))),
        }
    }

    /// Reads the login host's answer to the token request, received at `now`.
    ///
    /// # Errors
    ///
    /// When the login host refused the credentials, or answered without a token (a cut-off or
    /// unreadable body included): authentication has then failed for good.
    pub(super) fn on_answer(
        &mut self,
        now: Timestamp,
        response: &Response<Bytes>,
    ) -> Result<Vec<K>, AuthFailure> {
        let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        match token {
            Some(token) if response.status().is_success() => {
                let lifetime = body
                    .get("expires_in")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_LIFETIME, Duration::from_secs);
                let renew_at = self
                    .renew_before
                    .map(|before| now + (lifetime - before.min(lifetime / 2)));
                self.state = State::Valid {
                    token: Secret::new(token),
                    renew_at,
                };
                tracing::debug!(expires_in_s = lifetime.as_secs(), "token received");
                Ok(std::mem::take(&mut self.waiting))
            }
            _ => {
                let details = ErrorDetails::from_response(response);
                let said = details
                    .message
                    .or(details.code)
                    .unwrap_or_else(|| "no reason given".into());
                // Only the error fields are quoted: an `access_token` in a refusal stays unsaid.
                let status = response.status();
                let message = if status.is_success() {
                    "the token answer had no access_token".to_owned()
                } else if status.is_client_error() {
                    format!("the login host refused the credentials: {said}")
                } else {
                    format!("the login host could not give a token: {said}")
                };
                Err(self.fail(Some(response.status().as_u16()), message))
            }
        }
    }

    /// When the token is due for renewal, while one is held and renewal ahead of expiry is on.
    pub(super) fn renew_at(&self) -> Option<Timestamp> {
        match self.state {
            State::Valid { renew_at, .. } => renew_at,
            _ => None,
        }
    }

    /// Drops the token, so that the next request asks for a new one.
    pub(super) fn forget(&mut self) {
        if matches!(self.state, State::Valid { .. }) {
            self.state = State::Missing;
        }
    }

    /// Whether a request answered `status` should be sent again after a token renewal: a 401 to a
    /// request that was not already such a replay. The token is then forgotten, so the replay
    /// waits for a new one. A second 401 is the API refusing the request itself, not an expired
    /// token, and renewing again would only loop.
    pub(super) fn replay_after(&mut self, status: StatusCode, replayed: bool) -> bool {
        if status != StatusCode::UNAUTHORIZED || replayed {
            return false;
        }
        self.forget();
        true
    }

    /// Authentication has failed for good: no request goes out any more, and those waiting are
    /// dropped. Logs and returns the failure.
    pub(super) fn fail(&mut self, status: Option<u16>, message: String) -> AuthFailure {
        tracing::error!(status, message = %message, "authentication failed");
        self.give_up();
        AuthFailure { status, message }
    }

    /// Stops asking for a token without calling the credentials wrong, as when the login host
    /// never answered: no request goes out any more, and those waiting are dropped.
    pub(super) fn give_up(&mut self) {
        self.state = State::Failed;
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "s3cr3t-value";
    const TOKEN: &str = "tok-0123456789";

    fn keeper(renew_before: Option<Duration>) -> TokenKeeper<u32> {
        let credentials = Credentials {
            client_id: "client-1".into(),
            client_secret: Secret::new(SECRET),
        };
        TokenKeeper::new("https://login.example", credentials, renew_before)
    }

    fn answer(status: u16, body: &str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(body.to_owned()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
    }

    fn granted(expires_in: u64) -> Response<Bytes> {
        let body = json!({"access_token": TOKEN, "expires_in": expires_in});
        answer(200, &body.to_string())
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn token_at(keeper: &TokenKeeper<u32>, now: Timestamp) -> Option<String> {
        match keeper.bearer(now) {
            Bearer::Ready(token) => Some(token.expose().to_owned()),
            _ => None,
        }
    }

    #[test]
    fn asks_once_and_hands_back_the_waiting_requests_in_order() {
        let mut keeper = keeper(None);
        assert!(matches!(keeper.bearer(at(0)), Bearer::Pending));
        keeper.wait(1);
        let request = keeper.request().unwrap().unwrap();
        keeper.wait(2);
        assert!(keeper.request().unwrap().is_none(), "one request at a time");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "https://login.example/oauth/token");
        assert_eq!(request.body().as_ref(), b"grant_type=client_credentials");
        let basic = request.headers()[header::AUTHORIZATION].to_str().unwrap();
        let pair = base64::engine::general_purpose::STANDARD
            .decode(basic.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(pair, format!("client-1:{SECRET}").as_bytes());

        assert_eq!(keeper.on_answer(at(1), &granted(3600)).unwrap(), [1, 2]);
        assert_eq!(token_at(&keeper, at(1)).as_deref(), Some(TOKEN));
    }

    #[test]
    fn renews_ahead_of_expiry() {
        let mut keeper = keeper(Some(Duration::from_secs(60)));
        keeper.request().unwrap();
        keeper.on_answer(at(100), &granted(3600)).unwrap();
        assert_eq!(keeper.renew_at(), Some(at(100 + 3600 - 60)));
        assert!(token_at(&keeper, at(100 + 3539)).is_some());
        assert!(matches!(keeper.bearer(at(100 + 3540)), Bearer::Pending));

        // Due, the token is dropped and a new one asked for while it is still valid.
        keeper.forget();
        assert!(keeper.request().unwrap().is_some());
        keeper.on_answer(at(3700), &granted(3600)).unwrap();
        assert_eq!(keeper.renew_at(), Some(at(3700 + 3540)));
    }

    #[test]
    fn a_short_lived_token_is_renewed_halfway_and_a_silent_one_after_a_day() {
        let mut keeper = keeper(Some(Duration::from_secs(60)));
        keeper.request().unwrap();
        keeper.on_answer(at(0), &granted(100)).unwrap();
        assert_eq!(keeper.renew_at(), Some(at(50)));

        keeper.forget();
        keeper.request().unwrap();
        let body = json!({"access_token": TOKEN}).to_string();
        keeper.on_answer(at(0), &answer(200, &body)).unwrap();
        assert_eq!(keeper.renew_at(), Some(at(86_400 - 60)));
    }

    #[test]
    fn without_renewal_ahead_the_token_is_kept_until_a_401() {
        let mut keeper = keeper(None);
        keeper.request().unwrap();
        keeper.on_answer(at(0), &granted(60)).unwrap();
        assert_eq!(keeper.renew_at(), None);
        assert!(token_at(&keeper, at(1_000_000)).is_some());
    }

    #[test]
    fn a_401_renews_the_token_once() {
        let mut keeper = keeper(Some(Duration::from_secs(60)));
        keeper.request().unwrap();
        keeper.on_answer(at(0), &granted(3600)).unwrap();

        assert!(!keeper.replay_after(StatusCode::FORBIDDEN, false));
        assert!(!keeper.replay_after(StatusCode::OK, false));
        assert!(token_at(&keeper, at(1)).is_some(), "only a 401 drops it");

        assert!(keeper.replay_after(StatusCode::UNAUTHORIZED, false));
        assert!(matches!(keeper.bearer(at(1)), Bearer::Pending));
        keeper.wait(7);
        assert!(keeper.request().unwrap().is_some());
        assert_eq!(keeper.on_answer(at(2), &granted(3600)).unwrap(), [7]);

        // The replay is refused too: the API means it, so no second renewal.
        assert!(!keeper.replay_after(StatusCode::UNAUTHORIZED, true));
        assert!(token_at(&keeper, at(3)).is_some());
    }

    #[test]
    fn refused_credentials_fail_for_good_with_the_login_hosts_reason() {
        let mut keeper = keeper(None);
        keeper.wait(1);
        keeper.request().unwrap();
        let body = json!({"error": "invalid_client", "description": "bad secret"}).to_string();
        let failure = keeper.on_answer(at(0), &answer(401, &body)).unwrap_err();
        assert_eq!(failure.status, Some(401));
        assert_eq!(
            failure.message,
            "the login host refused the credentials: bad secret"
        );
        assert!(matches!(keeper.bearer(at(0)), Bearer::Failed));
        assert!(keeper.request().unwrap().is_none(), "no second try");
        assert!(keeper.waiting.is_empty());

        let mut unexplained = self::keeper(None);
        unexplained.request().unwrap();
        let failure = unexplained.on_answer(at(0), &answer(400, "")).unwrap_err();
        assert_eq!(
            failure.message,
            "the login host refused the credentials: no reason given"
        );
        assert!(failure.credentials_refused());

        // A login host that is down says nothing about the credentials.
        let mut down = self::keeper(None);
        down.request().unwrap();
        let failure = down.on_answer(at(0), &answer(503, "")).unwrap_err();
        assert_eq!(
            failure.message,
            "the login host could not give a token: no reason given"
        );
        assert!(!failure.credentials_refused());
    }

    #[test]
    fn a_cut_off_or_tokenless_answer_fails_clearly() {
        for body in [
            r#"{"access_token": "tok-01"#,
            r#"{"access_token": ""}"#,
            "{}",
            "",
        ] {
            let mut keeper = keeper(None);
            keeper.request().unwrap();
            let failure = keeper.on_answer(at(0), &answer(200, body)).unwrap_err();
            assert_eq!(
                failure,
                AuthFailure {
                    status: Some(200),
                    message: "the token answer had no access_token".into(),
                },
                "{body}"
            );
            assert!(matches!(keeper.bearer(at(0)), Bearer::Failed));
            assert!(!failure.credentials_refused(), "{body}");
        }
    }

    #[test]
    fn a_login_url_that_makes_no_request_fails_without_the_credentials() {
        let credentials = Credentials {
            client_id: "client-1".into(),
            client_secret: Secret::new(SECRET),
        };
        let mut keeper: TokenKeeper<u32> = TokenKeeper::new("https://log in", credentials, None);
        let failure = keeper.request().unwrap_err();
        assert!(failure.message.starts_with("the login URL is not valid"));
        assert!(!format!("{failure:?}").contains(SECRET), "{failure:?}");
        assert!(matches!(keeper.bearer(at(0)), Bearer::Failed));
    }

    #[test]
    fn neither_the_secret_nor_the_token_shows_in_debug_output_or_errors() {
        let mut keeper = keeper(Some(Duration::from_secs(60)));
        keeper.wait(1);
        let mut shown = format!("{keeper:?}");
        keeper.request().unwrap();
        keeper.on_answer(at(0), &granted(3600)).unwrap();
        let bearer = keeper.bearer(at(1));
        shown.push_str(&format!("{keeper:?} {bearer:?}"));

        // A refusal that carries a token anyway is quoted by its error fields only.
        keeper.forget();
        keeper.request().unwrap();
        let body = json!({
            "access_token": TOKEN,
            "error": "invalid_client",
            "message": "bad secret",
        });
        let failure = keeper
            .on_answer(at(2), &answer(401, &body.to_string()))
            .unwrap_err();
        shown.push_str(&format!("{failure:?} {} {keeper:?}", failure.message));

        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(
            shown.contains("[redacted]") && shown.contains("client-1"),
            "{shown}"
        );
    }
}
