//! `dcn deploy` and `dcn fund` against a real anvil, run as processes.

mod common;

use alloy::primitives::{utils::parse_ether, Address, U256};
use alloy::providers::Provider;
use common::{anvil, block_on, code_len, reader, stderr, Dcn};
use dcn::chain::bindings::{CowsayClient, DcnDeals, DcnJobBoard, DcnRegistry, DcnToken};
use dcn::chain::{Deployment, DevRole};

fn deploy_json(dcn: &Dcn, extra: &[&str]) -> Deployment {
    let mut args = vec!["deploy", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&dcn.ok(&args)).expect("deploy --json prints the record")
}

#[test]
fn deploy_puts_wired_contracts_on_chain_and_records_them() {
    let chain = anvil();
    let dcn = Dcn::new(chain.endpoint());
    let d = deploy_json(&dcn, &[]);

    assert_eq!((d.network.as_str(), d.chain_id), ("geth", 1337));
    assert_eq!(d.deployer, DevRole::Admin.address());
    for (name, address) in d.contracts.named() {
        assert!(code_len(&chain.endpoint(), address) > 0, "no code for {name} at {address}");
    }
    assert_eq!(Deployment::require(&dcn.data_dir(), "geth").unwrap(), d, "record written to the data dir");

    block_on(async {
        let p = reader(&chain.endpoint());
        let c = d.contracts;
        assert_eq!(DcnDeals::new(c.deals, &p).token().call().await.unwrap(), c.token);
        assert_eq!(DcnDeals::new(c.deals, &p).owner().call().await.unwrap(), d.deployer, "the deployer may skim");
        let board = DcnJobBoard::new(c.job_board, &p);
        assert_eq!(board.token().call().await.unwrap(), c.token);
        assert_eq!(board.operator().call().await.unwrap(), DevRole::Solver.address(), "dev operator is the solver");
        assert_eq!(board.minPayment().call().await.unwrap(), parse_ether("1").unwrap(), "requests pay at least 1 DCN");
        assert_eq!(board.minTimeout().call().await.unwrap(), 600, "and give at least 10 minutes");
        assert_eq!(CowsayClient::new(c.cowsay_client, &p).board().call().await.unwrap(), c.job_board);
        let supply = DcnToken::new(c.token, &p).balanceOf(d.deployer).call().await.unwrap();
        assert_eq!(supply, dcn::chain::deploy::initial_supply(), "supply minted to the deployer");
    });
}

#[test]
fn deploy_again_is_a_no_op_and_force_redeploys() {
    let chain = anvil();
    let dcn = Dcn::new(chain.endpoint());
    let first = deploy_json(&dcn, &[]);
    let block = block_on(reader(&chain.endpoint()).get_block_number()).unwrap();

    let again = deploy_json(&dcn, &[]);
    assert_eq!(again, first, "same record");
    assert_eq!(block_on(reader(&chain.endpoint()).get_block_number()).unwrap(), block, "no transaction sent");
    assert!(dcn.ok(&["deploy"]).starts_with("reused"), "says it reused");

    let forced = deploy_json(&dcn, &["--force"]);
    assert_ne!(forced.contracts.deals, first.contracts.deals, "--force deploys anew");
    assert_eq!(Deployment::require(&dcn.data_dir(), "geth").unwrap(), forced, "record updated");
}

#[test]
fn deploy_redeploys_when_the_recorded_code_is_gone() {
    let first_chain = anvil();
    let dcn = Dcn::new(first_chain.endpoint());
    let first = deploy_json(&dcn, &[]);
    drop(first_chain);

    // A new chain with the same id: the record points at empty addresses.
    let second_chain = anvil();
    let dcn = Dcn { rpc_url: second_chain.endpoint(), ..dcn };
    let out = dcn.ok(&["deploy"]);
    assert!(out.starts_with("deployed"), "{out}");
    let second = Deployment::require(&dcn.data_dir(), "geth").unwrap();
    assert!(code_len(&second_chain.endpoint(), second.contracts.deals) > 0);
    assert!(second.block > 0 && first.block > 0);
}

#[test]
fn fund_tops_up_accounts_once_and_prints_balances() {
    let chain = anvil();
    let dcn = Dcn::new(chain.endpoint());
    let d = deploy_json(&dcn, &[]);

    let table = dcn.ok(&["fund"]);
    for role in ["solver", "mediator", "provider", "job-creator", "cowsay-client"] {
        assert!(table.contains(role), "{role} missing from\n{table}");
    }
    let p = reader(&chain.endpoint());
    let token = DcnToken::new(d.contracts.token, &p);
    let ten_thousand = parse_ether("10000").unwrap();
    for role in [DevRole::Solver, DevRole::Mediator, DevRole::Provider, DevRole::JobCreator] {
        assert_eq!(block_on(token.balanceOf(role.address()).call()).unwrap(), ten_thousand, "{role:?} tokens");
    }
    assert_eq!(block_on(token.balanceOf(d.contracts.cowsay_client).call()).unwrap(), ten_thousand);

    // An explicit fresh account gets exactly the targets, and a second run sends nothing.
    let fresh = Address::repeat_byte(0x42);
    let fresh_s = fresh.to_string();
    let args = ["fund", "--account", fresh_s.as_str(), "--eth", "2", "--tokens", "5.5", "--json"];
    let rows: serde_json::Value = serde_json::from_str(&dcn.ok(&args)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let eth = block_on(p.get_balance(fresh)).unwrap();
    assert_eq!(eth, parse_ether("2").unwrap());
    assert_eq!(block_on(token.balanceOf(fresh).call()).unwrap(), parse_ether("5.5").unwrap());
    let admin_before = block_on(token.balanceOf(DevRole::Admin.address()).call()).unwrap();
    dcn.ok(&args);
    assert_eq!(block_on(p.get_balance(fresh)).unwrap(), eth, "no second top-up");
    assert_eq!(block_on(token.balanceOf(DevRole::Admin.address()).call()).unwrap(), admin_before);
    assert!(admin_before > U256::ZERO);
}

#[test]
fn rpc_down_is_a_clear_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dcn = Dcn::new(format!("http://127.0.0.1:{port}"));
    for cmd in [&["deploy"][..], &["fund"]] {
        let out = dcn.run(cmd);
        assert!(!out.status.success(), "{cmd:?} must fail");
        let err = stderr(&out);
        assert!(err.contains(&format!("cannot reach the chain at http://127.0.0.1:{port}")), "{err}");
        assert!(err.contains("Is the node running?"), "{err}");
    }
}

#[test]
fn wrong_chain_unknown_network_and_unfunded_admin_are_clear_errors() {
    let chain = anvil();
    let dcn = Dcn::new(chain.endpoint());

    // THREATS S9: chain id 5 is no development chain, so the public development keys are
    // refused before anything is sent; with a real key the node's own chain id is checked.
    let err = stderr(&dcn.run(&["deploy", "--chain-id", "5"]));
    assert!(err.contains("may not use the development keys") && err.contains("(chain id 5)"), "{err}");
    let admin = hex::encode(DevRole::Admin.signer().to_bytes());
    let out =
        dcn.cmd().env("DCN_KEYS__ADMIN_PRIVATE_KEY", &admin).args(["deploy", "--chain-id", "5"]).output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("chain id mismatch") && err.contains("reports 1337") && err.contains("expects 5"), "{err}");
    // The same for a node that is not on this machine, whatever its chain id.
    let err = stderr(&dcn.run(&["fund", "--rpc-url", "http://10.255.255.1:8545"]));
    assert!(err.contains("may not use the development keys") && err.contains("http://10.255.255.1:8545"), "{err}");

    let out = dcn.cmd().args(["deploy", "--network", "mainnet"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown network `mainnet`"), "{}", stderr(&out));

    // A key with no ether: says so, names the account, never prints the key.
    let key = "0x1111111111111111111111111111111111111111111111111111111111111111";
    let out = dcn.cmd().env("WEB3_PRIVATE_KEY", key).args(["deploy"]).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("has no ETH"), "{err}");
    assert!(!err.contains(&key[2..]), "key leaked: {err}");
}

#[test]
fn fund_without_a_deployment_says_how_to_get_one() {
    let chain = anvil();
    let err = stderr(&Dcn::new(chain.endpoint()).run(&["fund"]));
    assert!(err.contains("run `dcn deploy --network geth` first"), "{err}");
}

fn hex_key(role: DevRole) -> String {
    hex::encode(role.signer().to_bytes())
}

#[test]
fn another_machine_finds_the_network_from_its_registry_and_refuses_a_wrong_one() {
    // THREATS S10: the registry names the other contracts; a machine with no record joins
    // with the RPC URL, the chain id and its address. A wrong or hostile address is refused
    // before any token moves: dcn checks the code at every address against its artifacts.
    let chain = anvil();
    let dcn = Dcn::new(chain.endpoint());
    let printed = dcn.ok(&["deploy"]);
    let d = Deployment::require(&dcn.data_dir(), "geth").unwrap();
    let registry = d.contracts.registry;
    assert!(printed.contains(&format!("--chain-id 1337 --registry {registry}")), "{printed}");
    assert!(printed.contains(&format!("registry = \"{registry}\"")), "{printed}");

    let other = Dcn::new(chain.endpoint());
    let joined = |reg: Address, args: &[&str]| {
        let reg = reg.to_string();
        let mut c = other.cmd();
        c.args(["--network", "lab", "--chain-id", "1337", "--registry", &reg])
            .env("DCN_KEYS__ADMIN_PRIVATE_KEY", hex_key(DevRole::Admin))
            .args(args);
        c.output().unwrap()
    };
    let fresh = Address::repeat_byte(0x42).to_string();
    let out = joined(registry, &["fund", "--account", &fresh, "--tokens", "3", "--eth", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = reader(&chain.endpoint());
    let token = DcnToken::new(d.contracts.token, &p);
    assert_eq!(block_on(token.balanceOf(Address::repeat_byte(0x42)).call()).unwrap(), parse_ether("3").unwrap());
    assert!(!other.data_dir().join("deployments").exists(), "no record needed, none written");

    // The deployment approved the development solver and mediator; listing needs no key.
    let out = other
        .cmd()
        .args(["--network", "lab", "--chain-id", "1337", "--registry", &registry.to_string()])
        .args(["registry", "list", "solver", "--approved", "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["account"].as_str().unwrap().parse::<Address>().unwrap(), DevRole::Solver.address());
    assert_eq!(rows[0]["registered"], false, "approved before it registered");

    // The owner approves and revokes; anyone else is told who the owner is.
    let stranger = Address::repeat_byte(0x51).to_string();
    let out = joined(registry, &["registry", "approve", "mediator", &stranger]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reg = DcnRegistry::new(registry, &p);
    assert!(block_on(reg.isApproved(1, Address::repeat_byte(0x51)).call()).unwrap());
    let out = joined(registry, &["registry", "revoke", "mediator", &stranger]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!block_on(reg.isApproved(1, Address::repeat_byte(0x51)).call()).unwrap());
    let mut c = other.cmd();
    let out = c
        .args(["--network", "lab", "--chain-id", "1337", "--registry", &registry.to_string()])
        .env("DCN_KEYS__ADMIN_PRIVATE_KEY", hex_key(DevRole::Provider))
        .args(["registry", "approve", "mediator", &stranger])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains(&format!("is owned by {}", DevRole::Admin.address())), "{err}");

    // Wrong addresses: no code, another contract, a registry that names nothing, and a
    // hostile registry (our own code) that names a contract of its owner's as DcnDeals. It
    // cannot name the real network's contracts: it does not own them.
    let err = stderr(&joined(Address::repeat_byte(0x77), &["fund"]));
    assert!(err.contains("no contract at") && err.contains("expected DcnRegistry"), "{err}");
    let err = stderr(&joined(d.contracts.token, &["fund"]));
    assert!(err.contains("is not the DcnRegistry this dcn was built with"), "{err}");
    let (empty, hostile) = block_on(async {
        let wallet = alloy::network::EthereumWallet::from(DevRole::JobCreator.signer());
        let p = alloy::providers::ProviderBuilder::new().wallet(wallet).connect_http(chain.endpoint().parse().unwrap());
        let empty = DcnRegistry::deploy(&p).await.unwrap();
        let hostile = DcnRegistry::deploy(&p).await.unwrap();
        let c = d.contracts;
        let over_theirs = hostile.setNetwork(c.token, c.deals, c.job_board, Address::ZERO);
        assert!(over_theirs.call().await.is_err(), "a registry cannot publish contracts its owner does not own");
        let set = hostile.setNetwork(c.token, *empty.address(), *empty.address(), Address::ZERO);
        set.send().await.unwrap().get_receipt().await.unwrap();
        (*empty.address(), *hostile.address())
    });
    let err = stderr(&joined(empty, &["fund"]));
    assert!(err.contains("names no contracts yet"), "{err}");
    let err = stderr(&joined(hostile, &["fund"]));
    assert!(err.contains(&format!("the code at {empty} is not the DcnDeals")), "{err}");
}
