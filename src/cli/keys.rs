//! `dcn keys`: subcommands, then `app::admin`.

use crate::config::Settings;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Make and inspect account keys.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new key, write it to a file only its owner can read, print its address
    New {
        /// Where to write the key [default: <data dir>/keys/<address>.key]
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Print the address of the configured service key (never the key)
    Address,
}

impl KeysArgs {
    /// Runs `dcn keys`.
    pub fn run(self, settings: &Settings) -> eyre::Result<()> {
        match self.command {
            KeysCommand::New { out } => crate::app::admin::new_key(settings, out),
            KeysCommand::Address => crate::app::admin::key_address(settings),
        }
    }
}
