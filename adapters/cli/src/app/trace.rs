//! `gcbulk update --trace FILE.json`: every answer's time, status and headers, as the simulator
//! replays them.
//!
//! The driver shows its observer outputs and waits, not answers, so [`Traced`] wraps the machine
//! and notes each response it is handed before passing it on. The file is a JSON list of
//! `{"at_s": 12.5, "status": 429, "headers": {"retry-after": "3", ...}}` in the order the
//! requests were sent, `at_s` counting from the first request: the format of
//! `gcbulk_sim::scenario::Replay`, so `gcbulk sim compare --scenario FILE.json` meets the same
//! answers again. Token requests are left out (the replay never answers them), and so are the
//! headers that frame a body or set a cookie, which say nothing about pacing.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::Path;

use bytes::Bytes;
use gcbulk_core::sched::{AttemptId, HandleError, TransportError, WaitReason};
use gcbulk_core::{Action, Machine, Timestamp};
use gcbulk_sim::scenario::{Recorded, Replay};
use gcbulk_ureq::Observer;
use http::Response;

/// Response headers not worth replaying: how the body was framed, and cookies.
const LEFT_OUT: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "set-cookie",
];

/// The answers recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    /// When the first request went out.
    start: Option<Timestamp>,
    /// When each attempt still unanswered went out, and how many went before it; token
    /// requests are not here.
    sent: HashMap<AttemptId, (Timestamp, u64)>,
    /// Requests sent so far.
    count: u64,
    /// Each answer, with when (and as which) its request went out.
    answers: Vec<((Timestamp, u64), Recorded)>,
}

impl Trace {
    /// Writes the answers, in the order their requests went out.
    pub(crate) fn write(mut self, path: &Path) -> io::Result<()> {
        self.answers.sort_by_key(|(sent, _)| *sent);
        let replay = Replay {
            entries: self.answers.into_iter().map(|(_, entry)| entry).collect(),
        };
        let mut file = io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(&mut file, &replay)?;
        file.write_all(b"\n")?;
        file.flush()
    }

    /// How many answers it holds.
    pub(crate) fn len(&self) -> usize {
        self.answers.len()
    }

    fn sent(&mut self, now: Timestamp, attempt: AttemptId, token: bool) {
        self.start.get_or_insert(now);
        self.count += 1;
        if !token {
            self.sent.insert(attempt, (now, self.count));
        }
    }

    fn answered(&mut self, attempt: AttemptId, response: &Response<Bytes>) {
        let Some((sent, order)) = self.sent.remove(&attempt) else {
            return;
        };
        let start = self.start.unwrap_or(sent);
        let mut headers = BTreeMap::new();
        for (name, value) in response.headers() {
            if LEFT_OUT.contains(&name.as_str()) {
                continue;
            }
            if let Ok(value) = value.to_str() {
                // A repeated header keeps its first value, as the replay sets one.
                headers
                    .entry(name.as_str().to_owned())
                    .or_insert_with(|| value.to_owned());
            }
        }
        let entry = Recorded {
            at_s: sent.saturating_since(start).as_secs_f64(),
            status: response.status().as_u16(),
            headers,
        };
        self.answers.push(((sent, order), entry));
    }
}

/// A machine whose answers are noted in a [`Trace`] on their way in.
#[derive(Debug)]
pub(crate) struct Traced<'a, M> {
    /// The machine itself.
    pub(crate) inner: &'a mut M,
    trace: &'a mut Trace,
}

impl<'a, M> Traced<'a, M> {
    pub(crate) fn new(inner: &'a mut M, trace: &'a mut Trace) -> Self {
        Self { inner, trace }
    }
}

impl<M: Machine> Machine for Traced<'_, M> {
    type Output = M::Output;

    fn handle_response(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        response: Response<Bytes>,
    ) -> Result<(), HandleError> {
        self.trace.answered(attempt, &response);
        self.inner.handle_response(now, attempt, response)
    }

    fn handle_transport_error(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        error: TransportError,
    ) -> Result<(), HandleError> {
        // A reset or a timeout has no status to replay.
        self.trace.sent.remove(&attempt);
        self.inner.handle_transport_error(now, attempt, error)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.inner.handle_timeout(now);
    }

    fn poll(&mut self, now: Timestamp) -> Action<M::Output> {
        let action = self.inner.poll(now);
        if let Action::Send(send) = &action {
            let token = send.request.uri().path().ends_with("/oauth/token");
            self.trace.sent(now, send.attempt, token);
        }
        action
    }
}

/// Hands what the driver reports about a [`Traced`] machine to the observer of the machine
/// inside.
#[derive(Debug)]
pub(crate) struct Forward<'o, O>(pub(crate) &'o mut O);

impl<'a, M: Machine, O: Observer<M>> Observer<Traced<'a, M>> for Forward<'_, O> {
    fn output(&mut self, machine: &mut Traced<'a, M>, output: M::Output) {
        self.0.output(machine.inner, output);
    }

    fn wait(&mut self, now: Timestamp, until: Timestamp, reason: WaitReason) {
        self.0.wait(now, until, reason);
    }

    fn stop(&mut self, machine: &mut Traced<'a, M>) {
        self.0.stop(machine.inner);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gcbulk_core::sched::{Config, Scheduler};
    use http::Request;

    use super::*;

    fn request(path: &str) -> Request<Bytes> {
        Request::get(format!("http://127.0.0.1:1{path}"))
            .body(Bytes::new())
            .unwrap()
    }

    #[test]
    fn answers_are_recorded_by_send_time_without_tokens_or_framing() {
        let mut machine: Scheduler<u32> = Scheduler::new(Config::default(), 1);
        let start = Timestamp::from_secs(5);
        machine.push(start, 0, request("/oauth/token"));
        machine.push(start, 1, request("/api/v2/users/a"));
        machine.push(start, 2, request("/api/v2/users/b"));

        let mut trace = Trace::default();
        let mut traced = Traced::new(&mut machine, &mut trace);
        let mut attempts = Vec::new();
        while let Action::Send(send) = traced.poll(start) {
            attempts.push(send.attempt);
        }
        assert_eq!(attempts.len(), 3);

        let later = start + Duration::from_millis(1500);
        let throttled = Response::builder()
            .status(429)
            .header("retry-after", "3")
            .header("content-length", "2")
            .header("inin-ratelimit-count", "301")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let ok = || Response::builder().status(200).body(Bytes::new()).unwrap();
        // The token's answer is not recorded; the reads' are, in the order they were sent.
        traced.handle_response(later, attempts[0], ok()).unwrap();
        traced
            .handle_response(later, attempts[2], throttled)
            .unwrap();
        traced.handle_response(later, attempts[1], ok()).unwrap();
        assert_eq!(trace.len(), 2);

        let path = std::env::temp_dir().join(format!("gcbulk-trace-{}.json", std::process::id()));
        trace.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let replay = Replay::from_json(&text).unwrap();
        assert_eq!(replay.entries.len(), 2);
        assert_eq!(replay.entries[0].status, 200);
        assert_eq!(replay.entries[1].status, 429);
        assert_eq!(replay.entries[1].at_s, 0.0);
        assert_eq!(replay.entries[1].headers["retry-after"], "3");
        assert_eq!(replay.entries[1].headers["inin-ratelimit-count"], "301");
        assert!(!replay.entries[1].headers.contains_key("content-length"));
    }
}
