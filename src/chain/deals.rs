//! Deal ids and provider signatures, computed exactly as `DcnDeals` does: the deal id is
//! the EIP-712 digest of the `Deal` struct under the domain ("DcnDeals", "1", chain id,
//! contract address), and the provider signs that digest. And why `createDeal` of a signed
//! deal fails by its provider's doing ([`ProviderFault`], read from the contract's errors by
//! [`provider_fault`]).

use super::bindings::DcnDeals;
use alloy::primitives::{Address, Bytes, B256};
use alloy::signers::{local::PrivateKeySigner, Signer};
use alloy::sol_types::{eip712_domain, Eip712Domain, SolStruct};

/// The EIP-712 domain of the `DcnDeals` contract at `contract` on `chain_id`.
pub fn domain(chain_id: u64, contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: "DcnDeals",
        version: "1",
        chain_id: chain_id,
        verifying_contract: contract,
    }
}

/// The id of `deal`: what `DcnDeals.dealId(deal)` returns.
pub fn deal_id(deal: &DcnDeals::Deal, domain: &Eip712Domain) -> B256 {
    deal.eip712_signing_hash(domain)
}

/// [`deal_id`] under a domain whose separator (`domain.separator()`) is computed once: the
/// solver makes a deal id per match, and hashing the domain again each time was a tenth of
/// its matching time.
pub fn deal_id_under(deal: &DcnDeals::Deal, separator: B256) -> B256 {
    let mut digest = [0u8; 66];
    digest[..2].copy_from_slice(&[0x19, 0x01]);
    digest[2..34].copy_from_slice(separator.as_slice());
    digest[34..].copy_from_slice(deal.eip712_hash_struct().as_slice());
    alloy::primitives::keccak256(digest)
}

/// The provider's signature over `deal`, as `createDeal` expects it (65 bytes r‖s‖v).
pub async fn sign_deal(
    signer: &PrivateKeySigner,
    deal: &DcnDeals::Deal,
    domain: &Eip712Domain,
) -> Result<Bytes, alloy::signers::Error> {
    let sig = signer.sign_hash(&deal_id(deal, domain)).await?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Why `createDeal` of a signed deal fails by its provider's doing (THREATS N3): the
/// contract's `BadSignature`, `InsufficientEscrow` naming the provider, and `DealIsCancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ProviderFault {
    /// The provider's signature does not pass the contract's check.
    #[error("the provider's signature does not pass the contract's check")]
    BadSignature,
    /// The provider's free escrow is short of the deal's collateral.
    #[error("the provider's free escrow is short of the deal's collateral")]
    EscrowShort,
    /// The provider cancelled the deal on chain (`cancelDeal`).
    #[error("the provider cancelled the deal on chain")]
    Cancelled,
}

/// What `createDeal` of a signed deal, sent by its job creator, would do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateCheck {
    /// It would go through.
    Passes,
    /// It would revert by the provider's doing.
    ProviderFault(ProviderFault),
    /// It would revert for another reason (the job creator's escrow, the deadline, a deal
    /// that exists), in the contract's words.
    Fails(String),
}

/// The provider's fault in `error`, a revert of `createDeal(deal, …)`, if it is one. The
/// contract locks the job creator's price before the provider's collateral, so when the
/// two are one account, `InsufficientEscrow` says nothing of the provider.
pub fn provider_fault(error: &DcnDeals::DcnDealsErrors, deal: &DcnDeals::Deal) -> Option<ProviderFault> {
    use DcnDeals::DcnDealsErrors as E;
    match error {
        E::BadSignature(e) if e.provider == deal.provider => Some(ProviderFault::BadSignature),
        E::InsufficientEscrow(e) if e.account == deal.provider && deal.provider != deal.jobCreator => {
            Some(ProviderFault::EscrowShort)
        }
        E::DealIsCancelled(_) => Some(ProviderFault::Cancelled),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;

    fn sample() -> DcnDeals::Deal {
        DcnDeals::Deal {
            jobCreator: Address::repeat_byte(1),
            provider: Address::repeat_byte(2),
            solver: Address::repeat_byte(3),
            mediators: vec![Address::repeat_byte(4), Address::repeat_byte(5)],
            price: U256::from(7),
            collateral: U256::from(9),
            mediationFee: U256::from(1),
            auditFee: U256::from(1),
            auditPpm: 1_000_000,
            resultTimeout: 600,
            judgeTimeout: 300,
            mediationTimeout: 600,
            createDeadline: 1_800_000_000,
            jobHash: B256::repeat_byte(6),
            nonce: U256::from(42),
        }
    }

    #[test]
    fn a_deal_id_under_a_computed_separator_is_the_deal_id() {
        let d = domain(1337, Address::repeat_byte(0xde));
        let deal = sample();
        assert_eq!(deal_id_under(&deal, d.separator()), deal_id(&deal, &d));
    }

    #[test]
    fn only_the_providers_own_reverts_are_its_faults() {
        use DcnDeals::DcnDealsErrors as E;
        let deal = sample();
        let (jc, provider) = (deal.jobCreator, deal.provider);
        let short = |account| {
            E::InsufficientEscrow(DcnDeals::InsufficientEscrow {
                account,
                needed: U256::from(2),
                available: U256::ZERO,
            })
        };
        assert_eq!(
            provider_fault(&E::BadSignature(DcnDeals::BadSignature { provider }), &deal),
            Some(ProviderFault::BadSignature)
        );
        assert_eq!(provider_fault(&short(provider), &deal), Some(ProviderFault::EscrowShort));
        assert_eq!(
            provider_fault(&E::DealIsCancelled(DcnDeals::DealIsCancelled { dealId: B256::ZERO }), &deal),
            Some(ProviderFault::Cancelled)
        );
        // The job creator's own escrow, or a signature check that names someone else.
        assert_eq!(provider_fault(&short(jc), &deal), None);
        assert_eq!(provider_fault(&E::BadSignature(DcnDeals::BadSignature { provider: jc }), &deal), None);
        assert_eq!(provider_fault(&E::DealExpired(DcnDeals::DealExpired { createDeadline: 1 }), &deal), None);
        // A self-deal: the short escrow may be the job creator's price.
        let own = DcnDeals::Deal { jobCreator: provider, ..sample() };
        assert_eq!(provider_fault(&short(provider), &own), None);
    }
}
