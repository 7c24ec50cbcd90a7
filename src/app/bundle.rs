//! `dcn bundle extract`: the job creator's extraction, for a person to inspect a bundle.

use crate::bundle::{self, BundleError};
use alloy::primitives::B256;
use eyre::WrapErr;
use std::path::Path;

/// Extracts `file` into `into` (new or empty) with the rules `dcn run` applies, checking
/// `hash` first when given; prints what was extracted.
pub fn extract(file: &Path, into: &Path, hash: Option<B256>, max_bytes: u64) -> eyre::Result<()> {
    let got = match bundle::extract(file, into, max_bytes, hash) {
        Ok(got) => got,
        Err(e @ BundleError::HashMismatch { .. }) => {
            eyre::bail!("{e}: nothing was extracted. Check that --hash is the deal's result hash")
        }
        Err(e @ (BundleError::Refused(_) | BundleError::Malformed { .. })) => {
            eyre::bail!("{e}: it is not a bundle dcn would accept")
        }
        Err(e) => return Err(e).wrap_err_with(|| format!("extracting {}", file.display())),
    };
    let r = &got.results;
    r.write_streams(into).wrap_err_with(|| format!("writing the job's streams into {}", into.display()))?;
    println!("result hash {}", got.hash);
    println!("exit code   {}", r.exit_code);
    println!("stdout      {} bytes, stderr {} bytes", r.stdout.len(), r.stderr.len());
    println!("extracted   {}", into.display());
    Ok(())
}
