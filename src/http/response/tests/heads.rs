//! Responses without a file: redirects, OPTIONS, and the fields every head may carry.

use super::*;

#[test]
fn redirects() {
    let cases: [(&[u8], &str); 8] = [
        (b"/dir", "/dir/"),
        (b"/a/b?x=1&y", "/a/b/?x=1&y"),
        (b"/a?", "/a/?"),
        (b"//evil.example", "/evil.example/"),
        (b"/\\evil.example", "/evil.example/"),
        (b"/\\/\\x?q", "/x/?q"),
        (b"/a\x01b\xff", "/a%01b%FF/"),
        (b"/a b?c d\r\n", "/a%20b/?c%20d%0D%0A"),
    ];
    for (target, location) in cases {
        let r = built(|cx, out, chunks| redirect(target, false, true, cx, out, chunks));
        assert_eq!(r.planned.status, Status::MovedPermanently);
        assert_eq!(r.field("Location").as_deref(), Some(location));
        assert_eq!(r.body(), Status::MovedPermanently.page());
    }
    let h = built(|cx, out, chunks| redirect(b"/d", true, false, cx, out, chunks));
    assert!(h.body().is_empty());
    assert_eq!(
        h.planned,
        Planned {
            status: Status::MovedPermanently,
            keep_alive: false,
            body_len: 0
        }
    );
    assert_eq!(h.field("Connection").as_deref(), Some("close"));
}

#[test]
fn options_response() {
    let r = built(|cx, out, chunks| options(true, |_| {}, cx, out, chunks));
    assert_eq!(
        r.planned,
        Planned {
            status: Status::NoContent,
            keep_alive: true,
            body_len: 0
        }
    );
    assert_eq!(r.field("Allow").as_deref(), Some("GET, HEAD, OPTIONS"));
    assert_eq!(r.field("Content-Length"), None);
    assert!(r.body().is_empty());
    let r = built(|cx, out, chunks| options(false, |_| {}, cx, out, chunks));
    assert_eq!(r.field("Connection").as_deref(), Some("close"));
}

#[test]
fn hsts_on_every_response_it_is_given_to() {
    let limits = Limits::default();
    let mut cx = cx(&limits, true);
    cx.hsts = Some(b"max-age=31536000");
    let (mut out, mut chunks) = (Vec::new(), Vec::new());
    error(Status::NotFound, false, true, &cx, &mut out, &mut chunks);
    let head = String::from_utf8(out).unwrap();
    assert!(
        head.contains("\r\nStrict-Transport-Security: max-age=31536000\r\n"),
        "{head}"
    );
}

#[test]
fn redirects_to_https_keep_the_host_and_target() {
    let limits = Limits::default();
    let cx = cx(&limits, true);
    for (host, port, target, want) in [
        (
            "example.com",
            443,
            "/a?b=1",
            Some("https://example.com/a?b=1"),
        ),
        (
            "example.com:8080",
            8443,
            "/",
            Some("https://example.com:8443/"),
        ),
        ("[::1]:80", 443, "/x%20y", Some("https://[::1]/x%20y")),
        ("10.0.0.1", 443, "//evil", Some("https://10.0.0.1//evil")),
        ("evil.com/x", 443, "/", None),
        ("a@b", 443, "/", None),
        ("host:8x", 443, "/", None),
        ("[zz]", 443, "/", None),
    ] {
        let (mut out, mut chunks) = (Vec::new(), Vec::new());
        let p = to_https(
            Some(host.as_bytes()),
            port,
            target.as_bytes(),
            false,
            true,
            &cx,
            &mut out,
            &mut chunks,
        );
        let head = String::from_utf8(out).unwrap();
        match want {
            Some(loc) => {
                assert_eq!(p.status, Status::MovedPermanently, "{host}");
                assert!(
                    head.contains(&format!("\r\nLocation: {loc}\r\n")),
                    "{host}: {head}"
                );
            }
            None => assert_eq!(p.status, Status::BadRequest, "{host}"),
        }
    }
    let (mut out, mut chunks) = (Vec::new(), Vec::new());
    let p = to_https(None, 443, b"/", false, true, &cx, &mut out, &mut chunks);
    assert_eq!(p.status, Status::BadRequest, "no Host");
}
