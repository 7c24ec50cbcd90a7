//! `dcn jobs`: the deals `dcn run` bought with this account on this network, from its
//! journal (`jobcreator::journal`) with each deal's state read from the chain; and
//! `dcn jobs resume DEAL`, which takes up a deal whose `dcn run` was killed at any step and
//! follows it to its end (creating it first if it was signed but not yet created, while its
//! creation deadline allows).

use super::node::Account;
use super::run::{follow_to_end, report};
use crate::chain::{DealState, DealsChain, DevRole};
use crate::clock::now_secs;
use crate::config::Settings;
use crate::jobcreator::journal::{Ended, Journal};
use crate::jobcreator::{JobCreator, JobCreatorConfig, RunOverrides, TerminalProgress};
use crate::units::format_amount;
use alloy::primitives::B256;
use std::sync::Arc;

/// `dcn jobs`: one line per deal (or a JSON array), oldest first.
pub async fn list(settings: &Settings, json: bool) -> eyre::Result<()> {
    let account = Account::connect(settings, DevRole::JobCreator).await?;
    let journal = Journal::new(settings.data_dir(), account.client.network.chain_id, account.address());
    let chain = account.chain();
    let now = now_secs();
    let mut rows = vec![];
    for e in journal.all()? {
        let state = chain.state(e.deal.id).await?.state;
        let shown = match (state, &e.ended) {
            (DealState::None, Some(_)) => "never created".to_string(),
            (DealState::None, None) if now > e.deal.deal.createDeadline => "never created".to_string(),
            (DealState::None, None) => "signed".to_string(),
            (s, _) => s.name().to_string(),
        };
        let followed = e.ended.is_some() || state.is_final();
        rows.push((e, shown, followed));
    }
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(e, state, done)| {
                serde_json::json!({
                    "deal_id": e.deal.id,
                    "module": e.spec.module,
                    "provider": e.deal.deal.provider,
                    "price": format_amount(e.deal.deal.price),
                    "state": state,
                    "done": done,
                    "placed_at": e.placed_at,
                    "results_dir": e.results_dir.join(e.deal.id.to_string()),
                    "summary": e.ended.as_ref().map(|x| x.summary.clone()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("no deals bought with {} on network `{}` yet", account.address(), account.client.network.name);
        return Ok(());
    }
    println!("{:<66}  {:<16}  {:<22}  {:>10}  {:>8}", "DEAL", "MODULE", "STATE", "PRICE", "PLACED");
    for (e, state, done) in &rows {
        let state = if *done { state.clone() } else { format!("{state} (resumable)") };
        println!(
            "{:<66}  {:<16}  {:<22}  {:>10}  {:>8}",
            e.deal.id,
            e.spec.module.name.escape_debug().to_string(),
            state,
            format!("{} DCN", format_amount(e.deal.deal.price)),
            ago(now.saturating_sub(e.placed_at)),
        );
    }
    if rows.iter().any(|(_, _, done)| !done) {
        eprintln!("`dcn jobs resume DEAL` follows an unfinished deal to its end");
    }
    Ok(())
}

/// `3 s`, `5 min`, `2 h`, `4 d` ago.
fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// `dcn jobs resume DEAL`: follows the recorded deal to its end and reports it like
/// `dcn run`.
pub async fn resume(settings: &Settings, deal: B256, json: bool, overrides: &RunOverrides) -> eyre::Result<()> {
    let cfg = JobCreatorConfig::resolve(settings, overrides)?;
    let account = Account::connect(settings, DevRole::JobCreator).await?;
    let journal = Journal::new(settings.data_dir(), account.client.network.chain_id, account.address());
    let mut entry = journal.load(deal)?;
    let solver = account.solver(cfg.solver.as_deref()).await?;
    let spec = entry.spec.clone();
    let outcome = super::one_shot("resume", move |tasks| async move {
        let _following = journal.follow(deal)?;
        let chain = account.chain();
        let creator = JobCreator {
            terms: cfg.terms,
            mediators: entry.deal.deal.mediators.clone(),
            results_dir: entry.results_dir.clone(),
            signer: account.signer.clone(),
            chain: chain.clone(),
            solver: Arc::new(solver),
            token: tasks.token().clone(),
            follow_audits: false,
        };
        let progress = TerminalProgress::new();
        if chain.state(deal).await?.state == DealState::None {
            // Killed between the match and `createDeal`: create it while its signature is
            // good; after that, nothing was ever locked.
            if chain.now().await? > entry.deal.deal.createDeadline {
                let summary = format!(
                    "deal {deal} was never created on chain and its creation deadline passed: nothing was locked"
                );
                entry.ended = Some(Ended { state: None, summary: summary.clone() });
                journal.save(&entry)?;
                eyre::bail!("{summary}");
            }
            let created = creator.create(entry.deal.clone(), &entry.spec).await.inspect_err(|_| progress.fail())?;
            entry.create_tx = Some(created.create_tx);
            entry.since_block = created.created_block;
            journal.save(&entry)?;
        }
        follow_to_end(&creator, &journal, &mut entry, &progress).await
    })
    .await?;
    report(&outcome, &spec, json)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(super::ago(5), "5 s");
        assert_eq!(super::ago(600), "10 min");
        assert_eq!(super::ago(3 * 3_600), "3 h");
        assert_eq!(super::ago(5 * 86_400), "5 d");
    }
}
