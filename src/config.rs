//! Command-line configuration: parsed with clap, validated once at start-up, then shared
//! read-only by every worker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::http::Limits;

/// Which I/O backend the workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// io_uring where the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring or fail: for checking that the ring really is in use.
    Uring,
    /// epoll + sendfile(2), even where io_uring works.
    Epoll,
}

/// How file bytes travel to the socket; both keep them out of user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BodyPath {
    /// `sendfile(2)`: one syscall per chunk.
    Sendfile,
    /// `splice(2)` file → pooled pipe → socket: two syscalls per chunk.
    Splice,
}

/// Where the access log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLog {
    /// Not written at all.
    Off,
    /// Standard output.
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

/// `ringserve` command line.
#[derive(Parser, Debug)]
#[command(
    name = "ringserve",
    version,
    about = "Per-core io_uring HTTP/1.1 static file server"
)]
struct Cli {
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Address to listen on (repeatable; IPv4 or IPv6, port 0 picks a free port).
    #[arg(long = "listen", default_value = "0.0.0.0:8080")]
    listen: Vec<SocketAddr>,
    /// Worker threads, one ring (or epoll set) and listener each [default: online CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// I/O backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Serve files and directories whose name starts with a dot.
    #[arg(long)]
    dotfiles: bool,
    /// How long in-flight responses may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// Access log destination: a file path, `-` for stdout, or `off`.
    #[arg(long, default_value = "-")]
    access_log: String,
    /// Time allowed to receive a whole request head (nginx `client_header_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Time an idle keep-alive connection is kept open (nginx `keepalive_timeout`).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    keepalive_timeout: Duration,
    /// Time a response may stall without the client reading (nginx `send_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    send_timeout: Duration,
    /// How file bytes are sent.
    #[arg(long, value_enum, default_value_t = BodyPath::Sendfile)]
    body: BodyPath,
    /// Requests served on one connection before it is closed (nginx `keepalive_requests`).
    #[arg(long, default_value_t = 1000)]
    keepalive_requests: u32,
    /// Most ranges honoured in one request; more are answered with the whole file (nginx
    /// `max_ranges`).
    #[arg(long, default_value_t = 64)]
    max_ranges: usize,
}

/// Validated configuration shared by all workers.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory being served (checked to exist at start-up).
    pub root: PathBuf,
    /// Listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Number of worker threads.
    pub workers: usize,
    /// Requested backend.
    pub backend: BackendChoice,
    /// Whether dotfiles are served.
    pub dotfiles: bool,
    /// Drain period on shutdown.
    pub grace: Duration,
    /// Access log destination.
    pub access_log: AccessLog,
    /// Request-head deadline.
    pub header_timeout: Duration,
    /// Keep-alive idle deadline.
    pub keepalive_timeout: Duration,
    /// Send stall deadline.
    pub send_timeout: Duration,
    /// Body path.
    pub body: BodyPath,
    /// Keep-alive request cap.
    pub keepalive_requests: u32,
    /// Protocol limits.
    pub limits: Limits,
}

impl Config {
    /// Parses the process arguments. `--help` and `--version` print and exit; a bad flag is
    /// returned as a one-line message.
    pub fn from_args() -> Result<Config, String> {
        match Cli::try_parse() {
            Ok(cli) => Ok(Config::from_cli(cli)),
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => {
                let text = e.to_string();
                let line = text.lines().next().unwrap_or("invalid arguments");
                Err(line.trim_start_matches("error: ").to_string())
            }
        }
    }

    /// Parses an explicit argument list (the first item is the program name).
    pub fn try_from_iter<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(Config::from_cli)
    }

    fn from_cli(cli: Cli) -> Config {
        let workers = cli.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let access_log = match cli.access_log.as_str() {
            "off" => AccessLog::Off,
            "-" => AccessLog::Stdout,
            path => AccessLog::File(PathBuf::from(path)),
        };
        Config {
            root: cli.root,
            listen: cli.listen,
            workers: workers.max(1),
            backend: cli.backend,
            dotfiles: cli.dotfiles,
            grace: cli.grace,
            access_log,
            header_timeout: cli.header_timeout,
            keepalive_timeout: cli.keepalive_timeout,
            send_timeout: cli.send_timeout,
            body: cli.body,
            keepalive_requests: cli.keepalive_requests.max(1),
            limits: Limits {
                max_ranges: cli.max_ranges,
                ..Limits::default()
            },
        }
    }
}

/// Parses `250ms`, `10s`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid duration `{s}`"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration `{s}` (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn defaults_and_access_log() {
        let c = Config::try_from_iter(["ringserve"]).unwrap();
        assert_eq!(c.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(c.access_log, AccessLog::Stdout);
        assert_eq!(c.limits.max_ranges, 64);
        let c =
            Config::try_from_iter(["ringserve", "--access-log", "off", "--workers", "0"]).unwrap();
        assert_eq!(c.access_log, AccessLog::Off);
        assert_eq!(c.workers, 1);
        assert!(Config::try_from_iter(["ringserve", "--backend", "bogus"]).is_err());
    }
}
