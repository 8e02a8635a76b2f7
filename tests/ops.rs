//! Operations: access-log formats and reopening on SIGUSR1, lines for cut-short downloads,
//! privilege dropping with `--user`, systemd socket activation, and the pipes gauge.
//!
//! Socket activation is tested without systemd: the test passes a socket as descriptor 3
//! (`dup2` between fork and exec) and sets `LISTEN_FDS`; `LISTEN_PID` must be the server's
//! own pid, known only after the fork, so a shell sets it to its `$$` and then `exec`s the
//! server (as `systemd-socket-activate` does), which keeps the forked child free of anything
//! but async-signal-safe calls.

mod common;

use common::*;
use serde_json::Value;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

backend_tests!(
    access_log_json,
    access_log_reopens_on_sigusr1,
    sigusr1_without_log_file_keeps_serving,
    cut_short_download_is_logged,
    user_drops_root,
    socket_activation_serves_on_passed_socket,
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

/// The numbers on the `key:` line (`Uid`, `Gid`, `Groups`) of `/proc/PID/status`.
fn proc_ids(pid: &str, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")));
    let line = line.unwrap_or_else(|| panic!("no {key} in {status}"));
    line.split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Whether the tests run as root; the privilege tests are skipped (with a note) otherwise.
fn is_root() -> bool {
    let root = proc_ids("self", "Uid")[1] == 0;
    if !root {
        eprintln!("not running as root: privilege test skipped");
    }
    root
}

/// The user and group ids of `nobody`.
fn nobody() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        assert!(out.status.success(), "id {flag} nobody: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// Asserts that the process failed with a `ringserve: error:` line containing `what`.
fn assert_failed_with(status: ExitStatus, stderr: &[String], what: &str) {
    assert!(!status.success(), "exit {status}; {stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("ringserve: error: ") && l.contains(what)),
        "no error line with {what:?} in {stderr:?}"
    );
}

fn user_drops_root(backend: Backend) {
    if !is_root() {
        return;
    }
    let (uid, gid) = nobody();
    let corpus = Corpus::new();
    let private = corpus.path("root-only.txt");
    std::fs::write(&private, "only root may read this").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(backend, corpus.root(), &["--user", "nobody"]);
    server.wait_line(&format!(
        "ringserve: running as user nobody (uid {uid}, gid {gid})"
    ));
    let pid = server.pid().to_string();
    assert_eq!(
        proc_ids(&pid, "Uid"),
        [uid; 4],
        "real, effective, saved, fs"
    );
    assert_eq!(proc_ids(&pid, "Gid"), [gid; 4]);
    assert!(
        !proc_ids(&pid, "Groups").contains(&0),
        "root's groups dropped"
    );
    let resp = server.fetch(&get(&format!("/{PAGE}")));
    assert!(
        resp.status == 200 && resp.body == corpus.read(PAGE),
        "{resp:?}"
    );
    let denied = server.fetch(&get("/root-only.txt"));
    assert_eq!(denied.status, 403, "files are opened as nobody: {denied:?}");
    stop(server);
}

#[test]
fn unknown_user_fails() {
    let corpus = Corpus::new();
    let args = ["--user", "no-such-user-ringserve"];
    let (status, stderr) = Server::run_to_exit(Backend::Epoll, corpus.root(), &args, IO_TIMEOUT);
    assert_failed_with(
        status,
        &stderr,
        "--user no-such-user-ringserve: no user named",
    );
}

/// A process that is not root can only "switch" to the user it already is.
#[test]
fn switching_users_needs_root() {
    if !is_root() {
        return;
    }
    let (uid, gid) = nobody();
    let corpus = Corpus::new();
    let outside = corpus.outside();
    std::fs::set_permissions(outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |user: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringserve"));
        cmd.uid(uid)
            .gid(gid)
            .args(["--root", corpus.root().to_str().unwrap()]);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--backend",
            "epoll",
        ]);
        cmd.args(["--access-log", "off", "--user", user]);
        cmd
    };
    let (status, stderr) = Server::command_to_exit(as_nobody("root"), IO_TIMEOUT);
    assert_failed_with(status, &stderr, "only root can switch users");
    let server = Server::start_command(as_nobody("nobody"), 1, 1);
    server.wait_line("ringserve: already running as user nobody");
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
    stop(server);
}

/// A command running the binary with `args` and descriptor `fd` of the test process as its
/// descriptor 3, with `LISTEN_FDS=1` and, given `Some(pid)`, `LISTEN_PID=pid`, else
/// `LISTEN_PID` set to the server's own pid.
fn activated(fd: RawFd, listen_pid: Option<&str>, args: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_ringserve");
    let mut cmd = match listen_pid {
        Some(pid) => {
            let mut cmd = Command::new(bin);
            cmd.env("LISTEN_PID", pid);
            cmd
        }
        None => {
            let mut cmd = Command::new("/bin/sh");
            cmd.args([
                "-c",
                "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"",
                bin,
            ]);
            cmd
        }
    };
    cmd.args(args).env("LISTEN_FDS", "1");
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (dup2, fcntl) on descriptors, touching no memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                // Already in place: only clear close-on-exec (dup2 would leave it set).
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn socket_activation_serves_on_passed_socket(backend: Backend) {
    let corpus = Corpus::new();
    let passed = TcpListener::bind("127.0.0.1:0").unwrap();
    // The server must not bind --listen: this address is taken.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let root = corpus.root().to_str().unwrap();
    let args = [
        "--root",
        root,
        "--listen",
        &busy_addr,
        "--workers",
        "2",
        "--backend",
        backend.as_arg(),
        "--access-log",
        "off",
    ];
    let server = Server::start_command(activated(passed.as_raw_fd(), None, &args), 1, 2);
    assert_eq!(server.addrs(), [passed.local_addr().unwrap()]);
    server.wait_line("ringserve: serving on 1 socket(s) passed by the service manager");
    // Connections queue on the one socket the workers share; every one is answered.
    let conns: Vec<Conn> = (0..8).map(|_| server.connect()).collect();
    for mut conn in conns {
        let resp = conn.roundtrip(&get(&format!("/{PAGE}")));
        assert!(
            resp.status == 200 && resp.body == corpus.read(PAGE),
            "{resp:?}"
        );
    }
    stop(server);
}

/// Variables meant for another process (a parent's `LISTEN_PID`) are ignored.
#[test]
fn socket_activation_ignores_other_pids() {
    let corpus = Corpus::new();
    let passed = TcpListener::bind("127.0.0.1:0").unwrap();
    let root = corpus.root().to_str().unwrap();
    let args = [
        "--root",
        root,
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--backend",
        "epoll",
    ];
    let cmd = activated(passed.as_raw_fd(), Some("1"), &args);
    let server = Server::start_command(cmd, 1, 1);
    assert_ne!(
        server.addr(),
        passed.local_addr().unwrap(),
        "bound --listen instead"
    );
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
    stop(server);
}

/// Anything but a listening TCP socket as descriptor 3 is an error, not silently ignored.
#[test]
fn socket_activation_refuses_other_descriptors() {
    let corpus = Corpus::new();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let root = corpus.root().to_str().unwrap();
    let args = ["--root", root, "--workers", "1", "--backend", "epoll"];
    let (status, stderr) =
        Server::command_to_exit(activated(udp.as_raw_fd(), None, &args), IO_TIMEOUT);
    assert_failed_with(
        status,
        &stderr,
        "descriptor 3 is not a listening TCP socket",
    );
}

/// `ringserve_pipes_in_use` counts the splice path's pooled pipes and stays 0 on sendfile.
#[test]
fn pipes_gauge_follows_the_splice_pool() {
    let corpus = Corpus::new();
    for (body, pipes) in [("sendfile", "0"), ("splice", "1")] {
        let args = ["--admin", "127.0.0.1:0", "--body", body, "--workers", "1"];
        let server = Server::start(Backend::Epoll, corpus.root(), &args);
        let admin: std::net::SocketAddr = server
            .wait_line("ringserve: admin listening on ")
            .trim()
            .parse()
            .unwrap();
        let resp = server.fetch(&get(&format!("/{MIB}")));
        assert!(
            resp.status == 200 && resp.body == corpus.read(MIB),
            "{body}"
        );
        let metrics = Conn::connect(admin).roundtrip(&get("/metrics"));
        let text = String::from_utf8(metrics.body).unwrap();
        let gauge = text
            .lines()
            .find_map(|l| l.strip_prefix("ringserve_pipes_in_use "));
        assert_eq!(gauge, Some(pipes), "--body {body}");
        stop(server);
    }
}
