//! Offers: a provider's [`ResourceOffer`] and a job creator's [`JobOffer`], declared once as
//! EIP-712 structs with `sol!`, and their signed forms with the rules every solver applies
//! to them. An offer's id is its EIP-712 digest. Start at [`SignedResourceOffer::verify`]
//! and [`SignedJobOffer::verify`].

use super::{
    check_signer, invalid, sign_digest, ProtocolError, Verifier, MAX_ALLOWED_MODULES, MAX_AMOUNT,
    MAX_DISPUTE_TIMEOUT_SECS, MAX_MEDIATORS, MAX_SLOTS, MAX_SPEC_BYTES, PPM,
};
use crate::types::{JobSpec, Resources};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

sol! {
    /// A provider's standing offer of compute: `slots` jobs at a time of at most these
    /// resources each, for `price` per job, backed by `collateral` per deal.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ResourceOffer {
        address provider;
        address solver;
        uint64 cpu;
        uint64 ramMb;
        uint32 gpus;
        uint64 vramMb;
        uint64 diskMb;
        uint32 slots;
        uint256 price;
        uint256 collateral;
        address[] mediators;
        string[] modules;
        uint64 maxTimeoutSecs;
        uint64 maxSpecBytes;
        uint64 maxOutputBytes;
        uint64 expiry;
        uint256 nonce;
    }

    /// A job creator's request to run one job (the spec whose sha256 is `jobHash`) for at
    /// most `maxPrice`, with these deal terms: its result is audited with a chance of
    /// `auditPpm` parts per million, the audit paid by `auditFee`.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct JobOffer {
        address jobCreator;
        address solver;
        bytes32 jobHash;
        uint256 maxPrice;
        uint256 mediationFee;
        uint256 auditFee;
        uint32 auditPpm;
        address[] mediators;
        uint64 resultTimeout;
        uint64 judgeTimeout;
        uint64 mediationTimeout;
        uint64 expiry;
        uint256 nonce;
    }
}

fn check_amount(field: &'static str, value: U256) -> Result<(), ProtocolError> {
    if value > MAX_AMOUNT {
        return Err(invalid(field, "more than 2^96-1 token units"));
    }
    Ok(())
}

fn check_mediators(mediators: &[Address]) -> Result<(), ProtocolError> {
    if mediators.is_empty() || mediators.len() > MAX_MEDIATORS {
        return Err(invalid("mediators", format!("name 1 to {MAX_MEDIATORS} mediators")));
    }
    if mediators.contains(&Address::ZERO) {
        return Err(invalid("mediators", "the zero address is not a mediator"));
    }
    Ok(())
}

/// A resource offer with its signature, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedResourceOffer {
    /// The offer.
    pub offer: ResourceOffer,
    /// The provider's signature over [`SignedResourceOffer::id`].
    pub signature: Bytes,
}

impl SignedResourceOffer {
    /// Signs `offer` as its provider.
    pub async fn sign(
        offer: ResourceOffer,
        signer: &PrivateKeySigner,
        domain: &Eip712Domain,
    ) -> Result<Self, alloy::signers::Error> {
        let signature = sign_digest(signer, &offer.eip712_signing_hash(domain)).await?;
        Ok(Self { offer, signature })
    }

    /// The offer id: its EIP-712 digest.
    pub fn id(&self, domain: &Eip712Domain) -> B256 {
        self.offer.eip712_signing_hash(domain)
    }

    /// Checks the signature, the solver, the expiry and the ranges; returns the id.
    pub fn verify(&self, v: &Verifier) -> Result<B256, ProtocolError> {
        let o = &self.offer;
        let id = self.id(&v.domain);
        check_signer(&id, &self.signature, o.provider)?;
        v.check_solver(o.solver)?;
        v.check_expiry(o.expiry)?;
        if o.slots == 0 || o.slots > MAX_SLOTS {
            return Err(invalid("slots", format!("offer 1 to {MAX_SLOTS} slots")));
        }
        check_amount("price", o.price)?;
        check_amount("collateral", o.collateral)?;
        check_mediators(&o.mediators)?;
        if o.modules.len() > MAX_ALLOWED_MODULES || o.modules.iter().any(|m| m.is_empty() || m.len() > 200) {
            return Err(invalid("modules", format!("at most {MAX_ALLOWED_MODULES} non-empty names")));
        }
        if o.gpus == 0 && o.vramMb > 0 {
            return Err(invalid("vramMb", "VRAM offered without GPUs"));
        }
        if o.maxTimeoutSecs == 0 || o.maxSpecBytes == 0 || o.maxOutputBytes == 0 {
            return Err(invalid("maxTimeoutSecs", "the caps on timeout, spec and output size must be at least 1"));
        }
        Ok(id)
    }

    /// The resources one slot offers.
    pub fn resources(&self) -> Resources {
        let o = &self.offer;
        Resources { cpu: o.cpu, ram_mb: o.ramMb, gpus: o.gpus, vram_mb: o.vramMb, disk_mb: o.diskMb }
    }
}

/// A job offer with its signature and the job spec it commits to, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJobOffer {
    /// The offer.
    pub offer: JobOffer,
    /// The job; its content hash is `offer.jobHash`.
    pub spec: JobSpec,
    /// The job creator's signature over [`SignedJobOffer::id`].
    pub signature: Bytes,
}

impl SignedJobOffer {
    /// Signs `offer` as its job creator.
    pub async fn sign(
        offer: JobOffer,
        spec: JobSpec,
        signer: &PrivateKeySigner,
        domain: &Eip712Domain,
    ) -> Result<Self, alloy::signers::Error> {
        let signature = sign_digest(signer, &offer.eip712_signing_hash(domain)).await?;
        Ok(Self { offer, spec, signature })
    }

    /// The offer id: its EIP-712 digest.
    pub fn id(&self, domain: &Eip712Domain) -> B256 {
        self.offer.eip712_signing_hash(domain)
    }

    /// Checks the signature, the solver, the expiry, the spec against the job hash and the
    /// deal terms; returns the id.
    pub fn verify(&self, v: &Verifier) -> Result<B256, ProtocolError> {
        let o = &self.offer;
        let spec_bytes = self.spec.canonical_json().len();
        if spec_bytes > MAX_SPEC_BYTES {
            return Err(invalid(
                "spec",
                format!(
                    "the spec is {spec_bytes} bytes; at most {MAX_SPEC_BYTES} are taken: pass large inputs as files"
                ),
            ));
        }
        let id = self.id(&v.domain);
        check_signer(&id, &self.signature, o.jobCreator)?;
        v.check_solver(o.solver)?;
        v.check_expiry(o.expiry)?;
        let actual = self.spec.content_hash();
        if actual != o.jobHash {
            return Err(invalid("jobHash", format!("the spec hashes to {actual}, not {}", o.jobHash)));
        }
        check_amount("maxPrice", o.maxPrice)?;
        check_amount("mediationFee", o.mediationFee)?;
        check_amount("auditFee", o.auditFee)?;
        if o.auditPpm > PPM {
            return Err(invalid("auditPpm", format!("a chance is at most {PPM} parts per million")));
        }
        check_mediators(&o.mediators)?;
        if o.resultTimeout == 0 || o.resultTimeout > u64::from(u32::MAX) {
            return Err(invalid("resultTimeout", "a timeout is 1 to 2^32-1 seconds"));
        }
        for (field, t) in [("judgeTimeout", o.judgeTimeout), ("mediationTimeout", o.mediationTimeout)] {
            if t == 0 || t > MAX_DISPUTE_TIMEOUT_SECS {
                return Err(invalid(
                    field,
                    format!("a judge or mediation timeout is 1 to {MAX_DISPUTE_TIMEOUT_SECS} seconds"),
                ));
            }
        }
        if o.resultTimeout <= self.spec.timeout_secs {
            return Err(invalid(
                "resultTimeout",
                format!(
                    "{} s leaves no time to deliver a job that may run {} s: give the provider more",
                    o.resultTimeout, self.spec.timeout_secs
                ),
            ));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::domain;
    use crate::types::{ModuleRef, NetworkPolicy};

    fn verifier(solver: Address) -> Verifier {
        Verifier { solver, domain: domain(1337, Address::repeat_byte(0xde)), now: 1_000, max_ahead: 3_600 }
    }

    pub(crate) fn spec() -> JobSpec {
        JobSpec {
            module: ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "ab".into() },
            image: "dcn.local/cowsay:1.0".into(),
            argv: vec!["cowsay".into(), "moo".into()],
            env: Default::default(),
            resources: Resources { cpu: 500, ram_mb: 64, ..Default::default() },
            network: NetworkPolicy::None,
            timeout_secs: 30,
            outputs: vec![],
            success_exit_codes: vec![],
            run_as_root: false,
        }
    }

    async fn resource_offer(signer: &PrivateKeySigner, solver: Address) -> SignedResourceOffer {
        let offer =
            crate::testing::resource_offer(signer.address(), solver, U256::from(20), vec![Address::repeat_byte(7)]);
        SignedResourceOffer::sign(offer, signer, &verifier(solver).domain).await.unwrap()
    }

    #[tokio::test]
    async fn offers_verify_and_refuse_with_the_reason() {
        let provider = PrivateKeySigner::random();
        let solver = Address::repeat_byte(1);
        let v = verifier(solver);
        let good = resource_offer(&provider, solver).await;
        assert_eq!(good.verify(&v).unwrap(), good.id(&v.domain));

        let mut tampered = good.clone();
        tampered.offer.price = U256::from(1);
        assert!(matches!(tampered.verify(&v), Err(ProtocolError::WrongSigner { .. })));

        let other = resource_offer(&PrivateKeySigner::random(), solver).await;
        let mut stolen = other.clone();
        stolen.signature = good.signature.clone();
        assert_eq!(stolen.verify(&v).unwrap_err().code(), "wrong_signer");

        let mut garbage = good.clone();
        garbage.signature = Bytes::from(vec![1, 2, 3]);
        assert_eq!(garbage.verify(&v).unwrap_err().code(), "bad_signature");

        assert_eq!(good.verify(&Verifier { now: 2_000, ..v.clone() }).unwrap_err().code(), "expired");
        assert_eq!(good.verify(&Verifier { max_ahead: 10, ..v.clone() }).unwrap_err().code(), "expiry_too_far");
        assert_eq!(good.verify(&verifier(Address::repeat_byte(2))).unwrap_err().code(), "wrong_solver");
        let other_domain = Verifier { domain: domain(1, Address::repeat_byte(0xde)), ..v.clone() };
        assert_eq!(good.verify(&other_domain).unwrap_err().code(), "wrong_signer", "bound to the chain");
    }

    #[tokio::test]
    async fn job_offers_commit_to_their_spec() {
        let creator = PrivateKeySigner::random();
        let solver = Address::repeat_byte(1);
        let v = verifier(solver);
        let offer = JobOffer {
            jobCreator: creator.address(),
            solver,
            jobHash: spec().content_hash(),
            maxPrice: U256::from(10),
            mediationFee: U256::from(1),
            auditFee: U256::from(1),
            auditPpm: 1_000_000,
            mediators: vec![Address::repeat_byte(7)],
            resultTimeout: 60,
            judgeTimeout: 60,
            mediationTimeout: 60,
            expiry: 2_000,
            nonce: U256::from(1),
        };
        let good = SignedJobOffer::sign(offer.clone(), spec(), &creator, &v.domain).await.unwrap();
        good.verify(&v).unwrap();

        let mut swapped = good.clone();
        swapped.spec.argv[1] = "oink".into();
        assert!(matches!(swapped.verify(&v), Err(ProtocolError::Invalid { field: "jobHash", .. })));

        let short = JobOffer { resultTimeout: 30, ..offer };
        let short = SignedJobOffer::sign(short, spec(), &creator, &v.domain).await.unwrap();
        assert!(matches!(short.verify(&v), Err(ProtocolError::Invalid { field: "resultTimeout", .. })));
    }

    #[test]
    fn wire_encoding_is_the_eip712_field_names() {
        let json = serde_json::to_value(ResourceOffer {
            provider: Address::ZERO,
            solver: Address::ZERO,
            cpu: 1,
            ramMb: 2,
            gpus: 0,
            vramMb: 0,
            diskMb: 0,
            slots: 1,
            price: U256::from(5),
            collateral: U256::ZERO,
            mediators: vec![],
            modules: vec!["cowsay".into()],
            maxTimeoutSecs: 3600,
            maxSpecBytes: 65_536,
            maxOutputBytes: 1 << 30,
            expiry: 9,
            nonce: U256::from(3),
        })
        .unwrap();
        assert_eq!(json["ramMb"], 2);
        assert_eq!(json["price"], "0x5");
        assert!(serde_json::from_value::<ResourceOffer>(serde_json::json!({"provider": "0x00"})).is_err());
    }
}
