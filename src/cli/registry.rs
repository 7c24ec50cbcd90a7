//! `dcn registry`: flags, then `app::admin::registry_*`.

use crate::app::admin::RegistryRole as Role;
use crate::config::Settings;
use alloy::primitives::Address;
use clap::{Args, Subcommand, ValueEnum};

/// See who registered on the network and whom its owner approved; approve or revoke (with
/// the registry owner's key, keys.admin_private_key). Clients trust only the solvers and
/// mediators they name (--solver, --mediators) or that the owner approved.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// List the registered services of a role, with whether the owner approved each
    List {
        /// The role
        role: RoleArg,
        /// List the approved accounts instead (registered or not)
        #[arg(long)]
        approved: bool,
        /// Start at this position of the listing
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Show at most this many
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Approve accounts in a role (the registry owner's key)
    Approve {
        /// The role
        role: RoleArg,
        /// The accounts
        #[arg(required = true, value_name = "ADDRESS")]
        accounts: Vec<Address>,
    },
    /// Stop approving accounts in a role (the registry owner's key)
    Revoke {
        /// The role
        role: RoleArg,
        /// The accounts
        #[arg(required = true, value_name = "ADDRESS")]
        accounts: Vec<Address>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Solver,
    Mediator,
    Provider,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Solver => Role::Solver,
            RoleArg::Mediator => Role::Mediator,
            RoleArg::Provider => Role::Provider,
        }
    }
}

impl RegistryArgs {
    /// Runs `dcn registry`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        use crate::app::admin;
        match self.command {
            RegistryCommand::List { role, approved, offset, limit, json } => {
                admin::registry_list(settings, role.into(), approved, offset, limit, json).await
            }
            RegistryCommand::Approve { role, accounts } => {
                admin::registry_approve(settings, role.into(), &accounts, true).await
            }
            RegistryCommand::Revoke { role, accounts } => {
                admin::registry_approve(settings, role.into(), &accounts, false).await
            }
        }
    }
}
