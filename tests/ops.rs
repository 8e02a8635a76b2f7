//! Operations: access-log formats and reopening on SIGUSR1, lines for cut-short downloads,
//! privilege dropping with `--user`, systemd socket activation, and the pipes gauge.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

backend_tests!(
    access_log_json,
    access_log_reopens_on_sigusr1,
    sigusr1_without_log_file_keeps_serving,
    cut_short_download_is_logged,
);

/// How long an idle server may take to exit after SIGTERM.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// Stops `server` with SIGTERM (which flushes the logs) and checks it exits cleanly.
fn stop(mut server: Server) {
    server.signal("TERM");
    assert!(server.wait_exit(PROMPT_EXIT).success());
}

/// The lines of the log file at `path`.
fn log_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines().map(str::to_string).collect()
}

/// Each line of `path` parsed as a JSON object.
fn json_lines(path: &Path) -> Vec<Value> {
    let raw = std::fs::read(path).unwrap();
    let text = String::from_utf8(raw).expect("the log is valid UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn access_log_json(backend: Backend) {
    let corpus = Corpus::new();
    let log = corpus.outside().join("access.json");
    let args = [
        "--access-log",
        log.to_str().unwrap(),
        "--access-log-format",
        "json",
    ];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = server.connect();
    let hostile = "GET /page.html?q=%22x%22&t=\\ HTTP/1.1\r\nHost: h\r\n\
                   Referer: http://r.example/\"quoted\"\r\n\
                   User-Agent: bad\tua \u{e9}\r\n\r\n";
    let mut raw = hostile.as_bytes().to_vec();
    // Invalid UTF-8 (obs-text) in the user agent, which httparse lets through.
    let at = raw.windows(3).position(|w| w == b"bad").unwrap();
    raw.splice(at..at, [0xff, 0xfe]);
    conn.send(&raw);
    let resp = conn.read_response(false);
    assert_eq!(resp.status, 200);
    drop(conn);
    let missing = server.fetch(&req("HEAD", "/missing", &["Connection: close"]));
    assert_eq!(missing.status, 404);
    let mut bad = server.connect();
    bad.send(b"GET /\x01 HTTP/1.1\r\n\r\n");
    assert_eq!(bad.read_response(false).status, 400);
    stop(server);

    let lines = json_lines(&log);
    assert_eq!(lines.len(), 3, "{lines:?}");
    // Workers buffer their lines separately: find each by its status.
    let by_status = |code: u64| {
        let found = lines.iter().find(|l| l["status"] == code);
        found.unwrap_or_else(|| panic!("no {code} line in {lines:?}"))
    };
    let page = by_status(200);
    let time = page["time"].as_str().unwrap();
    assert!(
        time.len() == 25 && time.as_bytes()[10] == b'T' && time.ends_with("+00:00"),
        "{time}"
    );
    assert_eq!(page["remote_addr"], "127.0.0.1");
    assert_eq!(page["method"], "GET");
    assert_eq!(page["uri"], "/page.html?q=%22x%22&t=\\");
    assert_eq!(page["protocol"], "HTTP/1.1");
    assert_eq!(page["status"], 200);
    assert_eq!(page["body_bytes_sent"], 4096);
    let head_len = resp
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum::<usize>()
        + "HTTP/1.1 200 OK\r\n\r\n".len();
    assert_eq!(page["bytes_sent"], 4096 + head_len as u64);
    assert!(page["request_time"].as_f64().unwrap() >= 0.0);
    assert_eq!(page["referer"], "http://r.example/\"quoted\"");
    assert_eq!(page["user_agent"], "\u{fffd}\u{fffd}bad\tua \u{e9}");
    let head = by_status(404);
    assert_eq!(
        (head["method"].as_str(), head["status"].as_u64()),
        (Some("HEAD"), Some(404))
    );
    assert_eq!(
        (head["body_bytes_sent"].as_u64(), head["referer"].clone()),
        (Some(0), Value::Null)
    );
    let bad = by_status(400);
    assert_eq!(
        (bad["method"].clone(), bad["uri"].clone()),
        (Value::Null, Value::Null)
    );
}

fn access_log_reopens_on_sigusr1(backend: Backend) {
    let corpus = Corpus::new();
    let log = corpus.outside().join("access.log");
    let rotated = corpus.outside().join("access.log.1");
    let server = Server::start(
        backend,
        corpus.root(),
        &["--access-log", log.to_str().unwrap()],
    );
    assert_eq!(server.fetch(&get("/one.txt?before")).status, 200);
    std::fs::rename(&log, &rotated).unwrap();
    server.signal("USR1");
    // Each of the two workers reopens its file and says so.
    let reopened = format!("ringserve: access log {} reopened", log.display());
    server.wait_lines(&reopened, 2);
    assert!(log.exists(), "reopening creates the file");
    for _ in 0..4 {
        assert_eq!(server.fetch(&get("/one.txt?after")).status, 200);
    }
    stop(server);
    let old = log_lines(&rotated);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].contains("/one.txt?before"), "{old:?}");
    let new = log_lines(&log);
    assert_eq!(new.len(), 4, "{new:?}");
    assert!(new.iter().all(|l| l.contains("/one.txt?after")), "{new:?}");
}

fn sigusr1_without_log_file_keeps_serving(backend: Backend) {
    let corpus = Corpus::new();
    let mut server = Server::start(backend, corpus.root(), &[]);
    server.signal("USR1");
    server.signal("USR1");
    assert_eq!(server.fetch(&get("/one.txt")).body, b"x");
    assert!(server.is_running(), "SIGUSR1 must not kill the server");
    stop(server);
}

fn cut_short_download_is_logged(backend: Backend) {
    let corpus = Corpus::new();
    let log = corpus.outside().join("access.json");
    let args = [
        "--access-log",
        log.to_str().unwrap(),
        "--access-log-format",
        "json",
        "--grace",
        "1s",
    ];
    let server = Server::start(backend, corpus.root(), &args);
    let mut conn = server.connect();
    conn.send(get(&format!("/{BIG}")));
    conn.fill(1 << 20);
    // Closing with unread bytes resets the connection; the server logs the response with the
    // bytes it got out, at the latest when the drain gives up on it.
    drop(conn);
    stop(server);
    let lines = json_lines(&log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let body = lines[0]["body_bytes_sent"].as_u64().unwrap();
    assert!(
        ((1 << 20) - 1024..BIG_LEN).contains(&body),
        "body_bytes_sent {body}"
    );
    assert_eq!(lines[0]["status"], 200);
}
