//! One signed deal as the provider keeps it ([`JobRecord`]) and the pure decision of what
//! to do next ([`decide`]): the record's [`Stage`], the deal as the chain holds it and the
//! chain's clock go in, an [`Action`] comes out. The loop in `drive.rs` performs it.
//!
//! Life: signed → running → ran → submitted (→ uploaded) → done. Delivery never depends on
//! the solver (THREATS S3): the result hash goes on chain as soon as the bundle is written,
//! and the upload follows, retried with backoff until the judge deadline. The chain is read
//! before every step, so a record that is behind the chain (a restart after a transaction
//! went out) catches up instead of sending the transaction again.

use crate::chain::{DealState, DealView};
use crate::protocol::records::{DealRecord, DealStatus};
use crate::types::JobSpec;
use alloy::primitives::B256;
use serde::{Deserialize, Serialize};

/// Where a signed deal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Signed; waiting for the job creator to create it on chain.
    Signed,
    /// Created on chain: the job is to be run (again, after a restart).
    Running,
    /// Ran; the bundle is on disk with `result_hash`.
    Ran,
    /// Records of earlier versions only, which uploaded before submitting: the bundle is
    /// at the solver, the hash not yet on chain.
    Uploaded,
    /// The result hash is on chain (`uploaded` says whether the solver has the bundle);
    /// waiting for the verdict or the judge deadline.
    Submitted,
    /// Nothing left to do (`outcome` says how it ended).
    Done,
}

/// How a deal ended for the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Settled on chain in this final state.
    Settled(DealState),
    /// Never created on chain: its creation deadline passed (or the provider cancelled it).
    NeverCreated,
    /// The result deadline passed before a result was on chain: the collateral is lost
    /// once anyone calls `timeout`.
    MissedDeadline,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Settled(s) => write!(f, "{s}"),
            Self::NeverCreated => f.write_str("never created on chain"),
            Self::MissedDeadline => f.write_str("result deadline missed"),
        }
    }
}

/// One signed deal, as kept in the provider's store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The deal as the solver proposed it.
    pub deal: DealRecord,
    /// The job.
    pub spec: JobSpec,
    /// Where it is.
    pub stage: Stage,
    /// The result hash once run.
    pub result_hash: Option<B256>,
    /// The `submitResult` transaction.
    pub submit_tx: Option<B256>,
    /// Whether the solver holds the bundle.
    #[serde(default)]
    pub uploaded: bool,
    /// How it ended.
    #[serde(default, deserialize_with = "ending_or_legacy")]
    pub outcome: Option<Ending>,
    /// When it was signed, unix seconds.
    pub signed_at: u64,
    /// The image's local ID when it was signed (`sha256:…`): the job runs that image, not
    /// whatever its tag names by then. Absent in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The chain's latest block when it was signed: the deal's events come after it.
    #[serde(default)]
    pub since_block: u64,
    /// Whether this provider appealed a verdict against it.
    #[serde(default)]
    pub appealed: bool,
}

impl JobRecord {
    /// A deal just signed, at `signed_at` (unix seconds).
    pub fn signed(deal: DealRecord, spec: JobSpec, signed_at: u64, image_id: Option<String>) -> Self {
        Self {
            deal,
            spec,
            stage: Stage::Signed,
            result_hash: None,
            submit_tx: None,
            uploaded: false,
            outcome: None,
            signed_at,
            image_id,
            since_block: 0,
            appealed: false,
        }
    }

    /// The deal as this provider knows it, for the chain.
    pub fn deal_ref(&self) -> crate::chain::DealRef {
        crate::chain::DealRef { id: self.deal.id, deal: self.deal.deal.clone(), since_block: self.since_block }
    }

    /// The spec to run: the job's, with its image pinned to the ID seen at signing.
    pub fn spec_to_run(&self) -> JobSpec {
        match &self.image_id {
            Some(id) => JobSpec { image: id.clone(), ..self.spec.clone() },
            None => self.spec.clone(),
        }
    }
}

/// Reads an [`Ending`], or the plain text an earlier version wrote ("accepted",
/// "expired: never created on chain", …), so that its records still load.
fn ending_or_legacy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Ending>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Now(Ending),
        Legacy(String),
    }
    Ok(match Option::<Stored>::deserialize(d)? {
        None => None,
        Some(Stored::Now(e)) => Some(e),
        Some(Stored::Legacy(text)) if text.starts_with("expired") => Some(Ending::NeverCreated),
        Some(Stored::Legacy(text)) => {
            let state = DealState::ALL.into_iter().find(|s| s.name() == text);
            Some(state.map(Ending::Settled).unwrap_or(Ending::MissedDeadline))
        }
    })
}

/// What the loop saw before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The deal on chain.
    pub view: DealView,
    /// The chain's clock.
    pub now: u64,
    /// The latest block's timestamp (at most `now`).
    pub block_time: u64,
    /// The solver's status of the deal, when asked (only while it is not on chain).
    pub solver: Option<DealStatus>,
    /// Whether the solver still holds the provider's signature (when asked).
    pub solver_has_signature: bool,
    /// Whether the bundle is on disk.
    pub bundle_on_disk: bool,
    /// Whether this provider stands by its result: it ran the job itself (no fault
    /// injected), so a verdict against it is appealed.
    pub stands_by_result: bool,
}

/// What to do next with a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the chain moves.
    Wait,
    /// The solver lost the signature of a deal not yet created: sign it again.
    Resign,
    /// Move the record to `stage` (the chain is ahead of it, or a file is gone).
    Goto(Stage),
    /// Run the job (again, from scratch) and write its bundle; an executor failure becomes
    /// an error bundle when it is permanent or `give_up` (too little time is left to retry).
    Run {
        /// Deliver an error bundle rather than retry a passing failure.
        give_up: bool,
    },
    /// Upload the bundle to the solver (after the hash is on chain).
    Upload,
    /// Submit the result hash on chain.
    Submit,
    /// Call `draw`: the deal was challenged (or audited) and nobody drew its mediator yet.
    Draw,
    /// Call `appeal`: a verdict found the provider dishonest, and it ran the job itself.
    Appeal,
    /// Call `drawAppeal`: the appeal's mediator is not drawn yet.
    DrawAppeal,
    /// Call `timeout`: payment after the judge deadline; after a mediation deadline with
    /// no verdict, another mediator is drawn, or the result stands when none is left.
    ClaimTimeout,
    /// The deal is over.
    Finish(Ending),
}

/// What to do with `job` given what was observed, retrying a passing executor failure only
/// while more than `retry_secs` are left before the result deadline. Pure.
pub fn decide(job: &JobRecord, seen: &Observed, retry_secs: u64) -> Action {
    let state = seen.view.state;
    if state == DealState::MediatedDishonest
        && seen.stands_by_result
        && !job.appealed
        && job.result_hash.is_some()
        && seen.view.appealable(seen.now)
    {
        // It ran the job and the verdict says it did not: a second mediator from the
        // network's pool decides, and an overturned verdict costs the first its bond.
        return Action::Appeal;
    }
    if state.is_final() {
        return Action::Finish(Ending::Settled(state));
    }
    let late = seen.view.past_deadline(seen.now);
    match (job.stage, state) {
        (Stage::Done, _) => Action::Wait,
        // Not on chain (yet): the job creator may create it until its creation deadline,
        // whatever the solver says, so it is watched until a block carries a later time (a
        // producer whose clock lags may include `createDeal` after the wall clock passed
        // it; the slot itself is freed at the deadline, see `drive`).
        (_, DealState::None) if seen.block_time > job.deal.deal.createDeadline => Action::Finish(Ending::NeverCreated),
        (_, DealState::None) => match seen.solver {
            Some(DealStatus::Signed | DealStatus::Proposed) if !seen.solver_has_signature => Action::Resign,
            _ => Action::Wait,
        },
        (Stage::Signed, DealState::Created) => Action::Goto(Stage::Running),
        (Stage::Running | Stage::Ran | Stage::Uploaded, DealState::Created) if late => {
            Action::Finish(Ending::MissedDeadline)
        }
        (Stage::Running, DealState::Created) => {
            Action::Run { give_up: seen.view.deadline.saturating_sub(seen.now) <= retry_secs }
        }
        (Stage::Ran, DealState::Created) if !seen.bundle_on_disk => Action::Goto(Stage::Running),
        (Stage::Ran | Stage::Uploaded, DealState::Created) => Action::Submit,
        // The record was saved before the submit transaction's receipt came back.
        (Stage::Submitted, DealState::Created) => Action::Goto(Stage::Ran),
        // The result is on chain: a restart after `submitResult` lands here, not at Submit.
        (Stage::Signed | Stage::Running | Stage::Ran | Stage::Uploaded, _) => Action::Goto(Stage::Submitted),
        (Stage::Submitted, DealState::ResultSubmitted | DealState::Challenged | DealState::Audited) if late => {
            Action::ClaimTimeout
        }
        (Stage::Submitted, DealState::Challenged | DealState::Audited) if seen.view.awaits_draw(seen.now) => {
            Action::Draw
        }
        // Its own appeal: it sees it through (a lapsed one refunds its fee).
        (_, DealState::Appealed) if late => Action::ClaimTimeout,
        (_, DealState::Appealed) if !seen.view.appealed_by_job_creator() && seen.view.awaits_appeal_draw(seen.now) => {
            Action::DrawAppeal
        }
        (_, DealState::Appealed) => Action::Wait,
        // Until the judge deadline the job creator may download it; a challenge is decided
        // by the mediator's own run, which needs no bundle.
        (Stage::Submitted, DealState::ResultSubmitted) if !job.uploaded && seen.bundle_on_disk => Action::Upload,
        (Stage::Submitted, _) => Action::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{deal_record, spec};
    use alloy::primitives::Address;

    fn job(stage: Stage) -> JobRecord {
        JobRecord { stage, ..JobRecord::signed(deal_record(1), spec("moo"), 0, None) }
    }

    /// Decides with ten seconds as the least time worth retrying an executor failure in.
    fn d(job: &JobRecord, seen: &Observed) -> Action {
        decide(job, seen, 10)
    }

    fn seen(state: DealState, deadline: u64, now: u64) -> Observed {
        Observed {
            view: DealView {
                state,
                deadline,
                result_hash: B256::ZERO,
                mediator: Address::repeat_byte(3),
                ..DealView::none()
            },
            now,
            block_time: now,
            solver: None,
            solver_has_signature: true,
            bundle_on_disk: true,
            stands_by_result: true,
        }
    }

    #[test]
    fn the_happy_path_moves_one_stage_at_a_time() {
        assert_eq!(d(&job(Stage::Signed), &seen(DealState::None, 0, 10)), Action::Wait);
        assert_eq!(d(&job(Stage::Signed), &seen(DealState::Created, 100, 10)), Action::Goto(Stage::Running));
        assert_eq!(d(&job(Stage::Running), &seen(DealState::Created, 100, 10)), Action::Run { give_up: false });
        // The hash goes on chain first, then the bundle to the solver.
        assert_eq!(d(&job(Stage::Ran), &seen(DealState::Created, 100, 10)), Action::Submit);
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::ResultSubmitted, 200, 110)), Action::Upload);
        let uploaded = JobRecord { uploaded: true, ..job(Stage::Submitted) };
        assert_eq!(d(&uploaded, &seen(DealState::ResultSubmitted, 200, 110)), Action::Wait);
        assert_eq!(
            d(&job(Stage::Submitted), &seen(DealState::Accepted, 0, 120)),
            Action::Finish(Ending::Settled(DealState::Accepted))
        );
    }

    #[test]
    fn every_restart_point_catches_up_with_the_chain_without_a_second_transaction() {
        // Killed after submitResult went out but before the record said so.
        for stage in [Stage::Signed, Stage::Running, Stage::Ran, Stage::Uploaded] {
            assert_eq!(
                d(&job(stage), &seen(DealState::ResultSubmitted, 200, 110)),
                Action::Goto(Stage::Submitted),
                "{stage:?}"
            );
            assert_eq!(d(&job(stage), &seen(DealState::Challenged, 200, 110)), Action::Goto(Stage::Submitted));
        }
        // Killed after the bundle was written but the work directory is gone: run again.
        let mut s = seen(DealState::Created, 100, 10);
        s.bundle_on_disk = false;
        assert_eq!(d(&job(Stage::Ran), &s), Action::Goto(Stage::Running));
        // A record that says submitted while the chain has no result submits again.
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::Created, 100, 10)), Action::Goto(Stage::Ran));
        // A record of an earlier version that uploaded first submits.
        assert_eq!(d(&job(Stage::Uploaded), &seen(DealState::Created, 100, 10)), Action::Submit);
        // Whatever the stage, a settled deal is finished, with the state it settled in.
        for stage in [Stage::Signed, Stage::Running, Stage::Ran, Stage::Uploaded, Stage::Submitted] {
            assert_eq!(
                d(&job(stage), &seen(DealState::MediatedDishonest, 0, 10)),
                Action::Finish(Ending::Settled(DealState::MediatedDishonest))
            );
        }
    }

    #[test]
    fn timeouts_the_provider_claims() {
        // No judgement by the deadline: the provider takes its payment.
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::ResultSubmitted, 200, 201)), Action::ClaimTimeout);
        // Inclusive deadline: not yet at the deadline itself.
        let uploaded = JobRecord { uploaded: true, ..job(Stage::Submitted) };
        assert_eq!(d(&uploaded, &seen(DealState::ResultSubmitted, 200, 200)), Action::Wait);
        // No verdict by the mediation deadline: another mediator, or the result stands.
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::Challenged, 300, 301)), Action::ClaimTimeout);
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::Challenged, 300, 250)), Action::Wait);
        // Challenged and nobody drew the mediator: the provider draws it.
        let mut undrawn = seen(DealState::Challenged, 300, 250);
        undrawn.view.mediator = Address::ZERO;
        assert_eq!(d(&job(Stage::Submitted), &undrawn), Action::Draw);
    }

    #[test]
    fn delivery_never_hangs_on_one_thing() {
        // A passing executor failure is retried while time is left, then delivered as an
        // error bundle; the upload is retried until the judge deadline, never after.
        assert_eq!(d(&job(Stage::Running), &seen(DealState::Created, 100, 89)), Action::Run { give_up: false });
        assert_eq!(d(&job(Stage::Running), &seen(DealState::Created, 100, 90)), Action::Run { give_up: true });
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::ResultSubmitted, 200, 200)), Action::Upload);
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::ResultSubmitted, 200, 201)), Action::ClaimTimeout);
        // No bundle on disk after the hash went on chain: nothing to upload (the mediator
        // decides a challenge by its own run).
        let mut gone = seen(DealState::ResultSubmitted, 200, 110);
        gone.bundle_on_disk = false;
        assert_eq!(d(&job(Stage::Submitted), &gone), Action::Wait);
    }

    #[test]
    fn timeouts_the_provider_suffers() {
        // The result deadline passed before the result was on chain: nothing to send.
        for stage in [Stage::Running, Stage::Ran, Stage::Uploaded] {
            assert_eq!(
                d(&job(stage), &seen(DealState::Created, 100, 101)),
                Action::Finish(Ending::MissedDeadline),
                "{stage:?}"
            );
        }
        // The solver says the deal expired, but the signature is good until the creation
        // deadline: a job creator may still create it, so the provider keeps watching.
        let deadline = job(Stage::Signed).deal.deal.createDeadline;
        let mut s = seen(DealState::None, 0, deadline);
        s.solver = Some(DealStatus::Expired);
        assert_eq!(d(&job(Stage::Signed), &s), Action::Wait);
        // The wall clock past it proves nothing while no block carries a later time: a
        // producer whose clock lags may still include `createDeal`.
        s.now = deadline + 100;
        assert_eq!(d(&job(Stage::Signed), &s), Action::Wait);
        s.block_time = deadline + 1;
        assert_eq!(d(&job(Stage::Signed), &s), Action::Finish(Ending::NeverCreated));
        // Created late, at the deadline: it is run like any other.
        let late = seen(DealState::Created, deadline + 100, deadline);
        assert_eq!(d(&job(Stage::Signed), &late), Action::Goto(Stage::Running));
    }

    #[test]
    fn records_of_the_earlier_version_still_load() {
        let mut old = serde_json::to_value(job(Stage::Done)).unwrap();
        for (text, want) in [
            ("accepted", Ending::Settled(DealState::Accepted)),
            ("timed_out_no_result", Ending::Settled(DealState::TimedOutNoResult)),
            ("expired: never created on chain", Ending::NeverCreated),
        ] {
            old["outcome"] = serde_json::json!(text);
            let back: JobRecord = serde_json::from_value(old.clone()).unwrap();
            assert_eq!(back.outcome, Some(want), "{text}");
        }
        let new = job(Stage::Done);
        let round: JobRecord = serde_json::from_value(
            serde_json::to_value(JobRecord { outcome: Some(Ending::Settled(DealState::MediatedHonest)), ..new })
                .unwrap(),
        )
        .unwrap();
        assert_eq!(round.outcome, Some(Ending::Settled(DealState::MediatedHonest)));
    }

    #[test]
    fn an_audit_is_followed_like_a_challenge() {
        let mut undrawn = seen(DealState::Audited, 300, 250);
        undrawn.view.mediator = Address::ZERO;
        assert_eq!(d(&job(Stage::Submitted), &undrawn), Action::Draw);
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::Audited, 300, 250)), Action::Wait);
        // The auditor is silent: the next round, or the deal settles.
        assert_eq!(d(&job(Stage::Submitted), &seen(DealState::Audited, 300, 301)), Action::ClaimTimeout);
        assert_eq!(d(&job(Stage::Running), &seen(DealState::Audited, 300, 250)), Action::Goto(Stage::Submitted));
    }

    #[test]
    fn a_provider_that_ran_the_job_appeals_a_verdict_against_it_and_sees_the_appeal_through() {
        let ran = JobRecord { result_hash: Some(B256::repeat_byte(1)), ..job(Stage::Submitted) };
        // Mediated against it, appeal window open until 500.
        let mut s = seen(DealState::MediatedDishonest, 500, 400);
        assert_eq!(d(&ran, &s), Action::Appeal);
        s.now = 501;
        assert_eq!(d(&ran, &s), Action::Finish(Ending::Settled(DealState::MediatedDishonest)), "window closed");
        // A provider that did not run the job itself has nothing to stand by.
        s.now = 400;
        s.stands_by_result = false;
        assert_eq!(d(&ran, &s), Action::Finish(Ending::Settled(DealState::MediatedDishonest)));
        s.stands_by_result = true;
        // Once only, and never a second appeal of a deal already appealed.
        let appealed = JobRecord { appealed: true, ..ran.clone() };
        assert_eq!(d(&appealed, &s), Action::Finish(Ending::Settled(DealState::MediatedDishonest)));
        s.view.flags = crate::chain::api::FLAG_APPEAL_DONE;
        assert_eq!(d(&ran, &s), Action::Finish(Ending::Settled(DealState::MediatedDishonest)));
        // A verdict for it is not appealed.
        assert_eq!(
            d(&ran, &seen(DealState::MediatedHonest, 500, 400)),
            Action::Finish(Ending::Settled(DealState::MediatedHonest))
        );

        // Its appeal: it draws the second mediator, waits for the ruling, and ends a
        // lapsed appeal (which refunds its fee).
        let mut a = seen(DealState::Appealed, 900, 600);
        a.view.mediator = Address::ZERO;
        assert_eq!(d(&appealed, &a), Action::DrawAppeal);
        a.view.mediator = Address::repeat_byte(4);
        assert_eq!(d(&appealed, &a), Action::Wait);
        a.now = 901;
        assert_eq!(d(&appealed, &a), Action::ClaimTimeout);
        // The job creator's appeal is the job creator's to draw.
        let mut theirs = seen(DealState::Appealed, 900, 600);
        theirs.view.mediator = Address::ZERO;
        theirs.view.flags = crate::chain::api::FLAG_APPEAL_BY_JOB_CREATOR;
        assert_eq!(d(&appealed, &theirs), Action::Wait);
    }

    #[test]
    fn a_signature_the_solver_lost_is_given_again() {
        let mut s = seen(DealState::None, 0, 10);
        s.solver = Some(DealStatus::Proposed);
        s.solver_has_signature = false;
        assert_eq!(d(&job(Stage::Signed), &s), Action::Resign);
        s.solver_has_signature = true;
        s.solver = Some(DealStatus::Signed);
        assert_eq!(d(&job(Stage::Signed), &s), Action::Wait);
    }
}
