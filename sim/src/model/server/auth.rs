//! The login service: client-credentials tokens, and checking them on API requests.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use gcbulk_core::Timestamp;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use serde::Serialize;

use super::{Server, Token};
use crate::model::dice;
use crate::model::wire::Answer;

/// The token answer of the client-credentials grant.
#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

/// An OAuth error answer.
#[derive(Serialize)]
struct OAuthError<'a> {
    error: &'static str,
    description: &'a str,
    error_description: &'a str,
}

impl Server {
    /// `POST /oauth/token`: Basic authentication, `grant_type=client_credentials`.
    pub(super) fn token(&mut self, now: Timestamp, request: &Request<Bytes>) -> Answer {
        let failure = StatusCode::from_u16(self.config.auth_failure_status)
            .unwrap_or(StatusCode::UNAUTHORIZED);
        let Some((id, secret)) = basic_credentials(request) else {
            return oauth_error(
                failure,
                "invalid_client",
                "client authentication is required",
            );
        };
        let grant = form_urlencoded::parse(request.body())
            .find(|(key, _)| key == "grant_type")
            .map(|(_, value)| value.into_owned());
        let client = self
            .config
            .clients
            .iter()
            .find(|c| c.id == id && c.secret == secret);

        let Some(client) = client else {
            tracing::debug!(client_id = %id, "token refused");
            return oauth_error(failure, "invalid_client", "client authentication failed");
        };
        if grant.as_deref() != Some("client_credentials") {
            let status = StatusCode::BAD_REQUEST;
            return oauth_error(status, "unsupported_grant_type", "use client_credentials");
        }

        let lifetime = client
            .token_lifetime_secs
            .unwrap_or(self.config.token_lifetime_secs);
        let owner = client.id.clone();
        let access_token = dice::token(&mut self.ids, 86);
        let expires_at = now + Duration::from_secs(lifetime);
        tracing::debug!(client_id = %owner, %expires_at, "token issued");

        self.tokens
            .insert(access_token.clone(), Token { owner, expires_at });
        Answer::json(
            StatusCode::OK,
            &TokenAnswer {
                access_token: &access_token,
                token_type: "bearer",
                expires_in: lifetime,
            },
        )
    }

    /// The OAuth client owning the request's bearer token, or the 401 to answer.
    pub(super) fn authenticate(
        &self,
        now: Timestamp,
        request: &Request<Bytes>,
        correlation_id: &str,
    ) -> Result<String, Answer> {
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| strip_scheme(h, "bearer")) else {
            return Err(Answer::error(
                StatusCode::UNAUTHORIZED,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
                correlation_id,
            ));
        };

        match self.tokens.get(token.trim()) {
            Some(token) if now < token.expires_at => Ok(token.owner.clone()),
            _ => Err(Answer::error(
                StatusCode::UNAUTHORIZED,
                "bad.credentials",
                "Invalid login credentials.",
                correlation_id,
            )),
        }
    }
}

/// The client id and secret of an `Authorization: Basic` header.
fn basic_credentials(request: &Request<Bytes>) -> Option<(String, String)> {
    let header = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = strip_scheme(header, "basic")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// What follows the authentication scheme, compared without regard to case.
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> Answer {
    Answer::json(
        status,
        &OAuthError {
            error,
            description,
            error_description: description,
        },
    )
}
