//! The effective configuration as TOML (`ringserve check-config`), which loads back with
//! `--config`.

use std::fmt::Write as _;

use clap::{ArgAction, ArgMatches, Command};

use super::*;

/// Every option of `cmd` with its value in `m`, as a TOML document (unset options as
/// comments).
pub(super) fn effective_toml(cmd: &Command, m: &ArgMatches) -> Result<String, String> {
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
pub(super) fn toml_scalar(s: &str) -> toml::Value {
    match s.parse::<i64>() {
        Ok(i) if i.to_string() == s => toml::Value::Integer(i),
        _ => toml::Value::String(s.to_string()),
    }
}
