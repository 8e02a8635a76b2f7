//! The HTTP/1 session fed arbitrary bytes in arbitrary pieces and events, with a host whose
//! sends block, pace or fail at the fuzzer's choice: it never panics, a session that waits
//! always has a deadline (so no connection can hang), and a lingering one only drops input.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringserve::http::h1::{Action, Cx, Flush, Host, Reply, Session, Settings};
use ringserve::http::{Limits, Request, Status};

/// A host answering from the fuzzer's script.
struct Scripted<'a> {
    script: &'a [u8],
    responses: usize,
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
        self.responses += 1;
        Reply {
            keep_alive: keep_alive && req.keep_alive,
            paced: self.next() % 4 == 0,
        }
    }

    fn reject(&mut self, _status: Status) {
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
    };
    let mut rest = &bytes[..];
    let mut cuts = cuts.into_iter();
    while !rest.is_empty() {
        let n = cuts
            .next()
            .map_or(rest.len(), |c| usize::from(c) % rest.len() + 1);
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        let action = match host.next() % 4 {
            0 => session.on_writable(&cx, &mut host),
            1 => session.on_deadline(&cx, &mut host),
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
