//! A connection to the chain with a signing account, and the errors of talking to it.

use super::heads::HeadSource;
use super::queue::{is_nonce_error, Kind, LockError, Turn, TxQueue};
use crate::config::ResolvedNetwork;
use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::{Ethereum, EthereumWallet, TransactionBuilder};
use alloy::primitives::{keccak256, Address, B256};
use alloy::providers::{DynProvider, PendingTransactionBuilder, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for the node to answer the first request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Times a transaction is sent again with a fresh nonce after the node said its nonce was
/// taken (by a process of this account that shares no data directory with this one).
const NONCE_RETRIES: u32 = 8;

/// The longest time between two looks for a transaction's receipt.
const RECEIPT_POLL_MAX: Duration = Duration::from_secs(1);

/// Failed reads of a receipt in a row before the wait gives up.
const RECEIPT_READ_RETRIES: u32 = 5;

/// Failures talking to the chain. The variants are what a caller decides on: the node is
/// down, it is the wrong chain, an account needs money, or a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node did not answer.
    #[error(
        "cannot reach the chain at {url}: {reason}. Is the node running? For the local development chain \
         start `dcn dev`, or anvil on port 8546 with chain id 1337; otherwise check --rpc-url / WEB3_RPC_URL"
    )]
    Unreachable {
        /// The RPC URL, credentials redacted.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The node serves another chain than the profile says.
    #[error(
        "chain id mismatch at {url}: the node reports {actual} but network `{network}` expects {expected}; \
         pick the right --network, or set --chain-id / WEB3_CHAIN_ID to {actual} if this node is intended"
    )]
    ChainIdMismatch {
        /// The RPC URL, credentials redacted.
        url: String,
        /// Network name.
        network: String,
        /// What the profile says.
        expected: u64,
        /// What the node says.
        actual: u64,
    },
    /// An account that has to pay gas has no ether.
    #[error("account {account} has no ETH on network `{network}` to pay for gas: send it some first")]
    NoFunds {
        /// The account.
        account: Address,
        /// Network name.
        network: String,
    },
    /// An account lacks the tokens it has to put into escrow.
    #[error(
        "account {account} holds {have} DCN but needs {need} more in escrow on network `{network}`: send it \
         tokens (on a development network: `dcn fund --account {account}`)"
    )]
    TokensShort {
        /// The account.
        account: Address,
        /// Its token balance (decimal).
        have: String,
        /// What it must deposit (decimal).
        need: String,
        /// Network name.
        network: String,
    },
    /// A read or a transaction failed (a contract's refusal named, with what to do).
    #[error("{what} failed: {}", super::reverts::explain(source))]
    Call {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// A transaction was mined but reverted.
    #[error("{what} reverted on chain (transaction {tx})")]
    Reverted {
        /// What was being done.
        what: String,
        /// Its hash.
        tx: B256,
    },
    /// The chain answered with a value this dcn does not know.
    #[error(transparent)]
    Unknown(#[from] super::state::UnknownValue),
    /// A plain RPC request failed.
    #[error("{what} failed: {source}")]
    Rpc {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: Box<alloy::transports::TransportError>,
    },
    /// `createDeal` reverts by the provider's doing: its signature, its escrow, or it
    /// cancelled the deal. Nothing was sent.
    #[error("the provider's signed deal cannot be created: {0}")]
    ProviderFault(super::deals::ProviderFault),
    /// A transaction the contract would refuse, caught before sending; says what to change.
    #[error("{0}")]
    WouldRevert(String),
    /// This account's turn to send could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl ChainError {
    /// A contract call or transaction `what` failed with `source`.
    pub fn call(what: impl Into<String>, source: alloy::contract::Error) -> Self {
        Self::Call { what: what.into(), source: Box::new(source) }
    }

    /// A plain RPC request `what` failed with `source`.
    pub fn rpc(what: impl Into<String>, source: alloy::transports::TransportError) -> Self {
        Self::Rpc { what: what.into(), source: Box::new(source) }
    }
}

/// A provider that signs with one account, checked to be on the expected chain.
#[derive(Clone)]
pub struct ChainClient {
    /// The provider; its wallet signs as [`ChainClient::from`].
    pub provider: DynProvider,
    /// The signing account.
    pub from: Address,
    /// The network it is connected to.
    pub network: ResolvedNetwork,
    /// This account's turns to send.
    pub queue: TxQueue,
    /// The node's new blocks, for waits that end when the chain changes.
    pub heads: Arc<HeadSource>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("from", &self.from)
            .field("network", &self.network.name)
            .field("url", &self.network.display_url())
            .finish()
    }
}

/// Connects to `net` signing with `signer`, and checks the chain id.
pub async fn connect(net: &ResolvedNetwork, signer: PrivateKeySigner) -> Result<ChainClient, ChainError> {
    let from = signer.address();
    let unreachable = |reason: String| ChainError::Unreachable { url: net.display_url(), reason };
    let builder = ProviderBuilder::new().wallet(EthereumWallet::from(signer));
    let provider = tokio::time::timeout(CONNECT_TIMEOUT, builder.connect(&net.rpc_url))
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let actual = tokio::time::timeout(CONNECT_TIMEOUT, provider.get_chain_id())
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    if actual != net.chain_id {
        return Err(ChainError::ChainIdMismatch {
            url: net.display_url(),
            network: net.name.clone(),
            expected: net.chain_id,
            actual,
        });
    }
    let queue = TxQueue::in_process(net.chain_id, from);
    let heads = HeadSource::new(&net.rpc_url);
    Ok(ChainClient { provider: provider.erased(), from, network: net.clone(), queue, heads })
}

impl ChainClient {
    /// Shares this account's turns to send with every dcn process using `data_dir`.
    pub fn sharing_turns_in(mut self, data_dir: &Path) -> Self {
        self.queue = self.queue.shared_in(data_dir);
        self
    }

    /// Waits for this account's escrow turn: hold it from reading the free escrow until the
    /// transaction that locks it is mined.
    pub async fn escrow_turn(&self) -> Result<Turn, ChainError> {
        Ok(self.queue.turn(Kind::Escrow).await?)
    }

    /// Sends a contract transaction, waits for its receipt and fails if it reverted.
    pub async fn send<P: Provider, D: CallDecoder>(
        &self,
        what: &str,
        call: CallBuilder<P, D>,
    ) -> Result<TransactionReceipt, ChainError> {
        self.send_request(what, call.into_transaction_request()).await
    }

    /// Sends `tx` in this account's turn, waits for its receipt and fails if it reverted.
    pub async fn send_request(&self, what: &str, tx: TransactionRequest) -> Result<TransactionReceipt, ChainError> {
        let pending = self.broadcast(what, tx).await?;
        let receipt = self.receipt(what, *pending.tx_hash()).await?;
        if !receipt.status() {
            return Err(ChainError::Reverted { what: what.to_string(), tx: receipt.transaction_hash });
        }
        Ok(receipt)
    }

    /// Waits for the receipt of transaction `hash`: looks at once (a node that mines on
    /// demand has it already), then again at each new block, and at least every
    /// [`RECEIPT_POLL_MAX`] (alloy's own wait looks every 250 ms, 7 s on a remote node).
    /// A node that fails to answer a few times in a row is asked again: the transaction was
    /// sent, and a caller that took the failure for the transaction's might send it twice.
    async fn receipt(&self, what: &str, hash: B256) -> Result<TransactionReceipt, ChainError> {
        let mut heads = self.heads.heads();
        let mut pause = Duration::from_millis(10);
        let mut failures = 0;
        loop {
            heads.mark_seen();
            match self.provider.get_transaction_receipt(hash).await {
                Ok(Some(receipt)) => return Ok(receipt),
                Ok(None) => failures = 0,
                Err(source) if failures < RECEIPT_READ_RETRIES => {
                    failures += 1;
                    tracing::debug!(what, tx = %hash, error = %source, "reading the receipt failed; asking again");
                }
                Err(source) => {
                    return Err(ChainError::rpc(format!("reading the receipt of {what} (transaction {hash})"), source))
                }
            }
            heads.wait(pause).await;
            pause = (pause * 2).min(RECEIPT_POLL_MAX);
        }
    }

    /// Broadcasts `tx` with the account's next nonce, in its turn; the turn ends once the
    /// node accepted it, so the next sender reads the nonce after it.
    async fn broadcast(
        &self,
        what: &str,
        tx: TransactionRequest,
    ) -> Result<PendingTransactionBuilder<Ethereum>, ChainError> {
        let _turn = self.queue.turn(Kind::Nonce).await?;
        let mut retries = 0;
        loop {
            let nonce = self
                .provider
                .get_transaction_count(self.from)
                .pending()
                .await
                .map_err(|source| ChainError::rpc(format!("reading the account's nonce for {what}"), source))?;
            match self.provider.send_transaction(tx.clone().with_nonce(nonce)).await {
                Ok(pending) => return Ok(pending),
                Err(e) if retries < NONCE_RETRIES && is_nonce_error(&e.to_string()) => {
                    retries += 1;
                    tracing::debug!(what, nonce, error = %e, "nonce taken meanwhile; sending again with the next");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(retries))).await;
                }
                Err(e) => return Err(ChainError::call(what, e.into())),
            }
        }
    }

    /// Fails with [`ChainError::NoFunds`] unless the signing account has some ether.
    pub async fn require_gas_money(&self) -> Result<(), ChainError> {
        let balance = self.eth_balance(self.from).await?;
        if balance.is_zero() {
            return Err(ChainError::NoFunds { account: self.from, network: self.network.name.clone() });
        }
        Ok(())
    }

    /// Ether balance of `account` in wei.
    pub async fn eth_balance(&self, account: Address) -> Result<alloy::primitives::U256, ChainError> {
        self.provider
            .get_balance(account)
            .await
            .map_err(|source| ChainError::rpc(format!("reading the balance of {account}"), source))
    }

    /// keccak256 of the code at `address` (the empty-code hash if there is none).
    pub async fn code_hash(&self, address: Address) -> Result<B256, ChainError> {
        Ok(keccak256(self.code(address).await?))
    }

    /// The code at `address` (empty where there is no contract).
    pub async fn code(&self, address: Address) -> Result<alloy::primitives::Bytes, ChainError> {
        self.provider
            .get_code_at(address)
            .await
            .map_err(|source| ChainError::rpc(format!("reading the code at {address}"), source))
    }

    /// The hash of block 0 (`None` if the node has none): the same at every node of one
    /// chain, and different for two development chains started apart, whose first blocks
    /// carry their start times.
    pub async fn genesis_hash(&self) -> Result<Option<B256>, ChainError> {
        let block = self
            .provider
            .get_block_by_number(0.into())
            .await
            .map_err(|source| ChainError::rpc("reading the chain's first block", source))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(|source| ChainError::rpc("reading the block number", source))
    }
}
