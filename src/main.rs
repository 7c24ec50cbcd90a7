//! The `dcn` binary: parse, load settings, init logging, build the runtime, dispatch.

use clap::Parser;
use dcn::cli::Cli;
use dcn::config::Settings;
use std::process::ExitCode;

fn main() -> ExitCode {
    dcn::solver::limit_malloc_arenas();
    let cli = Cli::parse();
    let env = std::env::vars().collect();
    let settings = match Settings::load(&cli.global.overrides(), &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    dcn::logging::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
