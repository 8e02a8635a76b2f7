//! The crate's layering, checked on its source: each top-level folder of `src/` uses only the
//! folders before it in [`LAYERS`] (README, "Layout"), and `unsafe` is allowed only on `sys`
//! and the engine's io_uring boundary.

use std::fs;
use std::path::{Path, PathBuf};

/// The folders of `src/`, lowest first: a folder may use those before it, never those after.
const LAYERS: [&str; 11] = [
    "sys", "http", "policy", "tls", "fs", "upload", "serve", "config", "metrics", "engine",
    "server",
];

/// Every `.rs` file beneath `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The `crate::NAME` paths named in the code of `text` (comments left out).
fn crate_paths(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_string());
        }
    }
    names
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn imports_only_point_down() {
    let mut wrong = Vec::new();
    for (rank, layer) in LAYERS.iter().enumerate() {
        let dir = src().join(layer);
        assert!(dir.is_dir(), "src/{layer} is missing");
        for file in sources(&dir) {
            let text = fs::read_to_string(&file).expect("read");
            for name in crate_paths(&text) {
                match LAYERS.iter().position(|l| *l == name) {
                    Some(used) if used > rank => {
                        wrong.push(format!("{} uses crate::{name}", file.display()))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_folder_is_a_layer() {
    for entry in fs::read_dir(src()).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(LAYERS.contains(&name.as_str()), "src/{name} is in no layer");
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    let names = crate_paths("use crate::engine::conn; // crate::server\nlet x = crate::sys::send;");
    assert_eq!(names, ["engine", "sys"]);
}

#[test]
fn unsafe_is_allowed_only_on_sys_and_the_ring_boundary() {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    assert!(lib.contains("#![deny(unsafe_code)]"));
    let mut allowed = Vec::new();
    for file in sources(&src()) {
        let text = fs::read_to_string(&file).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("allow(unsafe_code)") {
                let item = lines.get(i + 1).map_or("", |l| l.trim());
                let rel = file.strip_prefix(src()).unwrap().display().to_string();
                allowed.push(format!("{rel}: {item}"));
            }
        }
    }
    allowed.sort();
    assert_eq!(
        allowed,
        [
            "engine/mod.rs: mod bufring;",
            "engine/mod.rs: mod uring;",
            "lib.rs: pub mod sys;"
        ]
    );
}
