//! The solver under load, as a process of its own (this bench binary run again in solver
//! mode), printed as `name value unit`:
//! - `solver_rss_mb_100k_offers`: the solver's resident memory once 100,000 signed offers
//!   (half resource, half job offers with their specs) were posted and have expired.
//! - `solver_honest_p99_ms_under_flood`: p99 latency of an honest client's requests (a
//!   signed job offer, then a list of its deals, 25 times a second each) while hostile
//!   clients on 16 other loopback addresses flood the solver with junk signatures naming
//!   the honest account, unbacked offers, oversized bodies and idle WebSockets.

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use dcn::clock::now_secs;
use dcn::protocol::{
    body_sha256, JobOffer, ResourceOffer, SignedJobOffer, SignedResourceOffer, SolverApi, SolverClient,
};
use dcn::solver::api::ApiLimits;
use dcn::solver::escrow::EscrowTable;
use dcn::solver::store::RocksStore;
use dcn::solver::{CoreConfig, Solver, SolverParams};
use dcn::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = "DCN_BENCH_SOLVER_CHILD";
const BACKED: &str = "DCN_BENCH_SOLVER_BACKED";
const UNLIMITED: &str = "DCN_BENCH_SOLVER_UNLIMITED";
const OFFERS: usize = 100_000;
const ACCOUNTS: usize = 1_000;
const FLOOD_ADDRESSES: u8 = 16;
const FLOOD_SECS: u64 = 10;

/// Solver mode: a solver on 127.0.0.1:0 with RocksDB in a temp dir and the solver's
/// production limits (with `UNLIMITED`: no rate or per-account limits), where only the
/// accounts in `BACKED` (comma-separated; `*`: all) have escrow. Prints its URL, then runs
/// until stdin closes.
async fn child() {
    let unlimited = std::env::var(UNLIMITED).is_ok();
    let rate = |production: f64| if unlimited { 1e9 } else { production };
    let key = PrivateKeySigner::random();
    let dir = tempfile::tempdir().expect("temp dir");
    let backed = std::env::var(BACKED).unwrap_or_default();
    let escrow = Arc::new(EscrowTable::new(if backed == "*" { U256::MAX } else { U256::ZERO }));
    for a in backed.split(',').filter_map(|a| a.parse::<Address>().ok()) {
        escrow.set(a, U256::MAX);
    }
    let params = SolverParams {
        core: CoreConfig {
            solver: key.address(),
            chain_id: 1337,
            deals_contract: Address::repeat_byte(0xde),
            offer_max_ahead_secs: 86_400,
            request_max_ahead_secs: 300,
            max_open_offers: if unlimited { 1_000_000 } else { 100 },
            max_open_offers_total: 200_000,
            sign_timeout_secs: 60,
            create_timeout_secs: 300,
            result_retention_secs: 3600,
            min_mediators: 1,
            fault: None,
        },
        limits: ApiLimits {
            max_body_bytes: 1 << 20,
            max_result_bytes: 1 << 30,
            max_stored_result_bytes: 100 << 30,
            max_subscriptions: 4096,
            max_subscriptions_per_address: 64,
            rate_per_sec: rate(50.0),
            rate_burst: rate(100.0),
            ip_rate_per_sec: rate(200.0),
            ip_rate_burst: rate(400.0),
        },
        store: Arc::new(RocksStore::open(&dir.path().join("db")).expect("rocksdb opens")),
        results_dir: dir.path().join("results"),
        escrow,
        escrow_ttl: Duration::from_secs(10),
        chain: None,
        genesis_hash: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let supervisor = dcn::runtime::Supervisor::new();
    let solver = Solver::start(params, listener, &supervisor.tasks()).expect("solver starts");
    println!("{}", solver.url());
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    })
    .await
    .expect("stdin watcher");
}

/// A solver process; stopped when dropped.
struct SolverProcess {
    child: Child,
    url: String,
}

impl SolverProcess {
    fn start(backed: &str, unlimited: bool) -> Self {
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        if unlimited {
            cmd.env(UNLIMITED, "1");
        }
        let mut child = cmd
            .env(CHILD, "1")
            .env(BACKED, backed)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("solver process starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("solver URL");
        Self { child, url: line.trim().to_string() }
    }

    /// Resident memory, MB.
    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb / 1024.0
    }
}

impl Drop for SolverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(n: usize) -> JobSpec {
    JobSpec {
        module: ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "ab".into() },
        image: "dcn.local/cowsay:1.0".into(),
        argv: vec!["/usr/games/cowsay".into(), format!("moo number {n}")],
        env: Default::default(),
        resources: Resources { cpu: 1000, ram_mb: 512, ..Default::default() },
        network: NetworkPolicy::None,
        timeout_secs: 60,
        outputs: vec![],
        success_exit_codes: vec![],
        run_as_root: false,
    }
}

fn nonce() -> U256 {
    U256::from_be_bytes(B256::random().0)
}

fn resource_offer(provider: Address, solver: Address, expiry: u64) -> ResourceOffer {
    ResourceOffer {
        provider,
        solver,
        cpu: 2000,
        ramMb: 2048,
        gpus: 0,
        vramMb: 0,
        diskMb: 10_000,
        slots: 1,
        // Nothing matches: no job offers this little.
        price: U256::from(1_000_000),
        collateral: U256::from(10),
        mediators: vec![Address::repeat_byte(0xee)],
        modules: vec![],
        maxTimeoutSecs: 3600,
        maxSpecBytes: 65_536,
        maxOutputBytes: 1 << 30,
        expiry,
        nonce: nonce(),
    }
}

fn job_offer(creator: Address, solver: Address, spec: &JobSpec, expiry: u64) -> JobOffer {
    JobOffer {
        jobCreator: creator,
        solver,
        jobHash: spec.content_hash(),
        maxPrice: U256::from(100),
        mediationFee: U256::from(1),
        auditFee: U256::from(1),
        auditPpm: 1_000_000,
        mediators: vec![Address::repeat_byte(0xee)],
        resultTimeout: 600,
        judgeTimeout: 600,
        mediationTimeout: 600,
        expiry,
        nonce: nonce(),
    }
}

/// Posts 100,000 offers that expire a few seconds after they are signed, waits until the
/// solver expired them all, and reads its resident memory.
async fn rss_100k() -> f64 {
    // Memory, not limits, is measured: one loopback client sends everything.
    let solver = SolverProcess::start("*", true);
    let client = SolverClient::connect(&solver.url).await.expect("solver answers");
    let (domain, me) = (client.domain(), client.info().solver);
    let keys: Vec<PrivateKeySigner> = (0..ACCOUNTS).map(|_| PrivateKeySigner::random()).collect();
    let http = reqwest::Client::new();
    const BATCH: usize = 2_000;
    let mut last_expiry = 0;
    for start in (0..OFFERS).step_by(BATCH) {
        let expiry = now_secs() + 15;
        last_expiry = expiry;
        let mut bodies = Vec::with_capacity(BATCH);
        for i in start..start + BATCH {
            let k = &keys[i % ACCOUNTS];
            bodies.push(if i % 2 == 0 {
                let o = resource_offer(k.address(), me, expiry);
                ("resource_offers", serde_json::to_vec(&SignedResourceOffer::sign(o, k, &domain).await.expect("sign")))
            } else {
                let spec = spec(i);
                let o = job_offer(k.address(), me, &spec, expiry);
                ("job_offers", serde_json::to_vec(&SignedJobOffer::sign(o, spec, k, &domain).await.expect("sign")))
            });
        }
        let statuses: Vec<u16> = futures_util::stream::iter(bodies)
            .map(|(route, body)| {
                let (http, url) = (http.clone(), format!("{}/api/v1/{route}", solver.url));
                async move {
                    let req = http.post(url).header("content-type", "application/json").body(body.expect("json"));
                    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let refused = statuses.iter().filter(|s| **s != 201).count();
        assert_eq!(refused, 0, "every offer is taken: {:?}", statuses.iter().find(|s| **s != 201));
    }
    while now_secs() <= last_expiry + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats: serde_json::Value =
        http.get(format!("{}/api/v1/stats", solver.url)).send().await.expect("stats").json().await.expect("json");
    assert_eq!(stats["open_resource_offers"], 0, "all expired: {stats}");
    assert_eq!(stats["open_job_offers"], 0, "all expired: {stats}");
    solver.rss_mb()
}

/// An HTTP client whose connections come from `ip`.
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// One hostile client on `ip` until `stop`: junk signatures naming `victim`, unbacked
/// offers, oversized bodies, in turn; every answer counted in `answers` (status class
/// 4xx in `rejected`).
async fn flood(
    ip: Ipv4Addr,
    url: String,
    victim: Address,
    solver: Address,
    stop: Arc<AtomicBool>,
    rejected: Arc<AtomicU64>,
) {
    let http = client_from(ip);
    let stranger = PrivateKeySigner::random();
    let domain = dcn::protocol::domain(1337, Address::repeat_byte(0xde));
    let big = vec![b'x'; 2 << 20];
    // Refused for its escrow before its nonce is looked at, so one signature serves.
    let spec = spec(0);
    let o = job_offer(stranger.address(), solver, &spec, now_secs() + 600);
    let unbacked = SignedJobOffer::sign(o, spec, &stranger, &domain).await.expect("sign");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let req = match n % 3 {
            0 => {
                let id = B256::random();
                http.delete(format!("{url}/api/v1/job_offers/{id}"))
                    .header("x-dcn-account", victim.to_string())
                    .header("x-dcn-expiry", (now_secs() + 60).to_string())
                    .header("x-dcn-nonce", nonce().to_string())
                    .header("x-dcn-body-sha256", body_sha256(b"").to_string())
                    .header("x-dcn-signature", Bytes::from(vec![7u8; 65]).to_string())
            }
            1 => http.post(format!("{url}/api/v1/job_offers")).json(&unbacked),
            _ => http
                .post(format!("{url}/api/v1/resource_offers"))
                .header("content-type", "application/json")
                .body(big.clone()),
        };
        if let Ok(r) = req.send().await {
            if r.status().is_client_error() {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Idle WebSockets from `ip`: as many as the solver lets one address hold, and more.
async fn idle_sockets(
    ip: Ipv4Addr,
    addr: SocketAddr,
    victim: Address,
) -> Vec<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let mut held = vec![];
    for _ in 0..80 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).expect("bind");
        let Ok(stream) = socket.connect(addr).await else { continue };
        let url = format!("ws://{addr}/api/v1/events?address={victim}&since=0");
        if let Ok((ws, _)) = tokio_tungstenite::client_async(url, stream).await {
            held.push(ws);
        }
    }
    held
}

/// p99 of an honest client's requests during a flood, ms.
async fn honest_p99_under_flood() -> f64 {
    let honest = PrivateKeySigner::random();
    let solver = SolverProcess::start(&honest.address().to_string(), false);
    let client = SolverClient::connect(&solver.url).await.expect("solver answers");
    let (domain, me) = (client.domain(), client.info().solver);
    let addr: SocketAddr = solver.url.trim_start_matches("http://").parse().expect("address");
    let stop = Arc::new(AtomicBool::new(false));
    let rejected = Arc::new(AtomicU64::new(0));
    let mut sockets = vec![];
    let mut floods = vec![];
    for i in 0..FLOOD_ADDRESSES {
        let ip = Ipv4Addr::new(127, 0, 0, 2 + i);
        if i < 2 {
            sockets.push(idle_sockets(ip, addr, honest.address()).await);
        }
        for _ in 0..4 {
            floods.push(tokio::spawn(flood(
                ip,
                solver.url.clone(),
                honest.address(),
                me,
                stop.clone(),
                rejected.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let http = client_from(Ipv4Addr::LOCALHOST);
    let mut latencies = vec![];
    let end = Instant::now() + Duration::from_secs(FLOOD_SECS);
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    let mut n = 0;
    while Instant::now() < end {
        tick.tick().await;
        n += 1;
        let spec = spec(n);
        // Short-lived, so that its open offers stay under its limit of 100.
        let o = job_offer(honest.address(), me, &spec, now_secs() + 3);
        let signed = SignedJobOffer::sign(o, spec, &honest, &domain).await.expect("sign");
        let t = Instant::now();
        let r = http.post(format!("{}/api/v1/job_offers", solver.url)).json(&signed).send().await.expect("post");
        assert_eq!(r.status().as_u16(), 201, "the honest offer is taken: {}", r.text().await.unwrap_or_default());
        latencies.push(t.elapsed());
        let t = Instant::now();
        let r = http.get(format!("{}/api/v1/deals?party={}", solver.url, honest.address())).send().await.expect("list");
        assert_eq!(r.status().as_u16(), 200);
        latencies.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        let _ = f.await;
    }
    drop(sockets);
    assert!(rejected.load(Ordering::Relaxed) > 1000, "the flood was refused with 4xx");
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    p99.as_secs_f64() * 1000.0
}

fn main() {
    // As `dcn` does, before any thread starts.
    dcn::solver::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(run());
}

async fn run() {
    if std::env::var(CHILD).is_ok() {
        return child().await;
    }
    let mb = rss_100k().await;
    println!("solver_rss_mb_100k_offers {mb:.0} MB");
    let p99 = honest_p99_under_flood().await;
    println!("solver_honest_p99_ms_under_flood {p99:.1} ms");
}
