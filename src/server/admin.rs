//! The admin listener: metrics, health and a small JSON API on an address of its own.
//!
//! Key design decision: it is off the hot path, so simplicity wins. One thread runs a
//! blocking `std::net::TcpListener` and answers one connection at a time, one request per
//! connection (`Connection: close`), with a bounded request head and a deadline for the whole
//! request so that a slow or silent client holds it for at most [`REQUEST_TIMEOUT`]. It only
//! reads what the workers publish ([`crate::metrics`]) and stats files through its own
//! [`Root`], so it can never slow a worker down.
//!
//! Endpoints (GET or HEAD):
//! - `/metrics`: Prometheus text format 0.0.4.
//! - `/healthz`: `200 ok` while the process runs.
//! - `/readyz`: `200` while serving, `503` once draining.
//! - `/api/v1/stats[?top=N]`: totals and the top N (default 10) downloaded files.
//! - `/api/v1/files?path=/url/path`: size, mtime, ETag and download count of one file; the
//!   path is percent-encoded like a request target (`/caf%C3%A9.txt`).
//!
//! The API answers with the envelope `{"code":0,"msg":"ok","data":...}`; errors carry the
//! HTTP status as `code`, a message and `"data":null`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fs::{Lookup, Root};
use crate::http::{query, Status};
use crate::metrics::{self, WorkerMetrics};

/// Longest time one connection may take to deliver its request and take its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head accepted; larger ones get 431.
const MAX_REQUEST: usize = 8 * 1024;

/// Most header fields parsed in a request head.
const MAX_HEADERS: usize = 32;

/// Top files listed by `/api/v1/stats` unless `?top=` says otherwise, and the most it lists.
const DEFAULT_TOP: usize = 10;
const MAX_TOP: usize = 100;

/// What the admin endpoints read.
pub struct AdminState {
    /// Every worker's metrics.
    pub metrics: Arc<[WorkerMetrics]>,
    /// Set once the server starts draining (the engine's shutdown flag).
    pub draining: Arc<AtomicBool>,
    /// The served root, opened as the workers open it (same dotfile rule), for `/api/v1/files`;
    /// replaced when a reload opens the root again.
    pub root: Arc<Mutex<Root>>,
    /// When the server started, for the uptime.
    pub started: Instant,
}

/// A running admin listener.
pub struct Admin {
    /// The address actually bound (its port is picked by the kernel for port 0).
    pub addr: SocketAddr,
    /// The listener thread; it runs until the process exits.
    pub thread: JoinHandle<()>,
}

/// Binds `addr`, prints `ringserve: admin listening on ADDR` on stderr and serves the admin
/// endpoints on a thread of its own. Bind errors are returned, so start-up can fail cleanly.
/// Call it after the shutdown signals are blocked, so that the thread inherits the mask.
pub fn spawn(addr: SocketAddr, state: AdminState) -> io::Result<Admin> {
    serve(bind(addr)?, state)
}

/// Binds the admin address; separate from [`serve`] so that the server can bind it before
/// dropping privileges and serve only after.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("admin listener on {addr}: {e}")))
}

/// Prints `ringserve: admin listening on ADDR` on stderr and serves the admin endpoints on
/// `listener`, on a thread of its own (see [`spawn`]).
pub fn serve(listener: TcpListener, state: AdminState) -> io::Result<Admin> {
    let admin = start(listener, state, REQUEST_TIMEOUT)?;
    eprintln!("ringserve: admin listening on {}", admin.addr);
    Ok(admin)
}

/// Serves on an already bound `listener`, giving each connection `timeout`.
fn start(listener: TcpListener, state: AdminState, timeout: Duration) -> io::Result<Admin> {
    let addr = listener.local_addr()?;
    let thread = std::thread::Builder::new()
        .name("ringserve-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        let _ = handle(stream, &state, timeout);
                    }
                    // Out of descriptors or similar: do not spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(Admin { addr, thread })
}

/// A response to send.
#[derive(Debug)]
struct Reply {
    status: Status,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn text(status: Status, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }

    /// `data` in the success envelope.
    fn ok(data: Value) -> Reply {
        Reply::json(Status::Ok, envelope(0, "ok", data))
    }

    /// An API error: the envelope with `code` = HTTP status and null data.
    fn error(status: Status, msg: &str) -> Reply {
        Reply::json(status, envelope(status.code(), msg, Value::Null))
    }

    fn json(status: Status, body: String) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body,
        }
    }
}

/// The API envelope `{"code":..,"msg":..,"data":..}` as text.
fn envelope(code: u16, msg: &str, data: Value) -> String {
    json!({ "code": code, "msg": msg, "data": data }).to_string()
}

/// Reads one request from `stream` within `timeout`, answers it and closes.
fn handle(mut stream: TcpStream, state: &AdminState, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    stream.set_write_timeout(Some(timeout))?;
    let mut buf = vec![0; MAX_REQUEST];
    let mut len = 0;
    let (reply, head_only) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(()),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or_default();
                let target = req.path.unwrap_or_default();
                break (route(method, target, state), method == "HEAD");
            }
            Ok(httparse::Status::Partial) if len == buf.len() => {
                break (
                    Reply::text(Status::HeaderFieldsTooLarge, "request head too large"),
                    false,
                )
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => break (Reply::text(Status::BadRequest, "bad request"), false),
        }
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        reply.status.code(),
        reply.status.reason(),
        reply.content_type,
        reply.body.len()
    );
    if reply.status == Status::MethodNotAllowed {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    if !head_only {
        head.push_str(&reply.body);
    }
    stream.write_all(head.as_bytes())?;
    stream.shutdown(Shutdown::Write)
}

/// Answers `method target`.
fn route(method: &str, target: &str, state: &AdminState) -> Reply {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if method != "GET" && method != "HEAD" {
        return if path.starts_with("/api/") {
            Reply::error(Status::MethodNotAllowed, "method not allowed")
        } else {
            Reply::text(Status::MethodNotAllowed, "method not allowed")
        };
    }
    match path {
        "/metrics" => {
            let mut body = String::new();
            metrics::render(&state.metrics, draining(state), &mut body);
            Reply {
                status: Status::Ok,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body,
            }
        }
        "/healthz" => Reply::text(Status::Ok, "ok"),
        "/readyz" if draining(state) => Reply::text(Status::ServiceUnavailable, "draining"),
        "/readyz" => Reply::text(Status::Ok, "ready"),
        "/api/v1/stats" => stats(target, state),
        "/api/v1/files" => file(target, state),
        p if p.starts_with("/api/") => Reply::error(Status::NotFound, "not found"),
        _ => Reply::text(Status::NotFound, "not found"),
    }
}

fn draining(state: &AdminState) -> bool {
    state.draining.load(Ordering::Acquire)
}

/// The raw (still percent-encoded) value of `key` in the query of `target`, as text; an
/// empty or non-UTF-8 value counts as absent.
fn param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let value = query::param(target.as_bytes(), key.as_bytes())?;
    std::str::from_utf8(value).ok().filter(|v| !v.is_empty())
}

/// `/api/v1/stats`: totals, uptime, backend and the most downloaded files.
fn stats(target: &str, state: &AdminState) -> Reply {
    let top = match param(target, "top").map(str::parse::<usize>) {
        None => DEFAULT_TOP,
        Some(Ok(n)) => n.min(MAX_TOP),
        Some(Err(_)) => return Reply::error(Status::BadRequest, "top must be a number"),
    };
    let totals = metrics::totals(&state.metrics);
    let mut backends: Vec<&str> = state.metrics.iter().filter_map(|w| w.backend()).collect();
    backends.dedup();
    let backend = match backends.as_slice() {
        [] => "unknown",
        [one] => one,
        _ => "mixed",
    };
    let files: Vec<Value> = metrics::top_files(&state.metrics)
        .into_iter()
        .take(top)
        .map(|(path, downloads)| json!({ "path": path, "downloads": downloads }))
        .collect();
    Reply::ok(json!({
        "requests": totals.requests,
        "bytes_sent": totals.bytes_sent,
        "connections": totals.connections,
        "active_connections": totals.active_connections,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "backend": backend,
        "workers": state.metrics.len(),
        "draining": draining(state),
        "top_files": files,
    }))
}

/// `/api/v1/files?path=`: what the server would serve there, and its download count.
fn file(target: &str, state: &AdminState) -> Reply {
    let Some(target) = param(target, "path") else {
        return Reply::error(Status::BadRequest, "missing path parameter");
    };
    let mut scratch = Vec::new();
    let Some(path) = metrics::path_key(target.as_bytes(), &mut scratch) else {
        return Reply::error(Status::BadRequest, "bad path");
    };
    let found = state
        .root
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .lookup(target.as_bytes(), &mut scratch);
    match found {
        Lookup::File { rep, .. } => {
            let downloads = metrics::top_files(&state.metrics)
                .into_iter()
                .find(|(p, _)| *p == path)
                .map_or(0, |(_, n)| n);
            Reply::ok(json!({
                "path": path,
                "size": rep.len,
                "mtime": rep.mtime.secs(),
                "etag": String::from_utf8_lossy(rep.etag.as_bytes()),
                "content_type": rep.mime,
                "downloads": downloads,
            }))
        }
        Lookup::Forbidden => Reply::error(Status::Forbidden, "forbidden"),
        Lookup::BadRequest => Reply::error(Status::BadRequest, "bad path"),
        Lookup::Redirect | Lookup::Directory { .. } | Lookup::NotFound => {
            Reply::error(Status::NotFound, "not found")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::metrics::TopFiles;

    struct Fixture {
        _dir: tempfile::TempDir,
        state: AdminState,
    }

    /// A root holding `a.txt` (5 bytes) and `.hidden`, with one worker that served `/a.txt`
    /// twice.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let all = WorkerMetrics::for_workers(1);
        all[0].set_backend("epoll");
        all[0].request(Method::Get, 200, Duration::from_millis(1));
        let mut top = TopFiles::new(8);
        top.record(b"/a.txt");
        top.record(b"/a%2etxt?x");
        top.publish(Instant::now(), &all[0]);
        let state = AdminState {
            metrics: all,
            draining: Arc::default(),
            root: Arc::new(Mutex::new(Root::open(dir.path(), false).unwrap())),
            started: Instant::now(),
        };
        Fixture { _dir: dir, state }
    }

    fn get(f: &Fixture, target: &str) -> (u16, Value) {
        let reply = route("GET", target, &f.state);
        let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        (reply.status.code(), body)
    }

    #[test]
    fn envelopes() {
        fn movable<T: Send>() {}
        movable::<AdminState>();
        assert_eq!(
            envelope(0, "ok", json!({ "a": 1 })),
            r#"{"code":0,"data":{"a":1},"msg":"ok"}"#
        );
        let e = Reply::error(Status::NotFound, "not found");
        assert_eq!(e.status.code(), 404);
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v, json!({ "code": 404, "msg": "not found", "data": null }));
    }

    #[test]
    fn health_and_readiness() {
        let f = fixture();
        assert_eq!(route("GET", "/healthz", &f.state).body, "ok\n");
        assert_eq!(route("GET", "/readyz", &f.state).status.code(), 200);
        f.state.draining.store(true, Ordering::Release);
        assert_eq!(route("GET", "/readyz", &f.state).status.code(), 503);
        assert_eq!(route("GET", "/healthz", &f.state).status.code(), 200);
        let m = route("GET", "/metrics", &f.state);
        assert!(m.content_type.contains("version=0.0.4"));
        assert!(m.body.contains("ringserve_draining 1\n"), "{}", m.body);
        assert_eq!(route("POST", "/metrics", &f.state).status.code(), 405);
        assert_eq!(route("GET", "/nope", &f.state).status.code(), 404);
    }

    #[test]
    fn stats_shape() {
        let f = fixture();
        let (status, v) = get(&f, "/api/v1/stats");
        assert_eq!(status, 200);
        assert_eq!(
            (v["code"].as_u64(), v["msg"].as_str()),
            (Some(0), Some("ok"))
        );
        let d = &v["data"];
        assert_eq!(d["requests"], 1);
        assert_eq!(d["backend"], "epoll");
        assert_eq!(d["workers"], 1);
        assert!(d["uptime_seconds"].is_u64() && d["bytes_sent"].is_u64());
        assert_eq!(
            d["top_files"],
            json!([{ "path": "/a.txt", "downloads": 2 }])
        );
        let (_, v) = get(&f, "/api/v1/stats?top=0");
        assert_eq!(v["data"]["top_files"], json!([]));
        assert_eq!(get(&f, "/api/v1/stats?top=x").0, 400);
        let (status, v) = get(&f, "/api/v1/nothing");
        assert_eq!((status, v["code"].as_u64()), (404, Some(404)));
    }

    #[test]
    fn files() {
        let f = fixture();
        let (status, v) = get(&f, "/api/v1/files?path=/a.txt");
        assert_eq!(status, 200, "{v}");
        let d = &v["data"];
        assert_eq!(
            (d["size"].as_u64(), d["downloads"].as_u64()),
            (Some(5), Some(2))
        );
        assert!(d["mtime"].as_u64().unwrap() > 1_600_000_000);
        assert!(d["etag"].as_str().unwrap().starts_with('"'));
        assert_eq!(d["content_type"], "text/plain; charset=utf-8");
        let missing = json!({ "code": 404, "msg": "not found", "data": null });
        assert_eq!(
            get(&f, "/api/v1/files?path=/missing"),
            (404, missing.clone())
        );
        assert_eq!(get(&f, "/api/v1/files?path=/.hidden"), (404, missing));
        assert_eq!(get(&f, "/api/v1/files?path=/../etc/passwd").0, 400);
        assert_eq!(get(&f, "/api/v1/files").0, 400);
    }

    /// Over a socket: a client that sends half a request and stalls is cut off after the
    /// timeout, and the next client is answered.
    #[test]
    fn slow_client_does_not_wedge() {
        let f = fixture();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = start(listener, f.state, Duration::from_millis(200)).unwrap();
        let mut slow = TcpStream::connect(admin.addr).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        let mut fast = TcpStream::connect(admin.addr).unwrap();
        fast.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        fast.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        fast.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Connection: close\r\n") && answer.ends_with("\r\n\r\nok\n"));
        let mut big = TcpStream::connect(admin.addr).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = big.write_all(&vec![b'a'; MAX_REQUEST + 10]);
        let mut answer = String::new();
        let _ = big.read_to_string(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
}
