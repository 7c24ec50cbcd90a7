//! The matcher: which resource offer serves which job offer. Pure and deterministic: it
//! sees offers and a clock, never the network, the store or the wall clock.
//!
//! Rules: a pair matches when the slot's resources cover the job's (CPU, RAM, GPU count and
//! VRAM, disk), the provider's price is at most the job's maximum, its collateral covers
//! the mediation fee (the contract needs that), the mediator sets share someone who is not
//! a party, the module is on the provider's allow-list (if it has one), both offers are
//! live and the job has not been let down by that offer before. Choice: a new job takes the
//! cheapest fitting offer, ties to the oldest; a free slot takes the oldest fitting job.
//!
//! Index: open offers are grouped by (mediator, shape): an offer is listed under each
//! mediator it trusts, with its exact resources as the shape. Within a group, resource
//! offers with a free slot are sorted by (price, arrival) and waiting jobs by arrival. A
//! search visits the groups of its own mediators whose shape covers (or is covered), and
//! walks each only past offers that fail a remaining rule (price, module, collateral), so
//! the cost is about (mediators × shapes) per match, not the number of offers.

use crate::types::Resources;
use alloy::primitives::{Address, B256, U256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// Allowed modules (`name` or `name@version`); empty allows any.
    pub modules: Vec<String>,
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
    /// Mediators the job creator trusts.
    pub mediators: Vec<Address>,
    /// Module name.
    pub module: String,
    /// Module version.
    pub module_version: String,
    /// Unix seconds.
    pub expiry: u64,
    /// Resource offers it must not be matched with again.
    pub excluded: Vec<B256>,
}

/// A decision: this job goes to a slot of this resource offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The job offer.
    pub job: B256,
    /// The resource offer.
    pub resource: B256,
}

type Shape = (u64, u64, u32, u64, u64);
type Group = (Address, Shape);

const SHAPE_MIN: Shape = (0, 0, 0, 0, 0);
const SHAPE_MAX: Shape = (u64::MAX, u64::MAX, u32::MAX, u64::MAX, u64::MAX);

/// The distinct mediators of a list, in order.
fn distinct(mediators: &[Address]) -> Vec<Address> {
    let mut seen = Vec::with_capacity(mediators.len());
    for m in mediators {
        if !seen.contains(m) {
            seen.push(*m);
        }
    }
    seen
}

fn shape(r: &Resources) -> Shape {
    (r.cpu, r.ram_mb, r.gpus, r.vram_mb, r.disk_mb)
}

fn unshape(s: &Shape) -> Resources {
    Resources { cpu: s.0, ram_mb: s.1, gpus: s.2, vram_mb: s.3, disk_mb: s.4 }
}

/// The mediators a deal between `r` and `j` names: those both trust who are not a party,
/// in the job creator's order.
pub fn common_mediators(r: &ResourceEntry, j: &JobEntry) -> Vec<Address> {
    j.mediators.iter().filter(|m| r.mediators.contains(m) && **m != r.provider && **m != j.creator).copied().collect()
}

/// Whether `r`'s allow-list lets `j`'s module run.
fn module_allowed(r: &ResourceEntry, j: &JobEntry) -> bool {
    r.modules.is_empty()
        || r.modules.iter().any(|m| match m.split_once('@') {
            Some((name, version)) => name == j.module && version == j.module_version,
            None => *m == j.module,
        })
}

/// Every rule but resources (which the index checks by shape) and free slots.
fn terms_fit(r: &ResourceEntry, j: &JobEntry, now: u64) -> bool {
    r.price <= j.max_price
        && r.collateral >= j.mediation_fee
        && r.expiry > now
        && j.expiry > now
        && module_allowed(r, j)
        && !j.excluded.contains(&r.id)
        && j.mediators.iter().any(|m| r.mediators.contains(m) && *m != r.provider && *m != j.creator)
}

/// Whether `r` could serve `j` now, slots aside: every rule of the module doc.
pub fn fits(r: &ResourceEntry, j: &JobEntry, now: u64) -> bool {
    r.resources.covers(&j.needs) && terms_fit(r, j, now)
}

/// Open offers, indexed for matching.
#[derive(Debug, Default)]
pub struct Matcher {
    resources: HashMap<B256, ResourceEntry>,
    jobs: HashMap<B256, JobEntry>,
    free: BTreeMap<Group, BTreeSet<(U256, u64, B256)>>,
    waiting: BTreeMap<Group, BTreeSet<(u64, B256)>>,
}

impl Matcher {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// An open resource offer.
    pub fn resource(&self, id: &B256) -> Option<&ResourceEntry> {
        self.resources.get(id)
    }

    /// A waiting job offer.
    pub fn job(&self, id: &B256) -> Option<&JobEntry> {
        self.jobs.get(id)
    }

    /// Number of open resource offers and of waiting jobs.
    pub fn len(&self) -> (usize, usize) {
        (self.resources.len(), self.jobs.len())
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.jobs.is_empty()
    }

    fn index_free(&mut self, r: &ResourceEntry) {
        if r.busy < r.slots {
            for m in distinct(&r.mediators) {
                self.free.entry((m, shape(&r.resources))).or_default().insert((r.price, r.seq, r.id));
            }
        }
    }

    fn unindex_free(&mut self, r: &ResourceEntry) {
        for m in distinct(&r.mediators) {
            let g = (m, shape(&r.resources));
            if let Some(set) = self.free.get_mut(&g) {
                set.remove(&(r.price, r.seq, r.id));
                if set.is_empty() {
                    self.free.remove(&g);
                }
            }
        }
    }

    fn index_waiting(&mut self, j: &JobEntry) {
        for m in distinct(&j.mediators) {
            self.waiting.entry((m, shape(&j.needs))).or_default().insert((j.seq, j.id));
        }
    }

    fn unindex_waiting(&mut self, j: &JobEntry) {
        for m in distinct(&j.mediators) {
            let g = (m, shape(&j.needs));
            if let Some(set) = self.waiting.get_mut(&g) {
                set.remove(&(j.seq, j.id));
                if set.is_empty() {
                    self.waiting.remove(&g);
                }
            }
        }
    }

    /// Adds an open resource offer (with `busy` slots already held by live deals) and
    /// gives its free slots to the oldest fitting waiting jobs.
    pub fn add_resource(&mut self, entry: ResourceEntry, now: u64) -> Vec<Match> {
        let id = entry.id;
        self.index_free(&entry);
        self.resources.insert(id, entry);
        self.fill_slots(id, now)
    }

    /// Adds a job offer: matched at once with the cheapest fitting free slot, or left
    /// waiting for one.
    pub fn add_job(&mut self, entry: JobEntry, now: u64) -> Option<Match> {
        if let Some(resource) = self.cheapest_for(&entry, now) {
            let m = Match { job: entry.id, resource };
            self.take_slot(&resource);
            return Some(m);
        }
        self.index_waiting(&entry);
        self.jobs.insert(entry.id, entry);
        None
    }

    /// A deal of resource offer `id` ended: its slot is free again and goes to the oldest
    /// fitting waiting job. Unknown (closed) offers are ignored.
    pub fn release_slot(&mut self, id: &B256, now: u64) -> Vec<Match> {
        let Some(r) = self.resources.get(id).cloned() else { return vec![] };
        if r.busy == 0 {
            return vec![];
        }
        self.unindex_free(&r);
        let mut r = r;
        r.busy -= 1;
        self.index_free(&r);
        self.resources.insert(*id, r);
        self.fill_slots(*id, now)
    }

    /// Marks one more slot of an open resource offer as held (a live deal found at start).
    pub fn hold_slot(&mut self, id: &B256) {
        self.take_slot(id);
    }

    /// Closes a resource offer (cancelled or expired); its live deals run on.
    pub fn remove_resource(&mut self, id: &B256) -> Option<ResourceEntry> {
        let r = self.resources.remove(id)?;
        self.unindex_free(&r);
        Some(r)
    }

    /// Takes a job offer out of the waiting list (cancelled or expired).
    pub fn remove_job(&mut self, id: &B256) -> Option<JobEntry> {
        let j = self.jobs.remove(id)?;
        self.unindex_waiting(&j);
        Some(j)
    }

    fn take_slot(&mut self, id: &B256) {
        let Some(r) = self.resources.get(id).cloned() else { return };
        self.unindex_free(&r);
        let mut r = r;
        r.busy = (r.busy + 1).min(r.slots);
        self.index_free(&r);
        self.resources.insert(*id, r);
    }

    /// The cheapest (then oldest) resource offer with a free slot that fits `j`.
    fn cheapest_for(&self, j: &JobEntry, now: u64) -> Option<B256> {
        let mut best: Option<(U256, u64, B256)> = None;
        for m in distinct(&j.mediators) {
            for ((_, s), set) in self.free.range((m, SHAPE_MIN)..=(m, SHAPE_MAX)) {
                if !unshape(s).covers(&j.needs) {
                    continue;
                }
                for key in set {
                    if key.0 > j.max_price || best.is_some_and(|b| *key >= b) {
                        break;
                    }
                    if terms_fit(&self.resources[&key.2], j, now) {
                        best = Some(*key);
                        break;
                    }
                }
            }
        }
        best.map(|b| b.2)
    }

    /// The oldest waiting job that fits `r`.
    fn oldest_for(&self, r: &ResourceEntry, now: u64) -> Option<B256> {
        let mut best: Option<(u64, B256)> = None;
        for m in distinct(&r.mediators) {
            for ((_, s), set) in self.waiting.range((m, SHAPE_MIN)..=(m, SHAPE_MAX)) {
                if !r.resources.covers(&unshape(s)) {
                    continue;
                }
                for key in set {
                    if best.is_some_and(|b| *key >= b) {
                        break;
                    }
                    if terms_fit(r, &self.jobs[&key.1], now) {
                        best = Some(*key);
                        break;
                    }
                }
            }
        }
        best.map(|b| b.1)
    }

    fn fill_slots(&mut self, id: B256, now: u64) -> Vec<Match> {
        let mut out = Vec::new();
        while let Some(r) = self.resources.get(&id).filter(|r| r.busy < r.slots) {
            let Some(job) = self.oldest_for(r, now) else { break };
            if let Some(j) = self.jobs.remove(&job) {
                self.unindex_waiting(&j);
            }
            self.take_slot(&id);
            out.push(Match { job, resource: id });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000;

    fn res(n: u8, seq: u64, price: u64) -> ResourceEntry {
        ResourceEntry {
            id: B256::repeat_byte(n),
            seq,
            provider: Address::repeat_byte(0xa0 + n),
            resources: Resources { cpu: 2000, ram_mb: 2048, gpus: 0, vram_mb: 0, disk_mb: 1000 },
            price: U256::from(price),
            collateral: U256::from(10),
            mediators: vec![Address::repeat_byte(0xee)],
            modules: vec![],
            expiry: NOW + 100,
            slots: 1,
            busy: 0,
        }
    }

    fn job(n: u8, seq: u64) -> JobEntry {
        JobEntry {
            id: B256::repeat_byte(0x80 + n),
            seq,
            creator: Address::repeat_byte(0xc0),
            needs: Resources { cpu: 1000, ram_mb: 512, ..Default::default() },
            max_price: U256::from(100),
            mediation_fee: U256::from(1),
            mediators: vec![Address::repeat_byte(0xee)],
            module: "cowsay".into(),
            module_version: "1.0.0".into(),
            expiry: NOW + 100,
            excluded: vec![],
        }
    }

    fn matched(m: &mut Matcher, j: JobEntry) -> Option<B256> {
        m.add_job(j, NOW).map(|x| x.resource)
    }

    #[test]
    fn each_rule_can_refuse_a_pair() {
        let base_r = res(1, 1, 10);
        let base_j = job(1, 2);
        assert!(fits(&base_r, &base_j, NOW));
        let cases: Vec<(&str, ResourceEntry, JobEntry)> = vec![
            ("cpu", base_r.clone(), JobEntry { needs: Resources { cpu: 2001, ..base_j.needs }, ..base_j.clone() }),
            ("ram", base_r.clone(), JobEntry { needs: Resources { ram_mb: 4096, ..base_j.needs }, ..base_j.clone() }),
            ("gpus", base_r.clone(), JobEntry { needs: Resources { gpus: 1, ..base_j.needs }, ..base_j.clone() }),
            (
                "vram",
                ResourceEntry { resources: Resources { gpus: 1, vram_mb: 8000, ..base_r.resources }, ..base_r.clone() },
                JobEntry { needs: Resources { gpus: 1, vram_mb: 16000, ..base_j.needs }, ..base_j.clone() },
            ),
            ("disk", base_r.clone(), JobEntry { needs: Resources { disk_mb: 1001, ..base_j.needs }, ..base_j.clone() }),
            ("price", ResourceEntry { price: U256::from(101), ..base_r.clone() }, base_j.clone()),
            ("collateral", ResourceEntry { collateral: U256::ZERO, ..base_r.clone() }, base_j.clone()),
            ("mediators", ResourceEntry { mediators: vec![Address::repeat_byte(1)], ..base_r.clone() }, base_j.clone()),
            ("mediator is a party", base_r.clone(), JobEntry { mediators: vec![base_r.provider], ..base_j.clone() }),
            ("module", ResourceEntry { modules: vec!["lolcat".into()], ..base_r.clone() }, base_j.clone()),
            (
                "module version",
                ResourceEntry { modules: vec!["cowsay@2.0.0".into()], ..base_r.clone() },
                base_j.clone(),
            ),
            ("resource expired", ResourceEntry { expiry: NOW, ..base_r.clone() }, base_j.clone()),
            ("job expired", base_r.clone(), JobEntry { expiry: NOW, ..base_j.clone() }),
            ("excluded", base_r.clone(), JobEntry { excluded: vec![base_r.id], ..base_j.clone() }),
        ];
        for (rule, r, j) in cases {
            assert!(!fits(&r, &j, NOW), "{rule} should refuse");
            let mut m = Matcher::new();
            assert!(m.add_resource(r, NOW).is_empty());
            assert_eq!(matched(&mut m, j), None, "{rule} should refuse in the index too");
        }
        let allowed = ResourceEntry { modules: vec!["lolcat".into(), "cowsay@1.0.0".into()], ..base_r };
        assert!(fits(&allowed, &base_j, NOW), "allow-list by name@version");
    }

    #[test]
    fn cheapest_wins_then_oldest() {
        let mut m = Matcher::new();
        m.add_resource(res(1, 1, 30), NOW);
        m.add_resource(res(2, 2, 20), NOW);
        m.add_resource(res(3, 3, 20), NOW);
        assert_eq!(matched(&mut m, job(1, 4)), Some(B256::repeat_byte(2)), "cheapest, older of the tie");
        assert_eq!(matched(&mut m, job(2, 5)), Some(B256::repeat_byte(3)));
        assert_eq!(matched(&mut m, job(3, 6)), Some(B256::repeat_byte(1)));
        assert_eq!(matched(&mut m, job(4, 7)), None, "every slot taken");
        assert_eq!(m.len(), (3, 1));
    }

    #[test]
    fn a_bigger_but_cheaper_offer_beats_an_exact_fit() {
        let mut m = Matcher::new();
        let mut big = res(1, 1, 5);
        big.resources.cpu = 64_000;
        m.add_resource(big, NOW);
        m.add_resource(res(2, 2, 9), NOW);
        assert_eq!(matched(&mut m, job(1, 3)), Some(B256::repeat_byte(1)));
    }

    #[test]
    fn slots_serve_at_most_n_jobs_and_come_back() {
        let mut m = Matcher::new();
        m.add_resource(ResourceEntry { slots: 2, ..res(1, 1, 10) }, NOW);
        assert!(matched(&mut m, job(1, 2)).is_some());
        assert!(matched(&mut m, job(2, 3)).is_some());
        assert_eq!(matched(&mut m, job(3, 4)), None);
        assert_eq!(matched(&mut m, job(4, 5)), None);
        let r = B256::repeat_byte(1);
        assert_eq!(m.resource(&r).unwrap().busy, 2);
        // A slot back goes to the oldest waiting job, one per slot.
        assert_eq!(m.release_slot(&r, NOW), vec![Match { job: job(3, 0).id, resource: r }]);
        assert_eq!(m.release_slot(&r, NOW), vec![Match { job: job(4, 0).id, resource: r }]);
        assert!(m.release_slot(&r, NOW).is_empty());
        assert_eq!(m.resource(&r).unwrap().busy, 1);
    }

    #[test]
    fn a_new_offer_serves_the_oldest_fitting_jobs() {
        let mut m = Matcher::new();
        let mut gpu_job = job(1, 1);
        gpu_job.needs.gpus = 1;
        assert_eq!(matched(&mut m, gpu_job), None);
        assert_eq!(matched(&mut m, job(2, 2)), None);
        assert_eq!(matched(&mut m, job(3, 3)), None);
        let got = m.add_resource(ResourceEntry { slots: 5, ..res(1, 4, 10) }, NOW);
        let jobs: Vec<B256> = got.iter().map(|x| x.job).collect();
        assert_eq!(jobs, vec![job(2, 0).id, job(3, 0).id], "oldest first; the GPU job does not fit");
        assert_eq!(m.len(), (1, 1));
        assert_eq!(m.resource(&B256::repeat_byte(1)).unwrap().busy, 2);
    }

    #[test]
    fn removed_offers_are_not_matched() {
        let mut m = Matcher::new();
        m.add_resource(res(1, 1, 10), NOW);
        m.remove_resource(&B256::repeat_byte(1));
        assert_eq!(matched(&mut m, job(1, 2)), None);
        m.remove_job(&job(1, 2).id);
        assert!(m.add_resource(res(2, 3, 10), NOW).is_empty());
        assert!(m.release_slot(&B256::repeat_byte(1), NOW).is_empty(), "unknown offer ignored");
    }

    #[test]
    fn matching_is_deterministic() {
        let run = || {
            let mut m = Matcher::new();
            let mut out = vec![];
            for i in 0..50u8 {
                let mut r = res(i, u64::from(i) * 2, u64::from(i % 7) + 1);
                r.resources.cpu = 1000 + u64::from(i % 3) * 1000;
                out.extend(m.add_resource(r, NOW));
                let mut j = job(i, u64::from(i) * 2 + 1);
                j.needs.cpu = 500 + u64::from(i % 5) * 500;
                j.max_price = U256::from(u64::from(i % 4) + 2);
                out.extend(m.add_job(j, NOW));
            }
            out
        };
        let first = run();
        assert!(first.len() > 10);
        assert_eq!(first, run());
    }
}
