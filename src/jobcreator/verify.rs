//! The bundle check before judging: download the result bundle into
//! `<results>/<deal>/`, extract it and compare its result hash with the chain's. What the
//! provider is to blame for (no bundle, a malformed one, another hash) comes back as
//! [`Verification::Refuted`] and leads to a challenge; what fails on this machine (disk,
//! permissions) is [`JobCreatorError::Local`] and stops without challenging.

use super::settle::{Outcome, Verification};
use super::{JobCreator, JobCreatorError};
use crate::bundle::{self, BundleError};
use crate::clock::now_secs;
use crate::protocol::ClientError;
use alloy::primitives::B256;
use std::time::{Duration, Instant};

fn local(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JobCreatorError {
    let what = what.into();
    move |source| JobCreatorError::Local { what, source }
}

impl JobCreator {
    /// Downloads deal `id`'s bundle and checks it against `expected`. Waits while the
    /// solver does not have it yet, until a quarter of the judge window (at least 5 s) is
    /// left to challenge in.
    pub(super) async fn verify(
        &self,
        id: B256,
        expected: B256,
        judge_deadline: u64,
        outcome: &mut Outcome,
    ) -> Result<Verification, JobCreatorError> {
        let dir = self.results_dir.join(id.to_string());
        let part = self.results_dir.join(format!("{id}.tar.part"));
        std::fs::create_dir_all(&self.results_dir)
            .map_err(local(format!("creating {}", self.results_dir.display())))?;
        let window = judge_deadline.saturating_sub(now_secs());
        let give_up = Instant::now() + Duration::from_secs(window.saturating_sub((window / 4).max(5)));
        loop {
            match self.solver.download_result(&self.signer, id, &part).await {
                Ok(_) => break,
                Err(ClientError::Io { what, source }) => return Err(JobCreatorError::Local { what, source }),
                Err(e @ ClientError::Refused { status: 404, .. }) | Err(e @ ClientError::Unreachable { .. }) => {
                    if Instant::now() >= give_up {
                        return Ok(Verification::Refuted(format!("the result bundle could not be downloaded ({e})")));
                    }
                    self.pause(self.terms.poll).await?;
                }
                Err(e) => return Ok(Verification::Refuted(format!("the result bundle could not be downloaded ({e})"))),
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(local(format!("clearing {}", dir.display())))?;
        }
        let results = match bundle::extract(&part, &dir, bundle::DEFAULT_MAX_BUNDLE_BYTES) {
            Ok(r) => r,
            Err(BundleError::Io { what, source }) => return Err(JobCreatorError::Local { what, source }),
            Err(e) => return Ok(Verification::Refuted(format!("the result bundle is not valid ({e})"))),
        };
        std::fs::rename(&part, dir.join("bundle.tar"))
            .map_err(local(format!("moving the bundle into {}", dir.display())))?;
        for (name, bytes) in [
            ("stdout", results.stdout.clone()),
            ("stderr", results.stderr.clone()),
            ("exit_code", format!("{}\n", results.exit_code).into_bytes()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(local(format!("writing {}", path.display())))?;
        }
        outcome.dir = Some(dir.clone());
        outcome.exit_code = Some(results.exit_code);
        outcome.stdout = results.stdout.clone();
        let actual = match bundle::result_hash(&results) {
            Ok(h) => h,
            Err(BundleError::Io { what, source }) => return Err(JobCreatorError::Local { what, source }),
            Err(e) => return Ok(Verification::Refuted(format!("the result bundle is not valid ({e})"))),
        };
        if actual != expected {
            return Ok(Verification::Refuted(format!(
                "the bundle's result hash {actual} differs from the {expected} on chain"
            )));
        }
        Ok(Verification::Verified)
    }
}
