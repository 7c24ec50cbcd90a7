//! Solver benchmarks, printed as `name value unit`:
//! - `solver_match_10k_seconds`: 10,000 resource offers then 10,000 job offers of mixed
//!   shapes through the real matcher and core, on the in-memory store (signing excluded).
//! - `solver_ingest_offers_per_second`: signed offers posted over HTTP to a running solver
//!   with RocksDB, signature checks included (signing excluded).

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use dcn::clock::now_secs;
use dcn::protocol::SolverClient;
use dcn::protocol::{JobOffer, ResourceOffer, SignedJobOffer, SignedResourceOffer};
use dcn::solver::api::ApiLimits;
use dcn::solver::escrow::EscrowTable;
use dcn::solver::store::{MemoryStore, RocksStore};
use dcn::solver::{Core, CoreConfig, Solver, SolverParams};
use dcn::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 10_000;

fn config(solver: Address) -> CoreConfig {
    CoreConfig {
        solver,
        chain_id: 1337,
        deals_contract: Address::repeat_byte(0xde),
        offer_max_ahead_secs: 86_400,
        request_max_ahead_secs: 300,
        max_open_offers: 1_000_000,
        max_open_offers_total: 1_000_000,
        sign_timeout_secs: 60,
        create_timeout_secs: 300,
        result_retention_secs: 3600,
        min_mediators: 1,
        fault: None,
    }
}

/// A small deterministic generator, so every run sees the same offers.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn mediators(g: &mut Lcg) -> Vec<Address> {
    (0..1 + g.next(3)).map(|_| Address::repeat_byte(0xe0 + g.next(4) as u8)).collect()
}

fn resource(g: &mut Lcg, provider: Address, solver: Address) -> ResourceOffer {
    let gpus = [0, 0, 0, 1, 2][g.next(5) as usize];
    ResourceOffer {
        provider,
        solver,
        cpu: [1000, 2000, 4000, 8000, 16000][g.next(5) as usize],
        ramMb: [1024, 2048, 4096, 8192, 16384][g.next(5) as usize],
        gpus,
        vramMb: if gpus > 0 { [8000, 16000, 24000][g.next(3) as usize] } else { 0 },
        diskMb: [10_000, 50_000][g.next(2) as usize],
        slots: 1 + g.next(4) as u32,
        price: U256::from(1 + g.next(100)),
        collateral: U256::from(100),
        mediators: mediators(g),
        modules: if g.next(10) == 0 { vec!["lolcat".into()] } else { vec![] },
        maxTimeoutSecs: 3600,
        maxSpecBytes: 65_536,
        maxOutputBytes: 1 << 30,
        expiry: now_secs() + 3600,
        nonce: U256::from(g.next(u64::MAX)),
    }
}

fn job(g: &mut Lcg, creator: Address, solver: Address) -> (JobOffer, JobSpec) {
    let gpus = if g.next(6) == 0 { 1 } else { 0 };
    let spec = JobSpec {
        module: ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "ab".into() },
        image: "dcn.local/cowsay:1.0".into(),
        argv: vec!["cowsay".into(), format!("moo {}", g.next(u64::MAX))],
        env: Default::default(),
        resources: Resources {
            cpu: [250, 500, 1000, 2000, 4000][g.next(5) as usize],
            ram_mb: [128, 512, 1024, 4096, 8192][g.next(5) as usize],
            gpus,
            vram_mb: if gpus > 0 { [8000, 16000][g.next(2) as usize] } else { 0 },
            disk_mb: 1000,
        },
        network: NetworkPolicy::None,
        timeout_secs: 60,
        outputs: vec![],
        success_exit_codes: vec![],
        run_as_root: false,
    };
    let offer = JobOffer {
        jobCreator: creator,
        solver,
        jobHash: spec.content_hash(),
        maxPrice: U256::from(20 + g.next(100)),
        mediationFee: U256::from(10),
        auditFee: U256::from(1),
        auditPpm: 1_000_000,
        mediators: mediators(g),
        resultTimeout: 600,
        judgeTimeout: 600,
        mediationTimeout: 600,
        expiry: now_secs() + 3600,
        nonce: U256::from(g.next(u64::MAX)),
    };
    (offer, spec)
}

async fn match_10k() -> (f64, u64) {
    let solver = Address::repeat_byte(5);
    let cfg = config(solver);
    let domain = dcn::protocol::domain(cfg.chain_id, cfg.deals_contract);
    let key = PrivateKeySigner::random();
    let mut g = Lcg(42);
    let mut resources = Vec::with_capacity(N);
    let mut jobs = Vec::with_capacity(N);
    let dummy = alloy::primitives::Bytes::from(vec![0u8; 65]);
    for i in 0..N {
        let provider = Address::from_word(B256::from(U256::from(i + 1)));
        let offer = resource(&mut g, provider, solver);
        let signed = SignedResourceOffer { offer, signature: dummy.clone() };
        let id = signed.id(&domain);
        resources.push((signed, id));
        let (offer, spec) = job(&mut g, key.address(), solver);
        let signed = SignedJobOffer { offer, spec, signature: dummy.clone() };
        let id = signed.id(&domain);
        jobs.push((signed, id));
    }
    let (events, _) = tokio::sync::broadcast::channel(16);
    let mut core = Core::open(cfg, Arc::new(MemoryStore::new()), events).expect("memory store opens");
    let now = now_secs() * 1000;
    let start = Instant::now();
    for (signed, id) in resources {
        core.post_resource_offer(signed, id, now).expect("resource offer accepted");
    }
    for (signed, id) in jobs {
        core.post_job_offer(signed, id, now).expect("job offer accepted");
    }
    // Until everything is written.
    core.flush().expect("the memory store takes every write");
    (start.elapsed().as_secs_f64(), core.stats().matches_total)
}

async fn ingest() -> f64 {
    const OFFERS: usize = 4_000;
    const ACCOUNTS: usize = 400;
    let key = PrivateKeySigner::random();
    let dir = tempfile::tempdir().expect("temp dir");
    let params = SolverParams {
        core: CoreConfig { max_open_offers: 100, ..config(key.address()) },
        // The bench measures what the solver can take, not its limits: one loopback
        // client sends everything.
        limits: ApiLimits {
            max_body_bytes: 1 << 20,
            max_result_bytes: 1 << 30,
            rate_per_sec: 50.0,
            rate_burst: 100.0,
            ip_rate_per_sec: 1e9,
            ip_rate_burst: 1e9,
            max_stored_result_bytes: 1 << 40,
            max_subscriptions: 4096,
            max_subscriptions_per_address: 4096,
        },
        store: Arc::new(RocksStore::open(&dir.path().join("db")).expect("rocksdb opens")),
        // Every account is backed: the bench measures taking offers, with the escrow
        // check's bookkeeping but without a chain.
        escrow: Arc::new(EscrowTable::new(U256::MAX)),
        escrow_ttl: Duration::from_secs(10),
        results_dir: dir.path().join("results"),
        chain: None,
        genesis_hash: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let supervisor = dcn::runtime::Supervisor::new();
    let solver = Solver::start(params, listener, &supervisor.tasks()).expect("solver starts");
    let client = SolverClient::connect(&solver.url()).await.expect("solver answers");
    let domain = client.domain();
    let keys: Vec<PrivateKeySigner> = (0..ACCOUNTS).map(|_| PrivateKeySigner::random()).collect();
    let mut g = Lcg(7);
    let mut bodies = Vec::with_capacity(OFFERS);
    for i in 0..OFFERS {
        let k = &keys[i % ACCOUNTS];
        let body = if i % 2 == 0 {
            let o = resource(&mut g, k.address(), key.address());
            serde_json::to_vec(&SignedResourceOffer::sign(o, k, &domain).await.expect("sign")).expect("json")
        } else {
            let (o, spec) = job(&mut g, k.address(), key.address());
            serde_json::to_vec(&SignedJobOffer::sign(o, spec, k, &domain).await.expect("sign")).expect("json")
        };
        bodies.push((i % 2 == 0, body));
    }
    let http = reqwest::Client::new();
    let base = solver.url();
    let start = Instant::now();
    let results: Vec<u16> = futures_util::stream::iter(bodies)
        .map(|(resource, body)| {
            let url = format!("{base}/api/v1/{}", if resource { "resource_offers" } else { "job_offers" });
            let http = http.clone();
            async move {
                let resp = http.post(url).header("content-type", "application/json").body(body).send().await;
                resp.map(|r| r.status().as_u16()).unwrap_or(0)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    let refused = results.iter().filter(|s| **s != 201).count();
    assert_eq!(refused, 0, "every offer is accepted");
    OFFERS as f64 / secs
}

/// `DCN_BENCH_ONLY=match` or `=ingest` runs one part (to profile it).
#[tokio::main]
async fn main() {
    let only = std::env::var("DCN_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "match" {
        let (secs, matches) = match_10k().await;
        println!("solver_match_10k_seconds {secs:.3} s");
        println!("solver_match_10k_matches {matches} deals");
    }
    if only.is_empty() || only == "ingest" {
        let rate = ingest().await;
        println!("solver_ingest_offers_per_second {rate:.0} offers/s");
    }
}
