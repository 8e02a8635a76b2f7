//! What an invocation asks for ([`Action`]: serve, check the configuration, sign a link),
//! and where a server's configuration comes from, for SIGHUP to read again ([`Sources`]).

use std::ffi::OsString;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::error::ErrorKind;
use clap::FromArgMatches;

use crate::policy::SecureLink;

use super::*;

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
    method: Option<crate::policy::signed::Method>,
}

impl SignRequest {
    /// The signed URL (path and query), valid for the requested time from `now`.
    pub fn url(&self, now: SystemTime) -> Result<String, String> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = now.saturating_add(self.expires).as_secs();
        self.link
            .sign_url(&self.path, expires, self.rate, self.method)
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
                    method: sign.method,
                }))
            }
            Some(Sub::CheckConfig(opts)) => {
                let config = Config::from_opts(opts, chosen).map_err(invalid)?;
                config.open_root().map_err(invalid)?;
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

/// The first line of a clap error, without its `error: ` prefix.
pub(super) fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").to_string()
}

/// A clap error carrying a one-line message from configuration checks.
pub(super) fn invalid(message: String) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, message)
}
