//! The configuration from every source, its precedence, checks and round trips.

use std::path::Path;

use clap::CommandFactory;

use super::*;

/// Parses `args` (program name implied) with exactly the environment `env`.
fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Action, String> {
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(v))
    };
    Action::parse(
        std::iter::once("ringserve").chain(args.iter().copied()),
        &lookup,
    )
    .map_err(|e| e.to_string())
}

fn serve(args: &[&str], env: &[(&str, &str)]) -> Config {
    match parse(args, env) {
        Ok(Action::Serve(config)) => config,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn check_config(args: &[&str], env: &[(&str, &str)]) -> (Config, String) {
    match parse(&[&["check-config"], args].concat(), env) {
        Ok(Action::CheckConfig { config, toml }) => (config, toml),
        other => panic!("{args:?}: {other:?}"),
    }
}

/// A temporary directory holding `ringserve.toml` with `text`.
fn file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringserve.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert!(parse_duration("2w").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("999999999999999999m").is_err());
}

#[test]
fn defaults_and_access_log() {
    let c = Config::try_from_iter(["ringserve"]).unwrap();
    assert_eq!(c.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
    assert_eq!(c.access_log, AccessLog::Stdout);
    assert_eq!(c.limits.max_ranges, 64);
    assert_eq!(c.admin, None);
    let c = Config::try_from_iter(["ringserve", "--access-log", "off", "--workers", "0"]).unwrap();
    assert_eq!(c.access_log, AccessLog::Off);
    assert_eq!(c.workers, 1);
    assert!(Config::try_from_iter(["ringserve", "--backend", "bogus"]).is_err());
}

#[test]
fn precedence_flag_env_file_default() {
    let (_dir, path) =
        file("keepalive-timeout = \"1s\"\nworkers = 3\ngrace = \"5s\"\nmax_ranges = \"7\"\n");
    let env = [
        ("RINGSERVE_KEEPALIVE_TIMEOUT", "2s"),
        ("RINGSERVE_WORKERS", "4"),
    ];
    let c = serve(&["--config", &path, "--keepalive-timeout", "3s"], &env);
    assert_eq!(c.keepalive_timeout, secs(3), "flag beats env and file");
    assert_eq!(c.workers, 4, "env beats file");
    assert_eq!(c.grace, secs(5), "file beats default");
    assert_eq!(c.limits.max_ranges, 7, "numbers may be strings");
    assert_eq!(c.send_timeout, secs(60), "default");
    let c = serve(&["--config", &path], &[]);
    assert_eq!((c.keepalive_timeout, c.workers), (secs(1), 3));
}

#[test]
fn config_file_named_by_env() {
    let (_dir, path) = file("header_timeout = 9\n");
    let c = serve(&[], &[("RINGSERVE_CONFIG", &path)]);
    assert_eq!(c.header_timeout, secs(9), "integers are plain seconds");
    let (_other, flag_path) = file("header_timeout = 8\n");
    let c = serve(&["--config", &flag_path], &[("RINGSERVE_CONFIG", &path)]);
    assert_eq!(c.header_timeout, secs(8), "--config beats RINGSERVE_CONFIG");
}

#[test]
fn booleans_from_every_source() {
    let (_dir, path) = file("dotfiles = true\n");
    assert!(serve(&["--config", &path], &[]).dotfiles);
    let off = [("RINGSERVE_DOTFILES", "false")];
    assert!(!serve(&["--config", &path], &off).dotfiles);
    assert!(serve(&["--config", &path, "--dotfiles"], &off).dotfiles);
    assert!(serve(&[], &[("RINGSERVE_DOTFILES", "yes")]).dotfiles);
    let err = parse(&[], &[("RINGSERVE_DOTFILES", "maybe")]).unwrap_err();
    assert!(
        err.contains("RINGSERVE_DOTFILES") && err.contains("maybe"),
        "{err}"
    );
}

#[test]
fn repeatable_options_take_arrays_and_lists() {
    let (_dir, path) = file("listen = [\"127.0.0.1:1\", \"[::1]:2\"]\n");
    let both: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()];
    assert_eq!(serve(&["--config", &path], &[]).listen, both);
    let env = [("RINGSERVE_LISTEN", "127.0.0.1:3, 127.0.0.1:4")];
    let c = serve(&["--config", &path], &env);
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.listen[1].port(), 4, "env replaces the file's list");
    let c = serve(&["--config", &path, "--listen", "127.0.0.1:5"], &env);
    assert_eq!(c.listen, vec!["127.0.0.1:5".parse().unwrap()]);
    let (_dir, path) = file("root = [\"a\", \"b\"]\n");
    let err = parse(&["--config", &path], &[]).unwrap_err();
    assert!(err.contains("root: takes a single value"), "{err}");
}

#[test]
fn unknown_and_duplicate_keys() {
    let (_dir, path) = file("keepalive-timout = \"5s\"\n");
    let err = parse(&["--config", &path], &[]).unwrap_err();
    assert!(err.contains("unknown key `keepalive-timout`"), "{err}");
    assert!(err.contains("did you mean `keepalive-timeout`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (_dir, path) = file("frobnicate = 1\n");
    let err = parse(&["--config", &path], &[]).unwrap_err();
    assert!(
        err.contains("unknown key `frobnicate`") && !err.contains("mean"),
        "{err}"
    );
    let (_dir, path) = file("config = \"x.toml\"\n");
    assert!(parse(&["--config", &path], &[]).is_err());
    let (_dir, path) = file("grace = \"1s\"\ngrace_x = 1\n[grace_y]\n");
    assert!(parse(&["--config", &path], &[]).is_err());
    let (_dir, path) = file("send-timeout = \"1s\"\nsend_timeout = \"2s\"\n");
    let err = parse(&["--config", &path], &[]).unwrap_err();
    assert!(err.contains("set twice"), "{err}");
}

#[test]
fn bad_values_name_their_source() {
    let (_dir, path) = file("keepalive-timeout = \"forever\"\n");
    let err = parse(&["--config", &path], &[]).unwrap_err();
    assert!(
        err.contains(&path) && err.contains("keepalive-timeout"),
        "{err}"
    );
    assert!(err.contains("invalid duration"), "{err}");
    let env = [("RINGSERVE_WORKERS", "many")];
    let err = parse(&[], &env).unwrap_err();
    assert!(err.contains("RINGSERVE_WORKERS"), "{err}");
    let (_dir, path) = file("grace = \n");
    let err = parse(&["--config", &path], &[]).unwrap_err();
    assert!(err.contains("line 1"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let err = parse(&["--config", "/nonexistent/ringserve.toml"], &[]).unwrap_err();
    assert!(err.contains("/nonexistent/ringserve.toml"), "{err}");
    let (_dir, path) = file("grace = { a = 1 }\n");
    assert!(parse(&["--config", &path], &[]).is_err());
}

#[test]
fn admin_never_on_a_public_address() {
    let c = serve(&["--admin", "127.0.0.1:9090"], &[]);
    assert_eq!(c.admin, Some("127.0.0.1:9090".parse().unwrap()));
    let err = parse(&["--admin", "127.0.0.1:8080"], &[]).unwrap_err();
    assert!(err.contains("overlaps"), "{err}");
    let ok = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    assert!(parse(&ok, &[]).is_ok(), "port 0 never clashes");
    let ok = ["--listen", "[::1]:8080", "--admin", "127.0.0.1:8080"];
    assert!(parse(&ok, &[]).is_ok(), "other family");
}

#[test]
fn check_config_round_trips() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().display().to_string();
    let (_dir, path) = file(&format!(
        "root = {}\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\ndotfiles = true\n",
        toml::Value::String(root_s.clone())
    ));
    let env = [("RINGSERVE_GRACE", "3s"), ("RINGSERVE_ACCESS_LOG", "off")];
    let (config, toml) = check_config(&["--config", &path, "--max-ranges", "5"], &env);
    assert!(toml.contains("grace = \"3s\"\n"), "{toml}");
    assert!(toml.contains("max-ranges = 5\n"), "{toml}");
    assert!(toml.contains("dotfiles = true\n"), "{toml}");
    assert!(toml.contains("# workers is not set\n"), "{toml}");
    let (_again_dir, again) = file(&toml);
    let (config2, toml2) = check_config(&["--config", &again], &[]);
    assert_eq!(toml, toml2);
    assert_eq!(format!("{config:?}"), format!("{config2:?}"));
}

#[test]
fn check_config_checks_the_root() {
    let err = parse(&["check-config", "--root", "/nonexistent/root"], &[]).unwrap_err();
    assert!(err.contains("root /nonexistent/root"), "{err}");
}

/// Every option is derived from the clap definition: it has a documented variable and is
/// printed by check-config under its flag name.
#[test]
fn every_option_has_env_and_file_key() {
    let help = command().render_long_help().to_string();
    let root = tempfile::tempdir().unwrap();
    let root = root.path().display().to_string();
    let (_, toml) = check_config(&["--root", &root], &[]);
    for arg in Cli::command().get_arguments().filter(|a| configurable(a)) {
        let var = env_name(arg).unwrap();
        assert!(help.contains(&format!("[env: {var}]")), "{var} not in help");
        let long = arg.get_long().unwrap();
        if long != CONFIG_ARG {
            assert!(toml.contains(&format!("{long} ")), "{long} not in {toml}");
        }
    }
}

#[test]
fn content_options_from_every_source() {
    let c = serve(
        &["--listing", "--precompressed", "br,gzip", "--cors", "*"],
        &[],
    );
    assert!(c.content.listing);
    assert_eq!(c.content.precompressed, [Coding::Br, Coding::Gzip]);
    assert!(c.content.cors.is_some());
    let c = serve(&[], &[]);
    assert!(!c.content.listing && c.content.precompressed.is_empty());
    let env = [
        (
            "RINGSERVE_CACHE_CONTROL",
            "*.js=public, max-age=31536000, immutable\n*.html=no-cache\n",
        ),
        ("RINGSERVE_ADD_HEADER", "X-A: 1, 2"),
        ("RINGSERVE_PRECOMPRESSED", "zstd, gzip"),
        ("RINGSERVE_ATTACHMENT", "*.iso,*.img"),
    ];
    let c = serve(&[], &env);
    assert_eq!(c.content.cache_control.len(), 2, "one rule per line");
    assert_eq!(c.content.add_headers.len(), 1, "commas stay in the value");
    assert_eq!(c.content.precompressed, [Coding::Zstd, Coding::Gzip]);
    assert_eq!(c.content.attachment.len(), 2);
    let (_dir, path) = file(
        "cache-control = [\"*.css=max-age=60, public\"]\nadd-header = [\"X-B: b\"]\n\
         precompressed = \"gzip\"\nlisting = true\n",
    );
    let c = serve(&["--config", &path], &[]);
    assert_eq!(c.content.cache_control.len(), 1);
    assert_eq!(c.content.precompressed, [Coding::Gzip]);
    assert!(c.content.listing);
}

#[test]
fn content_options_validated() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--precompressed", "gzip,deflate"],
            "unknown coding `deflate`",
        ),
        (&["--precompressed", "gzip,br,gzip"], "gzip given twice"),
        (&["--cache-control", "*.js"], "expected GLOB=VALUE"),
        (&["--add-header", "Content-Length: 1"], "set by the server"),
        (&["--add-header", "X-A: a\rb"], "control character"),
        (&["--cors", "example.com"], "invalid origin"),
    ];
    for (args, want) in cases {
        let err = parse(args, &[]).unwrap_err();
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(want), "{args:?}: {err}");
    }
    let err = parse(&[], &[("RINGSERVE_CORS", "ftp:/x")]).unwrap_err();
    assert!(err.contains("RINGSERVE_CORS"), "{err}");
}

#[test]
fn log_format_and_user() {
    let c = serve(&[], &[]);
    assert_eq!((c.access_log_format, c.user), (LogFormat::Combined, None));
    let env = [("RINGSERVE_USER", "www-data")];
    let c = serve(&["--access-log-format", "json"], &env);
    assert_eq!(c.access_log_format, LogFormat::Json);
    assert_eq!(c.user.as_deref(), Some("www-data"));
    assert!(parse(&["--access-log-format", "main"], &[]).is_err());
}

#[test]
fn reload_keeps_restart_only_options() {
    let running = serve(&["--workers", "2", "--listen", "127.0.0.1:1"], &[]);
    let new = serve(
        &[
            "--workers",
            "3",
            "--listen",
            "127.0.0.1:2",
            "--body",
            "splice",
            "--limit-rate",
            "1m",
            "--root",
            "/elsewhere",
        ],
        &[],
    );
    let (merged, kept) = running.reloaded(new).unwrap();
    assert_eq!(kept, ["listen", "workers", "body"]);
    assert_eq!((merged.workers, merged.body), (2, BodyPath::Sendfile));
    assert_eq!(merged.listen, running.listen);
    assert_eq!(merged.policy.limit_rate, 1 << 20, "reloadable");
    assert_eq!(merged.root, Path::new("/elsewhere"), "reloadable");
    let (_, kept) = running.reloaded(running.clone()).unwrap();
    assert!(kept.is_empty());
    let capped = serve(&["--workers", "1", "--max-conns", "1"], &[]);
    let err = running.reloaded(capped).unwrap_err();
    assert!(err.contains("below the number of workers (2)"), "{err}");
    let cmd = Cli::command();
    for name in RESTART_ONLY {
        let known = cmd.get_arguments().any(|a| a.get_long() == Some(name));
        assert!(known, "{name} is not an option");
    }
}

#[test]
fn suggestions() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
}
