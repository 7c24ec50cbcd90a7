//! The provider's check of a proposed deal against its own offer, before signing: pure,
//! so every rule is unit-tested. A solver that proposes anything else gets no signature,
//! and the [`Refusal`] says why. The checks that need the machine (the module file, the
//! image, the engine's minimums) follow in `offers.rs` (THREATS S1).

use crate::chain::bindings::DcnDeals;
use crate::protocol::ResourceOffer;
use crate::types::{JobSpec, NetworkPolicy, Resources};
use alloy::primitives::{Address, B256, U256};

/// Why a proposed deal is not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The id is not the EIP-712 hash of the terms: the solver lies about what is signed.
    #[error("the deal id is not the hash of its terms")]
    IdMismatch,
    /// The deal is on an offer this provider did not post, or cancelled.
    #[error("resource offer {0} is not one of this provider's open offers")]
    UnknownOffer(B256),
    /// The job offer cannot be read from the solver.
    #[error("cannot fetch the job offer: {0}")]
    JobOfferUnavailable(String),
    /// The deal names someone else as provider.
    #[error("the deal names provider {named}, not this provider {me}")]
    WrongProvider {
        /// Named in the deal.
        named: Address,
        /// This provider.
        me: Address,
    },
    /// The deal or the offer names another solver.
    #[error("the deal names solver {named}, not {expected}")]
    WrongSolver {
        /// Named in the deal.
        named: Address,
        /// The solver this provider works through.
        expected: Address,
    },
    /// The price is not the offer's.
    #[error("price {deal} differs from the offer's {offer}")]
    Price {
        /// In the deal.
        deal: U256,
        /// In the offer.
        offer: U256,
    },
    /// The collateral is not the offer's.
    #[error("collateral {deal} differs from the offer's {offer}")]
    Collateral {
        /// In the deal.
        deal: U256,
        /// In the offer.
        offer: U256,
    },
    /// The deal does not name exactly the mediators both sides trust, or too few of them
    /// (THREATS P5, J9, SO2: a hand-picked mediator).
    #[error("the deal's mediators are not the ones both sides trust: {0}")]
    Mediators(String),
    /// A fee is below the network's floor: `createDeal` would refuse it.
    #[error("the {what} {fee} is below the network's floor {floor}")]
    FeeBelowFloor {
        /// Which fee.
        what: &'static str,
        /// The deal's.
        fee: U256,
        /// The network's.
        floor: U256,
    },
    /// The spec is not the one the deal commits to.
    #[error("the job spec hashes to {spec}, not the deal's job hash {deal}")]
    JobHash {
        /// The spec's hash.
        spec: B256,
        /// The deal's job hash.
        deal: B256,
    },
    /// The job needs more than a slot.
    #[error("the job needs {needs:?}, more than a slot's {slot:?}")]
    TooBig {
        /// What the job needs.
        needs: Resources,
        /// One slot.
        slot: Resources,
    },
    /// The module is not on the allow-list.
    #[error("module `{0}` is not in this provider's allow-list")]
    ModuleNotAllowed(String),
    /// The spec is not what this provider's copy of the module makes (another file, another
    /// image or command), or the provider has no such module.
    #[error("the job is not the module this provider knows: {0}")]
    Module(String),
    /// This machine cannot run the spec (the engine would refuse it, the image is absent).
    #[error("this machine cannot run the job: {0}")]
    Unrunnable(String),
    /// The job's timeout is over this provider's cap.
    #[error("the job's timeout {job} s is over this provider's cap of {max} s")]
    TimeoutCap {
        /// The job's timeout.
        job: u64,
        /// The cap.
        max: u64,
    },
    /// The spec is larger than this provider takes.
    #[error("the job spec is {bytes} bytes, over this provider's cap of {max}")]
    SpecTooLarge {
        /// Its canonical size.
        bytes: u64,
        /// The cap.
        max: u64,
    },
    /// The job may leave more output than this provider delivers.
    #[error(
        "the job may leave {bytes} bytes of output (its disk_mb, or the default), over this provider's cap of {max}"
    )]
    OutputCap {
        /// The job's output limit.
        bytes: u64,
        /// The cap.
        max: u64,
    },
    /// The offer expired: the provider signs only on its live offers.
    #[error("the resource offer expired at {expiry}, before the chain's time {now}")]
    OfferExpired {
        /// Its expiry, unix seconds.
        expiry: u64,
        /// The chain's time.
        now: u64,
    },
    /// The job wants the network and this provider does not allow it.
    #[error("the job asks for network access, which this provider does not allow")]
    Network,
    /// Too little time to deliver.
    #[error("result timeout {deal} s leaves less than {margin} s over the job's {job} s timeout")]
    ResultTimeout {
        /// The deal's result timeout.
        deal: u64,
        /// The margin required.
        margin: u64,
        /// The job's own timeout.
        job: u64,
    },
    /// The payment would wait too long.
    #[error("judge timeout {deal} s is over the {max} s limit")]
    JudgeTimeout {
        /// The deal's judge timeout.
        deal: u64,
        /// The limit.
        max: u64,
    },
    /// The collateral would be locked too long in a challenge.
    #[error("mediation timeout {deal} s is over the {max} s limit")]
    MediationTimeout {
        /// The deal's mediation timeout.
        deal: u64,
        /// The limit.
        max: u64,
    },
    /// The signature would be good for too long (or is already void): a job creator could
    /// hold it and create the deal when this provider no longer expects it.
    #[error("creation deadline {deadline} is not within {max} s after now ({now})")]
    CreateDeadline {
        /// The deal's creation deadline, unix seconds.
        deadline: u64,
        /// The chain's time.
        now: u64,
        /// The longest window signed.
        max: u64,
    },
    /// The chain's clock cannot be read.
    #[error("cannot read the chain's time: {0}")]
    ChainUnavailable(String),
    /// Every slot is taken.
    #[error("all {0} slot(s) are busy")]
    Busy(u32),
    /// The collateral cannot be put in escrow.
    #[error("not enough collateral in escrow: {0}")]
    Escrow(String),
}

/// The provider's own limits on deal terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whether jobs may have network access.
    pub allow_network: bool,
    /// The result timeout must exceed the job's own timeout by at least this.
    pub min_result_margin_secs: u64,
    /// Longest judge timeout signed.
    pub max_judge_timeout_secs: u64,
    /// Longest mediation timeout signed.
    pub max_mediation_timeout_secs: u64,
    /// Longest time from signing to the deal's creation deadline: how long this provider
    /// watches a signed deal that was not created.
    pub max_create_window_secs: u64,
    /// Longest job timeout signed (published in its offers).
    pub max_job_timeout_secs: u64,
    /// Largest job spec signed, canonical JSON bytes (published in its offers).
    pub max_spec_bytes: u64,
    /// Largest packed output delivered, bytes (published in its offers); over it, or over
    /// the solver's upload limit, an error bundle goes instead.
    pub max_output_bytes: u64,
    /// Fewest mediators a deal names (the network's rule, read from the chain at start).
    pub min_mediators: u8,
    /// Least mediation and audit fee (the network's rule, read from the chain at start).
    pub min_mediation_fee: U256,
}

/// Checks `deal` (id `id`, computed by the caller from the terms), proposed by `solver`
/// for `spec`, against `offer`, at the chain's time `now`. Returns why it is refused.
pub fn check(
    deal: &DcnDeals::Deal,
    spec: &JobSpec,
    offer: &ResourceOffer,
    job_mediators: &[Address],
    solver: Address,
    limits: &Limits,
    now: u64,
) -> Result<(), Refusal> {
    if deal.provider != offer.provider {
        return Err(Refusal::WrongProvider { named: deal.provider, me: offer.provider });
    }
    if deal.solver != solver || offer.solver != solver {
        return Err(Refusal::WrongSolver { named: deal.solver, expected: solver });
    }
    if deal.price != offer.price {
        return Err(Refusal::Price { deal: deal.price, offer: offer.price });
    }
    if deal.collateral != offer.collateral {
        return Err(Refusal::Collateral { deal: deal.collateral, offer: offer.collateral });
    }
    let both = crate::protocol::mediators_between(offer.provider, &offer.mediators, deal.jobCreator, job_mediators);
    if deal.mediators != both {
        return Err(Refusal::Mediators(format!("it names {} of the {} both trust", deal.mediators.len(), both.len())));
    }
    if deal.mediators.len() < usize::from(limits.min_mediators.max(1)) {
        return Err(Refusal::Mediators(format!(
            "it names {}; the network asks at least {}",
            deal.mediators.len(),
            limits.min_mediators
        )));
    }
    for (what, fee) in [("mediation fee", deal.mediationFee), ("audit fee", deal.auditFee)] {
        if fee < limits.min_mediation_fee {
            return Err(Refusal::FeeBelowFloor { what, fee, floor: limits.min_mediation_fee });
        }
    }
    let hash = spec.content_hash();
    if hash != deal.jobHash {
        return Err(Refusal::JobHash { spec: hash, deal: deal.jobHash });
    }
    let slot = Resources {
        cpu: offer.cpu,
        ram_mb: offer.ramMb,
        gpus: offer.gpus,
        vram_mb: offer.vramMb,
        disk_mb: offer.diskMb,
    };
    if !slot.covers(&spec.resources) {
        return Err(Refusal::TooBig { needs: spec.resources, slot });
    }
    if !spec.module.allowed_by(&offer.modules) {
        return Err(Refusal::ModuleNotAllowed(format!("{}@{}", spec.module.name, spec.module.version)));
    }
    // The caps it published in the offer it signed.
    if spec.timeout_secs > offer.maxTimeoutSecs {
        return Err(Refusal::TimeoutCap { job: spec.timeout_secs, max: offer.maxTimeoutSecs });
    }
    let bytes = spec.canonical_json().len() as u64;
    if bytes > offer.maxSpecBytes {
        return Err(Refusal::SpecTooLarge { bytes, max: offer.maxSpecBytes });
    }
    if spec.output_limit_bytes() > offer.maxOutputBytes {
        return Err(Refusal::OutputCap { bytes: spec.output_limit_bytes(), max: offer.maxOutputBytes });
    }
    if spec.network == NetworkPolicy::Bridge && !limits.allow_network {
        return Err(Refusal::Network);
    }
    if deal.resultTimeout < spec.timeout_secs.saturating_add(limits.min_result_margin_secs) {
        return Err(Refusal::ResultTimeout {
            deal: deal.resultTimeout,
            margin: limits.min_result_margin_secs,
            job: spec.timeout_secs,
        });
    }
    if deal.judgeTimeout > limits.max_judge_timeout_secs {
        return Err(Refusal::JudgeTimeout { deal: deal.judgeTimeout, max: limits.max_judge_timeout_secs });
    }
    if deal.mediationTimeout > limits.max_mediation_timeout_secs {
        return Err(Refusal::MediationTimeout { deal: deal.mediationTimeout, max: limits.max_mediation_timeout_secs });
    }
    if offer.expiry < now {
        return Err(Refusal::OfferExpired { expiry: offer.expiry, now });
    }
    let max = limits.max_create_window_secs;
    if deal.createDeadline <= now || deal.createDeadline > now.saturating_add(max) {
        return Err(Refusal::CreateDeadline { deadline: deal.createDeadline, now, max });
    }
    Ok(())
}

/// Whether `id` is the deal id of `deal` in `domain`.
pub fn id_matches(deal: &DcnDeals::Deal, id: B256, domain: &alloy::sol_types::Eip712Domain) -> bool {
    crate::chain::deals::deal_id(deal, domain) == id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ModuleRef;

    const NOW: u64 = 1_000_000;

    fn spec() -> JobSpec {
        JobSpec {
            module: ModuleRef { name: "cowsay".into(), version: "1".into(), hash: "h".into() },
            image: "i".into(),
            argv: vec!["a".into()],
            env: Default::default(),
            resources: Resources { cpu: 250, ram_mb: 64, ..Default::default() },
            network: NetworkPolicy::None,
            timeout_secs: 60,
            outputs: vec![],
            success_exit_codes: vec![],
            run_as_root: false,
        }
    }

    fn offer() -> ResourceOffer {
        ResourceOffer {
            provider: Address::repeat_byte(1),
            solver: Address::repeat_byte(2),
            cpu: 1000,
            ramMb: 1024,
            gpus: 0,
            vramMb: 0,
            diskMb: 0,
            slots: 1,
            price: U256::from(5),
            collateral: U256::from(10),
            mediators: vec![Address::repeat_byte(3), Address::repeat_byte(4)],
            modules: vec![],
            maxTimeoutSecs: 3600,
            maxSpecBytes: 65_536,
            maxOutputBytes: 1 << 30,
            expiry: NOW + 600,
            nonce: U256::ZERO,
        }
    }

    fn deal() -> DcnDeals::Deal {
        DcnDeals::Deal {
            jobCreator: Address::repeat_byte(9),
            provider: Address::repeat_byte(1),
            solver: Address::repeat_byte(2),
            mediators: vec![Address::repeat_byte(4)],
            price: U256::from(5),
            collateral: U256::from(10),
            mediationFee: U256::from(1),
            auditFee: U256::from(1),
            auditPpm: 1_000_000,
            resultTimeout: 180,
            judgeTimeout: 60,
            mediationTimeout: 60,
            createDeadline: NOW + 300,
            jobHash: spec().content_hash(),
            nonce: U256::ZERO,
        }
    }

    fn limits() -> Limits {
        Limits {
            allow_network: false,
            min_result_margin_secs: 10,
            max_judge_timeout_secs: 3600,
            max_mediation_timeout_secs: 3600,
            max_create_window_secs: 900,
            max_job_timeout_secs: 3600,
            max_spec_bytes: 65_536,
            max_output_bytes: 1 << 30,
            min_mediators: 1,
            min_mediation_fee: U256::from(1),
        }
    }

    fn refused(f: impl FnOnce(&mut DcnDeals::Deal, &mut JobSpec, &mut ResourceOffer)) -> String {
        let (mut d, mut s, mut o) = (deal(), spec(), offer());
        f(&mut d, &mut s, &mut o);
        check(&d, &s, &o, &d.mediators.clone(), Address::repeat_byte(2), &limits(), NOW).unwrap_err().to_string()
    }

    #[test]
    fn a_matching_deal_passes() {
        check(&deal(), &spec(), &offer(), &deal().mediators, Address::repeat_byte(2), &limits(), NOW).unwrap();
    }

    #[test]
    fn every_rule_refuses() {
        assert!(refused(|d, _, _| d.price = U256::from(4)).contains("price"));
        assert!(refused(|d, _, _| d.collateral = U256::from(1)).contains("collateral"));
        assert!(refused(|d, _, _| d.mediators = vec![Address::repeat_byte(7)]).contains("mediator"));
        assert!(refused(|d, _, _| d.provider = Address::repeat_byte(8)).contains("provider"));
        assert!(refused(|d, _, _| d.solver = Address::repeat_byte(8)).contains("solver"));
        assert!(refused(|_, s, _| s.argv.push("x".into())).contains("job hash"));
        let big = |d: &mut DcnDeals::Deal, s: &mut JobSpec, _: &mut ResourceOffer| {
            s.resources.ram_mb = 2048;
            d.jobHash = s.content_hash();
        };
        assert!(refused(big).contains("more than a slot"));
        assert!(refused(|_, _, o| o.modules = vec!["other".into()]).contains("allow-list"));
        let net = |d: &mut DcnDeals::Deal, s: &mut JobSpec, _: &mut ResourceOffer| {
            s.network = NetworkPolicy::Bridge;
            d.jobHash = s.content_hash();
        };
        assert!(refused(net).contains("network"));
        assert!(refused(|d, _, _| d.resultTimeout = 65).contains("result timeout"));
        assert!(refused(|d, _, _| d.judgeTimeout = 7200).contains("judge timeout"));
        assert!(refused(|d, _, _| d.mediationTimeout = 7200).contains("mediation timeout"));
        // A signature good for longer than the provider watches, or already void.
        assert!(refused(|d, _, _| d.createDeadline = NOW + 901).contains("creation deadline"));
        assert!(refused(|d, _, _| d.createDeadline = NOW).contains("creation deadline"));
        // Only on a live offer (S8).
        assert!(refused(|_, _, o| o.expiry = NOW - 1).contains("offer expired"));
        // Caps on what it signs (S1).
        let long = |d: &mut DcnDeals::Deal, s: &mut JobSpec, _: &mut ResourceOffer| {
            s.timeout_secs = 3601;
            d.jobHash = s.content_hash();
            d.resultTimeout = 4000;
        };
        assert!(refused(long).contains("over this provider's cap of 3600 s"));
        let huge = |d: &mut DcnDeals::Deal, s: &mut JobSpec, _: &mut ResourceOffer| {
            s.env.insert("X".into(), "x".repeat(70_000));
            d.jobHash = s.content_hash();
        };
        assert!(refused(huge).contains("over this provider's cap of 65536"));
        let output = |_: &mut DcnDeals::Deal, _: &mut JobSpec, o: &mut ResourceOffer| o.maxOutputBytes = (64 << 20) - 1;
        assert!(refused(output).contains("67108864 bytes of output"));
    }
}
