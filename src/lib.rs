//! dcn: a decentralized compute network in one binary.
//!
//! The crate is built in layers; a module uses only the layers below its own (checked by
//! `tests/layers.rs`), and the roles never use each other. `docs/ARCHITECTURE.md` draws
//! them and follows one job through them.
//!
//! | layer | modules | what it is |
//! |---|---|---|
//! | command edge | [`cli`], [`app`] | clap types → role configs; composition roots that build and run the services |
//! | roles | [`solver`], [`provider`], [`mediator`], [`jobcreator`], [`jobboard`] | each a config, pure decisions and a thin loop |
//! | runtime | [`runtime`] | the supervisor (named tasks, signals), the log follower, backoff |
//! | protocol | [`protocol`] | wire records, signing, the solver client, the registry |
//! | machines | [`chain`], [`executor`] | the EVM chain and the job sandbox, behind traits |
//! | foundations | [`config`], [`kv`], [`module`], [`bundle`] | settings, the roles' store, modules, result bundles |
//! | basics | [`types`], [`units`], [`clock`], [`secret`], [`logging`] | shared value types and helpers |
//!
//! `main.rs` parses the command line and calls into [`cli`]. Start reading at [`app`] for
//! how a command is put together, or at a role's `mod.rs`.

pub mod app;
pub mod bundle;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod executor;
pub mod jobboard;
pub mod jobcreator;
pub mod kv;
pub mod logging;
pub mod mediator;
pub mod module;
pub mod protocol;
pub mod provider;
pub mod runtime;
pub mod secret;
pub mod solver;
#[cfg(test)]
pub(crate) mod testing;
pub mod types;
pub mod units;
