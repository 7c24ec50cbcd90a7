//! `dcn fund`.

use crate::chain::{self, accounts, units, Deployment, DevRole, FundPlan};
use crate::config::Settings;
use alloy::primitives::Address;
use clap::Args;
use eyre::WrapErr;

/// Top up service accounts with gas money and tokens from the admin account, then print
/// their balances. With no accounts given on a development network, funds the standard
/// development accounts (solver, mediator, provider, job creator) and the example
/// CowsayClient contract.
#[derive(Debug, Args)]
pub struct FundArgs {
    /// Account to fund; repeat for several [default: config fund.accounts]
    #[arg(long = "account", value_name = "ADDRESS")]
    pub accounts: Vec<Address>,
    /// Ether each account is topped up to [default: config fund.eth, 10]
    #[arg(long, value_name = "ETH")]
    pub eth: Option<String>,
    /// Tokens each account is topped up to [default: config fund.tokens, 10000]
    #[arg(long, value_name = "DCN")]
    pub tokens: Option<String>,
    /// Print the balances as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

impl FundArgs {
    /// Runs `dcn fund`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let net = settings.network()?;
        let deployment = Deployment::require(settings.data_dir(), &net.name)?;
        let eth = self.eth.as_deref().unwrap_or(&settings.fund.eth);
        let tokens = self.tokens.as_deref().unwrap_or(&settings.fund.tokens);
        let mut plan = FundPlan {
            token: deployment.contracts.token,
            eth: units::parse_amount(eth, "--eth").map_err(|e| eyre::eyre!(e))?,
            tokens: units::parse_amount(tokens, "--tokens").map_err(|e| eyre::eyre!(e))?,
            accounts: Vec::new(),
            token_only: Vec::new(),
        };
        let configured = if self.accounts.is_empty() { &settings.fund.accounts } else { &self.accounts };
        if !configured.is_empty() {
            plan.accounts = configured.iter().map(|a| ("account".to_string(), *a)).collect();
        } else if net.dev_accounts {
            plan.accounts = DevRole::ALL[1..].iter().map(|r| (r.name().to_string(), r.address())).collect();
            plan.token_only = vec![("cowsay-client".to_string(), deployment.contracts.cowsay_client)];
        } else {
            eyre::bail!(
                "no accounts to fund on network `{}`: pass --account ADDRESS (repeatable) or set fund.accounts",
                net.name
            );
        }
        let client = chain::connect(&net, accounts::admin_signer(settings, &net)?).await?;
        let rows = chain::fund(&client, &plan).await.wrap_err_with(|| format!("funding on network `{}`", net.name))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        println!("{:<14} {:<42} {:>12} {:>14}", "ROLE", "ACCOUNT", "ETH", "DCN");
        for r in rows {
            println!(
                "{:<14} {:<42} {:>12} {:>14}",
                r.label,
                r.account.to_string(),
                units::format_amount(r.eth),
                units::format_amount(r.tokens)
            );
        }
        Ok(())
    }
}
