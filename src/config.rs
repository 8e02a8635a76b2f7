//! Run-time configuration: one set of options, four sources, validated once at start-up and
//! then shared read-only by every worker.
//!
//! Every option is defined once, as a clap `#[arg(long)]` field of `Opts`. Its environment
//! variable (`RINGSERVE_` and the flag name in upper snake case) and its key in the TOML file
//! named by `--config` are derived from the clap definition, never listed by hand, so a flag
//! added later gets both for free. The key design decision: environment and file values have
//! no parser of their own. They are turned back into `--flag=value` arguments, checked one
//! source at a time with the flag's own clap value parser (so an error names the variable or
//! the file), and parsed together with the real command line; a flag the command line already
//! set is skipped, and an environment variable hides the file's key. Precedence (flag >
//! environment > file > default) thus holds by construction, and the environment is passed
//! in as a function so tests never touch the process environment.
//!
//! A running server reads its configuration again on SIGHUP ([`Sources::load`]): the saved
//! command line, the environment and the files, through the same path as at start-up, so a
//! reload accepts exactly what a restart would. [`Config::reloaded`] then keeps the options
//! that only a restart can change ([`RESTART_ONLY`]) at their running values.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{
    Arg, ArgAction, ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand,
    ValueEnum,
};

use crate::content::{self, CacheRule, Content, CorsOrigin, Glob, HeaderLine};
use crate::http::negotiate::Coding;
use crate::http::Limits;
use crate::policy::{self, Action as RuleAction, ReqLimit, ReqRate, Rules, Secret, SecureLink};

/// Prefix of every environment variable naming an option.
const ENV_PREFIX: &str = "RINGSERVE_";

/// Id (field name) of the option naming the configuration file, which a file cannot set.
const CONFIG_ARG: &str = "config";

/// Where options come from besides the command line, shown under `--help`.
const SOURCES_HELP: &str = "Every option can also be set with an environment variable \
RINGSERVE_<OPTION> (e.g. RINGSERVE_KEEPALIVE_TIMEOUT=75s; lists comma-separated, but one per \
line for --cache-control and --add-header) or as a key of \
the TOML file given with --config (keepalive-timeout = \"75s\", listen = [\"[::]:80\"]). \
Precedence: flag > environment > file > default.";

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

/// Format of the access-log lines (nginx `log_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// nginx's predefined `combined` format.
    Combined,
    /// One JSON object per line, with the request time (see [`crate::engine::access_log`]).
    Json,
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

/// `ringserve` command line: serving takes no subcommand; each other command is a variant of
/// [`Sub`].
#[derive(Parser, Debug)]
#[command(
    name = "ringserve",
    version,
    about = "Per-core io_uring HTTP/1.1 static file server",
    args_conflicts_with_subcommands = true,
    after_help = SOURCES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    opts: Opts,
}

/// Commands other than serving.
#[derive(Subcommand, Debug)]
enum Sub {
    /// Validate the configuration (flags, environment, file) and print it as TOML.
    #[command(after_help = SOURCES_HELP)]
    CheckConfig(Opts),
    /// Print a signed, expiring URL for a path under --secure-link-prefix, signed with the
    /// secret of --secure-link-secret-file (taken from the same flags, environment and file
    /// as the server's).
    #[command(after_help = SOURCES_HELP)]
    Sign(SignOpts),
}

/// `ringserve sign PATH`: what to sign, plus every server option (for the secret and prefix).
#[derive(Args, Debug)]
struct SignOpts {
    /// URL path of the file, e.g. /downloads/file.iso (percent-encoded or not).
    path: String,
    /// How long the link stays valid: 90 (seconds), 15m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = policy::parse_expires_in)]
    expires: Duration,
    /// Rate the download is paced at, replacing --limit-rate for it (e.g. 2m for 2 MiB/s).
    #[arg(long, value_parser = policy::parse_rate)]
    rate: Option<u64>,
    #[command(flatten)]
    opts: Opts,
}

/// The server's options. A plain `#[arg(long)]` here is all a new option needs: its
/// environment variable and file key follow from the flag name.
#[derive(Args, Debug)]
struct Opts {
    /// TOML file of options, keys named like the flags (`keepalive-timeout = "75s"`).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
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
    /// Longest wait for more input from the client of a closing connection, whose input is
    /// read and dropped until it closes; 0 closes at once (nginx `lingering_timeout`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lingering_timeout: Duration,
    /// Longest a closing connection keeps reading and dropping its client's input in all
    /// (nginx `lingering_time`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lingering_time: Duration,
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
    /// Address of the admin listener (metrics, health, stats API); off unless given. Never
    /// one of the --listen addresses.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Open files (fd + metadata) cached per worker; 0 disables (nginx `open_file_cache max=`).
    #[arg(long, default_value_t = 4096)]
    open_file_cache: usize,
    /// How long a cached file is trusted before its path is resolved again (nginx
    /// `open_file_cache_valid`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    open_file_cache_valid: Duration,
    /// Pace each response at this many bytes per second, e.g. 512k or 2m; 0 means unlimited
    /// (nginx `limit_rate`).
    #[arg(long, default_value = "0", value_name = "RATE", value_parser = policy::parse_rate)]
    limit_rate: u64,
    /// Bytes of each response sent at full speed before pacing starts (nginx
    /// `limit_rate_after`).
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = policy::parse_size)]
    limit_rate_after: u64,
    /// Server-wide rate shared evenly by the transfers in progress; 0 means unlimited.
    #[arg(long, default_value = "0", value_name = "RATE", value_parser = policy::parse_rate)]
    limit_rate_total: u64,
    /// Most connections open at once over all workers; beyond it accepting pauses. 0 means
    /// no cap (nginx `worker_connections` times `worker_processes`).
    #[arg(long, default_value_t = 0)]
    max_conns: usize,
    /// Most connections per client address (IPv6: per /64); requests on further ones are
    /// answered 503. 0 means no cap (nginx `limit_conn`).
    #[arg(long, default_value_t = 0)]
    max_conns_per_ip: u32,
    /// Requests per client address, `N/s` or `N/m`; more are answered 429 with Retry-After
    /// (nginx `limit_req rate=`).
    #[arg(long, value_name = "N/s", value_parser = policy::parse_req_rate)]
    req_rate: Option<ReqRate>,
    /// Requests a client may make at once above --req-rate (nginx `limit_req burst= nodelay`).
    #[arg(long, default_value_t = 0)]
    req_burst: u32,
    /// Let clients in this address range connect (repeatable, ordered with --deny, first
    /// match wins; nginx `allow`).
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<String>,
    /// Refuse connections from this address range, or `all` (repeatable; nginx `deny`).
    #[arg(long = "deny", value_name = "CIDR")]
    deny: Vec<String>,
    /// File of address ranges to deny, one per line, checked after --allow/--deny.
    #[arg(long, value_name = "PATH")]
    deny_file: Option<PathBuf>,
    /// File holding the secret that signs links (nginx `secure_link_md5`); when set,
    /// requests under --secure-link-prefix need `?expires=UNIX&sig=...`.
    #[arg(long, value_name = "PATH")]
    secure_link_secret_file: Option<PathBuf>,
    /// URL path under which requests need a signed link.
    #[arg(long, default_value = "/", value_name = "PATH")]
    secure_link_prefix: String,
    /// List directories that have no index.html instead of answering 404 (nginx `autoindex
    /// on`): HTML, or JSON for `?format=json` or `Accept: application/json`.
    #[arg(long)]
    listing: bool,
    /// Serve file.br / file.zst / file.gz, when present and not older than file, to clients
    /// accepting that encoding; codings in order of preference, e.g. `br,zstd,gzip` (nginx
    /// `gzip_static`).
    #[arg(long, value_name = "CODINGS", value_delimiter = ',', value_parser = content::parse_coding)]
    precompressed: Vec<Coding>,
    /// `Cache-Control` value for files whose path matches GLOB (`*` spans `/`), e.g.
    /// `*.js=public, max-age=31536000`; repeatable, first match wins (nginx `expires`).
    #[arg(long, value_name = "GLOB=VALUE", value_parser = content::parse_cache_rule)]
    cache_control: Vec<CacheRule>,
    /// Header added to every successful response, e.g. `X-Frame-Options: DENY`; repeatable
    /// (nginx `add_header`).
    #[arg(long, value_name = "NAME: VALUE", value_parser = content::parse_header)]
    add_header: Vec<HeaderLine>,
    /// `Access-Control-Allow-Origin` for every successful response: `*` or one origin.
    #[arg(long, value_name = "ORIGIN", value_parser = content::parse_origin)]
    cors: Option<CorsOrigin>,
    /// Send files whose path matches GLOB as downloads (`Content-Disposition: attachment`,
    /// as `?download` does for any file); repeatable.
    #[arg(long, value_name = "GLOB", value_parser = content::parse_glob)]
    attachment: Vec<Glob>,
    /// Format of the access log: nginx `combined`, or one JSON object per line with the
    /// request time (nginx `log_format ... escape=json`).
    #[arg(long, value_enum, default_value_t = LogFormat::Combined)]
    access_log_format: LogFormat,
    /// User to run as once listeners, root, logs and admin socket are open (nginx `user`);
    /// needs root unless it is the current user.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
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
    /// Lingering close: longest wait between inputs (zero: no lingering).
    pub lingering_timeout: Duration,
    /// Lingering close: longest in all.
    pub lingering_time: Duration,
    /// Body path.
    pub body: BodyPath,
    /// Keep-alive request cap.
    pub keepalive_requests: u32,
    /// Protocol limits.
    pub limits: Limits,
    /// Admin listener address, if enabled (see [`crate::server::admin`]).
    pub admin: Option<SocketAddr>,
    /// Open-file cache entries per worker (0: off).
    pub open_file_cache: usize,
    /// Open-file cache revalidation period.
    pub open_file_cache_valid: Duration,
    /// Pacing and protection (see [`crate::policy`]).
    pub policy: policy::Settings,
    /// Listings, precompressed files and header rules (see [`crate::content`]).
    pub content: Arc<Content>,
    /// Access-log line format.
    pub access_log_format: LogFormat,
    /// User to switch to after start-up, if any.
    pub user: Option<String>,
}

/// What an invocation of the binary asks for.
#[derive(Debug)]
pub enum Action {
    /// `ringserve [options]`: serve with this configuration.
    Serve(Config),
    /// `ringserve check-config [options]`: the configuration is valid (root included); print
    /// `toml`, the effective options, loadable again with `--config`.
    CheckConfig {
        /// The validated configuration.
        config: Config,
        /// Every option with its effective value, as a TOML document.
        toml: String,
    },
    /// `ringserve sign PATH`: print a signed URL.
    Sign(SignRequest),
}

/// A signed link to make (`ringserve sign`).
#[derive(Debug)]
pub struct SignRequest {
    link: SecureLink,
    path: String,
    expires: Duration,
    rate: Option<u64>,
}

impl SignRequest {
    /// The signed URL (path and query), valid for the requested time from `now`.
    pub fn url(&self, now: SystemTime) -> Result<String, String> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = now.saturating_add(self.expires).as_secs();
        self.link.sign_url(&self.path, expires, self.rate)
    }
}

impl Action {
    /// Parses the process arguments and environment. `--help` and `--version` print and
    /// exit; anything invalid is returned as a one-line message.
    pub fn from_env() -> Result<Action, String> {
        match Action::parse(std::env::args_os(), &|name| std::env::var_os(name)) {
            Ok(action) => Ok(action),
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => Err(one_line(&e)),
        }
    }

    /// Parses `args` (the first item is the program name) with environment variables looked
    /// up through `env`, and reads the configuration file if one is named.
    pub fn parse<I, T>(
        args: I,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Action, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cmd = command();
        let given = cmd.clone().try_get_matches_from(&args)?;
        let (sub, given) = selected(&cmd, &given);
        if sub.get_arguments().any(|a| a.get_id() == CONFIG_ARG) {
            args.extend(layered(sub, given, env).map_err(invalid)?);
        }
        let matches = cmd.clone().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        let (_, chosen) = selected(&cmd, &matches);
        match cli.command {
            None => Ok(Action::Serve(
                Config::from_opts(cli.opts, chosen).map_err(invalid)?,
            )),
            Some(Sub::Sign(sign)) => {
                let config = Config::from_opts(sign.opts, chosen).map_err(invalid)?;
                let link = config.policy.secure_link.ok_or_else(|| {
                    invalid(
                        "sign needs --secure-link-secret-file (flag, environment or file)".into(),
                    )
                })?;
                Ok(Action::Sign(SignRequest {
                    link,
                    path: sign.path,
                    expires: sign.expires,
                    rate: sign.rate,
                }))
            }
            Some(Sub::CheckConfig(opts)) => {
                let config = Config::from_opts(opts, chosen).map_err(invalid)?;
                crate::fs::Root::open(&config.root, config.dotfiles)
                    .map_err(|e| invalid(format!("root {}: {e}", config.root.display())))?;
                let (sub, matches) = selected(&cmd, &matches);
                let toml = effective_toml(sub, matches).map_err(invalid)?;
                Ok(Action::CheckConfig { config, toml })
            }
        }
    }
}

/// Where a server's configuration comes from: its command line, saved at start-up, and the
/// process environment and files (`--config`, `--deny-file`, `--secure-link-secret-file`),
/// read again by every [`Sources::load`].
#[derive(Clone, Debug)]
pub struct Sources {
    args: Vec<OsString>,
}

impl Sources {
    /// The command line of this process.
    pub fn of_process() -> Sources {
        Sources {
            args: std::env::args_os().collect(),
        }
    }

    /// Parses and checks the serving configuration again, as at start-up (the root is not
    /// opened here); an error is one line.
    pub fn load(&self) -> Result<Config, String> {
        match Action::parse(self.args.iter().cloned(), &|name| std::env::var_os(name)) {
            Ok(Action::Serve(config)) => Ok(config),
            Ok(_) => Err("the command line does not start a server".into()),
            Err(e) => Err(one_line(&e)),
        }
    }
}

/// Options a running server cannot change, by flag name: its listening sockets, worker
/// threads, backend, body path, admin listener and user are set up once, at start-up.
pub const RESTART_ONLY: [&str; 6] = ["listen", "workers", "backend", "body", "admin", "user"];

impl Config {
    /// `new`, read for a reload of a server running with `self`, with the [`RESTART_ONLY`]
    /// options put back to their running values; also returns the names of those that
    /// differed. Fails if the result does not hold together (`--max-conns` below the running
    /// number of workers).
    pub fn reloaded(&self, mut new: Config) -> Result<(Config, Vec<&'static str>), String> {
        fn keep<T: PartialEq + Clone>(
            name: &'static str,
            running: &T,
            new: &mut T,
            kept: &mut Vec<&'static str>,
        ) {
            if running != new {
                new.clone_from(running);
                kept.push(name);
            }
        }
        let mut kept = Vec::new();
        let [listen, workers, backend, body, admin, user] = RESTART_ONLY;
        keep(listen, &self.listen, &mut new.listen, &mut kept);
        keep(workers, &self.workers, &mut new.workers, &mut kept);
        keep(backend, &self.backend, &mut new.backend, &mut kept);
        keep(body, &self.body, &mut new.body, &mut kept);
        keep(admin, &self.admin, &mut new.admin, &mut kept);
        keep(user, &self.user, &mut new.user, &mut kept);
        check_max_conns(new.policy.max_conns, new.workers)?;
        Ok((new, kept))
    }

    /// Parses an explicit argument list (the first item is the program name), ignoring the
    /// process environment.
    pub fn try_from_iter<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        match Action::parse(args, &|_| None)? {
            Action::Serve(config) | Action::CheckConfig { config, .. } => Ok(config),
            Action::Sign(_) => Err(invalid("sign is not a server configuration".into())),
        }
    }

    /// Validates `opts`; `matches` (where they were parsed) gives the order of the access
    /// rules.
    fn from_opts(opts: Opts, matches: &ArgMatches) -> Result<Config, String> {
        let workers = opts.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let access_log = match opts.access_log.as_str() {
            "off" => AccessLog::Off,
            "-" => AccessLog::Stdout,
            path => AccessLog::File(PathBuf::from(path)),
        };
        if let Some(admin) = opts.admin {
            if let Some(clash) = opts.listen.iter().find(|l| overlaps(**l, admin)) {
                return Err(format!("--admin {admin} overlaps --listen {clash}"));
            }
        }
        let policy = policy_settings(&opts, matches, workers.max(1))?;
        let mut precompressed: Vec<Coding> = Vec::new();
        for coding in opts.precompressed {
            if precompressed.contains(&coding) {
                return Err(format!("--precompressed: {} given twice", coding.token()));
            }
            precompressed.push(coding);
        }
        Ok(Config {
            root: opts.root,
            listen: opts.listen,
            workers: workers.max(1),
            backend: opts.backend,
            dotfiles: opts.dotfiles,
            grace: opts.grace,
            access_log,
            header_timeout: opts.header_timeout,
            keepalive_timeout: opts.keepalive_timeout,
            send_timeout: opts.send_timeout,
            lingering_timeout: opts.lingering_timeout,
            lingering_time: opts.lingering_time,
            body: opts.body,
            keepalive_requests: opts.keepalive_requests.max(1),
            limits: Limits {
                max_ranges: opts.max_ranges,
                ..Limits::default()
            },
            admin: opts.admin,
            open_file_cache: opts.open_file_cache,
            open_file_cache_valid: opts.open_file_cache_valid,
            policy,
            content: Arc::new(Content {
                listing: opts.listing,
                precompressed,
                cache_control: opts.cache_control,
                add_headers: opts.add_header,
                cors: opts.cors,
                attachment: opts.attachment,
            }),
            access_log_format: opts.access_log_format,
            user: opts.user,
        })
    }
}

/// The pacing and protection settings of `opts`.
fn policy_settings(
    opts: &Opts,
    matches: &ArgMatches,
    workers: usize,
) -> Result<policy::Settings, String> {
    check_max_conns(opts.max_conns, workers)?;
    let mut rules = Rules::parse(ordered_rules(opts, matches))?;
    if let Some(path) = &opts.deny_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--deny-file {}: {e}", path.display()))?;
        let denied = policy::load_deny_file(&text)
            .map_err(|e| format!("--deny-file {}: {e}", path.display()))?;
        rules.extend(denied);
    }
    let secure_link = match &opts.secure_link_secret_file {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("--secure-link-secret-file {}: {e}", path.display()))?;
            // A trailing newline (as `openssl rand -hex 32 > file` writes) is not part of it.
            let secret = bytes.trim_ascii_end();
            let secret = Secret::new(secret)
                .map_err(|e| format!("--secure-link-secret-file {}: {e}", path.display()))?;
            Some(SecureLink::new(secret, &opts.secure_link_prefix)?)
        }
    };
    Ok(policy::Settings {
        limit_rate: opts.limit_rate,
        limit_rate_after: opts.limit_rate_after,
        limit_rate_total: opts.limit_rate_total,
        max_conns: opts.max_conns,
        max_conns_per_ip: opts.max_conns_per_ip,
        req_limit: opts.req_rate.map(|r| ReqLimit::new(r, opts.req_burst)),
        rules,
        secure_link,
    })
}

/// A connection cap (0: none) must leave each of the `workers` at least one connection.
fn check_max_conns(max_conns: usize, workers: usize) -> Result<(), String> {
    if max_conns != 0 && max_conns < workers {
        return Err(format!(
            "--max-conns {max_conns} is below the number of workers ({workers}): each worker \
             needs one"
        ));
    }
    Ok(())
}

/// The `--allow` and `--deny` values merged in the order they were given. Values from the
/// environment or the file come after the command line's, allow rules before deny rules.
fn ordered_rules<'a>(opts: &'a Opts, m: &ArgMatches) -> Vec<(RuleAction, &'a str)> {
    let mut rules: Vec<(usize, RuleAction, &str)> = Vec::new();
    for (id, action, values) in [
        ("allow", RuleAction::Allow, &opts.allow),
        ("deny", RuleAction::Deny, &opts.deny),
    ] {
        let positions = m.indices_of(id).into_iter().flatten();
        rules.extend(positions.zip(values).map(|(i, v)| (i, action, v.as_str())));
    }
    rules.sort_by_key(|&(i, ..)| i);
    rules.into_iter().map(|(_, a, v)| (a, v)).collect()
}

/// Whether binding both addresses would collide: same non-zero port and the same or a
/// wildcard IP of the same family.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The clap command, each option's help naming its environment variable.
fn command() -> Command {
    fn decorate(cmd: Command) -> Command {
        cmd.mut_args(|arg| match env_name(&arg) {
            Some(var) => {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                arg.help(format!("{help} [env: {var}]"))
            }
            None => arg,
        })
        .mut_subcommands(decorate)
    }
    decorate(Cli::command())
}

/// The (sub)command that was invoked, and its matches.
fn selected<'a>(cmd: &'a Command, m: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
    match m.subcommand() {
        Some((name, sub_m)) => match cmd.find_subcommand(name) {
            Some(sub) => selected(sub, sub_m),
            None => (cmd, m),
        },
        None => (cmd, m),
    }
}

/// Whether an option takes its value from the environment and the file: it has a long name
/// and stores a value or a flag (help, version and counters do not).
fn configurable(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && matches!(
            arg.get_action(),
            ArgAction::Set | ArgAction::Append | ArgAction::SetTrue | ArgAction::SetFalse
        )
}

/// Whether the option is an on/off flag rather than one taking values.
fn is_flag(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// `RINGSERVE_KEEPALIVE_TIMEOUT` for `--keepalive-timeout`; `None` if not configurable.
fn env_name(arg: &Arg) -> Option<String> {
    let long = arg.get_long().filter(|_| configurable(arg))?;
    Some(format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    ))
}

/// Turns the environment and the file into `--flag=value` arguments for every option the
/// command line `given` did not set, each checked with the option's own value parser.
fn layered(
    cmd: &Command,
    given: &ArgMatches,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, String> {
    let config_path = given.get_one::<PathBuf>(CONFIG_ARG).cloned().or_else(|| {
        let arg = cmd.get_arguments().find(|a| a.get_id() == CONFIG_ARG)?;
        env(&env_name(arg)?).map(PathBuf::from)
    });
    let mut file = match &config_path {
        Some(path) => read_file(cmd, path)?,
        None => HashMap::new(),
    };
    let mut out = Vec::new();
    for arg in cmd.get_arguments().filter(|a| configurable(a)) {
        let (Some(var), Some(long)) = (env_name(arg), arg.get_long()) else {
            continue;
        };
        if given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue;
        }
        let (values, source) = if let Some(value) = env(&var) {
            (
                env_values(arg, value).map_err(|e| format!("{var}: {e}"))?,
                var,
            )
        } else if let Some(values) = file.remove(long) {
            let path = config_path.as_deref().unwrap_or(Path::new(""));
            (values, format!("config file {}: {long}", path.display()))
        } else {
            continue;
        };
        let synthesized = as_args(arg, long, values).map_err(|e| format!("{source}: {e}"))?;
        check(cmd, &synthesized).map_err(|e| format!("{source}: {e}"))?;
        out.extend(synthesized);
    }
    Ok(out)
}

/// Repeatable options whose values may themselves contain commas (`max-age=60, public`):
/// their environment variables hold one value per line instead.
const LINE_LISTS: [&str; 2] = ["cache-control", "add-header"];

/// An environment variable's values: the whole value, or comma-separated items for a
/// repeatable option (newline-separated for those in [`LINE_LISTS`]).
fn env_values(arg: &Arg, value: OsString) -> Result<Vec<OsString>, String> {
    if !matches!(arg.get_action(), ArgAction::Append) {
        return Ok(vec![value]);
    }
    let text = value
        .into_string()
        .map_err(|_| "value is not valid UTF-8".to_string())?;
    let by_line = arg.get_long().is_some_and(|l| LINE_LISTS.contains(&l));
    let separator = if by_line { '\n' } else { ',' };
    Ok(text
        .split(separator)
        .map(str::trim)
        .filter(|s| !(by_line && s.is_empty()))
        .map(OsString::from)
        .collect())
}

/// The arguments setting `long` to `values`: `--long=value` each, or the bare flag when a
/// boolean asks for the non-default state.
fn as_args(arg: &Arg, long: &str, values: Vec<OsString>) -> Result<Vec<OsString>, String> {
    if !is_flag(arg) {
        return Ok(values
            .into_iter()
            .map(|v| {
                let mut a = OsString::from(format!("--{long}="));
                a.push(v);
                a
            })
            .collect());
    }
    let [value] = values.as_slice() else {
        return Err("expected true or false".into());
    };
    let on = parse_bool(&value.to_string_lossy())?;
    let set = on == matches!(arg.get_action(), ArgAction::SetTrue);
    Ok(if set {
        vec![OsString::from(format!("--{long}"))]
    } else {
        Vec::new()
    })
}

/// `true`/`false` and the usual synonyms, case-insensitive.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got `{s}`")),
    }
}

/// Parses `args` alone with `cmd`, so a bad value is reported against its own source.
fn check(cmd: &Command, args: &[OsString]) -> Result<(), String> {
    match cmd.clone().no_binary_name(true).try_get_matches_from(args) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("invalid value");
            Err(line.trim_start_matches("error: ").to_string())
        }
    }
}

/// Reads the TOML file at `path` into values per option long name.
fn read_file(cmd: &Command, path: &Path) -> Result<HashMap<String, Vec<OsString>>, String> {
    let context = |e: String| format!("config file {}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| context(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let before = e
            .span()
            .map_or(&[][..], |s| &text.as_bytes()[..s.start.min(text.len())]);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        context(format!("line {line}: {}", e.message().trim()))
    })?;
    let known: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| configurable(a) && a.get_id() != CONFIG_ARG)
        .collect();
    let mut values = HashMap::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = known.iter().find(|a| a.get_long() == Some(long.as_str())) else {
            let longs = known.iter().filter_map(|a| a.get_long());
            return Err(context(unknown_key(&key, longs)));
        };
        let parsed = file_values(arg, value).map_err(|e| context(format!("{key}: {e}")))?;
        if values.insert(long, parsed).is_some() {
            return Err(context(format!("{key}: set twice")));
        }
    }
    Ok(values)
}

/// The message for an unknown file key, suggesting the closest known one.
fn unknown_key<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
    let wanted = key.replace('_', "-");
    let closest = known
        .map(|k| (edit_distance(&wanted, k), k))
        .min()
        .filter(|(d, _)| *d <= 3);
    match closest {
        Some((_, k)) => format!("unknown key `{key}` (did you mean `{k}`?)"),
        None => format!("unknown key `{key}`"),
    }
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A file value as option values: scalars as their text, arrays for repeatable options.
fn file_values(arg: &Arg, value: toml::Value) -> Result<Vec<OsString>, String> {
    fn scalar(value: toml::Value) -> Result<OsString, String> {
        match value {
            toml::Value::String(s) => Ok(s.into()),
            toml::Value::Integer(i) => Ok(i.to_string().into()),
            toml::Value::Float(f) => Ok(f.to_string().into()),
            toml::Value::Boolean(b) => Ok(b.to_string().into()),
            other => Err(format!(
                "expected a string, number or boolean, got {}",
                other.type_str()
            )),
        }
    }
    match value {
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
            items.into_iter().map(scalar).collect()
        }
        toml::Value::Array(_) => Err("takes a single value, not an array".into()),
        other => Ok(vec![scalar(other)?]),
    }
}

/// Every option of `cmd` with its value in `m`, as a TOML document (unset options as
/// comments).
fn effective_toml(cmd: &Command, m: &ArgMatches) -> Result<String, String> {
    let mut out = String::from("# ringserve effective configuration (load with --config)\n");
    let args = cmd
        .get_arguments()
        .filter(|a| configurable(a) && a.get_id() != CONFIG_ARG);
    for arg in args {
        let (id, Some(long)) = (arg.get_id().as_str(), arg.get_long()) else {
            continue;
        };
        let value = if is_flag(arg) {
            let on = m
                .try_get_one::<bool>(id)
                .map_err(|e| format!("{long}: {e}"))?;
            toml::Value::Boolean(on.copied().unwrap_or_default())
        } else {
            let mut values = m
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| v.to_str().map(toml_scalar))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{long}: value is not valid UTF-8"))?;
            if matches!(arg.get_action(), ArgAction::Append) && !values.is_empty() {
                toml::Value::Array(values)
            } else if let Some(one) = values.pop() {
                one
            } else {
                let _ = writeln!(out, "# {long} is not set");
                continue;
            }
        };
        let _ = writeln!(out, "{long} = {value}");
    }
    Ok(out)
}

/// A raw value as TOML: an integer when it reads back as the same text, a string otherwise.
fn toml_scalar(s: &str) -> toml::Value {
    match s.parse::<i64>() {
        Ok(i) if i.to_string() == s => toml::Value::Integer(i),
        _ => toml::Value::String(s.to_string()),
    }
}

/// The first line of a clap error, without its `error: ` prefix.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").to_string()
}

/// A clap error carrying a one-line message from configuration checks.
fn invalid(message: String) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, message)
}

/// Parses `250ms`, `10s`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid duration `{s}`"))?;
    let overflow = || format!("duration `{s}` is too long");
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.checked_mul(60).ok_or_else(overflow)?)),
        _ => Err(format!("invalid duration `{s}` (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
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
        assert!(parse_duration("2h").is_err());
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
        let c =
            Config::try_from_iter(["ringserve", "--access-log", "off", "--workers", "0"]).unwrap();
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
        let both: Vec<SocketAddr> =
            vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()];
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
}
