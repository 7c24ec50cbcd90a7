//! `dcn bundle`: subcommands, then `app::bundle`.

use alloy::primitives::B256;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Inspect result bundles.
#[derive(Debug, Args)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Extract a result bundle into a new folder, as `dcn run` does: never outside it, and
    /// with --hash nothing at all unless the bundle has that result hash
    Extract {
        /// The bundle (a tar, as the solver serves it)
        file: PathBuf,
        /// The folder to create (it must not exist or be empty): `outputs/`, `stdout`,
        /// `stderr` and `exit_code` are written in it
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
        /// The result hash the bundle must have (the deal's, on chain)
        #[arg(long, value_name = "0x…")]
        hash: Option<B256>,
        /// Refuse bundles that unpack to more than this many MiB (the solver's largest
        /// bundle by default)
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        max_mb: u64,
    },
}

impl BundleArgs {
    /// Runs `dcn bundle`.
    pub fn run(self) -> eyre::Result<()> {
        match self.command {
            BundleCommand::Extract { file, into, hash, max_mb } => {
                crate::app::bundle::extract(&file, &into, hash, max_mb.saturating_mul(1 << 20))
            }
        }
    }
}
