//! Reading what a server says about its limits: `Retry-After` and the rate-limit header families.
//!
//! Every parser here is total: junk yields `None` (the caller falls back to its own backoff), never
//! a panic or an overflow.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{DATE, HeaderName, RETRY_AFTER};

/// Header names, built once: parsing a name on every response would dominate the scheduler's
/// cost per event.
mod names {
    use http::header::HeaderName;

    pub(super) const ININ_ALLOWED: HeaderName = HeaderName::from_static("inin-ratelimit-allowed");
    pub(super) const ININ_COUNT: HeaderName = HeaderName::from_static("inin-ratelimit-count");
    pub(super) const ININ_RESET: HeaderName = HeaderName::from_static("inin-ratelimit-reset");
    pub(super) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
    pub(super) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    pub(super) const RATELIMIT_FIELDS: [HeaderName; 3] = [
        HeaderName::from_static("ratelimit-limit"),
        HeaderName::from_static("ratelimit-remaining"),
        HeaderName::from_static("ratelimit-reset"),
    ];
    pub(super) const X_RATELIMIT_FIELDS: [HeaderName; 3] = [
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderName::from_static("x-ratelimit-reset"),
    ];
}

/// What a `Retry-After` field asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Wait this long (delta-seconds, or an HTTP-date measured against the response's `Date`).
    Wait(Duration),
    /// The field was absent.
    Absent,
    /// The field was present but unusable (negative, fractional, not a number, a date without a
    /// `Date` to measure it against, or copies that disagree).
    Invalid,
}

/// Epoch-second values above this are absolute times, not deltas (`X-RateLimit-Reset` style).
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// Reads `Retry-After` from `headers`.
///
/// Delta-seconds must be plain digits (RFC 9110); an HTTP-date is measured against the response's
/// own `Date`, so no clock is read. Several copies are accepted only when they agree.
pub fn retry_after(headers: &HeaderMap) -> RetryAfter {
    let mut found = None;
    for value in headers.get_all(RETRY_AFTER) {
        let Some(wait) = value
            .to_str()
            .ok()
            .and_then(|text| parse_retry_after(text, headers))
        else {
            return RetryAfter::Invalid;
        };
        match found {
            Some(previous) if previous != wait => return RetryAfter::Invalid,
            _ => found = Some(wait),
        }
    }
    found.map_or(RetryAfter::Absent, RetryAfter::Wait)
}

fn parse_retry_after(text: &str, headers: &HeaderMap) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still a number of seconds: longer than any wait worth
        // sitting out, which the give-up check then turns into a resumable stop.
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    let date = response_date(headers)?;
    Some(at.duration_since(date).unwrap_or(Duration::ZERO))
}

fn response_date(headers: &HeaderMap) -> Option<SystemTime> {
    let text = headers.get(DATE)?.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok()
}

/// One server announcement of its rate limit, normalised across header families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateObservation {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// Requests still allowed in the current window.
    pub remaining: Option<u64>,
    /// Time until the window resets.
    pub reset: Option<Duration>,
    /// The window's length, when the server states it.
    pub window: Option<Duration>,
}

impl RateObservation {
    /// True when no header said anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Reads the rate-limit headers Genesys sends (`inin-ratelimit-*`) and the common standard and
/// de-facto families (`RateLimit` / `RateLimit-Policy`, `RateLimit-*`, `X-RateLimit-*`).
///
/// The first family present wins, in that order; fields that do not parse are ignored.
pub fn rate_observation(headers: &HeaderMap) -> RateObservation {
    let inin = inin(headers);
    if !inin.is_empty() {
        return inin;
    }
    let structured = structured(headers);
    if !structured.is_empty() {
        return structured;
    }
    let split = split_fields(headers, &names::RATELIMIT_FIELDS);
    if !split.is_empty() {
        return split;
    }
    split_fields(headers, &names::X_RATELIMIT_FIELDS)
}

fn number(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    // Some servers send "60.0"; a whole float is accepted, anything else is ignored.
    text.parse::<u64>().ok().or_else(|| {
        let value = text.parse::<f64>().ok()?;
        (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 1e15)
            .then_some(value as u64)
    })
}

fn inin(headers: &HeaderMap) -> RateObservation {
    let limit = number(headers, &names::ININ_ALLOWED);
    let count = number(headers, &names::ININ_COUNT);
    RateObservation {
        limit,
        remaining: limit
            .zip(count)
            .map(|(limit, count)| limit.saturating_sub(count)),
        reset: number(headers, &names::ININ_RESET).map(Duration::from_secs),
        window: None,
    }
}

/// `limit`, `remaining` and `reset` as separate fields (`RateLimit-*` or `X-RateLimit-*`).
fn split_fields(
    headers: &HeaderMap,
    [limit, remaining, reset]: &[HeaderName; 3],
) -> RateObservation {
    RateObservation {
        limit: number(headers, limit),
        remaining: number(headers, remaining),
        reset: number(headers, reset).and_then(|reset| reset_delta(reset, headers)),
        window: None,
    }
}

/// A reset is a delta in seconds, or (above [`EPOCH_THRESHOLD`]) Unix seconds measured against the
/// response's `Date`.
fn reset_delta(reset: u64, headers: &HeaderMap) -> Option<Duration> {
    if reset < EPOCH_THRESHOLD {
        return Some(Duration::from_secs(reset));
    }
    let date = response_date(headers)?;
    let at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(reset))?;
    Some(at.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The IETF draft fields: `RateLimit: limit=10, remaining=5, reset=3` (early drafts) or
/// `RateLimit: "default";r=5;t=3` with `RateLimit-Policy: "default";q=10;w=60` (later drafts).
fn structured(headers: &HeaderMap) -> RateObservation {
    let mut seen = RateObservation::default();
    if let Some(text) = headers.get(names::RATELIMIT).and_then(|v| v.to_str().ok()) {
        for (key, value) in parameters(text) {
            match key {
                "limit" | "l" => seen.limit = seen.limit.or(Some(value)),
                "remaining" | "r" => seen.remaining = seen.remaining.or(Some(value)),
                "reset" | "t" => seen.reset = seen.reset.or(Some(Duration::from_secs(value))),
                _ => {}
            }
        }
    }
    if let Some(text) = headers
        .get(names::RATELIMIT_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        let first_policy = text.split(',').next().unwrap_or_default();
        for (position, part) in first_policy.split(';').enumerate() {
            let part = part.trim();
            match part.split_once('=') {
                Some(("q", value)) => seen.limit = seen.limit.or(value.trim().parse().ok()),
                Some(("w", value)) => {
                    seen.window = value.trim().parse().ok().map(Duration::from_secs);
                }
                None if position == 0 => seen.limit = seen.limit.or(part.parse().ok()),
                _ => {}
            }
        }
    }
    seen
}

fn parameters(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.split([',', ';']).filter_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        Some((key.trim(), value.trim().parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const DATE_NOW: &str = "Thu, 03 Dec 2026 12:00:00 GMT";

    #[test]
    fn retry_after_delta_seconds() {
        let h = headers(&[("retry-after", "42")]);
        assert_eq!(retry_after(&h), RetryAfter::Wait(Duration::from_secs(42)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 0 ")])),
            RetryAfter::Wait(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_junk_is_invalid_not_a_panic() {
        for junk in ["", "-1", "3.5", "1m0s", "soon", "+5"] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", junk)])),
                RetryAfter::Invalid,
                "{junk}"
            );
        }
        assert_eq!(retry_after(&HeaderMap::new()), RetryAfter::Absent);
    }

    #[test]
    fn retry_after_huge_but_valid_is_kept_for_the_give_up_check() {
        let h = headers(&[("retry-after", "9999999999")]);
        assert_eq!(
            retry_after(&h),
            RetryAfter::Wait(Duration::from_secs(9_999_999_999))
        );
    }

    #[test]
    fn retry_after_too_long_for_a_u64_is_the_longest_wait_not_junk() {
        let h = headers(&[("retry-after", "99999999999999999999999")]);
        assert_eq!(
            retry_after(&h),
            RetryAfter::Wait(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_http_date_is_measured_against_the_date_header() {
        let future = headers(&[
            ("retry-after", "Thu, 03 Dec 2026 12:00:30 GMT"),
            ("date", DATE_NOW),
        ]);
        assert_eq!(
            retry_after(&future),
            RetryAfter::Wait(Duration::from_secs(30))
        );

        let past = headers(&[
            ("retry-after", "Thu, 03 Dec 2026 11:59:00 GMT"),
            ("date", DATE_NOW),
        ]);
        assert_eq!(retry_after(&past), RetryAfter::Wait(Duration::ZERO));

        let undated = headers(&[("retry-after", "Thu, 03 Dec 2026 12:00:30 GMT")]);
        assert_eq!(retry_after(&undated), RetryAfter::Invalid);
    }

    #[test]
    fn duplicated_retry_after_must_agree() {
        let same = headers(&[("retry-after", "5"), ("retry-after", "5")]);
        assert_eq!(retry_after(&same), RetryAfter::Wait(Duration::from_secs(5)));
        let differ = headers(&[("retry-after", "5"), ("retry-after", "7")]);
        assert_eq!(retry_after(&differ), RetryAfter::Invalid);
    }

    #[test]
    fn inin_headers_give_limit_remaining_and_reset() {
        let h = headers(&[
            ("inin-ratelimit-count", "1"),
            ("inin-ratelimit-allowed", "180"),
            ("inin-ratelimit-reset", "61"),
        ]);
        let seen = rate_observation(&h);
        assert_eq!(seen.limit, Some(180));
        assert_eq!(seen.remaining, Some(179));
        assert_eq!(seen.reset, Some(Duration::from_secs(61)));
    }

    #[test]
    fn count_above_allowed_leaves_nothing_remaining() {
        let h = headers(&[
            ("inin-ratelimit-count", "400"),
            ("inin-ratelimit-allowed", "300"),
        ]);
        assert_eq!(rate_observation(&h).remaining, Some(0));
    }

    #[test]
    fn garbage_rate_headers_are_ignored() {
        let h = headers(&[
            ("inin-ratelimit-count", "lots"),
            ("inin-ratelimit-allowed", "-3"),
            ("inin-ratelimit-reset", "NaN"),
        ]);
        assert!(rate_observation(&h).is_empty());
        let h = headers(&[
            ("x-ratelimit-limit", "1e400"),
            ("x-ratelimit-remaining", "5.5"),
        ]);
        assert!(rate_observation(&h).is_empty());
    }

    #[test]
    fn draft_structured_fields() {
        let early = headers(&[("ratelimit", "limit=100, remaining=50, reset=5")]);
        let seen = rate_observation(&early);
        assert_eq!((seen.limit, seen.remaining), (Some(100), Some(50)));
        assert_eq!(seen.reset, Some(Duration::from_secs(5)));

        let late = headers(&[
            ("ratelimit", "\"default\";r=7;t=30"),
            ("ratelimit-policy", "\"default\";q=100;w=60"),
        ]);
        let seen = rate_observation(&late);
        assert_eq!((seen.limit, seen.remaining), (Some(100), Some(7)));
        assert_eq!(seen.window, Some(Duration::from_secs(60)));
        assert_eq!(seen.reset, Some(Duration::from_secs(30)));

        let bare_policy = headers(&[("ratelimit-policy", "10;w=1, 1000;w=3600")]);
        let seen = rate_observation(&bare_policy);
        assert_eq!(
            (seen.limit, seen.window),
            (Some(10), Some(Duration::from_secs(1)))
        );
    }

    #[test]
    fn x_ratelimit_reset_as_epoch_seconds() {
        // 2026-12-03T12:00:00Z is 1796299200.
        let h = headers(&[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1796299210"),
            ("date", DATE_NOW),
        ]);
        let seen = rate_observation(&h);
        assert_eq!(seen.reset, Some(Duration::from_secs(10)));
        assert_eq!(seen.remaining, Some(0));
    }

    #[test]
    fn heroku_style_remaining_only() {
        let h = headers(&[("ratelimit-remaining", "4499")]);
        let seen = rate_observation(&h);
        assert_eq!(seen.remaining, Some(4499));
        assert_eq!(seen.limit, None);
    }
}
