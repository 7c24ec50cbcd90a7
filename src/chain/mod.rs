//! Everything that touches the EVM chain: contract bindings, connecting with a signer,
//! the development accounts, deploying and funding. Start at [`connect`] and [`deploy`].

pub mod accounts;
pub mod anvil;
pub mod bindings;
pub mod client;
pub mod deals;
pub mod deploy;
pub mod deployment;
pub mod escrow;
pub mod fund;
pub mod logs;
pub mod units;

pub use accounts::{DevRole, DEV_MNEMONIC};
pub use client::{connect, ChainClient, ChainError};
pub use deploy::{deploy, DeployOutcome};
pub use deployment::{Contracts, Deployment};
pub use fund::{fund, FundPlan, FundRow};
