//! `dcn mediator`: rules on challenged deals. It follows `DealChallenged` logs of deals
//! that name this account, draws the mediator when nobody has, and when drawn re-runs the
//! job on its own executor, compares the result hash with the one the provider put on
//! chain, and calls `mediate`.
//!
//! Read [`config`], then [`case`] (a challenge's record and the pure decision of its next
//! step), then [`service`] (the follower and the loop that performs the steps). Each
//! challenge is recorded before it is acted on and the chain is read before `mediate`, so
//! a restarted mediator resumes every open challenge and sends no verdict twice.

pub mod case;
pub mod config;
pub mod service;
#[cfg(test)]
mod tests;

pub use case::{Closed, Mediation};
pub use config::{MediatorConfig, MediatorOverrides};
pub use service::{MediatorDeps, MediatorError, MediatorService};
