//! dcn: a decentralized compute network in one binary.
//!
//! `main.rs` parses the command line and calls into [`cli`]; each subcommand builds its
//! settings from [`config`] and runs a service or an action. Chain access (bindings,
//! deploy, fund) lives in [`chain`]. See `DESIGN.md` in the shared docs for the whole
//! picture.

pub mod bundle;
pub mod chain;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod executor;
pub mod jobboard;
pub mod jobcreator;
pub mod logging;
pub mod mediator;
pub mod module;
pub mod node;
pub mod protocol;
pub mod provider;
pub mod secret;
pub mod solver;
pub mod store;
pub mod types;
