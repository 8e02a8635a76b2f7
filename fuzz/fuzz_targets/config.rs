//! The configuration file (`--config FILE`, TOML): whatever it holds, loading it answers
//! without panicking, and a file that loads is a fixpoint of `check-config`: the effective
//! options it prints load again to the same options.
#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringserve::config::Action;

/// A scratch directory for the files and the root `check-config` opens.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringserve-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("root")).unwrap();
        dir
    })
}

/// `ringserve check-config --config FILE --root ROOT` with `text` in FILE: the effective
/// options, or `None` if the file is refused.
fn check(text: &[u8], file: &str) -> Option<String> {
    let dir = scratch();
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    let args: Vec<OsString> = vec![
        "ringserve".into(),
        "check-config".into(),
        "--config".into(),
        path.into(),
        "--root".into(),
        dir.join("root").into(),
    ];
    match Action::parse(args, &|_| None) {
        Ok(Action::CheckConfig { toml, .. }) => Some(toml),
        Ok(other) => panic!("check-config gave {other:?}"),
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(toml) = check(data, "fuzzed.toml") else {
        return;
    };
    let again = check(toml.as_bytes(), "effective.toml");
    assert_eq!(again.as_deref(), Some(toml.as_str()), "effective options do not load back");
});
