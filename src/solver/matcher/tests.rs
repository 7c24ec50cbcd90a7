//! Unit tests of the matcher.

use super::*;
use crate::types::Resources;

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
        max_timeout_secs: 3600,
        max_spec_bytes: 65_536,
        max_output_bytes: 64 << 20,
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
        audit_fee: U256::from(1),
        audit_ppm: 1_000_000,
        mediators: vec![Address::repeat_byte(0xee)],
        min_mediators: 1,
        module: crate::types::ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "c0ffee".into() },
        timeout_secs: 60,
        spec_bytes: 1_000,
        output_bytes: 64 << 20,
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
        ("module version", ResourceEntry { modules: vec!["cowsay@2.0.0".into()], ..base_r.clone() }, base_j.clone()),
        ("resource expired", ResourceEntry { expiry: NOW, ..base_r.clone() }, base_j.clone()),
        ("job expired", base_r.clone(), JobEntry { expiry: NOW, ..base_j.clone() }),
        ("excluded", base_r.clone(), JobEntry { excluded: vec![base_r.id], ..base_j.clone() }),
        ("timeout over the cap", base_r.clone(), JobEntry { timeout_secs: 3601, ..base_j.clone() }),
        ("spec over the cap", ResourceEntry { max_spec_bytes: 999, ..base_r.clone() }, base_j.clone()),
        ("output over the cap", ResourceEntry { max_output_bytes: (64 << 20) - 1, ..base_r.clone() }, base_j.clone()),
    ];
    for (rule, r, j) in cases {
        assert!(!fits(&r, &j, NOW), "{rule} should refuse");
        let mut m = Matcher::new();
        assert!(m.add_resource(r, NOW).is_empty());
        assert_eq!(matched(&mut m, j), None, "{rule} should refuse in the index too");
    }
    let allowed = ResourceEntry { modules: vec!["lolcat".into(), "cowsay@1.0.0".into()], ..base_r };
    assert!(fits(&allowed, &base_j, NOW), "allow-list by name@version");
    let pinned = ResourceEntry { modules: vec!["sha256:C0FFEE".into()], ..allowed };
    assert!(fits(&pinned, &base_j, NOW), "allow-list by the module file's hash");
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

#[test]
fn a_paused_providers_offers_leave_the_free_index_until_the_pause_is_over() {
    let mut m = Matcher::new();
    let paused = res(1, 1, 5);
    let other = res(2, 2, 9);
    m.add_resource(paused.clone(), NOW);
    m.add_resource(other.clone(), NOW);
    m.pause(paused.provider, NOW + 60);
    let indexed = |m: &Matcher, id: B256| m.free.values().any(|set| set.iter().any(|k| k.2 == id));
    assert!(!indexed(&m, paused.id), "no search walks past a paused provider's offer");
    assert!(indexed(&m, other.id));
    // A slot released while paused is not indexed either.
    m.release_slot(&paused.id, NOW);
    assert!(!indexed(&m, paused.id));
    assert_eq!(matched(&mut m, job(1, 3)), Some(other.id), "the dearer offer, not the paused one");
    let waiting = job(2, 4);
    assert_eq!(matched(&mut m, waiting.clone()), None, "waits: the only free slot is paused");
    assert!(m.resume_due(NOW + 59).is_empty(), "not over yet");
    let resumed = m.resume_due(NOW + 60);
    assert_eq!(resumed, vec![Match { job: waiting.id, resource: paused.id }], "the waiting job, once it is over");
}

/// THREATS V3: offers that fail a job for the same reason (here 10,000 cheap ones that
/// allow another module only) share a group and cost a search one look, so the honest
/// offer behind them is found.
#[test]
fn offers_that_fail_alike_cost_a_search_one_look() {
    let mut m = Matcher::new();
    for i in 0..10_000u64 {
        let junk = ResourceEntry {
            id: B256::from(U256::from(1_000_000 + i)),
            seq: i,
            provider: Address::from_word(B256::from(U256::from(i + 1))),
            modules: vec!["other".into()],
            ..res(1, i, 0)
        };
        m.add_resource(junk, NOW);
    }
    let honest = res(2, 20_000, 50);
    m.add_resource(honest.clone(), NOW);
    let before = m.looks();
    assert_eq!(matched(&mut m, job(1, 20_001)), Some(honest.id));
    assert!(m.looks() - before <= 3, "one look at the junk group, two at the honest one: {}", m.looks() - before);
}

/// THREATS V3: a search looks at no more than `SEARCH_BUDGET` groups and offers however
/// many distinct shapes strangers post (here 10,000 that each miss the job's RAM). A job
/// the budget kept from its slot waits, and the slot finds it from its side when it is
/// offered again.
#[test]
fn a_search_looks_at_a_bounded_number_of_shapes() {
    let mut m = Matcher::new();
    let mut j = job(1, 50_000);
    j.needs.cpu = 1000;
    for i in 0..10_000u64 {
        let junk = ResourceEntry {
            id: B256::from(U256::from(1_000_000 + i)),
            seq: i,
            provider: Address::from_word(B256::from(U256::from(i + 1))),
            // At least the job's CPU, so not skipped by the range; too little RAM.
            resources: Resources { cpu: 1000 + i, ram_mb: 1, ..Default::default() },
            ..res(1, i, 0)
        };
        m.add_resource(junk, NOW);
    }
    // Cheaper still, shapes with less CPU than the job needs: the budget is spent all
    // the same, and no more.
    for i in 0..10_000u64 {
        let small = ResourceEntry {
            id: B256::from(U256::from(2_000_000 + i)),
            seq: 10_000 + i,
            provider: Address::from_word(B256::from(U256::from(20_000 + i))),
            resources: Resources { cpu: i % 999 + 1, ram_mb: 100_000 + i, ..Default::default() },
            ..res(1, i, 0)
        };
        m.add_resource(small, NOW);
    }
    let honest = ResourceEntry { resources: Resources { cpu: 64_000, ..res(2, 0, 0).resources }, ..res(2, 30_000, 50) };
    m.add_resource(honest.clone(), NOW);
    let before = m.looks();
    assert_eq!(matched(&mut m, j.clone()), None, "the honest offer is past the budget");
    assert_eq!(m.looks() - before, SEARCH_BUDGET as u64);
    // The provider's offer comes again (a fresh post, or a slot freed): it finds the job.
    m.remove_resource(&honest.id);
    let again = m.add_resource(ResourceEntry { seq: 30_001, ..honest.clone() }, NOW);
    assert_eq!(again, [Match { job: j.id, resource: honest.id }]);
}

/// Groups are walked cheapest first, band by band: among many fitting shapes, a job looks
/// at the cheapest group and stops at the next, dearer than what it found.
#[test]
fn a_search_walks_groups_from_the_cheapest_and_stops_early() {
    let mut m = Matcher::new();
    for i in 0..2_000u64 {
        let r = ResourceEntry {
            id: B256::from(U256::from(1_000_000 + i)),
            provider: Address::from_word(B256::from(U256::from(i + 1))),
            // A shape of its own, every one covering the job.
            resources: Resources { cpu: 2000 + i, ..res(1, 0, 0).resources },
            ..res(1, i, 10 + (i * 7919) % 1000)
        };
        m.add_resource(r, NOW);
    }
    let before = m.looks();
    let got = matched(&mut m, job(1, 10_000)).expect("a slot fits");
    assert_eq!(m.resource(&got).map(|r| r.price), Some(U256::from(10)), "the cheapest");
    // Shapes of 2,000 to 3,999 millicores: two CPU bands.
    assert_eq!(
        m.looks() - before,
        4,
        "the cheapest group, its offer and the next group of its band, then the first of the other band"
    );
}

/// The price order follows the slots: every match equals what a walk over every open
/// offer finds (the cheapest, then oldest, fitting free slot), through slots taken,
/// released, offers removed and providers paused, on offers of random shapes and terms.
#[test]
fn the_index_finds_what_a_full_walk_finds() {
    let mut g = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = |n: u64| {
        g ^= g << 13;
        g ^= g >> 7;
        g ^= g << 17;
        g % n
    };
    let mut m = Matcher::new();
    let mut seq = 0u64;
    let mut live: Vec<B256> = vec![];
    for round in 0..3_000u64 {
        seq += 1;
        match rand(10) {
            0..=3 => {
                let r = ResourceEntry {
                    id: B256::from(U256::from(seq)),
                    seq,
                    provider: Address::repeat_byte(1 + rand(8) as u8),
                    resources: Resources {
                        cpu: 1000 * (1 + rand(4)),
                        ram_mb: 1024 * (1 + rand(4)),
                        ..Default::default()
                    },
                    price: U256::from(1 + rand(20)),
                    collateral: U256::from(rand(3)),
                    mediators: vec![Address::repeat_byte(0xe0 + rand(3) as u8)],
                    slots: 1 + rand(3) as u32,
                    ..res(1, seq, 0)
                };
                live.push(r.id);
                m.add_resource(r, NOW);
            }
            4..=7 => {
                let j = JobEntry {
                    id: B256::from(U256::from(seq)),
                    seq,
                    needs: Resources { cpu: 500 * (1 + rand(8)), ram_mb: 512 * (1 + rand(8)), ..Default::default() },
                    max_price: U256::from(1 + rand(25)),
                    mediation_fee: U256::from(rand(3)),
                    mediators: vec![Address::repeat_byte(0xe0 + rand(3) as u8)],
                    ..job(1, seq)
                };
                let expected = m
                    .resources()
                    .filter(|r| r.busy < r.slots && !m.is_paused(&r.provider, NOW) && fits(r, &j, NOW))
                    .map(|r| (r.price, r.seq, r.id))
                    .min()
                    .map(|b| b.2);
                let got = m.add_job(j.clone(), NOW).map(|x| x.resource);
                assert_eq!(got, expected, "round {round}: job {j:?}");
                if got.is_none() {
                    // Keep the waiting list out of it: this test is about the free index.
                    m.remove_job(&j.id);
                }
            }
            8 if !live.is_empty() => {
                let id = live[rand(live.len() as u64) as usize];
                let _ = m.release_slot(&id, NOW);
            }
            _ if !live.is_empty() => {
                let i = rand(live.len() as u64) as usize;
                if rand(2) == 0 {
                    m.remove_resource(&live.swap_remove(i));
                } else if let Some(p) = m.resource(&live[i]).map(|r| r.provider) {
                    m.pause(p, NOW + 1);
                    let _ = m.resume_due(NOW + 1);
                }
            }
            _ => {}
        }
    }
}

/// THREATS V3: cheap offers that fit nobody, posted under many mediators, are walked before
/// the dearer offer that fits, up to the budget and no further; those with less CPU than
/// the job's band cost its search nothing.
#[test]
fn junk_under_many_mediators_spends_the_budget_and_no_more_and_junk_below_the_jobs_band_nothing() {
    let mediators: Vec<Address> = (0..16u8).map(|i| Address::repeat_byte(0xd0 + i)).collect();
    let mut j = job(1, 1_000_000);
    j.needs.cpu = 4000;
    j.mediators = mediators.clone();
    let junk = |i: u64, cpu: u64| ResourceEntry {
        id: B256::from(U256::from(1_000_000 + i)),
        seq: i,
        provider: Address::from_word(B256::from(U256::from(i + 1))),
        resources: Resources { cpu, ..res(1, 0, 0).resources },
        mediators: mediators.clone(),
        // Distinct terms, each a group of its own; none fits (the fee is above the collateral).
        collateral: U256::ZERO,
        max_timeout_secs: 3600 + i,
        ..res(1, i, 0)
    };
    // The honest provider trusts the job's last mediator only: each of the others' walks
    // meets the junk first.
    let honest = ResourceEntry {
        resources: Resources { cpu: 8000, ..res(2, 0, 0).resources },
        mediators: vec![mediators[15]],
        ..res(2, 900_000, 50)
    };

    // Below the job's band (1,000 millicores), as many as you like: not looked at.
    let mut m = Matcher::new();
    for i in 0..2_000 {
        m.add_resource(junk(i, 1000), NOW);
    }
    m.add_resource(honest.clone(), NOW);
    let before = m.looks();
    assert_eq!(matched(&mut m, j.clone()), Some(honest.id));
    assert_eq!(m.looks() - before, 2, "the honest group and its offer");

    // In the job's band: 256 offers × 16 mediators spend the whole budget.
    let mut m = Matcher::new();
    for i in 0..256 {
        m.add_resource(junk(i, 4000), NOW);
    }
    m.add_resource(honest.clone(), NOW);
    let before = m.looks();
    assert_eq!(matched(&mut m, j.clone()), None, "the honest offer is past the budget");
    assert_eq!(m.looks() - before, SEARCH_BUDGET as u64, "and no more than the budget");
}
