//! The HTTP/1 session fed arbitrary bytes in arbitrary pieces and events, with a host whose
//! sends block, pace or fail, and which takes request bodies (as uploads do), refuses them
//! midway or moves them directly, at the fuzzer's choice: it never panics, a session that
//! waits always has a deadline (so no connection can hang), a taken body ends with exactly
//! one final answer, and a lingering session only drops input.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringserve::http::h1::{Action, Cx, Direct, Flush, Host, Reply, Session, Settings};
use ringserve::http::{Limits, Request, Status};

/// A host answering from the fuzzer's script.
struct Scripted<'a> {
    script: &'a [u8],
    responses: usize,
    /// A body is being taken (its final answer is still to come).
    taking: bool,
}

impl Scripted<'_> {
    fn next(&mut self) -> u8 {
        let (&b, rest) = self.script.split_first().unwrap_or((&0, &[]));
        self.script = rest;
        b
    }
}

impl Host for Scripted<'_> {
    fn respond(&mut self, req: &Request<'_>, keep_alive: bool) -> Reply {
        assert!(!self.taking, "a request answered while a body is taken");
        let take = req.method_raw == "PUT" && self.next() % 2 == 0;
        if take {
            self.taking = true;
        } else {
            self.responses += 1;
        }
        Reply {
            keep_alive: keep_alive && req.keep_alive,
            paced: self.next() % 4 == 0,
            take_body: take,
        }
    }

    fn takes_body(&mut self, req: &Request<'_>) -> bool {
        req.method_raw == "PUT"
    }

    fn body(&mut self, data: &[u8]) -> bool {
        assert!(self.taking && !data.is_empty());
        if self.next() % 16 == 0 {
            // Refused: the host plans its error answer now.
            self.taking = false;
            self.responses += 1;
            return false;
        }
        true
    }

    fn body_direct(&mut self, max: u64) -> Direct {
        assert!(self.taking && max > 0);
        match self.next() % 5 {
            0 => Direct::Moved(1 + u64::from(self.next()) % max),
            1 => Direct::Drained,
            2 => Direct::Closed,
            3 => {
                self.taking = false;
                self.responses += 1;
                Direct::Refused
            }
            _ => Direct::Unsupported,
        }
    }

    fn body_end(&mut self, keep_alive: bool) -> Reply {
        assert!(self.taking, "a body ended that was not taken");
        self.taking = false;
        self.responses += 1;
        Reply::new(keep_alive, false)
    }

    fn reject(&mut self, _status: Status) {
        // A broken chunked body ends the one being taken with this answer.
        self.taking = false;
        self.responses += 1;
    }

    fn flush(&mut self, _hold_tail: bool) -> Flush {
        match self.next() % 8 {
            0 => Flush::Blocked,
            1 => Flush::Paced(Instant::now() + Duration::from_millis(10)),
            2 => Flush::Failed,
            _ => Flush::Done,
        }
    }
}

fuzz_target!(|input: (Vec<u8>, Vec<u16>, Vec<u8>)| {
    let (bytes, cuts, script) = input;
    let settings = Settings {
        limits: Limits::default(),
        header_timeout: Duration::from_secs(60),
        keepalive_timeout: Duration::from_secs(75),
        send_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        lingering_timeout: Duration::from_secs(5),
        lingering_time: Duration::from_secs(30),
        keepalive_requests: 100,
    };
    let cx = Cx {
        now: Instant::now(),
        draining: false,
        settings: &settings,
    };
    let mut session = Session::new(&cx);
    let mut host = Scripted {
        script: &script,
        responses: 0,
        taking: false,
    };
    let mut rest = &bytes[..];
    let mut cuts = cuts.into_iter();
    while !rest.is_empty() {
        let n = cuts
            .next()
            .map_or(rest.len(), |c| usize::from(c) % rest.len() + 1);
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        let action = match host.next() % 5 {
            0 => session.on_writable(&cx, &mut host),
            1 => session.on_deadline(&cx, &mut host),
            2 => match session.on_readable(&cx, &mut host) {
                Some((action, _)) => action,
                None => session.on_input(piece, &cx, &mut host),
            },
            _ => session.on_input(piece, &cx, &mut host),
        };
        match action {
            Action::Close | Action::Reset => return,
            _ => assert!(
                session.deadline().is_some(),
                "{action:?} without a deadline"
            ),
        }
        if action == Action::Linger {
            let before = host.responses;
            assert_eq!(session.on_input(rest, &cx, &mut host), Action::Read);
            assert_eq!(
                host.responses, before,
                "a lingering session answers nothing"
            );
            return;
        }
    }
});
