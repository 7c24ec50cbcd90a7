//! The provider's check of a proposed deal against its own offer, before signing: pure,
//! so every rule is unit-tested. A solver that proposes anything else gets no signature.

use crate::chain::bindings::DcnDeals;
use crate::protocol::ResourceOffer;
use crate::types::{JobSpec, NetworkPolicy, Resources};
use alloy::primitives::{Address, B256};

/// The provider's own limits on deal terms.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whether jobs may have network access.
    pub allow_network: bool,
    /// The result timeout must exceed the job's own timeout by at least this.
    pub min_result_margin_secs: u64,
    /// Longest judge timeout signed.
    pub max_judge_timeout_secs: u64,
    /// Longest mediation timeout signed.
    pub max_mediation_timeout_secs: u64,
}

/// Checks `deal` (id `id`, computed by the caller from the terms), proposed by `solver`
/// for `spec`, against `offer`. Returns why it is refused.
pub fn check(
    deal: &DcnDeals::Deal,
    spec: &JobSpec,
    offer: &ResourceOffer,
    solver: Address,
    limits: &Limits,
) -> Result<(), String> {
    if deal.provider != offer.provider {
        return Err(format!("the deal names provider {}, not this provider {}", deal.provider, offer.provider));
    }
    if deal.solver != solver || offer.solver != solver {
        return Err(format!("the deal names solver {}, not {solver}", deal.solver));
    }
    if deal.price != offer.price {
        return Err(format!("price {} differs from the offer's {}", deal.price, offer.price));
    }
    if deal.collateral != offer.collateral {
        return Err(format!("collateral {} differs from the offer's {}", deal.collateral, offer.collateral));
    }
    if deal.mediators.is_empty() || deal.mediators.iter().any(|m| !offer.mediators.contains(m)) {
        return Err("the deal names a mediator this provider does not trust".into());
    }
    let hash = spec.content_hash();
    if hash != deal.jobHash {
        return Err(format!("the job spec hashes to {hash}, not the deal's job hash {}", deal.jobHash));
    }
    let slot = Resources {
        cpu: offer.cpu,
        ram_mb: offer.ramMb,
        gpus: offer.gpus,
        vram_mb: offer.vramMb,
        disk_mb: offer.diskMb,
    };
    if !slot.covers(&spec.resources) {
        return Err(format!("the job needs {:?}, more than a slot's {:?}", spec.resources, slot));
    }
    if !offer.modules.is_empty() && !offer.modules.contains(&spec.module.name) {
        return Err(format!("module `{}` is not in this provider's allow-list", spec.module.name));
    }
    if spec.network == NetworkPolicy::Bridge && !limits.allow_network {
        return Err("the job asks for network access, which this provider does not allow".into());
    }
    if deal.resultTimeout < spec.timeout_secs.saturating_add(limits.min_result_margin_secs) {
        return Err(format!(
            "result timeout {} s leaves less than {} s over the job's {} s timeout",
            deal.resultTimeout, limits.min_result_margin_secs, spec.timeout_secs
        ));
    }
    if deal.judgeTimeout > limits.max_judge_timeout_secs {
        return Err(format!(
            "judge timeout {} s is over the {} s limit",
            deal.judgeTimeout, limits.max_judge_timeout_secs
        ));
    }
    if deal.mediationTimeout > limits.max_mediation_timeout_secs {
        return Err(format!(
            "mediation timeout {} s is over the {} s limit",
            deal.mediationTimeout, limits.max_mediation_timeout_secs
        ));
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
    use alloy::primitives::U256;

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
            expiry: 1,
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
            resultTimeout: 180,
            judgeTimeout: 60,
            mediationTimeout: 60,
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
        }
    }

    fn refused(f: impl FnOnce(&mut DcnDeals::Deal, &mut JobSpec, &mut ResourceOffer)) -> String {
        let (mut d, mut s, mut o) = (deal(), spec(), offer());
        f(&mut d, &mut s, &mut o);
        check(&d, &s, &o, Address::repeat_byte(2), &limits()).unwrap_err()
    }

    #[test]
    fn a_matching_deal_passes() {
        check(&deal(), &spec(), &offer(), Address::repeat_byte(2), &limits()).unwrap();
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
    }
}
