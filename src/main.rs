//! `ringserve` binary: parse the command line and hand over to the engine.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = ringserve::config::Config::from_args();
    match ringserve::engine::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringserve: error: {e}");
            ExitCode::FAILURE
        }
    }
}
