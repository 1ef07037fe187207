//! Cross-crate integration tests for gcbulk; the tests live in `tests/`. This library holds what
//! they share: a workflow run against the simulated Genesys Cloud in virtual time.

pub mod fuzz;

use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::change::ChangeRow;
use gcbulk_core::genesys::{Credentials, RowReport, Secret, UserUpdate, WorkflowConfig};
use gcbulk_sim::drive::Harness;
use gcbulk_sim::model::{Reply, Server, ServerConfig, User};
use http::Response;

/// The API base the tests pretend to talk to; the model routes by path only.
pub const API: &str = "https://api.mypurecloud.com";
/// The login base.
pub const LOGIN: &str = "https://login.mypurecloud.com";

/// The model's default OAuth client.
pub fn credentials() -> Credentials {
    Credentials {
        client_id: "gcbulk-emulator".into(),
        client_secret: Secret::new("emulator-secret"),
    }
}

/// Workflow settings against the model.
pub fn workflow_config() -> WorkflowConfig {
    WorkflowConfig::new(API, LOGIN, credentials())
}

/// A harness with one gcbulk client applying `rows` with `config`.
pub fn harness(
    server: Server,
    config: WorkflowConfig,
    rows: Vec<ChangeRow>,
    seed: u64,
) -> Harness<RowReport> {
    let mut harness = Harness::new(server);
    let update = UserUpdate::new(config, rows, seed);
    harness.add_client(Box::new(update), gcbulk_core::Timestamp::ZERO);
    harness
}

/// A server over `users` with the default (Genesys-like) behaviour and a fixed latency, so traces
/// read simply.
pub fn server(users: Vec<User>) -> Server {
    let config = ServerConfig {
        latency: gcbulk_sim::model::Latency::Fixed { ms: 100.0 },
        ..ServerConfig::default()
    };
    Server::new(config, users, 7)
}

/// A canned answer, as an intercept returns it.
pub fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder
        .body(Bytes::from(body.to_owned()))
        .expect("a valid canned response");
    Reply::Respond {
        response,
        latency: Duration::from_millis(100),
    }
}
