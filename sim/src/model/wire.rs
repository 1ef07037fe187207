//! Building answers the way Genesys writes them: JSON bodies, error bodies, headers.

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde::Serialize;

use super::ThrottleCause;

/// `ININ-Correlation-Id`: every answer carries one, and support asks for it.
pub(crate) const CORRELATION_ID: HeaderName = HeaderName::from_static("inin-correlation-id");
/// Requests counted in the current rate-limit window.
pub(crate) const RATELIMIT_COUNT: HeaderName = HeaderName::from_static("inin-ratelimit-count");
/// Requests allowed per window.
pub(crate) const RATELIMIT_ALLOWED: HeaderName = HeaderName::from_static("inin-ratelimit-allowed");
/// Seconds until the window resets.
pub(crate) const RATELIMIT_RESET: HeaderName = HeaderName::from_static("inin-ratelimit-reset");
/// Requests left, as a GCRA limiter (Heroku) announces them.
pub(crate) const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");

/// An answer on its way out, before the headers every answer shares are added.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Set on 429s: why the request was refused.
    pub(crate) throttle: Option<ThrottleCause>,
}

impl Answer {
    /// A JSON answer.
    pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Self {
        // Serializing plain data structs into a Vec cannot fail; an empty object keeps it total.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Self {
            status,
            body: Bytes::from(body),
            headers: Vec::new(),
            throttle: None,
        }
    }

    /// A Genesys error answer: `message, code, status, contextId, details, errors`.
    pub(crate) fn error(status: StatusCode, code: &str, message: &str, context_id: &str) -> Self {
        Self::json(
            status,
            &ErrorBody {
                message,
                code,
                status: status.as_u16(),
                context_id,
                details: Vec::new(),
                errors: Vec::new(),
            },
        )
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// The error body of the Genesys platform API, fields in the order Genesys writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    message: &'a str,
    code: &'a str,
    status: u16,
    context_id: &'a str,
    details: Vec<serde_json::Value>,
    errors: Vec<serde_json::Value>,
}

/// A header value from text the server made itself (ids, dates): always visible ASCII.
pub(crate) fn text_header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_the_genesys_shape() {
        let answer = Answer::error(StatusCode::NOT_FOUND, "not.found", "gone", "c-1");
        assert_eq!(
            answer.body,
            concat!(
                r#"{"message":"gone","code":"not.found","status":404,"contextId":"c-1","#,
                r#""details":[],"errors":[]}"#,
            )
        );
    }
}
