//! `dcn fund`: top up service accounts with gas money and tokens from the admin account.

use super::bindings::DcnToken;
use super::client::{ChainClient, ChainError};
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::rpc::types::TransactionRequest;

/// Who gets what. Each account is topped up to at least the target: running `fund`
/// twice sends nothing the second time.
#[derive(Debug, Clone)]
pub struct FundPlan {
    /// Token contract.
    pub token: Address,
    /// Target ether balance (wei) of each account that pays gas.
    pub eth: U256,
    /// Target token balance (base units).
    pub tokens: U256,
    /// (label, account) of accounts that get ether and tokens.
    pub accounts: Vec<(String, Address)>,
    /// (label, account) of contracts that only need tokens (the example client).
    pub token_only: Vec<(String, Address)>,
}

/// One line of the balance table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FundRow {
    /// Role or label.
    pub label: String,
    /// The account.
    pub account: Address,
    /// Ether balance after funding (wei).
    pub eth: U256,
    /// Token balance after funding (base units).
    pub tokens: U256,
    /// Ether sent now.
    pub sent_eth: U256,
    /// Tokens sent now.
    pub sent_tokens: U256,
}

/// Failures of `fund`.
#[derive(Debug, thiserror::Error)]
pub enum FundError {
    /// Talking to the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The admin lacks what it would have to send.
    #[error("the admin account {admin} holds {have} {unit} but funding needs {need} {unit}: fund the admin first")]
    AdminShort {
        /// The admin account.
        admin: Address,
        /// What it has (decimal).
        have: String,
        /// What it would send (decimal).
        need: String,
        /// ETH or DCN.
        unit: &'static str,
    },
}

/// Tops up every account of `plan` from `client`'s account and returns the balances.
pub async fn fund(client: &ChainClient, plan: &FundPlan) -> Result<Vec<FundRow>, FundError> {
    use crate::units::format_amount;
    client.require_gas_money().await?;
    let token = DcnToken::new(plan.token, &client.provider);
    let token_balance = |account: Address| {
        let token = token.clone();
        async move {
            token
                .balanceOf(account)
                .call()
                .await
                .map_err(|source| ChainError::call(format!("reading the token balance of {account}"), source))
        }
    };

    // Work out what is owed first, so that a short admin fails before sending anything.
    let mut owed = Vec::new();
    let (mut need_eth, mut need_tokens) = (U256::ZERO, U256::ZERO);
    let targets = plan.accounts.iter().map(|a| (a, true)).chain(plan.token_only.iter().map(|a| (a, false)));
    for ((label, account), gets_eth) in targets {
        let eth = if gets_eth { plan.eth.saturating_sub(client.eth_balance(*account).await?) } else { U256::ZERO };
        let tokens = plan.tokens.saturating_sub(token_balance(*account).await?);
        need_eth += eth;
        need_tokens += tokens;
        owed.push((label.clone(), *account, eth, tokens));
    }
    let admin_eth = client.eth_balance(client.from).await?;
    if admin_eth <= need_eth {
        return Err(FundError::AdminShort {
            admin: client.from,
            have: format_amount(admin_eth),
            need: format_amount(need_eth),
            unit: "ETH",
        });
    }
    let admin_tokens = token_balance(client.from).await?;
    if admin_tokens < need_tokens {
        return Err(FundError::AdminShort {
            admin: client.from,
            have: format_amount(admin_tokens),
            need: format_amount(need_tokens),
            unit: "DCN",
        });
    }

    let mut rows = Vec::new();
    for (label, account, eth, tokens) in owed {
        if !eth.is_zero() {
            let tx = TransactionRequest::default().with_to(account).with_value(eth);
            let what = format!("sending {} ETH to {label} {account}", format_amount(eth));
            client.send_request(&what, tx).await?;
        }
        if !tokens.is_zero() {
            let what = format!("sending {} DCN to {label} {account}", format_amount(tokens));
            client.send(&what, token.transfer(account, tokens)).await?;
        }
        tracing::info!(%label, %account, eth = %format_amount(eth), dcn = %format_amount(tokens), "funded");
        rows.push(FundRow {
            eth: client.eth_balance(account).await?,
            tokens: token_balance(account).await?,
            label,
            account,
            sent_eth: eth,
            sent_tokens: tokens,
        });
    }
    Ok(rows)
}
