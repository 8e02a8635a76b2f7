//! The admin listener over TCP: health, readiness, metrics (checked with `promtool` where it
//! is installed) and the JSON API, first on the library's listener with hand-fed metrics, then
//! (once the engine starts it for `--admin`) on the real binary.

mod common;

use common::*;
use ringserve::fs::Root;
use ringserve::http::Method;
use ringserve::metrics::{self, BodyKind, TopFiles, WorkerMetrics};
use ringserve::server::admin::{self, AdminState};
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The body of `GET target` on `addr` parsed as the API envelope, with the HTTP status.
fn api(addr: SocketAddr, target: &str) -> (u16, Value) {
    let resp = Conn::connect(addr).roundtrip(&get(target));
    assert_eq!(resp.expect_header("Content-Type"), "application/json");
    let v: Value = serde_json::from_slice(&resp.body).expect("JSON body");
    assert!(v["code"].is_u64() && v["msg"].is_string(), "{v}");
    (resp.status, v)
}

/// Runs `promtool check metrics` on `text` if promtool is installed; `false` if it is not.
fn promtool_check(text: &str) -> bool {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool is not installed: exposition not checked with it");
        return false;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n{text}"
    );
    true
}

/// Checks the endpoints every admin listener has, on `addr`.
fn check_common_endpoints(addr: SocketAddr) {
    let health = Conn::connect(addr).roundtrip(&get("/healthz"));
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    assert!(health.closes());
    assert_eq!(Conn::connect(addr).roundtrip(&get("/readyz")).status, 200);
    let m = Conn::connect(addr).roundtrip(&get("/metrics"));
    assert_eq!(m.status, 200);
    assert!(m
        .expect_header("Content-Type")
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(m.body).expect("UTF-8 metrics");
    assert!(
        text.contains("# TYPE ringserve_requests_total counter\n"),
        "{text}"
    );
    assert!(text.contains("ringserve_draining 0\n"), "{text}");
    promtool_check(&text);
    let (status, v) = api(addr, "/api/v1/stats");
    assert_eq!(
        (status, v["code"].as_u64(), v["msg"].as_str()),
        (200, Some(0), Some("ok"))
    );
    for key in ["requests", "bytes_sent", "connections", "uptime_seconds"] {
        assert!(v["data"][key].is_u64(), "{key}: {v}");
    }
    assert!(
        v["data"]["backend"].is_string() && v["data"]["top_files"].is_array(),
        "{v}"
    );
    let (status, v) = api(addr, "/api/v1/files?path=/nope.txt");
    assert_eq!(status, 404);
    assert_eq!(
        v,
        serde_json::json!({"code": 404, "msg": "not found", "data": null})
    );
}

#[test]
fn library_listener_endpoints() {
    let corpus = Corpus::new();
    let all = WorkerMetrics::for_workers(2);
    all[0].set_backend("epoll");
    all[1].set_backend("epoll");
    all[1].request(Method::Get, 200, Duration::from_millis(2));
    all[1].bytes(BodyKind::Sendfile, 4096);
    let mut top = TopFiles::new(16);
    top.record(format!("/{PAGE}").as_bytes());
    top.record(format!("/{PAGE}?v=2").as_bytes());
    top.record(format!("/{ONE}").as_bytes());
    top.publish(Instant::now(), &all[1]);
    let draining = Arc::new(AtomicBool::new(false));
    let state = AdminState {
        metrics: Arc::clone(&all),
        draining: Arc::clone(&draining),
        root: Arc::new(Mutex::new(Root::open(corpus.root(), false).unwrap())),
        started: Instant::now(),
    };
    let admin = admin::spawn("127.0.0.1:0".parse().unwrap(), state).expect("admin listener");
    check_common_endpoints(admin.addr);

    let (_, v) = api(admin.addr, "/api/v1/stats?top=1");
    let d = &v["data"];
    assert_eq!(
        (d["requests"].as_u64(), d["bytes_sent"].as_u64()),
        (Some(1), Some(4096))
    );
    assert_eq!(d["backend"], "epoll");
    let page = format!("/{PAGE}");
    assert_eq!(
        d["top_files"],
        serde_json::json!([{"path": page, "downloads": 2}])
    );

    let (status, v) = api(admin.addr, &format!("/api/v1/files?path=/{PAGE}"));
    assert_eq!(status, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["size"], 4096);
    assert_eq!(d["mtime"], MTIME_SECS);
    assert_eq!(d["downloads"], 2);
    let served = Server::start(Backend::Epoll, corpus.root(), &[]);
    let etag = served.fetch(&get(&page)).expect_header("ETag").to_string();
    assert_eq!(d["etag"], etag, "same validator as the public server");

    let (status, v) = api(admin.addr, "/api/v1/files?path=/caf%C3%A9.txt");
    assert_eq!(
        (status, v["data"]["path"].as_str()),
        (200, Some("/café.txt"))
    );

    draining.store(true, Ordering::Release);
    assert_eq!(
        Conn::connect(admin.addr).roundtrip(&get("/readyz")).status,
        503
    );
    let head = Conn::connect(admin.addr).roundtrip(&req("HEAD", "/healthz", &[]));
    assert_eq!((head.status, head.body.len()), (200, 0));

    let taken = admin::spawn(admin.addr, dummy_state(&corpus));
    assert!(taken.is_err(), "binding a busy address fails");
}

fn dummy_state(corpus: &Corpus) -> AdminState {
    AdminState {
        metrics: WorkerMetrics::for_workers(1),
        draining: Arc::default(),
        root: Arc::new(Mutex::new(Root::open(corpus.root(), false).unwrap())),
        started: Instant::now(),
    }
}

/// The exposition of busy metrics passes `promtool check metrics` (skipped with a note where
/// promtool is not installed: `apt-get install prometheus` provides it).
#[test]
fn promtool_accepts_exposition() {
    let all = WorkerMetrics::for_workers(3);
    for (i, w) in all.iter().enumerate() {
        w.set_backend(if i == 0 { "uring" } else { "epoll" });
        w.request(Method::Head, 304, Duration::from_micros(30 * i as u64));
        w.loop_turn(i as u64);
        w.conn_opened();
    }
    let mut text = String::new();
    metrics::render(&all, true, &mut text);
    promtool_check(&text);
}

/// The binary's admin listener: started by `--admin`, announced on stderr, never on the
/// public port, and counting downloads served by the workers.
#[test]

fn binary_admin_listener() {
    let corpus = Corpus::new();
    let server = Server::start(Backend::Epoll, corpus.root(), &["--admin", "127.0.0.1:0"]);
    let addr: SocketAddr = server
        .wait_line("ringserve: admin listening on ")
        .trim()
        .parse()
        .expect("admin address");
    assert_ne!(addr, server.addr());
    assert_eq!(
        server.fetch(&get("/metrics")).status,
        404,
        "not on the public port"
    );
    check_common_endpoints(addr);

    for _ in 0..3 {
        assert_eq!(server.fetch(&get(&format!("/{CSS}"))).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, v) = api(addr, &format!("/api/v1/files?path=/{CSS}"));
        assert_eq!(status, 200, "{v}");
        if v["data"]["downloads"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "downloads not published: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, v) = api(addr, "/api/v1/stats");
    assert!(v["data"]["requests"].as_u64() >= Some(4), "{v}");
    assert_eq!(v["data"]["top_files"][0]["path"], format!("/{CSS}"));
}
