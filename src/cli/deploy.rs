//! `dcn deploy`.

use crate::chain::{self, accounts, deploy::DeployOptions, units, DevRole};
use crate::config::Settings;
use alloy::primitives::Address;
use clap::Args;
use eyre::WrapErr;

/// Deploy and wire the contracts with the admin key, and record the deployment in the
/// data dir. Reuses the recorded deployment when its code is still on chain.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Deploy anew even if the recorded deployment is still good
    #[arg(long)]
    pub force: bool,
    /// Print the deployment record as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Account allowed to deliver job-board results [default: config deploy.job_board_operator; on a dev network the solver account; else the admin]
    #[arg(long, value_name = "ADDRESS")]
    pub job_board_operator: Option<Address>,
}

impl DeployArgs {
    /// Runs `dcn deploy`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let net = settings.network()?;
        let admin = accounts::admin_signer(settings, &net)?;
        let admin_address = admin.address();
        let client = chain::connect(&net, admin).await?;
        let operator = self.job_board_operator.or(settings.deploy.job_board_operator).unwrap_or(if net.dev_accounts {
            DevRole::Solver.address()
        } else {
            admin_address
        });
        let options = DeployOptions {
            force: self.force,
            job_board_operator: operator,
            cowsay_price: units::parse_amount(&settings.deploy.cowsay_price, "deploy.cowsay_price")
                .map_err(|e| eyre::eyre!(e))?,
        };
        let outcome = chain::deploy(&client, settings.data_dir(), &options)
            .await
            .wrap_err_with(|| format!("deploying to network `{}`", net.name))?;
        let d = &outcome.deployment;
        if self.json {
            println!("{}", serde_json::to_string_pretty(d)?);
            return Ok(());
        }
        let verb = if outcome.reused { "reused" } else { "deployed" };
        println!("{verb} on network `{}` (chain id {}, block {})", d.network, d.chain_id, d.block);
        for (name, address) in d.contracts.named() {
            println!("  {name:<13} {address}");
        }
        println!("  job board operator {}", d.job_board_operator);
        println!("record: {}", chain::Deployment::path(settings.data_dir(), &d.network).display());
        Ok(())
    }
}
