//! Named fault presets, for the emulator's command line and quick scenarios.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Endpoint;
use super::config::{DailyLimit, EditorsConfig, EndpointLimit, ServerConfig, StormWindow};

/// A named way for the server to misbehave, applied on top of a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultPreset {
    /// Genesys on a good day.
    None,
    /// Two 429 storms: half the requests refused from 30 s to 90 s, nine in ten from 150 s to
    /// 170 s, each with a `Retry-After` of 1 to 5 s.
    Storm,
    /// 1% of requests answer 503, bursts of 503s lasting 1 to 5 s, and 0.5% of connections
    /// reset (half of them after the change was made).
    Flaky,
    /// 5% of users are edited by someone else during the first ten minutes.
    Editors,
    /// Genesys before November 2021: no rate-limit headers, 429s without `Retry-After`.
    NoHeaders,
    /// `PATCH /api/v2/users/{id}` limited to 100 a minute per client, unannounced.
    EndpointLimit,
    /// After 1000 requests, every request answers 429 with `Retry-After: 3600`.
    DailyLimit,
}

impl FaultPreset {
    /// Every preset, in the order the help text lists them.
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Storm,
        Self::Flaky,
        Self::Editors,
        Self::NoHeaders,
        Self::EndpointLimit,
        Self::DailyLimit,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Storm => "storm",
            Self::Flaky => "flaky",
            Self::Editors => "editors",
            Self::NoHeaders => "no-headers",
            Self::EndpointLimit => "endpoint-limit",
            Self::DailyLimit => "daily-limit",
        }
    }

    /// Changes `config` to misbehave this way, leaving everything else as it was.
    pub fn apply(self, config: &mut ServerConfig) {
        let faults = &mut config.faults;
        let rate = &mut config.rate_limit;
        match self {
            Self::None => {}
            Self::Storm => {
                rate.storms.push(StormWindow {
                    start_secs: 30.0,
                    end_secs: 90.0,
                    refuse_fraction: 0.5,
                    ..StormWindow::default()
                });
                rate.storms.push(StormWindow {
                    start_secs: 150.0,
                    end_secs: 170.0,
                    refuse_fraction: 0.9,
                    ..StormWindow::default()
                });
            }
            Self::Flaky => {
                faults.server_error_probability = 0.01;
                faults.server_error_status = 503;
                faults.burst_probability = 0.002;
                faults.burst_min_ms = 1000;
                faults.burst_max_ms = 5000;
                faults.reset_probability = 0.005;
                faults.reset_after_apply_fraction = 0.5;
            }
            Self::Editors => config.editors = Some(EditorsConfig::default()),
            Self::NoHeaders => {
                rate.headers = false;
                rate.retry_after = false;
            }
            Self::EndpointLimit => rate.endpoint_limits.push(EndpointLimit {
                endpoint: Endpoint::PatchUser,
                limit: 100,
                window_secs: 60,
            }),
            Self::DailyLimit => {
                rate.daily_limit = Some(DailyLimit {
                    after_requests: Some(1000),
                    ..DailyLimit::default()
                });
            }
        }
    }
}

impl fmt::Display for FaultPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultPreset {
    type Err = UnknownPreset;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|preset| preset.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownPreset(name.to_owned()))
    }
}

/// A preset name that is not one of [`FaultPreset::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault preset {0:?}: expected none, storm, flaky, editors, no-headers, \
     endpoint-limit or daily-limit"
)]
pub struct UnknownPreset(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for preset in FaultPreset::ALL {
            assert_eq!(preset.name().parse(), Ok(preset));
        }
        assert!("hurricane".parse::<FaultPreset>().is_err());
    }

    #[test]
    fn every_preset_gives_a_valid_configuration() {
        for preset in FaultPreset::ALL {
            let mut config = ServerConfig::default();
            preset.apply(&mut config);
            assert_eq!(config.validate(), Ok(()), "{preset}");
        }
    }
}
