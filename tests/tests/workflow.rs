//! The Genesys workflow's exact request sequences, against the simulated server, as snapshots.
#![allow(
    clippy::unwrap_used,
    reason = "a test helper that meets the unexpected should panic"
)]

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use gcbulk_core::Timestamp;
use gcbulk_core::change::{ChangeRow, Desired, ManagerRef, Source, UserKey, UserState};
use gcbulk_core::genesys::{RowOutcome, RowReport};
use gcbulk_sim::drive::Harness;
use gcbulk_sim::model::{ClientId, Server, User};
use gcbulk_tests::{harness, reply, server, workflow_config};

fn org() -> Vec<User> {
    let mut users = vec![
        User::new("u1", "Ada Lovelace", "ada@acme.example"),
        User::new("u2", "Grace Hopper", "grace@acme.example"),
        User::new("u3", "Alan Turing", "alan@acme.example"),
        User::new("u4", "Edsger Dijkstra", "edsger@acme.example"),
    ];
    for (user, title) in users
        .iter_mut()
        .zip(["Agent", "Agent", "Team Lead", "Agent"])
    {
        user.title = Some(title.to_owned());
        user.version = 3;
    }
    users
}

fn row(line: u64, key: UserKey, desired: Desired) -> ChangeRow {
    ChangeRow {
        source: Source {
            file: "sheet.csv".into(),
            line,
        },
        key,
        desired,
    }
}

fn by_email(line: u64, email: &str, title: &str) -> ChangeRow {
    let desired = Desired {
        title: Some(title.into()),
        ..Desired::default()
    };
    row(line, UserKey::Email(email.into()), desired)
}

/// The trace and each row's outcome, as a snapshot reads them.
fn report(harness: &Harness<RowReport>) -> String {
    let mut text = harness.trace_text();
    text.push_str("--\n");
    let mut outputs: Vec<&RowReport> = harness.outputs(0).iter().map(|(_, r)| r).collect();
    outputs.sort_by_key(|r| r.source.line);
    for report in outputs {
        text.push_str(&format!(
            "line {}: {}\n",
            report.source.line,
            outcome(&report.outcome)
        ));
    }
    text
}

fn outcome(outcome: &RowOutcome) -> String {
    match outcome {
        RowOutcome::Updated {
            changes,
            version_before,
            version_after,
            ..
        } => {
            let fields: Vec<String> = changes
                .iter()
                .map(|c| format!("{} {:?} -> {:?}", c.field, c.before, c.after))
                .collect();
            format!(
                "updated v{version_before}->v{version_after} [{}]",
                fields.join(", ")
            )
        }
        other => other.to_string(),
    }
}

fn run(
    rows: Vec<ChangeRow>,
    intercept: Option<gcbulk_sim::drive::Intercept>,
) -> Harness<RowReport> {
    let mut h = harness(server(org()), workflow_config(), rows, 1);
    h.record_trace();
    if let Some(intercept) = intercept {
        h.intercept(intercept);
    }
    h.drive_bounded(10_000).unwrap();
    h
}

/// Counts requests matching `method` and a path prefix, for intercepts that act on the n-th one.
fn nth(
    method: &'static str,
    path: &'static str,
) -> impl FnMut(&http::Request<Bytes>) -> Option<u32> {
    let seen = Rc::new(Cell::new(0u32));
    move |request| {
        if request.method() == method && request.uri().path().starts_with(path) {
            seen.set(seen.get() + 1);
            Some(seen.get())
        } else {
            None
        }
    }
}

/// Another administrator's PATCH, made through the server's own API.
fn edit_as_someone_else(server: &mut Server, now: Timestamp, id: &str, body: &str) {
    let login = http::Request::post("/oauth/token")
        .header(
            "authorization",
            "Basic Z2NidWxrLWVtdWxhdG9yOmVtdWxhdG9yLXNlY3JldA==",
        )
        .body(Bytes::from_static(b"grant_type=client_credentials"))
        .unwrap();
    let token_reply = server.handle_request(now, ClientId(99), login);
    let token: serde_json::Value =
        serde_json::from_slice(token_reply.response().unwrap().body()).unwrap();
    let version = server.user(id).unwrap().version;
    let body = body.replace("$VERSION", &version.to_string());
    let patch = http::Request::patch(format!("/api/v2/users/{id}"))
        .header(
            "authorization",
            format!("Bearer {}", token["access_token"].as_str().unwrap()),
        )
        .body(Bytes::from(body))
        .unwrap();
    let answer = server.handle_request(now, ClientId(99), patch);
    assert_eq!(answer.response().unwrap().status(), 200);
}

#[test]
fn happy_path_of_a_few_users() {
    let rows = vec![
        by_email(2, "ada@acme.example", "Team Lead"),
        by_email(3, "GRACE@acme.example ", "Supervisor"),
        row(
            4,
            UserKey::Id("u4".into()),
            Desired {
                department: Some("Research".into()),
                manager: Some(ManagerRef::Email("alan@acme.example".into())),
                ..Desired::default()
            },
        ),
    ];
    let h = run(rows, None);
    insta::assert_snapshot!(report(&h));
    assert_eq!(
        h.server().user("u1").unwrap().title.as_deref(),
        Some("Team Lead")
    );
    assert_eq!(
        h.server().user("u4").unwrap().manager.as_ref().unwrap().id,
        "u3"
    );
}

#[test]
fn an_unchanged_user_costs_no_patch() {
    let h = run(vec![by_email(2, "alan@acme.example", "Team Lead")], None);
    insta::assert_snapshot!(report(&h));
    assert!(
        h.trace()
            .iter()
            .all(|line| !line.request.starts_with("PATCH"))
    );
}

#[test]
fn a_version_conflict_once_then_success() {
    let mut patches = nth("PATCH", "/api/v2/users/");
    let intercept = Box::new(
        move |server: &mut Server, now, request: &http::Request<Bytes>| {
            if patches(request) == Some(1) {
                // Someone else changes the department first; our PATCH then carries a stale version.
                edit_as_someone_else(
                    server,
                    now,
                    "u1",
                    r#"{"department":"Sales","version":$VERSION}"#,
                );
            }
            None
        },
    );
    let h = run(
        vec![by_email(2, "ada@acme.example", "Team Lead")],
        Some(intercept),
    );
    insta::assert_snapshot!(report(&h));
    let ada = h.server().user("u1").unwrap();
    assert_eq!(
        (ada.title.as_deref(), ada.department.as_deref()),
        (Some("Team Lead"), Some("Sales"))
    );
}

#[test]
fn a_version_conflict_where_the_other_writer_made_our_change() {
    let mut patches = nth("PATCH", "/api/v2/users/");
    let intercept = Box::new(
        move |server: &mut Server, now, request: &http::Request<Bytes>| {
            if patches(request) == Some(1) {
                edit_as_someone_else(
                    server,
                    now,
                    "u1",
                    r#"{"title":"Team Lead","version":$VERSION}"#,
                );
            }
            None
        },
    );
    let h = run(
        vec![by_email(2, "ada@acme.example", "Team Lead")],
        Some(intercept),
    );
    insta::assert_snapshot!(report(&h));
    assert!(matches!(
        h.outputs(0)[0].1.outcome,
        RowOutcome::Unchanged { .. }
    ));
}

#[test]
fn a_401_mid_run_renews_the_token_and_replays() {
    let mut patches = nth("PATCH", "/api/v2/users/");
    let intercept = Box::new(move |_: &mut Server, _, request: &http::Request<Bytes>| {
        (patches(request) == Some(2)).then(|| {
            reply(
                401,
                &[],
                r#"{"message":"Invalid login credentials.","code":"bad.credentials","status":401}"#,
            )
        })
    });
    let rows = vec![
        by_email(2, "ada@acme.example", "Team Lead"),
        by_email(3, "grace@acme.example", "Lead"),
    ];
    let h = run(rows, Some(intercept));
    insta::assert_snapshot!(report(&h));
    let tokens = h
        .trace()
        .iter()
        .filter(|l| l.request.contains("/oauth/token"))
        .count();
    assert_eq!(tokens, 2);
    assert!(
        h.outputs(0)
            .iter()
            .all(|(_, r)| matches!(r.outcome, RowOutcome::Updated { .. }))
    );
}

#[test]
fn a_429_with_retry_after_3_is_honoured() {
    let mut patches = nth("PATCH", "/api/v2/users/");
    let intercept = Box::new(move |_: &mut Server, _, request: &http::Request<Bytes>| {
        (patches(request) == Some(1)).then(|| {
            reply(
                429,
                &[("retry-after", "3")],
                r#"{"message":"Rate limit exceeded the maximum. Retry the request in [3] seconds","code":"too.many.requests.retry.after","status":429}"#,
            )
        })
    });
    let h = run(
        vec![by_email(2, "ada@acme.example", "Team Lead")],
        Some(intercept),
    );
    insta::assert_snapshot!(report(&h));
    let patches: Vec<Timestamp> = h
        .trace()
        .iter()
        .filter(|l| l.request.starts_with("PATCH"))
        .map(|l| l.at)
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(
        patches[1].saturating_since(patches[0]).as_secs_f64() >= 3.1,
        "{patches:?}"
    );
}

#[test]
fn a_503_flap_is_retried() {
    let mut patches = nth("PATCH", "/api/v2/users/");
    let intercept = Box::new(move |_: &mut Server, _, request: &http::Request<Bytes>| {
        matches!(patches(request), Some(1 | 2)).then(|| {
            reply(
                503,
                &[],
                r#"{"message":"Service Unavailable","code":"service.unavailable","status":503}"#,
            )
        })
    });
    let h = run(
        vec![by_email(2, "ada@acme.example", "Team Lead")],
        Some(intercept),
    );
    insta::assert_snapshot!(report(&h));
    assert_eq!(h.server().user("u1").unwrap().version, 4);
}

#[test]
fn a_daily_limit_gives_up_resumably() {
    let mut patches = nth("PATCH", "/api/v2/users/");
    let intercept = Box::new(move |_: &mut Server, _, request: &http::Request<Bytes>| {
        patches(request).filter(|n| *n >= 2).map(|_| {
            reply(
                429,
                &[("retry-after", "3600")],
                r#"{"message":"Rate limit exceeded the maximum. Retry the request in [3600] seconds","code":"too.many.requests.retry.after","status":429}"#,
            )
        })
    });
    let rows = vec![
        by_email(2, "ada@acme.example", "Team Lead"),
        by_email(3, "grace@acme.example", "Lead"),
        by_email(4, "edsger@acme.example", "Lead"),
    ];
    let h = run(rows, Some(intercept));
    insta::assert_snapshot!(report(&h));
    let gave_up: Vec<bool> = h
        .outputs(0)
        .iter()
        .map(|(_, r)| !r.outcome.is_settled())
        .collect();
    assert_eq!(gave_up.iter().filter(|g| **g).count(), 2);
    assert!(
        h.now() < Timestamp::from_secs(60),
        "waited out the daily limit: {}",
        h.now()
    );
}

#[test]
fn e_mails_resolve_in_batches_and_an_unknown_one_is_not_found() {
    let mut config = workflow_config();
    config.batch_size = 2;
    let rows = vec![
        by_email(2, "ada@acme.example", "Team Lead"),
        by_email(3, "grace@acme.example", "Agent"),
        by_email(4, "nobody@acme.example", "Lead"),
        by_email(5, "alan@acme.example", "Director"),
        by_email(6, "edsger@acme.example", "Agent"),
    ];
    let mut h = harness(server(org()), config, rows, 1);
    h.record_trace();
    h.drive_bounded(10_000).unwrap();
    insta::assert_snapshot!(report(&h));
    let searches = h
        .trace()
        .iter()
        .filter(|l| l.request.contains("/users/search"))
        .count();
    assert_eq!(searches, 3);
}

#[test]
fn a_state_change_goes_in_a_patch_of_its_own() {
    let desired = Desired {
        title: Some("Alumnus".into()),
        state: Some(UserState::Inactive),
        ..Desired::default()
    };
    let h = run(vec![row(2, UserKey::Id("u2".into()), desired)], None);
    insta::assert_snapshot!(report(&h));
    let bodies: Vec<&str> = h
        .trace()
        .iter()
        .filter(|l| l.request.starts_with("PATCH"))
        .filter_map(|l| l.body.as_deref())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[1].contains("\"state\"") && !bodies[1].contains("title"),
        "{bodies:?}"
    );
}

#[test]
fn a_wrong_secret_is_an_authentication_failure_not_a_crash() {
    let mut config = workflow_config();
    config.credentials.client_secret = gcbulk_core::genesys::Secret::new("wrong");
    let mut h = harness(
        server(org()),
        config,
        vec![by_email(2, "ada@acme.example", "X")],
        1,
    );
    h.record_trace();
    h.drive_bounded(10_000).unwrap();
    insta::assert_snapshot!(report(&h));
    assert!(h.trace().iter().all(|l| !l.request.contains("/api/v2/")));
}

#[test]
fn an_unreachable_login_host_leaves_the_rows_for_a_resumed_run() {
    let intercept =
        Box::new(|_: &mut Server, _, request: &http::Request<Bytes>| {
            request.uri().path().ends_with("/oauth/token").then(|| {
                gcbulk_sim::model::Reply::Reset {
                    after: std::time::Duration::from_millis(5),
                }
            })
        });
    let h = run(
        vec![by_email(2, "ada@acme.example", "Team Lead")],
        Some(intercept),
    );
    let outcome = &h.outputs(0)[0].1.outcome;
    assert!(
        matches!(outcome, RowOutcome::GaveUp { reason, .. } if reason.contains("could not reach the login host")),
        "{outcome:?}"
    );
    assert!(!outcome.is_settled());
    assert!(h.trace().iter().all(|l| !l.request.contains("/api/v2/")));
}
