//! `ringserve` binary: parse the command line, environment and config file, then run the
//! requested command. Usage errors exit with status 2, run-time failures with 1; every error
//! is one `ringserve: error: ...` line on stderr.

use std::process::ExitCode;

use ringserve::config::{Action, Sources};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Saved before anything else: a SIGHUP reads the configuration again from these.
    let sources = Sources::of_process();
    let action = match Action::from_env() {
        Ok(action) => action,
        Err(e) => {
            eprintln!("ringserve: error: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    match action {
        Action::Serve(config) => match ringserve::server::run(config, sources) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringserve: error: {e}");
                ExitCode::FAILURE
            }
        },
        Action::CheckConfig { toml, .. } => {
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Action::Sign(request) => match request.url(std::time::SystemTime::now()) {
            Ok(url) => {
                println!("{url}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringserve: error: {e}");
                ExitCode::from(2)
            }
        },
    }
}
