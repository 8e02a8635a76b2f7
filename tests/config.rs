//! Configuration sources end to end: the binary started from a TOML file, environment
//! variables overriding the file and flags overriding both, `check-config`, and the exit
//! status and message of invalid configurations.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary to completion with `args` and the extra environment `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringserve"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run ringserve")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `body` to `name` beside the corpus root (outside of it) and returns its path.
fn write_file(corpus: &Corpus, name: &str, body: &str) -> String {
    let path = corpus.outside().join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// A config file serving the corpus on a free loopback port with one epoll worker and no log.
fn server_toml(root: &Path) -> String {
    format!(
        "root = {}\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\nbackend = \"epoll\"\naccess_log = \"off\"\n",
        toml::Value::String(root.display().to_string())
    )
}

/// Asserts `out` is a usage error: exit 2, one `ringserve: error:` line mentioning `needle`.
fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("ringserve: error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn server_runs_from_config_file() {
    let corpus = Corpus::new();
    let path = write_file(&corpus, "ringserve.toml", &server_toml(corpus.root()));
    let server = Server::start_exact(&["--config", &path], &[], 1, 1);
    let resp = server.fetch(&get(&format!("/{ONE}")));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"x");
    assert_eq!(server.fetch(&get("/.hidden")).status, 404, "dotfiles off");
}

#[test]
fn environment_overrides_file_and_flags_override_environment() {
    let corpus = Corpus::new();
    let body = server_toml(corpus.root()) + "dotfiles = false\n";
    let path = write_file(&corpus, "ringserve.toml", &body);
    let env = [("RINGSERVE_DOTFILES", "true")];
    let server = Server::start_exact(&["--config", &path], &env, 1, 1);
    assert_eq!(server.fetch(&get("/.hidden")).status, 200, "env beats file");

    let env = [
        ("RINGSERVE_CONFIG", path.as_str()),
        ("RINGSERVE_ROOT", "/nonexistent"),
    ];
    let root = corpus.root().display().to_string();
    let server = Server::start_exact(&["--root", &root], &env, 1, 1);
    assert_eq!(
        server.fetch(&get(&format!("/{ONE}"))).status,
        200,
        "flag beats env"
    );

    let body = "grace = \"1s\"\nkeepalive-requests = 5\n";
    let path = write_file(&corpus, "grace.toml", body);
    let args = ["check-config", "--config", &path, "--root", &root];
    let out = run(&args, &[("RINGSERVE_GRACE", "2s")]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("grace = \"2s\"\n"), "{stdout}");
    assert!(stdout.contains("keepalive-requests = 5\n"), "{stdout}");
    let out = run(
        &[&args[..], &["--grace", "3s"]].concat(),
        &[("RINGSERVE_GRACE", "2s")],
    );
    assert!(text(&out.stdout).contains("grace = \"3s\"\n"));
}

#[test]
fn check_config_prints_loadable_toml() {
    let corpus = Corpus::new();
    let path = write_file(&corpus, "ringserve.toml", &server_toml(corpus.root()));
    let env = [("RINGSERVE_LISTEN", "127.0.0.1:0,[::1]:0")];
    let out = run(
        &["check-config", "--config", &path, "--max-ranges", "3"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let table: toml::Table = printed.parse().expect("check-config prints TOML");
    assert_eq!(table["listen"].as_array().map(Vec::len), Some(2));
    assert_eq!(table["max-ranges"].as_integer(), Some(3));
    assert_eq!(table["backend"].as_str(), Some("epoll"));

    let again = write_file(&corpus, "effective.toml", &printed);
    let out = run(&["check-config", "--config", &again], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), printed, "round trip");
}

#[test]
fn invalid_configurations_exit_2() {
    let corpus = Corpus::new();
    let root = corpus.root().display().to_string();
    let path = write_file(&corpus, "typo.toml", "keepalive_timout = \"5s\"\n");
    let out = run(&["--config", &path, "--root", &root], &[]);
    assert_usage_error(&out, "unknown key `keepalive_timout`");
    let out = run(&["check-config", "--config", &path], &[]);
    assert_usage_error(&out, "did you mean `keepalive-timeout`");

    let out = run(
        &["check-config", "--root", &root],
        &[("RINGSERVE_WORKERS", "lots")],
    );
    assert_usage_error(&out, "RINGSERVE_WORKERS");
    let out = run(&["check-config", "--root", "/nonexistent/root"], &[]);
    assert_usage_error(&out, "/nonexistent/root");
    let out = run(&["--config", "/nonexistent/ringserve.toml"], &[]);
    assert_usage_error(&out, "/nonexistent/ringserve.toml");
}
