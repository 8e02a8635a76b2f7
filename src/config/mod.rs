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

mod action;
mod effective;
mod layer;
mod options;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgMatches, ValueEnum};

use crate::http::negotiate::Coding;
use crate::http::Limits;
use crate::policy::{self, Action as RuleAction, ReqLimit, Rules, Secret, SecureLink};
use crate::serve::content::Content;
use crate::upload;

use action::*;
pub use action::{Action, SignRequest, Sources};

impl Config {
    /// Opens the served tree: the root, its mounts, the ETag form. An error names the
    /// directory that failed.
    pub fn open_root(&self) -> Result<crate::fs::Root, String> {
        let mut root = crate::fs::Root::open(&self.root, self.dotfiles)
            .map_err(|e| format!("root {}: {e}", self.root.display()))?
            .with_etag(self.etag);
        for (prefix, dir) in &self.mounts {
            root = root
                .mount(prefix, dir)
                .map_err(|e| format!("--mount {prefix}={}: {e}", dir.display()))?;
        }
        Ok(root)
    }
}

/// The command-line definition, every option's environment variable in its help: what the
/// man page and shell completions are generated from (`examples/gendoc.rs`).
pub fn command() -> clap::Command {
    layer::command()
}
use effective::*;
use layer::*;
use options::*;

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
    /// One JSON object per line, with the request time (see [`crate::metrics::access_log`]).
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

/// Validated configuration shared by all workers.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory being served (checked to exist at start-up).
    pub root: PathBuf,
    /// Other trees served under URL prefixes (`--mount`): canonical prefix and directory.
    pub mounts: Vec<(String, PathBuf)>,
    /// Listen addresses.
    pub listen: Vec<SocketAddr>,
    /// HTTPS listen addresses.
    pub tls_listen: Vec<SocketAddr>,
    /// TLS settings with the certificates loaded, when certificates are given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the operator should know of the TLS files: OCSP responses not stapled, and why.
    pub tls_notes: Vec<String>,
    /// `Strict-Transport-Security` value for HTTPS responses (`max-age=N`), if enabled.
    pub hsts: Option<Vec<u8>>,
    /// Port plain-HTTP requests are redirected to over HTTPS (`--redirect-https`), if any.
    pub redirect_https: Option<u16>,
    /// Number of worker threads.
    pub workers: usize,
    /// Requested backend.
    pub backend: BackendChoice,
    /// Whether dotfiles are served.
    pub dotfiles: bool,
    /// Form of the ETags sent.
    pub etag: crate::http::EtagForm,
    /// Drain period on shutdown.
    pub grace: Duration,
    /// Time between SIGTERM (`/readyz` turns 503) and the start of the drain.
    pub drain_delay: Duration,
    /// Access log destination.
    pub access_log: AccessLog,
    /// Request-head deadline.
    pub header_timeout: Duration,
    /// Keep-alive idle deadline.
    pub keepalive_timeout: Duration,
    /// Send stall deadline.
    pub send_timeout: Duration,
    /// Request-body stall deadline.
    pub body_timeout: Duration,
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
    /// Listings, precompressed files and header rules (see [`crate::serve::content`]).
    pub content: Arc<Content>,
    /// Access-log line format.
    pub access_log_format: LogFormat,
    /// User to switch to after start-up, if any.
    pub user: Option<String>,
    /// Uploads, when `--uploads` is given (see [`crate::upload`]).
    pub uploads: Option<upload::Settings>,
}

/// Options a running server cannot change, by flag name: its listening sockets, worker
/// threads, backend, body path, admin listener and user are set up once, at start-up.
pub const RESTART_ONLY: [&str; 9] = [
    "listen",
    "tls-listen",
    "workers",
    "backend",
    "body",
    "admin",
    "user",
    "uploads",
    "upload-state",
];

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
        let [listen, tls_listen, workers, backend, body, admin, user, uploads, upload_state] =
            RESTART_ONLY;
        keep(listen, &self.listen, &mut new.listen, &mut kept);
        keep(tls_listen, &self.tls_listen, &mut new.tls_listen, &mut kept);
        keep(workers, &self.workers, &mut new.workers, &mut kept);
        keep(backend, &self.backend, &mut new.backend, &mut kept);
        keep(body, &self.body, &mut new.body, &mut kept);
        keep(admin, &self.admin, &mut new.admin, &mut kept);
        keep(user, &self.user, &mut new.user, &mut kept);
        let prefixes = |c: &Config| c.uploads.as_ref().map(|u| u.prefixes.clone());
        let state = |c: &Config| c.uploads.as_ref().map(|u| u.state.clone());
        if prefixes(self) != prefixes(&new) {
            kept.push(uploads);
        }
        if state(self) != state(&new) && state(&new).is_some() && state(self).is_some() {
            kept.push(upload_state);
        }
        match (&self.uploads, &mut new.uploads) {
            (Some(running), Some(next)) => {
                next.prefixes.clone_from(&running.prefixes);
                next.state.clone_from(&running.state);
            }
            (running, next) => next.clone_from(running),
        }
        if let (Some(_), Some(port)) = (new.redirect_https, self.redirect_https) {
            // The HTTPS listeners stay, and so does the port they were bound to.
            new.redirect_https = Some(port);
        }
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
            if let Some(clash) = opts.tls_listen.iter().find(|l| overlaps(**l, admin)) {
                return Err(format!("--admin {admin} overlaps --tls-listen {clash}"));
            }
        }
        for tls in &opts.tls_listen {
            if let Some(clash) = opts.listen.iter().find(|l| overlaps(**l, *tls)) {
                return Err(format!("--tls-listen {tls} overlaps --listen {clash}"));
            }
        }
        let (tls, tls_notes) = tls_settings(&opts)?;
        let redirect_https = match (opts.redirect_https, opts.tls_listen.first()) {
            (false, _) => None,
            (true, Some(addr)) => Some(addr.port()),
            (true, None) => return Err("--redirect-https needs --tls-listen".into()),
        };
        let hsts = opts
            .hsts
            .map(|d| format!("max-age={}", d.as_secs()).into_bytes());
        let policy = policy_settings(&opts, matches, workers.max(1))?;
        let uploads = upload_settings(&opts, policy.secure_link.is_some())?;
        check_mounts(&opts.mounts, uploads.as_ref())?;
        let mut precompressed: Vec<Coding> = Vec::new();
        for coding in opts.precompressed {
            if precompressed.contains(&coding) {
                return Err(format!("--precompressed: {} given twice", coding.token()));
            }
            precompressed.push(coding);
        }
        Ok(Config {
            root: opts.root,
            mounts: opts.mounts,
            listen: opts.listen,
            tls_listen: opts.tls_listen,
            tls,
            tls_notes,
            hsts,
            redirect_https,
            workers: workers.max(1),
            backend: opts.backend,
            dotfiles: opts.dotfiles,
            etag: opts.etag,
            grace: opts.grace,
            drain_delay: opts.drain_delay,
            access_log,
            header_timeout: opts.header_timeout,
            keepalive_timeout: opts.keepalive_timeout,
            send_timeout: opts.send_timeout,
            body_timeout: opts.body_timeout,
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
                upload_dirs: uploads.as_ref().map_or_else(Vec::new, |u| {
                    u.prefixes
                        .iter()
                        .map(|p| match p.trim_start_matches('/') {
                            "" => b".".to_vec(),
                            rel => rel.as_bytes().to_vec(),
                        })
                        .collect()
                }),
            }),
            access_log_format: opts.access_log_format,
            user: opts.user,
            uploads,
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

/// The upload settings of `opts`, if uploads are on; `signed`: links can be signed
/// (`--secure-link-secret-file`), which authorises uploads without a token file.
fn upload_settings(opts: &Opts, signed: bool) -> Result<Option<upload::Settings>, String> {
    if opts.uploads.is_empty() {
        return Ok(None);
    }
    let prefixes = opts
        .uploads
        .iter()
        .map(|p| upload::Settings::prefix(p))
        .collect::<Result<Vec<_>, _>>()?;
    let tokens = match &opts.upload_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--upload-token-file {}: {e}", path.display()))?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.as_bytes().to_vec())
                .collect()
        }
        None => Vec::new(),
    };
    if opts.upload_auth == upload::AuthMode::Token && tokens.is_empty() {
        match &opts.upload_token_file {
            Some(path) => {
                return Err(format!(
                    "--upload-token-file {} holds no token",
                    path.display()
                ))
            }
            None if !signed => {
                return Err(
                    "--uploads needs --upload-token-file or --secure-link-secret-file \
                            (or --upload-auth none on a trusted network)"
                        .into(),
                )
            }
            None => {}
        }
    }
    Ok(Some(upload::Settings {
        prefixes,
        tokens,
        auth: opts.upload_auth,
        max_size: opts.upload_max_size,
        expire: opts.upload_expire,
        state: opts.upload_state.clone(),
        sync: opts.upload_sync,
        overwrite: opts.upload_overwrite,
        dotfiles: opts.dotfiles,
    }))
}

/// Mount prefixes are distinct, and no upload prefix lies in a mounted tree (uploads are
/// published into the root's).
fn check_mounts(
    mounts: &[(String, PathBuf)],
    uploads: Option<&upload::Settings>,
) -> Result<(), String> {
    let under = |path: &str, prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('/'))
    };
    for (i, (prefix, _)) in mounts.iter().enumerate() {
        if mounts[..i].iter().any(|(p, _)| p == prefix) {
            return Err(format!("--mount {prefix} given twice"));
        }
        for upload in uploads.map_or(&[][..], |u| u.prefixes.as_slice()) {
            if under(upload, prefix) {
                return Err(format!(
                    "--uploads {upload}/ lies in --mount {prefix}: uploads are published into \
                     the --root tree"
                ));
            }
        }
    }
    Ok(())
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

/// Loads the `--tls-cert`/`--tls-key` pairs (with their `--tls-ocsp` responses), if any, into
/// the server's TLS settings; also returns notes on OCSP responses not stapled.
fn tls_settings(opts: &Opts) -> Result<(Option<Arc<rustls::ServerConfig>>, Vec<String>), String> {
    if opts.tls_cert.len() != opts.tls_key.len() {
        return Err(format!(
            "{} --tls-cert for {} --tls-key: give them in pairs",
            opts.tls_cert.len(),
            opts.tls_key.len()
        ));
    }
    if opts.tls_ocsp.len() > opts.tls_cert.len() {
        return Err(format!(
            "{} --tls-ocsp for {} --tls-cert: one (or an empty one) per certificate at most",
            opts.tls_ocsp.len(),
            opts.tls_cert.len()
        ));
    }
    if opts.tls_cert.is_empty() {
        return match opts.tls_listen.first() {
            Some(addr) => Err(format!(
                "--tls-listen {addr} needs --tls-cert and --tls-key"
            )),
            None => Ok((None, Vec::new())),
        };
    }
    let files: Vec<crate::tls::CertFiles<'_>> = opts
        .tls_cert
        .iter()
        .zip(&opts.tls_key)
        .enumerate()
        .map(|(i, (cert, key))| crate::tls::CertFiles {
            cert,
            key,
            ocsp: opts
                .tls_ocsp
                .get(i)
                .map(PathBuf::as_path)
                .filter(|p| !p.as_os_str().is_empty()),
        })
        .collect();
    let (config, notes) = crate::tls::server_config(&files)?;
    Ok((Some(config), notes))
}

/// Parses `250ms`, `10s`, `2m`, `24h`, `7d` or a plain number of seconds.
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
        "h" => Ok(Duration::from_secs(
            n.checked_mul(3600).ok_or_else(overflow)?,
        )),
        "d" => Ok(Duration::from_secs(
            n.checked_mul(86_400).ok_or_else(overflow)?,
        )),
        _ => Err(format!("invalid duration `{s}` (use ms, s, m, h or d)")),
    }
}
