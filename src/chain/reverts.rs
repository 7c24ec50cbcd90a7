//! A contract's refusal in words: the custom errors of `DcnDeals` (with `DcnEscrow`'s),
//! `DcnJobBoard` and `DcnRegistry` decoded from a call's revert data, each with what
//! happened and what to do. Start at [`explain`].

use super::bindings::{DcnDeals, DcnJobBoard, DcnRegistry};
use crate::units::format_amount;

/// What `error` means: a named contract refusal with advice where the revert data decodes,
/// else the error as alloy says it.
pub fn explain(error: &alloy::contract::Error) -> String {
    if let Some(e) = error.as_decoded_interface_error::<DcnDeals::DcnDealsErrors>() {
        return deals(&e);
    }
    if let Some(e) = error.as_decoded_interface_error::<DcnJobBoard::DcnJobBoardErrors>() {
        return board(&e);
    }
    if let Some(e) = error.as_decoded_interface_error::<DcnRegistry::DcnRegistryErrors>() {
        return format!("DcnRegistry refused it: {e:?}");
    }
    error.to_string()
}

fn deals(e: &DcnDeals::DcnDealsErrors) -> String {
    use DcnDeals::DcnDealsErrors as E;
    match e {
        E::AlreadyAppealed(x) => {
            format!("deal {} was appealed once already: the appeal's verdict is final (AlreadyAppealed)", x.dealId)
        }
        E::DeadlinePassed(x) => format!(
            "deal {}'s deadline passed (unix time {}): too late for this step. A verdict whose appeal window closed \
             stands; where a deadline settles the deal, `timeout` does (DeadlinePassed)",
            x.dealId, x.deadline
        ),
        E::DeadlineNotReached(x) => format!(
            "deal {}'s deadline (unix time {}) has not passed yet: wait for it and call again (DeadlineNotReached)",
            x.dealId, x.deadline
        ),
        E::WrongState(x) => format!(
            "deal {} is in state {} on chain, where this step does not apply (an audited or challenged deal is not \
             audited again, only a mediated one is appealed): read it again with `dcn jobs` (WrongState)",
            x.dealId, x.state
        ),
        E::NotLoser(x) => format!(
            "{} may not appeal: only the party the verdict went against appeals, within the appeal window (NotLoser)",
            x.caller
        ),
        E::NotMediator(x) => {
            format!(
                "{} is not the mediator drawn for this deal ({}): only it rules (NotMediator)",
                x.caller, x.mediator
            )
        }
        E::DrawNotReady(x) => format!(
            "the draw uses the hash of block {}, which is not mined yet: call again from the next block (DrawNotReady)",
            x.drawBlock
        ),
        E::WrongCommitment(x) => format!(
            "the terms or case given for deal {} are not the chain's: the deal moved since it was read; read it again \
             (WrongCommitment)",
            x.dealId
        ),
        E::BondLocked(x) => format!(
            "the bond of {} stays until unix time {}: a mediator answers for its verdicts for 30 days after it asks \
             to unbond; withdraw it then (BondLocked)",
            x.mediator, x.unbondAt
        ),
        E::Unbonding(x) => format!(
            "{} asked to unbond (its bond is free at unix time {}): it is drawn no more and cannot add to that bond; \
             withdraw it then and post a new one (Unbonding)",
            x.mediator, x.unbondAt
        ),
        E::NotUnbonding(x) => {
            format!(
                "{} has not asked to unbond: call requestUnbond first, then wait 30 days (NotUnbonding)",
                x.mediator
            )
        }
        E::NoBond(x) => format!("{} has no bond (NoBond)", x.mediator),
        E::InsufficientEscrow(x) => format!(
            "account {} has {} DCN free in escrow but {} DCN is needed: deposit more (InsufficientEscrow)",
            x.account,
            format_amount(x.available),
            format_amount(x.needed)
        ),
        E::FeeBelowFloor(x) => format!(
            "a fee of {} DCN is below the network's floor of {} DCN: raise job.mediation_fee and job.audit_fee \
             (FeeBelowFloor)",
            format_amount(x.fee),
            format_amount(x.floor)
        ),
        E::TooFewMediators(x) => format!(
            "the deal names {} mediators and the network asks at least {}: trust more of the network's mediators \
             (TooFewMediators)",
            x.count, x.min
        ),
        E::AuditChanceTooLow(x) => format!(
            "an audit chance of {} ppm is below the network's {} ppm: raise job.audit_ppm (AuditChanceTooLow)",
            x.auditPpm, x.min
        ),
        other => format!("DcnDeals refused it: {other:?}"),
    }
}

fn board(e: &DcnJobBoard::DcnJobBoardErrors) -> String {
    use DcnJobBoard::DcnJobBoardErrors as E;
    match e {
        E::WrongJob(x) => format!(
            "request {} asks for job {} but the deal ran job {}: only a deal of the requested job is delivered \
             (WrongJob)",
            x.requestId, x.requested, x.dealt
        ),
        E::OperatorIsProvider(x) => format!(
            "deal {}'s provider is the job board's operator: the operator cannot deliver its own work \
             (OperatorIsProvider)",
            x.dealId
        ),
        E::DealInFlight(x) => format!(
            "request {} waits on deal {}, still in flight: a refund comes once it failed or its grace passed \
             (DealInFlight)",
            x.requestId, x.dealId
        ),
        E::DealNotPaid(x) => format!(
            "deal {} did not pay its provider (state {}): its result is not delivered; buy another deal \
             (DealNotPaid)",
            x.dealId, x.state
        ),
        other => format!("DcnJobBoard refused it: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use alloy::sol_types::SolError;

    /// The error a node returns when a call reverts with `data`.
    fn reverted(data: Vec<u8>) -> alloy::contract::Error {
        let body = format!(r#"{{"code":3,"message":"execution reverted","data":"0x{}"}}"#, hex::encode(data));
        let payload = serde_json::from_str(&body).unwrap();
        alloy::contract::Error::TransportError(alloy::transports::RpcError::ErrorResp(payload))
    }

    #[test]
    fn refusals_are_named_with_what_to_do() {
        let id = B256::repeat_byte(7);
        let twice = reverted(DcnDeals::AlreadyAppealed { dealId: id }.abi_encode());
        assert!(explain(&twice).contains("appealed once already"), "{}", explain(&twice));
        let late = reverted(DcnDeals::DeadlinePassed { dealId: id, deadline: 99 }.abi_encode());
        assert!(explain(&late).contains("verdict whose appeal window closed stands"), "{}", explain(&late));
        let locked = reverted(DcnDeals::BondLocked { mediator: Default::default(), unbondAt: 5 }.abi_encode());
        assert!(explain(&locked).contains("answers for its verdicts"), "{}", explain(&locked));
        let other = reverted(
            DcnJobBoard::WrongJob { requestId: Default::default(), requested: id, dealt: B256::ZERO }.abi_encode(),
        );
        assert!(explain(&other).contains("only a deal of the requested job"), "{}", explain(&other));
        let unknown = reverted(vec![1, 2, 3, 4]);
        assert!(!explain(&unknown).is_empty());
    }
}
