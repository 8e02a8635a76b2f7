//! Request bodies: taken by the host (uploads) in pieces, moved directly, decoded from
//! chunks, refused, skipped.

use super::*;

const PUT_5: &[u8] = b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";

#[test]
fn a_taken_body_reaches_the_host_in_pieces_then_the_next_request_is_served() {
    let mut h = Harness::new();
    h.host.take = true;
    assert_eq!(h.input(&[PUT_5, b"ab"].concat()), Action::Read);
    assert_eq!(h.host.log, ["PUT /u ka", "flush"]);
    // Waiting for the body: the body timeout counts from the last input.
    h.later(10);
    assert_eq!(h.input(b"c"), Action::Read);
    assert_eq!(h.deadline_secs(), Some(10 + 40));
    assert_eq!(h.input(&[b"de", GET_A].concat()), Action::Read);
    assert_eq!(h.host.received, b"abcde");
    assert_eq!(h.host.responses(), ["PUT /u ka", "end 5 ka", "GET /a ka"]);
    assert!(h.s.is_idle());
}

#[test]
fn a_body_that_stalls_past_the_body_timeout_is_reset() {
    let mut h = Harness::new();
    h.host.take = true;
    h.input(&[PUT_5, b"ab"].concat());
    assert!(!h.s.is_idle());
    assert_eq!(h.deadline(), Action::Reset);
}

#[test]
fn a_taken_body_is_read_to_its_end_even_when_the_answer_closes() {
    let mut h = Harness::new();
    h.host.take = true;
    let put = b"PUT /u HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(h.input(&[&put[..], b"abc"].concat()), Action::Read);
    assert_eq!(h.input(b"de"), Action::Close);
    assert_eq!(h.host.responses(), ["PUT /u ka", "end 5"]);
}

#[test]
fn a_body_the_host_stops_taking_ends_the_connection_with_lingering() {
    let mut h = Harness::new();
    h.host.take = true;
    h.host.refuse_after = Some(2);
    assert_eq!(h.input(&[PUT_5, b"abc"].concat()), Action::Linger);
    assert_eq!(h.host.responses(), ["PUT /u ka", "refused"]);
    assert!(h.s.lingering());
}

#[test]
fn a_large_body_not_taken_is_refused_413_and_lingered_on() {
    let mut h = Harness::new();
    let max = h.settings.limits.max_discard_body;
    let put = format!(
        "PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        max + 1
    );
    assert_eq!(h.input(put.as_bytes()), Action::Linger);
    assert_eq!(h.host.responses(), ["reject 413"]);
    // At the limit, it is read and skipped.
    let mut h = Harness::new();
    let put = format!("PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: {max}\r\n\r\n");
    assert_eq!(h.input(put.as_bytes()), Action::Read);
    assert_eq!(h.input(&vec![b'x'; max as usize]), Action::Read);
    assert_eq!(h.input(GET_A), Action::Read);
    assert_eq!(h.host.responses(), ["PUT /u ka", "GET /a ka"]);
    assert!(h.host.received.is_empty());
}

#[test]
fn an_empty_taken_body_ends_at_once() {
    let mut h = Harness::new();
    h.host.take = true;
    let post = b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(h.input(post), Action::Read);
    // No body to ask about, but the host takes it anyway: it ends at once.
    assert_eq!(h.host.responses(), ["POST /u ka", "end 0 ka"]);
}

#[test]
fn a_chunked_body_is_decoded_for_the_host_and_bad_framing_is_400() {
    let mut h = Harness::new();
    h.host.take = true;
    let put = b"PUT /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let input = [
        &put[..],
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
        GET_A,
    ]
    .concat();
    for i in 0..=input.len() {
        let mut h = Harness::new();
        h.host.take = true;
        for part in [&input[..i], &input[i..]] {
            if !part.is_empty() {
                assert_eq!(h.input(part), Action::Read, "split at {i}");
            }
        }
        assert_eq!(h.host.received, b"abcde", "split at {i}");
        assert_eq!(h.host.responses(), ["PUT /u ka", "end 5 ka", "GET /a ka"]);
    }
    assert_eq!(h.input(&[&put[..], b"3\r\nabcX"].concat()), Action::Linger);
    assert_eq!(h.host.responses(), ["PUT /u ka", "reject 400"]);
}

#[test]
fn a_skipped_chunked_body_that_breaks_or_grows_too_large_closes() {
    let mut h = Harness::new();
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(h.input(&[&get[..], b"zz\r\n"].concat()), Action::Close);
    assert_eq!(h.host.responses(), ["GET /a ka"]);
    let mut h = Harness::new();
    let max = h.settings.limits.max_discard_body as usize;
    let big = [
        &get[..],
        format!("{:x}\r\n", max + 1).as_bytes(),
        &vec![b'x'; max + 1],
    ]
    .concat();
    assert_eq!(h.input(&big), Action::Close);
}

#[test]
fn a_body_is_moved_directly_when_the_host_can_and_answered_at_its_end() {
    let mut h = Harness::new();
    h.host.take = true;
    let put = b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab";
    assert_eq!(h.input(put), Action::Read);
    assert!(h.s.wants_direct());
    h.host.direct = [Direct::Moved(3), Direct::Drained].into();
    let readable = |h: &mut Harness| h.call(|s, cx, host| s.on_readable(cx, host));
    assert_eq!(readable(&mut h), Some((Action::Read, true)));
    h.host.direct = [Direct::Moved(5)].into();
    assert_eq!(readable(&mut h), Some((Action::Read, false)));
    assert!(!h.s.wants_direct());
    assert_eq!(
        h.host.responses(),
        ["PUT /u ka", "direct 3", "direct 5", "end 2 ka"]
    );
    // Nothing in progress: the transport reads as usual.
    assert_eq!(readable(&mut h), None);
    // A refusal midway ends the connection as a refused body does.
    let mut h = Harness::new();
    h.host.take = true;
    h.input(put);
    h.host.direct = [Direct::Moved(1), Direct::Refused].into();
    assert_eq!(readable(&mut h), Some((Action::Linger, false)));
    // Unsupported: the bytes come through input.
    let mut h = Harness::new();
    h.host.take = true;
    h.input(put);
    assert_eq!(readable(&mut h), None);
    assert_eq!(h.input(b"cdefghij"), Action::Read);
    assert_eq!(h.host.received, b"abcdefghij");
}

#[test]
fn a_busy_sink_holds_the_body_until_the_host_calls_again() {
    let mut h = Harness::new();
    h.host.take = true;
    let put = b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    h.input(put);
    let readable = |h: &mut Harness| h.call(|s, cx, host| s.on_readable(cx, host));
    // A batch went to the disk: nothing more is read until the host calls again, and the
    // body timeout counts from then.
    h.host.direct = [Direct::Moved(4), Direct::Busy].into();
    h.later(7);
    assert_eq!(readable(&mut h), Some((Action::Read, true)));
    assert_eq!(h.deadline_secs(), Some(7 + 40));
    assert!(h.s.wants_direct());
    // The last batch ends the body while it is still being written: the host answers when
    // it lands (a paced reply), the session does not wait for more input.
    h.host.direct = [Direct::Moved(6)].into();
    assert_eq!(readable(&mut h), Some((Action::Read, false)));
    assert_eq!(
        h.host.responses(),
        ["PUT /u ka", "direct 4", "direct 6", "end 0 ka"]
    );
    assert!(!h.s.wants_direct());
}
