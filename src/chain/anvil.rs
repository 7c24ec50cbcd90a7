//! The project-local anvil (installed by `scripts/setup` from npm): found on disk and
//! started as a child process that is killed when its handle drops. Used by `dcn dev`,
//! the integration tests and the gas bench.

use alloy::node_bindings::{Anvil, AnvilInstance};
use std::path::PathBuf;

/// Where anvil is: `$DCN_ANVIL`, else `tools/node_modules/.bin/anvil` of this source
/// tree, else `anvil` on `PATH`.
pub fn find_anvil() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DCN_ANVIL").map(PathBuf::from).filter(|p| p.exists()) {
        return Some(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("anvil")).find(|p| p.exists()))
}

/// Failure to start anvil.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// No binary found.
    #[error("anvil not found: run scripts/setup (installs it into tools/node_modules) or set DCN_ANVIL")]
    NotFound,
    /// It did not start.
    #[error("anvil did not start: {0}")]
    Start(String),
}

/// Starts anvil with `chain_id` on `port` (0: a free port), with the development
/// mnemonic's accounts funded (alloy reads the port from anvil's startup banner).
/// `hardfork` limits the chain to that EVM generation (`paris`, `shanghai`, …; `None`:
/// anvil's latest).
pub fn spawn(chain_id: u64, port: u16, hardfork: Option<&str>) -> Result<AnvilInstance, AnvilError> {
    let path = find_anvil().ok_or(AnvilError::NotFound)?;
    let mut anvil = Anvil::at(path).chain_id(chain_id).timeout(20_000);
    if port != 0 {
        anvil = anvil.port(port);
    }
    if let Some(fork) = hardfork {
        anvil = anvil.args(["--hardfork", fork]);
    }
    anvil.try_spawn().map_err(|e| AnvilError::Start(e.to_string()))
}
