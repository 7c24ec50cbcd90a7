//! Deal ids and provider signatures, computed exactly as `DcnDeals` does: the deal id is
//! the EIP-712 digest of the `Deal` struct under the domain ("DcnDeals", "1", chain id,
//! contract address), and the provider signs that digest.

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

/// The provider's signature over `deal`, as `createDeal` expects it (65 bytes r‖s‖v).
pub async fn sign_deal(
    signer: &PrivateKeySigner,
    deal: &DcnDeals::Deal,
    domain: &Eip712Domain,
) -> Result<Bytes, alloy::signers::Error> {
    let sig = signer.sign_hash(&deal_id(deal, domain)).await?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}
