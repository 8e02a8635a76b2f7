//! The command line as clap defines it: every option once, as a field of [`Opts`], from
//! which its environment variable and file key are derived.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::http::negotiate::Coding;
use crate::http::EtagForm;
use crate::policy::{self, ReqRate};
use crate::serve::content::{self, CacheRule, CorsOrigin, Glob, HeaderLine};
use crate::upload::{AuthMode, SyncMode};

use super::*;

/// Prefix of every environment variable naming an option.
pub(super) const ENV_PREFIX: &str = "RINGSERVE_";

/// Id (field name) of the option naming the configuration file, which a file cannot set.
pub(super) const CONFIG_ARG: &str = "config";

/// Where options come from besides the command line, shown under `--help`.
pub(super) const SOURCES_HELP: &str = "Every option can also be set with an environment variable \
RINGSERVE_<OPTION> (e.g. RINGSERVE_KEEPALIVE_TIMEOUT=75s; lists comma-separated, but one per \
line for --cache-control and --add-header) or as a key of \
the TOML file given with --config (keepalive-timeout = \"75s\", listen = [\"[::]:80\"]). \
Precedence: flag > environment > file > default.";

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
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Option<Sub>,
    #[command(flatten)]
    pub(super) opts: Opts,
}

/// Commands other than serving.
#[derive(Subcommand, Debug)]
pub(super) enum Sub {
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
pub(super) struct SignOpts {
    /// URL path of the file, e.g. /downloads/file.iso (percent-encoded or not).
    pub(super) path: String,
    /// How long the link stays valid: 90 (seconds), 15m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = policy::parse_expires_in)]
    pub(super) expires: Duration,
    /// Rate the download is paced at, replacing --limit-rate for it (e.g. 2m for 2 MiB/s).
    #[arg(long, value_parser = policy::parse_rate)]
    pub(super) rate: Option<u64>,
    /// Sign an upload link for this method instead of a download: PUT (a file under
    /// --uploads, sent whole or in Content-Range chunks) or POST (tus or the IETF draft, at
    /// the upload prefix; the upload's own URL comes back signed in its Location).
    #[arg(long, value_parser = parse_method)]
    pub(super) method: Option<policy::signed::Method>,
    #[command(flatten)]
    pub(super) opts: Opts,
}

/// An upload method for `sign --method`.
fn parse_method(s: &str) -> Result<policy::signed::Method, String> {
    match s {
        "PUT" | "POST" | "PATCH" => {
            policy::signed::Method::new(s.as_bytes()).ok_or_else(|| format!("method {s}"))
        }
        _ => Err(format!("{s}: sign uploads for PUT, POST or PATCH")),
    }
}

/// The server's options. A plain `#[arg(long)]` here is all a new option needs: its
/// environment variable and file key follow from the flag name.
#[derive(Args, Debug)]
pub(super) struct Opts {
    /// TOML file of options, keys named like the flags (`keepalive-timeout = "75s"`).
    #[arg(long, value_name = "PATH")]
    pub(super) config: Option<PathBuf>,
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    pub(super) root: PathBuf,
    /// Serve the tree DIR under the URL path PREFIX in place of what the root holds there
    /// (nginx `alias`), e.g. /download=/srv/files; repeatable, the longest prefix wins.
    #[arg(long = "mount", value_name = "PREFIX=DIR", value_parser = parse_mount)]
    pub(super) mounts: Vec<(String, PathBuf)>,
    /// Address to listen on (repeatable; IPv4 or IPv6, port 0 picks a free port).
    #[arg(long = "listen", default_value = "0.0.0.0:8080")]
    pub(super) listen: Vec<SocketAddr>,
    /// Address to serve HTTPS on (repeatable; needs --tls-cert and --tls-key).
    #[arg(long = "tls-listen")]
    pub(super) tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for HTTPS (repeatable, paired in order with --tls-key; the first
    /// is the default, the others are chosen by the client's SNI name).
    #[arg(long = "tls-cert")]
    pub(super) tls_cert: Vec<PathBuf>,
    /// PEM private key of the --tls-cert at the same position (RSA, ECDSA or Ed25519).
    #[arg(long = "tls-key")]
    pub(super) tls_key: Vec<PathBuf>,
    /// DER OCSP response to staple for the --tls-cert at the same position (repeatable; an
    /// empty value staples nothing for that one); one that does not hold is not stapled.
    #[arg(long = "tls-ocsp")]
    pub(super) tls_ocsp: Vec<PathBuf>,
    /// Add `Strict-Transport-Security: max-age=SECONDS` to every HTTPS response (nginx
    /// `add_header Strict-Transport-Security ... always`); off unless given.
    #[arg(long, value_parser = parse_duration)]
    pub(super) hsts: Option<Duration>,
    /// Answer every request on the plain listeners with 301 to its https:// form (the first
    /// --tls-listen port).
    #[arg(long = "redirect-https")]
    pub(super) redirect_https: bool,
    /// Form of the ETag: `mtime-size` (nginx's: the same on every node with the same file
    /// and mtime, e.g. after `rsync -t`), `inode` (also tells apart a same-size file replaced
    /// within the same second, but differs between nodes), or `off`.
    #[arg(long, value_enum, default_value_t = EtagForm::MtimeSize)]
    pub(super) etag: EtagForm,
    /// Worker threads, one ring (or epoll set) and listener each [default: online CPUs].
    #[arg(long)]
    pub(super) workers: Option<usize>,
    /// I/O backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub(super) backend: BackendChoice,
    /// Serve files and directories whose name starts with a dot.
    #[arg(long)]
    pub(super) dotfiles: bool,
    /// After SIGTERM/SIGINT, how long to go on accepting and serving while `/readyz` already
    /// answers 503, so a load balancer moves traffic away before anything is refused.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub(super) drain_delay: Duration,
    /// How long in-flight responses may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(super) grace: Duration,
    /// Access log destination: a file path, `-` for stdout, or `off`.
    #[arg(long, default_value = "-")]
    pub(super) access_log: String,
    /// Time allowed to receive a whole request head (nginx `client_header_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(super) header_timeout: Duration,
    /// Time an idle keep-alive connection is kept open (nginx `keepalive_timeout`).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub(super) keepalive_timeout: Duration,
    /// Time a response may stall without the client reading (nginx `send_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(super) send_timeout: Duration,
    /// Longest wait for the next bytes of a request body; a slower body is cut off (nginx
    /// `client_body_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(super) body_timeout: Duration,
    /// Longest wait for more input from the client of a closing connection, whose input is
    /// read and dropped until it closes; 0 closes at once (nginx `lingering_timeout`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) lingering_timeout: Duration,
    /// Longest a closing connection keeps reading and dropping its client's input in all
    /// (nginx `lingering_time`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(super) lingering_time: Duration,
    /// How file bytes are sent.
    #[arg(long, value_enum, default_value_t = BodyPath::Sendfile)]
    pub(super) body: BodyPath,
    /// Requests served on one connection before it is closed (nginx `keepalive_requests`).
    #[arg(long, default_value_t = 1000)]
    pub(super) keepalive_requests: u32,
    /// Most ranges honoured in one request; more are answered with the whole file (nginx
    /// `max_ranges`).
    #[arg(long, default_value_t = 64)]
    pub(super) max_ranges: usize,
    /// Address of the admin listener (metrics, health, stats API); off unless given. Never
    /// one of the --listen addresses.
    #[arg(long, value_name = "ADDR")]
    pub(super) admin: Option<SocketAddr>,
    /// Open files (fd + metadata) cached per worker; 0 disables (nginx `open_file_cache max=`).
    #[arg(long, default_value_t = 4096)]
    pub(super) open_file_cache: usize,
    /// The longest a cached file is trusted before its path is resolved again (nginx
    /// `open_file_cache_valid`). Changes made on this machine are seen within 0.1 s through
    /// directory watches (inotify) whatever this is; it bounds what they cannot see (a network
    /// file system written by another node). 1 s, as lighttpd's stat cache.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(super) open_file_cache_valid: Duration,
    /// Pace each response at this many bytes per second, e.g. 512k or 2m; 0 means unlimited
    /// (nginx `limit_rate`).
    #[arg(long, default_value = "0", value_name = "RATE", value_parser = policy::parse_rate)]
    pub(super) limit_rate: u64,
    /// Bytes of each response sent at full speed before pacing starts (nginx
    /// `limit_rate_after`).
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = policy::parse_size)]
    pub(super) limit_rate_after: u64,
    /// Server-wide rate shared evenly by the transfers in progress; 0 means unlimited.
    #[arg(long, default_value = "0", value_name = "RATE", value_parser = policy::parse_rate)]
    pub(super) limit_rate_total: u64,
    /// Most connections open at once over all workers; beyond it accepting pauses. 0 means
    /// no cap (nginx `worker_connections` times `worker_processes`).
    #[arg(long, default_value_t = 0)]
    pub(super) max_conns: usize,
    /// Most connections per client address (IPv6: per /64); requests on further ones are
    /// answered 503. 0 means no cap (nginx `limit_conn`).
    #[arg(long, default_value_t = 0)]
    pub(super) max_conns_per_ip: u32,
    /// Requests per client address, `N/s` or `N/m`; more are answered 429 with Retry-After
    /// (nginx `limit_req rate=`).
    #[arg(long, value_name = "N/s", value_parser = policy::parse_req_rate)]
    pub(super) req_rate: Option<ReqRate>,
    /// Requests a client may make at once above --req-rate (nginx `limit_req burst= nodelay`).
    #[arg(long, default_value_t = 0)]
    pub(super) req_burst: u32,
    /// Let clients in this address range connect (repeatable, ordered with --deny, first
    /// match wins; nginx `allow`).
    #[arg(long = "allow", value_name = "CIDR")]
    pub(super) allow: Vec<String>,
    /// Refuse connections from this address range, or `all` (repeatable; nginx `deny`).
    #[arg(long = "deny", value_name = "CIDR")]
    pub(super) deny: Vec<String>,
    /// File of address ranges to deny, one per line, checked after --allow/--deny.
    #[arg(long, value_name = "PATH")]
    pub(super) deny_file: Option<PathBuf>,
    /// File holding the secret that signs links (nginx `secure_link_md5`); when set,
    /// requests under --secure-link-prefix need `?expires=UNIX&sig=...`.
    #[arg(long, value_name = "PATH")]
    pub(super) secure_link_secret_file: Option<PathBuf>,
    /// URL path under which requests need a signed link.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub(super) secure_link_prefix: String,
    /// List directories that have no index.html instead of answering 404 (nginx `autoindex
    /// on`): HTML, or JSON for `?format=json` or `Accept: application/json`.
    #[arg(long)]
    pub(super) listing: bool,
    /// Serve file.br / file.zst / file.gz, when present and not older than file, to clients
    /// accepting that encoding; codings in order of preference, e.g. `br,zstd,gzip` (nginx
    /// `gzip_static`).
    #[arg(long, value_name = "CODINGS", value_delimiter = ',', value_parser = content::parse_coding)]
    pub(super) precompressed: Vec<Coding>,
    /// `Cache-Control` value for files whose path matches GLOB (`*` spans `/`), e.g.
    /// `*.js=public, max-age=31536000`; repeatable, first match wins (nginx `expires`).
    #[arg(long, value_name = "GLOB=VALUE", value_parser = content::parse_cache_rule)]
    pub(super) cache_control: Vec<CacheRule>,
    /// Header added to every successful response, e.g. `X-Frame-Options: DENY`; repeatable
    /// (nginx `add_header`).
    #[arg(long, value_name = "NAME: VALUE", value_parser = content::parse_header)]
    pub(super) add_header: Vec<HeaderLine>,
    /// `Access-Control-Allow-Origin` for every successful response: `*` or one origin.
    #[arg(long, value_name = "ORIGIN", value_parser = content::parse_origin)]
    pub(super) cors: Option<CorsOrigin>,
    /// Send files whose path matches GLOB as downloads (`Content-Disposition: attachment`,
    /// as `?download` does for any file); repeatable.
    #[arg(long, value_name = "GLOB", value_parser = content::parse_glob)]
    pub(super) attachment: Vec<Glob>,
    /// Format of the access log: nginx `combined`, or one JSON object per line with the
    /// request time (nginx `log_format ... escape=json`).
    #[arg(long, value_enum, default_value_t = LogFormat::Combined)]
    pub(super) access_log_format: LogFormat,
    /// Accept uploads under this URL path prefix, e.g. /incoming/ (repeatable): tus 1.0 at
    /// the prefix, `PUT` with `Content-Range` at PREFIX/NAME. Finished files are published
    /// there and served like any other. Off unless given.
    #[arg(long = "uploads", value_name = "PREFIX")]
    pub(super) uploads: Vec<String>,
    /// File of bearer tokens that may upload, one per line (`Authorization: Bearer TOKEN`);
    /// re-read on SIGHUP.
    #[arg(long, value_name = "PATH")]
    pub(super) upload_token_file: Option<PathBuf>,
    /// Whether uploads need a token; `none` is for trusted networks and tests only.
    #[arg(long, value_enum, default_value_t = AuthMode::Token)]
    pub(super) upload_auth: AuthMode,
    /// Largest upload, e.g. 4g (413 above it; announced as Tus-Max-Size); 0 means no limit.
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = policy::parse_size)]
    pub(super) upload_max_size: u64,
    /// How long an unfinished upload is kept after its last write (Upload-Expires).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub(super) upload_expire: Duration,
    /// Directory of unfinished uploads and their state, on the root's file system [default:
    /// ROOT/.ringserve-uploads, never served].
    #[arg(long, value_name = "DIR")]
    pub(super) upload_state: Option<PathBuf>,
    /// When received bytes are synced to disk: before every acknowledged offset (`always`),
    /// or only before publishing (`close`: survives a crash of the server, not of the
    /// machine).
    #[arg(long, value_enum, default_value_t = SyncMode::Always)]
    pub(super) upload_sync: SyncMode,
    /// Let a finished upload replace an existing file of its name (else 409).
    #[arg(long)]
    pub(super) upload_overwrite: bool,
    /// User to run as once listeners, root, logs and admin socket are open (nginx `user`);
    /// needs root unless it is the current user.
    #[arg(long, value_name = "NAME")]
    pub(super) user: Option<String>,
}

/// `--mount PREFIX=DIR`: the prefix made canonical (`/download/` → `/download`); `/` is the
/// root's (`--root`).
fn parse_mount(s: &str) -> Result<(String, PathBuf), String> {
    let (prefix, dir) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected PREFIX=DIR, e.g. /download=/srv/files"))?;
    let canonical = crate::upload::Settings::prefix(prefix)?;
    if canonical.is_empty() {
        return Err(format!("{s}: / is the root's (--root)"));
    }
    if dir.is_empty() {
        return Err(format!("{s}: no directory"));
    }
    Ok((canonical, PathBuf::from(dir)))
}
