//! The model: Genesys Cloud as a sans-IO state machine in virtual time.
//!
//! A [`Server`] holds an organisation's users, the OAuth clients and tokens, every rate-limit
//! window, and the dice for faults and latency, all seeded. A harness drives it with two calls
//! and reads its wishes with one:
//!
//! - [`Server::handle_request`] at the time a request arrives; the [`Reply`] says what to answer
//!   and how long the server takes, or that the connection is reset;
//! - [`Server::handle_timeout`] when [`Server::poll_timeout`] says background behaviour
//!   (concurrent editors) wants to run. `handle_request` catches up on it by itself, so a
//!   harness that only cares about answers may skip this.
//!
//! ```
//! use bytes::Bytes;
//! use gcbulk_core::Timestamp;
//! use gcbulk_sim::model::{ClientId, Reply, Server, ServerConfig, User};
//!
//! let users = vec![User::new("u1", "Ada Lovelace", "ada@example.com")];
//! let mut server = Server::new(ServerConfig::default(), users, 42);
//!
//! // The default OAuth client: "gcbulk-emulator" with secret "emulator-secret".
//! let login = http::Request::post("/oauth/token")
//!     .header("authorization", "Basic Z2NidWxrLWVtdWxhdG9yOmVtdWxhdG9yLXNlY3JldA==")
//!     .body(Bytes::from_static(b"grant_type=client_credentials"))
//!     .unwrap();
//! let reply = server.handle_request(Timestamp::ZERO, ClientId(0), login);
//! let body: serde_json::Value = serde_json::from_slice(reply.response().unwrap().body()).unwrap();
//! let token = body["access_token"].as_str().unwrap();
//!
//! // Deliver each reply `latency` after its request: here the next request waits for it.
//! let now = Timestamp::ZERO + reply.delay();
//! let patch = http::Request::patch("/api/v2/users/u1")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Bytes::from_static(br#"{"title":"Analyst","version":1}"#))
//!     .unwrap();
//! match server.handle_request(now, ClientId(0), patch) {
//!     Reply::Respond { response, latency } => assert_eq!(response.status(), 200),
//!     Reply::Reset { after } => unreachable!("the default configuration has no faults"),
//! }
//! assert_eq!(server.user("u1").unwrap().version, 2);
//! ```

mod config;
mod dice;
mod presets;
mod ratelimit;
mod server;
mod stats;
mod user;
mod wire;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use config::{
    ClientLimit, ConfigError, ConflictStyle, DailyLimit, EditorEdit, EditorsConfig, EndpointLimit,
    FaultConfig, Interval, Latency, OAuthClient, RateLimitConfig, ServerConfig, StormWindow,
    WindowLimit,
};
pub use presets::{FaultPreset, UnknownPreset};
pub use server::{Reply, Server};
pub use stats::{ServerStats, ThrottleCause, TimelineEvent};
pub use user::{
    Address, Division, LoadUsersError, User, UserRef, load_users_file, load_users_jsonl,
};

/// The connection a request came on, numbered by the harness.
///
/// The server does not key anything by it (budgets belong to OAuth clients); it marks the
/// timeline so a plot can tell the connections apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// What a request asks for, as the server counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /oauth/token`.
    Token,
    /// `GET /api/v2/users`.
    ListUsers,
    /// `GET /api/v2/users/{id}`.
    GetUser,
    /// `PATCH /api/v2/users/{id}`.
    PatchUser,
    /// `POST /api/v2/users/search`, and `GET /api/v2/users/search?q64=` for later pages.
    SearchUsers,
    /// Anything else: answered 404 once authenticated.
    Other,
}

impl Endpoint {
    /// The endpoint a method and path ask for (the path without its query).
    pub fn route(method: &http::Method, path: &str) -> Self {
        use http::Method;

        let path = path.strip_suffix('/').unwrap_or(path);
        if path == "/oauth/token" {
            return if method == Method::POST {
                Self::Token
            } else {
                Self::Other
            };
        }
        let Some(rest) = path.strip_prefix("/api/v2/users") else {
            return Self::Other;
        };
        match (method, rest) {
            (&Method::GET, "") => Self::ListUsers,
            (&Method::POST | &Method::GET, "/search") => Self::SearchUsers,
            (method, rest) => {
                let id = rest.strip_prefix('/').unwrap_or("");
                let single = !id.is_empty() && !id.contains('/') && id != "search";
                match *method {
                    Method::GET if single => Self::GetUser,
                    Method::PATCH if single => Self::PatchUser,
                    _ => Self::Other,
                }
            }
        }
    }

    /// A short name, as in stats and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::ListUsers => "list_users",
            Self::GetUser => "get_user",
            Self::PatchUser => "patch_user",
            Self::SearchUsers => "search_users",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    #[test]
    fn paths_route_to_endpoints() {
        let route = |m: Method, p: &str| Endpoint::route(&m, p);
        assert_eq!(route(Method::POST, "/oauth/token"), Endpoint::Token);
        assert_eq!(route(Method::GET, "/oauth/token"), Endpoint::Other);
        assert_eq!(route(Method::GET, "/api/v2/users"), Endpoint::ListUsers);
        assert_eq!(route(Method::GET, "/api/v2/users/abc"), Endpoint::GetUser);
        assert_eq!(
            route(Method::PATCH, "/api/v2/users/abc"),
            Endpoint::PatchUser
        );
        assert_eq!(
            route(Method::POST, "/api/v2/users/search"),
            Endpoint::SearchUsers
        );
        assert_eq!(
            route(Method::GET, "/api/v2/users/search"),
            Endpoint::SearchUsers
        );
        assert_eq!(route(Method::PUT, "/api/v2/users/abc"), Endpoint::Other);
        assert_eq!(
            route(Method::PATCH, "/api/v2/users/bulk/x"),
            Endpoint::Other
        );
        assert_eq!(route(Method::GET, "/api/v2/usersx"), Endpoint::Other);
    }
}
