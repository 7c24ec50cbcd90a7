//! The admin commands: `dcn deploy` and `dcn fund` (with the admin key), `dcn keys` and
//! `dcn config show`. Each does its work and prints its result.

use crate::chain::{self, accounts, deploy::DeployOptions, Deployment, DevRole, FundPlan, Role};
use crate::config::Settings;
use crate::units::{format_amount, parse_amount};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use eyre::WrapErr;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Deploys (or reuses) the contracts of the network in `settings`. `operator` overrides
/// the job board operator; `json` prints the record as JSON.
pub async fn deploy(
    settings: &Settings,
    force: bool,
    operator: Option<Address>,
    json: bool,
) -> eyre::Result<Deployment> {
    let min_timeout = settings.deploy.job_board_min_timeout_secs;
    if min_timeout == 0 || min_timeout > 30 * 24 * 3600 {
        eyre::bail!("deploy.job_board_min_timeout_secs is {min_timeout}: give 1 to 2592000 seconds (30 days)");
    }
    let min_payment = parse_amount(&settings.deploy.job_board_min_payment, "deploy.job_board_min_payment")?;
    if min_payment.is_zero() {
        eyre::bail!("deploy.job_board_min_payment is 0: a job-board request must pay something; give at least 0.000000000000000001");
    }
    let net = settings.network()?;
    let admin = accounts::admin_signer(settings, &net)?;
    let admin_address = admin.address();
    let client = chain::connect(&net, admin).await?.sharing_turns_in(settings.data_dir());
    let operator = operator.or(settings.deploy.job_board_operator).unwrap_or(if net.dev_accounts {
        DevRole::Solver.address()
    } else {
        admin_address
    });
    let options = DeployOptions {
        force,
        job_board_operator: operator,
        cowsay_price: parse_amount(&settings.deploy.cowsay_price, "deploy.cowsay_price")?,
        job_board_min_payment: min_payment,
        job_board_min_timeout_secs: min_timeout,
        // On a development network the development solver and mediator are the network's
        // own; elsewhere the owner approves with `dcn registry approve`.
        approve: if net.dev_accounts {
            vec![(Role::Solver, DevRole::Solver.address()), (Role::Mediator, DevRole::Mediator.address())]
        } else {
            Vec::new()
        },
        rules: deploy_rules(settings, net.dev_accounts)?,
    };
    let outcome = chain::deploy(&client, settings.data_dir(), &options)
        .await
        .wrap_err_with(|| format!("deploying to network `{}`", net.name))?;
    let d = outcome.deployment;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(d);
    }
    let verb = if outcome.reused { "reused" } else { "deployed" };
    println!("{verb} on network `{}` (chain id {}, block {})", d.network, d.chain_id, d.block);
    for (name, address) in d.contracts.named() {
        println!("  {name:<13} {address}");
    }
    println!("  job board operator {}", d.job_board_operator);
    println!("record: {}", Deployment::path(settings.data_dir(), &d.network).display());
    println!();
    print!("{}", profile_text(&d.network, &net.display_url(), d.chain_id, d.contracts.registry));
    if !net.dev_accounts {
        println!();
        println!("Clients trust only the solvers and mediators they name or that the registry's owner approves:");
        println!("  dcn registry approve solver 0x…     dcn registry approve mediator 0x…");
    }
    Ok(d)
}

/// How another machine joins the network: the three values, as flags and as a profile.
pub fn profile_text(network: &str, rpc_url: &str, chain_id: u64, registry: Address) -> String {
    format!(
        "Join this network from any machine with three values (no file to copy; the RPC URL must be one that machine \
         reaches):\n  dcn provider --network {network} --rpc-url {rpc_url} --chain-id {chain_id} --registry \
         {registry}\nor as a profile in ~/.dcn/config.toml:\n  [networks.{network}]\n  rpc_url = \"{rpc_url}\"\n  chain_id = \
         {chain_id}\n  registry = \"{registry}\"\n"
    )
}

/// A role in the registry, as `dcn registry` names it.
pub use crate::chain::Role as RegistryRole;

/// Prints `role`'s entries in the network's registry: the registered ones (`approved`:
/// the approved ones), `limit` from position `offset`. Needs no key.
pub async fn registry_list(
    settings: &Settings,
    role: Role,
    approved: bool,
    offset: usize,
    limit: usize,
    json: bool,
) -> eyre::Result<()> {
    use crate::protocol::registry::{list, Listing};
    let net = settings.network()?;
    // Reads only: any key will do, and none is needed.
    let client = chain::connect(&net, PrivateKeySigner::random()).await?;
    let deployment = chain::locate(&client, settings.data_dir()).await?;
    let which = if approved { Listing::Approved } else { Listing::Registered };
    let rows = list(&client, deployment.contracts.registry, role, which, offset, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        let what = if approved { "approved" } else { "registered" };
        let from = if offset > 0 { format!(" from position {offset}") } else { String::new() };
        println!("no {} {what} on network `{}`{from}", role.name(), net.name);
        return Ok(());
    }
    println!("{:<42} {:<10} {:<10} URL", "ACCOUNT", "APPROVED", "REGISTERED");
    for r in rows {
        let yes = |b: bool| if b { "yes" } else { "no" };
        // Anyone writes these URLs: never send their control characters to the terminal.
        println!(
            "{:<42} {:<10} {:<10} {}",
            r.account.to_string(),
            yes(r.approved),
            yes(r.registered),
            printable(&r.url)
        );
    }
    Ok(())
}

/// `text` with control characters (terminal escapes, newlines) and bidirectional overrides
/// (which make a URL show as another) written as escapes.
fn printable(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    text.chars().map(|c| if hidden(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Approves (or, with `approved` false, revokes) `accounts` in `role` with the admin key,
/// which must be the registry's owner.
pub async fn registry_approve(
    settings: &Settings,
    role: Role,
    accounts: &[Address],
    approved: bool,
) -> eyre::Result<()> {
    let net = settings.network()?;
    let client =
        chain::connect(&net, accounts::admin_signer(settings, &net)?).await?.sharing_turns_in(settings.data_dir());
    let deployment = chain::locate(&client, settings.data_dir()).await?;
    let registry = deployment.contracts.registry;
    let owner = chain::bindings::DcnRegistry::new(registry, &client.provider)
        .owner()
        .call()
        .await
        .map_err(|e| chain::ChainError::call("reading DcnRegistry.owner", e))?;
    if owner != client.from {
        eyre::bail!(
            "DcnRegistry {registry} is owned by {owner}, not by the admin key's account {}: run this with the \
             owner's key (keys.admin_private_key, or DCN_KEYS__ADMIN_PRIVATE_KEY)",
            client.from
        );
    }
    let pairs: Vec<_> = accounts.iter().map(|a| (role, *a)).collect();
    let sent = chain::deploy::set_approvals(&client, registry, &pairs, approved).await?;
    let verb = if approved { "approved" } else { "not approved" };
    println!("{} account(s) {verb} as {} on network `{}` ({sent} changed)", accounts.len(), role.name(), net.name);
    Ok(())
}

/// Tops up `accounts` (else `fund.accounts`, else on a development network the development
/// accounts and the example client) to `eth` and `tokens` (else the settings'), and prints
/// the balances.
pub async fn fund(
    settings: &Settings,
    accounts: &[Address],
    eth: Option<&str>,
    tokens: Option<&str>,
    json: bool,
) -> eyre::Result<()> {
    let net = settings.network()?;
    let client =
        chain::connect(&net, accounts::admin_signer(settings, &net)?).await?.sharing_turns_in(settings.data_dir());
    let deployment = chain::locate(&client, settings.data_dir()).await?;
    let mut plan = FundPlan {
        token: deployment.contracts.token,
        eth: parse_amount(eth.unwrap_or(&settings.fund.eth), "fund.eth")?,
        tokens: parse_amount(tokens.unwrap_or(&settings.fund.tokens), "fund.tokens")?,
        accounts: Vec::new(),
        token_only: Vec::new(),
    };
    let configured = if accounts.is_empty() { &settings.fund.accounts[..] } else { accounts };
    if !configured.is_empty() {
        plan.accounts = configured.iter().map(|a| ("account".to_string(), *a)).collect();
    } else if net.dev_accounts {
        plan.accounts = DevRole::ALL[1..].iter().map(|r| (r.name().to_string(), r.address())).collect();
        if !deployment.contracts.cowsay_client.is_zero() {
            plan.token_only = vec![("cowsay-client".to_string(), deployment.contracts.cowsay_client)];
        }
    } else {
        eyre::bail!(
            "no accounts to fund on network `{}`: pass --account ADDRESS (repeatable) or set fund.accounts",
            net.name
        );
    }
    let rows = chain::fund(&client, &plan).await.wrap_err_with(|| format!("funding on network `{}`", net.name))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<14} {:<42} {:>12} {:>14}", "ROLE", "ACCOUNT", "ETH", "DCN");
    for r in rows {
        println!(
            "{:<14} {:<42} {:>12} {:>14}",
            r.label,
            r.account.to_string(),
            format_amount(r.eth),
            format_amount(r.tokens)
        );
    }
    Ok(())
}

/// `dcn keys new`: a new key in a file only its owner can read (never overwritten);
/// prints its address.
pub fn new_key(settings: &Settings, out: Option<PathBuf>) -> eyre::Result<()> {
    let signer = PrivateKeySigner::random();
    let address = signer.address();
    let path = out.unwrap_or_else(|| settings.data_dir().join("keys").join(format!("{address}.key")));
    write_private(&path, &format!("0x{}\n", hex::encode(signer.to_bytes())))
        .wrap_err_with(|| format!("writing the key to {}", path.display()))?;
    println!("{address}");
    eprintln!("key written to {} (mode 0600); use it with keys.key_file or --config", path.display());
    Ok(())
}

/// `dcn keys address`: the configured service key's address (never the key).
pub fn key_address(settings: &Settings) -> eyre::Result<()> {
    let net = settings.network()?;
    println!("{}", accounts::service_signer(settings, &net, DevRole::JobCreator)?.address());
    Ok(())
}

/// `dcn config show`: the settings after every layer, secrets redacted, and the network.
pub fn show_config(settings: &Settings) -> eyre::Result<()> {
    print!("{}", settings.to_redacted_toml());
    let net = settings.network()?;
    println!("\n# the network in use\n[resolved_network]\n{}", toml::to_string(&net)?);
    Ok(())
}

/// Creates `path` readable and writable by its owner only; refuses to overwrite.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The network's rules for deals, from `[deploy]`: a development network (one mediator)
/// asks one mediator per deal, others three unless told.
fn deploy_rules(settings: &Settings, dev: bool) -> eyre::Result<crate::chain::NetworkRules> {
    let d = &settings.deploy;
    let min_mediators = match d.min_mediators {
        0 if dev => 1,
        0 => 3,
        n => n,
    };
    if usize::from(min_mediators) > 16 {
        eyre::bail!("invalid deploy.min_mediators: {min_mediators} (a deal names at most 16 mediators)");
    }
    if d.min_audit_ppm > 1_000_000 {
        eyre::bail!("invalid deploy.min_audit_ppm: {} (at most 1000000, every result)", d.min_audit_ppm);
    }
    if d.appeal_window_secs == 0 || d.appeal_window_secs > 7 * 86_400 {
        eyre::bail!("invalid deploy.appeal_window_secs: {} (1 s to 7 days)", d.appeal_window_secs);
    }
    let positive = |text: &str, key: &str| -> eyre::Result<alloy::primitives::U256> {
        let v = parse_amount(text, key)?;
        if v.is_zero() {
            eyre::bail!("invalid {key}: {text} (must be more than 0: a free bond or appeal deters nobody)");
        }
        Ok(v)
    };
    Ok(crate::chain::NetworkRules {
        min_mediators,
        min_audit_ppm: d.min_audit_ppm,
        appeal_window: d.appeal_window_secs,
        min_mediation_fee: parse_amount(&d.min_mediation_fee, "deploy.min_mediation_fee")?,
        silence_slash: parse_amount(&d.silence_slash, "deploy.silence_slash")?,
        min_bond: positive(&d.min_bond, "deploy.min_bond")?,
        appeal_fee: positive(&d.appeal_fee, "deploy.appeal_fee")?,
    })
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn strangers_text_cannot_drive_the_terminal() {
        assert_eq!(printable("http://a.example:8080/x"), "http://a.example:8080/x");
        assert_eq!(printable("http://a\u{1b}[2J\u{1b}]0;pwned\u{7}\nb"), "http://a\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\nb");
        assert_eq!(printable("ünïcode"), "ünïcode");
        assert_eq!(printable("http://good\u{202e}moc.live"), "http://good\\u{202e}moc.live");
    }
}
