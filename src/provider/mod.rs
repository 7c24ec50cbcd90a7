//! `dcn provider`: sells this machine's time. It posts a resource offer to the solver and
//! keeps it fresh, checks and signs the deals the solver proposes, runs each created
//! deal's job through the [`crate::executor::Executor`], uploads the result bundle,
//! submits its hash on chain and collects the payment (after acceptance, or by calling
//! `timeout` once the judge deadline passed).
//!
//! Read in this order: [`config`] (what it is told), [`service`] (what it is built from
//! and its main loop), [`offers`] (the offer and the proposals, checked by [`terms`]),
//! [`deal`] (a signed deal's record and the pure decision of its next step) and `drive.rs`
//! (the loop that performs those steps). [`machine`] sizes the offer from the machine.
//!
//! Every signed deal is a [`JobRecord`] in the provider's store, written before each step
//! that has an effect outside the process, and the chain is read before every transaction:
//! a provider killed at any point resumes each deal from its stage and sends nothing twice.

pub mod config;
pub mod deal;
mod drive;
pub mod machine;
mod offers;
pub mod service;
pub mod terms;
#[cfg(test)]
mod tests;

pub use config::{ProviderConfig, ProviderOverrides};
pub use deal::{Ending, JobRecord, Stage};
pub use drive::sha256_file;
pub use service::{Offering, ProviderDeps, ProviderError, ProviderService};
