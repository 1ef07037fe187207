//! What the driver and the shipped transport promise the machine, checked against a scripted
//! server on loopback: answers of every status, no redirects, timeouts, body limits, keep-alive,
//! plain HTTP to loopback only, and a stop that does not wait out a long `Retry-After`.

mod support;

use std::time::Duration;

use bytes::Bytes;
use gcbulk_async_std::{Driver, DriverOptions, HttpOptions, StopSignal, Transport};
use gcbulk_core::sched::{Config, Done, LastFailure, Outcome, Scheduler, TransportError};
use http::{Request, Response};
use support::{Script, Scripted};

fn get(url: &str) -> Request<Bytes> {
    Request::get(url)
        .body(Bytes::new())
        .expect("a valid request")
}

/// A scheduler that gives up on the first transport failure, so the test sees it.
fn scheduler(timeout: Duration) -> Scheduler<usize> {
    let config = Config {
        max_in_flight: 16,
        max_attempts: 1,
        request_timeout: timeout,
        ..Config::default()
    };
    Scheduler::new(config, 1)
}

/// Runs `requests` to the end under smol and returns their outcomes in push order.
fn run(driver: &Driver, timeout: Duration, requests: Vec<Request<Bytes>>) -> Vec<Done<usize>> {
    let mut machine = scheduler(timeout);
    for (index, request) in requests.into_iter().enumerate() {
        machine.push(driver.now(), index, request);
    }
    let mut done = Vec::new();
    smol::block_on(driver.run(&mut machine, |_, item| done.push(item))).expect("the run ends");
    done.sort_by_key(|item| item.key);
    done
}

fn status(done: &Done<usize>) -> u16 {
    match &done.outcome {
        Outcome::Response(response) => response.status().as_u16(),
        other => panic!("no answer: {other:?}"),
    }
}

fn transport_failure(done: &Done<usize>) -> TransportError {
    match &done.outcome {
        Outcome::GaveUp {
            last: Some(LastFailure::Transport(error)),
            ..
        } => error.clone(),
        other => panic!("not a transport failure: {other:?}"),
    }
}

#[test]
fn every_status_reaches_the_machine_and_redirects_are_not_followed() {
    let server = Scripted::start(|hit| match hit.target.as_str() {
        "/moved" => Script::status(302).header("location", "http://127.0.0.1:1/elsewhere"),
        "/missing" => Script::status(404).body(r#"{"code":"not.found"}"#),
        _ => Script::status(200).body("ok"),
    });
    let driver = Driver::new(DriverOptions::default()).unwrap();
    let requests = ["/moved", "/missing", "/fine"]
        .map(|path| get(&server.url(path)))
        .to_vec();

    let done = run(&driver, Duration::from_secs(5), requests);
    assert_eq!(done.iter().map(status).collect::<Vec<_>>(), [302, 404, 200]);
    assert_eq!(server.hits().len(), 3, "the redirect was not followed");

    let Outcome::Response(response) = &done[2].outcome else {
        unreachable!()
    };
    assert_eq!(response.body().as_ref(), b"ok");
    let hit = &server.hits()[0];
    assert!(hit.header("host").unwrap().starts_with("127.0.0.1:"));
    assert!(hit.header("user-agent").unwrap().starts_with("gcbulk/"));
}

#[test]
fn connections_are_kept_alive_and_reused() {
    let server = Scripted::start(|_| Script::status(200));
    let driver = Driver::new(DriverOptions::default()).unwrap();

    // Three rounds of four at once: four connections serve all twelve.
    for _ in 0..3 {
        let requests = (0..4).map(|_| get(&server.url("/"))).collect();
        let done = run(&driver, Duration::from_secs(5), requests);
        assert!(done.iter().all(|item| status(item) == 200));
    }
    assert_eq!(server.hits().len(), 12);
    assert!(
        server.connections() <= 4,
        "{} connections",
        server.connections()
    );
    assert_eq!(
        driver.transport().connections_opened(),
        server.connections() as u64
    );
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_without_losing_the_request() {
    let server = Scripted::start(|_| Script::AnswerThenClose(Box::new(Script::status(200))));
    let driver = Driver::new(DriverOptions::default()).unwrap();

    let first = run(
        &driver,
        Duration::from_secs(5),
        vec![get(&server.url("/1"))],
    );
    assert_eq!(status(&first[0]), 200);
    assert_eq!(driver.transport().idle_connections(), 1);
    // Give the server time to close its end.
    smol::block_on(async_io::Timer::after(Duration::from_millis(100)));

    let second = run(
        &driver,
        Duration::from_secs(5),
        vec![get(&server.url("/2"))],
    );
    assert_eq!(status(&second[0]), 200);
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_slow_answer_times_out_at_the_attempts_timeout() {
    let server =
        Scripted::start(|_| Script::After(Duration::from_secs(2), Box::new(Script::status(200))));
    let driver = Driver::new(DriverOptions::default()).unwrap();

    let started = driver.now();
    let done = run(
        &driver,
        Duration::from_millis(200),
        vec![get(&server.url("/"))],
    );
    let took = driver.now().saturating_since(started);
    assert_eq!(transport_failure(&done[0]), TransportError::TimedOut);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_body_over_the_limit_is_a_protocol_error() {
    let server = Scripted::start(|_| Script::status(200).body(vec![b'x'; 2048]));
    let options = DriverOptions {
        http: HttpOptions {
            max_body_bytes: 1024,
            ..HttpOptions::default()
        },
        ..DriverOptions::default()
    };
    let driver = Driver::new(options).unwrap();

    let done = run(&driver, Duration::from_secs(5), vec![get(&server.url("/"))]);
    assert_eq!(transport_failure(&done[0]), TransportError::Protocol);
}

#[test]
fn nobody_listening_is_a_connect_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let driver = Driver::new(DriverOptions::default()).unwrap();

    let done = run(&driver, Duration::from_secs(5), vec![get(&url)]);
    assert_eq!(transport_failure(&done[0]), TransportError::Connect);
}

#[test]
fn plain_http_leaves_for_loopback_only() {
    let server = Scripted::start(|_| Script::status(200));
    let strict = Driver::new(DriverOptions {
        allow_loopback_http: false,
        ..DriverOptions::default()
    })
    .unwrap();
    let driver = Driver::new(DriverOptions::default()).unwrap();

    let done = run(&strict, Duration::from_secs(5), vec![get(&server.url("/"))]);
    assert!(matches!(
        transport_failure(&done[0]),
        TransportError::Refused(_)
    ));
    // A documentation address: refused before any connection is tried.
    let done = run(
        &driver,
        Duration::from_secs(5),
        vec![get("http://192.0.2.1/")],
    );
    assert!(matches!(
        transport_failure(&done[0]),
        TransportError::Refused(_)
    ));
    assert!(server.hits().is_empty());
    assert_eq!(driver.transport().connections_opened(), 0);
}

#[test]
fn a_stop_ends_a_long_retry_after_wait_at_once() {
    let server = Scripted::start(|_| Script::status(429).header("retry-after", "30"));
    let stop = StopSignal::new();
    let driver = Driver::new(DriverOptions {
        stop: Some(stop.clone()),
        ..DriverOptions::default()
    })
    .unwrap();
    let mut machine = scheduler(Duration::from_secs(5));
    machine.push(driver.now(), 0, get(&server.url("/")));

    let raiser = std::thread::spawn({
        let stop = stop.clone();
        move || {
            // Once the 429 has come back, the run is waiting out its Retry-After.
            while stop_pending(&server) {}
            stop.raise();
        }
    });
    let mut done = Vec::new();
    let stats = smol::block_on(driver.run_with(&mut machine, &mut Cancel(&mut done))).unwrap();
    raiser.join().unwrap();

    assert!(stats.stopped);
    assert!(stats.elapsed < Duration::from_secs(5), "{stats:?}");
    assert_eq!(done.len(), 1);
    assert!(matches!(done[0].outcome, Outcome::GaveUp { .. }));
}

/// An application's own client: here one that answers from memory, written as an `async fn`.
struct Canned;

impl Transport for Canned {
    async fn send(
        &self,
        request: Request<Bytes>,
        _timeout: Duration,
    ) -> Result<Response<Bytes>, TransportError> {
        async_io::Timer::after(Duration::from_millis(5)).await;
        let body = Bytes::from(request.uri().path().to_owned());
        Ok(Response::builder()
            .status(200)
            .body(body)
            .expect("a valid response"))
    }
}

#[test]
fn an_application_can_plug_in_its_own_transport() {
    let driver = Driver::with_transport(Canned, DriverOptions::default());
    let mut machine = scheduler(Duration::from_secs(1));
    for index in 0..10 {
        let url = format!("https://api.example.com/{index}");
        machine.push(driver.now(), index, get(&url));
    }

    let mut done = Vec::new();
    let stats = async_std::task::block_on(driver.run(&mut machine, |_, item| done.push(item)))
        .expect("the run ends");
    done.sort_by_key(|item| item.key);
    for (index, item) in done.iter().enumerate() {
        let Outcome::Response(response) = &item.outcome else {
            panic!("no answer: {:?}", item.outcome);
        };
        assert_eq!(response.body().as_ref(), format!("/{index}").as_bytes());
    }
    assert_eq!(stats.peak_in_flight, 10, "{stats:?}");

    // Plain HTTP to a remote host never reaches any transport.
    let mut machine = scheduler(Duration::from_secs(1));
    machine.push(driver.now(), 0, get("http://api.example.com/"));
    let mut done = Vec::new();
    smol::block_on(driver.run(&mut machine, |_, item| done.push(item))).expect("the run ends");
    assert!(matches!(
        transport_failure(&done[0]),
        TransportError::Refused(_)
    ));
}

/// True until the scripted server has answered its first request.
fn stop_pending(server: &Scripted) -> bool {
    let pending = server.hits().is_empty();
    if pending {
        smol::block_on(async_io::Timer::after(Duration::from_millis(10)));
    }
    pending
}

/// Collects outputs, and cancels queued work on a stop, as an application would.
struct Cancel<'a>(&'a mut Vec<Done<usize>>);

impl gcbulk_async_std::Observer<Scheduler<usize>> for Cancel<'_> {
    fn output(&mut self, _: &mut Scheduler<usize>, output: Done<usize>) {
        self.0.push(output);
    }

    fn stop(&mut self, machine: &mut Scheduler<usize>) {
        machine.cancel_queued();
    }
}
