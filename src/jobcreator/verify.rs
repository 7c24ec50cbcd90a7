//! The bundle check before judging: download the result bundle into
//! `<results>/<deal>/`, extract it, compare its result hash with the chain's, then hold it
//! to what the module promised (THREATS S5): an exit code the module calls success and
//! every output it declares. What the provider is to blame for (no bundle, a malformed one,
//! another hash, a failed or skipped job) comes back as [`Verification::Refuted`] and leads
//! to a challenge, in which the mediator's re-run decides; what fails on this machine (disk,
//! permissions) is [`JobCreatorError::Local`] and stops without challenging.

use super::settle::{Outcome, Verification};
use super::{JobCreator, JobCreatorError};
use crate::bundle::{self, BundleError};
use crate::clock::now_secs;
use crate::protocol::records::{DealRecord, EventKind};
use crate::protocol::{ClientError, EventStream};
use crate::types::JobSpec;
use alloy::primitives::B256;
use std::time::{Duration, Instant};

/// The first wait before downloading again a bundle the solver does not have yet.
const FIRST_RETRY: Duration = Duration::from_millis(20);

fn local(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JobCreatorError {
    let what = what.into();
    move |source| JobCreatorError::Local { what, source }
}

impl JobCreator {
    /// Waits until `events` says deal `id`'s result was uploaded, at most `at_most`. A
    /// stream that failed or ended yields nothing more: the wait is then a plain pause.
    /// (One stream per deal being checked, held only while its bundle is not there yet:
    /// the solver's per-address cap of 64 subscriptions bounds how many jobs of one host
    /// wait this way at once; the others are told to wait, and poll.)
    async fn until_uploaded(
        &self,
        events: Option<&mut EventStream>,
        id: B256,
        at_most: Duration,
    ) -> Result<(), JobCreatorError> {
        let Some(events) = events else { return self.pause(at_most).await };
        let uploaded = async {
            while let Some(Ok(ev)) = events.next().await {
                if matches!(ev.kind, EventKind::ResultUploaded { deal, .. } if deal == id) {
                    return;
                }
            }
            // The stream ended: the rest of the time passes as a pause.
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = self.token.cancelled() => Err(JobCreatorError::Interrupted),
            _ = tokio::time::timeout(at_most, uploaded) => Ok(()),
        }
    }

    /// Downloads deal `id`'s bundle and checks it against `expected`. Waits while the
    /// solver does not have it yet, until a quarter of the judge window (at least 5 s) is
    /// left to challenge in.
    pub(super) async fn verify(
        &self,
        deal: &DealRecord,
        spec: &JobSpec,
        expected: B256,
        judge_deadline: u64,
        outcome: &mut Outcome,
    ) -> Result<Verification, JobCreatorError> {
        let id = deal.id;
        let dir = self.results_dir.join(id.to_string());
        let part = self.results_dir.join(format!("{id}.tar.part"));
        std::fs::create_dir_all(&self.results_dir)
            .map_err(local(format!("creating {}", self.results_dir.display())))?;
        let window = judge_deadline.saturating_sub(now_secs());
        let give_up = Instant::now() + Duration::from_secs(window.saturating_sub((window / 4).max(5)));
        // The provider uploads right after its hash is on chain: the solver's
        // `result_uploaded` event ends the wait, and a short first retry covers a stream
        // that cannot be opened.
        let mut uploads: Option<EventStream> = None;
        let mut retry = FIRST_RETRY.min(self.terms.poll);
        loop {
            match self.solver.download_result(&self.signer, id, &part).await {
                Ok(_) => break,
                Err(ClientError::Io { what, source }) => return Err(JobCreatorError::Local { what, source }),
                // Not there yet, or the solver busy, failing or silent (its client already
                // asked again a few times): wait, never challenge over it.
                Err(e) if e.is_not_found() || e.is_transient() => {
                    if Instant::now() >= give_up {
                        return Ok(Verification::Refuted(format!("the result bundle could not be downloaded ({e})")));
                    }
                    if uploads.is_none() {
                        // Events of this account from the deal's match on: an upload made
                        // since the failed download is replayed.
                        uploads = self.solver.events(self.me(), deal.seq.saturating_sub(1)).await.ok();
                    }
                    self.until_uploaded(uploads.as_mut(), id, retry).await?;
                    retry = (retry * 2).min(self.terms.poll);
                }
                Err(e) => return Ok(Verification::Refuted(format!("the result bundle could not be downloaded ({e})"))),
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(local(format!("clearing {}", dir.display())))?;
        }
        // No honest bundle holds more than the job's output limit (`bundle::pack`). The hash
        // is checked before anything is written (THREATS X1).
        let results = match bundle::extract(&part, &dir, spec.output_limit_bytes(), Some(expected)) {
            Ok(extracted) => extracted.results,
            Err(BundleError::Io { what, source }) => return Err(JobCreatorError::Local { what, source }),
            Err(BundleError::HashMismatch { actual, expected }) => {
                return Ok(Verification::Refuted(format!(
                    "the bundle's result hash {actual} differs from the {expected} on chain"
                )))
            }
            Err(e) => return Ok(Verification::Refuted(format!("the result bundle is not valid ({e})"))),
        };
        std::fs::rename(&part, dir.join("bundle.tar"))
            .map_err(local(format!("moving the bundle into {}", dir.display())))?;
        results.write_streams(&dir).map_err(local(format!("writing the job's streams into {}", dir.display())))?;
        outcome.dir = Some(dir.clone());
        outcome.exit_code = Some(results.exit_code);
        outcome.stdout = results.stdout.clone();
        Ok(match broken_promise(spec, &results) {
            Some(why) => Verification::Refuted(why),
            None => Verification::Verified,
        })
    }
}

/// How `results` fall short of what `spec`'s module promises, if they do: an exit code it
/// does not call success, or a declared output missing. A provider that skipped the job
/// (`exit 137`, nothing written) is caught here; an honest run of a job that really failed
/// is upheld by the mediator's re-run.
pub fn broken_promise(spec: &JobSpec, results: &bundle::Results) -> Option<String> {
    let module = &spec.module.name;
    if !spec.is_success(results.exit_code) {
        let mut why = format!(
            "the job exited with code {}, which module `{module}` does not call success ({})",
            results.exit_code,
            spec.success_codes_text()
        );
        if results.exit_code == bundle::ERROR_BUNDLE_EXIT {
            // The provider's own words: a stranger's text, shown escaped and short.
            let said = String::from_utf8_lossy(&results.stderr);
            let said: String = said.lines().next().unwrap_or("").chars().take(200).collect();
            why.push_str(&format!(" (an error bundle; its stderr says: \"{}\")", said.escape_debug()));
        }
        return Some(why);
    }
    let missing: Vec<&str> = spec
        .outputs
        .iter()
        .filter(|o| results.outputs_dir.join(o).symlink_metadata().is_err())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(format!("module `{module}` declares outputs it did not write: {}", missing.join(", ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_or_skipped_job_breaks_the_modules_promise() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("outputs");
        std::fs::create_dir_all(&out).unwrap();
        let mut spec = crate::testing::spec("moo");
        let results =
            |code| bundle::Results { exit_code: code, stdout: vec![], stderr: vec![], outputs_dir: out.clone() };
        assert_eq!(broken_promise(&spec, &results(0)), None);
        let why = broken_promise(&spec, &results(137)).unwrap();
        assert!(why.contains("exited with code 137") && why.contains("(0)"), "{why}");
        let error = bundle::Results { stderr: b"dcn: too big\x1b[2J\nmore".to_vec(), ..results(125) };
        let why = broken_promise(&spec, &error).unwrap();
        assert!(why.ends_with(r#"its stderr says: "dcn: too big\u{1b}[2J")"#), "{why}");
        spec.success_exit_codes = vec![0, 1];
        assert_eq!(broken_promise(&spec, &results(1)), None);
        spec.outputs = vec!["a.txt".into(), "sub/b.txt".into()];
        std::fs::write(out.join("a.txt"), "x").unwrap();
        let why = broken_promise(&spec, &results(0)).unwrap();
        assert!(why.contains("did not write: sub/b.txt"), "{why}");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::write(out.join("sub/b.txt"), "y").unwrap();
        assert_eq!(broken_promise(&spec, &results(0)), None);
    }
}
