//! `dcn keys`.

use crate::chain::accounts::{self, DevRole};
use crate::config::Settings;
use alloy::signers::local::PrivateKeySigner;
use clap::{Args, Subcommand};
use eyre::WrapErr;
use std::io::Write;
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
            KeysCommand::New { out } => {
                let signer = PrivateKeySigner::random();
                let address = signer.address();
                let path = out.unwrap_or_else(|| settings.data_dir().join("keys").join(format!("{address}.key")));
                write_private(&path, &format!("0x{}\n", hex::encode(signer.to_bytes())))
                    .wrap_err_with(|| format!("writing the key to {}", path.display()))?;
                println!("{address}");
                eprintln!("key written to {} (mode 0600); use it with keys.key_file or --config", path.display());
                Ok(())
            }
            KeysCommand::Address => {
                let net = settings.network()?;
                let signer = accounts::service_signer(settings, &net, DevRole::JobCreator)?;
                println!("{}", signer.address());
                Ok(())
            }
        }
    }
}

/// Creates `path` readable and writable by its owner only; refuses to overwrite.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
