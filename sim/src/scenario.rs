//! Named scenarios: a server configuration, a generated organisation, the change rows and how
//! many clients share the work.
//!
//! A [`Scenario`] is plain data (serde), so one can also come from a JSON file: every field has a
//! default, and a file names only what it changes. [`list`] gives the presets the comparison and
//! the benchmarks run; [`by_name`] finds one.
//!
//! A scenario may also carry a recorded trace ([`Replay`]): statuses and headers a real server
//! answered, played back in order on top of the model, so a storm someone met can be met again.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::Timestamp;
use gcbulk_core::change::{ChangeRow, Desired, Source, UserKey};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::drive::Intercept;
use crate::model::{
    ClientLimit, DailyLimit, EditorEdit, EditorsConfig, Endpoint, EndpointLimit, Latency,
    ServerConfig, StormWindow, User,
};
use crate::model::{Reply, Server};

/// What one scenario runs: the server, the organisation, the work and who does it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A short name, as on the command line.
    pub name: String,
    /// One sentence saying what it shows.
    pub description: String,
    /// How the modelled Genesys Cloud behaves.
    pub server: ServerConfig,
    /// The organisation and how much of it changes.
    pub org: OrgSpec,
    /// Clients (separate runs, one OAuth client) sharing the work, each with an equal share.
    pub clients: usize,
    /// Concurrent requests each baseline client makes (its worker threads).
    pub workers: usize,
    /// When a strategy that never gives up is stopped, in seconds of virtual time: what is left
    /// then counts as failed, as if someone pressed Ctrl-C.
    pub horizon_secs: f64,
    /// Answers recorded from a real server, played back over the model.
    pub replay: Option<Replay>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "custom".to_owned(),
            description: String::new(),
            server: ServerConfig::default(),
            org: OrgSpec::default(),
            clients: 1,
            workers: 5,
            horizon_secs: 86_400.0,
            replay: None,
        }
    }
}

/// The organisation a scenario generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgSpec {
    /// Users in the organisation.
    pub users: usize,
    /// Users whose rows ask for a change (the first ones); the other users are left alone.
    pub changed: usize,
}

impl Default for OrgSpec {
    fn default() -> Self {
        Self {
            users: 10_000,
            changed: 10_000,
        }
    }
}

/// A scenario that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// No preset has that name and no file has that path.
    #[error("no scenario named {0:?} (try `gcbulk sim list`, or give a JSON file)")]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read the scenario file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a scenario.
    #[error("not a scenario: {0}")]
    Parse(#[from] serde_json::Error),
    /// The server configuration is invalid.
    #[error("invalid server configuration: {0}")]
    Config(#[from] crate::model::ConfigError),
    /// A count is out of its range, or more users change than exist.
    #[error("{0}")]
    Shape(&'static str),
    /// What is wrong with a scenario file, with its path.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        error: Box<ScenarioError>,
    },
}

impl ScenarioError {
    /// Whether the text is not a scenario at all (it may then be something else, a trace).
    pub fn is_parse(&self) -> bool {
        match self {
            Self::Parse(_) => true,
            Self::InFile { error, .. } => error.is_parse(),
            _ => false,
        }
    }

    fn in_file(self, path: &Path) -> Self {
        Self::InFile {
            path: path.to_owned(),
            error: Box::new(self),
        }
    }
}

/// The most users a scenario's organisation may have: memory grows by about 5 KiB a user.
pub const MAX_USERS: usize = 200_000;
/// The most clients, and the most workers a client, a scenario may have.
pub const MAX_CLIENTS: usize = 64;

impl Scenario {
    /// Reads a scenario from JSON; fields left out keep their defaults.
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = serde_json::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        std::fs::read_to_string(path)
            .map_err(ScenarioError::from)
            .and_then(|text| Self::from_json(&text))
            .map_err(|error| error.in_file(path))
    }

    /// Checks that the scenario describes something that can run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.server.validate()?;
        if self.clients == 0 || self.workers == 0 {
            return Err(ScenarioError::Shape(
                "clients and workers must be at least 1",
            ));
        }
        if self.clients > MAX_CLIENTS || self.workers > MAX_CLIENTS {
            return Err(ScenarioError::Shape(
                "clients and workers may be at most 64 each",
            ));
        }
        if self.org.users > MAX_USERS {
            return Err(ScenarioError::Shape(
                "the organisation may have at most 200,000 users",
            ));
        }
        if self.org.changed > self.org.users {
            return Err(ScenarioError::Shape(
                "more users change than the organisation has",
            ));
        }
        if !(self.horizon_secs.is_finite() && self.horizon_secs > 0.0) {
            return Err(ScenarioError::Shape(
                "the horizon must be a positive number of seconds",
            ));
        }
        Ok(())
    }

    /// The organisation, before the run: users `u00000`, `u00001`, ... at assorted versions.
    pub fn users(&self) -> Vec<User> {
        (0..self.org.users)
            .map(|index| {
                let mut user = User::new(
                    user_id(index),
                    format!("Agent {index}"),
                    format!("agent{index}@acme.example"),
                );
                user.title = Some("Agent".to_owned());
                user.department = Some("Support".to_owned());
                // Versions differ from user to user, as they do in a real organisation.
                user.version = 1 + (index as u64 * 7) % 5;
                user
            })
            .collect()
    }

    /// The change rows of each client: the changed users dealt out in equal, contiguous shares.
    ///
    /// Every row is keyed by id and moves its user to another title and department, so each one
    /// needs a PATCH.
    pub fn rows(&self) -> Vec<Vec<ChangeRow>> {
        let clients = self.clients.max(1);
        let share = self.org.changed.div_ceil(clients);
        (0..clients)
            .map(|client| {
                let first = (client * share).min(self.org.changed);
                let last = ((client + 1) * share).min(self.org.changed);
                (first..last)
                    .map(|index| ChangeRow {
                        source: Source {
                            file: format!("{}-{client}.csv", self.name).into(),
                            line: (index - first) as u64 + 2,
                        },
                        key: UserKey::Id(user_id(index)),
                        desired: desired(index),
                    })
                    .collect()
            })
            .collect()
    }

    /// The row `rows` would give user number `index`, for checking the final state.
    pub fn desired(index: usize) -> Desired {
        desired(index)
    }

    /// The server at the start of a run, its dice drawn from `seed`.
    pub fn server(&self, seed: u64) -> Server {
        Server::new(self.server.clone(), self.users(), seed)
    }

    /// The least number of requests the job needs: one batched read per hundred rows of each
    /// client, and one PATCH per changed user. Tokens are not rate limited.
    pub fn requests_needed(&self) -> u64 {
        let reads: usize = self
            .rows()
            .iter()
            .map(|rows| rows.len().div_ceil(gcbulk_core::genesys::MAX_BATCH))
            .sum();
        (reads + self.org.changed) as u64
    }

    /// The shortest time in which the server admits what the job needs, in seconds.
    ///
    /// Server errors still count against the budget, so the job needs `1 / (1 - p)` times as
    /// many requests when a share `p` of them fails; 429 storms and the daily limit are ignored
    /// (the daily limit caps what can be done at all: the bound is then for what it allows). A
    /// fixed window admits `limit` at once, so `n` requests take `ceil(n / limit) - 1` whole
    /// windows; a GCRA admits its burst at once and the rest at its rate.
    pub fn lower_bound_secs(&self) -> f64 {
        let rate = &self.server.rate_limit;
        let error_share = self.server.faults.server_error_probability.min(0.99);
        let mut needed = self.requests_needed() as f64 / (1.0 - error_share);
        if let Some(daily) = rate.daily_limit
            && let Some(after) = daily.after_requests
        {
            needed = needed.min(after as f64);
        }
        let patches = self.org.changed as f64 / (1.0 - error_share);

        let mut bound = window_bound(needed, rate.per_client);
        for limit in &rate.endpoint_limits {
            let count = match limit.endpoint {
                Endpoint::PatchUser => patches,
                _ => needed - patches,
            };
            let per_client = count / self.clients.max(1) as f64;
            let window = ClientLimit::FixedWindow {
                limit: limit.limit,
                window_secs: limit.window_secs,
            };
            bound = bound.max(window_bound(per_client, window));
        }
        if let Some(org) = rate.org_limit {
            let window = ClientLimit::FixedWindow {
                limit: org.limit,
                window_secs: org.window_secs,
            };
            bound = bound.max(window_bound(needed, window));
        }
        bound
    }

    /// The replay, as an intercept for the harness; `None` when the scenario has none.
    pub fn intercept(&self) -> Option<Intercept> {
        self.replay.clone().map(Replay::into_intercept)
    }
}

/// The id of user number `index`.
pub fn user_id(index: usize) -> String {
    format!("u{index:05}")
}

fn desired(index: usize) -> Desired {
    Desired {
        title: Some(
            if index.is_multiple_of(3) {
                "Team Lead"
            } else {
                "Senior Agent"
            }
            .to_owned(),
        ),
        department: Some(format!("Support {}", index % 7)),
        ..Desired::default()
    }
}

/// Seconds to get `n` requests admitted under `limit`.
fn window_bound(n: f64, limit: ClientLimit) -> f64 {
    match limit {
        ClientLimit::FixedWindow { limit, window_secs } => {
            let windows = (n / f64::from(limit.max(1))).ceil() - 1.0;
            windows.max(0.0) * window_secs as f64
        }
        ClientLimit::Gcra { limit, period_secs } => {
            let rate = f64::from(limit.max(1)) / period_secs.max(1) as f64;
            (n - f64::from(limit)).max(0.0) / rate
        }
        ClientLimit::Unlimited => 0.0,
    }
}

/// The names and one-line descriptions of the presets, in the order [`list`] gives them.
pub fn names() -> Vec<(String, String)> {
    list()
        .into_iter()
        .map(|scenario| (scenario.name, scenario.description))
        .collect()
}

/// Every preset scenario.
pub fn list() -> Vec<Scenario> {
    vec![
        steady(),
        storm(),
        shared(),
        endpoint_limit(),
        no_headers(),
        editors(),
        daily_limit(),
        heroku(),
    ]
}

/// The preset with this name.
pub fn by_name(name: &str) -> Option<Scenario> {
    list()
        .into_iter()
        .find(|scenario| scenario.name.eq_ignore_ascii_case(name.trim()))
}

/// A preset by name, or else a scenario file by path.
pub fn find(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some(scenario) = by_name(name_or_path) {
        return Ok(scenario);
    }
    let path = Path::new(name_or_path);
    if path.is_file() {
        return Scenario::load(path);
    }
    Err(ScenarioError::Unknown(name_or_path.to_owned()))
}

/// 10,000 changed users, one client, Genesys' default 300 requests a minute.
pub fn steady() -> Scenario {
    Scenario {
        name: "steady".to_owned(),
        description: "10,000 changed users, one client, 300 requests a minute".to_owned(),
        ..Scenario::default()
    }
}

/// `steady`, with three minutes in which four requests in five are refused with a `Retry-After`
/// of 1 to 5 s, and 2% of requests answered 503 throughout.
pub fn storm() -> Scenario {
    let mut scenario = steady();
    scenario.name = "storm".to_owned();
    scenario.description =
        "steady, plus a 3-minute storm refusing 80% with Retry-After 1-5 s, and 2% 503s".to_owned();
    scenario.server.rate_limit.storms.push(StormWindow {
        start_secs: 600.0,
        end_secs: 780.0,
        refuse_fraction: 0.8,
        retry_after_min_secs: 1,
        retry_after_max_secs: 5,
    });
    scenario.server.faults.server_error_probability = 0.02;
    scenario.server.faults.server_error_status = 503;
    scenario
}

/// Four clients with a quarter of the users each, on one OAuth client's budget.
pub fn shared() -> Scenario {
    Scenario {
        name: "shared".to_owned(),
        description: "4 clients on one OAuth client's 300 a minute, a quarter of the users each"
            .to_owned(),
        clients: 4,
        ..Scenario::default()
    }
}

/// PATCH limited to 100 a minute, which only its 429s reveal.
pub fn endpoint_limit() -> Scenario {
    let mut scenario = steady();
    scenario.name = "endpoint-limit".to_owned();
    scenario.description = "PATCH limited to 100 a minute, announced only by 429s".to_owned();
    scenario
        .server
        .rate_limit
        .endpoint_limits
        .push(EndpointLimit {
            endpoint: Endpoint::PatchUser,
            limit: 100,
            window_secs: 60,
        });
    scenario
}

/// Genesys before November 2021: no rate-limit headers, 429s without `Retry-After`.
pub fn no_headers() -> Scenario {
    let mut scenario = steady();
    scenario.name = "no-headers".to_owned();
    scenario.description = "no rate-limit headers, 429s without Retry-After".to_owned();
    scenario.server.rate_limit.headers = false;
    scenario.server.rate_limit.retry_after = false;
    scenario
}

/// 5% of the users are edited by someone else while the run goes on.
pub fn editors() -> Scenario {
    let mut scenario = steady();
    scenario.name = "editors".to_owned();
    scenario.description = "5% of users edited by someone else during the run".to_owned();
    scenario.server.editors = Some(EditorsConfig {
        fraction: 0.05,
        start_secs: 0.0,
        end_secs: 2000.0,
        edit: EditorEdit::VersionOnly,
    });
    scenario
}

/// The organisation's daily limit is reached halfway: every request after 5,000 is refused with
/// `Retry-After: 3600`. A good run stops and can be resumed; it does not wait.
pub fn daily_limit() -> Scenario {
    let mut scenario = steady();
    scenario.name = "daily-limit".to_owned();
    scenario.description =
        "a daily limit after 5,000 requests (Retry-After 3600): stop resumably".to_owned();
    scenario.server.rate_limit.daily_limit = Some(DailyLimit {
        after_requests: Some(5000),
        during: None,
        retry_after_secs: 3600,
    });
    scenario
}

/// The rate_throttle_client set-up applied to a bulk update: a GCRA limit of 4,500 an hour that
/// only `RateLimit-Remaining` announces, 429s without `Retry-After`, two processes of five
/// workers each.
pub fn heroku() -> Scenario {
    let mut server = ServerConfig::default();
    server.rate_limit.per_client = ClientLimit::Gcra {
        limit: 4500,
        period_secs: 3600,
    };
    server.rate_limit.retry_after = false;
    server.latency = Latency::Uniform {
        min_ms: 20.0,
        max_ms: 80.0,
    };
    Scenario {
        name: "heroku".to_owned(),
        description:
            "GCRA 4,500 an hour announced by RateLimit-Remaining, 2 processes of 5 workers"
                .to_owned(),
        server,
        org: OrgSpec {
            users: 6000,
            changed: 6000,
        },
        clients: 2,
        workers: 5,
        ..Scenario::default()
    }
}

/// A recorded exchange: a status and headers a server answered, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// Seconds since the recording started.
    pub at_s: f64,
    /// The status answered.
    pub status: u16,
    /// Its headers, by lower-case name.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A recorded trace, played back as server behaviour.
///
/// Entries are used in order, each no earlier than its offset: the next request at or after an
/// entry's time takes it. An entry with a success status lets the model answer (so the users'
/// data stays consistent); any other status is answered as recorded, with its headers and a
/// Genesys error body. Requests that find no entry due are answered by the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Replay {
    /// The recorded answers, in order.
    pub entries: Vec<Recorded>,
}

impl Replay {
    /// Reads a trace: a JSON list of `{"at_s": 12.5, "status": 429, "headers": {...}}`.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The replay as a harness intercept.
    pub fn into_intercept(self) -> Intercept {
        let mut entries: VecDeque<Recorded> = self.entries.into();
        Box::new(
            move |_server: &mut Server, now: Timestamp, request: &Request<Bytes>| {
                let due = entries
                    .front()
                    .is_some_and(|entry| now.as_secs_f64() >= entry.at_s);
                if !due
                    || Endpoint::route(request.method(), request.uri().path()) == Endpoint::Token
                {
                    return None;
                }
                let entry = entries.pop_front()?;
                if (200..300).contains(&entry.status) {
                    return None;
                }
                Some(recorded_reply(&entry))
            },
        )
    }
}

fn recorded_reply(entry: &Recorded) -> Reply {
    let body = serde_json::json!({
        "message": "Replayed from a recorded trace.",
        "code": if entry.status == 429 { "too.many.requests" } else { "replayed" },
        "status": entry.status,
        "contextId": "replay",
        "details": [],
        "errors": [],
    });
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(entry.status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &entry.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    Reply::Respond {
        response,
        latency: Duration::from_millis(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_named_uniquely() {
        let presets = list();
        for scenario in &presets {
            scenario.validate().unwrap();
            assert_eq!(by_name(&scenario.name).as_ref(), Some(scenario));
        }
        let mut names: Vec<_> = presets.iter().map(|s| s.name.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn rows_are_dealt_out_in_shares() {
        let scenario = shared();
        let rows = scenario.rows();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.len() == 2500));
        assert_eq!(rows[1][0].key, UserKey::Id("u02500".into()));
        assert_eq!(scenario.requests_needed(), 4 * 25 + 10_000);
    }

    #[test]
    fn the_lower_bound_counts_whole_windows() {
        // 10,100 requests at 300 a window fill 34 windows: 33 of them must pass first.
        assert_eq!(steady().lower_bound_secs(), 33.0 * 60.0);
        // 10,000 PATCHes at 100 a window: 99 windows.
        assert_eq!(endpoint_limit().lower_bound_secs(), 99.0 * 60.0);
        // 6,060 requests: 4,500 at once, 1,560 at 1.25 a second.
        assert!((heroku().lower_bound_secs() - 1248.0).abs() < 1e-9);
    }

    #[test]
    fn a_scenario_file_names_only_what_it_changes() {
        let json = r#"{
            "name": "tiny",
            "org": {"users": 50, "changed": 20},
            "server": {"rate_limit": {"headers": false}},
            "replay": [{"at_s": 1.5, "status": 429, "headers": {"retry-after": "2"}}]
        }"#;
        let scenario = Scenario::from_json(json).unwrap();
        assert_eq!(scenario.clients, 1);
        assert!(!scenario.server.rate_limit.headers);
        assert_eq!(scenario.rows()[0].len(), 20);
        assert_eq!(scenario.replay.unwrap().entries[0].status, 429);

        let bad = r#"{"org": {"users": 5, "changed": 6}}"#;
        assert!(matches!(
            Scenario::from_json(bad),
            Err(ScenarioError::Shape(_))
        ));
    }

    #[test]
    fn a_replay_answers_in_order_once_each_entry_is_due() {
        let replay = Replay::from_json(
            r#"[{"at_s": 1.0, "status": 200}, {"at_s": 2.0, "status": 429,
                "headers": {"retry-after": "7"}}]"#,
        )
        .unwrap();
        let mut intercept = replay.into_intercept();
        let mut server = Server::new(ServerConfig::default(), Vec::new(), 1);
        let get = || Request::get("/api/v2/users/u1").body(Bytes::new()).unwrap();

        // Too early for the first entry; then the first lets the model answer.
        assert!(intercept(&mut server, Timestamp::ZERO, &get()).is_none());
        assert!(intercept(&mut server, Timestamp::from_secs(1), &get()).is_none());
        // The 429 is not due before 2 s, then is answered as recorded, once.
        assert!(intercept(&mut server, Timestamp::from_millis(1500), &get()).is_none());
        let reply = intercept(&mut server, Timestamp::from_secs(3), &get()).unwrap();
        let response = reply.response().unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        assert!(intercept(&mut server, Timestamp::from_secs(4), &get()).is_none());
    }
}
