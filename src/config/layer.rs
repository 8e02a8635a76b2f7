//! The environment and the TOML file layered under the command line: their values are
//! turned back into `--flag=value` arguments, checked with the flag's own parser, and skipped
//! where a stronger source set the option (flag > environment > file > default).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory};

use super::*;

/// The clap command, each option's help naming its environment variable.
pub(super) fn command() -> Command {
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
pub(super) fn selected<'a>(cmd: &'a Command, m: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
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
pub(super) fn configurable(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && matches!(
            arg.get_action(),
            ArgAction::Set | ArgAction::Append | ArgAction::SetTrue | ArgAction::SetFalse
        )
}

/// Whether the option is an on/off flag rather than one taking values.
pub(super) fn is_flag(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// `RINGSERVE_KEEPALIVE_TIMEOUT` for `--keepalive-timeout`; `None` if not configurable.
pub(super) fn env_name(arg: &Arg) -> Option<String> {
    let long = arg.get_long().filter(|_| configurable(arg))?;
    Some(format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    ))
}

/// Turns the environment and the file into `--flag=value` arguments for every option the
/// command line `given` did not set, each checked with the option's own value parser.
pub(super) fn layered(
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
pub(super) const LINE_LISTS: [&str; 2] = ["cache-control", "add-header"];

/// An environment variable's values: the whole value, or comma-separated items for a
/// repeatable option (newline-separated for those in [`LINE_LISTS`]).
pub(super) fn env_values(arg: &Arg, value: OsString) -> Result<Vec<OsString>, String> {
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
pub(super) fn as_args(
    arg: &Arg,
    long: &str,
    values: Vec<OsString>,
) -> Result<Vec<OsString>, String> {
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
pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got `{s}`")),
    }
}

/// Parses `args` alone with `cmd`, so a bad value is reported against its own source.
pub(super) fn check(cmd: &Command, args: &[OsString]) -> Result<(), String> {
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
pub(super) fn read_file(
    cmd: &Command,
    path: &Path,
) -> Result<HashMap<String, Vec<OsString>>, String> {
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
pub(super) fn unknown_key<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
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
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
pub(super) fn file_values(arg: &Arg, value: toml::Value) -> Result<Vec<OsString>, String> {
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
