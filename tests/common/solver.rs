//! Solver test helpers: an in-process solver on `127.0.0.1:0` with RocksDB in a temp dir,
//! and offer builders signed by fresh keys.

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use dcn::chain::{ChainError, DealRef, DealView, Sent};
use dcn::clock::now_secs;
use dcn::protocol::SolverClient;
use dcn::protocol::{JobOffer, ResourceOffer, SignedJobOffer, SignedResourceOffer};
use dcn::solver::api::ApiLimits;
use dcn::solver::escrow::EscrowTable;
use dcn::solver::store::RocksStore;
use dcn::solver::{CoreConfig, Solver, SolverParams};
use dcn::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use std::sync::Arc;

/// A solver running in this process, stopped on drop.
pub struct TestSolver {
    pub solver: Solver,
    /// Every account's free escrow: unlimited unless a test sets it.
    pub escrow: Arc<EscrowTable>,
    pub client: SolverClient,
    pub key: PrivateKeySigner,
    pub dir: tempfile::TempDir,
    tasks: dcn::runtime::Tasks,
}

pub fn core_config(solver: Address) -> CoreConfig {
    CoreConfig {
        solver,
        chain_id: 1337,
        deals_contract: Address::repeat_byte(0xde),
        offer_max_ahead_secs: 3600,
        request_max_ahead_secs: 300,
        max_open_offers: 100,
        max_open_offers_total: 100_000,
        sign_timeout_secs: 60,
        create_timeout_secs: 300,
        result_retention_secs: 3600,
        min_mediators: 1,
        fault: None,
    }
}

/// How long the test solver uses an escrow read: short, so that tests see the watcher act.
pub fn escrow_ttl() -> std::time::Duration {
    std::time::Duration::from_millis(300)
}

pub fn limits() -> ApiLimits {
    ApiLimits {
        max_body_bytes: 64 * 1024,
        max_result_bytes: 1 << 20,
        rate_per_sec: 1000.0,
        rate_burst: 1000.0,
        ip_rate_per_sec: 10_000.0,
        ip_rate_burst: 10_000.0,
        max_stored_result_bytes: 1 << 30,
        max_subscriptions: 1000,
        max_subscriptions_per_address: 1000,
    }
}

impl TestSolver {
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// Starts a solver after `tweak` adjusted its policy and limits.
    pub async fn start_with(tweak: impl FnOnce(&mut CoreConfig, &mut ApiLimits)) -> Self {
        Self::start_full(tweak, None).await
    }

    /// Starts a solver that reads deal states from `chain` when a request arrives before
    /// its (absent) chain follower could have seen them.
    pub async fn start_with_chain(chain: Arc<dyn dcn::chain::DealsChain>) -> Self {
        Self::start_full(|_, _| {}, Some(chain)).await
    }

    async fn start_full(
        tweak: impl FnOnce(&mut CoreConfig, &mut ApiLimits),
        chain: Option<Arc<dyn dcn::chain::DealsChain>>,
    ) -> Self {
        let key = PrivateKeySigner::random();
        let dir = tempfile::tempdir().unwrap();
        let mut core = core_config(key.address());
        let mut limits = limits();
        tweak(&mut core, &mut limits);
        let store = RocksStore::open(&dir.path().join("db")).unwrap();
        let escrow = Arc::new(EscrowTable::new(U256::MAX));
        let params = SolverParams {
            core,
            limits,
            store: Arc::new(store),
            results_dir: dir.path().join("results"),
            escrow: escrow.clone(),
            escrow_ttl: escrow_ttl(),
            chain,
            genesis_hash: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The supervisor's tasks; dropping the test solver cancels them.
        let tasks = dcn::runtime::Supervisor::new().tasks();
        let solver = Solver::start(params, listener, &tasks).unwrap();
        let client = SolverClient::connect(&solver.url()).await.unwrap();
        Self { solver, escrow, client, key, dir, tasks }
    }

    pub fn url(&self) -> String {
        self.solver.url()
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// As the chain follower does when deal `id` is created on chain.
    pub fn created_on_chain(&self, id: B256) {
        let state = dcn::protocol::records::DealStatus::Created;
        self.solver.state.core().chain_state(id, state, dcn::clock::now_ms()).unwrap();
    }
}

impl Drop for TestSolver {
    fn drop(&mut self) {
        self.tasks.token().cancel();
    }
}

pub fn random_nonce() -> U256 {
    U256::from_be_bytes(B256::random().0)
}

/// A one-slot CPU offer of 2 cores / 2 GB at price 10, trusting mediator 0xee…
pub fn resource_offer(provider: &PrivateKeySigner, solver: Address) -> ResourceOffer {
    ResourceOffer {
        provider: provider.address(),
        solver,
        cpu: 2000,
        ramMb: 2048,
        gpus: 0,
        vramMb: 0,
        diskMb: 1000,
        slots: 1,
        price: U256::from(10),
        collateral: U256::from(20),
        mediators: vec![mediator()],
        modules: vec![],
        maxTimeoutSecs: 3600,
        maxSpecBytes: 65_536,
        maxOutputBytes: 1 << 30,
        expiry: now_secs() + 600,
        nonce: random_nonce(),
    }
}

pub fn mediator() -> Address {
    Address::repeat_byte(0xee)
}

pub fn spec(message: &str) -> JobSpec {
    JobSpec {
        module: ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "ab".into() },
        image: "dcn.local/cowsay:1.0".into(),
        argv: vec!["/usr/games/cowsay".into(), message.into()],
        env: Default::default(),
        resources: Resources { cpu: 1000, ram_mb: 256, ..Default::default() },
        network: NetworkPolicy::None,
        timeout_secs: 30,
        outputs: vec![],
        success_exit_codes: vec![],
        run_as_root: false,
    }
}

/// A job offer for `spec`, paying at most 100.
pub fn job_offer(creator: &PrivateKeySigner, solver: Address, spec: &JobSpec) -> JobOffer {
    JobOffer {
        jobCreator: creator.address(),
        solver,
        jobHash: spec.content_hash(),
        maxPrice: U256::from(100),
        mediationFee: U256::from(1),
        auditFee: U256::from(1),
        auditPpm: 1_000_000,
        mediators: vec![mediator()],
        resultTimeout: 120,
        judgeTimeout: 120,
        mediationTimeout: 120,
        expiry: now_secs() + 600,
        nonce: random_nonce(),
    }
}

pub async fn sign_resource(o: ResourceOffer, key: &PrivateKeySigner, client: &SolverClient) -> SignedResourceOffer {
    SignedResourceOffer::sign(o, key, &client.domain()).await.unwrap()
}

pub async fn sign_job(o: JobOffer, spec: JobSpec, key: &PrivateKeySigner, client: &SolverClient) -> SignedJobOffer {
    SignedJobOffer::sign(o, spec, key, &client.domain()).await.unwrap()
}

/// A chain that only answers what state each deal is in (what the test set), and refuses
/// every transaction: for the solver, which only reads deal states.
#[derive(Default)]
pub struct DealStates {
    states: std::sync::Mutex<std::collections::HashMap<B256, dcn::chain::DealState>>,
    reads: std::sync::atomic::AtomicUsize,
    /// What `createDeal` of each deal would do (unset: it would go through).
    creations: std::sync::Mutex<std::collections::HashMap<B256, dcn::chain::CreateCheck>>,
    checks: std::sync::atomic::AtomicUsize,
}

impl DealStates {
    /// `createDeal` of deal `id` would do `what` (as the contract would decide).
    pub fn set_creation(&self, id: B256, what: dcn::chain::CreateCheck) {
        self.creations.lock().unwrap().insert(id, what);
    }

    /// How many times the solver asked what `createDeal` would do.
    pub fn checks(&self) -> usize {
        self.checks.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set(&self, id: B256, state: dcn::chain::DealState) {
        self.states.lock().unwrap().insert(id, state);
    }

    /// How many deal states were read.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl dcn::chain::DealsChain for DealStates {
    fn account(&self) -> Address {
        Address::ZERO
    }
    async fn state(&self, id: B256) -> Result<DealView, ChainError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let state = self.states.lock().unwrap().get(&id).copied().unwrap_or(dcn::chain::DealState::None);
        Ok(DealView { state, ..DealView::none() })
    }
    async fn deal(&self, deal: &DealRef) -> Result<DealView, ChainError> {
        self.state(deal.id).await
    }
    async fn now(&self) -> Result<u64, ChainError> {
        Ok(now_secs())
    }
    async fn block_time(&self) -> Result<u64, ChainError> {
        Ok(now_secs())
    }
    async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(0)
    }
    async fn rules(&self) -> Result<dcn::chain::NetworkRules, ChainError> {
        Err(refused())
    }
    async fn ensure_free_escrow(&self, _: U256) -> Result<U256, ChainError> {
        Err(refused())
    }
    async fn ensure_bond(&self, _: U256) -> Result<U256, ChainError> {
        Err(refused())
    }
    async fn check_create(
        &self,
        deal: &dcn::chain::bindings::DcnDeals::Deal,
        _: &Bytes,
    ) -> Result<dcn::chain::CreateCheck, ChainError> {
        self.checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = dcn::chain::deals::deal_id(deal, &dcn::chain::deals::domain(1337, Address::repeat_byte(0xde)));
        Ok(self.creations.lock().unwrap().get(&id).cloned().unwrap_or(dcn::chain::CreateCheck::Passes))
    }
    async fn create_deal(&self, _: &dcn::chain::bindings::DcnDeals::Deal, _: Bytes) -> Result<Sent, ChainError> {
        Err(refused())
    }
    async fn submit_result(&self, _: &DealRef, _: B256) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn accept_result(&self, _: &DealRef) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn challenge(&self, _: &DealRef) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn draw(&self, _: &DealRef) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn mediate(&self, _: &DealRef, _: bool) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn appeal(&self, _: &DealRef) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn draw_appeal(&self, _: &DealRef) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn rule_appeal(&self, _: &DealRef, _: bool) -> Result<B256, ChainError> {
        Err(refused())
    }
    async fn timeout(&self, _: &DealRef) -> Result<B256, ChainError> {
        Err(refused())
    }
}

fn refused() -> ChainError {
    ChainError::WouldRevert("the test chain sends no transactions".into())
}
