//! `dcn jobboard`'s composition root: checks that this account operates the board, builds a
//! job creator and plugs it into the job board's [`Buyer`] port, and runs the
//! [`JobBoardService`].

use super::node::{state_dir, Account};
use crate::chain::{BoardChain, DevRole};
use crate::config::Settings;
use crate::jobboard::{BuyError, Buyer, JobBoardConfig, JobBoardDeps, JobBoardOverrides, JobBoardService, Settlement};
use crate::jobcreator::{JobCreator, JobCreatorConfig, LogProgress, RunOverrides};
use crate::kv::KvStore;
use crate::protocol::records::{CreatedDeal, DealRecord};
use crate::protocol::SolverClient;
use crate::runtime::{Supervisor, Tasks};
use crate::types::JobSpec;
use alloy::primitives::U256;
use async_trait::async_trait;
use eyre::WrapErr;
use std::path::Path;
use std::sync::Arc;

/// The job creator behind the job board's [`Buyer`] port.
struct JobCreatorBuyer(JobCreator);

#[async_trait]
impl Buyer for JobCreatorBuyer {
    async fn buy(&self, spec: &JobSpec, max_price: U256) -> Result<DealRecord, BuyError> {
        // Never pay a provider more than the request pays the operator.
        let mut creator = self.0.clone();
        creator.terms.max_price = creator.terms.max_price.min(max_price);
        creator.match_deal(spec, &LogProgress).await.map_err(|e| BuyError(Box::new(e)))
    }

    async fn create(&self, deal: &DealRecord, spec: &JobSpec) -> Result<CreatedDeal, BuyError> {
        self.0.create(deal.clone(), spec).await.map_err(|e| BuyError(Box::new(e)))
    }

    async fn settle(&self, deal: &CreatedDeal) -> Result<Settlement, BuyError> {
        let outcome = self.0.finish(deal, false, &LogProgress).await.map_err(|e| BuyError(Box::new(e)))?;
        Ok(Settlement { state: outcome.state, result_hash: outcome.result_hash })
    }
}

/// Runs `dcn jobboard` until Ctrl-C or SIGTERM.
pub async fn run(settings: &Settings, overrides: &JobBoardOverrides) -> eyre::Result<()> {
    let cfg = JobBoardConfig::resolve(settings, overrides)?;
    let account = Account::connect(settings, DevRole::Solver).await?;
    let solver = account.solver(cfg.solver.as_deref()).await?;
    let supervisor = Supervisor::new();
    start(settings, cfg, &account, solver, &settings.data_dir().join("jobboard"), &supervisor.tasks()).await?;
    supervisor.run_to_end(true).await?;
    Ok(())
}

/// Builds the job board service operated by `account`, buying through `solver`, its state
/// in `dir`, and starts it as the task `jobboard` of `tasks`.
pub async fn start(
    settings: &Settings,
    cfg: JobBoardConfig,
    account: &Account,
    solver: SolverClient,
    dir: &Path,
    tasks: &Tasks,
) -> eyre::Result<()> {
    state_dir(dir)?;
    let chain = account.chain();
    let operator = chain.operator().await?;
    if operator != account.address() {
        eyre::bail!(
            "this account {} is not the job board's operator {operator}: run the job board service with the \
             operator's key (WEB3_PRIVATE_KEY), or have the owner call setOperator",
            account.address()
        );
    }
    let terms = JobCreatorConfig::resolve(settings, &RunOverrides::default())?;
    let creator = JobCreator {
        terms: terms.terms,
        mediators: account.mediators(&terms.mediators).await?,
        results_dir: dir.join("results"),
        signer: account.signer.clone(),
        chain: chain.clone(),
        solver: Arc::new(solver.retrying_until(tasks.token())),
        token: tasks.token().clone(),
    };
    let kv = KvStore::open(&dir.join("db")).wrap_err("opening the job board service's database")?;
    let deps = JobBoardDeps {
        board: chain.clone(),
        chain: chain.clone(),
        logs: chain,
        board_contract: account.deployment.contracts.job_board,
        buyer: Arc::new(JobCreatorBuyer(creator)),
        kv,
    };
    tasks.spawn_service("jobboard", JobBoardService::new(cfg, deps).run(tasks.clone()));
    Ok(())
}
