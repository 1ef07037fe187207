//! The scheduler driven over real HTTP against a scripted server on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use gcbulk_core::sched::{
    Backoff, Config, Done, GiveUpReason, Jitter, LastFailure, Outcome, Scheduler, TransportError,
    WaitReason,
};
use gcbulk_core::{Action, Machine, Timestamp};
use gcbulk_ureq::{Driver, DriverError, DriverOptions, Observer, RunStats};
use http::{Request, Response};
use support::{Recording, Reply, Server, pause};

/// Quick retries, so failures cost milliseconds.
fn config(max_in_flight: usize) -> Config {
    Config {
        max_in_flight,
        request_timeout: Duration::from_secs(2),
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(50),
            jitter: Jitter::Full,
        },
        ..Config::default()
    }
}

fn driver(workers: usize) -> Driver {
    Driver::new(DriverOptions {
        workers,
        ..DriverOptions::default()
    })
    .expect("valid options")
}

fn get(url: &str) -> Request<Bytes> {
    Request::get(url)
        .header("authorization", "Bearer secret-token")
        .body(Bytes::new())
        .expect("valid request")
}

/// Runs `machine` and returns its outputs in the order they were reported.
fn run_all<M: Machine>(driver: &Driver, machine: &mut M) -> (Vec<M::Output>, RunStats) {
    let mut outputs = Vec::new();
    let stats = driver
        .run(machine, |_, output| outputs.push(output))
        .expect("the run ends");
    (outputs, stats)
}

fn response<K>(done: &Done<K>) -> &Response<Bytes> {
    match &done.outcome {
        Outcome::Response(response) => response,
        Outcome::GaveUp { reason, .. } => panic!("gave up: {reason}"),
    }
}

fn gave_up<K>(done: &Done<K>) -> &GiveUpReason {
    match &done.outcome {
        Outcome::GaveUp { reason, .. } => reason,
        Outcome::Response(response) => panic!("answered {}", response.status()),
    }
}

#[test]
fn every_item_gets_its_answer_with_every_header() {
    let server = Server::start(|hit, _| {
        Reply::status(200)
            .header("x-repeat", "one")
            .header("x-repeat", "two")
            .header("ININ-Correlation-Id", "c0ffee")
            .body(format!("{{\"path\":\"{}\"}}", hit.path))
    });
    let driver = driver(3);
    let mut scheduler = Scheduler::new(config(3), 1);
    for id in 0..6 {
        let request = Request::patch(server.url(&format!("/api/v2/users/{id}")))
            .header("authorization", "Bearer secret-token")
            .header("content-type", "application/json")
            .body(Bytes::from(format!("{{\"version\":{id}}}")))
            .unwrap();
        scheduler.push(driver.now(), id, request);
    }

    let (mut outputs, stats) = run_all(&driver, &mut scheduler);

    outputs.sort_by_key(|done| done.key);
    assert_eq!(outputs.len(), 6);
    for (id, done) in outputs.iter().enumerate() {
        let response = response(done);
        assert_eq!(response.status(), 200);
        let body = format!("{{\"path\":\"/api/v2/users/{id}\"}}");
        assert_eq!(response.body(), body.as_bytes());
        let repeated: Vec<_> = response.headers().get_all("x-repeat").iter().collect();
        assert_eq!(repeated, ["one", "two"]);
        assert_eq!(response.headers()["inin-correlation-id"], "c0ffee");
    }

    let hits = server.hits();
    assert_eq!(hits.len(), 6);
    for hit in &hits {
        assert_eq!(hit.method, "PATCH");
        assert_eq!(hit.header("authorization"), Some("Bearer secret-token"));
        let id = hit.path.rsplit('/').next().unwrap();
        assert_eq!(hit.body, format!("{{\"version\":{id}}}").as_bytes());
        assert!(hit.header("user-agent").unwrap().starts_with("gcbulk/"));
    }
    assert_eq!((stats.sent, stats.responses, stats.outputs), (6, 6, 6));
    assert!(!stats.stopped);
}

/// Keeps outputs and the waits the driver announced.
#[derive(Default)]
struct Log<K> {
    outputs: Vec<Done<K>>,
    waits: Vec<(Timestamp, Timestamp, WaitReason)>,
}

impl<K> Observer<Scheduler<K>> for Log<K> {
    fn output(&mut self, _: &mut Scheduler<K>, output: Done<K>) {
        self.outputs.push(output);
    }

    fn wait(&mut self, now: Timestamp, until: Timestamp, reason: WaitReason) {
        self.waits.push((now, until, reason));
    }
}

#[test]
fn retry_after_is_honoured() {
    let server = Server::start(|_, earlier| match earlier {
        0 => Reply::status(429)
            .header("retry-after", "1")
            .body(r#"{"code":"too.many.requests.retry.after","status":429}"#),
        _ => Reply::status(200),
    });
    let driver = driver(2);
    let mut scheduler = Scheduler::new(config(2), 2);
    scheduler.push(driver.now(), "throttled", get(&server.url("/throttled")));

    let mut log = Log::default();
    driver.run_with(&mut scheduler, &mut log).unwrap();

    let done = &log.outputs[0];
    assert_eq!(response(done).status(), 200);
    assert_eq!(done.throttled, 1);
    let hits = server.hits();
    assert_eq!(hits.len(), 2);
    let gap = hits[1].at.duration_since(hits[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(1500), "retried after {gap:?}");

    let (now, until, reason) = log.waits[0];
    assert_eq!(reason, WaitReason::RetryAfter);
    assert!(until.saturating_since(now) >= Duration::from_millis(900));
}

#[test]
fn a_503_is_retried() {
    let server = Server::start(|_, earlier| match earlier {
        0 => Reply::status(503).header("ININ-Correlation-Id", "abc"),
        _ => Reply::status(200).body("ok"),
    });
    let driver = driver(1);
    let mut scheduler = Scheduler::new(config(1), 3);
    scheduler.push(driver.now(), "flaky", get(&server.url("/flaky")));

    let (outputs, stats) = run_all(&driver, &mut scheduler);

    assert_eq!(response(&outputs[0]).body(), "ok");
    assert_eq!(outputs[0].attempts, 2);
    assert_eq!((stats.sent, stats.responses), (2, 2));
}

#[test]
fn a_redirect_is_handed_back_not_followed() {
    let elsewhere = Server::start(|_, _| Reply::status(200).body("stolen"));
    let location = format!("http://localhost:{}/collect", elsewhere.port());
    let server = {
        let location = location.clone();
        Server::start(move |_, _| Reply::status(302).header("location", &location))
    };
    let driver = driver(1);
    let mut scheduler = Scheduler::new(config(1), 4);
    scheduler.push(driver.now(), "moved", get(&server.url("/moved")));

    let (outputs, stats) = run_all(&driver, &mut scheduler);

    let response = response(&outputs[0]);
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], location.as_str());
    assert_eq!(outputs[0].attempts, 1);
    assert_eq!(server.hits().len(), 1);
    assert!(elsewhere.hits().is_empty(), "the redirect was followed");
    assert_eq!(stats.sent, 1);
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let server = Server::start(|_, earlier| match earlier {
        0 => Reply::status(200)
            .body("late")
            .after(Duration::from_millis(700)),
        _ => Reply::status(200).body("prompt"),
    });
    let driver = driver(1);
    let config = Config {
        request_timeout: Duration::from_millis(250),
        ..config(1)
    };
    let mut machine = Recording::new(Scheduler::new(config, 5));
    let now = driver.now();
    machine.inner.push(now, "slow", get(&server.url("/slow")));

    let (outputs, stats) = run_all(&driver, &mut machine);

    assert_eq!(machine.transport_errors, [TransportError::TimedOut]);
    assert_eq!(response(&outputs[0]).body(), "prompt");
    assert_eq!(outputs[0].attempts, 2);
    assert!(stats.elapsed < Duration::from_millis(600), "{stats:?}");
}

#[test]
fn a_connection_closed_without_an_answer_is_a_reset() {
    let server = Server::start(|_, earlier| match earlier {
        0 => Reply::Close,
        _ => Reply::status(200).body("second time lucky"),
    });
    let driver = driver(1);
    let mut machine = Recording::new(Scheduler::new(config(1), 6));
    let now = driver.now();
    machine
        .inner
        .push(now, "dropped", get(&server.url("/dropped")));

    let (outputs, _) = run_all(&driver, &mut machine);

    assert_eq!(machine.transport_errors, [TransportError::Reset]);
    assert_eq!(response(&outputs[0]).body(), "second time lucky");
    assert_eq!(outputs[0].attempts, 2);
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_any_connection() {
    let driver = driver(1);
    let mut machine = Recording::new(Scheduler::new(config(1), 7));
    let now = driver.now();
    // A documentation address: nothing answers there, so a connection attempt would hang.
    machine
        .inner
        .push(now, "remote", get("http://192.0.2.1/api/v2/users/1"));

    let (outputs, stats) = run_all(&driver, &mut machine);

    let refusal = "plain http is only allowed to loopback".to_owned();
    assert_eq!(
        machine.transport_errors,
        [TransportError::Refused(refusal.clone())]
    );
    assert_eq!(
        gave_up(&outputs[0]),
        &GiveUpReason::Transport {
            error: format!("request refused: {refusal}")
        }
    );
    assert_eq!((stats.sent, stats.refused), (0, 1));
    assert!(stats.elapsed < Duration::from_millis(100), "{stats:?}");
}

#[test]
fn a_host_by_address_or_by_name_is_reached_and_a_closed_port_fails_to_connect() {
    let server = Server::start(|hit, _| Reply::status(200).body(hit.path.clone()));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.local_addr().expect("local address").port()
    };
    let driver = driver(2);
    let mut machine = Recording::new(Scheduler::new(config(2), 8));
    let now = driver.now();
    let urls = [
        ("address", server.url("/address")),
        ("name", format!("http://localhost:{}/name", server.port())),
        ("closed", format!("http://127.0.0.1:{closed}/closed")),
    ];
    for (key, url) in urls {
        machine.inner.push(now, key, get(&url));
    }

    let (outputs, _) = run_all(&driver, &mut machine);

    let outcome = |key: &str| outputs.iter().find(|done| done.key == key).expect(key);
    assert_eq!(response(outcome("address")).body(), "/address");
    assert_eq!(response(outcome("name")).body(), "/name");
    // Nothing listens there: every attempt fails to connect, and is retried until none is left.
    assert!(matches!(
        gave_up(outcome("closed")),
        GiveUpReason::AttemptsExhausted { .. }
    ));
    assert!(!machine.transport_errors.is_empty());
    assert!(
        machine
            .transport_errors
            .iter()
            .all(|error| *error == TransportError::Connect),
        "{:?}",
        machine.transport_errors
    );
}

#[test]
fn an_oversized_body_fails_the_attempt() {
    let server = Server::start(|_, _| Reply::status(200).body(vec![b'x'; 4096]));
    let driver = Driver::new(DriverOptions {
        workers: 1,
        max_body_bytes: 1024,
        ..DriverOptions::default()
    })
    .unwrap();
    let config = Config {
        max_attempts: 1,
        ..config(1)
    };
    let mut scheduler = Scheduler::new(config, 8);
    scheduler.push(driver.now(), "big", get(&server.url("/big")));

    let (outputs, _) = run_all(&driver, &mut scheduler);

    let Outcome::GaveUp { reason, last } = &outputs[0].outcome else {
        panic!("a 4 KiB body got through a 1 KiB limit");
    };
    assert_eq!(reason, &GiveUpReason::AttemptsExhausted { attempts: 1 });
    assert!(matches!(
        last,
        Some(LastFailure::Transport(TransportError::Protocol))
    ));
}

/// Raises the stop flag at the first output and cancels what is queued when the driver stops.
struct StopAtFirst {
    flag: Arc<AtomicBool>,
    outputs: Vec<Done<usize>>,
}

impl Observer<Scheduler<usize>> for StopAtFirst {
    fn output(&mut self, _: &mut Scheduler<usize>, output: Done<usize>) {
        self.flag.store(true, Ordering::SeqCst);
        self.outputs.push(output);
    }

    fn stop(&mut self, scheduler: &mut Scheduler<usize>) {
        scheduler.cancel_queued();
    }
}

#[test]
fn a_stop_lets_attempts_in_flight_finish_and_sends_nothing_new() {
    let server = Server::start(|_, _| {
        Reply::status(200)
            .body("done")
            .after(Duration::from_millis(200))
    });
    let flag = Arc::new(AtomicBool::new(false));
    let driver = Driver::new(DriverOptions {
        workers: 2,
        stop: Some(flag.clone()),
        ..DriverOptions::default()
    })
    .unwrap();
    let mut scheduler = Scheduler::new(config(2), 9);
    for id in 0..6 {
        let url = server.url(&format!("/api/v2/users/{id}"));
        scheduler.push(driver.now(), id, get(&url));
    }

    let mut observer = StopAtFirst {
        flag,
        outputs: Vec::new(),
    };
    let stats = driver.run_with(&mut scheduler, &mut observer).unwrap();

    assert!(stats.stopped);
    assert_eq!(server.hits().len(), 2);
    let mut outputs = observer.outputs;
    outputs.sort_by_key(|done| done.key);
    assert_eq!(outputs.len(), 6);
    for done in &outputs[..2] {
        assert_eq!(response(done).body(), "done");
    }
    for done in &outputs[2..] {
        assert_eq!(gave_up(done), &GiveUpReason::Cancelled);
    }
}

#[test]
fn a_stop_cuts_a_long_retry_after_short() {
    let server = Server::start(|_, _| Reply::status(429).header("retry-after", "30"));
    let flag = Arc::new(AtomicBool::new(false));
    let driver = Driver::new(DriverOptions {
        workers: 1,
        stop: Some(flag.clone()),
        ..DriverOptions::default()
    })
    .unwrap();
    let mut scheduler = Scheduler::new(config(1), 10);
    scheduler.push(driver.now(), 0, get(&server.url("/throttled")));

    // A person presses Ctrl-C while the run waits out the Retry-After.
    let ctrl_c = thread::spawn(move || {
        pause(Duration::from_millis(300));
        flag.store(true, Ordering::SeqCst);
    });
    let mut observer = StopAtFirst {
        flag: Arc::new(AtomicBool::new(false)),
        outputs: Vec::new(),
    };
    let stats = driver.run_with(&mut scheduler, &mut observer).unwrap();
    ctrl_c.join().unwrap();

    assert!(stats.stopped);
    assert!(stats.elapsed < Duration::from_secs(1), "{stats:?}");
    assert_eq!(server.hits().len(), 1);
    assert_eq!(gave_up(&observer.outputs[0]), &GiveUpReason::Cancelled);
}

/// A machine that claims to wait for an answer it never asked for.
struct Forgetful;

impl Machine for Forgetful {
    type Output = ();

    fn handle_response(
        &mut self,
        _: Timestamp,
        _: gcbulk_core::sched::AttemptId,
        _: Response<Bytes>,
    ) -> Result<(), gcbulk_core::sched::HandleError> {
        Ok(())
    }

    fn handle_transport_error(
        &mut self,
        _: Timestamp,
        _: gcbulk_core::sched::AttemptId,
        _: TransportError,
    ) -> Result<(), gcbulk_core::sched::HandleError> {
        Ok(())
    }

    fn handle_timeout(&mut self, _: Timestamp) {}

    fn poll(&mut self, _: Timestamp) -> Action<()> {
        Action::WaitForResponse
    }
}

#[test]
fn waiting_for_a_response_with_nothing_in_flight_is_an_error_not_a_hang() {
    let result = driver(1).run(&mut Forgetful, |_, ()| {});
    assert!(matches!(result, Err(DriverError::Stalled)));
}
