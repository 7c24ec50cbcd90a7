//! `dcn module`: what a module makes of its inputs, without running it.

use crate::config::Settings;
use clap::{Args, Subcommand};

/// Inspect modules without running them.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModuleCommand,
}

/// `dcn module` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Print the job hash of a module with inputs: the hash a DcnJobBoard request commits
    /// to (`requestJob(module, inputs, jobHash, ...)`), so that only that job is delivered
    Hash(HashArgs),
}

/// `dcn module hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Module: a built-in name, a path to a module directory or module.toml, or git+URL#REF
    pub module: String,
    /// Input as Key=Value; repeat for several
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
}

impl ModuleArgs {
    /// Runs `dcn module`.
    pub fn run(self, settings: &Settings) -> eyre::Result<()> {
        match self.command {
            ModuleCommand::Hash(a) => {
                let spec = crate::app::run::resolve_job(settings, &a.module, &a.inputs)?;
                println!("{}", spec.content_hash());
                Ok(())
            }
        }
    }
}
