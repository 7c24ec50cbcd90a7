//! `dcn jobboard`'s composition root: checks that this account operates the board, builds a
//! job creator and plugs it into the job board's [`Buyer`] port, and runs the
//! [`JobBoardService`].

use super::node::{state_dir, Account};
use crate::chain::{BoardChain, DevRole};
use crate::config::Settings;
use crate::jobboard::{BuyError, Buyer, JobBoardConfig, JobBoardDeps, JobBoardOverrides, JobBoardService, Settlement};
use crate::jobcreator::{JobCreator, JobCreatorConfig, JobCreatorError, LogProgress, RunOverrides};
use crate::kv::KvStore;
use crate::protocol::records::{CreatedDeal, DealRecord};
use crate::protocol::SolverClient;
use crate::runtime::Tasks;
use crate::types::JobSpec;
use alloy::primitives::{Address, U256};
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

    async fn create(&self, deal: &DealRecord, spec: &JobSpec) -> Result<Option<CreatedDeal>, BuyError> {
        match self.0.create(deal.clone(), spec).await {
            Ok(created) => Ok(Some(created)),
            Err(JobCreatorError::ProviderFault { .. }) => Ok(None),
            Err(e) => Err(BuyError(Box::new(e))),
        }
    }

    async fn settle(&self, deal: &CreatedDeal) -> Result<Settlement, BuyError> {
        let outcome = self.0.finish(deal, false, &LogProgress).await.map_err(|e| BuyError(Box::new(e)))?;
        Ok(Settlement { state: outcome.state, result_hash: outcome.result_hash })
    }
}

/// Runs `dcn jobboard` until Ctrl-C or SIGTERM; until the network's owner approved a
/// solver and a mediator, it waits for them.
pub async fn run(settings: &Settings, overrides: &JobBoardOverrides) -> eyre::Result<()> {
    let cfg = JobBoardConfig::resolve(settings, overrides)?;
    let configured = configured_mediators(settings)?;
    let settings = settings.clone();
    super::serve(move |tasks| async move {
        let account = Account::connect(&settings, DevRole::Solver).await?;
        // A wrong key is said at once, not after the wait.
        require_operator(&account).await?;
        let Some(solver) = account.await_solver(cfg.solver.as_deref(), tasks.token()).await? else { return Ok(()) };
        let Some(mediators) = account.await_mediators(&configured, tasks.token()).await? else { return Ok(()) };
        start(&settings, cfg, &account, solver, mediators, &settings.data_dir().join("jobboard"), &tasks).await
    })
    .await
}

/// Fails unless `account` operates the job board.
async fn require_operator(account: &Account) -> eyre::Result<()> {
    let operator = account.chain().operator().await?;
    if operator != account.address() {
        eyre::bail!(
            "this account {} is not the job board's operator {operator}: run the job board service with the \
             operator's key (WEB3_PRIVATE_KEY), or have the owner call setOperator",
            account.address()
        );
    }
    Ok(())
}

/// The mediators configured for the job board's deals (`services.mediators`, as for
/// `dcn run`; empty: the ones the registry's owner approved).
pub fn configured_mediators(settings: &Settings) -> eyre::Result<Vec<Address>> {
    Ok(JobCreatorConfig::resolve(settings, &RunOverrides::default())?.mediators)
}

/// Builds the job board service operated by `account`, buying through `solver` deals that
/// name `mediators`, its state in `dir`, and starts it as the task `jobboard` of `tasks`.
pub async fn start(
    settings: &Settings,
    cfg: JobBoardConfig,
    account: &Account,
    solver: SolverClient,
    mediators: Vec<Address>,
    dir: &Path,
    tasks: &Tasks,
) -> eyre::Result<()> {
    state_dir(dir)?;
    require_operator(account).await?;
    let chain = account.chain();
    let terms = JobCreatorConfig::resolve(settings, &RunOverrides::default())?;
    let creator = JobCreator {
        terms: terms.terms,
        mediators,
        results_dir: dir.join("results"),
        signer: account.signer.clone(),
        chain: chain.clone(),
        solver: Arc::new(solver.retrying_until(tasks.token())),
        token: tasks.token().clone(),
        follow_audits: true,
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
