//! The shared protocol layer: what every role sends, receives and signs, and how it finds
//! the network's services. No role owns it; every role uses it.
//!
//! - [`offers`]: resource and job offers, EIP-712 structs signed by the account they
//!   speak for; [`auth`]: signed requests (cancel, upload, download).
//! - [`records`]: what a solver keeps and answers with (offers, deals, events).
//! - [`client`]: the solver API from the clients' side ([`SolverApi`], [`SolverClient`]).
//! - [`registry`]: registering in `DcnRegistry` and finding the solver and mediators.
//!
//! Every signature is made under the domain [`domain`]: ("DcnSolver", "1", chain id, the
//! `DcnDeals` address), so it is valid for one deployment only. Deals themselves are the
//! contract's own `DcnDeals::Deal` (see `chain::deals`).

pub mod auth;
pub mod client;
mod event_stream;
pub mod offers;
pub mod records;
pub mod registry;
mod transfer;

use alloy::primitives::{Address, Bytes, Signature, B256, U256};
use alloy::signers::{local::PrivateKeySigner, Signer};
use alloy::sol_types::{eip712_domain, Eip712Domain};

pub use auth::{body_sha256, AuthHeaders, Request, Verified, EMPTY_BODY};
pub use client::{ClientError, EventStream, OfferKind, SolverApi, SolverClient, SolverInfo};
pub use offers::{JobOffer, ResourceOffer, SignedJobOffer, SignedResourceOffer};
pub use records::{CreatedDeal, DealRecord, DealStatus, Event, EventKind, OfferRecord, OfferStatus};

/// Largest token amount a deal can carry (the contract packs amounts in 96 bits).
pub const MAX_AMOUNT: U256 = U256::from_limbs([u64::MAX, (1 << 32) - 1, 0, 0]);
/// Most mediators a deal may name (the contract's limit).
pub const MAX_MEDIATORS: usize = 16;
/// `DcnDeals.MAX_DISPUTE_TIMEOUT`: the longest judge and mediation timeout, seconds.
pub const MAX_DISPUTE_TIMEOUT_SECS: u64 = 7 * 86_400;
/// `DcnDeals.PPM`: an audit chance of one, in parts per million.
pub const PPM: u32 = 1_000_000;

/// The mediators a deal between `provider`, trusting `provider_trusts`, and `creator`,
/// trusting `creator_trusts`, names: every one both trust who is not a party, in the job
/// creator's order. Both sides sign a deal only if it names exactly these (THREATS P5,
/// J9, SO2: no side, and no solver, picks a subset), and at least the network's
/// `min_mediators` of them.
pub fn mediators_between(
    provider: Address,
    provider_trusts: &[Address],
    creator: Address,
    creator_trusts: &[Address],
) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    for m in creator_trusts {
        if provider_trusts.contains(m) && *m != provider && *m != creator && !out.contains(m) {
            out.push(*m);
        }
    }
    out
}

/// Whether a fake result loses its provider money in expectation under these terms: the
/// audit chance times what a caught fake loses (its price and collateral) is more than
/// the price it would be paid, q·(p + c) > p (THREATS P3; the provider's cost of running
/// the job is left out, so this holds whatever the job costs).
///
/// A job offer with no audit chance (q = 0) waives audits, and with them this rule: its job
/// creator relies on its own challenge. Only a network whose `min_audit_ppm` is 0 takes
/// such deals (a test network; a public one audits at least one in ten).
pub fn fake_loses(price: alloy::primitives::U256, collateral: alloy::primitives::U256, audit_ppm: u32) -> bool {
    use alloy::primitives::U256;
    audit_ppm == 0 || U256::from(audit_ppm) * (price + collateral) > U256::from(PPM) * price
}
/// How long after a deal's creation deadline (by the wall clock) the solver and the
/// provider keep its slot: a block producer's timestamp may lag the wall clock, so
/// `createDeal` can still land in a block stamped before the deadline. Past it a slot is
/// free; the provider still runs such a deal if it comes (it watches until a block passes
/// the deadline).
pub const CREATE_LAG_SECS: u64 = 30;
/// Most slots one resource offer may have.
pub const MAX_SLOTS: u32 = 1024;
/// Largest job spec (its canonical JSON) a job offer may carry (THREATS V3).
pub const MAX_SPEC_BYTES: usize = 64 * 1024;
/// Most entries in a module allow-list.
pub const MAX_ALLOWED_MODULES: usize = 64;

/// The EIP-712 domain of offers and requests for the deployment whose `DcnDeals` is at
/// `deals` on `chain_id`.
pub fn domain(chain_id: u64, deals: Address) -> Eip712Domain {
    eip712_domain! {
        name: "DcnSolver",
        version: "1",
        chain_id: chain_id,
        verifying_contract: deals,
    }
}

/// Why a signed object was refused. Each variant is one JSON error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The signature does not parse or recovers no account.
    #[error("the signature is not a valid 65-byte secp256k1 signature: {0}")]
    BadSignature(String),
    /// The signature is by someone else than the account the object speaks for.
    #[error("signed by {signer}, but the object speaks for {claimed}: sign with the key of {claimed}")]
    WrongSigner {
        /// Who signed.
        signer: Address,
        /// Who the object names.
        claimed: Address,
    },
    /// The object names another solver.
    #[error("the object names solver {named}, but this solver is {this}")]
    WrongSolver {
        /// The solver named.
        named: Address,
        /// This solver.
        this: Address,
    },
    /// The expiry has passed.
    #[error("expired at {expiry} (now {now}): sign it again with a later expiry")]
    Expired {
        /// The expiry, unix seconds.
        expiry: u64,
        /// Now, unix seconds.
        now: u64,
    },
    /// The expiry is further ahead than this solver accepts.
    #[error("expiry {expiry} is more than {max_ahead} s ahead of now ({now}): use a nearer expiry")]
    TooFarAhead {
        /// The expiry, unix seconds.
        expiry: u64,
        /// Now, unix seconds.
        now: u64,
        /// The limit in seconds.
        max_ahead: u64,
    },
    /// A deal signature that recovers, but not in the one form `DcnDeals` takes from a
    /// provider ([`check_canonical`]): `createDeal` would revert with it.
    #[error(
        "the deal signature is not in the form DcnDeals takes: {0}. The contract (OpenZeppelin ECDSA) takes \
         exactly 65 bytes r‖s‖v with v 27 or 28 and s in the lower half of the curve order: sign with a \
         library that makes canonical Ethereum signatures (alloy, ethers and viem do)"
    )]
    NonCanonical(String),
    /// A field is out of range or inconsistent.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ProtocolError {
    /// The JSON error code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature(_) => "bad_signature",
            Self::NonCanonical(_) => "non_canonical_signature",
            Self::WrongSigner { .. } => "wrong_signer",
            Self::WrongSolver { .. } => "wrong_solver",
            Self::Expired { .. } => "expired",
            Self::TooFarAhead { .. } => "expiry_too_far",
            Self::Invalid { .. } => "invalid_field",
        }
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Invalid { field, reason: reason.into() }
}

/// What every signed object is checked against: who this solver is, the domain, the clock
/// and how far ahead an expiry may be.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// This solver's address.
    pub solver: Address,
    /// The signing domain.
    pub domain: Eip712Domain,
    /// Now, unix seconds.
    pub now: u64,
    /// Largest accepted `expiry - now`, seconds.
    pub max_ahead: u64,
}

impl Verifier {
    pub(crate) fn check_expiry(&self, expiry: u64) -> Result<(), ProtocolError> {
        if expiry <= self.now {
            return Err(ProtocolError::Expired { expiry, now: self.now });
        }
        if expiry - self.now > self.max_ahead {
            return Err(ProtocolError::TooFarAhead { expiry, now: self.now, max_ahead: self.max_ahead });
        }
        Ok(())
    }

    pub(crate) fn check_solver(&self, named: Address) -> Result<(), ProtocolError> {
        if named != self.solver {
            return Err(ProtocolError::WrongSolver { named, this: self.solver });
        }
        Ok(())
    }
}

/// Recovers the signer of `digest` and checks it is `claimed`.
pub fn check_signer(digest: &B256, signature: &Bytes, claimed: Address) -> Result<(), ProtocolError> {
    let signer = recover(digest, signature)?;
    if signer != claimed {
        return Err(ProtocolError::WrongSigner { signer, claimed });
    }
    Ok(())
}

/// The account that signed `digest`.
pub fn recover(digest: &B256, signature: &Bytes) -> Result<Address, ProtocolError> {
    let sig = Signature::try_from(signature.as_ref()).map_err(|e| ProtocolError::BadSignature(e.to_string()))?;
    sig.recover_address_from_prehash(digest).map_err(|e| ProtocolError::BadSignature(e.to_string()))
}

/// The order of secp256k1.
const CURVE_ORDER: U256 =
    alloy::primitives::uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);
/// The largest `s` OpenZeppelin's `ECDSA.tryRecover` takes: half the curve order.
const MAX_S: U256 = alloy::primitives::uint!(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0_U256);

/// Whether `signature` is in the one form `DcnDeals` takes from a provider that is an
/// account with no code: `SignatureChecker.isValidSignatureNow` calls OpenZeppelin 5's
/// `ECDSA.tryRecover(bytes32, bytes)`, which takes exactly 65 bytes r‖s‖v (not the 64-byte
/// EIP-2098 form, which only its `(r, vs)` overload reads), `v` 27 or 28 (not 0 or 1) and
/// `s` at most half the curve order, and then `ecrecover`, which finds nobody for `r` or
/// `s` zero or `r` not below the order. A signature that recovers but fails this makes
/// `createDeal` revert `BadSignature` (THREATS N3): the solver refuses it before recording
/// it and the job creator before spending anything on it. Whether it recovers to the
/// provider is [`recover`]'s to say.
pub fn check_canonical(signature: &[u8]) -> Result<(), ProtocolError> {
    let bad = |why: String| Err(ProtocolError::NonCanonical(why));
    if signature.len() != 65 {
        return bad(format!("it has {} bytes, not 65", signature.len()));
    }
    let r = U256::from_be_slice(&signature[..32]);
    let s = U256::from_be_slice(&signature[32..64]);
    let v = signature[64];
    if v != 27 && v != 28 {
        return bad(format!("its v is {v}, not 27 or 28"));
    }
    if s > MAX_S {
        return bad("its s is in the upper half of the curve order (use n − s and flip v)".into());
    }
    if r.is_zero() || r >= CURVE_ORDER || s.is_zero() {
        return bad("its r or s is zero, or r is not below the curve order".into());
    }
    Ok(())
}

/// The provider that signed deal `id` with `signature`, if the signature is one that
/// `DcnDeals` takes ([`check_canonical`], then [`recover`]).
pub fn recover_deal_signer(id: &B256, signature: &Bytes) -> Result<Address, ProtocolError> {
    check_canonical(signature)?;
    recover(id, signature)
}

/// Signs `digest` with `signer`: 65 bytes r‖s‖v.
pub async fn sign_digest(signer: &PrivateKeySigner, digest: &B256) -> Result<Bytes, alloy::signers::Error> {
    Ok(Bytes::from(signer.sign_hash(digest).await?.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use alloy::primitives::utils::parse_ether;

    /// A signature of `digest` by `key` with `v` (27 or 28) as the last byte, and its digest.
    async fn signed_with_v(key: &PrivateKeySigner, v: u8) -> (B256, Vec<u8>) {
        for n in 0u64.. {
            let digest = alloy::primitives::keccak256(n.to_be_bytes());
            let sig = sign_digest(key, &digest).await.unwrap().to_vec();
            if sig[64] == v {
                return (digest, sig);
            }
        }
        unreachable!()
    }

    /// The same signature with `s` replaced by `n − s` and `v` flipped: the other signature
    /// `ecrecover` takes for the same signer, which OpenZeppelin refuses.
    fn high_s(sig: &[u8]) -> Vec<u8> {
        let s = U256::from_be_slice(&sig[32..64]);
        let mut out = sig.to_vec();
        out[32..64].copy_from_slice(&(CURVE_ORDER - s).to_be_bytes::<32>());
        out[64] = if sig[64] == 27 { 28 } else { 27 };
        out
    }

    #[tokio::test]
    async fn only_the_form_the_contract_takes_is_canonical_though_alloy_recovers_others() {
        let key = PrivateKeySigner::random();
        for v in [27, 28] {
            let (digest, sig) = signed_with_v(&key, v).await;
            check_canonical(&sig).unwrap();
            assert_eq!(recover_deal_signer(&digest, &Bytes::from(sig.clone())).unwrap(), key.address());

            // Each of these recovers to the same key with alloy, and is refused by the contract.
            let mut low_v = sig.clone();
            low_v[64] -= 27;
            let mut v_29 = sig.clone();
            v_29[64] = 29;
            let compact = alloy::primitives::Signature::try_from(&sig[..]).unwrap().as_erc2098().to_vec();
            let mut long = sig.clone();
            long.push(0);
            let cases = [("v 0 or 1", low_v.clone(), true), ("high s", high_s(&sig), true), ("v 29", v_29, false)];
            for (what, bad, recovers) in cases {
                let err = check_canonical(&bad).unwrap_err();
                assert_eq!(err.code(), "non_canonical_signature", "{what}");
                let bad = Bytes::from(bad);
                assert_eq!(recover(&digest, &bad).ok() == Some(key.address()), recovers, "{what}: alloy's view");
                assert!(recover_deal_signer(&digest, &bad).is_err(), "{what}");
            }
            for (what, bad) in [("64-byte EIP-2098", compact), ("66 bytes", long)] {
                let err = check_canonical(&bad).unwrap_err();
                assert!(err.to_string().contains("not 65"), "{what}: {err}");
            }
        }
        let mut zero_r = signed_with_v(&key, 27).await.1;
        zero_r[..32].fill(0);
        assert!(check_canonical(&zero_r).is_err(), "r = 0 recovers nobody");
        let mut zero_s = signed_with_v(&key, 28).await.1;
        zero_s[32..64].fill(0);
        assert!(check_canonical(&zero_s).is_err(), "s = 0 recovers nobody");
        // The largest s the contract takes is taken.
        let mut max_s = signed_with_v(&key, 27).await.1;
        max_s[32..64].copy_from_slice(&MAX_S.to_be_bytes::<32>());
        check_canonical(&max_s).unwrap();
        max_s[32..64].copy_from_slice(&(MAX_S + U256::from(1)).to_be_bytes::<32>());
        assert!(check_canonical(&max_s).is_err());
    }

    /// dcn's own provider never makes a signature the contract refuses: alloy signs with a
    /// low s and writes v as 27 or 28 (`sign_digest` is what the provider sends;
    /// `chain::deals::sign_deal` what tests and tools use).
    #[tokio::test]
    async fn dcns_own_deal_signatures_are_canonical() {
        let key = PrivateKeySigner::random();
        let domain = crate::chain::deals::domain(1337, Address::repeat_byte(0xde));
        for n in 0u64..64 {
            let digest = alloy::primitives::keccak256(n.to_be_bytes());
            let sig = sign_digest(&key, &digest).await.unwrap();
            check_canonical(&sig).unwrap();
            assert_eq!(recover_deal_signer(&digest, &sig).unwrap(), key.address());
            let deal = crate::chain::bindings::DcnDeals::Deal {
                jobCreator: Address::repeat_byte(1),
                provider: key.address(),
                solver: Address::repeat_byte(3),
                mediators: vec![Address::repeat_byte(4)],
                price: U256::from(n),
                collateral: U256::from(2),
                mediationFee: U256::from(1),
                auditFee: U256::from(1),
                auditPpm: 100_000,
                resultTimeout: 60,
                judgeTimeout: 60,
                mediationTimeout: 60,
                createDeadline: 1_800_000_000,
                jobHash: digest,
                nonce: U256::from(n),
            };
            let sig = crate::chain::deals::sign_deal(&key, &deal, &domain).await.unwrap();
            check_canonical(&sig).unwrap();
        }
    }

    #[test]
    fn a_fake_loses_under_the_default_terms_and_not_under_thin_ones() {
        let dcn = |s: &str| parse_ether(s).unwrap();
        // `dcn run`'s defaults against a provider's: p = 1, c = 10, q = 0.1 → 1.1 > 1.
        assert!(fake_loses(dcn("1"), dcn("10"), 100_000));
        // At the boundary a fake breaks even: not enough.
        assert!(!fake_loses(dcn("1"), dcn("9"), 100_000));
        assert!(!fake_loses(dcn("1"), dcn("0"), 999_999));
        assert!(fake_loses(dcn("1"), dcn("0.000001"), 1_000_000), "audited every time");
        // No audits: the job creator waived them.
        assert!(fake_loses(dcn("1"), dcn("0"), 0));
    }

    #[test]
    fn the_deal_names_the_mediators_both_trust_in_the_job_creators_order_without_parties() {
        let [a, b, c, p, j] = [1u8, 2, 3, 4, 5].map(Address::repeat_byte);
        assert_eq!(mediators_between(p, &[c, a, p, b], j, &[b, a, a, j, c]), vec![b, a, c]);
        assert!(mediators_between(p, &[a], j, &[b]).is_empty());
    }
}
