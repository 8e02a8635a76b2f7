//! `ringserve` binary: parse the command line and hand over to the engine.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match ringserve::config::Config::from_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ringserve: error: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    match ringserve::engine::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringserve: error: {e}");
            ExitCode::FAILURE
        }
    }
}
