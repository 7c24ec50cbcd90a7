//! The matcher: which resource offer serves which job offer. Pure, and deterministic
//! within its search budget: it sees offers and a clock, never the network, the store or
//! the wall clock.
//!
//! Rules: a pair matches when the slot's resources cover the job's (CPU, RAM, GPU count and
//! VRAM, disk), the provider's price is at most the job's maximum, its collateral covers
//! the mediation and audit fees (the contract needs that), a fake result loses the provider
//! money in expectation under the job's audit chance (q·(p + c) > p,
//! [`crate::protocol::fake_loses`]), the mediator sets share at least the network's
//! `min_mediators` who are not parties, the module is on the provider's allow-list (if it has one), the job's timeout,
//! spec size and output limit are within the caps the provider published, both offers are
//! live, the job has not been let down by that offer before, and the provider is not
//! paused (it let proposals lapse: [`Matcher::pause`]). Choice: a new job takes
//! the cheapest fitting offer, ties to the oldest; a free slot takes the oldest fitting
//! job.
//!
//! Index: open offers are grouped by mediator, shape and terms: an offer is listed under
//! each mediator it trusts (not itself: a party cannot mediate), with its exact resources
//! as the shape and every other rule that does not change with the counterpart as the
//! terms (a resource offer's collateral, caps and allow-list; a job's maximum price,
//! mediation fee and module). Every offer of a group passes or fails those rules
//! together, so a search checks them once per group, with the group's first offer.
//! Within a group, resource offers with a free slot are sorted by (price, arrival) and
//! waiting jobs by arrival; a walk inside a group stops at the first offer that passes
//! what is left (price, liveness, the job's exclusions). The groups of free slots are also
//! kept in order of their first offer, cheapest first: a new job walks them in that order
//! and stops at the first group dearer than its maximum or than the offer it found, so it
//! usually looks at a handful of groups however many there are. A freed slot walks the
//! waiting groups by shape, from the smallest, up to its own CPU.
//!
//! Work is bounded (THREATS V3): a search looks at most at [`SEARCH_BUDGET`] groups and
//! offers in all, however many distinct shapes and terms strangers post. What it finds
//! within the budget is the cheapest (or oldest) fitting offer it looked at; a job it
//! missed waits, and is found from the other side when a slot is offered or freed.

mod rules;

pub use rules::{common_mediators, fits, JobEntry, Match, ResourceEntry};

use crate::solver::maps::shrink;
use alloy::primitives::{Address, B256, U256};
use rules::{distinct, group_fits, job_group_fits, shape, terms_fit, unshape, Shape};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A resource offer's terms: collateral, caps on timeout, spec and output, and a keyed
/// hash of its allow-list.
type ResourceTerms = (U256, u64, u64, u64, u64);
/// A job's terms: maximum price, the larger of its fees and a keyed hash of its module. (Its
/// timeout and sizes vary from job to job: as terms they would make a group per job.)
type JobTerms = (U256, U256, u64);
type FreeGroup = (Address, Shape, ResourceTerms);
/// A free group in price order: its mediator, its CPU band ([`cpu_band`]), its first
/// offer's (price, arrival, id), then its shape and terms.
type PricedGroup = (Address, u8, U256, u64, B256, Shape, ResourceTerms);
type WaitingGroup = (Address, Shape, JobTerms);

/// The most groups and offers one search looks at.
pub const SEARCH_BUDGET: usize = 4096;

const RESOURCE_TERMS_MIN: ResourceTerms = (U256::ZERO, 0, 0, 0, 0);
const JOB_TERMS_MIN: JobTerms = (U256::ZERO, U256::ZERO, 0);

const SHAPE_MIN: Shape = (0, 0, 0, 0, 0);

/// The CPU band of a shape: its CPU's bit length (slots of 1,024 to 2,047 millicores share
/// band 11). A search walks the bands at and above its job's, each cheapest first, so
/// offers with less CPU than a job needs cost its search nothing unless they share its
/// band: junk posted to block searches has to be posted in every band jobs use.
fn cpu_band(cpu: u64) -> u8 {
    (u64::BITS - cpu.leading_zeros()) as u8
}

/// Moves group `g` in the price order when its first offer changed from `before` to
/// `after` (`None`: the group is empty).
fn reprice(
    order: &mut BTreeSet<PricedGroup>,
    g: &FreeGroup,
    before: Option<(U256, u64, B256)>,
    after: Option<(U256, u64, B256)>,
) {
    if before == after {
        return;
    }
    let (m, s, t) = *g;
    let band = cpu_band(s.0);
    if let Some((p, q, id)) = before {
        order.remove(&(m, band, p, q, id, s, t));
    }
    if let Some((p, q, id)) = after {
        order.insert((m, band, p, q, id, s, t));
    }
}

/// Open offers, indexed for matching.
#[derive(Debug, Default)]
pub struct Matcher {
    resources: HashMap<B256, ResourceEntry>,
    jobs: HashMap<B256, JobEntry>,
    free: BTreeMap<FreeGroup, BTreeSet<(U256, u64, B256)>>,
    /// Every group of `free` once, under its mediator and CPU band, by its cheapest (then
    /// oldest) offer: a search walks each band from the cheapest group and stops at the
    /// first that costs more than what it found.
    free_by_price: BTreeSet<PricedGroup>,
    waiting: BTreeMap<WaitingGroup, BTreeSet<(u64, B256)>>,
    /// Providers matched with nothing until these unix seconds.
    paused: HashMap<Address, u64>,
    /// Groups and offers searches looked at, in all.
    looks: std::cell::Cell<u64>,
    /// Keys the hashes of allow-lists and modules in group keys.
    hasher: std::hash::RandomState,
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

    /// The open resource offers.
    pub fn resources(&self) -> impl Iterator<Item = &ResourceEntry> {
        self.resources.values()
    }

    /// A waiting job offer.
    pub fn job(&self, id: &B256) -> Option<&JobEntry> {
        self.jobs.get(id)
    }

    /// Matches none of `provider`'s offers before `until` (unix seconds). Its offers leave
    /// the free index, so no search walks past them (THREATS V3); its slots stay as they
    /// are, and [`Matcher::resume_due`] indexes and fills them once the pause is over.
    pub fn pause(&mut self, provider: Address, until: u64) {
        let newly = !self.paused.contains_key(&provider);
        let at = self.paused.entry(provider).or_default();
        *at = (*at).max(until);
        if newly {
            let theirs: Vec<ResourceEntry> =
                self.resources.values().filter(|r| r.provider == provider).cloned().collect();
            for r in &theirs {
                self.unindex_free(r);
            }
        }
    }

    /// Whether `provider` is paused at `now`.
    pub fn is_paused(&self, provider: &Address, now: u64) -> bool {
        self.paused.get(provider).is_some_and(|until| *until > now)
    }

    /// Ends the pauses that are over at `now` and fills those providers' free slots with
    /// waiting jobs.
    pub fn resume_due(&mut self, now: u64) -> Vec<Match> {
        let over: Vec<Address> = self.paused.iter().filter(|(_, until)| **until <= now).map(|(p, _)| *p).collect();
        if over.is_empty() {
            return vec![];
        }
        for p in &over {
            self.paused.remove(p);
        }
        let theirs: Vec<ResourceEntry> =
            self.resources.values().filter(|r| over.contains(&r.provider)).cloned().collect();
        for r in &theirs {
            self.index_free(r);
        }
        let mut ids: Vec<(u64, B256)> = theirs.iter().map(|r| (r.seq, r.id)).collect();
        ids.sort();
        ids.into_iter().flat_map(|(_, id)| self.fill_slots(id, now)).collect()
    }

    fn resource_terms(&self, r: &ResourceEntry) -> ResourceTerms {
        use std::hash::BuildHasher;
        let modules = self.hasher.hash_one(&r.modules);
        (r.collateral, r.max_timeout_secs, r.max_spec_bytes, r.max_output_bytes, modules)
    }

    fn job_terms(&self, j: &JobEntry) -> JobTerms {
        use std::hash::BuildHasher;
        (j.max_price, j.max_fee(), self.hasher.hash_one(&j.module))
    }

    /// Gives back the room a burst of offers left empty.
    pub fn shrink(&mut self) {
        shrink(&mut self.resources);
        shrink(&mut self.jobs);
        shrink(&mut self.paused);
    }

    /// How many groups and offers searches looked at so far: the matcher's work.
    pub fn looks(&self) -> u64 {
        self.looks.get()
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
        // A paused provider's offers stay out until the pause is over.
        if r.busy < r.slots && !self.paused.contains_key(&r.provider) {
            let terms = self.resource_terms(r);
            for m in distinct(&r.mediators).into_iter().filter(|m| *m != r.provider) {
                let g = (m, shape(&r.resources), terms);
                let set = self.free.entry(g).or_default();
                let before = set.first().copied();
                set.insert((r.price, r.seq, r.id));
                let after = set.first().copied();
                reprice(&mut self.free_by_price, &g, before, after);
            }
        }
    }

    fn unindex_free(&mut self, r: &ResourceEntry) {
        let terms = self.resource_terms(r);
        for m in distinct(&r.mediators).into_iter().filter(|m| *m != r.provider) {
            let g = (m, shape(&r.resources), terms);
            if let Some(set) = self.free.get_mut(&g) {
                let before = set.first().copied();
                set.remove(&(r.price, r.seq, r.id));
                let after = set.first().copied();
                if set.is_empty() {
                    self.free.remove(&g);
                }
                reprice(&mut self.free_by_price, &g, before, after);
            }
        }
    }

    fn index_waiting(&mut self, j: &JobEntry) {
        for m in distinct(&j.mediators).into_iter().filter(|m| *m != j.creator) {
            let g = (m, shape(&j.needs), self.job_terms(j));
            self.waiting.entry(g).or_default().insert((j.seq, j.id));
        }
    }

    fn unindex_waiting(&mut self, j: &JobEntry) {
        for m in distinct(&j.mediators).into_iter().filter(|m| *m != j.creator) {
            let g = (m, shape(&j.needs), self.job_terms(j));
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

    /// The cheapest (then oldest) resource offer with a free slot that fits `j`, among
    /// those a search of [`SEARCH_BUDGET`] looks at. Each CPU band at or above the job's is
    /// walked cheapest first, and left at the first group dearer than the job pays or than
    /// what the search found.
    fn cheapest_for(&self, j: &JobEntry, now: u64) -> Option<B256> {
        let mut best: Option<(U256, u64, B256)> = None;
        let mut budget = SEARCH_BUDGET;
        'mediators: for m in distinct(&j.mediators).into_iter().filter(|m| *m != j.creator) {
            let mut band = cpu_band(j.needs.cpu);
            loop {
                let from = (m, band, U256::ZERO, 0, B256::ZERO, SHAPE_MIN, RESOURCE_TERMS_MIN);
                let mut groups = self.free_by_price.range(from..).take_while(|g| g.0 == m).peekable();
                // The next band that has groups; none: this mediator is done.
                let Some(&&(_, here, ..)) = groups.peek() else { break };
                for &(_, _, price, seq, id, s, terms) in groups.take_while(|g| g.1 == here) {
                    if budget == 0 {
                        break 'mediators;
                    }
                    budget -= 1;
                    let first = (price, seq, id);
                    if price > j.max_price || best.is_some_and(|b| first >= b) {
                        // Every later group of this band costs as much or more.
                        break;
                    }
                    if !unshape(&s).covers(&j.needs) || !group_fits(&self.resources[&id], j) {
                        continue;
                    }
                    for key in &self.free[&(m, s, terms)] {
                        if key.0 > j.max_price || best.is_some_and(|b| *key >= b) || budget == 0 {
                            break;
                        }
                        budget -= 1;
                        if terms_fit(&self.resources[&key.2], j, now) {
                            best = Some(*key);
                            break;
                        }
                    }
                }
                match here.checked_add(1) {
                    Some(next) => band = next,
                    None => break,
                }
            }
        }
        self.looks.set(self.looks.get() + (SEARCH_BUDGET - budget) as u64);
        best.map(|b| b.2)
    }

    /// The oldest waiting job that fits `r`, among those a search of [`SEARCH_BUDGET`]
    /// looks at.
    fn oldest_for(&self, r: &ResourceEntry, now: u64) -> Option<B256> {
        if self.is_paused(&r.provider, now) {
            return None;
        }
        let mut best: Option<(u64, B256)> = None;
        let mut budget = SEARCH_BUDGET;
        'mediators: for m in distinct(&r.mediators).into_iter().filter(|m| *m != r.provider) {
            for ((_, s, _), set) in self.waiting.range((m, SHAPE_MIN, JOB_TERMS_MIN)..).take_while(|(g, _)| g.0 == m) {
                // Jobs needing more CPU than the slot has come after: none fits.
                if s.0 > r.resources.cpu || budget == 0 {
                    break;
                }
                budget -= 1;
                let Some(first) = set.first() else { continue };
                if best.is_some_and(|b| *first >= b) || !r.resources.covers(&unshape(s)) {
                    continue;
                }
                let j0 = &self.jobs[&first.1];
                if !job_group_fits(r, j0) {
                    continue;
                }
                for key in set {
                    if best.is_some_and(|b| *key >= b) || budget == 0 {
                        break;
                    }
                    budget -= 1;
                    if terms_fit(r, &self.jobs[&key.1], now) {
                        best = Some(*key);
                        break;
                    }
                }
                if budget == 0 {
                    break 'mediators;
                }
            }
        }
        self.looks.set(self.looks.get() + (SEARCH_BUDGET - budget) as u64);
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
mod tests;
