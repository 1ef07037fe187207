//! What the modelled server does: OAuth clients, rate limits, faults, latency and editors.
//!
//! Every type here deserializes with serde, and every field has a default, so a scenario file
//! names only what it changes. [`ServerConfig::default`] is Genesys Cloud as it usually behaves:
//! 300 requests a minute per OAuth client, rate-limit headers, `Retry-After` on 429s, no faults.

use std::fmt;
use std::time::Duration;

use gcbulk_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::Endpoint;

/// How the modelled Genesys Cloud organisation behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The OAuth clients that may get a token with the client-credentials grant.
    pub clients: Vec<OAuthClient>,
    /// Token lifetime in seconds for clients that set none of their own (Genesys: 86400).
    pub token_lifetime_secs: u64,
    /// Status of the answer to an unknown client or a bad secret (whether Genesys says 400 or
    /// 401 is unconfirmed, so it is a setting).
    pub auth_failure_status: u16,
    /// Unix time in seconds of virtual time zero: the `Date` header counts from it.
    pub epoch_unix_secs: u64,
    /// Rate limits and the 429s they cause.
    pub rate_limit: RateLimitConfig,
    /// Server errors and connection resets.
    pub faults: FaultConfig,
    /// How long the server takes to answer.
    pub latency: Latency,
    /// Other people editing users while a run goes on; `None` means nobody does.
    pub editors: Option<EditorsConfig>,
    /// How a stale `version` in a PATCH is answered.
    pub conflict: ConflictStyle,
    /// Listing inactive users answers 400 once a page would start at or past this many users.
    pub inactive_listing_limit: u64,
    /// Whether [`ServerStats::timeline`](super::ServerStats::timeline) records every answer.
    pub record_timeline: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            clients: vec![OAuthClient::default()],
            token_lifetime_secs: 86_400,
            auth_failure_status: 401,
            // 2026-01-05T09:00:00Z, a Monday morning: an ordinary time to run a reorganisation.
            epoch_unix_secs: 1_767_603_600,
            rate_limit: RateLimitConfig::default(),
            faults: FaultConfig::default(),
            latency: Latency::default(),
            editors: None,
            conflict: ConflictStyle::default(),
            inactive_listing_limit: 10_000,
            record_timeline: false,
        }
    }
}

impl ServerConfig {
    /// Sets each OAuth client's budget to `limit` requests per 60-second window.
    pub fn with_rate_limit_per_minute(mut self, limit: u32) -> Self {
        self.rate_limit.per_client = ClientLimit::FixedWindow {
            limit,
            window_secs: 60,
        };
        self
    }

    /// Checks that probabilities are probabilities, windows are not empty and ranges are ordered.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rate = &self.rate_limit;
        match rate.per_client {
            ClientLimit::FixedWindow { window_secs: 0, .. } => {
                return Err(ConfigError::EmptyWindow("rate_limit.per_client"));
            }
            ClientLimit::Gcra { limit: 0, .. } | ClientLimit::Gcra { period_secs: 0, .. } => {
                return Err(ConfigError::EmptyWindow("rate_limit.per_client"));
            }
            _ => {}
        }
        if rate.endpoint_limits.iter().any(|l| l.window_secs == 0) {
            return Err(ConfigError::EmptyWindow("rate_limit.endpoint_limits"));
        }
        if rate.org_limit.is_some_and(|l| l.window_secs == 0) {
            return Err(ConfigError::EmptyWindow("rate_limit.org_limit"));
        }

        for storm in &rate.storms {
            probability("rate_limit.storms.refuse_fraction", storm.refuse_fraction)?;
            interval("rate_limit.storms", storm.start_secs, storm.end_secs)?;
            if storm.retry_after_min_secs > storm.retry_after_max_secs {
                return Err(ConfigError::Range("rate_limit.storms.retry_after"));
            }
        }
        if let Some(daily) = &rate.daily_limit
            && let Some(during) = daily.during
        {
            interval(
                "rate_limit.daily_limit.during",
                during.start_secs,
                during.end_secs,
            )?;
        }

        let faults = &self.faults;
        probability(
            "faults.server_error_probability",
            faults.server_error_probability,
        )?;
        probability("faults.burst_probability", faults.burst_probability)?;
        probability("faults.reset_probability", faults.reset_probability)?;
        probability(
            "faults.reset_after_apply_fraction",
            faults.reset_after_apply_fraction,
        )?;
        if faults.burst_min_ms > faults.burst_max_ms {
            return Err(ConfigError::Range("faults.burst"));
        }
        if !(500..=599).contains(&faults.server_error_status) {
            return Err(ConfigError::Range("faults.server_error_status"));
        }

        self.latency.validate()?;
        if let Some(editors) = &self.editors {
            probability("editors.fraction", editors.fraction)?;
            interval("editors", editors.start_secs, editors.end_secs)?;
        }
        Ok(())
    }
}

/// An OAuth client registered in the organisation (client-credentials grant).
///
/// Its `Debug` output leaves the secret out, so a logged configuration gives nothing away.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthClient {
    /// The client id, sent as the user part of HTTP Basic authentication.
    pub id: String,
    /// The client secret.
    pub secret: String,
    /// This client's token lifetime in seconds (Genesys allows 300 to 172800 per client).
    pub token_lifetime_secs: Option<u64>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .finish()
    }
}

impl Default for OAuthClient {
    /// The client the emulator's demo and tests log in with: id `gcbulk-emulator`, secret
    /// `emulator-secret`.
    fn default() -> Self {
        Self {
            id: "gcbulk-emulator".to_owned(),
            secret: "emulator-secret".to_owned(),
            token_lifetime_secs: None,
        }
    }
}

/// Rate limits, from the per-client budget to storms of unexplained 429s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The budget of each OAuth client, shared by all the tokens it was issued.
    pub per_client: ClientLimit,
    /// Whether answers announce the budget: `inin-ratelimit-count`, `inin-ratelimit-allowed` and
    /// `inin-ratelimit-reset` for a fixed window, `RateLimit-Remaining` for a GCRA limiter.
    pub headers: bool,
    /// Whether 429s carry `Retry-After` and the normalized code `too.many.requests.retry.after`
    /// (Genesys since November 2021); when false they carry neither, as before.
    pub retry_after: bool,
    /// Lower limits of their own for some endpoints, per OAuth client; never announced in
    /// headers, only felt as 429s.
    pub endpoint_limits: Vec<EndpointLimit>,
    /// One budget for the whole organisation, all clients together.
    pub org_limit: Option<WindowLimit>,
    /// A daily limit: once breached, every request is refused with a long `Retry-After`.
    pub daily_limit: Option<DailyLimit>,
    /// Intervals during which a share of requests is refused whatever the budget says.
    pub storms: Vec<StormWindow>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_client: ClientLimit::default(),
            headers: true,
            retry_after: true,
            endpoint_limits: Vec::new(),
            org_limit: None,
            daily_limit: None,
            storms: Vec::new(),
        }
    }
}

/// The budget of one OAuth client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientLimit {
    /// `limit` requests per fixed window of `window_secs`, the window starting at the first
    /// request after the previous one ended (Genesys: 300 per 60 s).
    FixedWindow {
        /// Requests allowed per window.
        limit: u32,
        /// Window length in seconds.
        window_secs: u64,
    },
    /// A generic cell rate algorithm: `limit` requests per `period_secs`, refilled evenly, with a
    /// burst of up to `limit` (Heroku's platform API: 4500 per hour).
    Gcra {
        /// Requests allowed per period, and the largest burst.
        limit: u32,
        /// Period length in seconds.
        period_secs: u64,
    },
    /// No per-client budget at all.
    Unlimited,
}

impl Default for ClientLimit {
    fn default() -> Self {
        Self::FixedWindow {
            limit: 300,
            window_secs: 60,
        }
    }
}

/// A fixed-window budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowLimit {
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length in seconds.
    pub window_secs: u64,
}

/// A limit of one endpoint's own, counted per OAuth client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointLimit {
    /// The endpoint it applies to.
    pub endpoint: Endpoint,
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length in seconds.
    pub window_secs: u64,
}

/// A daily limit, breached after a number of requests or during an interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DailyLimit {
    /// Requests the organisation may make before every further one is refused.
    pub after_requests: Option<u64>,
    /// An interval during which every request is refused.
    pub during: Option<Interval>,
    /// The `Retry-After` of these 429s, in seconds.
    pub retry_after_secs: u64,
}

impl Default for DailyLimit {
    fn default() -> Self {
        Self {
            after_requests: None,
            during: None,
            retry_after_secs: 3600,
        }
    }
}

/// An interval of virtual time, in seconds since the origin, end excluded.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// When it starts.
    pub start_secs: f64,
    /// When it ends.
    pub end_secs: f64,
}

impl Interval {
    pub(crate) fn contains(&self, now: Timestamp) -> bool {
        secs_to_timestamp(self.start_secs) <= now && now < secs_to_timestamp(self.end_secs)
    }
}

/// A 429 storm: for a while, a share of requests is refused with a short `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StormWindow {
    /// When the storm starts, in seconds of virtual time.
    pub start_secs: f64,
    /// When it ends.
    pub end_secs: f64,
    /// The share of requests refused meanwhile, 0 to 1.
    pub refuse_fraction: f64,
    /// The shortest `Retry-After` it answers, in seconds.
    pub retry_after_min_secs: u64,
    /// The longest.
    pub retry_after_max_secs: u64,
}

impl Default for StormWindow {
    fn default() -> Self {
        Self {
            start_secs: 0.0,
            end_secs: 60.0,
            refuse_fraction: 0.5,
            retry_after_min_secs: 1,
            retry_after_max_secs: 5,
        }
    }
}

impl StormWindow {
    pub(crate) fn contains(&self, now: Timestamp) -> bool {
        Interval {
            start_secs: self.start_secs,
            end_secs: self.end_secs,
        }
        .contains(now)
    }
}

/// Server errors and connection resets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// The chance that one request is answered with a server error.
    pub server_error_probability: f64,
    /// The status of those errors (503 by default; 500, 502 and 504 are also answered with a
    /// Genesys body).
    pub server_error_status: u16,
    /// The chance that a request starts a burst, during which every request gets a server error.
    pub burst_probability: f64,
    /// The shortest burst, in milliseconds.
    pub burst_min_ms: u64,
    /// The longest burst.
    pub burst_max_ms: u64,
    /// The chance that a connection is reset instead of answered.
    pub reset_probability: f64,
    /// Of those resets, the share that happens after the request took effect (the answer is
    /// lost, not the request): a retried PATCH then meets a newer version.
    pub reset_after_apply_fraction: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            server_error_probability: 0.0,
            server_error_status: 503,
            burst_probability: 0.0,
            burst_min_ms: 1000,
            burst_max_ms: 5000,
            reset_probability: 0.0,
            reset_after_apply_fraction: 0.0,
        }
    }
}

/// How long the server takes to answer, drawn afresh for each request.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always the same.
    Fixed {
        /// Milliseconds.
        ms: f64,
    },
    /// Evenly spread between two bounds.
    Uniform {
        /// The shortest, in milliseconds.
        min_ms: f64,
        /// The longest.
        max_ms: f64,
    },
    /// Log-normal, as measured latencies usually are: most answers near the median, a long tail.
    LogNormal {
        /// The median, in milliseconds.
        median_ms: f64,
        /// The standard deviation of the logarithm (0.5 is a moderate tail).
        sigma: f64,
        /// A cap on the tail, in milliseconds.
        max_ms: f64,
    },
}

impl Default for Latency {
    /// 50 to 190 ms, a mean of 120 ms: a users call as seen from the same continent.
    fn default() -> Self {
        Self::Uniform {
            min_ms: 50.0,
            max_ms: 190.0,
        }
    }
}

impl Latency {
    fn validate(&self) -> Result<(), ConfigError> {
        let ok = match *self {
            Self::Fixed { ms } => ms.is_finite() && ms >= 0.0,
            Self::Uniform { min_ms, max_ms } => {
                min_ms.is_finite() && max_ms.is_finite() && 0.0 <= min_ms && min_ms <= max_ms
            }
            Self::LogNormal {
                median_ms,
                sigma,
                max_ms,
            } => {
                median_ms.is_finite()
                    && median_ms > 0.0
                    && sigma.is_finite()
                    && sigma >= 0.0
                    && max_ms >= median_ms
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ConfigError::Range("latency"))
        }
    }
}

/// Other administrators editing users while a run goes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EditorsConfig {
    /// The share of users edited once each, 0 to 1.
    pub fraction: f64,
    /// The edits happen at random times from here...
    pub start_secs: f64,
    /// ...to here, in seconds of virtual time.
    pub end_secs: f64,
    /// What each edit changes.
    pub edit: EditorEdit,
}

impl Default for EditorsConfig {
    fn default() -> Self {
        Self {
            fraction: 0.05,
            start_secs: 0.0,
            end_secs: 600.0,
            edit: EditorEdit::SetTitle("Acting Team Lead".to_owned()),
        }
    }
}

/// What a concurrent edit changes; each one bumps the user's version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditorEdit {
    /// Something the model does not hold (skills, say): only the version moves.
    VersionOnly,
    /// The title becomes this.
    SetTitle(String),
}

/// How a PATCH with a stale `version` is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStyle {
    /// 409, code `general.conflict`: what the users API answers.
    #[default]
    Conflict,
    /// 400 whose message says the version "does not match the current version", which Genesys'
    /// Terraform provider also treats as a conflict.
    BadRequest,
}

/// A configuration that cannot describe a server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A probability or fraction outside 0 to 1.
    #[error("{0} must be between 0 and 1")]
    Probability(&'static str),
    /// A rate limit counted over no time at all.
    #[error("{0} has an empty window")]
    EmptyWindow(&'static str),
    /// An interval that ends before it starts or starts before the origin.
    #[error("{0} ends before it starts")]
    Interval(&'static str),
    /// A minimum above its maximum, or a value out of its range.
    #[error("{0} is out of range")]
    Range(&'static str),
}

fn probability(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Probability(field))
    }
}

fn interval(field: &'static str, start: f64, end: f64) -> Result<(), ConfigError> {
    if start.is_finite() && end.is_finite() && 0.0 <= start && start <= end {
        Ok(())
    } else {
        Err(ConfigError::Interval(field))
    }
}

/// Seconds of virtual time as a [`Timestamp`]; negative or absurd values clamp to the ends.
pub(crate) fn secs_to_timestamp(secs: f64) -> Timestamp {
    if secs.is_nan() || secs <= 0.0 {
        return Timestamp::ZERO;
    }
    Duration::try_from_secs_f64(secs).map_or(Timestamp::FAR_FUTURE, Timestamp::from_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_genesys_as_usual() {
        let config = ServerConfig::default();
        assert_eq!(
            config.rate_limit.per_client,
            ClientLimit::FixedWindow {
                limit: 300,
                window_secs: 60
            }
        );
        assert!(config.rate_limit.headers && config.rate_limit.retry_after);
        assert_eq!(config.token_lifetime_secs, 86_400);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn a_scenario_names_only_what_it_changes() {
        let json = r#"{
            "rate_limit": {
                "per_client": {"kind": "fixed_window", "limit": 100, "window_secs": 60},
                "storms": [{"start_secs": 10, "end_secs": 20, "refuse_fraction": 0.9}]
            },
            "latency": {"kind": "fixed", "ms": 5},
            "editors": {"fraction": 0.1, "edit": "version_only"}
        }"#;
        let config: ServerConfig = serde_json::from_str(json).unwrap();

        assert_eq!(config.rate_limit.storms[0].retry_after_max_secs, 5);
        assert!(config.rate_limit.headers);
        assert_eq!(config.latency, Latency::Fixed { ms: 5.0 });
        assert_eq!(config.editors.unwrap().edit, EditorEdit::VersionOnly);
    }

    #[test]
    fn a_misspelt_field_is_refused() {
        let result = serde_json::from_str::<ServerConfig>(r#"{"rate_limits": {}}"#);
        assert!(result.is_err());
    }

    #[test]
    fn validation_names_the_bad_field() {
        let mut config = ServerConfig::default();
        config.faults.reset_probability = 1.5;
        assert_eq!(
            config.validate(),
            Err(ConfigError::Probability("faults.reset_probability"))
        );

        let config = ServerConfig::default().with_rate_limit_per_minute(10);
        assert_eq!(config.validate(), Ok(()));

        let config = ServerConfig {
            latency: Latency::Uniform {
                min_ms: 9.0,
                max_ms: 1.0,
            },
            ..ServerConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::Range("latency")));
    }

    #[test]
    fn a_logged_client_shows_no_secret() {
        let shown = format!("{:?}", ServerConfig::default());
        assert!(shown.contains("gcbulk-emulator"));
        assert!(!shown.contains("emulator-secret"), "{shown}");
    }

    #[test]
    fn seconds_convert_and_clamp() {
        assert_eq!(secs_to_timestamp(1.5), Timestamp::from_millis(1500));
        assert_eq!(secs_to_timestamp(-3.0), Timestamp::ZERO);
        assert_eq!(secs_to_timestamp(f64::INFINITY), Timestamp::FAR_FUTURE);
    }
}
