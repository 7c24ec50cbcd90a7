//! `dcn fund`: flags, then `app::admin::fund`.

use crate::config::Settings;
use alloy::primitives::Address;
use clap::Args;

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
        crate::app::admin::fund(settings, &self.accounts, self.eth.as_deref(), self.tokens.as_deref(), self.json).await
    }
}
