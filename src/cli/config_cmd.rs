//! `dcn config`: subcommands, then `app::admin`.

use crate::config::Settings;
use clap::{Args, Subcommand};

/// Show the resolved configuration.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the configuration after every layer (defaults, file, env, flags) as TOML,
    /// secrets redacted, followed by the network in use
    Show,
}

impl ConfigArgs {
    /// Runs `dcn config`.
    pub fn run(self, settings: &Settings) -> eyre::Result<()> {
        match self.command {
            ConfigCommand::Show => crate::app::admin::show_config(settings),
        }
    }
}
