//! The matcher's rules: the offers as it sees them ([`ResourceEntry`], [`JobEntry`]) and
//! whether a pair fits ([`fits`]), split as the index needs them: the rules a group's
//! offers pass or fail together ([`group_fits`], [`job_group_fits`]) and the rest
//! ([`terms_fit`]).

use crate::types::Resources;
use alloy::primitives::{Address, B256, U256};

/// A resource offer as the matcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceEntry {
    /// Offer id.
    pub id: B256,
    /// Arrival order.
    pub seq: u64,
    /// The provider.
    pub provider: Address,
    /// One slot's resources.
    pub resources: Resources,
    /// Price per job.
    pub price: U256,
    /// Collateral per deal.
    pub collateral: U256,
    /// Mediators the provider trusts.
    pub mediators: Vec<Address>,
    /// Allowed modules (`name`, `name@version` or the module file's sha256); empty allows any.
    pub modules: Vec<String>,
    /// Longest job timeout it takes, seconds.
    pub max_timeout_secs: u64,
    /// Largest job spec it takes, bytes.
    pub max_spec_bytes: u64,
    /// Largest job output it delivers, bytes.
    pub max_output_bytes: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// Jobs it serves at a time.
    pub slots: u32,
    /// Slots held by live deals.
    pub busy: u32,
}

/// A job offer as the matcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEntry {
    /// Offer id.
    pub id: B256,
    /// Arrival order.
    pub seq: u64,
    /// The job creator.
    pub creator: Address,
    /// What the job needs.
    pub needs: Resources,
    /// Highest price it pays.
    pub max_price: U256,
    /// Mediation fee of its deal.
    pub mediation_fee: U256,
    /// Audit fee of its deal.
    pub audit_fee: U256,
    /// Audit chance of its deal, parts per million.
    pub audit_ppm: u32,
    /// Mediators the job creator trusts.
    pub mediators: Vec<Address>,
    /// Fewest mediators its deal may name (the network's rule).
    pub min_mediators: usize,
    /// The module.
    pub module: crate::types::ModuleRef,
    /// The job's timeout, seconds.
    pub timeout_secs: u64,
    /// Size of its spec's canonical encoding, bytes.
    pub spec_bytes: u64,
    /// The most output the job may leave, bytes (`JobSpec::output_limit_bytes`).
    pub output_bytes: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// Resource offers it must not be matched with again.
    pub excluded: Vec<B256>,
}

impl JobEntry {
    /// The larger of its mediation and audit fees: the collateral must cover both (a
    /// dishonest verdict pays the mediator out of it).
    pub fn max_fee(&self) -> U256 {
        self.mediation_fee.max(self.audit_fee)
    }
}

/// A decision: this job goes to a slot of this resource offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The job offer.
    pub job: B256,
    /// The resource offer.
    pub resource: B256,
}

/// The distinct mediators of a list, in order.
pub(super) fn distinct(mediators: &[Address]) -> Vec<Address> {
    let mut seen = Vec::with_capacity(mediators.len());
    for m in mediators {
        if !seen.contains(m) {
            seen.push(*m);
        }
    }
    seen
}

/// A slot's or a job's resources, as an index key.
pub(super) type Shape = (u64, u64, u32, u64, u64);

pub(super) fn shape(r: &Resources) -> Shape {
    (r.cpu, r.ram_mb, r.gpus, r.vram_mb, r.disk_mb)
}

pub(super) fn unshape(s: &Shape) -> Resources {
    Resources { cpu: s.0, ram_mb: s.1, gpus: s.2, vram_mb: s.3, disk_mb: s.4 }
}

/// The mediators a deal between `r` and `j` names: those both trust who are not a party,
/// in the job creator's order.
pub fn common_mediators(r: &ResourceEntry, j: &JobEntry) -> Vec<Address> {
    crate::protocol::mediators_between(r.provider, &r.mediators, j.creator, &j.mediators)
}

/// Whether `r`'s allow-list lets `j`'s module run.
pub(super) fn module_allowed(r: &ResourceEntry, j: &JobEntry) -> bool {
    j.module.allowed_by(&r.modules)
}

/// The rules a group's offers pass or fail together: resources and terms, not price (the
/// walk inside a resource group stops at it) nor liveness nor exclusions.
/// For a resource group, every one of them is in the key (the allow-list as a hash keyed
/// per run: two lists share a group with odds of 2^-64, and strangers cannot aim for it).
pub(super) fn group_fits(r: &ResourceEntry, j: &JobEntry) -> bool {
    r.resources.covers(&j.needs)
        && r.collateral >= j.max_fee()
        && module_allowed(r, j)
        && j.timeout_secs <= r.max_timeout_secs
        && j.spec_bytes <= r.max_spec_bytes
        && j.output_bytes <= r.max_output_bytes
}

/// The rules a waiting job group passes or fails together (its key): the slot covers
/// the shape, its price is within the maximum, its collateral covers the fee, and the
/// module is allowed. Timeouts and sizes vary within the group.
pub(super) fn job_group_fits(r: &ResourceEntry, j: &JobEntry) -> bool {
    r.resources.covers(&j.needs) && r.price <= j.max_price && r.collateral >= j.max_fee() && module_allowed(r, j)
}

/// Every rule but resources (which the index checks by shape) and free slots.
pub(super) fn terms_fit(r: &ResourceEntry, j: &JobEntry, now: u64) -> bool {
    r.price <= j.max_price
        && r.collateral >= j.max_fee()
        && crate::protocol::fake_loses(r.price, r.collateral, j.audit_ppm)
        && r.expiry > now
        && j.expiry > now
        && module_allowed(r, j)
        && j.timeout_secs <= r.max_timeout_secs
        && j.spec_bytes <= r.max_spec_bytes
        && j.output_bytes <= r.max_output_bytes
        && !j.excluded.contains(&r.id)
        && common_mediators(r, j).len() >= j.min_mediators.max(1)
}

/// Whether `r` could serve `j` now, slots aside: every rule of the module doc.
pub fn fits(r: &ResourceEntry, j: &JobEntry, now: u64) -> bool {
    r.resources.covers(&j.needs) && terms_fit(r, j, now)
}
