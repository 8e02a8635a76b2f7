//! The session driven by a scripted host: no sockets, no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;
use crate::http::{Limits, Request, Status};

/// A host that records what it was asked and answers flushes from a script (`Done` once
/// the script runs out).
#[derive(Default)]
struct Script {
    /// What happened, in order: `GET /a ka` (a response planned, keep-alive allowed),
    /// `reject 400`, `flush` / `flush held`.
    log: Vec<String>,
    flushes: VecDeque<Flush>,
    /// Responses are paced.
    paced: bool,
    /// Request bodies are taken (as uploads are).
    take: bool,
    /// Body bytes taken.
    received: Vec<u8>,
    /// Stop taking a body once this many bytes were taken.
    refuse_after: Option<usize>,
    /// What direct moves of a body report, in turn (none: unsupported).
    direct: VecDeque<Direct>,
}

impl Host for Script {
    fn respond(&mut self, req: &Request<'_>, keep_alive: bool) -> Reply {
        let target = String::from_utf8_lossy(req.target);
        let ka = if keep_alive { " ka" } else { "" };
        self.log.push(format!("{} {target}{ka}", req.method_raw));
        Reply {
            keep_alive: keep_alive && req.keep_alive,
            paced: self.paced,
            take_body: self.take && req.method_raw != "GET",
        }
    }

    fn takes_body(&mut self, req: &Request<'_>) -> bool {
        self.take && req.method_raw != "GET"
    }

    fn body(&mut self, data: &[u8]) -> bool {
        self.received.extend_from_slice(data);
        if self.refuse_after.is_some_and(|n| self.received.len() >= n) {
            self.log.push("refused".into());
            return false;
        }
        true
    }

    fn body_direct(&mut self, max: u64) -> Direct {
        let d = self.direct.pop_front().unwrap_or(Direct::Unsupported);
        if let Direct::Moved(n) = d {
            assert!(n <= max, "moved {n} of {max}");
            self.log.push(format!("direct {n}"));
        }
        d
    }

    fn body_end(&mut self, keep_alive: bool) -> Reply {
        let ka = if keep_alive { " ka" } else { "" };
        self.log.push(format!("end {}{ka}", self.received.len()));
        Reply::new(keep_alive, false)
    }

    fn reject(&mut self, status: Status) {
        self.log.push(format!("reject {}", status.code()));
    }

    fn flush(&mut self, hold_tail: bool) -> Flush {
        self.log
            .push(if hold_tail { "flush held" } else { "flush" }.into());
        self.flushes.pop_front().unwrap_or(Flush::Done)
    }
}

impl Script {
    /// The responses planned so far, without the flushes.
    fn responses(&self) -> Vec<&str> {
        let planned = |e: &&String| !e.starts_with("flush");
        self.log
            .iter()
            .filter(planned)
            .map(String::as_str)
            .collect()
    }
}

fn settings() -> Settings {
    Settings {
        limits: Limits::default(),
        header_timeout: Duration::from_secs(60),
        keepalive_timeout: Duration::from_secs(75),
        send_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(40),
        lingering_timeout: Duration::from_secs(5),
        lingering_time: Duration::from_secs(20),
        keepalive_requests: 1000,
    }
}

/// A session, its host and the time, advanced by hand.
struct Harness {
    s: Session,
    host: Script,
    settings: Settings,
    t0: Instant,
    now: Instant,
    draining: bool,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(settings())
    }

    fn with(settings: Settings) -> Harness {
        let t0 = Instant::now();
        let cx = Cx {
            now: t0,
            draining: false,
            settings: &settings,
        };
        let s = Session::new(&cx);
        Harness {
            s,
            host: Script::default(),
            settings,
            t0,
            now: t0,
            draining: false,
        }
    }

    /// Calls `f` with the session, a context for the current time and the host.
    fn call<T>(&mut self, f: impl FnOnce(&mut Session, &Cx<'_>, &mut Script) -> T) -> T {
        let cx = Cx {
            now: self.now,
            draining: self.draining,
            settings: &self.settings,
        };
        f(&mut self.s, &cx, &mut self.host)
    }

    fn input(&mut self, data: &[u8]) -> Action {
        self.call(|s, cx, host| s.on_input(data, cx, host))
    }

    fn writable(&mut self) -> Action {
        self.call(|s, cx, host| s.on_writable(cx, host))
    }

    fn dropped(&mut self) {
        self.call(|s, cx, _| s.on_dropped(cx))
    }

    fn deadline(&mut self) -> Action {
        self.now = self.s.deadline().expect("a deadline is set");
        self.call(|s, cx, host| s.on_deadline(cx, host))
    }

    fn later(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }

    /// The deadline, as seconds after the harness started.
    fn deadline_secs(&self) -> Option<u64> {
        self.s.deadline().map(|d| (d - self.t0).as_secs())
    }
}

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_C_CLOSE: &[u8] = b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn a_new_session_waits_for_a_head_within_the_header_timeout() {
    let h = Harness::new();
    assert_eq!(h.deadline_secs(), Some(60));
    assert!(!h.s.is_idle());
    assert!(!h.s.lingering());
}

#[test]
fn a_keep_alive_request_is_answered_and_the_connection_waits_idle() {
    let mut h = Harness::new();
    h.later(1);
    assert_eq!(h.input(GET_A), Action::Read);
    assert_eq!(h.host.log, ["GET /a ka", "flush"]);
    assert!(h.s.is_idle());
    assert_eq!(h.deadline_secs(), Some(1 + 75));
}

#[test]
fn between_requests_only_while_no_request_is_under_way() {
    let mut h = Harness::new();
    assert!(h.s.between_requests(), "a new connection");
    h.host.flushes = [Flush::Blocked].into();
    assert_eq!(h.input(GET_A), Action::Write);
    assert!(!h.s.between_requests(), "a response waits for the socket");
    assert_eq!(h.writable(), Action::Read);
    assert!(h.s.between_requests());
    assert_eq!(h.input(b"GET /b"), Action::Read);
    assert!(!h.s.between_requests(), "half a head is buffered");
    assert_eq!(h.input(b" HTTP/1.1\r\nHost: x\r\n\r\n"), Action::Read);
    assert!(h.s.between_requests());
    let post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123";
    assert_eq!(h.input(post), Action::Read);
    assert!(!h.s.between_requests(), "a body is arriving");
    assert_eq!(h.input(b"456789"), Action::Read);
    assert!(h.s.between_requests());
}

#[test]
fn pipelined_requests_are_answered_in_order_from_one_input() {
    let mut h = Harness::new();
    let input = [GET_A, GET_B, GET_C_CLOSE].concat();
    assert_eq!(h.input(&input), Action::Close);
    assert_eq!(
        h.host.log,
        [
            "GET /a ka",
            "flush",
            "GET /b ka",
            "flush",
            "GET /c ka",
            "flush held"
        ]
    );
}

#[test]
fn every_split_point_of_the_input_gives_the_same_responses() {
    let input = [
        GET_A,
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz",
        GET_C_CLOSE,
    ]
    .concat();
    for i in 0..=input.len() {
        for j in i..=input.len() {
            let mut h = Harness::new();
            let mut last = Action::Read;
            for part in [&input[..i], &input[i..j], &input[j..]] {
                if !part.is_empty() {
                    assert_eq!(last, Action::Read, "split at {i}, {j}");
                    last = h.input(part);
                }
            }
            assert_eq!(last, Action::Close, "split at {i}, {j}");
            assert_eq!(
                h.host.responses(),
                ["GET /a ka", "POST /b ka", "GET /c ka"],
                "split at {i}, {j}"
            );
        }
    }
}

#[test]
fn a_partial_head_starts_the_header_timeout_and_a_timeout_then_resets() {
    let mut h = Harness::new();
    assert_eq!(h.input(GET_A), Action::Read);
    h.later(10);
    assert_eq!(h.input(b"GET /b HT"), Action::Read);
    assert_eq!(h.deadline_secs(), Some(10 + 60));
    assert!(!h.s.is_idle());
    assert_eq!(h.deadline(), Action::Reset);
}

#[test]
fn an_idle_keep_alive_connection_times_out_gracefully() {
    let mut h = Harness::new();
    h.input(GET_A);
    assert_eq!(h.deadline(), Action::Close);
}

#[test]
fn connection_close_ends_with_the_tail_held_for_the_fin() {
    let mut h = Harness::new();
    assert_eq!(h.input(GET_C_CLOSE), Action::Close);
    assert_eq!(h.host.log, ["GET /c ka", "flush held"]);
}

#[test]
fn http_1_0_without_keep_alive_closes_after_one_response() {
    let mut h = Harness::new();
    assert_eq!(h.input(b"GET /a HTTP/1.0\r\n\r\n"), Action::Close);
    assert_eq!(h.host.log, ["GET /a ka", "flush held"]);
}

#[test]
fn http_1_0_with_keep_alive_stays_open() {
    let mut h = Harness::new();
    let req = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_eq!(h.input(req), Action::Read);
    assert!(h.s.is_idle());
}

#[test]
fn a_bad_request_is_rejected_and_closes_without_lingering() {
    let mut h = Harness::new();
    // The request after the bad one is never looked at: framing is lost.
    let input = [b"GET /a HTTP/1.1\r\n\r\n".as_slice(), GET_B].concat();
    assert_eq!(h.input(&input), Action::Close);
    assert_eq!(h.host.log, ["reject 400", "flush held"]);
}

#[test]
fn a_refused_size_lingers_for_the_rest_of_the_upload() {
    for (input, code) in [
        (
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            413,
        ),
        (
            [b"GET /".as_slice(), &[b'a'; 9000], b" HTTP/1.1\r\n\r\n"].concat(),
            414,
        ),
        (
            [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 17000]].concat(),
            431,
        ),
    ] {
        let mut h = Harness::new();
        h.later(2);
        assert_eq!(h.input(&input), Action::Linger, "{code}");
        assert_eq!(h.host.log, [format!("reject {code}"), "flush held".into()]);
        assert!(h.s.lingering());
        assert_eq!(h.deadline_secs(), Some(2 + 5), "{code}");
    }
}

#[test]
fn a_lingering_session_drops_input_and_ends_by_its_lingering_time() {
    let mut h = Harness::new();
    let big = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n";
    assert_eq!(h.input(big), Action::Linger);
    // Input keeps coming: each burst waits up to lingering_timeout more, never past
    // lingering_time after the close began.
    for t in 1..=19 {
        h.now = h.t0 + Duration::from_secs(t);
        assert_eq!(h.input(b"more body"), Action::Read);
        h.dropped();
        assert_eq!(h.deadline_secs(), Some((t + 5).min(20)));
    }
    assert_eq!(h.host.responses(), ["reject 413"]);
    assert_eq!(h.deadline(), Action::Close);
}

#[test]
fn closing_with_pipelined_input_unread_lingers() {
    let mut h = Harness::new();
    let input = [GET_C_CLOSE, GET_A].concat();
    assert_eq!(h.input(&input), Action::Linger);
    assert_eq!(h.host.responses(), ["GET /c ka"]);
}

#[test]
fn closing_while_a_body_is_being_skipped_lingers() {
    let mut h = Harness::new();
    let req = b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\nab";
    assert_eq!(h.input(req), Action::Linger);
}

#[test]
fn without_lingering_configured_the_connection_closes_at_once() {
    let mut s = settings();
    s.lingering_timeout = Duration::ZERO;
    let mut h = Harness::with(s);
    let input = [GET_C_CLOSE, GET_A].concat();
    assert_eq!(h.input(&input), Action::Close);
}

#[test]
fn a_discarded_body_split_over_inputs_is_skipped_before_the_next_request() {
    let mut h = Harness::new();
    let post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123";
    assert_eq!(h.input(post), Action::Read);
    assert_eq!(h.input(b"456"), Action::Read);
    assert!(!h.s.is_idle());
    let rest = [b"789".as_slice(), GET_B].concat();
    assert_eq!(h.input(&rest), Action::Read);
    assert_eq!(h.host.responses(), ["POST /a ka", "GET /b ka"]);
    assert!(h.s.is_idle());
}

#[test]
fn a_blocked_response_waits_for_the_socket_and_buffers_pipelined_input() {
    let mut h = Harness::new();
    h.host.flushes = [Flush::Blocked, Flush::Blocked].into();
    h.later(3);
    let input = [GET_A, b"GET /b".as_slice()].concat();
    assert_eq!(h.input(&input), Action::Write);
    assert_eq!(h.deadline_secs(), Some(3 + 30));
    // More input while blocked is only buffered.
    assert_eq!(h.input(b" HTTP/1.1\r\nHost: x\r\n\r\n"), Action::Write);
    assert_eq!(h.host.responses(), ["GET /a ka"]);
    h.later(1);
    assert_eq!(h.writable(), Action::Write);
    assert_eq!(
        h.deadline_secs(),
        Some(4 + 30),
        "the send timeout restarts on progress"
    );
    assert_eq!(h.writable(), Action::Read);
    assert_eq!(h.host.responses(), ["GET /a ka", "GET /b ka"]);
    assert!(h.s.is_idle());
}

#[test]
fn a_response_stalled_past_the_send_timeout_is_reset() {
    let mut h = Harness::new();
    h.host.flushes = [Flush::Blocked].into();
    assert_eq!(h.input(GET_A), Action::Write);
    assert_eq!(h.deadline(), Action::Reset);
}

#[test]
fn a_paced_response_sleeps_until_its_deadline_and_ignores_writability() {
    let mut h = Harness::new();
    let until = h.t0 + Duration::from_millis(250);
    h.host.flushes = [Flush::Paced(until)].into();
    h.host.paced = true;
    assert_eq!(h.input(GET_C_CLOSE), Action::Sleep);
    assert_eq!(h.s.deadline(), Some(until));
    assert_eq!(h.writable(), Action::Sleep);
    // A paced last response does not hold its tail back.
    assert_eq!(h.host.log, ["GET /c ka", "flush"]);
    assert_eq!(h.deadline(), Action::Close);
    assert_eq!(h.host.log, ["GET /c ka", "flush", "flush"]);
}

#[test]
fn the_keepalive_requests_limit_makes_the_last_allowed_response_close() {
    let mut s = settings();
    s.keepalive_requests = 2;
    let mut h = Harness::with(s);
    let input = [GET_A, GET_B, GET_A].concat();
    assert_eq!(h.input(&input), Action::Linger);
    assert_eq!(h.host.responses(), ["GET /a ka", "GET /b"]);
}

#[test]
fn a_draining_server_closes_after_the_response() {
    let mut h = Harness::new();
    h.draining = true;
    assert_eq!(h.input(GET_A), Action::Close);
    assert_eq!(h.host.log, ["GET /a", "flush held"]);
}

#[test]
fn drain_closes_an_idle_session_at_once() {
    let mut h = Harness::new();
    assert_eq!(h.s.on_drain(), Action::Close, "accepted and silent");
    let mut h = Harness::new();
    h.input(GET_A);
    assert_eq!(h.s.on_drain(), Action::Close, "between requests");
}

#[test]
fn drain_lets_a_response_in_progress_finish_then_closes() {
    let mut h = Harness::new();
    h.host.flushes = [Flush::Blocked].into();
    assert_eq!(h.input(GET_A), Action::Write);
    assert_eq!(h.s.on_drain(), Action::Write);
    assert_eq!(h.writable(), Action::Close);
    // Not planned as the last response, so its tail was not held.
    assert_eq!(h.host.log, ["GET /a ka", "flush", "flush"]);
}

#[test]
fn drain_with_half_a_request_answers_it_without_keep_alive() {
    let mut h = Harness::new();
    assert_eq!(h.input(b"GET /a HTTP/1.1\r\n"), Action::Read);
    assert_eq!(h.s.on_drain(), Action::Read);
    assert_eq!(h.input(b"Host: x\r\n\r\n"), Action::Close);
    assert_eq!(h.host.log, ["GET /a", "flush held"]);
}

#[test]
fn a_failed_flush_closes() {
    let mut h = Harness::new();
    h.host.flushes = [Flush::Failed].into();
    assert_eq!(h.input([GET_A, GET_B].concat().as_slice()), Action::Close);
    assert_eq!(h.host.responses(), ["GET /a ka"]);
}

#[test]
fn a_client_that_sends_too_much_without_reading_is_cut_off() {
    let mut h = Harness::new();
    h.host.flushes = [Flush::Blocked].into();
    assert_eq!(h.input(GET_A), Action::Write);
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..MAX_PENDING / chunk.len() {
        assert_eq!(h.input(&chunk), Action::Write);
    }
    assert_eq!(h.input(b"x"), Action::Close);
}

#[test]
fn a_deadline_while_idle_after_input_was_buffered_is_not_idle() {
    let mut h = Harness::new();
    h.host.flushes = [Flush::Blocked].into();
    assert_eq!(
        h.input([GET_A, b"GET".as_slice()].concat().as_slice()),
        Action::Write
    );
    assert_eq!(h.writable(), Action::Read);
    assert!(!h.s.is_idle(), "half a head is waiting");
    assert_eq!(h.deadline(), Action::Reset);
}

mod body;
