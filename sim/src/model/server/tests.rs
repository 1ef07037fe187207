//! One test per rule of the modelled API.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use gcbulk_core::Timestamp;
use gcbulk_core::change::UserState;
use http::{Method, Request, Response};
use serde_json::{Value, json};

use super::*;
use crate::model::config::secs_to_timestamp;
use crate::model::{
    Address, ClientLimit, ConflictStyle, DailyLimit, EditorsConfig, EndpointLimit, Interval,
    OAuthClient, StormWindow, ThrottleCause, UserRef, WindowLimit,
};

const CLIENT: ClientId = ClientId(0);

fn org() -> Vec<User> {
    let mut users: Vec<User> = (0..40)
        .map(|i| {
            User::new(
                format!("u{i}"),
                format!("User {i}"),
                format!("User{i}@Example.com"),
            )
        })
        .collect();
    users[1].title = Some("Agent".into());
    users[1].manager = Some(UserRef { id: "u0".into() });
    users[1].addresses = vec![
        Address {
            address: Some("+1 317 555 0100".into()),
            display: None,
            media_type: "PHONE".into(),
            kind: "WORK".into(),
            extension: Some("100".into()),
            country_code: None,
        },
        Address {
            address: Some("+1 317 555 0199".into()),
            display: None,
            media_type: "PHONE".into(),
            kind: "MOBILE".into(),
            extension: None,
            country_code: None,
        },
    ];
    for user in &mut users[30..35] {
        user.state = UserState::Inactive;
    }
    users[35].state = UserState::Deleted;
    users
}

/// A server with a logged-in client, and a clock that moves only when told.
struct Harness {
    server: Server,
    token: String,
    now: Timestamp,
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let mut server = Server::new(config, org(), 7);
        let token = token_for(&mut server, Timestamp::ZERO, &OAuthClient::default());
        Self {
            server,
            token,
            now: Timestamp::ZERO,
        }
    }

    fn at(&mut self, secs: f64) -> &mut Self {
        self.now = secs_to_timestamp(secs);
        self
    }

    fn send(&mut self, method: Method, uri: &str, body: &str) -> Response<Bytes> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token))
            .body(Bytes::from(body.to_owned()))
            .unwrap();
        match self.server.handle_request(self.now, CLIENT, request) {
            Reply::Respond { response, .. } => response,
            Reply::Reset { .. } => panic!("unexpected reset"),
        }
    }

    fn get(&mut self, uri: &str) -> Response<Bytes> {
        self.send(Method::GET, uri, "")
    }

    fn patch(&mut self, id: &str, body: Value) -> Response<Bytes> {
        self.send(
            Method::PATCH,
            &format!("/api/v2/users/{id}"),
            &body.to_string(),
        )
    }

    fn search(&mut self, body: Value) -> Response<Bytes> {
        self.send(Method::POST, "/api/v2/users/search", &body.to_string())
    }
}

fn login(server: &mut Server, now: Timestamp, id: &str, secret: &str) -> Reply {
    let basic = STANDARD.encode(format!("{id}:{secret}"));
    let request = Request::post("/oauth/token")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(b"grant_type=client_credentials"))
        .unwrap();
    server.handle_request(now, CLIENT, request)
}

fn token_for(server: &mut Server, now: Timestamp, client: &OAuthClient) -> String {
    let reply = login(server, now, &client.id, &client.secret);
    let body = json_of(reply.response().unwrap());
    body["access_token"].as_str().unwrap().to_owned()
}

fn json_of(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn header<'a>(response: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn limited(limit: u32) -> ServerConfig {
    ServerConfig {
        latency: Latency::Fixed { ms: 0.0 },
        ..ServerConfig::default()
    }
    .with_rate_limit_per_minute(limit)
}

// --- OAuth ---

#[test]
fn a_good_client_gets_a_bearer_token() {
    let mut server = Server::new(ServerConfig::default(), org(), 1);
    let reply = login(
        &mut server,
        Timestamp::ZERO,
        "gcbulk-emulator",
        "emulator-secret",
    );
    let response = reply.response().unwrap();
    let body = json_of(response);

    assert_eq!(response.status(), 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert!(body["access_token"].as_str().unwrap().len() > 40);
}

#[test]
fn a_bad_secret_is_an_invalid_client() {
    let mut server = Server::new(ServerConfig::default(), org(), 1);
    let reply = login(&mut server, Timestamp::ZERO, "gcbulk-emulator", "guess");
    let response = reply.response().unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(json_of(response)["error"], "invalid_client");
    assert!(json_of(response)["description"].is_string());

    let config = ServerConfig {
        auth_failure_status: 400,
        ..ServerConfig::default()
    };
    let mut server = Server::new(config, org(), 1);
    let reply = login(&mut server, Timestamp::ZERO, "nobody", "emulator-secret");
    assert_eq!(reply.response().unwrap().status(), 400);
}

#[test]
fn the_grant_must_be_client_credentials() {
    let mut server = Server::new(ServerConfig::default(), org(), 1);
    let request = Request::post("/oauth/token")
        .header(
            "authorization",
            "Basic Z2NidWxrLWVtdWxhdG9yOmVtdWxhdG9yLXNlY3JldA==",
        )
        .body(Bytes::from_static(b"grant_type=password"))
        .unwrap();
    let reply = server.handle_request(Timestamp::ZERO, CLIENT, request);
    assert_eq!(reply.response().unwrap().status(), 400);
    assert_eq!(
        json_of(reply.response().unwrap())["error"],
        "unsupported_grant_type"
    );
}

#[test]
fn a_token_expires_after_its_lifetime() {
    let config = ServerConfig {
        token_lifetime_secs: 300,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);

    assert_eq!(h.at(299.9).get("/api/v2/users/u0").status(), 200);
    let response = h.at(300.0).get("/api/v2/users/u0");
    assert_eq!(response.status(), 401);
    assert_eq!(json_of(&response)["code"], "bad.credentials");

    // A new token works again: there is no refresh, only a new grant.
    h.token = token_for(&mut h.server, h.now, &OAuthClient::default());
    assert_eq!(h.get("/api/v2/users/u0").status(), 200);
}

#[test]
fn a_client_may_have_its_own_token_lifetime() {
    let short = OAuthClient {
        id: "short".into(),
        secret: "s".into(),
        token_lifetime_secs: Some(60),
    };
    let config = ServerConfig {
        clients: vec![short.clone()],
        ..ServerConfig::default()
    };
    let mut server = Server::new(config, org(), 1);
    let reply = login(&mut server, Timestamp::ZERO, "short", "s");
    assert_eq!(json_of(reply.response().unwrap())["expires_in"], 60);
}

#[test]
fn api_calls_need_a_known_bearer_token() {
    let mut h = Harness::new(ServerConfig::default());

    h.token = "made-up".into();
    let response = h.get("/api/v2/users/u0");
    assert_eq!(response.status(), 401);
    assert_eq!(json_of(&response)["code"], "bad.credentials");

    let request = Request::get("/api/v2/users/u0").body(Bytes::new()).unwrap();
    let reply = h.server.handle_request(h.now, CLIENT, request);
    let response = reply.response().unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(json_of(response)["code"], "authentication.required");
}

// --- Reading users ---

#[test]
fn users_are_listed_by_id_in_one_call() {
    let mut h = Harness::new(ServerConfig::default());
    let response = h.get("/api/v2/users?id=u2&id=u1&id=missing&pageSize=100");
    let body = json_of(&response);

    assert_eq!(response.status(), 200);
    let ids: Vec<&str> = body["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["u1", "u2"]);
    assert_eq!(body["entities"][0]["version"], 1);
    assert_eq!(body["entities"][0]["selfUri"], "/api/v2/users/u1");
    assert_eq!(body["total"], 2);
}

#[test]
fn ids_are_paged_like_everything_else() {
    let mut h = Harness::new(ServerConfig::default());
    let ids: Vec<String> = (0..30).map(|i| format!("id=u{i}")).collect();
    let body = json_of(&h.get(&format!("/api/v2/users?{}", ids.join("&"))));

    // Without pageSize only the first 25 come back: the caller must ask for 100.
    assert_eq!(body["entities"].as_array().unwrap().len(), 25);
    assert_eq!(body["pageCount"], 2);
    assert!(body["nextUri"].as_str().unwrap().contains("pageNumber=2"));
}

#[test]
fn more_than_a_hundred_ids_is_a_bad_request() {
    let mut h = Harness::new(ServerConfig::default());
    let ids: Vec<String> = (0..101).map(|i| format!("id=u{i}")).collect();
    let response = h.get(&format!("/api/v2/users?pageSize=100&{}", ids.join("&")));
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(&response)["code"], "bad.request");
}

#[test]
fn listing_pages_through_active_users_by_default() {
    let mut h = Harness::new(ServerConfig::default());
    let body = json_of(&h.get("/api/v2/users?pageSize=10&pageNumber=4"));

    // 40 users, 5 inactive and 1 deleted: 34 active, so page 4 holds 4.
    assert_eq!(body["total"], 34);
    assert_eq!(body["pageCount"], 4);
    assert_eq!(body["pageNumber"], 4);
    assert_eq!(body["entities"].as_array().unwrap().len(), 4);
    assert!(body.get("nextUri").is_none());
    assert!(
        body["previousUri"]
            .as_str()
            .unwrap()
            .contains("pageNumber=3")
    );
    assert_eq!(body["selfUri"], "/api/v2/users?pageSize=10&pageNumber=4");

    let body = json_of(&h.get("/api/v2/users?state=any&pageSize=500"));
    assert_eq!(body["total"], 40);
    let body = json_of(&h.get("/api/v2/users?id=u30"));
    assert_eq!(
        body["total"], 0,
        "an inactive user is not listed without state"
    );
    let body = json_of(&h.get("/api/v2/users?id=u30&state=inactive"));
    assert_eq!(body["total"], 1);

    assert_eq!(h.get("/api/v2/users?pageSize=501").status(), 400);
    assert_eq!(h.get("/api/v2/users?pageNumber=0").status(), 400);
    assert_eq!(h.get("/api/v2/users?state=retired").status(), 400);
}

#[test]
fn listing_inactive_users_stops_at_the_limit() {
    let config = ServerConfig {
        inactive_listing_limit: 4,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);

    assert_eq!(
        h.get("/api/v2/users?state=inactive&pageSize=2&pageNumber=2")
            .status(),
        200
    );
    let response = h.get("/api/v2/users?state=inactive&pageSize=2&pageNumber=3");
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(&response)["status"], 400);
}

#[test]
fn a_missing_user_is_a_genesys_404() {
    let mut h = Harness::new(ServerConfig::default());
    assert_eq!(json_of(&h.get("/api/v2/users/u3"))["name"], "User 3");

    let response = h.get("/api/v2/users/nobody");
    let body = json_of(&response);
    assert_eq!(response.status(), 404);
    assert_eq!(body["code"], "not.found");
    assert_eq!(
        body["contextId"],
        header(&response, "inin-correlation-id").unwrap()
    );
    assert_eq!(body["details"], json!([]));

    assert_eq!(h.get("/api/v2/users/u35").status(), 404, "deleted");
    assert_eq!(h.get("/api/v2/users/u35?state=deleted").status(), 200);
    assert_eq!(h.get("/api/v2/groups").status(), 404);
}

// --- PATCH ---

#[test]
fn a_patch_with_the_current_version_applies_and_bumps_it() {
    let mut h = Harness::new(ServerConfig::default());
    let response = h.patch(
        "u1",
        json!({
            "version": 1,
            "name": "Renamed",
            "title": "Team Lead",
            "department": "Sales",
            "email": "renamed@example.com",
            "username": "renamed@example.com",
            "preferredName": "Ren",
            "biography": {"hobbies": ["chess"]},
        }),
    );
    let body = json_of(&response);

    assert_eq!(response.status(), 200);
    assert_eq!(body["version"], 2);
    assert_eq!(body["title"], "Team Lead");
    let user = h.server.user("u1").unwrap();
    assert_eq!(user.version, 2);
    assert_eq!(user.name, "Renamed");
    assert_eq!(user.department.as_deref(), Some("Sales"));
    assert_eq!(user.preferred_name.as_deref(), Some("Ren"));
    assert!(user.extra.contains_key("biography"));
}

#[test]
fn a_stale_version_is_a_conflict_and_changes_nothing() {
    let mut h = Harness::new(ServerConfig::default());
    let response = h.patch("u1", json!({"version": 7, "title": "Boss"}));
    let body = json_of(&response);

    assert_eq!(response.status(), 409);
    assert_eq!(body["code"], "general.conflict");
    assert_eq!(
        body["message"],
        "The version number of the modified resource must match the version number in the database."
    );
    assert_eq!(h.server.user("u1").unwrap().title.as_deref(), Some("Agent"));

    let response = h.patch("u1", json!({"title": "Boss"}));
    assert_eq!(response.status(), 400, "version is required");
}

#[test]
fn a_conflict_may_be_answered_as_terraform_sees_it() {
    let config = ServerConfig {
        conflict: ConflictStyle::BadRequest,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let response = h.patch("u1", json!({"version": 7, "title": "Boss"}));

    assert_eq!(response.status(), 400);
    assert!(
        json_of(&response)["message"]
            .as_str()
            .unwrap()
            .contains("does not match the current version")
    );
}

#[test]
fn state_must_be_alone_in_its_patch() {
    let mut h = Harness::new(ServerConfig::default());
    let response = h.patch(
        "u2",
        json!({"version": 1, "state": "inactive", "title": "Gone"}),
    );
    assert_eq!(response.status(), 400);
    assert!(
        json_of(&response)["message"]
            .as_str()
            .unwrap()
            .contains("title")
    );
    assert_eq!(h.server.user("u2").unwrap().version, 1);

    let response = h.patch("u2", json!({"version": 1, "state": "inactive"}));
    assert_eq!(response.status(), 200);
    assert_eq!(h.server.user("u2").unwrap().state, UserState::Inactive);

    let response = h.patch("u2", json!({"version": 2, "state": "asleep"}));
    assert_eq!(response.status(), 400);
}

#[test]
fn a_manager_is_set_by_id_and_cleared_by_empty_or_null() {
    let mut h = Harness::new(ServerConfig::default());

    assert_eq!(
        h.patch("u2", json!({"version": 1, "manager": "u0"}))
            .status(),
        200
    );
    assert_eq!(
        h.server.user("u2").unwrap().manager,
        Some(UserRef { id: "u0".into() })
    );
    assert_eq!(
        h.patch("u2", json!({"version": 2, "manager": ""})).status(),
        200
    );
    assert_eq!(h.server.user("u2").unwrap().manager, None);
    assert_eq!(
        h.patch("u1", json!({"version": 1, "manager": null}))
            .status(),
        200
    );
    assert_eq!(h.server.user("u1").unwrap().manager, None);

    assert_eq!(
        h.patch("u2", json!({"version": 3, "manager": "nobody"}))
            .status(),
        400
    );
    assert_eq!(
        h.patch("u2", json!({"version": 3, "manager": "u2"}))
            .status(),
        400
    );
}

#[test]
fn an_address_replaces_the_entry_of_its_type() {
    let mut h = Harness::new(ServerConfig::default());
    let phone = json!([{
        "address": "+1 317 555 0123",
        "mediaType": "PHONE",
        "type": "WORK",
        "extension": "123",
    }]);

    assert_eq!(
        h.patch("u1", json!({"version": 1, "addresses": phone}))
            .status(),
        200
    );
    let user = h.server.user("u1").unwrap();
    assert_eq!(user.addresses.len(), 2, "the MOBILE entry stays");
    assert_eq!(user.work_phone().unwrap().extension.as_deref(), Some("123"));

    let bad = json!({"version": 2, "addresses": [{"address": "x"}]});
    assert_eq!(h.patch("u1", bad).status(), 400);
}

#[test]
fn an_empty_title_clears_it_and_an_empty_name_is_refused() {
    let mut h = Harness::new(ServerConfig::default());
    assert_eq!(
        h.patch("u1", json!({"version": 1, "title": ""})).status(),
        200
    );
    assert_eq!(h.server.user("u1").unwrap().title, None);

    assert_eq!(
        h.patch("u1", json!({"version": 2, "name": ""})).status(),
        400
    );
    assert_eq!(
        h.patch("u1", json!({"version": 2, "title": 5})).status(),
        400
    );
    assert_eq!(
        h.send(Method::PATCH, "/api/v2/users/u1", "not json")
            .status(),
        400
    );
    assert_eq!(h.patch("nobody", json!({"version": 1})).status(), 404);
}

// --- Search ---

#[test]
fn search_matches_emails_without_regard_to_case() {
    let mut h = Harness::new(ServerConfig::default());
    let response = h.search(json!({
        "pageSize": 25,
        "pageNumber": 1,
        "query": [{
            "type": "EXACT",
            "fields": ["email"],
            "values": ["user3@example.COM", "USER4@example.com", "nobody@example.com"],
        }],
    }));
    let body = json_of(&response);

    assert_eq!(response.status(), 200);
    assert_eq!(body["total"], 2);
    assert_eq!(body["pageCount"], 1);
    assert_eq!(body["results"][0]["id"], "u3");
    assert_eq!(body["results"][1]["email"], "User4@Example.com");

    let body = json_of(&h.search(
        json!({"query": [{"type": "EXACT", "fields": ["email"], "value": "user35@example.com"}]}),
    ));
    assert_eq!(body["total"], 0, "deleted users are not found");
}

#[test]
fn search_pages_on_with_q64() {
    let mut h = Harness::new(ServerConfig::default());
    let body = json_of(&h.search(json!({
        "pageSize": 10,
        "query": [{"type": "STARTS_WITH", "fields": ["name"], "value": "user"}],
    })));
    assert_eq!(body["total"], 39);
    assert_eq!(body["pageCount"], 4);

    let next = body["nextPage"].as_str().unwrap().to_owned();
    let body = json_of(&h.get(&next));
    assert_eq!(body["pageNumber"], 2);
    assert_eq!(body["results"][0]["id"], "u10");
}

#[test]
fn search_refuses_what_it_cannot_do() {
    let mut h = Harness::new(ServerConfig::default());
    let bad_field = json!({"query": [{"type": "EXACT", "fields": ["shoeSize"], "values": ["9"]}]});
    assert_eq!(h.search(bad_field).status(), 400);
    let big_page = json!({"pageSize": 101, "query": []});
    assert_eq!(h.search(big_page).status(), 400);
    assert_eq!(
        h.send(Method::POST, "/api/v2/users/search", "{").status(),
        400
    );
}

// --- Rate limits ---

#[test]
fn answers_announce_the_clients_window() {
    let mut h = Harness::new(limited(3));
    let response = h.at(10.0).get("/api/v2/users/u0");

    assert_eq!(header(&response, "inin-ratelimit-count"), Some("1"));
    assert_eq!(header(&response, "inin-ratelimit-allowed"), Some("3"));
    assert_eq!(header(&response, "inin-ratelimit-reset"), Some("60"));

    let response = h.at(40.5).get("/api/v2/users/u0");
    assert_eq!(header(&response, "inin-ratelimit-count"), Some("2"));
    assert_eq!(header(&response, "inin-ratelimit-reset"), Some("30"));
}

#[test]
fn past_the_budget_comes_the_genesys_429() {
    let mut h = Harness::new(limited(3));
    for _ in 0..3 {
        assert_eq!(h.at(1.0).get("/api/v2/users/u0").status(), 200);
    }
    let response = h.at(19.5).get("/api/v2/users/u0");
    let correlation_id = header(&response, "inin-correlation-id").unwrap().to_owned();

    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("42"));
    assert_eq!(
        std::str::from_utf8(response.body()).unwrap(),
        format!(
            concat!(
                r#"{{"message":"Rate limit exceeded the maximum. Retry the request in [42] "#,
                r#"seconds","code":"too.many.requests.retry.after","status":429,"#,
                r#""contextId":"{}","details":[],"errors":[]}}"#,
            ),
            correlation_id
        )
    );
    assert_eq!(
        header(&response, "inin-ratelimit-count"),
        Some("3"),
        "refusals do not count"
    );
    assert_eq!(h.server.stats().throttled_by[&ThrottleCause::Client], 1);
}

#[test]
fn the_window_resets_a_window_after_its_first_request() {
    let mut h = Harness::new(limited(2));
    h.at(5.0).get("/api/v2/users/u0");
    h.at(6.0).get("/api/v2/users/u0");
    assert_eq!(h.at(64.9).get("/api/v2/users/u0").status(), 429);

    let response = h.at(65.0).get("/api/v2/users/u0");
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "inin-ratelimit-count"), Some("1"));
    assert_eq!(header(&response, "inin-ratelimit-reset"), Some("60"));
}

#[test]
fn tokens_of_one_client_share_its_budget() {
    let other = OAuthClient {
        id: "other".into(),
        secret: "x".into(),
        token_lifetime_secs: None,
    };
    let mut config = limited(2);
    config.clients.push(other.clone());
    let mut h = Harness::new(config);

    h.get("/api/v2/users/u0");
    h.token = token_for(&mut h.server, h.now, &OAuthClient::default());
    h.get("/api/v2/users/u0");
    assert_eq!(
        h.get("/api/v2/users/u0").status(),
        429,
        "a new token is no new budget"
    );

    h.token = token_for(&mut h.server, h.now, &other);
    assert_eq!(
        h.get("/api/v2/users/u0").status(),
        200,
        "another client has its own"
    );
}

#[test]
fn an_endpoint_limit_is_felt_but_not_announced() {
    let mut config = limited(300);
    config.rate_limit.endpoint_limits.push(EndpointLimit {
        endpoint: Endpoint::PatchUser,
        limit: 2,
        window_secs: 60,
    });
    let mut h = Harness::new(config);

    assert_eq!(
        h.patch("u1", json!({"version": 1, "title": "A"})).status(),
        200
    );
    assert_eq!(
        h.patch("u1", json!({"version": 2, "title": "B"})).status(),
        200
    );
    let response = h.at(30.0).patch("u1", json!({"version": 3, "title": "C"}));
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("30"));
    assert_eq!(header(&response, "inin-ratelimit-allowed"), Some("300"));
    assert_eq!(header(&response, "inin-ratelimit-count"), Some("2"));

    assert_eq!(
        h.get("/api/v2/users/u1").status(),
        200,
        "other endpoints go on"
    );
    assert_eq!(h.server.stats().throttled_by[&ThrottleCause::Endpoint], 1);
}

#[test]
fn the_org_limit_binds_all_clients_together() {
    let other = OAuthClient {
        id: "other".into(),
        secret: "x".into(),
        token_lifetime_secs: None,
    };
    let mut config = limited(300);
    config.clients.push(other.clone());
    config.rate_limit.org_limit = Some(WindowLimit {
        limit: 2,
        window_secs: 60,
    });
    let mut h = Harness::new(config);

    h.get("/api/v2/users/u0");
    h.token = token_for(&mut h.server, h.now, &other);
    h.get("/api/v2/users/u0");
    assert_eq!(h.get("/api/v2/users/u0").status(), 429);
    assert_eq!(h.server.stats().throttled_by[&ThrottleCause::Org], 1);
}

#[test]
fn before_2021_a_429_had_no_retry_after() {
    let mut config = limited(1);
    config.rate_limit.retry_after = false;
    config.rate_limit.headers = false;
    let mut h = Harness::new(config);

    let response = h.get("/api/v2/users/u0");
    assert!(header(&response, "inin-ratelimit-count").is_none());
    let response = h.get("/api/v2/users/u0");
    assert_eq!(response.status(), 429);
    assert!(header(&response, "retry-after").is_none());
    assert_eq!(json_of(&response)["code"], "too.many.requests");
}

#[test]
fn gcra_mode_announces_what_remains() {
    let mut config = limited(0);
    config.rate_limit.per_client = ClientLimit::Gcra {
        limit: 4500,
        period_secs: 3600,
    };
    let mut h = Harness::new(config);

    let response = h.get("/api/v2/users/u0");
    assert_eq!(header(&response, "ratelimit-remaining"), Some("4499"));
    assert!(header(&response, "inin-ratelimit-count").is_none());
    for _ in 0..4499 {
        h.get("/api/v2/users/u0");
    }
    let response = h.get("/api/v2/users/u0");
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "ratelimit-remaining"), Some("0"));

    // 4500 an hour is one every 0.8 s.
    assert_eq!(h.at(0.8).get("/api/v2/users/u0").status(), 200);
    assert_eq!(h.at(0.8).get("/api/v2/users/u0").status(), 429);
}

#[test]
fn a_storm_refuses_its_share_with_a_short_retry_after() {
    let mut config = limited(100_000);
    config.rate_limit.storms.push(StormWindow {
        start_secs: 10.0,
        end_secs: 20.0,
        refuse_fraction: 0.5,
        retry_after_min_secs: 1,
        retry_after_max_secs: 5,
    });
    let mut h = Harness::new(config);

    assert_eq!(h.at(9.9).get("/api/v2/users/u0").status(), 200);
    let mut refused = 0;
    for _ in 0..1000 {
        let response = h.at(15.0).get("/api/v2/users/u0");
        if response.status() == 429 {
            refused += 1;
            let secs: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
            assert!((1..=5).contains(&secs));
        }
    }
    assert!((400..600).contains(&refused), "{refused}");
    assert_eq!(h.at(20.0).get("/api/v2/users/u0").status(), 200);
    assert_eq!(
        h.server.stats().throttled_by[&ThrottleCause::Storm],
        refused
    );
}

#[test]
fn a_daily_limit_answers_an_hour_long_retry_after() {
    let mut config = limited(300);
    config.rate_limit.daily_limit = Some(DailyLimit {
        after_requests: Some(2),
        during: Some(Interval {
            start_secs: 100.0,
            end_secs: 200.0,
        }),
        retry_after_secs: 3600,
    });
    let mut h = Harness::new(config.clone());
    h.get("/api/v2/users/u0");
    h.get("/api/v2/users/u0");
    let response = h.get("/api/v2/users/u0");
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("3600"));

    config
        .rate_limit
        .daily_limit
        .as_mut()
        .unwrap()
        .after_requests = None;
    let mut h = Harness::new(config);
    assert_eq!(h.at(150.0).get("/api/v2/users/u0").status(), 429);
    assert_eq!(h.at(200.0).get("/api/v2/users/u0").status(), 200);
}

// --- Faults ---

#[test]
fn server_errors_come_with_a_genesys_body() {
    let mut config = limited(100_000);
    config.faults.server_error_probability = 0.2;
    let mut h = Harness::new(config);

    let mut errors = 0;
    for _ in 0..1000 {
        let response = h.get("/api/v2/users/u0");
        if response.status() == 503 {
            errors += 1;
            assert_eq!(json_of(&response)["code"], "service.unavailable");
        }
    }
    assert!((150..250).contains(&errors), "{errors}");
}

#[test]
fn a_burst_of_errors_lasts_its_time() {
    let mut config = limited(100_000);
    config.faults.burst_probability = 0.01;
    config.faults.burst_min_ms = 2000;
    config.faults.burst_max_ms = 2000;
    let mut h = Harness::new(config);

    // Find the first burst, then every request inside it fails and the first after may not.
    let mut t = 0.0;
    while h.at(t).get("/api/v2/users/u0").status() == 200 {
        t += 0.01;
    }
    for step in 1..199 {
        assert_eq!(
            h.at(t + f64::from(step) * 0.01)
                .get("/api/v2/users/u0")
                .status(),
            503
        );
    }
}

#[test]
fn a_reset_may_come_before_or_after_the_change() {
    let send_patch = |after_apply: f64| {
        let mut config = ServerConfig::default();
        config.faults.reset_probability = 1.0;
        config.faults.reset_after_apply_fraction = after_apply;
        let mut server = Server::new(config, org(), 3);
        let token = token_for(&mut server, Timestamp::ZERO, &OAuthClient::default());
        let request = Request::patch("/api/v2/users/u1")
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::from_static(br#"{"version":1,"title":"X"}"#))
            .unwrap();
        let reply = server.handle_request(Timestamp::ZERO, CLIENT, request);
        assert!(matches!(reply, Reply::Reset { .. }));
        server.user("u1").unwrap().version
    };
    assert_eq!(send_patch(0.0), 1, "reset before: nothing happened");
    assert_eq!(
        send_patch(1.0),
        2,
        "reset after: the answer is lost, the change is made"
    );
}

#[test]
fn latency_follows_its_distribution() {
    let latencies = |latency: Latency| {
        let mut server = Server::new(
            ServerConfig {
                latency,
                ..ServerConfig::default()
            },
            org(),
            9,
        );
        (0..500)
            .map(|_| {
                let request = Request::get("/api/v2/users/u0").body(Bytes::new()).unwrap();
                server
                    .handle_request(Timestamp::ZERO, CLIENT, request)
                    .delay()
                    .as_secs_f64()
                    * 1e3
            })
            .collect::<Vec<f64>>()
    };

    assert!(
        latencies(Latency::Fixed { ms: 42.0 })
            .iter()
            .all(|&ms| (ms - 42.0).abs() < 1e-6)
    );
    let uniform = latencies(Latency::default());
    assert!(uniform.iter().all(|ms| (50.0..=190.0).contains(ms)));
    let mean = uniform.iter().sum::<f64>() / 500.0;
    assert!((110.0..130.0).contains(&mean), "{mean}");
    let lognormal = latencies(Latency::LogNormal {
        median_ms: 100.0,
        sigma: 0.5,
        max_ms: 400.0,
    });
    assert!(lognormal.iter().all(|&ms| ms > 0.0 && ms <= 400.0));
}

// --- Concurrent editors ---

#[test]
fn editors_bump_versions_at_their_own_times() {
    let config = ServerConfig {
        editors: Some(EditorsConfig {
            fraction: 1.0,
            start_secs: 0.0,
            end_secs: 10.0,
            ..Default::default()
        }),
        ..limited(300)
    };
    let mut h = Harness::new(config);

    let first = h.server.poll_timeout().unwrap();
    assert!(first <= Timestamp::from_secs(10));
    h.server.handle_timeout(Timestamp::from_secs(10));
    assert_eq!(h.server.poll_timeout(), None);
    assert_eq!(h.server.stats().editor_edits, 40);

    let user = h.server.user("u1").unwrap();
    assert_eq!(user.version, 2);
    assert_eq!(user.title.as_deref(), Some("Acting Team Lead"));

    let response = h
        .at(11.0)
        .patch("u1", json!({"version": 1, "title": "Mine"}));
    assert_eq!(response.status(), 409, "the read was stale");
}

#[test]
fn a_request_catches_up_on_due_edits() {
    let config = ServerConfig {
        editors: Some(EditorsConfig {
            fraction: 0.5,
            ..Default::default()
        }),
        ..limited(300)
    };
    let mut h = Harness::new(config);
    let due = h.server.poll_timeout().unwrap();

    h.now = due;
    h.get("/api/v2/users/u0");
    assert!(h.server.poll_timeout().is_none_or(|next| next > due));
    assert!(h.server.stats().editor_edits >= 1);
}

// --- Every answer ---

#[test]
fn every_answer_has_a_correlation_id_and_a_date() {
    let mut config = limited(300);
    config.epoch_unix_secs = 1_767_603_600;
    let mut h = Harness::new(config);
    let response = h.at(61.0).get("/api/v2/users/u0");

    assert_eq!(
        header(&response, "date"),
        Some("Mon, 05 Jan 2026 09:01:01 GMT")
    );
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(header(&response, "inin-correlation-id").unwrap().len(), 36);
    let other = h.get("/api/v2/users/u0");
    assert_ne!(
        header(&response, "inin-correlation-id"),
        header(&other, "inin-correlation-id")
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed: u64| {
        let mut config = ServerConfig::default().with_rate_limit_per_minute(20);
        crate::model::FaultPreset::Flaky.apply(&mut config);
        crate::model::FaultPreset::Storm.apply(&mut config);
        config.faults.server_error_probability = 0.1;
        config.record_timeline = true;
        let mut server = Server::new(config, org(), seed);
        let token = token_for(&mut server, Timestamp::ZERO, &OAuthClient::default());

        let mut trace = Vec::new();
        for i in 0..200_u64 {
            let request = Request::get(format!("/api/v2/users/u{}", i % 40))
                .header("authorization", format!("Bearer {token}"))
                .body(Bytes::new())
                .unwrap();
            let now = Timestamp::from_millis(i * 500);
            match server.handle_request(now, ClientId(i % 3), request) {
                Reply::Respond { response, latency } => {
                    trace.push(format!(
                        "{:?} {:?} {:?}",
                        response.headers(),
                        response.body(),
                        latency
                    ));
                }
                Reply::Reset { after } => trace.push(format!("reset {after:?}")),
            }
        }
        (trace, server.stats().clone())
    };

    let (trace, stats) = run(11);
    assert_eq!(run(11), (trace.clone(), stats.clone()));
    assert_ne!(run(12).0, trace);
    assert_eq!(stats.timeline.len(), 201);
    assert!(stats.throttled > 0 && stats.count_status(503) > 0);
}
