//! Configuration reload on SIGHUP: the server reads its `--config` file (and the rest of its
//! configuration) again; what is new applies to new connections and requests, while the ones
//! under way run on, none dropped. Each test waits for the server's `configuration reloaded`
//! or `reload refused` line, which it prints once every worker has the outcome.

mod common;

use common::*;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

backend_tests!(
    raised_rate_serves_new_downloads_fast_and_finishes_paced_ones,
    invalid_configuration_is_refused_and_the_old_one_kept,
    new_deny_rule_applies_to_new_connections,
    raised_connection_cap_admits_waiting_connections,
    root_and_access_log_reload_and_restart_only_options_stay,
);

const KIB: usize = 1024;

/// The prefix of the line a successful reload ends with.
const RELOADED: &str = "ringserve: configuration reloaded";
/// The prefix of the line a refused reload prints.
const REFUSED: &str = "ringserve: reload refused: ";

/// A 512 KiB download paced at 256 KiB/s takes 1.9 s (the first 100 ms worth go at once);
/// anything faster than this was not paced at that rate.
const PACED_AT_LEAST: Duration = Duration::from_millis(1500);

/// Writes a file of `len` pseudo-random bytes called `name` under the root; returns them.
fn write_file(corpus: &Corpus, name: &str, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(corpus.path(name), &data).unwrap();
    data
}

/// The configuration file of a test, beside (not in) the served root.
fn config_file(corpus: &Corpus, text: &str) -> PathBuf {
    let path = corpus.outside().join("ringserve.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Rewrites the configuration file at `path` with `text` and sends SIGHUP.
fn reload(server: &Server, path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    server.signal("HUP");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn raised_rate_serves_new_downloads_fast_and_finishes_paced_ones(backend: Backend) {
    let corpus = Corpus::new();
    let small = write_file(&corpus, "512k.bin", 512 * KIB);
    let big = write_file(&corpus, "2m.bin", 2048 * KIB);
    let config = config_file(&corpus, "limit-rate = \"256k\"\n");
    let args = ["--config", config.to_str().unwrap()];
    let server = Server::start(backend, corpus.root(), &args);
    let start = Instant::now();
    let mut paced: Vec<Conn> = (0..100).map(|_| server.connect()).collect();
    for conn in &mut paced {
        conn.send(get("/512k.bin"));
    }
    // Every response is under way (its first bucket has arrived) before the reload.
    for conn in &mut paced {
        conn.fill(4096);
    }
    let downloads: Vec<_> = paced
        .into_iter()
        .map(|mut conn| {
            thread::spawn(move || {
                let resp = conn.read_response(false);
                (resp, Instant::now())
            })
        })
        .collect();
    reload(&server, &config, "limit-rate = \"8m\"\n");
    server.wait_line(RELOADED);
    // 2 MiB at 8 MiB/s takes a quarter of a second; at the old 256 KiB/s it would take 8 s.
    let fast = Instant::now();
    let resp = server.fetch(&get("/2m.bin"));
    let took = fast.elapsed();
    assert!(resp.body == big, "2 MiB body differs: {resp:?}");
    assert!(took < Duration::from_secs(2), "new download took {took:?}");
    for download in downloads {
        let (resp, done) = download.join().expect("a paced download failed");
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(
            resp.body == small,
            "a paced download was truncated or differs"
        );
        // Responses under way keep the pacing they started with.
        let paced_for = done - start;
        assert!(paced_for >= PACED_AT_LEAST, "finished after {paced_for:?}");
    }
}

fn invalid_configuration_is_refused_and_the_old_one_kept(backend: Backend) {
    let corpus = Corpus::new();
    let data = write_file(&corpus, "512k.bin", 512 * KIB);
    let config = config_file(&corpus, "limit-rate = \"256k\"\n");
    let args = ["--config", config.to_str().unwrap()];
    let mut server = Server::start(backend, corpus.root(), &args);
    let bad = [
        ("limit-rate = \"fast\"\n", "invalid rate \"fast\""),
        (
            "limit-rate = \"8m\"\nlimit-rat = \"8m\"\n",
            "unknown key `limit-rat`",
        ),
    ];
    for (i, (text, why)) in bad.into_iter().enumerate() {
        reload(&server, &config, text);
        let reasons = server.wait_lines(REFUSED, i + 1);
        assert!(reasons[i].contains(why), "{reasons:?}");
        assert!(reasons[i].contains("ringserve.toml"), "{reasons:?}");
    }
    // Nothing of either file applies: a download is still paced at 256 KiB/s, not 8 MiB/s.
    let start = Instant::now();
    let resp = server.fetch(&get("/512k.bin"));
    assert!(resp.body == data, "body differs");
    let took = start.elapsed();
    assert!(took >= PACED_AT_LEAST, "took {took:?}: no longer paced");
    assert_eq!(server.fetch(&get(&format!("/{ONE}"))).body, b"x");
    assert!(server.is_running());
    let lines = server.stderr_lines();
    assert!(!lines.iter().any(|l| l.starts_with(RELOADED)), "{lines:?}");
}

fn new_deny_rule_applies_to_new_connections(backend: Backend) {
    let corpus = Corpus::new();
    let config = config_file(&corpus, "");
    let args = ["--config", config.to_str().unwrap()];
    let server = Server::start(backend, corpus.root(), &args);
    let page = format!("/{PAGE}");
    let mut before = Conn::connect_from(server.addr(), ip("127.0.0.2"));
    assert_eq!(before.roundtrip(&get(&page)).status, 200);
    reload(&server, &config, "deny = [\"127.0.0.2\"]\n");
    server.wait_line(RELOADED);
    // A new connection from the denied address is closed before a byte is read...
    let mut denied = Conn::connect_from(server.addr(), ip("127.0.0.2"));
    denied.send_lossy(get(&page));
    assert!(
        denied.read_until_closed().is_empty(),
        "denied client served"
    );
    // ...while the one it opened before the reload is not dropped, and others are served.
    assert_eq!(before.roundtrip(&get(&page)).body, corpus.read(PAGE));
    let mut other = Conn::connect_from(server.addr(), ip("127.0.0.1"));
    assert_eq!(other.roundtrip(&get(&page)).status, 200);
}

fn raised_connection_cap_admits_waiting_connections(backend: Backend) {
    let corpus = Corpus::new();
    let config = config_file(&corpus, "max-conns = 1\n");
    let args = ["--workers", "1", "--config", config.to_str().unwrap()];
    let server = Server::start(backend, corpus.root(), &args);
    let page = format!("/{PAGE}");
    let mut first = server.connect();
    assert_eq!(first.roundtrip(&get(&page)).status, 200);
    // The worker is at its cap: this one waits in the accept queue...
    let mut second = server.connect();
    second.send(get(&page));
    reload(&server, &config, "max-conns = 2\n");
    server.wait_line(RELOADED);
    // ...until the reload makes room for it, with the first one still open.
    assert_eq!(second.read_response(false).body, corpus.read(PAGE));
    assert_eq!(first.roundtrip(&get(&page)).status, 200);
}

/// A configuration file serving `root` on a port of its own with `workers` workers, the
/// access log set to `log`, plus `extra` lines.
fn full_config(backend: Backend, root: &Path, workers: usize, log: &str, extra: &str) -> String {
    format!(
        "root = {root:?}\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\nbackend = \"{}\"\n\
         access-log = {log:?}\n{extra}",
        backend.as_arg(),
        root = root.to_str().unwrap(),
    )
}

fn root_and_access_log_reload_and_restart_only_options_stay(backend: Backend) {
    let corpus = Corpus::new();
    let other = corpus.outside().join("other-root");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join(ONE), "the other root\n").unwrap();
    let log = corpus.outside().join("access.json");
    let config = config_file(&corpus, &full_config(backend, corpus.root(), 2, "off", ""));
    let mut server = Server::start_exact(&["--config", config.to_str().unwrap()], &[], 1, 2);
    let one = format!("/{ONE}");
    let mut kept = server.connect();
    assert_eq!(kept.roundtrip(&get(&one)).body, b"x");

    let json = "access-log-format = \"json\"\n";
    let log_path = log.to_str().unwrap();
    reload(
        &server,
        &config,
        &full_config(backend, &other, 3, log_path, json),
    );
    server.wait_line(RELOADED);
    let lines = server.stderr_lines();
    let kept_line = "ringserve: reload: --workers changed but needs a restart";
    assert!(lines.iter().any(|l| l.starts_with(kept_line)), "{lines:?}");
    assert_eq!(server.fetch(&get(&one)).body, b"the other root\n");
    // A keep-alive connection opened before the reload goes on, under the new root too.
    assert_eq!(kept.roundtrip(&get(&one)).body, b"the other root\n");

    // A root that cannot be opened refuses the reload: the other root stays.
    let missing = corpus.outside().join("missing");
    reload(
        &server,
        &config,
        &full_config(backend, &missing, 2, "off", ""),
    );
    let reason = server.wait_line(REFUSED);
    assert!(
        reason.starts_with("root ") && reason.contains("missing"),
        "{reason}"
    );
    assert_eq!(server.fetch(&get(&one)).body, b"the other root\n");
    drop(kept);

    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(5)).success());
    let text = std::fs::read_to_string(&log).expect("the reload opened the new access log");
    let uris: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(
        uris.len(),
        3,
        "the requests after the reload, as JSON: {text}"
    );
    assert!(uris.iter().all(|l| l["uri"] == one.as_str()), "{text}");
}
