//! Writes the man page and the shell completions generated from the command-line definitions
//! into a directory, for the Debian package (`scripts/package-deb.sh`):
//! `cargo run --example gendoc -- DIR`.

use std::path::PathBuf;

use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args_os().nth(1).expect("usage: gendoc DIR"));
    std::fs::create_dir_all(&dir)?;
    let cmd = ringserve::config::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("ringserve.1"), page)?;
    for (shell, file) in [
        (Shell::Bash, "ringserve"),
        (Shell::Zsh, "_ringserve"),
        (Shell::Fish, "ringserve.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "ringserve", &mut out);
        std::fs::write(dir.join(file), out)?;
    }
    Ok(())
}
