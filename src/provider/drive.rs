//! The thin loop that drives one signed deal to its end: observe (chain, clock, and while
//! the deal is not on chain now and then the solver), [`decide`], perform the action, and
//! repeat. Failed steps are retried with backoff; only a store failure ends the task with
//! an error (which stops the provider: it must not act without its records).

use super::config::Fault;
use super::deal::{decide, Action, Ending, JobRecord, Observed, Stage};
use super::service::{ProviderError, ProviderService};
use crate::bundle;
use crate::protocol::ClientError;
use crate::runtime::Backoff;
use crate::units::format_amount;
use alloy::primitives::B256;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How soon the chain is read again after a step, before falling back to the poll interval.
const FIRST_LOOK: Duration = Duration::from_millis(20);

/// While a deal is not on chain, the solver is asked about it every this many polls.
const SOLVER_EVERY: u64 = 8;

/// The least time before the result deadline worth retrying a passing executor failure in
/// (at least the provider's `min_result_margin_secs`); with less, an error bundle goes.
const MIN_RETRY_SECS: u64 = 10;

/// What performing an action led to.
enum Next {
    /// Decide again at once.
    Now,
    /// Wait a poll interval first.
    Poll,
    /// The deal is done.
    Done,
}

impl ProviderService {
    fn workdir(&self, id: B256) -> PathBuf {
        self.work_dir.join(id.to_string())
    }

    fn bundle_path(&self, id: B256) -> PathBuf {
        self.workdir(id).join("bundle.tar")
    }

    /// Drives `job` until it is done or `token` is cancelled.
    pub(super) async fn drive(
        self: Arc<Self>,
        mut job: JobRecord,
        token: CancellationToken,
    ) -> Result<(), ProviderError> {
        let id = job.deal.id;
        let mut polls: u64 = 0;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut heads = self.chain.heads();
        while !token.is_cancelled() {
            // A block from here on ends the wait below: the next state is looked at as soon
            // as the chain has it.
            heads.mark_seen();
            // A step cut short by the stop is safe to drop: the next start reads the chain
            // before acting, and a dropped job run removes its container.
            let step = tokio::select! {
                _ = token.cancelled() => break,
                step = async {
                    let seen = self.observe(&job, polls).await?;
                    let retry = self.cfg.limits.min_result_margin_secs.max(MIN_RETRY_SECS);
                    let action = decide(&job, &seen, retry);
                    self.perform(&mut job, action).await
                } => step,
            };
            match step {
                Ok(Next::Done) => return Ok(()),
                Ok(Next::Now) => {
                    backoff.reset();
                    polls = 0;
                }
                Ok(Next::Poll) => {
                    polls += 1;
                    // The next block ends the wait. Without one (no new-block notifications
                    // from this node, or not yet), right after a step the next change is
                    // often moments away (the job creator creates a deal within
                    // milliseconds of the signature): look again soon once, then at the
                    // poll interval.
                    let wait = if polls == 1 { FIRST_LOOK.min(self.cfg.poll) } else { self.cfg.poll };
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = heads.wait(wait) => {}
                    }
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(deal = %id, stage = ?job.stage, error = %e, retry_in_ms = delay.as_millis() as u64, "step failed; retrying");
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn observe(&self, job: &JobRecord, polls: u64) -> Result<Observed, ProviderError> {
        let id = job.deal.id;
        let view = self.chain.deal(&job.deal_ref()).await?;
        let now = self.chain.now().await?;
        let block_time = self.chain.block_time().await?;
        if view.state == crate::chain::DealState::None
            && now > job.deal.deal.createDeadline.saturating_add(crate::protocol::CREATE_LAG_SECS)
        {
            // Past the deadline by more than a block's timestamp may lag, the solver has
            // freed the slot: so does this provider. It still watches until a block proves
            // the deadline passed, and runs the deal if a producer's clock lagged that far.
            self.release(&id);
        }
        let (mut solver, mut solver_has_signature) = (None, true);
        if view.state == crate::chain::DealState::None && polls % SOLVER_EVERY == SOLVER_EVERY - 1 {
            // The chain decides; the solver's word only helps to stop watching early, so a
            // solver that does not answer changes nothing.
            match self.solver.deal(id).await {
                Ok(d) => {
                    solver = Some(d.state);
                    solver_has_signature = d.provider_signature.is_some();
                }
                Err(e) => tracing::debug!(deal = %id, error = %e, "cannot ask the solver about the deal"),
            }
        }
        Ok(Observed {
            view,
            now,
            block_time,
            solver,
            solver_has_signature,
            bundle_on_disk: self.bundle_path(id).exists(),
            // A provider told to fake a result knows it did not run the job.
            stands_by_result: self.cfg.fault.is_none(),
        })
    }

    async fn perform(&self, job: &mut JobRecord, action: Action) -> Result<Next, ProviderError> {
        let id = job.deal.id;
        match action {
            Action::Wait => Ok(Next::Poll),
            Action::Resign => {
                if let Err(e) = self.solver.sign_deal(&self.signer, id).await {
                    tracing::debug!(deal = %id, error = %e, "cannot give the solver the signature again");
                }
                Ok(Next::Poll)
            }
            Action::Goto(stage) => {
                if stage == Stage::Running && job.stage == Stage::Signed {
                    tracing::info!(deal = %id, module = %job.spec.module.name, "deal created on chain: running the job");
                    // Its slot again, if it was freed at the creation deadline (the deal
                    // came in a late block): the job runs even if that is one too many.
                    self.active.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
                }
                // A record of an earlier version, which uploaded before submitting.
                job.uploaded |= job.stage == Stage::Uploaded;
                job.stage = stage;
                self.save(job)?;
                Ok(Next::Now)
            }
            Action::Run { give_up } => self.run_job(job, give_up).await,
            Action::Upload => self.upload(job).await,
            Action::Submit => {
                let hash = job.result_hash.ok_or(ProviderError::Io {
                    what: format!("submitting deal {id}"),
                    source: std::io::Error::other("no result hash recorded"),
                })?;
                let tx = self.chain.submit_result(&job.deal_ref(), hash).await?;
                tracing::info!(deal = %id, %hash, %tx, "result submitted on chain: uploading the bundle");
                job.submit_tx = Some(tx);
                job.uploaded |= job.stage == Stage::Uploaded;
                job.stage = Stage::Submitted;
                self.save(job)?;
                Ok(Next::Now)
            }
            Action::Draw => {
                let tx = self.chain.draw(&job.deal_ref()).await?;
                tracing::info!(deal = %id, %tx, "the result is challenged or audited: drew the deal's mediator");
                Ok(Next::Now)
            }
            Action::Appeal => {
                let tx = self.chain.appeal(&job.deal_ref()).await?;
                tracing::warn!(deal = %id, %tx, "the verdict found the job not done, and this provider ran it: appealed to a mediator of the network's pool");
                job.appealed = true;
                self.save(job)?;
                Ok(Next::Now)
            }
            Action::DrawAppeal => {
                let tx = self.chain.draw_appeal(&job.deal_ref()).await?;
                tracing::info!(deal = %id, %tx, "drew the appeal's mediator");
                Ok(Next::Now)
            }
            Action::ClaimTimeout => {
                let tx = self.chain.timeout(&job.deal_ref()).await?;
                tracing::info!(deal = %id, %tx, "deadline passed: settled the deal by timeout");
                Ok(Next::Now)
            }
            Action::Finish(ending) => {
                self.finish(job, ending)?;
                Ok(Next::Done)
            }
        }
    }

    fn finish(&self, job: &mut JobRecord, ending: Ending) -> Result<(), ProviderError> {
        job.stage = Stage::Done;
        job.outcome = Some(ending);
        self.save(job)?;
        self.release(&job.deal.id);
        let (id, d) = (job.deal.id, &job.deal.deal);
        let dir = self.workdir(id);
        if let Err(e) = crate::executor::scratch::remove_work_dir(&dir) {
            tracing::warn!(deal = %id, dir = %dir.display(), error = %e, "cannot remove the work directory");
        }
        match ending {
            Ending::Settled(s) if s.provider_paid() => {
                tracing::info!(deal = %id, outcome = %ending, earned = %format_amount(d.price), "deal done: paid")
            }
            Ending::Settled(s) if s.provider_slashed() => {
                tracing::warn!(deal = %id, outcome = %ending, lost = %format_amount(d.collateral), "deal done: collateral slashed")
            }
            Ending::MissedDeadline => {
                tracing::warn!(deal = %id, outcome = %ending, lost = %format_amount(d.collateral), "deal done: the result deadline passed before delivery")
            }
            _ => tracing::info!(deal = %id, outcome = %ending, "deal done"),
        }
        Ok(())
    }

    /// Runs the job from scratch and writes its bundle: Running → Ran. A job the executor
    /// cannot run (for good, or with `give_up` when too little time is left to retry), or
    /// whose output is over the job's limit, gets an error bundle: exit code
    /// [`bundle::ERROR_BUNDLE_EXIT`] and the error on stderr, submitted like any result
    /// (THREATS S3).
    async fn run_job(&self, job: &mut JobRecord, give_up: bool) -> Result<Next, ProviderError> {
        let id = job.deal.id;
        let dir = self.workdir(id);
        let io = |what: &str| {
            let what = format!("{what} {}", dir.display());
            move |source| ProviderError::Io { what, source }
        };
        crate::executor::scratch::remove_work_dir(&dir).map_err(io("clearing"))?;
        std::fs::create_dir_all(&dir).map_err(io("creating"))?;
        let started = std::time::Instant::now();
        let mut results = if self.cfg.fault == Some(Fault::SkipJob) {
            tracing::warn!(deal = %id, "fault injection: reporting a result without running the job");
            let outputs_dir = dir.join("outputs");
            std::fs::create_dir_all(&outputs_dir).map_err(io("creating"))?;
            bundle::Results { exit_code: 137, stdout: vec![], stderr: vec![], outputs_dir }
        } else {
            match self.executor.run(&job.spec_to_run(), &dir).await {
                Ok(outcome) => {
                    if let Some(why) = &outcome.over_limit {
                        tracing::warn!(deal = %id, why = %why, "the job's output cannot be delivered: delivering an error bundle");
                    }
                    outcome.results()
                }
                Err(e) if e.is_permanent() || give_up => {
                    tracing::warn!(deal = %id, error = %e, "the job cannot be run: delivering an error bundle");
                    bundle::Results::error(dir.join("outputs"), &format!("the provider could not run the job: {e}"))
                        .map_err(io("creating"))?
                }
                Err(e) => return Err(e.into()),
            }
        };
        if self.cfg.fault == Some(Fault::WrongResult) {
            tracing::warn!(deal = %id, "fault injection: reporting a wrong result");
            results.stdout.extend_from_slice(b"(a cheating provider was here)\n");
        }
        // The job's own limit, which the offer's cap covers (checked before signing): a
        // mediator re-running the job packs it by the same rule and reaches the same hash.
        let packed = bundle::pack(results, job.spec.output_limit_bytes(), &self.bundle_path(id))?;
        if let Some(why) = &packed.replaced {
            tracing::warn!(deal = %id, why = %why, "the job's output cannot be delivered: delivering an error bundle");
        }
        let hash = packed.hash;
        tracing::info!(
            deal = %id,
            exit_code = packed.exit_code,
            secs = format!("{:.2}", started.elapsed().as_secs_f64()),
            result_hash = %hash,
            "job ran: uploading the result"
        );
        job.result_hash = Some(hash);
        job.stage = Stage::Ran;
        self.save(job)?;
        Ok(Next::Now)
    }

    /// Uploads the bundle once its hash is on chain. A bundle the solver already holds is
    /// fine if it is this one. Failures are retried with backoff by the loop until the judge
    /// deadline.
    async fn upload(&self, job: &mut JobRecord) -> Result<Next, ProviderError> {
        let id = job.deal.id;
        let bundle = self.bundle_path(id);
        match self.solver.upload_result(&self.signer, id, &bundle).await {
            Ok(_) => {}
            Err(ClientError::ResultExists { sha256 }) => {
                let ours = sha256_file(&bundle)
                    .map_err(|source| ProviderError::Io { what: format!("hashing {}", bundle.display()), source })?;
                if ours != sha256 {
                    return Err(ProviderError::ForeignBundle { deal: id, theirs: sha256, ours });
                }
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(deal = %id, "bundle uploaded: waiting for the job creator");
        job.uploaded = true;
        self.save(job)?;
        Ok(Next::Now)
    }
}

/// sha256 of a file.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<B256> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(B256::from_slice(&h.finalize()))
}
