//! One job request as the job board service keeps it ([`BoardJob`]) and the pure decision of
//! what to do next ([`decide`]): the request on chain, the chain's clock and the record →
//! buy, wait (back off after a failed purchase), follow the deal, or stop.

use super::config::Worth;
use crate::chain::{RequestStatus, RequestView, DELIVERY_GRACE_SECS};
use crate::protocol::records::{CreatedDeal, DealRecord};
use crate::types::JobSpec;
use crate::units::format_amount;
use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// Why a request was given up; the requester can take its payment back after the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why", content = "detail")]
pub enum Failure {
    /// The request is no longer open (delivered by someone else, or refunded).
    NotOpen(RequestStatus),
    /// It was made under another operator, who alone may deliver it.
    OtherOperator(Address),
    /// Its delivery deadline passed.
    DeadlinePassed,
    /// It names something other than a plain module name (a path, a URL).
    NotPlainModule(String),
    /// The module or its inputs do not make a job.
    BadJob(String),
    /// The module and inputs make another job than the one the request commits to.
    WrongJob {
        /// The job hash the request names.
        requested: B256,
        /// What this operator's module makes of its inputs.
        made: B256,
    },
    /// It pays less than the operator's minimum.
    Underpaid {
        /// What it pays, token units.
        payment: U256,
        /// The minimum, token units.
        min: U256,
    },
    /// Too little time is left for a provider to deliver before the request closes.
    TooLittleTime {
        /// Seconds left until its deadline.
        left: u64,
        /// Seconds a deal may take: the job's timeout plus the result margin.
        needed: u64,
    },
    /// Given up by an earlier version of the service, for this reason.
    Recorded(String),
}

/// Reads a [`Failure`], or the plain text an earlier version wrote.
fn failure_or_legacy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Failure, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Now(Failure),
        Legacy(String),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Now(f) => f,
        Stored::Legacy(text) => Failure::Recorded(text),
    })
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotOpen(s) => write!(f, "the request is no longer open ({s:?})"),
            Self::OtherOperator(a) => write!(f, "it was made under operator {a}, who alone may deliver it"),
            Self::DeadlinePassed => f.write_str("the request's deadline passed"),
            Self::NotPlainModule(m) => write!(f, "module `{m}` is not a plain module name"),
            Self::BadJob(why) => write!(f, "cannot make a job of it: {why}"),
            Self::WrongJob { requested, made } => write!(
                f,
                "it asks for job {requested}, but its module and inputs make job {made} here (another version of \
                 the module?): only the job it asks for can be delivered"
            ),
            Self::Underpaid { payment, min } => write!(
                f,
                "it pays {} DCN, less than this operator's minimum of {} DCN (jobboard.min_payment, and more than \
                 the mediation and audit fees a deal may cost it: job.mediation_fee + job.audit_fee)",
                format_amount(*payment),
                format_amount(*min)
            ),
            Self::TooLittleTime { left, needed } => write!(
                f,
                "it is due in {left} s, but a deal for it may take {needed} s (the job's timeout plus job.result_margin_secs)"
            ),
            Self::Recorded(why) => f.write_str(why),
        }
    }
}

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum BoardStage {
    /// Seen; no deal yet.
    New,
    /// A provider signed a deal for it, recorded before `createDeal` is sent: a restart
    /// finds the deal on chain (or creates it, or after its creation deadline buys again)
    /// instead of buying the request twice.
    Signed {
        /// The deal as matched and signed.
        deal: Box<DealRecord>,
        /// The job.
        spec: Box<JobSpec>,
        /// The chain's latest block when it was signed: the deal's events come after it.
        #[serde(default)]
        since_block: u64,
    },
    /// A deal is on chain for it.
    Created {
        /// The deal.
        created: Box<CreatedDeal>,
    },
    /// Delivered on chain.
    Delivered {
        /// The deal id.
        deal: B256,
        /// The result hash.
        result_hash: B256,
        /// The `deliverResult` transaction.
        tx: B256,
    },
    /// Given up on.
    Failed {
        /// Why.
        #[serde(deserialize_with = "failure_or_legacy")]
        reason: Failure,
    },
}

/// One job board request, as kept in the service's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardJob {
    /// The request id.
    pub request: U256,
    /// Where it is.
    pub stage: BoardStage,
    /// Failed purchases in a row.
    #[serde(default)]
    pub attempts: u32,
    /// Chain time before which no purchase is tried again.
    #[serde(default)]
    pub retry_at: u64,
}

impl BoardJob {
    /// A request just seen.
    pub fn new(request: U256) -> Self {
        Self { request, stage: BoardStage::New, attempts: 0, retry_at: 0 }
    }

    /// Whether nothing is left to do.
    pub fn is_over(&self) -> bool {
        matches!(self.stage, BoardStage::Delivered { .. } | BoardStage::Failed { .. })
    }
}

/// Seconds to wait after the `attempts`-th failed purchase in a row: 5 s doubling, at most
/// 5 minutes.
pub fn retry_delay(attempts: u32) -> u64 {
    5u64.saturating_mul(1 << attempts.saturating_sub(1).min(6)).min(300)
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do (the request is over).
    Done,
    /// Give the request up.
    Fail(Failure),
    /// Wait until this chain time (backing off after a failed purchase).
    WaitUntil(u64),
    /// Buy the job.
    Buy,
    /// Create the signed deal on chain, unless it is there or can no longer be.
    Create,
    /// Claim the request with the deal bought for it: no refund while it is in flight.
    Claim(B256),
    /// Follow the deal to its end, then deliver or buy again.
    Settle,
}

/// What to do with `job` given the request on chain, the chain's clock and this operator's
/// account `me`. Pure.
pub fn decide(job: &BoardJob, request: &RequestView, now: u64, me: Address) -> Action {
    if job.is_over() {
        return Action::Done;
    }
    if request.status != RequestStatus::Open {
        return Action::Fail(Failure::NotOpen(request.status));
    }
    if request.operator != me {
        // Only its own operator can deliver it: a deal bought for it could never be paid.
        return Action::Fail(Failure::OtherOperator(request.operator));
    }
    let claimed = match &job.stage {
        BoardStage::Created { created } => (request.deal == created.deal.id).then_some(created.deal.id),
        _ => None,
    };
    // A request claimed in time may be delivered in the grace after its deadline.
    let last = if claimed.is_some() { request.deadline.saturating_add(DELIVERY_GRACE_SECS) } else { request.deadline };
    if now > last {
        return Action::Fail(Failure::DeadlinePassed);
    }
    match &job.stage {
        BoardStage::New if now < job.retry_at => Action::WaitUntil(job.retry_at),
        BoardStage::New => Action::Buy,
        BoardStage::Signed { .. } => Action::Create,
        BoardStage::Created { created } if claimed.is_none() => Action::Claim(created.deal.id),
        BoardStage::Created { .. } => Action::Settle,
        BoardStage::Delivered { .. } | BoardStage::Failed { .. } => Action::Done,
    }
}

/// Whether `request` is worth buying a deal for a job of `timeout_secs` at chain time `now`;
/// if so, the most the deal may cost: never more than the request pays. Pure.
pub fn worth_buying(request: &RequestView, timeout_secs: u64, now: u64, worth: &Worth) -> Result<U256, Failure> {
    // The operator may also pay a mediation and an audit fee (THREATS K5): the price it
    // offers is what is left of the payment.
    let min = worth.min_payment.max(worth.fees + U256::from(1));
    if request.payment < min {
        return Err(Failure::Underpaid { payment: request.payment, min });
    }
    let left = request.deadline.saturating_sub(now);
    let needed = timeout_secs.saturating_add(worth.result_margin_secs);
    if left < needed {
        return Err(Failure::TooLittleTime { left, needed });
    }
    Ok(request.payment - worth.fees)
}

/// Whether `name` is a plain module name (`[A-Za-z0-9_-]+`): a request on chain never
/// makes the operator read a path or fetch a repository.
pub fn is_plain_module(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::created_deal;

    const OPERATOR: Address = Address::repeat_byte(0x0b);

    fn request(status: RequestStatus, deadline: u64) -> RequestView {
        RequestView {
            status,
            requester: Address::repeat_byte(1),
            operator: OPERATOR,
            module: "cowsay".into(),
            inputs: vec!["Message=moo".into()],
            job_hash: B256::repeat_byte(0x10),
            payment: U256::from(1),
            deadline,
            deal: B256::ZERO,
        }
    }

    #[test]
    fn buys_once_then_follows_the_deal() {
        let mut job = BoardJob::new(U256::from(1));
        assert_eq!(decide(&job, &request(RequestStatus::Open, 100), 10, OPERATOR), Action::Buy);
        // After a restart with a deal on record: claim the request with it, then follow it;
        // never buy again.
        let created = created_deal(1);
        let deal = created.deal.id;
        job.stage = BoardStage::Created { created: Box::new(created) };
        assert_eq!(decide(&job, &request(RequestStatus::Open, 100), 10, OPERATOR), Action::Claim(deal));
        let claimed = RequestView { deal, ..request(RequestStatus::Open, 100) };
        assert_eq!(decide(&job, &claimed, 10, OPERATOR), Action::Settle);
    }

    #[test]
    fn a_claimed_request_is_delivered_in_the_grace_after_its_deadline() {
        let created = created_deal(1);
        let claimed = RequestView { deal: created.deal.id, ..request(RequestStatus::Open, 100) };
        let job =
            BoardJob { stage: BoardStage::Created { created: Box::new(created) }, ..BoardJob::new(U256::from(1)) };
        assert_eq!(decide(&job, &claimed, 101, OPERATOR), Action::Settle, "the deal is still in flight");
        assert_eq!(decide(&job, &claimed, 100 + DELIVERY_GRACE_SECS, OPERATOR), Action::Settle);
        assert_eq!(decide(&job, &claimed, 101 + DELIVERY_GRACE_SECS, OPERATOR), Action::Fail(Failure::DeadlinePassed));
    }

    #[test]
    fn a_request_made_under_another_operator_is_not_bought() {
        let job = BoardJob::new(U256::from(1));
        let other = Address::repeat_byte(0x99);
        let r = RequestView { operator: other, ..request(RequestStatus::Open, 100) };
        assert_eq!(decide(&job, &r, 10, OPERATOR), Action::Fail(Failure::OtherOperator(other)));
    }

    #[test]
    fn an_expired_or_closed_request_fails() {
        let job = BoardJob::new(U256::from(1));
        assert_eq!(
            decide(&job, &request(RequestStatus::Open, 100), 101, OPERATOR),
            Action::Fail(Failure::DeadlinePassed)
        );
        assert_eq!(decide(&job, &request(RequestStatus::Open, 100), 100, OPERATOR), Action::Buy, "inclusive deadline");
        assert_eq!(
            decide(&job, &request(RequestStatus::Refunded, 100), 10, OPERATOR),
            Action::Fail(Failure::NotOpen(RequestStatus::Refunded))
        );
        let mut created = job.clone();
        created.stage = BoardStage::Created { created: Box::new(created_deal(1)) };
        assert_eq!(
            decide(&created, &request(RequestStatus::Open, 100), 101, OPERATOR),
            Action::Fail(Failure::DeadlinePassed)
        );
        let failed = BoardJob { stage: BoardStage::Failed { reason: Failure::DeadlinePassed }, ..job };
        assert_eq!(decide(&failed, &request(RequestStatus::Open, 100), 10, OPERATOR), Action::Done);
    }

    #[test]
    fn a_failed_purchase_backs_off() {
        let job = BoardJob { attempts: 1, retry_at: 50, ..BoardJob::new(U256::from(1)) };
        assert_eq!(decide(&job, &request(RequestStatus::Open, 100), 10, OPERATOR), Action::WaitUntil(50));
        assert_eq!(decide(&job, &request(RequestStatus::Open, 100), 50, OPERATOR), Action::Buy);
        let delays: Vec<u64> = (1..=10).map(retry_delay).collect();
        assert_eq!(&delays[..4], &[5, 10, 20, 40]);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]) && delays[9] == 300, "{delays:?}");
    }

    #[test]
    fn records_of_the_earlier_version_still_load() {
        let old = serde_json::json!({"request": "0x1", "stage": {"stage": "failed", "reason": "the request's deadline passed"}});
        let job: BoardJob = serde_json::from_value(old).unwrap();
        assert_eq!(job.stage, BoardStage::Failed { reason: Failure::Recorded("the request's deadline passed".into()) });
        assert_eq!((job.attempts, job.retry_at), (0, 0));
        let now = BoardJob { stage: BoardStage::Failed { reason: Failure::DeadlinePassed }, ..job };
        let back: BoardJob = serde_json::from_value(serde_json::to_value(&now).unwrap()).unwrap();
        assert_eq!(back, now);
    }

    #[test]
    fn a_request_that_pays_too_little_or_is_due_too_soon_is_not_bought() {
        let worth = Worth { min_payment: U256::from(10), result_margin_secs: 120, fees: U256::from(3) };
        let mut r = request(RequestStatus::Open, 1_000);
        r.payment = U256::from(25);
        // Due at 1,000; a 60 s job with a 120 s margin needs 180 s.
        assert_eq!(
            worth_buying(&r, 60, 820, &worth),
            Ok(U256::from(22)),
            "capped at what it pays, less the fees it may pay (THREATS K5)"
        );
        assert_eq!(worth_buying(&r, 60, 821, &worth), Err(Failure::TooLittleTime { left: 179, needed: 180 }));
        assert_eq!(worth_buying(&r, 60, 2_000, &worth), Err(Failure::TooLittleTime { left: 0, needed: 180 }));
        r.payment = U256::from(9);
        assert_eq!(
            worth_buying(&r, 60, 0, &worth),
            Err(Failure::Underpaid { payment: U256::from(9), min: U256::from(10) })
        );
        // A zero minimum still refuses a request that pays no more than the fees.
        let free = Worth { min_payment: U256::ZERO, ..worth };
        r.payment = U256::from(3);
        assert_eq!(
            worth_buying(&r, 60, 0, &free),
            Err(Failure::Underpaid { payment: U256::from(3), min: U256::from(4) }),
            "the fees the operator risks are not covered"
        );
        r.payment = U256::ZERO;
        assert!(matches!(worth_buying(&r, 60, 0, &free), Err(Failure::Underpaid { .. })));
        let shown = Failure::Underpaid { payment: U256::ZERO, min: U256::from(10).pow(U256::from(18)) }.to_string();
        assert!(shown.contains("pays 0 DCN") && shown.contains("minimum of 1 DCN"), "{shown}");
    }

    #[test]
    fn only_plain_module_names() {
        assert!(is_plain_module("cowsay") && is_plain_module("write-files_2"));
        for bad in ["", "./x", "/etc", "git+https://h/r.git#v1", "a b", "ü"] {
            assert!(!is_plain_module(bad), "{bad}");
        }
    }
}
