//! Response header rules: `--cache-control` globs, `--add-header`, `--cors`, and
//! `Content-Disposition: attachment` for `?download` and `--attachment` globs.

mod common;

use common::*;
use std::time::Duration;

backend_tests!(
    cache_control_first_glob_wins,
    added_headers_on_success_only,
    cors_origin,
    downloads_named_correctly,
    attachment_globs,
    bad_rules_refused_at_start,
);

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn cache_control_first_glob_wins(backend: Backend) {
    let corpus = Corpus::new();
    let rule = format!("*.css={IMMUTABLE}");
    let args = [
        "--cache-control",
        &rule,
        "--cache-control",
        "*.html=no-cache",
        "--cache-control",
        "/dir/*=max-age=60",
    ];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = server.connect();
    for (target, want) in [
        (format!("/{CSS}"), Some(IMMUTABLE)),
        (format!("/{PAGE}"), Some("no-cache")),
        ("/".to_string(), Some("no-cache")),
        ("/dir/".to_string(), Some("no-cache")),
        ("/dir/inner.txt".to_string(), Some("max-age=60")),
        (format!("/{ONE}"), None),
        ("/with%20space.txt".to_string(), None),
    ] {
        let resp = conn.roundtrip(&get(&target));
        assert_eq!(resp.status, 200, "{target}");
        assert_eq!(resp.header("Cache-Control"), want, "{target}");
        assert!(resp.header_count("Cache-Control") <= 1);
    }
    // 304 and 206 keep it; errors do not get it.
    let etag = conn
        .roundtrip(&get(&format!("/{CSS}")))
        .expect_header("ETag")
        .to_string();
    let resp = conn.roundtrip(&req(
        "GET",
        &format!("/{CSS}"),
        &[&format!("If-None-Match: {etag}")],
    ));
    assert_eq!(resp.status, 304);
    assert_eq!(resp.header("Cache-Control"), Some(IMMUTABLE));
    let resp = conn.roundtrip(&req("GET", &format!("/{CSS}"), &["Range: bytes=0-3"]));
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("Cache-Control"), Some(IMMUTABLE));
    let resp = conn.roundtrip(&get("/missing.css"));
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("Cache-Control"), None);
}

fn added_headers_on_success_only(backend: Backend) {
    let corpus = Corpus::new();
    let args = [
        "--add-header",
        "X-Frame-Options: DENY",
        "--add-header",
        "X-Robots-Tag:noindex, nofollow",
        "--listing",
    ];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = server.connect();
    let check = |resp: &Response, present: bool| {
        let want = |v| present.then_some(v);
        assert_eq!(resp.header("X-Frame-Options"), want("DENY"), "{resp:?}");
        assert_eq!(
            resp.header("X-Robots-Tag"),
            want("noindex, nofollow"),
            "{resp:?}"
        );
    };
    let resp = conn.roundtrip(&get(&format!("/{PAGE}")));
    assert_eq!(resp.body, corpus.read(PAGE));
    check(&resp, true);
    check(
        &conn.roundtrip(&req("HEAD", &format!("/{PAGE}"), &[])),
        true,
    );
    let ims = format!("If-Modified-Since: {}", last_modified());
    let resp = conn.roundtrip(&req("GET", &format!("/{PAGE}"), &[&ims]));
    assert_eq!(resp.status, 304);
    check(&resp, true);
    let listing = conn.roundtrip(&get("/noindex/"));
    assert_eq!(listing.status, 200);
    check(&listing, true);
    check(&conn.roundtrip(&get("/missing")), false);
    check(&conn.roundtrip(&get("/dir")), false);
}

fn cors_origin(backend: Backend) {
    let corpus = Corpus::new();
    for origin in ["*", "https://app.example.com"] {
        let server = Server::start(backend, corpus.root(), &["--cors", origin]);
        let mut conn = server.connect();
        let resp = conn.roundtrip(&get(&format!("/{ONE}")));
        assert_eq!(resp.header("Access-Control-Allow-Origin"), Some(origin));
        assert!(resp.has_token("Access-Control-Expose-Headers", "Content-Range"));
        let resp = conn.roundtrip(&get("/missing"));
        assert_eq!(resp.header("Access-Control-Allow-Origin"), None);
        // A preflight request is answered for any target, and its answer may be cached.
        let preflight = [
            "Origin: https://app.example.com",
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: range",
        ];
        let resp = conn.roundtrip(&req("OPTIONS", &format!("/{MIB}"), &preflight));
        assert_eq!(resp.status, 204, "{resp:?}");
        assert_eq!(resp.header("Access-Control-Allow-Origin"), Some(origin));
        assert!(resp.has_token("Access-Control-Allow-Methods", "GET"));
        assert!(resp.has_token("Access-Control-Allow-Headers", "Range"));
        assert_eq!(resp.header("Access-Control-Max-Age"), Some("86400"));
        assert!(!resp.closes());
    }
    let server = Server::start(backend, corpus.root(), &[]);
    let resp = server.fetch(&get(&format!("/{ONE}")));
    assert_eq!(resp.header("Access-Control-Allow-Origin"), None);
    let resp = server.fetch(&req("OPTIONS", "/", &["Origin: https://app.example.com"]));
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("Access-Control-Allow-Origin"), None);
    assert_eq!(resp.header("Access-Control-Allow-Methods"), None);
}

fn downloads_named_correctly(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    for (target, want) in [
        (
            format!("/{PAGE}?download"),
            format!("attachment; filename=\"{PAGE}\""),
        ),
        (
            "/dir/inner.txt?x=1&download=1".to_string(),
            "attachment; filename=\"inner.txt\"".to_string(),
        ),
        (
            "/?download".to_string(),
            "attachment; filename=\"index.html\"".to_string(),
        ),
        (
            "/caf%C3%A9.txt?download".to_string(),
            "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%C3%A9.txt".to_string(),
        ),
        (
            "/100%25.txt?download".to_string(),
            "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt".to_string(),
        ),
    ] {
        let resp = conn.roundtrip(&get(&target));
        assert_eq!(resp.status, 200, "{target}");
        assert_eq!(
            resp.header("Content-Disposition"),
            Some(want.as_str()),
            "{target}"
        );
    }
    let resp = conn.roundtrip(&get(&format!("/{PAGE}?downloads")));
    assert_eq!(resp.header("Content-Disposition"), None);
    let resp = conn.roundtrip(&get(&format!("/{PAGE}")));
    assert_eq!(resp.header("Content-Disposition"), None);
    assert_eq!(resp.body, corpus.read(PAGE));
}

fn attachment_globs(backend: Backend) {
    let corpus = Corpus::new();
    let args = ["--attachment", "*.png", "--attachment", "/a/*"];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = server.connect();
    for (target, name) in [
        (format!("/{PNG}"), Some(PNG)),
        ("/a/b.txt".to_string(), Some("b.txt")),
        (format!("/{CSS}"), None),
    ] {
        let resp = conn.roundtrip(&get(&target));
        let want = name.map(|n| format!("attachment; filename=\"{n}\""));
        assert_eq!(
            resp.header("Content-Disposition"),
            want.as_deref(),
            "{target}"
        );
    }
}

fn bad_rules_refused_at_start(backend: Backend) {
    let corpus = Corpus::new();
    for (args, needle) in [
        (&["--cache-control", "*.js"][..], "expected GLOB=VALUE"),
        (
            &["--add-header", "Content-Length: 0"][..],
            "set by the server",
        ),
        // clap quotes the value, so the message is cut at the CR: still one refusing line.
        (
            &["--add-header", "X-Evil: a\r\nInjected: 1"][..],
            "invalid value 'X-Evil",
        ),
        (
            &["--add-header", "X-Evil: a\u{7f}"][..],
            "control character",
        ),
        (&["--cors", "example.com/"][..], "invalid origin"),
        (&["--precompressed", "deflate"][..], "unknown coding"),
    ] {
        let (status, stderr) =
            Server::run_to_exit(backend, corpus.root(), args, Duration::from_secs(10));
        assert!(!status.success(), "{args:?}");
        assert_eq!(stderr.len(), 1, "{args:?}: {stderr:?}");
        assert!(
            stderr[0].starts_with("ringserve: error:") && stderr[0].contains(needle),
            "{args:?}: {stderr:?}"
        );
    }
}
