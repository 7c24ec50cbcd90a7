//! `dcn jobboard`: serves jobs that contracts request on chain (`DcnJobBoard`). It follows
//! `JobRequested`, buys each job on the network as a job creator and delivers the deal id
//! and result hash back with `deliverResult`, which pays the operator and calls the
//! requesting contract back.
//!
//! Read [`config`], then [`request`] (a request's record and the pure decision of its next
//! step), then [`service`] (the follower and the loop). The job board buys through its
//! [`Buyer`] port; the composition root plugs the job creator in. Requests name modules by
//! plain name only, and the provider's signed deal is recorded before `createDeal` is sent,
//! so a restart finds it on chain (or creates it, or buys again once it can no longer be
//! created) and never buys a request twice.

pub mod config;
pub mod request;
pub mod service;
#[cfg(test)]
mod tests;

pub use config::{JobBoardConfig, JobBoardOverrides};
pub use request::{BoardJob, BoardStage, Failure};
pub use service::{BuyError, Buyer, JobBoardDeps, JobBoardError, JobBoardService, Settlement};
