//! Everything that touches the EVM chain: contract bindings, connecting with a signer,
//! the contracts' enums as types, what the roles need of the chain as traits, the
//! development accounts, deploying and funding.
//!
//! Start at [`api`] (the traits [`DealsChain`], [`BoardChain`], [`LogSource`] and their
//! alloy implementation [`AlloyChain`]), [`state`] ([`DealState`]), [`connect`] and [`deploy`].

pub mod accounts;
pub mod alloy;
pub mod anvil;
pub mod api;
pub mod bindings;
pub mod case;
pub mod client;
pub mod deals;
pub mod deploy;
pub mod deployment;
pub mod fund;
pub mod heads;
pub mod join;
pub mod queue;
pub mod reverts;
pub mod state;

pub use accounts::{DevRole, DEV_MNEMONIC};
pub use alloy::AlloyChain;
pub use api::DELIVERY_GRACE_SECS;
pub use api::{BoardChain, DealRef, DealView, DealsChain, LogSource, NetworkRules, RequestView, Sent};
pub use client::{connect, ChainClient, ChainError};
pub use deals::{CreateCheck, ProviderFault};
pub use deploy::{deploy, DeployOutcome};
pub use deployment::{Contracts, Deployment};
pub use fund::{fund, FundPlan, FundRow};
pub use heads::{HeadSource, Heads};
pub use join::{locate, JoinError};
pub use state::{DealState, RequestStatus, Role};
